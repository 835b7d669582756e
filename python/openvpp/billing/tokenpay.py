"""Bills paid with use-case tokens, at their redemption value.

A redemption can pay a bill: the holder burns the fewest tokens worth the
amount due and the token's reserve pays exactly the amount due into the
utility's treasury, in the one transaction the holder signs. Redemptions
(settlement) call this hook at the three moments that matter: choosing the
bill when the redemption is prepared, claiming it (COLLECTING) in the
database transaction that submits it, and paying it, or releasing it, in
the one that records the chain's outcome. So a bill is never paid by tokens
and by anything else, and never twice.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from solders.pubkey import Pubkey
from sqlalchemy.ext.asyncio import AsyncConnection

from openvpp import errors
from openvpp.billing import books
from openvpp.billing import events as bill_events
from openvpp.billing.plans import BillingPlans
from openvpp.kernel.tenancy import Viewer
from openvpp.store import billing_repo
from openvpp.store.database import Database
from openvpp.v1 import billing_pb2 as pb
from openvpp.v1 import settlement_pb2

PAYABLE = (pb.BILL_STATE_ISSUED, pb.BILL_STATE_PAST_DUE)


class TokenPayments:
    def __init__(
        self,
        db: Database,
        plans: BillingPlans,
        treasury: Callable[[str], Awaitable[Pubkey | None]],
        token_utility: Callable[[str], Awaitable[str]],
    ) -> None:
        self.db = db
        self.plans = plans
        self.treasury = treasury
        # The utility that issued a use-case token (UseCaseTokens).
        self.token_utility = token_utility

    async def target(self, viewer: Viewer, mint: str, target: settlement_pb2.BillTarget) -> tuple[int, int, Pubkey]:
        """(bill id, amount due, treasury) of the bill a redemption is to pay."""
        # NOT_FOUND for anyone but the plan's utility and the operator.
        plan = await self.plans.visible(viewer, target.program_id)
        if not plan.accepts_tokens:
            raise errors.FailedPrecondition(
                f"{plan.program_id} does not accept tokens for its bills (accepts_tokens)", "TOKENS_NOT_ACCEPTED"
            )
        if await self.token_utility(mint) != plan.utility:
            raise errors.InvalidArgument.field("mint", f"must be a use-case token of {plan.utility}")
        async with self.db.read() as conn:
            bill = await billing_repo.bill_containing(conn, plan.program_id, target.account_ref, target.period)
            requested = None if bill is None else await billing_repo.payment_request(conn, bill.id)
        if bill is None:
            raise errors.FailedPrecondition(
                f"no issued bill of {target.account_ref} in {plan.program_id} for {target.period or 'now'}",
                "BILL_NOT_ISSUED",
            )
        if bill.state not in PAYABLE or bill.amount_due <= 0 or _open(requested):
            raise errors.FailedPrecondition(
                f"the bill is {pb.BillState.Name(bill.state)} with {bill.amount_due} due"
                + (" and a payment request open" if _open(requested) else ""),
                "NOTHING_TO_PAY",
            )
        treasury = await self.treasury(plan.utility)
        if treasury is None:
            raise errors.FailedPrecondition(f"no treasury for {plan.utility} to be paid into", "NO_TREASURY")
        return bill.id, bill.amount_due, treasury

    @staticmethod
    async def claim(conn: AsyncConnection, bill_id: int, now_us: int) -> None:
        """In the submitting transaction: the bill is COLLECTING, or the submit is refused."""
        bill = await billing_repo.bill_by_id(conn, bill_id)
        requested = await billing_repo.payment_request(conn, bill_id)
        if (
            bill.state not in PAYABLE
            or _open(requested)
            or not await billing_repo.set_bill_payment(
                conn, bill_id, bill.state, pb.BILL_STATE_COLLECTING, None, "", now_us
            )
        ):
            raise errors.FailedPrecondition(
                f"bill {bill.account_ref} {bill.period_start} is being paid otherwise", "NOTHING_TO_PAY"
            )

    @staticmethod
    async def settle(
        conn: AsyncConnection, bill_id: int, completed: bool, signature: str | None, error: str, now_us: int
    ) -> None:
        """In the transaction recording the chain's outcome: paid, or released to be paid otherwise."""
        bill = await billing_repo.bill_by_id(conn, bill_id)
        if completed:
            if await billing_repo.set_bill_payment(
                conn,
                bill_id,
                pb.BILL_STATE_COLLECTING,
                pb.BILL_STATE_PAID,
                signature,
                "",
                now_us,
                method=pb.PAYMENT_METHOD_TOKENS,
            ):
                await books.post_paid(conn, bill.program_id, bill.account_ref, bill_id, bill.amount_due, now_us)
                await bill_events.announce(conn, bill_events.PAID, bill_id, now_us)
        else:
            # Nothing moved: the bill is issued again, to be paid any way.
            await billing_repo.set_bill_payment(
                conn, bill_id, pb.BILL_STATE_COLLECTING, pb.BILL_STATE_ISSUED, None, f"tokens: {error}", now_us
            )


def _open(request: object) -> bool:
    return request is not None and getattr(request, "state", None) == billing_repo.REQUEST_OPEN


__all__ = ["TokenPayments"]
