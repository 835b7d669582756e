"""Ingestion of signed meter readings (the v1 72-byte layout).

A batch is verified in one Rust call (signatures, sequence, counters,
bounds, skew, duplicates) against the per-device state held here, and every
reading it accepts is stored as its original signed bytes, hash-chained per
device, with the device state, in one database transaction: a verdict is
only returned once what it accepted is durable.
"""

from __future__ import annotations

import asyncio
import hashlib
import struct
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from solders.pubkey import Pubkey
from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from openvpp import errors, native
from openvpp.integration import ca
from openvpp.settlement import events, tracecontext
from openvpp.store import schema
from openvpp.store.database import Database
from openvpp.v1 import common_pb2, registry_pb2, routing_pb2, settlement_pb2

GENESIS = bytes(32)
_STORED = struct.Struct("<32sQ32s")
ACCEPTING = (native.ReadingVerdict.ACCEPTED, native.ReadingVerdict.SEQ_GAP)
# Verdict code -> 1 when the reading is stored, for bytes.translate.
_KEEP = bytes(1 if code in ACCEPTING else 0 for code in range(256))
# seq, interval_end from a payload (after the 32-byte key).
_FIELDS = struct.Struct("<32xQq")
_COLUMNS = (
    "der_id", "seq", "interval_end", "covered_from", "import_wh", "export_wh", "flags", "missing", "payload",
    "signature", "digest", "chain_hash", "received_at_us", "batch_id",
)  # fmt: skip


def _insert_sql(conn: AsyncConnection) -> str:
    """A plain positional INSERT: executemany with tuples skips per-row
    parameter processing, which at tens of thousands of rows per batch is
    most of the cost of going through the expression layer."""
    marker = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    return f"INSERT INTO readings ({', '.join(_COLUMNS)}) VALUES ({', '.join([marker] * len(_COLUMNS))})"


def chain_hash(previous: bytes, payload: bytes, signature: bytes) -> bytes:
    return hashlib.sha256(previous + payload + signature).digest()


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    """One verdict per reading (ReadingVerdict codes), and the counts."""

    verdicts: bytes
    flags: bytes
    accepted: int

    @property
    def rejected(self) -> int:
        return len(self.verdicts) - self.accepted


@dataclass(frozen=True, slots=True)
class ChainCheck:
    devices: int
    readings: int
    bad_signatures: list[tuple[str, int]]
    broken_links: list[tuple[str, int]]

    @property
    def ok(self) -> bool:
        return not self.bad_signatures and not self.broken_links


class Ingestor:
    def __init__(
        self,
        db: Database,
        *,
        max_batch: int = 20_000,
        max_future_skew_s: int = 300,
        max_age_s: int = 7 * 86_400,
        clock: Callable[[], float] = time.time,
        notify: Callable[[], None] | None = None,
    ) -> None:
        self.db = db
        self.notify = notify
        self.max_batch = max_batch
        self.max_future_skew_s = max_future_skew_s
        self.max_age_s = max_age_s
        self.clock = clock

    def _shape(self, payloads: bytes, signatures: bytes) -> int:
        count, rest = divmod(len(payloads), native.READING_LEN)
        if rest or count == 0:
            raise errors.InvalidArgument.field("payloads", "must be one or more 72-byte v1 readings", "MALFORMED_BATCH")
        if len(signatures) != count * native.SIGNATURE_LEN:
            raise errors.InvalidArgument.field(
                "signatures", f"must be {count} x 64 bytes, one per reading", "MALFORMED_BATCH"
            )
        if count > self.max_batch:
            raise errors.ResourceExhausted(
                f"{count} readings in one batch; at most {self.max_batch}", "BATCH_TOO_LARGE"
            )
        return count

    async def submit(
        self, caller: ca.Identity, payloads: bytes, signatures: bytes, batch_ref: str = ""
    ) -> BatchOutcome:
        self._shape(payloads, signatures)
        lowest = native.reading_keys(payloads)
        # Signatures need no state: they are checked off the event loop and
        # before the write lock, so one batch's verification overlaps
        # another's storage.
        signature_ok = await asyncio.to_thread(native.verify_reading_signatures, payloads, signatures)
        async with self.db.write() as conn:
            states, heads = await self._states(conn, caller, set(lowest))
            stored = await self._stored(conn, lowest, states)
            results = native.apply_reading_rules(
                payloads,
                signature_ok,
                b"".join(s.pack() for s in states.values()),
                stored,
                now=int(self.clock()),
                max_future_skew_s=self.max_future_skew_s,
                max_age_s=self.max_age_s,
            )
            accepted = sum(1 for v in results.verdicts if v in ACCEPTING)
            batch_id = await self._record_batch(conn, caller, batch_ref, results, accepted, states)
            names = {k: str(Pubkey.from_bytes(k)) for k in states}
            await self._store(conn, payloads, signatures, results, heads, batch_id, names)
            await self._save_states(conn, results, heads, states, names)
        if self.notify is not None:
            self.notify()
        return BatchOutcome(results.verdicts, results.flags, accepted)

    async def _record_batch(
        self,
        conn: AsyncConnection,
        caller: ca.Identity,
        batch_ref: str,
        results: native.ReadingResults,
        accepted: int,
        states: dict[bytes, native.DeviceState],
    ) -> int:
        """The batch's row (counts and trace), and its event for every utility
        with a program these devices are enrolled in."""
        rejected = len(results.verdicts) - accepted
        row = await conn.execute(
            insert(schema.reading_batches).values(
                batch_ref=batch_ref[:64], vendor_namespace=caller.namespace, accepted=accepted, rejected=rejected,
                trace_parent=tracecontext.current(), received_at_us=time.time_ns() // 1000,
            )
        )  # fmt: skip
        batch_id = int(row.inserted_primary_key[0])  # type: ignore[index]
        if not states:
            return batch_id
        e = schema.enrollments
        der_ids = [str(Pubkey.from_bytes(k)) for k in states]
        utilities = {
            u for (u,) in await conn.execute(
                select(e.c.utility_namespace).distinct()
                .where(e.c.der_id.in_(der_ids), e.c.status == routing_pb2.ENROLLMENT_STATUS_ACTIVE)
            )
        }  # fmt: skip
        reasons = Counter(native.ReadingVerdict(v).name for v in results.verdicts if v not in ACCEPTING)
        message = settlement_pb2.ReadingsBatchEvent(
            batch_id=batch_ref, vendor_id=caller.namespace, accepted=accepted, rejected=rejected,
            rejected_by_reason=dict(reasons),
        )  # fmt: skip
        await events.append(conn, [(u, settlement_pb2.SettlementEvent(readings=message)) for u in sorted(utilities)])
        return batch_id

    async def _states(
        self, conn: AsyncConnection, caller: ca.Identity, keys: set[bytes]
    ) -> tuple[dict[bytes, native.DeviceState], dict[bytes, tuple[bytes, int, bool]]]:
        ids = {str(Pubkey.from_bytes(k)): k for k in keys}
        query = select(schema.devices).where(schema.devices.c.der_id.in_(list(ids)))
        if caller.role is not ca.Role.OPERATOR:
            # Another vendor's devices look unknown: their existence is not this caller's business.
            query = query.where(schema.devices.c.vendor_namespace == caller.namespace)
        devices = {r.der_id: r for r in await conn.execute(query)}
        kept = {
            r.der_id: r
            for r in await conn.execute(
                select(schema.reading_devices).where(schema.reading_devices.c.der_id.in_(list(devices)))
            )
        }
        states: dict[bytes, native.DeviceState] = {}
        heads: dict[bytes, tuple[bytes, int, bool]] = {}
        for der_id, row in devices.items():
            caps = registry_pb2.DeviceRecord.FromString(row.record_bytes).capabilities
            mine = kept.get(der_id)
            key = ids[der_id]
            states[key] = native.DeviceState(
                key=key,
                active=row.status == common_pb2.DEVICE_STATUS_ACTIVE,
                has_baseline=bool(mine and mine.has_baseline),
                last_seq=mine.last_seq if mine else 0,
                last_interval_end=mine.last_interval_end if mine else 0,
                import_wh=mine.import_wh if mine else 0,
                export_wh=mine.export_wh if mine else 0,
                max_import_w=caps.max_import_w,
                max_export_w=caps.max_export_w,
            )
            heads[key] = (mine.head_hash if mine else GENESIS, mine.stored if mine else 0, mine is not None)
        return states, heads

    async def _stored(
        self, conn: AsyncConnection, lowest: dict[bytes, int], states: dict[bytes, native.DeviceState]
    ) -> bytes:
        """Digests of stored readings this batch may replay (seq not beyond what is kept)."""
        out: list[bytes] = []
        for key, low in lowest.items():
            state = states.get(key)
            if state is None or not state.has_baseline or low > state.last_seq:
                continue
            rows = await conn.execute(
                select(schema.readings.c.seq, schema.readings.c.digest).where(
                    schema.readings.c.der_id == str(Pubkey.from_bytes(key)),
                    schema.readings.c.seq >= low,
                    schema.readings.c.seq <= state.last_seq,
                )
            )
            out.extend(_STORED.pack(key, r.seq, r.digest) for r in rows)
        return b"".join(out)

    async def _store(
        self,
        conn: AsyncConnection,
        payloads: bytes,
        signatures: bytes,
        results: native.ReadingResults,
        heads: dict[bytes, tuple[bytes, int, bool]],
        batch_id: int,
        names: dict[bytes, str],
    ) -> int:
        """Stores the accepted readings as signed bytes with their chain links
        (computed in Rust) in one executemany; updates `heads` in place."""
        keep = results.verdicts.translate(_KEEP)
        kept = [i for i, k in enumerate(keep) if k]
        if not kept:
            return 0
        packed_heads = b"".join(k + heads[k][0] for k in heads)
        digests, links, after = native.chain_readings(payloads, signatures, keep, packed_heads)
        for j in range(0, len(after), 64):
            key = after[j : j + 32]
            _, stored, existed = heads[key]
            heads[key] = (after[j + 32 : j + 64], stored, existed)
        fields = _FIELDS.unpack_from
        now_us = time.time_ns() // 1000
        rows = [
            (names[payloads[i * 72 : i * 72 + 32]], *fields(payloads, i * 72), results.covered_from[i],
             results.import_wh[i], results.export_wh[i], results.flags[i], results.missing[i],
             payloads[i * 72 : i * 72 + 72], signatures[i * 64 : i * 64 + 64], digests[k * 32 : k * 32 + 32],
             links[k * 32 : k * 32 + 32], now_us, batch_id)
            for k, i in enumerate(kept)
        ]  # fmt: skip
        for i in kept:
            key = payloads[i * 72 : i * 72 + 32]
            link, stored, existed = heads[key]
            heads[key] = (link, stored + 1, existed)
        await conn.exec_driver_sql(_insert_sql(conn), rows)
        return len(rows)

    async def _save_states(
        self,
        conn: AsyncConnection,
        results: native.ReadingResults,
        heads: dict[bytes, tuple[bytes, int, bool]],
        before: dict[bytes, native.DeviceState],
        names: dict[bytes, str],
    ) -> None:
        now_us = time.time_ns() // 1000
        updates: list[dict[str, Any]] = []
        inserts: list[dict[str, Any]] = []
        for state in native.DeviceState.unpack_all(results.devices):
            if state == before.get(state.key):
                continue
            head, stored, existed = heads[state.key]
            values = {
                "has_baseline": int(state.has_baseline), "last_seq": state.last_seq,
                "last_interval_end": state.last_interval_end, "import_wh": state.import_wh,
                "export_wh": state.export_wh, "head_hash": head, "stored": stored, "updated_at_us": now_us,
            }  # fmt: skip
            (updates if existed else inserts).append({"key_der_id": names[state.key], **values})
        table = schema.reading_devices
        if updates:
            await conn.execute(
                update(table)
                .where(table.c.der_id == bindparam("key_der_id"))
                .values({c: bindparam(c) for c in updates[0] if c != "key_der_id"}),
                updates,
            )
        if inserts:
            await conn.execute(insert(table), [{"der_id": r.pop("key_der_id"), **r} for r in inserts])

    async def check(self) -> ChainCheck:
        """Re-verifies every stored signature (in Rust batches) and every hash-chain link."""
        bad: list[tuple[str, int]] = []
        broken: list[tuple[str, int]] = []
        devices = total = 0
        async with self.db.read() as conn:
            heads = {r.der_id: r.head_hash for r in await conn.execute(select(schema.reading_devices))}
            for der_id, head in heads.items():
                devices += 1
                rows = (
                    await conn.execute(
                        select(schema.readings.c.seq, schema.readings.c.payload, schema.readings.c.signature,
                               schema.readings.c.chain_hash)
                        .where(schema.readings.c.der_id == der_id)
                        .order_by(schema.readings.c.seq)
                    )
                ).all()  # fmt: skip
                total += len(rows)
                items = [native.SignedItem(r.payload[:32], r.signature, r.payload) for r in rows]
                verdicts = native.verify_ed25519(native.READING_DOMAIN, items)
                bad.extend(
                    (der_id, r.seq)
                    for r, v in zip(rows, verdicts, strict=True)
                    if v is not native.SignatureVerdict.VALID
                )
                link = GENESIS
                for r in rows:
                    link = chain_hash(link, r.payload, r.signature)
                    if link != r.chain_hash:
                        broken.append((der_id, r.seq))
                        link = r.chain_hash
                if link != head and (der_id, rows[-1].seq if rows else 0) not in broken:
                    broken.append((der_id, rows[-1].seq if rows else 0))
        return ChainCheck(devices, total, bad, broken)
