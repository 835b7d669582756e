"""The demo utility's OpenADR 3 VTN: a small HTTPS server answering GET /programs.

It stands in for the utility's own system so the endpoint probe has a real
TLS server, certificate chain and OpenADR 3 answer to check. It is served
with a certificate from the utility's own CA, not OpenVPP's.
"""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from openvpp.integration import ca

PROGRAMS = [
    {
        "id": "nem-2026",
        "objectType": "PROGRAM",
        "programName": "Residential NEM export credit",
        "createdDateTime": "2026-01-01T00:00:00Z",
        "modificationDateTime": "2026-11-01T00:00:00Z",
        "programType": "PRICING_TARIFF",
        "country": "US",
        "principalSubdivision": "CA",
        "intervalPeriod": {"start": "2026-01-01T00:00:00Z", "duration": "PT15M"},
    },
    {
        "id": "dr-2026",
        "objectType": "PROGRAM",
        "programName": "Evening peak demand response",
        "createdDateTime": "2026-01-01T00:00:00Z",
        "modificationDateTime": "2026-11-01T00:00:00Z",
        "programType": "DEMAND_RESPONSE",
        "country": "US",
        "principalSubdivision": "CA",
        "intervalPeriod": {"start": "2026-01-01T00:00:00Z", "duration": "PT15M"},
    },
]


@contextmanager
def serve_vtn(directory: Path) -> Iterator[tuple[int, str]]:
    """Yields (port, the utility CA's root PEM) while the VTN serves on 127.0.0.1."""
    authority = ca.CertificateAuthority.create(directory / "utility-ca", organisation="Pacific Power")
    key = ca.new_key()
    cert = authority.issue_server(key, ["localhost"], ["127.0.0.1"], days=90)
    ca.write_private(directory / "vtn.key", ca.private_pem(key))
    (directory / "vtn.pem").write_bytes(ca.cert_pem(cert) + ca.cert_pem(authority.intermediate))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(directory / "vtn.pem", directory / "vtn.key")
    body = json.dumps(PROGRAMS).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            found = self.path.rstrip("/").endswith("/programs")
            self.send_response(200 if found else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body) if found else 0))
            self.end_headers()
            if found:
                self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], ca.cert_pem(authority.root).decode()
    finally:
        server.shutdown()
        server.server_close()
