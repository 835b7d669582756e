"""Sending exactly once.

A transaction is stored signed before it is first sent, and the same bytes
are resent until the chain shows them landed or their blockhash has
provably expired: the block height is past its last valid height and a
history search finds no signature. Only then is the work signed anew (or,
when a third party signed it, given up as expired). The effect of a landed
transaction is recorded in the same database transaction that marks it
final, so a crash at any point leaves either "still in flight" (and the
restart finishes it) or "final and recorded", never a second payment.

Replicas share the outbox. A row is driven by the replica that holds its
lease: a claim stamps the row with the claimer, an expiry time and a
fencing token larger than any the row had. Re-signing, expiry and
completion are compare-and-set on that token, so two replicas can never
both re-sign a row (two differently signed payments that could both
land), and a replica whose lease was taken over (it paused past the
lease) finds its next write refused and stops driving the row. Leases are
renewed while driven; a replica restarting under the same name takes over
its own rows at once, and every replica sweeps for rows whose lease
lapsed (a replica that died).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from solders.signature import Signature
from solders.transaction import VersionedTransaction
from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from openvpp.chain.base import Chain, ChainError, Commitment, RecentBlockhash, SignatureStatus
from openvpp.kernel import clock
from openvpp.kernel.clock import Clock
from openvpp.store import schema
from openvpp.store.database import Database, execute_rows, insert_rows_with_ids

log = logging.getLogger(__name__)


# getSignatureStatuses answers at most 256 signatures per call.
STATUS_PAGE = 256
# Rows per claim statement (an IN list well inside every backend's parameter limit).
CLAIM_PAGE = 1000
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
    "lease_owner",
    "lease_until_us",
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
        replica: str | None = None,
        lease_seconds: float = 30.0,
    ) -> None:
        self.db = db
        self.clock_us = clock_us
        self.chain = chain
        self.commitment = commitment
        self.poll_seconds = poll_seconds
        self.handlers: dict[str, Handler] = {}
        self._fault = fault or (lambda _step: None)
        # The replica's name is stable across its restarts; the suffix tells
        # this process's claims from those of the process it replaced.
        self.replica = replica or socket.gethostname()
        self.owner = f"{self.replica}:{secrets.token_hex(6)}"
        self.lease_us = int(lease_seconds * 1_000_000)
        # Rows some coroutine of this process drives, with the token it holds.
        self._driving: dict[int, int] = {}

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
                lease_owner=self.owner,
                lease_until_us=now + self.lease_us,
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
        until = now + self.lease_us
        rows = [
            (kind, ref, OutboxState.IN_FLIGHT, raw, sig, last_valid, 1, "", now, now, self.owner, until)
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

    async def recover(self, *, takeover: bool = False) -> list[Outcome]:
        """Finishes what is left in flight and no live replica drives: rows
        whose lease lapsed and, with `takeover` (at start), the rows of this
        replica's previous process. Rows another replica holds are its own."""
        held = await self._claim_free(await self.pending(), takeover=takeover)
        if not held:
            return []
        return await self._drive(sorted(held), held, 120.0)

    async def outcome(self, outbox_id: int) -> Outcome:
        async with self.db.read() as conn:
            row = (await conn.execute(select(schema.chain_outbox).where(schema.chain_outbox.c.id == outbox_id))).one()
        return Outcome(OutboxState(row.state), row.signature or "", row.slot, row.error)

    async def _claim(self, ids: Sequence[int], *, takeover: bool = False) -> dict[int, int]:
        """Claims the rows of `ids` that are in flight and free (never
        leased, lease lapsed, this process's own or, with `takeover`, this
        replica's previous process's); returns {id: fencing token} of those
        now held. The token exceeds every token any row had, so it differs
        from whatever token an earlier holder of a row still carries."""
        table = schema.chain_outbox
        now = self.clock_us()
        free = table.c.lease_owner.is_(None) | (table.c.lease_until_us < now) | (table.c.lease_owner == self.owner)
        if takeover:
            free = free | table.c.lease_owner.startswith(f"{self.replica}:", autoescape=True)
        held: dict[int, int] = {}
        async with self.db.write() as conn:
            token = int((await conn.execute(select(func.coalesce(func.max(table.c.fence), 0)))).scalar_one()) + 1
            for start in range(0, len(ids), CLAIM_PAGE):
                page = list(ids[start : start + CLAIM_PAGE])
                await conn.execute(
                    update(table)
                    .where(table.c.id.in_(page), table.c.state == OutboxState.IN_FLIGHT, table.c.fence < token, free)
                    .values(fence=token, lease_owner=self.owner, lease_until_us=now + self.lease_us)
                )
                found = await conn.execute(select(table.c.id).where(table.c.id.in_(page), table.c.fence == token))
                held.update((i, token) for (i,) in found)
        return held

    async def _renew(self, held: dict[int, int]) -> None:
        """Extends the leases still held; drops from `held` any taken over."""
        table = schema.chain_outbox
        now = self.clock_us()
        ids = list(held)
        async with self.db.write() as conn:
            for start in range(0, len(ids), CLAIM_PAGE):
                page = ids[start : start + CLAIM_PAGE]
                await conn.execute(
                    update(table)
                    .where(table.c.id.in_(page), table.c.lease_owner == self.owner)
                    .values(lease_until_us=now + self.lease_us)
                )
                found = dict(
                    (i, fence)
                    for i, fence, owner in await conn.execute(
                        select(table.c.id, table.c.fence, table.c.lease_owner).where(table.c.id.in_(page))
                    )
                    if owner == self.owner
                )
                for i in page:
                    if found.get(i) != held[i]:
                        log.warning("outbox row %d was taken over by another replica; no longer driving it", i)
                        self._release({i: held.pop(i)})

    def _release(self, held: dict[int, int]) -> None:
        for i, token in held.items():
            if self._driving.get(i) == token:
                del self._driving[i]

    async def drive(self, outbox_id: int, *, timeout_seconds: float = 120.0) -> Outcome:
        (outcome,) = await self.drive_many([outbox_id], timeout_seconds=timeout_seconds)
        return outcome

    async def drive_many(self, ids: Sequence[int], *, timeout_seconds: float = 120.0) -> list[Outcome]:
        """Drives many pieces of work together: one send, one status query and
        one database transaction per round for all of them, which is what lets
        a settlement of thousands of payouts confirm in a few round trips.
        Rows another coroutine or replica drives are waited for."""
        return await self._drive(ids, await self._claim_free(ids), timeout_seconds)

    async def _claim_free(self, ids: Sequence[int], *, takeover: bool = False) -> dict[int, int]:
        """`_claim` of the rows no coroutine of this process drives, marked
        as driven while the claim is under way (so two coroutines never
        claim one row from each other); the rows claimed stay marked."""
        free = [i for i in dict.fromkeys(ids) if i not in self._driving]
        if not free:
            return {}
        self._driving.update(dict.fromkeys(free, 0))
        held: dict[int, int] = {}
        try:
            held = await self._claim(free, takeover=takeover)
        finally:
            for i in free:
                if i in held:
                    self._driving[i] = held[i]
                else:
                    del self._driving[i]
        return held

    async def _drive(self, ids: Sequence[int], held: dict[int, int], timeout_seconds: float) -> list[Outcome]:
        deadline = time.monotonic() + timeout_seconds
        renew_every_us = self.lease_us // 3
        renewed_us = self.clock_us()
        table = schema.chain_outbox
        try:
            while True:
                async with self.db.read() as conn:
                    rows = {r.id: r for r in await conn.execute(select(table).where(table.c.id.in_(list(ids))))}
                unfinished = [rows[i] for i in ids if rows[i].state == OutboxState.IN_FLIGHT]
                if not unfinished:
                    return [
                        Outcome(OutboxState(rows[i].state), rows[i].signature or "", rows[i].slot, rows[i].error)
                        for i in ids
                    ]
                if time.monotonic() > deadline:
                    raise ChainError(f"{len(unfinished)} transactions still in flight after {timeout_seconds:.0f}s")
                lost = {r.id: held.pop(r.id) for r in unfinished if r.id in held and r.fence != held[r.id]}
                if lost:
                    log.warning("%d outbox rows were taken over by another replica; no longer driving them", len(lost))
                    self._release(lost)
                live = [r for r in unfinished if r.id in held]
                now = self.clock_us()
                orphans = [
                    r.id
                    for r in unfinished
                    if r.id not in self._driving
                    and (r.lease_owner in (None, self.owner) or (r.lease_until_us or 0) < now)
                ]
                if orphans:
                    claimed = await self._claim_free(orphans)
                    held.update(claimed)
                if not live:
                    # Another coroutine or replica drives these: wait for it.
                    await asyncio.sleep(self.poll_seconds)
                    continue
                if self.clock_us() - renewed_us > renew_every_us:
                    await self._renew(held)
                    renewed_us = self.clock_us()
                    live = [r for r in live if r.id in held]
                try:
                    await self._step_many(live, held)
                except ChainError as exc:
                    log.warning("chain unavailable while sending %d transactions: %s", len(live), exc)
                    await asyncio.sleep(self.poll_seconds)
        finally:
            self._release(held)

    async def _step_many(self, rows: list[Any], held: dict[int, int]) -> None:
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
                    await self._expired(row, held)
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
            await self._finish_many(final, held)
        if waiting:
            await asyncio.sleep(self.poll_seconds)

    async def _finish_many(self, final: list[tuple[Any, OutboxState, SignatureStatus]], held: dict[int, int]) -> None:
        table = schema.chain_outbox
        follows_on = any(self.handlers[row.kind].follows_on for row, _, _ in final)
        recent = await self.chain.latest_blockhash() if follows_on else None
        async with self.db.write() as conn:
            # Only work still in flight under our claim is finished here: the
            # fencing token is compared with the row locked.
            live = {
                i
                for i, fence in await conn.execute(
                    select(table.c.id, table.c.fence)
                    .where(table.c.id.in_([row.id for row, _, _ in final]), table.c.state == OutboxState.IN_FLIGHT)
                    .with_for_update()
                )
                if held.get(i) == fence
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

    async def _expired(self, row: Any, held: dict[int, int]) -> None:
        """Provably never landed: given up (a holder signed it) or signed
        anew, either only while this claim's token is still the row's."""
        table = schema.chain_outbox
        fenced = (table.c.id == row.id, table.c.state == OutboxState.IN_FLIGHT, table.c.fence == held[row.id])
        handler = self.handlers[row.kind]
        if handler.rebuild is None:
            outcome = Outcome(OutboxState.EXPIRED, row.signature, None, "blockhash expired before it landed")
            async with self.db.write() as conn:
                changed = await conn.execute(
                    update(table)
                    .where(*fenced)
                    .values(state=OutboxState.EXPIRED, error=outcome.error, updated_at_us=self.clock_us())
                )
                if changed.rowcount:
                    await handler.record(conn, row.ref, outcome)
            return
        recent = await self.chain.latest_blockhash()
        raw = await handler.rebuild(row.ref, recent)
        async with self.db.write() as conn:
            changed = await conn.execute(
                update(table)
                .where(*fenced, table.c.signature == row.signature)
                .values(
                    raw=raw,
                    signature=signature_of(raw),
                    last_valid_block_height=recent.last_valid_block_height,
                    attempts=row.attempts + 1,
                    updated_at_us=self.clock_us(),
                )
            )
        if changed.rowcount:
            log.info("re-signed %s %s after its blockhash expired unlanded", row.kind, row.ref)
        else:
            # Another replica holds the row now; the bytes signed here are never sent.
            log.warning("outbox row %d was taken over before it could be re-signed; no longer driving it", row.id)
            self._release({row.id: held.pop(row.id)})
