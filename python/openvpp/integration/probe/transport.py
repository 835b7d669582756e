"""The layers under every protocol: name resolution, TCP, TLS and SPKI pins."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import socket
import ssl
from dataclasses import dataclass
from ipaddress import ip_address

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from openvpp.integration.probe.model import ProbeFailure, Target

# OpenSSL X509_V_ERR_* codes that deserve their own reason.
_VERIFY_REASONS = {
    9: "TLS_CERT_NOT_YET_VALID",
    10: "TLS_CERT_EXPIRED",
    62: "TLS_NAME_MISMATCH",
    64: "TLS_NAME_MISMATCH",
}


def spki_pin(cert: x509.Certificate) -> str:
    """The RFC 7469 pin: SHA-256 over the DER SubjectPublicKeyInfo, base64."""
    spki = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256/" + base64.b64encode(hashlib.sha256(spki).digest()).decode()


def client_context(target: Target) -> ssl.SSLContext:
    """Verifies the chain to the declared anchors (or the system store) and the server name."""
    context = ssl.create_default_context(cadata=target.trust_anchors_pem or None)
    if not target.trust_anchors_pem:
        context.load_default_certs()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


async def resolve(target: Target, allow_private: bool) -> str:
    """The address to connect to. Probing is a server-side request on a partner's
    behalf, so by default only public addresses are reachable (no SSRF into
    the operator's own network)."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ProbeFailure("RESOLVE_FAILED", f"{target.host}: {exc.strerror}") from None
    addresses = [str(info[4][0]) for info in infos]
    if not allow_private:
        refused = [a for a in addresses if not ip_address(a.split("%", 1)[0]).is_global]
        if refused:
            raise ProbeFailure(
                "ADDRESS_NOT_ALLOWED",
                f"{target.host} resolves to non-public address {refused[0]}; probing private networks is disabled",
            )
    return addresses[0]


async def connect_tcp(address: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    try:
        return await asyncio.open_connection(address, port)
    except OSError as exc:
        raise ProbeFailure("TCP_CONNECT_FAILED", f"{address}:{port}: {exc.strerror or exc}") from None


@dataclass(frozen=True, slots=True)
class Peer:
    leaf: x509.Certificate
    tls_version: str


async def handshake(writer: asyncio.StreamWriter, target: Target) -> Peer:
    """TLS over the open connection; chain and name are checked by OpenSSL."""
    try:
        await writer.start_tls(client_context(target), server_hostname=target.server_name)
    except ssl.SSLCertVerificationError as exc:
        reason = _VERIFY_REASONS.get(exc.verify_code, "TLS_UNTRUSTED")
        raise ProbeFailure(reason, exc.verify_message or str(exc)) from None
    except (ssl.SSLError, ConnectionError) as exc:
        raise ProbeFailure("TLS_HANDSHAKE_FAILED", str(exc)) from None
    tls = writer.get_extra_info("ssl_object")
    der = tls.getpeercert(binary_form=True) if tls is not None else None
    if not der:
        raise ProbeFailure("TLS_HANDSHAKE_FAILED", "the server presented no certificate")
    return Peer(x509.load_der_x509_certificate(der), tls.version() or "")


def check_pins(target: Target, pin: str) -> None:
    if target.expected_spki_pins and pin not in target.expected_spki_pins:
        raise ProbeFailure("PIN_MISMATCH", f"leaf SPKI pin {pin} is not one of the expected pins")
