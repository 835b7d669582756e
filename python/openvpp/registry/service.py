"""The Registry domain: register, look up, update, change status, watch, prove."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from openvpp import errors, native
from openvpp.kernel import clock, pagination
from openvpp.kernel.changes import Change, Fact, Listener
from openvpp.kernel.clock import Clock
from openvpp.kernel.identity import Identity
from openvpp.registry import identifiers, merkle, records
from openvpp.registry.log import LogNotifier, LogWriter
from openvpp.registry.reads import DeviceReads
from openvpp.store import registry_repo as repo
from openvpp.store.database import Database
from openvpp.v1 import common_pb2, registry_pb2

ACTIVE = common_pb2.DEVICE_STATUS_ACTIVE
REVOKED = common_pb2.DEVICE_STATUS_REVOKED
RECORD_KINDS = (registry_pb2.LOG_ENTRY_KIND_REGISTERED, registry_pb2.LOG_ENTRY_KIND_UPDATED)
MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 100
MAX_REASON = 512
MAX_CERTIFICATE_BYTES = 16 * 1024
WATCH_BATCH = 500


@dataclass(frozen=True, slots=True)
class DeviceState:
    der_id: str
    record_bytes: bytes
    signature: bytes
    status: int
    status_reason: str
    version: int
    registered_at_us: int
    updated_at_us: int
    log_seq: int
    name: str = ""
    vendor_namespace: str = ""

    @classmethod
    def from_row(cls, row: Row[Any]) -> DeviceState:
        return cls(
            der_id=row.der_id,
            record_bytes=bytes(row.record_bytes),
            signature=bytes(row.signature),
            status=row.status,
            status_reason=row.status_reason,
            version=row.version,
            registered_at_us=row.registered_at_us,
            updated_at_us=row.updated_at_us,
            log_seq=row.log_seq,
            name=row.name,
            vendor_namespace=row.vendor_namespace,
        )


@dataclass(frozen=True, slots=True)
class Outcome:
    """One item of a bulk registration: the log position, or why it was refused."""

    der_id: str
    log_seq: int = 0
    error: errors.OpenVPPError | None = None


@dataclass(frozen=True, slots=True)
class InclusionProof:
    leaf_index: int
    tree_size: int
    root_hash: bytes
    audit_path: list[bytes]
    entry_bytes: bytes
    leaf_hash: bytes


@dataclass(frozen=True, slots=True)
class LogEvent:
    seq: int
    entry_bytes: bytes
    leaf_hash: bytes


@dataclass(frozen=True, slots=True)
class CaughtUp:
    head_seq: int


class Registry:
    """Registry operations over one database. Safe to share between tasks."""

    def __init__(
        self,
        db: Database,
        *,
        max_record_bytes: int,
        watch_poll_seconds: float,
        changes: Listener,
        clock_us: Clock = clock.system,
        recheck_seconds: float = 0.25,
    ) -> None:
        self.db = db
        self.reads: DeviceReads[DeviceState] = DeviceReads(db, recheck_seconds, clock_us)
        self.changes = changes
        self.max_record_bytes = max_record_bytes
        self.watch_poll_seconds = watch_poll_seconds
        self.clock_us = clock_us
        self.notifier = LogNotifier()

    # -- writes ---------------------------------------------------------------

    def _validate_and_verify(
        self, envelopes: Sequence[registry_pb2.SignedDeviceRecord], prefix: str
    ) -> list[records.ValidatedRecord | errors.OpenVPPError]:
        """Stateless checks, then every surviving signature in one native batch."""
        checked: list[records.ValidatedRecord | errors.OpenVPPError] = []
        for i, envelope in enumerate(envelopes):
            try:
                checked.append(records.validate(envelope, self.max_record_bytes, prefix.format(i=i)))
            except errors.OpenVPPError as err:
                checked.append(err)
        valid = [(i, c) for i, c in enumerate(checked) if isinstance(c, records.ValidatedRecord)]
        verdicts = native.verify_ed25519(
            records.RECORD_DOMAIN,
            [native.SignedItem(c.public_key, c.signature, c.record_bytes) for _, c in valid],
        )
        for (i, rec), verdict in zip(valid, verdicts, strict=True):
            if verdict is native.SignatureVerdict.VALID:
                continue
            item = prefix.format(i=i)
            if verdict in (
                native.SignatureVerdict.MALFORMED_PUBLIC_KEY,
                native.SignatureVerdict.WEAK_PUBLIC_KEY,
            ):
                field, reason = f"{item}.record.public_key", verdict.name
                text = "is not a usable ed25519 public key"
            else:
                field, reason = f"{item}.signature", verdict.name
                text = f"does not verify under the record's key over the record bytes ({rec.der_id})"
            checked[i] = errors.InvalidArgument(
                f"{field}: {text}", reason, violations=[errors.FieldViolation(field, text)]
            )
        return checked

    async def register(
        self,
        caller: Identity,
        envelopes: Sequence[registry_pb2.SignedDeviceRecord],
        prefix: str = "signed_record",
    ) -> list[Outcome]:
        """Registers each record that passes; one outcome per record, in order.

        `prefix` names a record in field paths; `{i}` in it is the record's index.

        All accepted records of the call commit together in one transaction;
        a refused record leaves nothing behind.
        """
        checked = self._validate_and_verify(envelopes, prefix)
        for i, item in enumerate(checked):
            if isinstance(item, records.ValidatedRecord):
                denied = _outside_namespace(caller, item.record.vendor_namespace, prefix.format(i=i))
                if denied is not None:
                    checked[i] = denied
        candidates = [c for c in checked if isinstance(c, records.ValidatedRecord)]
        outcomes: list[Outcome] = []
        async with self.db.write() as conn:
            seq, head_hash = await repo.lock_head(conn)
            taken_ids, taken_names, taken_aliases = await repo.existing_keys(
                conn,
                (c.der_id for c in candidates),
                (c.name for c in candidates),
                ((a.kind, a.value) for c in candidates for a in c.aliases),
            )
            log = LogWriter(seq, head_hash, self.clock_us())
            device_rows: list[dict[str, Any]] = []
            alias_rows: list[dict[str, Any]] = []
            for i, item in enumerate(checked):
                if isinstance(item, errors.OpenVPPError):
                    outcomes.append(Outcome(der_id="", error=item))
                    continue
                item_prefix = prefix.format(i=i)
                error = _registration_conflict(item, taken_ids, taken_names, taken_aliases, item_prefix)
                if error is None and item.version != 1:
                    error = _version_error(item.version, 0, f"{item_prefix}.record")
                if error is not None:
                    outcomes.append(Outcome(der_id=item.der_id, error=error))
                    continue
                log_seq = log.append(
                    registry_pb2.LOG_ENTRY_KIND_REGISTERED,
                    item.der_id,
                    item.version,
                    registry_pb2.SignedDeviceRecord(record=item.record_bytes, signature=item.signature),
                )
                taken_ids.add(item.der_id)
                taken_names[item.name] = item.der_id
                taken_aliases.update({(a.kind, a.value): item.der_id for a in item.aliases})
                device_rows.append(_device_row(item, log_seq, log.now_us))
                alias_rows.extend(_alias_rows(item))
                outcomes.append(Outcome(der_id=item.der_id, log_seq=log_seq))
            await repo.insert_devices(conn, device_rows, alias_rows)
            await _append(conn, log)
        if device_rows:
            self._changed()
        return outcomes

    async def update(self, caller: Identity, envelope: registry_pb2.SignedDeviceRecord) -> tuple[DeviceState, int]:
        """Applies a new signed version (exactly current + 1) of an existing device."""
        checked = self._validate_and_verify([envelope], "signed_record")[0]
        if isinstance(checked, errors.OpenVPPError):
            raise checked
        rec = "signed_record.record"
        async with self.db.write() as conn:
            seq, head_hash = await repo.lock_head(conn)
            row = await repo.device_by_id(conn, checked.der_id)
            if row is None:
                raise errors.NotFound(f"device {checked.der_id} is not registered", "DEVICE_NOT_FOUND")
            denied = _outside_namespace(caller, row.vendor_namespace, "signed_record")
            if denied is not None:
                raise denied
            if row.status == REVOKED:
                raise errors.FailedPrecondition(f"device {checked.der_id} is revoked", "DEVICE_REVOKED")
            if checked.record.vendor_namespace != row.vendor_namespace:
                raise errors.InvalidArgument.field(
                    f"{rec}.vendor_namespace", f"cannot change from {row.vendor_namespace}", "IMMUTABLE_FIELD"
                )
            version_error = _version_error(checked.version, row.version, rec)
            if version_error is not None:
                raise version_error
            _, taken_names, taken_aliases = await repo.existing_keys(
                conn, [], [checked.name], [(a.kind, a.value) for a in checked.aliases]
            )
            taken_names = {k: v for k, v in taken_names.items() if v != checked.der_id}
            taken_aliases = {k: v for k, v in taken_aliases.items() if v != checked.der_id}
            error = _registration_conflict(checked, set(), taken_names, taken_aliases, "signed_record")
            if error is not None:
                raise error
            log = LogWriter(seq, head_hash, self.clock_us())
            log_seq = log.append(
                registry_pb2.LOG_ENTRY_KIND_UPDATED,
                checked.der_id,
                checked.version,
                registry_pb2.SignedDeviceRecord(record=checked.record_bytes, signature=checked.signature),
            )
            values = _device_row(checked, log_seq, log.now_us)
            for kept in ("der_id", "registered_seq", "registered_at_us", "status", "status_reason"):
                del values[kept]
            await repo.replace_device(conn, checked.der_id, values, _alias_rows(checked))
            await _append(conn, log)
            updated = await repo.device_by_id(conn, checked.der_id)
        self._changed()
        assert updated is not None
        return DeviceState.from_row(updated), log_seq

    async def set_status(self, caller: Identity, der_id: str, status: int, reason: str) -> tuple[DeviceState, int]:
        """Suspends, revokes or reactivates. Setting the current status again changes nothing."""
        identifiers.decode_der_id(der_id, "der_id")
        if status not in common_pb2.DeviceStatus.values() or status == common_pb2.DEVICE_STATUS_UNSPECIFIED:
            raise errors.InvalidArgument.field("status", "must be ACTIVE, SUSPENDED or REVOKED", "INVALID_ENUM")
        if not reason.strip():
            raise errors.InvalidArgument.field("reason", "must say why", "EMPTY_FIELD")
        if len(reason) > MAX_REASON:
            raise errors.InvalidArgument.field("reason", f"must be at most {MAX_REASON} characters", "FIELD_TOO_LONG")
        async with self.db.write() as conn:
            seq, head_hash = await repo.lock_head(conn)
            row = await repo.device_by_id(conn, der_id)
            if row is None:
                raise errors.NotFound(f"device {der_id} is not registered", "DEVICE_NOT_FOUND")
            denied = _outside_namespace(caller, row.vendor_namespace, "der_id")
            if denied is not None:
                raise denied
            if row.status == status:
                return DeviceState.from_row(row), int(row.log_seq)
            if row.status == REVOKED:
                raise errors.FailedPrecondition(f"device {der_id} is revoked; revocation is final", "DEVICE_REVOKED")
            log = LogWriter(seq, head_hash, self.clock_us())
            log_seq = log.append(
                registry_pb2.LOG_ENTRY_KIND_STATUS_CHANGED, der_id, row.version, status=status, reason=reason
            )
            await repo.set_status(
                conn,
                der_id,
                {"status": status, "status_reason": reason, "log_seq": log_seq, "updated_at_us": log.now_us},
            )
            await _append(conn, log)
            change = Change(
                Fact.DEVICE_STATUS,
                der_id,
                row.vendor_namespace,
                detail=f"{common_pb2.DeviceStatus.Name(status)}: {reason}",  # type: ignore[arg-type]
            )
            await self.changes.changed(conn, [change], log.now_us)
            updated = await repo.device_by_id(conn, der_id)
        self._changed()
        assert updated is not None
        return DeviceState.from_row(updated), log_seq

    def _changed(self) -> None:
        """After a committed registry write: wake watchers, drop cached reads."""
        self.reads.invalidate()
        self.notifier.notify()

    async def register_certificate(self, caller: Identity, der_id: str, certificate_der: bytes) -> tuple[str, str]:
        """Derives the device's IEEE 2030.5 LFDI and SFDI from its certificate and adds them as aliases."""
        identifiers.decode_der_id(der_id, "der_id")
        if not certificate_der or len(certificate_der) > MAX_CERTIFICATE_BYTES:
            raise errors.InvalidArgument.field(
                "certificate_der", f"must be 1-{MAX_CERTIFICATE_BYTES} bytes", "INVALID_CERTIFICATE"
            )
        try:
            x509.load_der_x509_certificate(certificate_der)
        except ValueError:
            raise errors.InvalidArgument.field(
                "certificate_der", "is not a DER X.509 certificate", "INVALID_CERTIFICATE"
            ) from None
        lfdi = identifiers.lfdi_from_certificate(certificate_der)
        sfdi = identifiers.sfdi_from_lfdi(lfdi)
        wanted = [(common_pb2.ALIAS_KIND_LFDI, lfdi), (common_pb2.ALIAS_KIND_SFDI, sfdi)]
        now = self.clock_us()
        async with self.db.write() as conn:
            row = await repo.device_by_id(conn, der_id)
            if row is None:
                raise errors.NotFound(f"device {der_id} is not registered", "DEVICE_NOT_FOUND")
            denied = _outside_namespace(caller, row.vendor_namespace, "der_id")
            if denied is not None:
                raise denied
            holders = await repo.alias_holders(conn, wanted)
            if any(holder != der_id for holder in holders.values()):
                raise errors.AlreadyExists(
                    "the certificate's LFDI or SFDI already identifies another device",
                    "ALIAS_TAKEN",
                    violations=[errors.FieldViolation("certificate_der", "its LFDI/SFDI belongs to another device")],
                )
            if len(holders) == len(wanted):
                return lfdi, sfdi  # already registered for this device
            aliases = [
                {"kind": kind, "value": value, "der_id": der_id, "position": -1 - i}
                for i, (kind, value) in enumerate(wanted)
                if (kind, value) not in holders
            ]
            await repo.add_certificate(
                conn,
                {
                    "lfdi": lfdi,
                    "der_id": der_id,
                    "sfdi": sfdi,
                    "certificate_der": certificate_der,
                    "registered_at_us": now,
                },
                aliases,
            )
            change = Change(Fact.DEVICE_IDENTIFIERS, der_id, row.vendor_namespace, detail=f"LFDI {lfdi} SFDI {sfdi}")
            await self.changes.changed(conn, [change], now)
        self.reads.invalidate()
        return lfdi, sfdi

    # -- reads ----------------------------------------------------------------

    async def get(self, identifier: common_pb2.DeviceIdentifier) -> DeviceState:
        """Resolves der_id, name, a typed alias, or free text to one device."""
        which = identifier.WhichOneof("id")
        generation = self.reads.generation
        if which == "der_id":
            await self.reads.follow()
            generation = self.reads.generation
            cached = self.reads.get(identifier.der_id)
            if cached is not None:
                return cached
        async with self.db.read() as conn:
            row = None
            if which == "der_id":
                identifiers.decode_der_id(identifier.der_id, "identifier.der_id")
                row = await repo.device_by_id(conn, identifier.der_id)
            elif which == "name":
                if not identifier.name:
                    raise errors.InvalidArgument.field("identifier.name", "must not be empty", "EMPTY_FIELD")
                row = await repo.device_by_name(conn, identifier.name)
            elif which == "alias":
                value = identifiers.canonical_alias(
                    identifier.alias.kind, identifier.alias.value, "identifier.alias.value"
                )
                row = await repo.device_by_aliases(conn, [(identifier.alias.kind, value)])
            elif which == "any":
                row = await self._get_any(conn, identifier.any)
            else:
                raise errors.InvalidArgument.field(
                    "identifier", "must set one of der_id, name, alias, any", "EMPTY_FIELD"
                )
        if row is None:
            raise errors.NotFound("no device has this identifier", "DEVICE_NOT_FOUND")
        state = DeviceState.from_row(row)
        if which == "der_id":
            self.reads.keep(identifier.der_id, state, generation)
        return state

    async def get_by_id(self, der_id: str) -> DeviceState:
        return await self.get(common_pb2.DeviceIdentifier(der_id=der_id))

    async def _get_any(self, conn: Any, text: str) -> Row[Any] | None:
        if not text.strip():
            raise errors.InvalidArgument.field("identifier.any", "must not be empty", "EMPTY_FIELD")
        try:
            identifiers.decode_der_id(text, "identifier.any")
        except errors.InvalidArgument:
            pass
        else:
            row = await repo.device_by_id(conn, text)
            if row is not None:
                return row
        row = await repo.device_by_name(conn, text)
        if row is not None:
            return row
        return await repo.device_by_aliases(conn, identifiers.alias_candidates(text))

    async def list(self, where: repo.ListFilter, page_size: int, page_token: str) -> tuple[list[DeviceState], str]:
        if page_size > MAX_PAGE_SIZE:
            raise errors.InvalidArgument.field("page_size", f"must be at most {MAX_PAGE_SIZE}", "OUT_OF_RANGE")
        if where.kind and where.kind not in common_pb2.DeviceKind.values():
            raise errors.InvalidArgument.field("kind", "must be a known device kind", "INVALID_ENUM")
        if where.status and where.status not in common_pb2.DeviceStatus.values():
            raise errors.InvalidArgument.field("status", "must be a known status", "INVALID_ENUM")
        limit = page_size or DEFAULT_PAGE_SIZE
        after = _decode_page_token(page_token)
        async with self.db.read() as conn:
            rows = await repo.list_devices(conn, where, after, limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        token = _encode_page_token(rows[-1].registered_seq) if more else ""
        return [DeviceState.from_row(r) for r in rows], token

    async def head(self) -> tuple[int, bytes, bytes]:
        """(tree size, Merkle root, head of the hash chain)."""
        async with self.db.read() as conn:
            seq, head_hash = await repo.head(conn)
            root = await repo.root(conn)
        return seq, root, head_hash

    async def inclusion_proof(self, seq: int, der_id: str, version: int, tree_size: int) -> InclusionProof:
        async with self.db.read() as conn:
            head_seq, _ = await repo.head(conn)
            if not seq:
                identifiers.decode_der_id(der_id, "der_id")
                found = await repo.log_seq_of_version(conn, der_id, version, RECORD_KINDS)
                if found is None:
                    raise errors.NotFound(f"no record version {version or 'any'} of {der_id} in the log", "NOT_IN_LOG")
                seq = found
            if seq > head_seq:
                raise errors.NotFound(f"log position {seq} does not exist (head is {head_seq})", "NOT_IN_LOG")
            size = tree_size or head_seq
            if not seq <= size <= head_seq:
                raise errors.InvalidArgument.field(
                    "tree_size",
                    f"must be between the entry's position {seq} and the log size {head_seq}",
                    "OUT_OF_RANGE",
                )
            parts = merkle.path_nodes(seq - 1, size)
            nodes = await repo.tree_nodes(conn, [n for part in parts for n in part] + merkle.peaks(size))
            entry = (await repo.log_after(conn, seq - 1, 1))[0]
        return InclusionProof(
            leaf_index=seq - 1,
            tree_size=size,
            root_hash=merkle.fold([nodes[p] for p in merkle.peaks(size)]),
            audit_path=[merkle.fold([nodes[n] for n in part]) for part in parts],
            entry_bytes=entry.entry_bytes,
            leaf_hash=entry.leaf_hash,
        )

    async def watch(self, after_seq: int, follow: bool) -> AsyncIterator[LogEvent | CaughtUp]:
        """Entries after `after_seq` in order, one CaughtUp marker, then (if following) live ones."""
        async with self.db.read() as conn:
            head_seq, _ = await repo.head(conn)
        if after_seq > head_seq:
            raise errors.FailedPrecondition(
                f"after_seq {after_seq} is beyond the log head {head_seq}; is this the same registry?",
                "CURSOR_AHEAD_OF_LOG",
                metadata={"head_seq": str(head_seq)},
            )
        cursor, caught_up = after_seq, False
        while not self.notifier.closed:
            async with self.db.read() as conn:
                rows = await repo.log_after(conn, cursor, WATCH_BATCH)
            for row in rows:
                yield LogEvent(row.seq, row.entry_bytes, row.leaf_hash)
                cursor = row.seq
            if len(rows) == WATCH_BATCH:
                continue
            if not caught_up:
                caught_up = True
                yield CaughtUp(cursor)
                if not follow:
                    return
            await self.notifier.wait(self.watch_poll_seconds)


def _outside_namespace(caller: Identity, namespace: str, field: str) -> errors.PermissionDenied | None:
    """A vendor acts only on devices under its own namespace; the operator on any."""
    if caller.acts_for(namespace):
        return None
    return errors.PermissionDenied(
        f"{caller.namespace} may not act on devices of vendor namespace {namespace}",
        "CROSS_TENANT",
        violations=[errors.FieldViolation(field, f"belongs to {namespace}")],
    )


def _registration_conflict(
    item: records.ValidatedRecord,
    taken_ids: set[str],
    taken_names: dict[str, str],
    taken_aliases: dict[tuple[int, str], str],
    prefix: str,
) -> errors.OpenVPPError | None:
    rec = f"{prefix}.record"
    if item.der_id in taken_ids:
        return errors.AlreadyExists(
            f"device {item.der_id} is already registered; publish changes with UpdateDevice",
            "DEVICE_EXISTS",
            violations=[errors.FieldViolation(f"{rec}.public_key", "already registered")],
        )
    if item.name in taken_names:
        return errors.AlreadyExists(
            f"name {item.name} belongs to another device",
            "NAME_TAKEN",
            violations=[errors.FieldViolation(f"{rec}.name", "already in use")],
        )
    for i, alias in enumerate(item.aliases):
        if (alias.kind, alias.value) in taken_aliases:
            kind = common_pb2.AliasKind.Name(alias.kind)  # type: ignore[arg-type]
            return errors.AlreadyExists(
                f"alias {kind}={alias.value} belongs to another device",
                "ALIAS_TAKEN",
                violations=[errors.FieldViolation(f"{rec}.aliases[{i}].value", "already in use")],
            )
    return None


def _version_error(version: int, current: int, rec: str) -> errors.FailedPrecondition | None:
    if version != current + 1:
        reason = "STALE_VERSION" if version <= current else "SKIPPED_VERSION"
        return errors.FailedPrecondition(
            f"{rec}.version is {version}; the next version of this device is {current + 1}",
            reason,
            violations=[errors.FieldViolation(f"{rec}.version", f"must be {current + 1}")],
            metadata={"current_version": str(current)},
        )
    return None


def _device_row(item: records.ValidatedRecord, log_seq: int, now_us: int) -> dict[str, Any]:
    return {
        "der_id": item.der_id,
        "public_key": item.public_key,
        "name": item.name,
        "vendor_namespace": item.record.vendor_namespace,
        "kind": item.record.kind,
        "utility_territory": item.record.location.utility_territory,
        "status": ACTIVE,
        "status_reason": "",
        "version": item.version,
        "record_bytes": item.record_bytes,
        "signature": item.signature,
        "registered_seq": log_seq,
        "log_seq": log_seq,
        "registered_at_us": now_us,
        "updated_at_us": now_us,
    }


def _alias_rows(item: records.ValidatedRecord) -> list[dict[str, Any]]:
    return [
        {"kind": a.kind, "value": a.value, "der_id": item.der_id, "position": i} for i, a in enumerate(item.aliases)
    ]


async def _append(conn: AsyncConnection, log: LogWriter) -> None:
    """Stores the entries a writer made, with the Merkle subtrees they complete
    and the new root: O(log N) reads, never the whole log."""
    if not log.rows:
        return
    size = int(log.rows[0]["seq"]) - 1
    old = await repo.tree_nodes(conn, merkle.peaks(size))
    made = merkle.grow(size, old, [row["leaf_hash"] for row in log.rows])
    known = {**old, **made}
    root = merkle.fold([known[p] for p in merkle.peaks(log.seq)])
    await repo.append(conn, log.rows, log.seq, log.head_hash, made, root)


def _encode_page_token(registered_seq: int) -> str:
    return pagination.encode(registered_seq, "devices")


def _decode_page_token(token: str) -> int:
    return pagination.decode(token, "devices")
