"""Pay-by-request: a Solana Pay transfer request per issued bill.

The request names the utility's treasury as recipient, the stablecoin, the
exact amount due and a reference key made for this bill alone. The
customer's wallet builds and sends the transfer itself, with the reference
as a read-only account of the transfer instruction (the Solana Pay
convention). Each billing pass asks the chain for transactions naming each
open reference and pays the bill with the first one that moved exactly the
amount due of the stablecoin into the treasury's account without an error:
the bill, the request, the journal and the event change in one database
transaction, so a payment is matched once. While a request is open,
autopay leaves the bill alone, so it is never paid both ways.
"""

from __future__ import annotations

import logging
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import VersionedTransaction

from openvpp import errors
from openvpp.billing import books
from openvpp.billing import events as bill_events
from openvpp.billing.plans import BillingPlans
from openvpp.chain import spl
from openvpp.chain.base import Chain
from openvpp.kernel import clock
from openvpp.kernel.clock import Clock
from openvpp.kernel.identity import Identity
from openvpp.kernel.programs import denied
from openvpp.settlement.tokens.stablecoin import Stablecoin
from openvpp.store import billing_repo
from openvpp.store.database import Database
from openvpp.v1 import billing_pb2 as pb

log = logging.getLogger(__name__)
# SPL Token instruction tags (the same in Token-2022).
_TRANSFER, _TRANSFER_CHECKED = 3, 12
SIGNATURES_PER_REFERENCE = 20
STATES = {
    billing_repo.REQUEST_OPEN: pb.PAYMENT_REQUEST_STATE_OPEN,
    billing_repo.REQUEST_PAID: pb.PAYMENT_REQUEST_STATE_PAID,
    billing_repo.REQUEST_CLOSED: pb.PAYMENT_REQUEST_STATE_CLOSED,
}


@dataclass(frozen=True, slots=True)
class Transfer:
    """What a landed transaction moved of one token into one account, naming one reference."""

    ok: bool
    amount: int


def transfer_url(recipient: str, amount: int, decimals: int, mint: str, reference: str, label: str, memo: str) -> str:
    """A Solana Pay transfer request URL: the amount in whole tokens, as a plain decimal."""
    value = (Decimal(amount) / (Decimal(10) ** decimals)).normalize()
    query = urllib.parse.urlencode(
        {
            "amount": f"{value:f}",
            "spl-token": mint,
            "reference": reference,
            "label": label,
            "message": f"Electricity bill {memo}",
            "memo": memo,
        },
        quote_via=urllib.parse.quote,
    )
    return f"solana:{recipient}?{query}"


def transferred(raw: bytes, program: Pubkey, destination: Pubkey, mint: Pubkey, reference: Pubkey) -> int:
    """The base units moved into `destination` by transfers that name `reference` (0 if none)."""
    tx = VersionedTransaction.from_bytes(raw)
    keys = list(tx.message.account_keys)
    moved = 0
    for ix in tx.message.instructions:
        if ix.program_id_index >= len(keys) or keys[ix.program_id_index] != program:
            continue
        data, accounts = bytes(ix.data), list(ix.accounts)
        if any(i >= len(keys) for i in accounts) or not data:
            continue
        named = [keys[i] for i in accounts]
        if data[0] == _TRANSFER_CHECKED and len(data) >= 10 and len(named) >= 4:
            ok = named[1] == mint and named[2] == destination
        elif data[0] == _TRANSFER and len(data) >= 9 and len(named) >= 3:
            ok = named[1] == destination
        else:
            continue
        if ok and reference in named:
            moved += int.from_bytes(data[1:9], "little")
    return moved


class PaymentRequests:
    def __init__(
        self,
        db: Database,
        chain: Chain,
        stablecoin: Stablecoin,
        plans: BillingPlans,
        treasury: Callable[[str], Awaitable[Pubkey | None]],
        clock_us: Clock = clock.system,
    ) -> None:
        self.db = db
        self.chain = chain
        self.coin = stablecoin
        self.plans = plans
        self.treasury = treasury
        self.clock_us = clock_us

    async def rewatch(self) -> None:
        """After a restart: the chain indexes every open request's reference again."""
        async with self.db.read() as conn:
            for row in await billing_repo.open_payment_requests(conn):
                self.chain.watch(Pubkey.from_string(row.reference))

    async def request(self, caller: Identity, program_id: str, account_ref: str, period: str) -> pb.BillPaymentRequest:
        plan = await self.plans.current(program_id)
        if not caller.acts_for(plan.utility):
            raise denied("request payment of its own programs' bills")
        async with self.db.read() as conn:
            bill = await billing_repo.bill_containing(conn, program_id, account_ref, period)
        if bill is None:
            raise errors.FailedPrecondition(
                f"no issued bill of {account_ref} in {program_id} for {period or 'the current period'}: "
                "a bill is paid by request once it is issued",
                "BILL_NOT_ISSUED",
            )
        async with self.db.read() as conn:
            existing = await billing_repo.payment_request(conn, bill.id)
        if existing is not None:
            return self._message(bill, existing, plan.utility)
        if bill.state not in (pb.BILL_STATE_ISSUED, pb.BILL_STATE_PAST_DUE) or bill.amount_due <= 0:
            state = pb.BillState.Name(bill.state)
            raise errors.FailedPrecondition(
                f"the bill is {state} with {bill.amount_due} due: nothing to request", "NOTHING_TO_REQUEST"
            )
        recipient = await self.treasury(plan.utility)
        if recipient is None:
            raise errors.FailedPrecondition(f"no treasury for {plan.utility} to be paid into", "NO_TREASURY")
        (wallet,) = await self.chain.accounts([recipient])
        if wallet is None:
            raise errors.FailedPrecondition(
                f"the treasury wallet {recipient} has no account on chain: Solana Pay wallets refuse to pay it "
                "until it holds some SOL",
                "RECIPIENT_NOT_FOUND",
            )
        # A key made for this bill alone; only its address is ever used.
        reference = Keypair().pubkey()
        now = self.clock_us()
        async with self.db.write() as conn:
            await billing_repo.lock_account(conn, program_id, account_ref)
            current = await billing_repo.bill_by_id(conn, bill.id)
            if current.state not in (pb.BILL_STATE_ISSUED, pb.BILL_STATE_PAST_DUE):
                raise errors.FailedPrecondition("autopay started collecting the bill meanwhile", "NOTHING_TO_REQUEST")
            await billing_repo.insert_payment_request(
                conn, bill.id, str(reference), str(recipient), current.amount_due, now
            )
            row = await billing_repo.payment_request(conn, bill.id)
        self.chain.watch(reference)
        return self._message(bill, row, plan.utility)

    def _message(self, bill: Any, row: Any, utility: str) -> pb.BillPaymentRequest:
        memo = f"{bill.program_id} {bill.account_ref} {bill.period_start}"
        return pb.BillPaymentRequest(
            program_id=bill.program_id,
            account_ref=bill.account_ref,
            period_start=bill.period_start,
            url=transfer_url(
                row.recipient, row.amount, self.coin.decimals, str(self.coin.mint), row.reference, utility, memo
            ),
            recipient=row.recipient,
            spl_token=str(self.coin.mint),
            amount_base_units=row.amount,
            reference=row.reference,
            state=STATES[row.state],
            signature=row.signature or "",
        )

    async def detect(self) -> int:
        """Pays the bills whose requests have been paid on chain; returns how many."""
        async with self.db.read() as conn:
            open_requests = await billing_repo.open_payment_requests(conn)
        paid = 0
        for row in open_requests:
            reference = Pubkey.from_string(row.reference)
            destination = spl.ata(Pubkey.from_string(row.recipient), self.coin.mint, self.coin.program)
            for signature in reversed(await self.chain.signatures_for_address(reference, SIGNATURES_PER_REFERENCE)):
                if await self._matches(signature, row, reference, destination):
                    paid += await self._pay(row, str(signature))
                    break
        return paid

    async def _matches(self, signature: Signature, row: Any, reference: Pubkey, destination: Pubkey) -> bool:
        record = await self.chain.transaction(signature)
        if record is None or record.error is not None:
            return False
        moved = transferred(record.raw, self.coin.program, destination, self.coin.mint, reference)
        if moved != row.amount:
            log.warning(
                "payment %s names bill %s's reference but moved %s of %s", signature, row.bill_id, moved, row.amount
            )
        return bool(moved == row.amount)

    async def _pay(self, row: Any, signature: str) -> int:
        now = self.clock_us()
        async with self.db.write() as conn:
            bill = await billing_repo.bill_by_id(conn, row.bill_id)
            if not await billing_repo.close_payment_request(
                conn, row.bill_id, billing_repo.REQUEST_PAID, signature, now
            ):
                return 0  # another replica matched it first
            if bill.state not in (pb.BILL_STATE_ISSUED, pb.BILL_STATE_PAST_DUE):
                # Autopay leaves requested bills alone, so this is a second
                # payment of a paid bill: recorded on the request, not the bill.
                log.error("bill %s was already %s when %s paid its request", bill.id, bill.state, signature)
                return 0
            if not await billing_repo.set_bill_payment(
                conn,
                bill.id,
                bill.state,
                pb.BILL_STATE_PAID,
                signature,
                "",
                now,
                method=pb.PAYMENT_METHOD_PAYMENT_REQUEST,
            ):
                raise errors.Aborted(
                    "the bill changed while its payment was matched; the next pass matches it", "BILL_CHANGED"
                )
            await books.post_paid(conn, bill.program_id, bill.account_ref, bill.id, bill.amount_due, now)
            await bill_events.announce(conn, bill_events.PAID, bill.id, now)
        return 1


__all__ = ["PaymentRequests", "transfer_url", "transferred"]
