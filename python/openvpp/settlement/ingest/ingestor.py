"""Ingestion of signed meter readings (the v1 72-byte layout).

A batch is verified in one Rust call (signatures, sequence, counters,
bounds, skew, duplicates) against the per-device state held here, and every
reading it accepts is stored as its original signed bytes, hash-chained per
device, with the device state, in one database transaction: a verdict is
only returned once what it accepted is durable.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import hashlib
import time
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from opentelemetry import context as otel_context
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from openvpp import errors, native
from openvpp.kernel import clock
from openvpp.kernel.clock import Clock
from openvpp.kernel.identity import Identity, Role
from openvpp.settlement import events, tracecontext
from openvpp.settlement.ingest.device_cache import GENESIS, DeviceCache, Held, StaleState
from openvpp.store import reading_repo
from openvpp.store.database import Database
from openvpp.v1 import settlement_pb2

_STORED = native.STORED
ACCEPTING = (native.ReadingVerdict.ACCEPTED, native.ReadingVerdict.SEQ_GAP)
# The core's verdict codes start at 0 (accepted) while the proto enum keeps 0
# for UNSPECIFIED: a `bytes.translate` table built by name, so a renumbering on
# either side cannot pass silently (test_native_codes checks both sides).
PROTO_VERDICTS = bytes(
    settlement_pb2.ReadingVerdict.Value("READING_VERDICT_" + native.ReadingVerdict(code).name)
    if code in native.ReadingVerdict._value2member_map_
    else settlement_pb2.READING_VERDICT_UNSPECIFIED
    for code in range(256)
)
# A batch whose device states another writer changed is retried from the database this often.
_ATTEMPTS = 3


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


@dataclass(frozen=True, slots=True)
class Verified:
    """A well-formed batch with its signature verdicts (1 byte each) and the
    lowest seq of each device in it."""

    payloads: bytes
    signatures: bytes
    signature_ok: bytes
    lowest: dict[bytes, int]


@dataclass(slots=True)
class _Batch:
    """A verified batch waiting for its turn in a write transaction."""

    caller: Identity
    verified: Verified
    batch_ref: str
    trace: otel_context.Context
    done: asyncio.Future[BatchOutcome]


class Ingestor:
    def __init__(
        self,
        db: Database,
        *,
        max_batch: int = 20_000,
        max_future_skew_s: int = 300,
        max_age_s: int = 7 * 86_400,
        clock_us: Clock = clock.system,
        notify: Callable[[], None] | None = None,
        verify_threads: int = 1,
        max_backlog: int = 100_000,
    ) -> None:
        self.db = db
        # Readings taken in (verifying or queued) and not yet stored; past
        # `max_backlog` a new batch is refused with RetryInfo instead of
        # silently stalling its sender behind flow control.
        self.max_backlog = max_backlog
        self.backlog = 0
        # Readings stored per second, smoothed: what the retry delay is estimated from.
        self._store_rate = 0.0
        # Verification gets a fixed number of threads, each batch on one of
        # them, rather than every core: storing is the serial part of
        # ingestion and must not wait for a core behind the next batches'
        # signatures.
        self._verifiers = ThreadPoolExecutor(verify_threads, thread_name_prefix="openvpp-verify")
        self.notify = notify
        self.max_batch = max_batch
        self.max_future_skew_s = max_future_skew_s
        self.max_age_s = max_age_s
        self.clock_us = clock_us
        self.cache = DeviceCache()
        self._queue: deque[_Batch] = deque()
        self._committer: asyncio.Task[None] | None = None

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

    async def submit(self, caller: Identity, payloads: bytes, signatures: bytes, batch_ref: str = "") -> BatchOutcome:
        verified = await self.verify(payloads, signatures)
        # Shielded: a caller that goes away does not take other callers' batches down with it.
        return await asyncio.shield(self.enqueue(caller, verified, batch_ref))

    def _admit(self, count: int) -> None:
        """Takes `count` readings into the backlog, or refuses the batch when
        the backlog is past its bound (one batch is always admitted into an
        empty backlog, so any batch within max_batch eventually goes through)."""
        if self.backlog and self.backlog + count > self.max_backlog:
            drain = self.backlog / self._store_rate if self._store_rate > 0 else 1.0
            raise errors.ResourceExhausted(
                f"{self.backlog} readings are waiting to be stored (bound {self.max_backlog}); "
                "send this batch again after the retry delay",
                "INGEST_BACKLOG",
                metadata={"backlog_readings": str(self.backlog), "max_backlog_readings": str(self.max_backlog)},
                retry_after_seconds=min(max(drain, 0.05), 30.0),
            )
        self.backlog += count

    def release(self, verified: Verified) -> None:
        """A verified batch that will not be enqueued leaves the backlog."""
        self.backlog -= len(verified.signature_ok)

    async def verify(self, payloads: bytes, signatures: bytes) -> Verified:
        """The stateless half: shape and signatures. It runs off the event loop
        and outside the write transaction, so batches verify while others are
        stored."""
        count = self._shape(payloads, signatures)
        self._admit(count)
        try:
            lowest = native.reading_keys(payloads)
            call = functools.partial(native.verify_reading_signatures, payloads, signatures, parallel=False)
            # The copied context carries the caller's trace into the worker thread.
            signature_ok = await asyncio.get_running_loop().run_in_executor(
                self._verifiers, contextvars.copy_context().run, call
            )
        except BaseException:
            self.backlog -= count
            raise
        return Verified(payloads, signatures, signature_ok, lowest)

    def enqueue(self, caller: Identity, verified: Verified, batch_ref: str = "") -> asyncio.Future[BatchOutcome]:
        """Queues a verified batch for storage; batches are stored in the order queued."""
        loop = asyncio.get_running_loop()
        batch = _Batch(caller, verified, batch_ref, otel_context.get_current(), loop.create_future())
        count = len(verified.signature_ok)

        def stored(_done: asyncio.Future[BatchOutcome]) -> None:
            self.backlog -= count

        batch.done.add_done_callback(stored)
        self._queue.append(batch)
        if self._committer is None or self._committer.done():
            # A context of its own: each batch is stored under its caller's trace (see _commit).
            self._committer = loop.create_task(self._commit_queued(), context=contextvars.Context())
        return batch.done

    async def _commit_queued(self) -> None:
        """Group commit: the batches that queued while the previous
        transaction ran share the next one. Each still gets its own verdicts,
        batch row and trace; together they pay for one commit and write each
        touched index page once."""
        while self._queue:
            group: list[_Batch] = []
            size = 0
            while self._queue and (not group or size + len(self._queue[0].verified.signature_ok) <= self.max_batch * 2):
                group.append(self._queue.popleft())
                size += len(group[-1].verified.signature_ok)
            try:
                if not await self._store_group(group) and len(group) > 1:
                    # One batch's failure must not become its neighbours': each is stored alone.
                    for batch in group:
                        await self._store_group([batch])
            except BaseException:
                # Shutting down: nothing more will be stored, so no caller is left waiting.
                for batch in [*group, *self._queue]:
                    batch.done.cancel()
                self._queue.clear()
                raise

    async def _store_group(self, group: list[_Batch]) -> bool:
        started = time.perf_counter()
        try:
            outcomes = await self._commit(group)
        except Exception as error:
            if len(group) == 1 and not group[0].done.done():
                group[0].done.set_exception(error)
            return False
        readings = sum(len(b.verified.signature_ok) for b in group)
        rate = readings / max(time.perf_counter() - started, 1e-6)
        self._store_rate = rate if self._store_rate == 0 else 0.8 * self._store_rate + 0.2 * rate
        if self.notify is not None:
            self.notify()
        for batch, outcome in zip(group, outcomes, strict=True):
            if not batch.done.done():
                batch.done.set_result(outcome)
        return True

    async def _commit(self, group: list[_Batch]) -> list[BatchOutcome]:
        for attempt in range(_ATTEMPTS):
            overlay: dict[bytes, Held] = {}
            outcomes = []
            try:
                async with self.db.write() as conn:
                    for batch in group:
                        token = otel_context.attach(batch.trace)
                        try:
                            results, accepted, held = await self._apply(conn, batch, overlay)
                        finally:
                            otel_context.detach(token)
                        overlay.update(held)
                        outcomes.append(BatchOutcome(results.verdicts, results.flags, accepted))
                break
            except (StaleState, IntegrityError):
                # Another writer moved these devices on: start over from the database.
                self.cache.forget({k for batch in group for k in batch.verified.lowest})
                if attempt == _ATTEMPTS - 1:
                    raise errors.Aborted(
                        f"these devices' states changed under {_ATTEMPTS} attempts in a row; send the batch again",
                        "CONCURRENT_UPDATE",
                        retry_after_seconds=0.1,
                    ) from None
        self.cache.keep(overlay)
        return outcomes

    async def _apply(
        self, conn: AsyncConnection, batch: _Batch, overlay: dict[bytes, Held]
    ) -> tuple[native.ReadingResults, int, dict[bytes, Held]]:
        """One batch inside the group's transaction; `overlay` holds what the
        batches before it in the group changed."""
        v, caller = batch.verified, batch.caller
        held = await self.cache.load(conn, set(v.lowest))
        if overlay:
            held = {k: overlay.get(k) or h for k, h in held.items()}
        if caller.role is not Role.OPERATOR:
            # Another vendor's devices look unknown: their existence is not this caller's business.
            held = {k: h for k, h in held.items() if h.vendor == caller.namespace}
        devices = list(held.values())
        table = native.DeviceTable(
            b"".join([h.packed for h in devices]),
            b"".join([h.head for h in devices]),
            [h.stored for h in devices],
            bytes([h.existed for h in devices]),
            [h.der_id for h in devices],
            [h.number for h in devices],
        )
        results = native.apply_reading_rules(
            v.payloads,
            v.signature_ok,
            table.packed,
            await self._stored(conn, v.lowest, held),
            now=clock.seconds(self.clock_us),
            max_future_skew_s=self.max_future_skew_s,
            max_age_s=self.max_age_s,
        )
        accepted = results.accepted
        batch_id = await self._record_batch(conn, batch, results, accepted, held)
        changed = await self._store(conn, v, results, table, devices, batch_id)
        return results, accepted, {**held, **changed}

    async def _record_batch(
        self,
        conn: AsyncConnection,
        batch: _Batch,
        results: native.ReadingResults,
        accepted: int,
        held: dict[bytes, Held],
    ) -> int:
        """The batch's row (counts and trace), and its event for every utility
        with a program these devices are enrolled in."""
        rejected = len(results.verdicts) - accepted
        batch_id = await reading_repo.insert_batch(
            conn,
            batch_ref=batch.batch_ref,
            vendor=batch.caller.namespace,
            accepted=accepted,
            rejected=rejected,
            trace_parent=tracecontext.current(),
            received_at_us=self.clock_us(),
        )
        if not held:
            return batch_id
        utilities = {u for h in held.values() for u in h.utilities}
        # Keyed by the API's ReadingVerdict names, as the proto documents.
        reasons = {
            "READING_VERDICT_" + native.ReadingVerdict(code).name: n
            for code, n in Counter(results.verdicts).items()
            if code not in ACCEPTING
        }
        message = settlement_pb2.ReadingsBatchEvent(
            batch_id=batch.batch_ref,
            vendor_id=batch.caller.namespace,
            accepted=accepted,
            rejected=rejected,
            rejected_by_reason=reasons,
        )
        await events.append(
            conn,
            [(u, settlement_pb2.SettlementEvent(readings=message)) for u in sorted(utilities)],
            at_us=self.clock_us(),
        )
        return batch_id

    async def _stored(self, conn: AsyncConnection, lowest: dict[bytes, int], held: dict[bytes, Held]) -> bytes:
        """Digests of stored readings this batch may replay (seq not beyond what is kept)."""
        out: list[bytes] = []
        for key, low in lowest.items():
            h = held.get(key)
            if h is None or not h.has_baseline or low > h.last_seq:
                continue
            rows = await reading_repo.payloads_between(conn, h.number, low, h.last_seq)
            out.extend(_STORED.pack(key, seq, hashlib.sha256(payload).digest()) for seq, payload in rows)
        return b"".join(out)

    async def _store(
        self,
        conn: AsyncConnection,
        verified: Verified,
        results: native.ReadingResults,
        table: native.DeviceTable,
        devices: list[Held],
        batch_id: int,
    ) -> dict[bytes, Held]:
        """Stores the accepted readings as signed bytes with their chain links,
        and writes back every device state the batch changed, each guarded by
        the `stored` count it was read with (see device_cache). The rows come
        whole from the Rust core; each table gets one executemany. Returns
        the changed devices."""
        staged = native.stage_readings(
            verified.payloads, verified.signatures, results, table, batch_id=batch_id, now_us=self.clock_us()
        )
        changed_rows = await reading_repo.store(
            conn, native.READING_ROW, staged.readings, native.STATE_ROW, staged.updates, staged.inserts
        )
        if changed_rows != len(staged.updates):
            raise StaleState(f"{len(staged.updates) - changed_rows} device states changed underneath")
        return {
            packed[:32]: Held(d.vendor, d.der_id, d.number, packed, head, stored, True, d.utilities)
            for i, packed, head, stored in staged.changed
            for d in (devices[i],)
        }

    async def check(self) -> ChainCheck:
        """Re-verifies every stored signature (in Rust batches) and every hash-chain link."""
        bad: list[tuple[str, int]] = []
        broken: list[tuple[str, int]] = []
        devices = total = 0
        async with self.db.read() as conn:
            for der_id, number, head in await reading_repo.chain_heads(conn):
                devices += 1
                rows = await reading_repo.chain(conn, number)
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
