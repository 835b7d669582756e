"""Account statements: one receiving account's history in one token.

Every credit shows the readings, interval, energy, value, share and carried
remainder behind its amount; every confirmed payout its signature and the
credits it paid; every completed redemption what it burned and paid. The
balances before and after the window follow from the same rows, so an
auditor can recompute each payout by hand from the statement alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from solders.pubkey import Pubkey
from sqlalchemy.ext.asyncio import AsyncConnection

from openvpp import errors
from openvpp.kernel.identity import Identity, Role
from openvpp.kernel.tenancy import cross_tenant as denied
from openvpp.kernel.timestamps import from_micros
from openvpp.settlement import money
from openvpp.settlement.ledger.journal import PayoutState
from openvpp.settlement.tokens.redemption import Redemption, RedemptionState
from openvpp.store import statement_repo, token_repo
from openvpp.store.database import Database
from openvpp.v1 import settlement_pb2 as pb

MAX_LINES = 20_000
_FOREVER = 2**62


@dataclass
class _Totals:
    credited: int = 0
    paid: int = 0
    redeemed: int = 0
    carry: Fraction = Fraction(0)

    def message(self) -> pb.StatementBalance:
        return pb.StatementBalance(
            credited_base_units=self.credited,
            paid_base_units=self.paid,
            redeemed_base_units=self.redeemed,
            pending_base_units=self.credited - self.paid,
            held_base_units=self.paid - self.redeemed,
            carry=money.rational(self.carry),
        )


def credit_from_row(row: Any, conv: money.Conversion) -> pb.Credit:
    return pb.Credit(
        credit_id=row.id,
        program_id=row.program_id,
        kind=row.kind,
        der_id=row.der_id,
        party=row.party,
        wallet=row.wallet,
        mint=row.mint,
        amount_base_units=row.amount,
        seq_first=row.seq_first,
        seq_last=row.seq_last,
        energy_wh=row.energy_wh,
        estimated_wh=row.estimated_wh,
        dr_event_id=row.dr_event_id,
        interval_start=from_micros(row.interval_start * 1_000_000),
        interval_end=from_micros(row.interval_end * 1_000_000),
        **money.credit_fields(row, conv),
    )


class Statements:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def get(
        self, caller: Identity, wallet: str, mint: str, from_us: int | None, to_us: int | None
    ) -> pb.GetStatementResponse:
        try:
            Pubkey.from_string(wallet)
        except ValueError:
            raise errors.InvalidArgument.field("wallet", "must be a base58 Solana address", "INVALID_ADDRESS") from None
        lo, hi = from_us if from_us is not None else -_FOREVER, to_us if to_us is not None else _FOREVER
        if hi <= lo:
            raise errors.InvalidArgument.field("to", "must be after from")
        async with self.db.read() as conn:
            token = await token_repo.token(conn, mint)
            if token is None:
                raise errors.NotFound(f"no use-case token {mint}", "TOKEN_NOT_FOUND")
            await _check_tenant(conn, caller, wallet, token)
            return await self._build(conn, wallet, token, lo, hi)

    async def _build(self, conn: AsyncConnection, wallet: str, token: Any, lo: int, hi: int) -> pb.GetStatementResponse:
        mint = token.mint
        credits, paid, redeemed = await statement_repo.account_rows(
            conn, wallet, mint, PayoutState.CONFIRMED, RedemptionState.COMPLETED
        )
        kind = await statement_repo.program_kind(conn, token.program_id)
        coin_decimals = await money.stablecoin_decimals(conn)
        conv = money.conversion(
            kind or pb.CREDIT_KIND_NEM_EXPORT, token.decimals, token.redemption_value, coin_decimals
        )
        inside = [x for x in credits if lo <= x.created_at_us < hi]
        inside_paid = [x for x in paid if lo <= x.updated_at_us < hi]
        inside_redeemed = [x for x in redeemed if lo <= x.updated_at_us < hi]
        if len(inside) + len(inside_paid) + len(inside_redeemed) > MAX_LINES:
            raise errors.ResourceExhausted(
                f"more than {MAX_LINES} lines in this window; ask for a narrower one (from, to)", "STATEMENT_TOO_LONG"
            )
        paid_credits = await statement_repo.credit_ids_of(conn, [x.id for x in inside_paid])
        opening, closing = _Totals(), _Totals()
        for totals, bound in ((opening, lo), (closing, hi)):
            before = [x for x in credits if x.created_at_us < bound]
            totals.credited = sum(x.amount for x in before)
            totals.paid = sum(x.amount for x in paid if x.updated_at_us < bound)
            totals.redeemed = sum(x.amount for x in redeemed if x.updated_at_us < bound)
            if before:
                last = before[-1]
                totals.carry = Fraction(int(last.carry_after), int(last.denominator))
        lines: list[tuple[int, int, int, pb.StatementLine]] = []
        for x in inside:
            line = pb.StatementLine(at=from_micros(x.created_at_us), credit=credit_from_row(x, conv))
            lines.append((x.created_at_us, 0, x.id, line))
        for x in inside_paid:
            payout = pb.Payout(
                payout_id=x.id,
                settlement_id=x.settlement_id,
                wallet=x.wallet,
                mint=x.mint,
                amount_base_units=x.amount,
                state=x.state,
                signature=x.signature or "",
                credits=x.credits,
                created_at=from_micros(x.created_at_us),
                credit_ids=paid_credits.get(x.id, []),
            )
            lines.append((x.updated_at_us, 1, x.id, pb.StatementLine(at=from_micros(x.updated_at_us), payout=payout)))
        for n, x in enumerate(inside_redeemed):
            line = pb.StatementLine(at=from_micros(x.updated_at_us), redemption=Redemption.from_row(x).message())
            lines.append((x.updated_at_us, 2, n, line))
        lines.sort(key=lambda t: t[:3])
        return pb.GetStatementResponse(
            wallet=wallet,
            mint=mint,
            token_decimals=token.decimals,
            redemption_value_base_units=token.redemption_value,
            stablecoin_decimals=coin_decimals,
            opening=opening.message(),
            lines=[t[3] for t in lines],
            closing=closing.message(),
        )


async def _check_tenant(conn: AsyncConnection, caller: Identity, wallet: str, token: Any) -> None:
    """The operator sees any account; a utility its own tokens' accounts; a
    vendor the owner accounts of its own devices."""
    if caller.role is Role.OPERATOR:
        return
    if caller.role is Role.UTILITY and token.utility_namespace == caller.namespace:
        return
    if caller.role is Role.DEVICE_VENDOR and await statement_repo.device_vendor(conn, wallet) == caller.namespace:
        return
    raise denied("read statements of its own tokens or devices")
