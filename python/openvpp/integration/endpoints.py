"""Partner endpoints: declared by their owner, probed before use, re-probed on demand.

An endpoint's state is its last probe's verdict; routing reads only
VALIDATED endpoints, so a failed probe takes an endpoint out of every route.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, replace
from ipaddress import ip_address
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from sqlalchemy.engine import Row

from openvpp import errors
from openvpp.integration import ca
from openvpp.integration.probe import Outcome, Prober, Target
from openvpp.kernel import clock
from openvpp.kernel.changes import Change, Fact, Listener
from openvpp.kernel.clock import Clock
from openvpp.store import endpoint_repo as repo
from openvpp.store import partner_repo
from openvpp.store.database import Database
from openvpp.v1 import integration_pb2 as pb

_LABEL_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_HOST_RE = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_SCHEME: dict[int, str] = {
    pb.ENDPOINT_PROTOCOL_OPENVPP_GRPC: "https",
    pb.ENDPOINT_PROTOCOL_OCPP_201: "wss",
    pb.ENDPOINT_PROTOCOL_OCPP_16: "wss",
    pb.ENDPOINT_PROTOCOL_OPENADR_3: "https",
    pb.ENDPOINT_PROTOCOL_HTTPS: "https",
}
_AUTH_MODES = frozenset(pb.EndpointAuthMode.values()) - {pb.ENDPOINT_AUTH_MODE_UNSPECIFIED}
_OWNER_KINDS = frozenset({pb.PARTNER_KIND_UTILITY, pb.PARTNER_KIND_DEVICE_VENDOR})
MAX_URL = 2048
MAX_PROGRAMS = 64
MAX_PINS = 8
MAX_ANCHORS_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class EndpointSpec:
    """What the owner declares, as RegisterEndpoint received it."""

    namespace: str
    name: str
    url: str
    protocol: int
    programs: tuple[str, ...]
    tls_server_name: str
    auth_mode: int
    health_path: str
    trust_anchors_pem: str
    expected_spki_pins: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class EndpointState:
    spec: EndpointSpec
    endpoint_id: str
    state: int
    probe: Outcome
    registered_at_us: int
    updated_at_us: int

    @property
    def target(self) -> Target:
        return target_of(self.spec)

    @classmethod
    def from_row(cls, row: Row[Any]) -> EndpointState:
        spec = EndpointSpec(
            row.namespace,
            row.name,
            row.url,
            row.protocol,
            tuple(json.loads(row.programs)),
            row.tls_server_name,
            row.auth_mode,
            row.health_path,
            row.trust_anchors_pem,
            tuple(json.loads(row.expected_spki_pins)),
        )
        return cls(
            spec, row.endpoint_id, row.state, Outcome.from_json(row.probe), row.registered_at_us, row.updated_at_us
        )


def target_of(spec: EndpointSpec) -> Target:
    return Target(
        spec.url, spec.protocol, spec.tls_server_name, spec.health_path, spec.trust_anchors_pem, spec.expected_spki_pins
    )


def endpoint_id(namespace: str, name: str) -> str:
    return f"{namespace}/{name}"


def _bad(field: str, why: str, reason: str = "INVALID_FIELD") -> errors.InvalidArgument:
    return errors.InvalidArgument.field(field, why, reason)


def _check_url(url: str, protocol: int) -> str:
    """The URL's host, after checking the scheme the protocol needs and that nothing else rides along."""
    if not url:
        raise _bad("url", "must not be empty", "EMPTY_FIELD")
    if len(url) > MAX_URL:
        raise _bad("url", f"must be at most {MAX_URL} characters", "TOO_LONG")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise _bad("url", f"is not a URL: {exc}", "INVALID_URL") from None
    if parts.scheme != _SCHEME[protocol]:
        raise _bad("url", f"must be a {_SCHEME[protocol]}:// URL for this protocol", "INSECURE_OR_WRONG_SCHEME")
    host = parts.hostname or ""
    if not host or parts.username or parts.password or parts.fragment or parts.query:
        raise _bad("url", "must have a host and no credentials, query or fragment", "INVALID_URL")
    if port == 0:
        raise _bad("url", "port must be 1-65535", "INVALID_URL")
    if protocol == pb.ENDPOINT_PROTOCOL_OPENVPP_GRPC and parts.path not in ("", "/"):
        raise _bad("url", "a gRPC endpoint URL has no path", "INVALID_URL")
    _check_host(host, "url")
    return host


def _check_host(host: str, field: str) -> None:
    try:
        ip_address(host)
        return
    except ValueError:
        pass
    if not _HOST_RE.match(host):
        raise _bad(field, "must be a DNS name or an IP address", "INVALID_HOST")


def _check_pin(pin: str, i: int) -> None:
    prefix, _, encoded = pin.partition("/")
    try:
        digest = base64.b64decode(encoded, validate=True)
    except ValueError:
        digest = b""
    if prefix != "sha256" or len(digest) != 32:
        raise _bad(f"expected_spki_pins[{i}]", "must be sha256/<base64 of 32 bytes>", "INVALID_PIN")


def _check_anchors(pem: str) -> None:
    if not pem:
        return
    if len(pem) > MAX_ANCHORS_BYTES:
        raise _bad("trust_anchors_pem", f"must be at most {MAX_ANCHORS_BYTES} bytes", "TOO_LONG")
    try:
        certs = x509.load_pem_x509_certificates(pem.encode())
    except ValueError:
        raise _bad("trust_anchors_pem", "must be PEM certificates", "INVALID_PEM") from None
    for cert in certs:
        try:
            is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        except x509.ExtensionNotFound:
            is_ca = False
        if not is_ca:
            raise _bad("trust_anchors_pem", "every anchor must be a CA certificate", "NOT_A_CA")


def check_spec(spec: EndpointSpec) -> EndpointSpec:
    """Refuses anything malformed before a probe runs or a row is written; fills defaults."""
    if spec.protocol not in _SCHEME:
        raise _bad("protocol", "must be a known endpoint protocol", "INVALID_ENUM")
    if not _LABEL_RE.match(spec.name):
        raise _bad("name", "must be a lower-case DNS label (a-z, 0-9, '-')", "INVALID_NAME")
    host = _check_url(spec.url, spec.protocol)
    if spec.tls_server_name:
        _check_host(spec.tls_server_name, "tls_server_name")
    if spec.auth_mode and spec.auth_mode not in _AUTH_MODES:
        raise _bad("auth_mode", "must be a known auth mode", "INVALID_ENUM")
    if len(spec.programs) > MAX_PROGRAMS:
        raise _bad("programs", f"at most {MAX_PROGRAMS}", "TOO_MANY")
    for i, code in enumerate(spec.programs):
        if not _LABEL_RE.match(code):
            raise _bad(f"programs[{i}]", "must be a lower-case program code (a-z, 0-9, '-')", "INVALID_NAME")
    if len(set(spec.programs)) != len(spec.programs):
        raise _bad("programs", "must not repeat a program", "DUPLICATE")
    if spec.health_path and spec.protocol != pb.ENDPOINT_PROTOCOL_HTTPS:
        raise _bad("health_path", "applies to HTTPS endpoints only", "NOT_APPLICABLE")
    if spec.health_path and (not spec.health_path.startswith("/") or len(spec.health_path) > 512):
        raise _bad("health_path", "must be an absolute path of at most 512 characters", "INVALID_PATH")
    if len(spec.expected_spki_pins) > MAX_PINS:
        raise _bad("expected_spki_pins", f"at most {MAX_PINS}", "TOO_MANY")
    for i, pin in enumerate(spec.expected_spki_pins):
        _check_pin(pin, i)
    _check_anchors(spec.trust_anchors_pem)
    return EndpointSpec(
        spec.namespace,
        spec.name,
        spec.url,
        spec.protocol,
        spec.programs,
        spec.tls_server_name or host,
        spec.auth_mode or pb.ENDPOINT_AUTH_MODE_SERVER_TLS,
        spec.health_path or ("/" if spec.protocol == pb.ENDPOINT_PROTOCOL_HTTPS else ""),
        spec.trust_anchors_pem,
        spec.expected_spki_pins,
    )


def _denied() -> errors.PermissionDenied:
    return errors.PermissionDenied("a partner may only manage endpoints of its own namespace", "CROSS_TENANT")


def _owns(caller: ca.Identity, namespace: str) -> bool:
    return caller.acts_for(namespace)


class Endpoints:
    """Register, probe, list and remove partner endpoints; every method takes the caller's identity."""

    def __init__(self, db: Database, prober: Prober, changes: Listener, clock_us: Clock = clock.system) -> None:
        self.db = db
        self.changes = changes
        self.prober = prober
        self.clock_us = clock_us

    async def register(self, caller: ca.Identity, spec: EndpointSpec) -> EndpointState:
        namespace = spec.namespace or caller.namespace
        if not _owns(caller, namespace):
            raise _denied()
        spec = check_spec(replace(spec, namespace=namespace))
        key = endpoint_id(namespace, spec.name)
        async with self.db.read() as conn:
            await self._check_owner(conn, namespace)
            if await repo.endpoint(conn, key) is not None:
                raise _exists(key)
        # The probe talks to the network; it runs outside any transaction.
        outcome = await self.prober.probe(target_of(spec))
        async with self.db.write() as conn:
            await self._check_owner(conn, namespace)
            if await repo.endpoint(conn, key) is not None:
                raise _exists(key)
            now = self.clock_us()
            await repo.insert(conn, _row(key, spec, outcome, now))
            row = await repo.endpoint(conn, key)
        return EndpointState.from_row(_present(row))

    async def validate(self, caller: ca.Identity, key: str) -> EndpointState:
        current = await self.get(caller, key)
        outcome = await self.prober.probe(current.target)
        async with self.db.write() as conn:
            before = await repo.endpoint(conn, key)
            if before is None or not await repo.record_probe(
                conn, key, outcome.state, outcome.to_json(), outcome.probed_at_us
            ):
                raise _missing(key)
            if before.state != outcome.state:
                fact = Fact.ENDPOINT_RESTORED if outcome.passed else Fact.ENDPOINT_FAILED
                await self._announce(conn, before, fact, outcome.failure_reason, outcome.probed_at_us)
            row = await repo.endpoint(conn, key)
        return EndpointState.from_row(_present(row))

    async def get(self, caller: ca.Identity, key: str) -> EndpointState:
        namespace, _, _ = key.partition("/")
        if not _owns(caller, namespace):
            raise _denied()
        async with self.db.read() as conn:
            row = await repo.endpoint(conn, key)
        if row is None:
            raise _missing(key)
        return EndpointState.from_row(row)

    async def list_endpoints(
        self, caller: ca.Identity, namespace: str, protocol: int, state: int, program: str, page_size: int, token: str
    ) -> tuple[list[EndpointState], str]:
        if caller.role is not ca.Role.OPERATOR:
            if namespace and namespace != caller.namespace:
                raise _denied()
            namespace = caller.namespace
        if page_size > 1000:
            raise _bad("page_size", "must be at most 1000", "OUT_OF_RANGE")
        if protocol and protocol not in _SCHEME:
            raise _bad("protocol", "must be a known endpoint protocol", "INVALID_ENUM")
        if state and state not in (pb.ENDPOINT_STATE_VALIDATED, pb.ENDPOINT_STATE_FAILED):
            raise _bad("state", "must be a known endpoint state", "INVALID_ENUM")
        if program and not _LABEL_RE.match(program):
            raise _bad("program", "must be a program code", "INVALID_NAME")
        limit = page_size or 100
        async with self.db.read() as conn:
            rows = await repo.list_endpoints(conn, namespace, protocol, state, program, token, limit + 1)
        found = [EndpointState.from_row(r) for r in rows[:limit]]
        return found, (found[-1].endpoint_id if len(rows) > limit else "")

    async def remove(self, caller: ca.Identity, key: str) -> None:
        namespace, _, _ = key.partition("/")
        if not _owns(caller, namespace):
            raise _denied()
        async with self.db.write() as conn:
            row = await repo.endpoint(conn, key)
            if row is None:
                raise _missing(key)
            # Routing detaches it from its programs in this same transaction.
            await self._announce(conn, row, Fact.ENDPOINT_REMOVED, "removed", self.clock_us())
            await repo.remove(conn, key)

    async def _announce(self, conn: Any, row: Row[Any], fact: Fact, detail: str, at_us: int) -> None:
        change = Change(fact, utility=row.namespace, endpoint=row.endpoint_id, detail=detail)
        await self.changes.changed(conn, [change], at_us)

    @staticmethod
    async def _check_owner(conn: Any, namespace: str) -> None:
        partner = await partner_repo.partner(conn, namespace)
        if partner is None:
            raise errors.NotFound(f"no partner {namespace}", "PARTNER_NOT_FOUND")
        if partner.kind not in _OWNER_KINDS:
            raise errors.FailedPrecondition("endpoints belong to utilities and device vendors", "NOT_AN_ENDPOINT_OWNER")
        if partner.status != pb.PARTNER_STATUS_ACTIVE:
            raise errors.FailedPrecondition(f"partner {namespace} is suspended", "PARTNER_SUSPENDED")


def _row(key: str, spec: EndpointSpec, outcome: Outcome, now_us: int) -> dict[str, Any]:
    return {
        "endpoint_id": key,
        "namespace": spec.namespace,
        "name": spec.name,
        "url": spec.url,
        "protocol": spec.protocol,
        "programs": json.dumps(list(spec.programs)),
        "tls_server_name": spec.tls_server_name,
        "auth_mode": spec.auth_mode,
        "health_path": spec.health_path,
        "trust_anchors_pem": spec.trust_anchors_pem,
        "expected_spki_pins": json.dumps(list(spec.expected_spki_pins)),
        "state": outcome.state,
        "probe": outcome.to_json(),
        "probed_at_us": outcome.probed_at_us,
        "registered_at_us": now_us,
        "updated_at_us": now_us,
    }


def _present(row: Row[Any] | None) -> Row[Any]:
    """A row this transaction just wrote; its absence would be a storage fault."""
    if row is None:
        raise RuntimeError("a row written in this transaction is missing")
    return row


def _exists(key: str) -> errors.AlreadyExists:
    return errors.AlreadyExists(
        f"endpoint {key} is already registered",
        "ENDPOINT_EXISTS",
        violations=[errors.FieldViolation("name", "already used in this namespace")],
    )


def _missing(key: str) -> errors.NotFound:
    return errors.NotFound(f"no endpoint {key}", "ENDPOINT_NOT_FOUND")
