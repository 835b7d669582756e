"""Paying bills in stablecoin, exactly once.

Autopay is one SPL `ApproveChecked` the customer signs: their stablecoin
account delegates a capped allowance to OpenVPP's billing authority (the
settlement authority; a token account has one delegate, so one approval
serves every program the customer is billed by). When a bill is issued with
an amount due, OpenVPP reads the account on chain: enough balance and
allowance, and it stores a transfer of exactly the amount due to the
utility's treasury, signed by the delegate, in the outbox (one per bill:
sent once, resent as the same bytes, re-signed only once provably expired);
too little, and the bill is past due with the reason, and nothing is sent.
A transfer that lands failed leaves the bill past due too. The bill's state
changes in the database transaction that records the chain's outcome.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from solders.message import Message
from solders.pubkey import Pubkey
from solders.transaction import Transaction
from sqlalchemy.ext.asyncio import AsyncConnection

from openvpp import errors
from openvpp.billing import books
from openvpp.billing import events as bill_events
from openvpp.billing.bills import Bill, Bills
from openvpp.billing.plans import BillingPlans, PlanRecord
from openvpp.chain import spl
from openvpp.chain.base import Chain, RecentBlockhash
from openvpp.chain.keyring import Keyring
from openvpp.chain.outbox import Handler, Outbox, OutboxState, Outcome
from openvpp.kernel import clock
from openvpp.kernel.clock import Clock
from openvpp.kernel.identity import Identity
from openvpp.kernel.programs import denied
from openvpp.kernel.tenancy import Viewer
from openvpp.settlement.tokens.stablecoin import Stablecoin
from openvpp.store import billing_repo
from openvpp.store.database import Database
from openvpp.v1 import billing_pb2 as pb

log = logging.getLogger(__name__)
APPROVE_KIND = "autopay_approve"
COLLECT_KIND = "bill_collect"
RUNNING_KIND = "bill_collect_running"
# Where an SPL token account keeps its delegate (COption<Pubkey>) and allowance.
_DELEGATE_TAG, _DELEGATE, _DELEGATED = slice(72, 76), slice(76, 108), slice(121, 129)


@dataclass(frozen=True, slots=True)
class AutopayView:
    program_id: str
    account_ref: str
    holder: str
    token_account: str
    delegate: str
    allowance: int
    state: int
    signature: str
    error: str

    @classmethod
    def from_row(cls, row: Any) -> AutopayView:
        return cls(
            row.program_id,
            row.account_ref,
            row.holder,
            row.token_account,
            row.delegate,
            row.allowance,
            row.state,
            row.signature or "",
            row.error,
        )

    def message(self) -> pb.Autopay:
        return pb.Autopay(
            program_id=self.program_id,
            account_ref=self.account_ref,
            holder=self.holder,
            token_account=self.token_account,
            delegate=self.delegate,
            allowance_base_units=self.allowance,
            state=self.state,  # type: ignore[arg-type]
            signature=self.signature,
            error=self.error,
        )


@dataclass(frozen=True, slots=True)
class Funds:
    balance: int
    delegate: str | None
    allowance: int


def funds(data: bytes | None) -> Funds:
    """What a stablecoin token account holds and lets its delegate move."""
    if data is None or len(data) < spl.TOKEN_ACCOUNT_LEN:
        return Funds(0, None, 0)
    delegate = str(Pubkey(data[_DELEGATE])) if int.from_bytes(data[_DELEGATE_TAG], "little") else None
    return Funds(spl.token_amount(data), delegate, int.from_bytes(data[_DELEGATED], "little"))


class Autopay:
    def __init__(
        self,
        db: Database,
        chain: Chain,
        outbox: Outbox,
        keyring: Keyring,
        stablecoin: Stablecoin,
        plans: BillingPlans,
        treasury: Callable[[str], Awaitable[Pubkey | None]],
        clock_us: Clock = clock.system,
    ) -> None:
        # A utility's treasury wallet, where collections go (UseCaseTokens.treasury).
        self.treasury = treasury
        self.db = db
        self.chain = chain
        self.outbox = outbox
        self.keyring = keyring
        self.coin = stablecoin
        self.plans = plans
        self.clock_us = clock_us
        outbox.register(APPROVE_KIND, Handler(self._record_approve))
        outbox.register(COLLECT_KIND, Handler(self._record_collect, self._rebuild_collect))
        outbox.register(RUNNING_KIND, Handler(self._record_running, self._rebuild_running))

    @property
    def delegate(self) -> Pubkey:
        return self.keyring.settlement_authority.pubkey()

    # -- enrolling -----------------------------------------------------------------
    async def prepare(
        self, caller: Identity, program_id: str, account_ref: str, holder: str, allowance: int
    ) -> tuple[AutopayView, bytes, int]:
        """The Approve for the holder to sign, already signed by the fee payer."""
        plan = await self.plans.current(program_id)
        if not caller.acts_for(plan.utility):
            raise denied("set up autopay for its own programs' accounts")
        if allowance <= 0:
            raise errors.InvalidArgument.field("allowance_base_units", "must be positive")
        try:
            wallet = Pubkey.from_string(holder)
        except ValueError:
            raise errors.InvalidArgument.field("holder", "must be a base58 Solana address", "INVALID_ADDRESS") from None
        async with self.db.read() as conn:
            if not await billing_repo.account_devices(conn, program_id, account_ref):
                raise errors.NotFound(f"no account {account_ref} in {program_id}", "ACCOUNT_NOT_FOUND")
        coin, payer = self.coin, self.keyring.fee_payer
        source = spl.ata(wallet, coin.mint, coin.program)
        instructions = [
            spl.create_ata(payer.pubkey(), wallet, coin.mint, coin.program),
            spl.approve(coin.program, source, coin.mint, self.delegate, wallet, allowance, coin.decimals),
        ]
        recent = await self.chain.latest_blockhash()
        message = Message.new_with_blockhash(instructions, payer.pubkey(), recent.blockhash)
        tx = Transaction.new_unsigned(message)
        tx.partial_sign([payer], recent.blockhash)
        now = self.clock_us()
        values = {
            "program_id": program_id,
            "account_ref": account_ref,
            "holder": holder,
            "token_account": str(source),
            "delegate": str(self.delegate),
            "allowance": allowance,
            "message": bytes(message),
            "last_valid_block_height": recent.last_valid_block_height,
            "state": pb.AUTOPAY_STATE_PREPARED,
            "signature": None,
            "error": "",
            "updated_at_us": now,
        }
        async with self.db.write() as conn:
            await billing_repo.put_autopay(conn, values)
            row = await billing_repo.autopay(conn, program_id, account_ref)
        return AutopayView.from_row(row), bytes(tx), recent.last_valid_block_height

    async def submit(self, caller: Identity, program_id: str, account_ref: str, raw: bytes) -> AutopayView:
        plan = await self.plans.current(program_id)
        if not caller.acts_for(plan.utility):
            raise denied("set up autopay for its own programs' accounts")
        async with self.db.read() as conn:
            row = await billing_repo.autopay(conn, program_id, account_ref)
        if row is None:
            raise errors.NotFound(f"no autopay prepared for {account_ref}", "AUTOPAY_NOT_FOUND")
        if row.state != pb.AUTOPAY_STATE_PREPARED:
            return await self._wait(program_id, account_ref, row)
        try:
            tx = Transaction.from_bytes(raw)
        except ValueError:
            raise errors.InvalidArgument.field("transaction", "is not a wire transaction", "MALFORMED") from None
        if bytes(tx.message) != row.message:
            raise errors.InvalidArgument.field(
                "transaction", "is not the prepared transaction (its message differs)", "MESSAGE_CHANGED"
            )
        if not all(tx.verify_with_results()):
            raise errors.InvalidArgument.field(
                "transaction", "is missing the holder's signature or carries an invalid one", "BAD_SIGNATURE"
            )
        ref = f"{row.id}:{tx.signatures[0]}"
        async with self.db.write() as conn:
            if await billing_repo.mark_autopay_submitted(
                conn, program_id, account_ref, str(tx.signatures[0]), self.clock_us()
            ):
                await self.outbox.enqueue(conn, APPROVE_KIND, ref, raw, row.last_valid_block_height)
        async with self.db.read() as conn:
            row = await billing_repo.autopay(conn, program_id, account_ref)
        return await self._wait(program_id, account_ref, row)

    async def _wait(self, program_id: str, account_ref: str, row: Any) -> AutopayView:
        if row.signature:
            found = await self.outbox.find(APPROVE_KIND, f"{row.id}:{row.signature}")
            if found is not None:
                await self.outbox.drive(found)
        return await self.get(Viewer(True), program_id, account_ref)

    async def get(self, viewer: Viewer, program_id: str, account_ref: str) -> AutopayView:
        await self.plans.visible(viewer, program_id)
        async with self.db.read() as conn:
            row = await billing_repo.autopay(conn, program_id, account_ref)
        if row is None:
            raise errors.NotFound(f"no autopay for {account_ref} in {program_id}", "AUTOPAY_NOT_FOUND")
        return AutopayView.from_row(row)

    async def _record_approve(self, conn: AsyncConnection, ref: str, outcome: Outcome) -> None:
        autopay_id = int(ref.split(":")[0])
        state = {
            OutboxState.CONFIRMED: pb.AUTOPAY_STATE_ACTIVE,
            OutboxState.FAILED: pb.AUTOPAY_STATE_FAILED,
            OutboxState.EXPIRED: pb.AUTOPAY_STATE_EXPIRED,
        }[outcome.state]
        await billing_repo.set_autopay_state(conn, autopay_id, state, outcome.error, self.clock_us())

    # -- collecting ---------------------------------------------------------------
    async def collect_due(self) -> list[int]:
        """Starts collecting every issued bill with an amount due, and every
        past-due one whose retry is due, that has an active autopay; marks
        past due what the customer's account cannot cover. Returns the
        outbox ids started, for the caller to drive."""
        async with self.db.read() as conn:
            due = await billing_repo.bills_to_collect(conn, self.clock_us())
        started = []
        for bill in due:
            payer = await self._autopay_of(bill)
            if payer is None:
                continue
            plan = await self.plans.current(bill.program_id)
            if await self.treasury(plan.utility) is None:
                log.warning("no treasury for %s to collect %s's bill into; left issued", plan.utility, bill.account_ref)
                continue
            (account,) = await self.chain.accounts([Pubkey.from_string(payer.token_account)])
            held = funds(None if account is None else bytes(account.data))
            reason = ""
            if held.delegate != str(self.delegate):
                reason = "AUTOPAY_REVOKED: the account no longer delegates to the billing authority"
            elif held.allowance < bill.amount_due:
                reason = f"INSUFFICIENT_ALLOWANCE: {held.allowance} left of the approval, {bill.amount_due} due"
            elif held.balance < bill.amount_due:
                reason = f"INSUFFICIENT_FUNDS: {held.balance} held, {bill.amount_due} due"
            attempt = bill.attempts + 1
            now = self.clock_us()
            if reason:
                async with self.db.write() as conn:
                    if await billing_repo.set_bill_payment(
                        conn,
                        bill.id,
                        bill.state,
                        pb.BILL_STATE_PAST_DUE,
                        None,
                        reason,
                        now,
                        attempted=True,
                        retry_at_us=_retry_at(plan, attempt, now),
                    ):
                        await bill_events.announce(conn, bill_events.PAST_DUE, bill.id, now)
                continue
            # Each attempt is its own outbox work (the first keeps the bill's id
            # as its ref): a retry is a new transfer, started only once the
            # attempt before it is final with nothing moved.
            ref = str(bill.id) if attempt == 1 else f"{bill.id}:{attempt}"
            recent = await self.chain.latest_blockhash()
            raw = await self._build_collect(ref, recent)
            async with self.db.write() as conn:
                if await billing_repo.set_bill_payment(
                    conn, bill.id, bill.state, pb.BILL_STATE_COLLECTING, None, "", now, attempted=True
                ):
                    started.append(
                        await self.outbox.enqueue(conn, COLLECT_KIND, ref, raw, recent.last_valid_block_height)
                    )
        return started

    async def collect_running(self, bills: Bills) -> list[int]:
        """Continuous autopay: for every program that collects open bills, each
        account with an active autopay and nothing in flight has what is due
        and uncollected (at least the plan's threshold) collected now. The
        increment is computed from durable sums, one transfer at a time per
        account, so a crash or a second replica never collects twice."""
        started = []
        async with self.db.read() as conn:
            programs = await billing_repo.billed_programs(conn)
        for program_id in programs:
            plan = await self.plans.current(program_id)
            if plan.collect_threshold <= 0 or await self.treasury(plan.utility) is None:
                continue
            async with self.db.read() as conn:
                accounts = await billing_repo.active_autopays(conn, program_id)
            for account_ref in accounts:
                bill = await bills.bill(Viewer(True), program_id, account_ref)
                if bill.issued or bill.owed.base_units < plan.collect_threshold:
                    continue
                started += await self._collect_increment(bill)
        return started

    async def _collect_increment(self, bill: Bill) -> list[int]:
        async with self.db.read() as conn:
            payer = await billing_repo.autopay(conn, bill.program_id, bill.account_ref)
            _, flying = await billing_repo.collected(
                conn, bill.program_id, bill.account_ref, bill.period.start.isoformat()
            )
        if payer is None or flying:
            return []
        amount = bill.owed.base_units
        (account,) = await self.chain.accounts([Pubkey.from_string(payer.token_account)])
        held = funds(None if account is None else bytes(account.data))
        if held.delegate != str(self.delegate) or min(held.allowance, held.balance) < amount:
            log.info("cannot collect %s of %s's open bill yet: %s", amount, bill.account_ref, held)
            return []
        plan = await self.plans.current(bill.program_id)
        treasury = await self.treasury(plan.utility)
        if treasury is None:
            return []
        # Fetched before the write transaction: the embedded chain records the
        # blockhashes it hands out, which needs the write lock.
        recent = await self.chain.latest_blockhash()
        now = self.clock_us()
        period_start = bill.period.start.isoformat()
        async with self.db.write() as conn:
            await billing_repo.lock_account(conn, bill.program_id, bill.account_ref)
            # Checked again under the lock: another replica may have started a
            # collection, or issued the period meanwhile.
            paid, flying = await billing_repo.collected(conn, bill.program_id, bill.account_ref, period_start)
            issued = await billing_repo.bill(conn, bill.program_id, bill.account_ref, period_start)
            if flying or issued is not None or paid != bill.collected:
                return []
            collection_id = await billing_repo.insert_collection(
                conn,
                {
                    "program_id": bill.program_id,
                    "account_ref": bill.account_ref,
                    "period_start": period_start,
                    "period_end": bill.period.end.isoformat(),
                    "amount": amount,
                    "state": billing_repo.COLLECTION_IN_FLIGHT,
                    "signature": None,
                    "reason": "",
                    "updated_at_us": now,
                },
            )
            # The collection and its signed transfer are stored together: no
            # collection without its transaction, none sent twice.
            raw = self._transfer(
                _running_memo(bill.program_id, bill.account_ref, period_start, collection_id),
                payer.token_account,
                treasury,
                amount,
                recent,
            )
            return [
                await self.outbox.enqueue(conn, RUNNING_KIND, str(collection_id), raw, recent.last_valid_block_height)
            ]

    async def _build_running(self, ref: str, recent: RecentBlockhash) -> bytes:
        async with self.db.read() as conn:
            row = await billing_repo.collection(conn, int(ref))
            payer = await billing_repo.autopay(conn, row.program_id, row.account_ref)
        assert payer is not None
        plan = await self.plans.current(row.program_id)
        treasury = await self.treasury(plan.utility)
        if treasury is None:
            raise errors.FailedPrecondition(f"no treasury for {plan.utility} to collect into", "NO_TREASURY")
        return self._transfer(
            _running_memo(row.program_id, row.account_ref, row.period_start, int(ref)),
            payer.token_account,
            treasury,
            row.amount,
            recent,
        )

    async def _rebuild_running(self, ref: str, recent: RecentBlockhash) -> bytes:
        return await self._build_running(ref, recent)

    async def _record_running(self, conn: AsyncConnection, ref: str, outcome: Outcome) -> None:
        now = self.clock_us()
        if outcome.state is OutboxState.CONFIRMED:
            if await billing_repo.set_collection(
                conn, int(ref), billing_repo.COLLECTION_PAID, outcome.signature, "", now
            ):
                row = await billing_repo.collection(conn, int(ref))
                await books.post_collected(conn, row.program_id, int(ref), row.amount, now)
                await bill_events.announce_collection(conn, int(ref), now)
        else:
            # Nothing moved: the next pass computes the increment again.
            reason = f"PAYMENT_FAILED: {outcome.error or outcome.state.name}"
            await billing_repo.set_collection(
                conn, int(ref), billing_repo.COLLECTION_FAILED, outcome.signature, reason, now
            )

    def _transfer(self, memo: str, source: str, treasury: Pubkey, amount: int, recent: RecentBlockhash) -> bytes:
        coin, fee_payer = self.coin, self.keyring.fee_payer
        destination = spl.ata(treasury, coin.mint, coin.program)
        instructions = [
            spl.memo(memo),
            spl.create_ata(fee_payer.pubkey(), treasury, coin.mint, coin.program),
            spl.transfer(
                coin.program, Pubkey.from_string(source), coin.mint, destination, self.delegate, amount, coin.decimals
            ),
        ]
        return spl.signed(instructions, fee_payer, [self.keyring.settlement_authority], recent.blockhash)

    async def _autopay_of(self, bill: Any) -> Any:
        async with self.db.read() as conn:
            row = await billing_repo.autopay(conn, bill.program_id, bill.account_ref)
        return row if row is not None and row.state == pb.AUTOPAY_STATE_ACTIVE else None

    async def _build_collect(self, ref: str, recent: RecentBlockhash) -> bytes:
        async with self.db.read() as conn:
            bill = await billing_repo.bill_by_id(conn, _bill_id(ref))
            payer = await billing_repo.autopay(conn, bill.program_id, bill.account_ref)
        assert payer is not None  # collection starts only from an active autopay
        plan = await self.plans.current(bill.program_id)
        treasury = await self.treasury(plan.utility)
        if treasury is None:
            raise errors.FailedPrecondition(f"no treasury for {plan.utility} to collect into", "NO_TREASURY")
        return self._transfer(
            f"openvpp/bill/v1 {bill.program_id} {bill.account_ref} {bill.period_start}",
            payer.token_account,
            treasury,
            bill.amount_due,
            recent,
        )

    async def _rebuild_collect(self, ref: str, recent: RecentBlockhash) -> bytes:
        return await self._build_collect(ref, recent)

    async def _record_collect(self, conn: AsyncConnection, ref: str, outcome: Outcome) -> None:
        now, bill_id = self.clock_us(), _bill_id(ref)
        bill = await billing_repo.bill_by_id(conn, bill_id)
        retry_at = None
        if outcome.state is OutboxState.CONFIRMED:
            after, reason, kind = pb.BILL_STATE_PAID, "", bill_events.PAID
        else:
            after, kind = pb.BILL_STATE_PAST_DUE, bill_events.PAST_DUE
            reason = f"PAYMENT_FAILED: {outcome.error or outcome.state.name}"
            plan = await BillingPlans.current_in(conn, bill.program_id)
            retry_at = _retry_at(plan, bill.attempts, now)
        if await billing_repo.set_bill_payment(
            conn,
            bill_id,
            pb.BILL_STATE_COLLECTING,
            after,
            outcome.signature,
            reason,
            now,
            retry_at_us=retry_at,
            method=pb.PAYMENT_METHOD_AUTOPAY if after == pb.BILL_STATE_PAID else 0,
        ):
            if after == pb.BILL_STATE_PAID:
                await books.post_paid(conn, bill.program_id, bill.account_ref, bill.id, bill.amount_due, now)
            await bill_events.announce(conn, kind, bill_id, now)


def _bill_id(ref: str) -> int:
    """A collection's outbox ref: the bill's id, then ":attempt" for retries."""
    return int(ref.split(":", 1)[0])


def _retry_at(plan: PlanRecord, attempts: int, now_us: int) -> int | None:
    """When a bill that failed its `attempts`-th collection is tried again, if the plan allows another."""
    if attempts >= 1 + plan.payment_retries:
        return None
    return now_us + plan.retry_interval_s * 1_000_000


def _running_memo(program_id: str, account_ref: str, period_start: str, collection_id: int) -> str:
    return f"openvpp/bill/v1 {program_id} {account_ref} {period_start} collection {collection_id}"


__all__ = ["APPROVE_KIND", "COLLECT_KIND", "Autopay", "AutopayView", "Funds", "funds"]
