"""Resolve and ResolveBatch: identifiers to signed route sets, from a cache kept exact by the change logs.

Answers are signed when computed and reused until something they depend on
changes, the way DNSSEC signs a zone once rather than every query. The cache
follows the route-change log and the registry log: after any write in this
process it reads them at once, and it polls them every `poll_seconds` for
writes made by other replicas.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from openvpp import errors
from openvpp.kernel import clock
from openvpp.kernel.clock import Clock
from openvpp.kernel.identity import Identity
from openvpp.registry import identifiers
from openvpp.routing.routes import Computed, RouteBuilder, group_rows
from openvpp.store import route_log
from openvpp.store import routing_repo as repo
from openvpp.store.database import Database
from openvpp.v1 import common_pb2
from openvpp.v1 import routing_pb2 as pb

_PROGRAM_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{0,252}/[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_PROTOCOLS = frozenset(common_pb2.Protocol.values())
# More changes than this since the last look: drop everything rather than replay them.
RESYNC_LIMIT = 5000
NO_DEVICE = ""

EncodeError = Callable[[errors.OpenVPPError], bytes]


def _field(number: int, data: bytes) -> bytes:
    """A length-delimited protobuf field: lets cached answers be joined into a response without re-encoding."""
    tag = (number << 3) | 2
    size, header = len(data), bytearray([tag])
    while size > 0x7F:
        header.append((size & 0x7F) | 0x80)
        size >>= 7
    header.append(size)
    return bytes(header) + data


@dataclass(frozen=True, slots=True)
class Entry:
    computed: Computed
    # The ResolveBatchAnswer bytes, already framed as a `answers` field.
    framed: bytes


class Resolver:
    def __init__(
        self,
        db: Database,
        builder: RouteBuilder,
        encode_error: EncodeError,
        *,
        poll_seconds: float,
        max_batch: int,
        max_entries: int = 500_000,
        clock_us: Clock = clock.system,
    ) -> None:
        self.db = db
        self.builder = builder
        self.encode_error = encode_error
        self.poll_seconds = poll_seconds
        self.max_batch = max_batch
        self.max_entries = max_entries
        self.clock_us = clock_us
        self._ids: dict[str, str] = {}  # identifier text -> der_id (NO_DEVICE: known unknown)
        self._answers: dict[tuple[str, str, int], Entry] = {}
        self._generation = -1
        self._polled = 0.0
        self._route_cursor = -1
        self._registry_cursor = -1
        self._lock = asyncio.Lock()

    # -- public ---------------------------------------------------------------

    async def resolve(
        self, caller: Identity, identifier: common_pb2.DeviceIdentifier, program: str, protocol: int
    ) -> pb.SignedRoutes:
        self._check_filters(program, protocol)
        text = _identifier_text(identifier)
        await self._sync()
        entry = (await self._entries(caller, [text], program, protocol))[0]
        if isinstance(entry, errors.OpenVPPError):
            raise entry
        if entry.computed.error is not None:
            raise entry.computed.error
        assert entry.computed.signed is not None
        return entry.computed.signed

    async def resolve_batch(self, caller: Identity, texts: Sequence[str], program: str, protocol: int) -> bytes:
        """The serialised ResolveBatchResponse: one answer per identifier, in order."""
        if len(texts) > self.max_batch:
            raise errors.InvalidArgument.field("identifiers", f"at most {self.max_batch} per call", "TOO_MANY")
        self._check_filters(program, protocol)
        await self._sync()
        parts = []
        for item in await self._entries(caller, texts, program, protocol):
            if isinstance(item, Entry):
                parts.append(item.framed)
            else:
                parts.append(_field(1, _field(2, self.encode_error(item))))
        return b"".join(parts)

    # -- answers --------------------------------------------------------------

    async def _entries(
        self, caller: Identity, texts: Sequence[str], program: str, protocol: int
    ) -> list[Entry | errors.OpenVPPError]:
        now = self.clock_us()
        await self._learn_ids([t for t in texts if t not in self._ids])
        missing = {
            der_id
            for t in texts
            if (der_id := self._ids.get(t, NO_DEVICE)) != NO_DEVICE
            and ((e := self._answers.get((der_id, program, protocol))) is None or e.computed.refresh_at_us <= now)
        }
        if missing:
            if len(self._answers) + len(missing) > self.max_entries:
                self._answers.clear()
            await self._compute(sorted(missing), program, protocol, now)
        out: list[Entry | errors.OpenVPPError] = []
        for text in texts:
            der_id = self._ids.get(text, NO_DEVICE)
            if not text:
                out.append(errors.InvalidArgument.field("identifier", "must not be empty", "EMPTY_FIELD"))
            elif der_id == NO_DEVICE:
                out.append(errors.NotFound(f"no device has the identifier {text!r}", "DEVICE_NOT_FOUND"))
            else:
                entry = self._answers[(der_id, program, protocol)]
                out.append(entry if _visible(caller, entry.computed) else _denied(der_id))
        return out

    async def _compute(self, der_ids: list[str], program: str, protocol: int, now: int) -> None:
        async with self.db.read() as conn:
            devices = {d.der_id: d for d in await repo.devices_with_vendor(conn, der_ids)}
            rows = group_rows(await repo.route_rows(conn, der_ids))
        for der_id in der_ids:
            computed = self.builder.build(devices.get(der_id), der_id, rows.get(der_id, []), program, protocol, now)
            if computed.signed is not None:
                answer = _field(1, computed.signed.SerializeToString())
            else:
                assert computed.error is not None
                answer = _field(2, self.encode_error(computed.error))
            self._answers[(der_id, program, protocol)] = Entry(computed, _field(1, answer))

    async def _learn_ids(self, texts: list[str]) -> None:
        texts = [t for t in dict.fromkeys(texts) if t]
        if not texts:
            return
        if len(self._ids) + len(texts) > self.max_entries:
            self._ids.clear()
        async with self.db.read() as conn:
            found = await repo.der_ids_by_text(conn, texts)
            rest = [t for t in texts if t not in found]
            candidates = {t: identifiers.alias_candidates(t) for t in rest}
            by_alias = await repo.der_ids_by_alias(conn, [p for pairs in candidates.values() for p in pairs])
        for text in texts:
            der_id = found.get(text)
            if der_id is None:
                der_id = next((by_alias[p] for p in candidates[text] if p in by_alias), NO_DEVICE)
            self._ids[text] = der_id

    # -- freshness ------------------------------------------------------------

    async def _sync(self) -> None:
        if self._generation == self.db.generation and time.monotonic() - self._polled < self.poll_seconds:
            return
        async with self._lock:
            generation = self.db.generation
            if self._generation == generation and time.monotonic() - self._polled < self.poll_seconds:
                return
            async with self.db.read() as conn:
                if self._route_cursor < 0:
                    self._route_cursor = await route_log.head(conn)
                    self._registry_cursor = await repo.registry_head_seq(conn)
                    routes, registry = [], []
                else:
                    routes = list(await route_log.after(conn, self._route_cursor, RESYNC_LIMIT + 1, None))
                    registry = list(await repo.registry_changes_after(conn, self._registry_cursor, RESYNC_LIMIT + 1))
                    if len(routes) > RESYNC_LIMIT or len(registry) > RESYNC_LIMIT:
                        self._route_cursor = await route_log.head(conn)
                        self._registry_cursor = await repo.registry_head_seq(conn)
                        self._ids.clear()
                        self._answers.clear()
                        routes, registry = [], []
            self._forget(routes, registry)
            self._generation = generation
            self._polled = time.monotonic()

    def _forget(self, routes: list, registry: list) -> None:  # type: ignore[type-arg]
        devices = {r.der_id for r in registry}
        if registry or any(r.kind == pb.ROUTE_EVENT_KIND_DEVICE_IDENTIFIERS for r in routes):
            # A new registration or alias may claim an identifier that was unknown.
            self._ids = {t: d for t, d in self._ids.items() if d != NO_DEVICE and d not in devices}
        if registry:
            self._registry_cursor = registry[-1].seq
        if routes:
            self._route_cursor = routes[-1].seq
            if any(not r.der_id for r in routes):
                self._answers.clear()
                return
            devices |= {r.der_id for r in routes}
        if devices:
            self._answers = {k: v for k, v in self._answers.items() if k[0] not in devices}

    @staticmethod
    def _check_filters(program: str, protocol: int) -> None:
        if program and not _PROGRAM_RE.match(program):
            raise errors.InvalidArgument.field("program_id", "must be <utility>/<code>", "INVALID_NAME")
        if protocol not in _PROTOCOLS:
            raise errors.InvalidArgument.field("protocol", "must be a known protocol", "INVALID_ENUM")


def _identifier_text(identifier: common_pb2.DeviceIdentifier) -> str:
    which = identifier.WhichOneof("id")
    if which == "alias":
        return identifiers.canonical_alias(identifier.alias.kind, identifier.alias.value, "device.alias.value")
    if which is None:
        raise errors.InvalidArgument.field("device", "must set one of der_id, name, alias, any", "EMPTY_FIELD")
    text = str(getattr(identifier, which))
    if not text:
        raise errors.InvalidArgument.field(f"device.{which}", "must not be empty", "EMPTY_FIELD")
    return text


def _visible(caller: Identity, computed: Computed) -> bool:
    return caller.acts_for(computed.vendor) or caller.namespace in computed.utilities


def _denied(der_id: str) -> errors.PermissionDenied:
    return errors.PermissionDenied(
        "routes are visible to the device's vendor and the utilities it is enrolled with",
        "CROSS_TENANT",
        metadata={"der_id": der_id},
    )
