"""Real partner endpoints for probe tests: each serves TLS on 127.0.0.1 with a
certificate from a throwaway partner CA, and speaks its protocol with the
library a partner would use (grpcio, the `ocpp` package over `websockets`,
and the standard library's HTTP server)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import ssl
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from grpc_reflection.v1alpha import reflection
from ocpp import routing, v16, v201
from websockets.asyncio.server import ServerConnection, serve

from openvpp.integration import ca
from openvpp.integration.probe.transport import spki_pin


@dataclass
class ServerIdentity:
    key_pem: bytes
    chain_pem: bytes
    pin: str


class PartnerPki:
    """A partner's own CA (root + intermediate) and server certificates from it."""

    def __init__(self, directory: Path) -> None:
        self.authority = ca.CertificateAuthority.create(directory, organisation=directory.name)

    @property
    def anchors_pem(self) -> str:
        return ca.cert_pem(self.authority.root).decode()

    def server(self, names: tuple[str, ...] = ("localhost",), *, days: int = 30, age_days: int = 0) -> ServerIdentity:
        key = ca.new_key()
        clock = self.authority.clock
        if age_days:
            self.authority.clock = lambda: ca._now() - dt.timedelta(days=age_days)
        try:
            cert = self.authority.issue_server(key, names, ["127.0.0.1"], days=days)
        finally:
            self.authority.clock = clock
        return ServerIdentity(
            ca.private_pem(key), ca.cert_pem(cert) + ca.cert_pem(self.authority.intermediate), spki_pin(cert)
        )


def server_context(identity: ServerIdentity, tmp: Path) -> ssl.SSLContext:
    (tmp / "key.pem").write_bytes(identity.key_pem)
    (tmp / "chain.pem").write_bytes(identity.chain_pem)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp / "chain.pem", tmp / "key.pem")
    return context


@asynccontextmanager
async def grpc_endpoint(identity: ServerIdentity, *, with_reflection: bool = True) -> AsyncIterator[int]:
    server = grpc.aio.server()
    health = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    if with_reflection:
        reflection.enable_server_reflection(
            (health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME), server
        )
    port = server.add_secure_port("127.0.0.1:0", grpc.ssl_server_credentials([(identity.key_pem, identity.chain_pem)]))
    await server.start()
    await health.set("", health_pb2.HealthCheckResponse.SERVING)
    try:
        yield port
    finally:
        await server.stop(0)


class Csms201(v201.ChargePoint):  # type: ignore[misc]
    @routing.on("BootNotification")  # type: ignore[untyped-decorator]
    async def on_boot(self, charging_station: dict[str, Any], reason: str, **_: Any) -> Any:
        return v201.call_result.BootNotification(
            current_time=dt.datetime.now(dt.UTC).isoformat(), interval=300, status="Accepted"
        )


class Csms16(v16.ChargePoint):  # type: ignore[misc]
    @routing.on("BootNotification")  # type: ignore[untyped-decorator]
    async def on_boot(self, charge_point_vendor: str, charge_point_model: str, **_: Any) -> Any:
        return v16.call_result.BootNotification(
            current_time=dt.datetime.now(dt.UTC).isoformat(), interval=60, status="Pending"
        )


@asynccontextmanager
async def csms(identity: ServerIdentity, tmp: Path, subprotocols: list[str] | None) -> AsyncIterator[int]:
    """A charging-station management system: answers BootNotification in the negotiated version."""

    async def station(connection: ServerConnection) -> None:
        station_id = (connection.request.path if connection.request else "/").rsplit("/", 1)[-1]
        handler = Csms201 if connection.subprotocol == "ocpp2.0.1" else Csms16
        try:
            await handler(station_id, connection).start()
        except Exception:  # the station hung up
            return

    async with serve(
        station,
        "127.0.0.1",
        0,
        subprotocols=subprotocols,  # type: ignore[arg-type]
        ssl=server_context(identity, tmp),
    ) as server:
        yield next(iter(server.sockets)).getsockname()[1]


@contextmanager
def https_server(identity: ServerIdentity, tmp: Path, routes: dict[str, tuple[int, bytes]]) -> Iterator[int]:
    """HTTPS answering fixed (status, body) per path; anything else 404."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, body = routes.get(self.path, (404, b"{}"))
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = server_context(identity, tmp).wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def openadr_programs(*names: str) -> bytes:
    now = dt.datetime(2026, 11, 1, tzinfo=dt.UTC).isoformat().replace("+00:00", "Z")
    return json.dumps(
        [
            {
                "id": f"prog-{i}",
                "createdDateTime": now,
                "modificationDateTime": now,
                "objectType": "PROGRAM",
                "programName": name,
                "programType": "DEMAND_RESPONSE",
                "country": "US",
                "principalSubdivision": "CA",
                "intervalPeriod": {"start": now, "duration": "PT1H"},
                "programDescriptions": [{"URL": "https://utility.example/programs/dr"}],
                "bindingEvents": False,
                "localPrice": False,
                "targets": [{"type": "GROUP", "values": ["residential"]}],
            }
            for i, name in enumerate(names)
        ]
    ).encode()


async def free_port() -> int:
    """A port nothing listens on (bound then released)."""
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = int(server.sockets[0].getsockname()[1])
    server.close()
    await server.wait_closed()
    return port
