"""Storage of settlements and payouts: the pending credits a settlement
claims, its payout rows and their outcomes, the wallets whose token accounts
exist, and the reads behind GetSettlement and ListPayouts. Tenant scoping
arrives as a SQL condition from the domain (`store.scope`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, and_, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from openvpp.store import schema
from openvpp.store.database import execute_rows, insert_ignore, insert_rows_with_ids

# Payout rows as `insert_payouts` takes them.
PAYOUT_COLUMNS = (
    "settlement_id",
    "tx_index",
    "wallet",
    "mint",
    "program_id",
    "amount",
    "credits",
    "state",
    "signature",
    "created_at_us",
    "updated_at_us",
)


async def mint_decimals(conn: AsyncConnection, mints: Sequence[str]) -> Sequence[Any]:
    t = schema.use_case_tokens
    return (await conn.execute(select(t.c.mint, t.c.decimals).where(t.c.mint.in_(list(mints))))).all()


async def known_accounts(conn: AsyncConnection, mints: Sequence[str]) -> set[tuple[str, str]]:
    """(wallet, mint) of every token account a payout created or found."""
    t = schema.token_accounts
    return {(r.wallet, r.mint) for r in await conn.execute(select(t).where(t.c.mint.in_(list(mints))))}


async def pending_credits(conn: AsyncConnection, program_ids: Sequence[str], limit: int) -> Sequence[Any]:
    """Unclaimed credits with an amount, oldest first: (id, program_id,
    wallet, mint, amount, trace_parent, known), `known` when the wallet's
    token account exists, so its payout need not create it."""
    c, ta = schema.credits, schema.token_accounts
    query = (
        select(
            c.c.id,
            c.c.program_id,
            c.c.wallet,
            c.c.mint,
            c.c.amount,
            c.c.trace_parent,
            ta.c.wallet.is_not(None).label("known"),
        )
        .select_from(c.outerjoin(ta, and_(ta.c.wallet == c.c.wallet, ta.c.mint == c.c.mint)))
        .where(c.c.payout_id.is_(None), c.c.program_id.in_(list(program_ids)), c.c.amount > 0)
        .order_by(c.c.id)
        .limit(limit)
    )
    return (await conn.execute(query)).all()


async def in_flight_by_mint(conn: AsyncConnection, sent_state: int) -> dict[str, int]:
    p = schema.payouts
    query = select(p.c.mint, func.sum(p.c.amount)).where(p.c.state == sent_state).group_by(p.c.mint)
    return {mint: int(total) for mint, total in (await conn.execute(query)).all()}


async def set_hold(conn: AsyncConnection, program_id: str, reason: str) -> None:
    ps = schema.program_settlements
    await conn.execute(update(ps).where(ps.c.program_id == program_id).values(hold_reason=reason))


async def insert_settlement(conn: AsyncConnection, values: dict[str, Any]) -> None:
    await conn.execute(insert(schema.settlements).values(**values))


async def insert_payouts(conn: AsyncConnection, rows: Sequence[Sequence[Any]]) -> list[int]:
    """Payout rows in `PAYOUT_COLUMNS` order; their ids in order."""
    return await insert_rows_with_ids(conn, schema.payouts, PAYOUT_COLUMNS, rows)


async def claim_credits(conn: AsyncConnection, pairs: Sequence[tuple[int, int]]) -> None:
    """(payout id, credit id): each credit is now that payout's."""
    await execute_rows(conn, "UPDATE credits SET payout_id = ? WHERE id = ?", pairs)


async def release_credits(conn: AsyncConnection, payout_ids: Sequence[int]) -> None:
    """The credits of failed payouts wait for the next settlement."""
    c = schema.credits
    await conn.execute(update(c).where(c.c.payout_id.in_(list(payout_ids))).values(payout_id=None))


async def transaction_payouts(conn: AsyncConnection, settlement_id: str, tx_indexes: Sequence[int]) -> Sequence[Any]:
    p = schema.payouts
    query = select(
        p.c.id,
        p.c.tx_index,
        p.c.wallet,
        p.c.mint,
        p.c.program_id,
        p.c.amount,
        p.c.credits,
        p.c.created_at_us,
    ).where(p.c.settlement_id == settlement_id, p.c.tx_index.in_(list(tx_indexes)))
    return (await conn.execute(query.order_by(p.c.id))).all()


async def program_utilities(conn: AsyncConnection, program_ids: set[str]) -> dict[str, str]:
    ps = schema.program_settlements
    query = select(ps.c.program_id, ps.c.utility_namespace).where(ps.c.program_id.in_(program_ids))
    return dict((await conn.execute(query)).all())


async def trace_parent(conn: AsyncConnection, settlement_id: str) -> str:
    s = schema.settlements
    query = select(s.c.trace_parent).where(s.c.settlement_id == settlement_id)
    return str((await conn.execute(query)).scalar_one())


async def set_payout_outcomes(conn: AsyncConnection, rows: Sequence[tuple[int, str, int, int]]) -> None:
    """(state, signature, updated at, payout id) per payout."""
    await execute_rows(conn, "UPDATE payouts SET state = ?, signature = ?, updated_at_us = ? WHERE id = ?", rows)


async def remember_accounts(conn: AsyncConnection, settlement_id: str, tx_indexes: Sequence[int]) -> None:
    """Every wallet these transactions paid now has its token account."""
    p = schema.payouts
    paid = select(p.c.wallet, p.c.mint).where(p.c.settlement_id == settlement_id, p.c.tx_index.in_(list(tx_indexes)))
    await insert_ignore(conn, schema.token_accounts, ["wallet", "mint"], paid.distinct())


async def state_counts(conn: AsyncConnection, settlement_id: str) -> dict[int, int]:
    p = schema.payouts
    query = select(p.c.state, func.count()).where(p.c.settlement_id == settlement_id).group_by(p.c.state)
    return {int(state): int(n) for state, n in (await conn.execute(query)).all()}


async def set_settlement_state(conn: AsyncConnection, settlement_id: str, state: int, at_us: int) -> None:
    s = schema.settlements
    await conn.execute(update(s).where(s.c.settlement_id == settlement_id).values(state=state, updated_at_us=at_us))


async def settlement(conn: AsyncConnection, settlement_id: str) -> Any:
    s = schema.settlements
    return (await conn.execute(select(s).where(s.c.settlement_id == settlement_id))).first()


async def visible_payouts(conn: AsyncConnection, settlement_id: str, visible: ColumnElement[bool]) -> Sequence[Any]:
    """(tx_index, amount, credits) of the settlement's payouts a viewer may see."""
    p = schema.payouts
    query = select(p.c.tx_index, p.c.amount, p.c.credits).where(p.c.settlement_id == settlement_id, visible)
    return (await conn.execute(query)).all()


async def payout_signatures(conn: AsyncConnection, refs: Sequence[str]) -> dict[str, str]:
    o = schema.chain_outbox
    query = select(o.c.ref, o.c.signature).where(o.c.kind == "payout", o.c.ref.in_(list(refs)))
    return dict((await conn.execute(query)).all())


async def list_payouts(
    conn: AsyncConnection,
    visible: ColumnElement[bool],
    after: int,
    limit: int,
    *,
    wallet: str,
    mint: str,
    settlement_id: str,
) -> list[Any]:
    """Payouts in id order after `after`, filtered by any non-empty field."""
    p = schema.payouts
    query = select(p).where(p.c.id > after, visible).order_by(p.c.id).limit(limit)
    for column, value in ((p.c.wallet, wallet), (p.c.mint, mint), (p.c.settlement_id, settlement_id)):
        if value:
            query = query.where(column == value)
    return list((await conn.execute(query)).all())
