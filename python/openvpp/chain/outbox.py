"""Sending exactly once.

A transaction is stored signed before it is first sent, and the same bytes
are resent until the chain shows them landed or their blockhash has
provably expired: the block height is past its last valid height and a
history search finds no signature. Only then is the work signed anew (or,
when a third party signed it, given up as expired). The effect of a landed
transaction is recorded in the same database transaction that marks it
final, so a crash at any point leaves either "still in flight" (and the
restart finishes it) or "final and recorded", never a second payment.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from solders.signature import Signature
from solders.transaction import VersionedTransaction
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from openvpp.chain.base import Chain, ChainError, Commitment, RecentBlockhash, SignatureStatus
from openvpp.kernel import clock
from openvpp.kernel.clock import Clock
from openvpp.store import schema
from openvpp.store.database import Database, execute_rows, insert_rows_with_ids

log = logging.getLogger(__name__)


# getSignatureStatuses answers at most 256 signatures per call.
STATUS_PAGE = 256
_ENQUEUED = (
    "kind",
    "ref",
    "state",
    "raw",
    "signature",
    "last_valid_block_height",
    "attempts",
    "error",
    "created_at_us",
    "updated_at_us",
)


class OutboxState(enum.IntEnum):
    IN_FLIGHT = 1
    CONFIRMED = 2
    # Landed with an error: fees were paid, nothing else happened.
    FAILED = 3
    # Expired unlanded and cannot be re-signed by us (a holder signed it).
    EXPIRED = 4


FINAL = (OutboxState.CONFIRMED, OutboxState.FAILED, OutboxState.EXPIRED)


@dataclass(frozen=True, slots=True)
class Outcome:
    state: OutboxState
    signature: str
    slot: int | None
    error: str
    # For a handler that signs follow-on work when recording (see Handler.follows_on).
    recent: RecentBlockhash | None = None


# Signs the work anew against a fresh blockhash; None: it cannot be re-signed.
Builder = Callable[[str, RecentBlockhash], Awaitable[bytes]]
# Records the final outcome inside the transaction that marks it final.
Recorder = Callable[[AsyncConnection, str, Outcome], Awaitable[None]]
ManyRecorder = Callable[[AsyncConnection, list[tuple[str, Outcome]]], Awaitable[None]]
# Test hook: called at each step with its name; raising simulates a crash there.
FaultHook = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class Handler:
    record: Recorder
    rebuild: Builder | None = None
    # Records many outcomes of this kind at once (same contract as `record`).
    record_many: ManyRecorder | None = None
    # Its recorder signs and enqueues the next piece of work (a token's
    # reserve after its mint). The blockhash for it is fetched before the
    # recording transaction opens and handed over in `Outcome.recent`: the
    # embedded chain records each blockhash it hands out, which needs the
    # write lock the recording transaction already holds.
    follows_on: bool = False


def signature_of(raw: bytes) -> str:
    return str(VersionedTransaction.from_bytes(raw).signatures[0])


class Outbox:
    """Drives stored transactions to a final, recorded state."""

    def __init__(
        self,
        db: Database,
        chain: Chain,
        *,
        commitment: Commitment = Commitment.CONFIRMED,
        poll_seconds: float = 0.2,
        fault: FaultHook | None = None,
        clock_us: Clock = clock.system,
    ) -> None:
        self.db = db
        self.clock_us = clock_us
        self.chain = chain
        self.commitment = commitment
        self.poll_seconds = poll_seconds
        self.handlers: dict[str, Handler] = {}
        self._fault = fault or (lambda _step: None)

    def register(self, kind: str, handler: Handler) -> None:
        self.handlers[kind] = handler

    async def enqueue(self, conn: AsyncConnection, kind: str, ref: str, raw: bytes, last_valid: int) -> int:
        """Stores signed work inside the caller's transaction: persisted before anything is sent."""
        if kind not in self.handlers:
            raise ValueError(f"no handler registered for {kind!r}")
        now = self.clock_us()
        result = await conn.execute(
            insert(schema.chain_outbox).values(
                kind=kind,
                ref=ref,
                state=OutboxState.IN_FLIGHT,
                raw=raw,
                signature=signature_of(raw),
                last_valid_block_height=last_valid,
                attempts=1,
                error="",
                created_at_us=now,
                updated_at_us=now,
            )
        )
        return int(result.inserted_primary_key[0])  # type: ignore[index]

    async def enqueue_many(
        self,
        conn: AsyncConnection,
        kind: str,
        work: Sequence[tuple[str, bytes]],
        last_valid: int,
        *,
        signatures: Sequence[str] | None = None,
    ) -> list[int]:
        """`enqueue` for many (ref, signed transaction) pairs in one statement; ids
        in order. `signatures`, when the signer already has them, saves parsing
        every transaction again."""
        if kind not in self.handlers:
            raise ValueError(f"no handler registered for {kind!r}")
        now = self.clock_us()
        sigs = signatures if signatures is not None else [signature_of(raw) for _, raw in work]
        rows = [
            (kind, ref, OutboxState.IN_FLIGHT, raw, sig, last_valid, 1, "", now, now)
            for (ref, raw), sig in zip(work, sigs, strict=True)
        ]
        return await insert_rows_with_ids(conn, schema.chain_outbox, _ENQUEUED, rows)

    async def submit(self, kind: str, ref: str, build: Callable[[RecentBlockhash], Awaitable[bytes]]) -> Outcome:
        """Persists work signed against a fresh blockhash, then drives it to a final state.

        Idempotent per (kind, ref): work already stored is driven (or its
        outcome returned), never signed and sent a second time.
        """
        existing = await self.find(kind, ref)
        if existing is None:
            recent = await self.chain.latest_blockhash()
            raw = await build(recent)
            async with self.db.write() as conn:
                existing = await self.enqueue(conn, kind, ref, raw, recent.last_valid_block_height)
        return await self.drive(existing)

    async def find(self, kind: str, ref: str) -> int | None:
        async with self.db.read() as conn:
            return (
                await conn.execute(
                    select(schema.chain_outbox.c.id).where(
                        schema.chain_outbox.c.kind == kind, schema.chain_outbox.c.ref == ref
                    )
                )
            ).scalar()

    async def pending(self) -> list[int]:
        async with self.db.read() as conn:
            rows = await conn.execute(
                select(schema.chain_outbox.c.id)
                .where(schema.chain_outbox.c.state == OutboxState.IN_FLIGHT)
                .order_by(schema.chain_outbox.c.id)
            )
            return [r.id for r in rows]

    async def recover(self) -> list[Outcome]:
        """Finishes everything left in flight (at start, after a crash)."""
        return [await self.drive(i) for i in await self.pending()]

    async def outcome(self, outbox_id: int) -> Outcome:
        async with self.db.read() as conn:
            row = (await conn.execute(select(schema.chain_outbox).where(schema.chain_outbox.c.id == outbox_id))).one()
        return Outcome(OutboxState(row.state), row.signature or "", row.slot, row.error)

    async def drive(self, outbox_id: int, *, timeout_seconds: float = 120.0) -> Outcome:
        deadline = time.monotonic() + timeout_seconds
        while True:
            async with self.db.read() as conn:
                row = (
                    await conn.execute(select(schema.chain_outbox).where(schema.chain_outbox.c.id == outbox_id))
                ).one()
            if row.state != OutboxState.IN_FLIGHT:
                return Outcome(OutboxState(row.state), row.signature or "", row.slot, row.error)
            if time.monotonic() > deadline:
                raise ChainError(f"transaction {row.signature} still in flight after {timeout_seconds:.0f}s")
            try:
                await self._step(row)
            except ChainError as exc:
                log.warning("chain unavailable while sending %s: %s", row.signature, exc)
                await asyncio.sleep(self.poll_seconds)

    async def drive_many(self, ids: Sequence[int], *, timeout_seconds: float = 120.0) -> list[Outcome]:
        """Drives many pieces of work together: one send, one status query and
        one database transaction per round for all of them, which is what lets
        a settlement of thousands of payouts confirm in a few round trips."""
        deadline = time.monotonic() + timeout_seconds
        table = schema.chain_outbox
        while True:
            async with self.db.read() as conn:
                rows = {r.id: r for r in await conn.execute(select(table).where(table.c.id.in_(list(ids))))}
            live = [rows[i] for i in ids if rows[i].state == OutboxState.IN_FLIGHT]
            if not live:
                return [
                    Outcome(OutboxState(rows[i].state), rows[i].signature or "", rows[i].slot, rows[i].error)
                    for i in ids
                ]
            if time.monotonic() > deadline:
                raise ChainError(f"{len(live)} transactions still in flight after {timeout_seconds:.0f}s")
            try:
                await self._step_many(live)
            except ChainError as exc:
                log.warning("chain unavailable while sending %d transactions: %s", len(live), exc)
                await asyncio.sleep(self.poll_seconds)

    async def _step_many(self, rows: list[Any]) -> None:
        signatures = [Signature.from_string(r.signature) for r in rows]
        self._fault("persisted")
        await self.chain.send([r.raw for r in rows])
        self._fault("sent")
        statuses: list[SignatureStatus | None] = []
        for start in range(0, len(signatures), STATUS_PAGE):
            statuses.extend(await self.chain.signature_statuses(signatures[start : start + STATUS_PAGE]))
        final: list[tuple[Any, OutboxState, SignatureStatus]] = []
        waiting = False
        for row, status in zip(rows, statuses, strict=True):
            if status is None:
                if await self.chain.block_height() <= row.last_valid_block_height:
                    waiting = True
                    continue
                (again,) = await self.chain.signature_statuses([Signature.from_string(row.signature)])
                if again is None:
                    await self._expired(row)
                continue
            self._fault("landed")
            if status.error is not None:
                final.append((row, OutboxState.FAILED, status))
            elif status.commitment >= self.commitment:
                self._fault("confirmed")
                final.append((row, OutboxState.CONFIRMED, status))
            else:
                waiting = True
        if final:
            await self._finish_many(final)
        if waiting:
            await asyncio.sleep(self.poll_seconds)

    async def _finish_many(self, final: list[tuple[Any, OutboxState, SignatureStatus]]) -> None:
        table = schema.chain_outbox
        follows_on = any(self.handlers[row.kind].follows_on for row, _, _ in final)
        recent = await self.chain.latest_blockhash() if follows_on else None
        async with self.db.write() as conn:
            # Only work still in flight is finished here: another driver may have finished some first.
            live = {
                i
                for (i,) in await conn.execute(
                    select(table.c.id)
                    .where(table.c.id.in_([row.id for row, _, _ in final]), table.c.state == OutboxState.IN_FLIGHT)
                    .with_for_update()
                )
            }
            final = [f for f in final if f[0].id in live]
            now = self.clock_us()
            await execute_rows(
                conn,
                "UPDATE chain_outbox SET state = ?, slot = ?, error = ?, updated_at_us = ? WHERE id = ?",
                [(state, status.slot, status.error or "", now, row.id) for row, state, status in final],
            )
            batched: dict[str, list[tuple[str, Outcome]]] = {}
            for row, state, status in final:
                outcome = Outcome(state, row.signature, status.slot, status.error or "", recent)
                handler = self.handlers[row.kind]
                if handler.record_many is not None:
                    batched.setdefault(row.kind, []).append((row.ref, outcome))
                else:
                    await handler.record(conn, row.ref, outcome)
            for kind, outcomes in batched.items():
                record_many = self.handlers[kind].record_many
                assert record_many is not None
                await record_many(conn, outcomes)

    async def _step(self, row: Any) -> None:
        signature = Signature.from_string(row.signature)
        self._fault("persisted")
        (sent,) = await self.chain.send([row.raw])
        if sent.error and not sent.already_processed:
            log.info("chain refused %s for now: %s", signature, sent.error)
        self._fault("sent")
        (status,) = await self.chain.signature_statuses([signature])
        if status is not None:
            self._fault("landed")
            if status.error is not None:
                await self._finish(row, OutboxState.FAILED, status)
                return
            if status.commitment >= self.commitment:
                self._fault("confirmed")
                await self._finish(row, OutboxState.CONFIRMED, status)
                return
            await asyncio.sleep(self.poll_seconds)
            return
        if await self.chain.block_height() <= row.last_valid_block_height:
            await asyncio.sleep(self.poll_seconds)
            return
        # Past its last valid height: one more history search, then it provably never landed.
        (status,) = await self.chain.signature_statuses([signature])
        if status is not None:
            return
        await self._expired(row)

    async def _finish(self, row: Any, state: OutboxState, status: SignatureStatus) -> None:
        handler = self.handlers[row.kind]
        recent = await self.chain.latest_blockhash() if handler.follows_on else None
        outcome = Outcome(state, row.signature, status.slot, status.error or "", recent)
        async with self.db.write() as conn:
            changed = await conn.execute(
                update(schema.chain_outbox)
                .where(
                    schema.chain_outbox.c.id == row.id,
                    schema.chain_outbox.c.state == OutboxState.IN_FLIGHT,
                )
                .values(state=state, slot=status.slot, error=outcome.error, updated_at_us=self.clock_us())
            )
            if changed.rowcount:
                await handler.record(conn, row.ref, outcome)

    async def _expired(self, row: Any) -> None:
        handler = self.handlers[row.kind]
        if handler.rebuild is None:
            outcome = Outcome(OutboxState.EXPIRED, row.signature, None, "blockhash expired before it landed")
            async with self.db.write() as conn:
                await conn.execute(
                    update(schema.chain_outbox)
                    .where(schema.chain_outbox.c.id == row.id)
                    .values(state=OutboxState.EXPIRED, error=outcome.error, updated_at_us=self.clock_us())
                )
                await handler.record(conn, row.ref, outcome)
            return
        recent = await self.chain.latest_blockhash()
        raw = await handler.rebuild(row.ref, recent)
        log.info("re-signed %s %s after its blockhash expired unlanded", row.kind, row.ref)
        async with self.db.write() as conn:
            await conn.execute(
                update(schema.chain_outbox)
                .where(schema.chain_outbox.c.id == row.id)
                .values(
                    raw=raw,
                    signature=signature_of(raw),
                    last_valid_block_height=recent.last_valid_block_height,
                    attempts=row.attempts + 1,
                    updated_at_us=self.clock_us(),
                )
            )
