"""Batch settlement: pending credits are netted per (wallet, token) by the
Rust core, packed into as few signed transactions as fit, stored with
their payouts in one database transaction, then sent exactly once through
the outbox and reconciled.

A credit is claimed by setting its payout in that same transaction, so it
is never in two settlements. A transaction that lands with an error
releases its credits to the next settlement; one that confirms moves them
from pending to paid in the journal in the transaction that marks it
final. Tokens are minted only within each reserve's invariant, counting
what is already in flight; a program whose reserve is short is held.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import uuid
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from opentelemetry import trace
from solders.pubkey import Pubkey
from solders.signature import Signature
from sqlalchemy.ext.asyncio import AsyncConnection

from openvpp import errors, native
from openvpp.chain.base import Chain, RecentBlockhash
from openvpp.chain.keyring import Keyring
from openvpp.chain.outbox import Handler, Outbox, OutboxState, Outcome
from openvpp.kernel import clock, pagination
from openvpp.kernel.clock import Clock
from openvpp.kernel.tenancy import Viewer
from openvpp.kernel.timestamps import from_micros
from openvpp.settlement import events, tracecontext
from openvpp.settlement.ledger import journal
from openvpp.settlement.ledger.journal import PayoutState
from openvpp.settlement.programs import ProgramConfig
from openvpp.settlement.tokens.usecase import UseCaseTokens
from openvpp.store import payout_repo, scope, settlement_repo
from openvpp.store.database import Database
from openvpp.v1 import settlement_pb2 as pb

log = logging.getLogger(__name__)
_tracer = trace.get_tracer("openvpp.settlement")
# On chain, every payout transaction carries "openvpp/settlement/v1 <id>:<index>".
MEMO_PREFIX = "openvpp/settlement/v1"


class SettlementState(enum.IntEnum):
    SENDING = 1
    COMPLETED = 2
    PARTIAL = 3


def key_bytes(text: str) -> bytes:
    return bytes(Pubkey.from_string(text))


@dataclass(frozen=True, slots=True)
class SettlementView:
    settlement_id: str
    state: SettlementState
    transactions: int
    payouts: int
    credits: int
    amount: int
    signatures: tuple[str, ...]
    created_at_us: int
    digest: bytes
    # 0 while any of its transactions is still in flight.
    completed_at_us: int = 0


class _Credit(NamedTuple):
    """A pending credit as settling reads it. Rows are copied into these
    because attribute access on a SQLAlchemy row costs several times as
    much, which at tens of thousands of credits is a visible share of a
    settlement."""

    id: int
    program_id: str
    wallet: str
    mint: str
    amount: int
    trace_parent: str
    known: bool


class _Paid(NamedTuple):
    """A payout as recording its outcome reads it (see `_Credit`)."""

    id: int
    tx_index: int
    wallet: str
    mint: str
    program_id: str
    amount: int
    credits: int
    created_at_us: int


def _included(batch: native.SettlementBatch, chosen: list[_Credit]) -> tuple[list[_Credit], list[int]]:
    """The credits a batch pays, and the netted payment of each."""
    included = native.SettlementVerdict.INCLUDED
    if batch.verdicts.count(included) == len(chosen):
        return chosen, batch.netted_index.tolist()
    kept, where = [], []
    for i, r in enumerate(chosen):
        if batch.verdicts[i] == included:
            kept.append(r)
            where.append(batch.netted_index[i])
        else:
            log.error("credit %d left pending: %s", r.id, batch.verdict(i).name)
    return kept, where


def payout_message(row: Any) -> pb.Payout:
    return pb.Payout(
        payout_id=row.id,
        settlement_id=row.settlement_id,
        wallet=row.wallet,
        mint=row.mint,
        amount_base_units=row.amount,
        state=row.state,
        signature=row.signature or "",
        credits=row.credits,
        created_at=from_micros(row.created_at_us),
    )


class Payouts:
    def __init__(
        self,
        db: Database,
        chain: Chain,
        outbox: Outbox,
        keyring: Keyring,
        tokens: UseCaseTokens,
        *,
        max_credits: int = 200_000,
        batch_payments: bool = True,
        notify: Any = None,
        clock_us: Clock = clock.system,
    ) -> None:
        self.db = db
        self.clock_us = clock_us
        self.chain = chain
        self.outbox = outbox
        self.keyring = keyring
        self.tokens = tokens
        self.max_credits = max_credits
        self.batch_payments = batch_payments
        self.notify = notify or (lambda: None)
        self._lock = asyncio.Lock()
        self._confirming: set[asyncio.Task[None]] = set()
        outbox.register("payout", Handler(self._record, self._rebuild, self._record_many))

    def _params(self, recent: RecentBlockhash, settlement_id: str, first_index: int = 0) -> native.SettlementParams:
        return native.SettlementParams(
            payer=bytes(self.keyring.fee_payer),
            authority=bytes(self.keyring.settlement_authority),
            blockhash=bytes(recent.blockhash),
            memo=f"{MEMO_PREFIX} {settlement_id}".encode(),
            memo_index_base=first_index,
            batch_payments=self.batch_payments,
        )

    async def _mints(self, conn: AsyncConnection, mints: Sequence[str]) -> bytes:
        rows = await payout_repo.mint_decimals(conn, mints)
        return b"".join(
            native.MintPayment(
                key_bytes(r.mint), native.TokenProgram.TOKEN_2022, r.decimals, native.PaymentMode.MINT_TO
            ).pack()
            for r in rows
        )

    # -- settling -------------------------------------------------------------

    async def settle(
        self, programs: Sequence[ProgramConfig], *, strict: bool = False, wait: bool = True
    ) -> SettlementView | None:
        """Pays every pending credit of `programs` whose reserve covers it.

        `strict` (on demand): a short reserve refuses the whole call with
        FAILED_PRECONDITION and changes nothing; otherwise (the cadence) the
        short programs are held and the others paid. `wait=False` (the
        cadence) returns once the transactions are stored and sent, and
        confirms them in the background: the next settlement need not wait
        for this one's confirmations, and counts them as in flight."""
        if not programs:
            return None
        async with self._lock:
            started = self.clock_us()
            recent = await self.chain.latest_blockhash()
            async with self.db.write() as conn:
                prepared = await self._prepare(conn, programs, recent, started, strict=strict)
            if prepared is None:
                return None
            if isinstance(prepared, list):
                # Marked held (visible in the program's status), and nothing paid.
                program, want, room = prepared[0]
                raise errors.FailedPrecondition(
                    f"the reserve of {program.mint} covers {room} more base units but {program.program_id} has "
                    f"{want} pending; fund the reserve",
                    "RESERVE_SHORT",
                    metadata={
                        "program_id": program.program_id,
                        "mint": program.mint,
                        "pending_base_units": str(want),
                        "mintable_base_units": str(room),
                    },
                )
            settlement_id, outbox_ids = prepared
            self.notify()
            if not wait:
                task = asyncio.create_task(self._confirm(outbox_ids))
                self._confirming.add(task)
                task.add_done_callback(self._confirming.discard)
                return await self.get(Viewer(True), settlement_id)
            await self.outbox.drive_many(outbox_ids)
            self.notify()
            return await self.get(Viewer(True), settlement_id)

    async def _confirm(self, outbox_ids: list[int]) -> None:
        """Drives a settlement's transactions to their outcome; whatever is
        still in flight when this fails is finished by outbox recovery."""
        try:
            await self.outbox.drive_many(outbox_ids)
        except Exception:
            log.exception("confirming %d payout transactions failed; recovery will finish them", len(outbox_ids))
        self.notify()

    async def drain(self) -> None:
        """Waits for background confirmations (shutdown, tests)."""
        while self._confirming:
            await asyncio.gather(*list(self._confirming), return_exceptions=True)

    async def _prepare(
        self,
        conn: AsyncConnection,
        programs: Sequence[ProgramConfig],
        recent: RecentBlockhash,
        started: int,
        *,
        strict: bool,
    ) -> tuple[str, list[int]] | list[tuple[ProgramConfig, int, int]] | None:
        # On demand, wait for a program another replica is settling; the
        # cadence leaves it to that replica.
        taken = await settlement_repo.lock_programs(conn, [x.program_id for x in programs], skip_busy=not strict)
        programs = [x for x in programs if x.program_id in taken]
        if not programs:
            return None
        ids = [x.program_id for x in programs]
        rows = list(map(_Credit._make, await payout_repo.pending_credits(conn, ids, self.max_credits)))
        # In flight first, the chain's supply after: a payout confirmed in
        # between is then counted twice (safe) rather than in neither.
        in_flight = await payout_repo.in_flight_by_mint(conn, PayoutState.SENT)
        mintable = {m: (await self.tokens.reserve(m)).mintable for m in {p.mint for p in programs}}
        wanted: dict[str, int] = defaultdict(int)
        for r in rows:
            wanted[r.mint] += r.amount
        holds = []
        for program in programs:
            room = mintable[program.mint] - int(in_flight.get(program.mint, 0))
            if wanted.get(program.mint, 0) > room:
                holds.append((program, wanted[program.mint], max(room, 0)))
        await self._set_holds(conn, programs, holds)
        if holds and strict:
            return holds
        held = {h[0].mint for h in holds}
        chosen = [r for r in rows if r.mint not in held]
        if not chosen:
            return None
        return await self._build_and_store(conn, programs, chosen, recent, started)

    async def _set_holds(
        self, conn: AsyncConnection, programs: Sequence[ProgramConfig], holds: list[tuple[ProgramConfig, int, int]]
    ) -> None:
        held = {h[0].program_id: h for h in holds}
        changes = []
        for program in programs:
            reason = "RESERVE_SHORT" if program.program_id in held else ""
            if reason == program.hold_reason:
                continue
            await payout_repo.set_hold(conn, program.program_id, reason)
            if reason:
                _, want, room = held[program.program_id]
                hold = pb.ProgramHold(
                    program_id=program.program_id,
                    mint=program.mint,
                    reason=reason,
                    pending_base_units=want,
                    mintable_base_units=room,
                )
                changes.append((program.utility, pb.SettlementEvent(program_id=program.program_id, held=hold)))
        await events.append(conn, changes, at_us=self.clock_us())

    async def _build_and_store(
        self,
        conn: AsyncConnection,
        programs: Sequence[ProgramConfig],
        chosen: list[_Credit],
        recent: RecentBlockhash,
        started: int,
    ) -> tuple[str, list[int]]:
        mints = sorted({r.mint for r in chosen})
        mint_keys = {m: key_bytes(m) for m in mints}
        intents = native.pack_intents((key_bytes(r.wallet), mint_keys[r.mint], r.amount, not r.known) for r in chosen)
        parent, links = tracecontext.parented(r.trace_parent for r in chosen)
        with _tracer.start_as_current_span("settlement.settle", context=parent, links=links) as span:
            settlement_id = str(uuid.uuid4())
            batch = native.build_settlement(
                intents, await self._mints(conn, mints), self._params(recent, settlement_id)
            )
            span.set_attribute("openvpp.settlement_id", settlement_id)
            span.set_attribute("openvpp.credits", len(chosen))
            span.set_attribute("openvpp.transactions", len(batch.transactions))
            program_of = {x.mint: x for x in programs}
            netted = batch.netted_fields()
            kept, where = _included(batch, chosen)
            # Each payout's wallet and mint as text, taken from one of its credits rather than re-encoded.
            owner_of = dict(zip(where, kept, strict=True))
            counts = Counter(where)
            # A transfer too large for any transaction pays nobody and gets no payout row.
            live = range(len(netted)) if len(owner_of) == len(netted) else sorted(owner_of)
            now = self.clock_us()
            await payout_repo.insert_settlement(
                conn,
                {
                    "settlement_id": settlement_id,
                    "state": SettlementState.SENDING,
                    "transactions": len(batch.transactions),
                    "payouts": len(live),
                    "credits": len(kept),
                    "amount": sum(netted[k][2] for k in live),
                    "digest": batch.digest,
                    "trace_parent": tracecontext.current(),
                    "created_at_us": started,
                    "updated_at_us": now,
                },
            )
            payout_rows = []
            for k in live:
                owner, (_, _, amount, _, tx_index) = owner_of[k], netted[k]
                payout_rows.append(
                    (
                        settlement_id,
                        tx_index,
                        owner.wallet,
                        owner.mint,
                        program_of[owner.mint].program_id,
                        amount,
                        counts[k],
                        PayoutState.SENT,
                        None,
                        now,
                        now,
                    )
                )
            payout_ids = await payout_repo.insert_payouts(conn, payout_rows)
            payout_of = dict(zip(live, payout_ids, strict=True))
            await payout_repo.claim_credits(
                conn, list(zip(map(payout_of.__getitem__, where), [r.id for r in kept], strict=True))
            )
            outbox_ids = await self.outbox.enqueue_many(
                conn,
                "payout",
                [(f"{settlement_id}:{i}", raw) for i, raw in enumerate(batch.transactions)],
                recent.last_valid_block_height,
                signatures=[str(Signature.from_bytes(sig)) for sig in batch.signatures],
            )
            paid_by: dict[int, list[int]] = defaultdict(list)
            for k, r in zip(where, kept, strict=True):
                paid_by[k].append(r.id)
            # The sent event names every credit it pays, so a backend links readings to signatures exactly.
            bodies = native.encode_payout_events(
                settlement_id,
                [
                    (pid, program_id, wallet, mint, amount, credits, PayoutState.SENT, "", now, paid_by[k])
                    for k, pid, (_, _, wallet, mint, program_id, amount, credits, *_) in zip(
                        live, payout_ids, payout_rows, strict=True
                    )
                ],
            )
            await events.append_bodies(
                conn,
                [(program_of[row[3]].utility, b) for row, b in zip(payout_rows, bodies, strict=True)],
                at_us=now,
            )
        return settlement_id, outbox_ids

    # -- outcomes -------------------------------------------------------------

    async def _record(self, conn: AsyncConnection, ref: str, outcome: Outcome) -> None:
        await self._record_many(conn, [(ref, outcome)])

    async def _record_many(self, conn: AsyncConnection, outcomes: list[tuple[str, Outcome]]) -> None:
        """The outcomes of many payout transactions, set-wise: a few statements
        for all of them instead of a dozen per transaction."""
        by_settlement: dict[str, dict[int, Outcome]] = defaultdict(dict)
        for ref, outcome in outcomes:
            settlement_id, index = ref.rsplit(":", 1)
            by_settlement[settlement_id][int(index)] = outcome
        now = self.clock_us()
        for settlement_id, per_tx in by_settlement.items():
            found = await payout_repo.transaction_payouts(conn, settlement_id, list(per_tx))
            rows = list(map(_Paid._make, found))
            utilities = await payout_repo.program_utilities(conn, {r.program_id for r in rows})
            parent, _ = tracecontext.parented([await payout_repo.trace_parent(conn, settlement_id)])
            for outcome in per_tx.values():
                with _tracer.start_as_current_span("settlement.payout", context=parent) as span:
                    span.set_attribute("solana.signature", outcome.signature)
                    span.set_attribute("openvpp.outcome", outcome.state.name)
            confirmed = {i for i, o in per_tx.items() if o.state is OutboxState.CONFIRMED}
            states = {i: PayoutState.CONFIRMED if i in confirmed else PayoutState.FAILED for i in per_tx}
            await payout_repo.set_payout_outcomes(
                conn, [(states[r.tx_index], per_tx[r.tx_index].signature, now, r.id) for r in rows]
            )
            paid = [r for r in rows if r.tx_index in confirmed]
            failed = [r.id for r in rows if r.tx_index not in confirmed]
            if paid:
                per_signature: dict[int, list[tuple[str, str, int]]] = defaultdict(list)
                for r in paid:
                    per_signature[r.tx_index].append((r.wallet, r.mint, r.amount))
                await journal.post_paid_many(
                    conn, [(per_tx[i].signature, per_signature[i]) for i in sorted(confirmed)], at_us=now
                )
                await payout_repo.remember_accounts(conn, settlement_id, sorted(confirmed))
            if failed:
                await payout_repo.release_credits(conn, failed)
            bodies = native.encode_payout_events(
                settlement_id,
                [
                    (
                        r.id,
                        r.program_id,
                        r.wallet,
                        r.mint,
                        r.amount,
                        r.credits,
                        states[r.tx_index],
                        per_tx[r.tx_index].signature,
                        r.created_at_us,
                        [],
                    )
                    for r in rows
                ],
            )
            await events.append_bodies(
                conn, [(utilities.get(r.program_id, ""), b) for r, b in zip(rows, bodies, strict=True)], at_us=now
            )
            await self._maybe_complete(conn, settlement_id, now)

    async def _maybe_complete(self, conn: AsyncConnection, settlement_id: str, now: int) -> None:
        counts = await payout_repo.state_counts(conn, settlement_id)
        if counts.get(PayoutState.SENT, 0) == 0:
            state = SettlementState.PARTIAL if counts.get(PayoutState.FAILED, 0) else SettlementState.COMPLETED
            await payout_repo.set_settlement_state(conn, settlement_id, state, now)

    async def _rebuild(self, ref: str, recent: RecentBlockhash) -> bytes:
        settlement_id, index = ref.rsplit(":", 1)
        async with self.db.read() as conn:
            rows = await payout_repo.transaction_payouts(conn, settlement_id, [int(index)])
            mints = sorted({r.mint for r in rows})
            known = await payout_repo.known_accounts(conn, mints)
            mint_table = await self._mints(conn, mints)
        intents = b"".join(
            native.PaymentIntent(
                key_bytes(r.wallet), key_bytes(r.mint), r.amount, (r.wallet, r.mint) not in known
            ).pack()
            for r in rows
        )
        batch = native.build_settlement(intents, mint_table, self._params(recent, settlement_id, int(index)))
        if len(batch.transactions) != 1:
            raise RuntimeError(f"payouts of {ref} no longer fit one transaction")
        return batch.transactions[0]

    # -- reading --------------------------------------------------------------

    async def get(self, viewer: Viewer, settlement_id: str) -> SettlementView:
        """The whole settlement for the operator; for anyone else its part:
        the payouts of the caller's programs or to its devices, and only the
        transactions that carry them. A settlement with no such part does
        not exist for that caller."""
        missing = errors.NotFound(f"no settlement {settlement_id}", "SETTLEMENT_NOT_FOUND")
        async with self.db.read() as conn:
            row = await payout_repo.settlement(conn, settlement_id)
            if row is None:
                raise missing
            counts = (row.transactions, row.payouts, row.credits, row.amount)
            tx_indexes = list(range(row.transactions))
            if not viewer.everything:
                mine = await payout_repo.visible_payouts(conn, settlement_id, scope.payouts(viewer))
                if not mine:
                    raise missing
                tx_indexes = sorted({m.tx_index for m in mine})
                counts = (len(tx_indexes), len(mine), sum(m.credits for m in mine), sum(m.amount for m in mine))
            refs = [f"{settlement_id}:{i}" for i in tx_indexes]
            sigs = await payout_repo.payout_signatures(conn, refs)
        return SettlementView(
            settlement_id,
            SettlementState(row.state),
            *counts,
            tuple(sigs.get(r, "") for r in refs),
            row.created_at_us,
            row.digest,
            0 if row.state == SettlementState.SENDING else row.updated_at_us,
        )

    async def list(
        self, viewer: Viewer, wallet: str, mint: str, settlement_id: str, page_size: int, token: str
    ) -> tuple[list[Any], str]:
        """Payouts in id order, only the caller's part (see `scope.payouts`)."""
        if page_size > 1000:
            raise errors.InvalidArgument.field("page_size", "must be at most 1000", "OUT_OF_RANGE")
        after = pagination.decode(token)
        limit = page_size or 100
        async with self.db.read() as conn:
            rows = await payout_repo.list_payouts(
                conn, scope.payouts(viewer), after, limit + 1, wallet=wallet, mint=mint, settlement_id=settlement_id
            )
        return rows[:limit], (pagination.encode(rows[limit - 1].id) if len(rows) > limit else "")
