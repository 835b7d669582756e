"""The reads behind an account statement: one wallet's credits, confirmed
payouts, completed redemptions in one token, and the credits each payout paid."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from openvpp.store import schema


async def account_rows(
    conn: AsyncConnection, wallet: str, mint: str, confirmed: int, completed: int
) -> tuple[Sequence[Any], Sequence[Any], Sequence[Any]]:
    """(credits by id, confirmed payouts by confirmation, completed redemptions by completion)."""
    c, p, r, s = schema.credits, schema.payouts, schema.redemptions, schema.settlements
    credits = (await conn.execute(select(c).where(c.c.wallet == wallet, c.c.mint == mint).order_by(c.c.id))).all()
    paid = (
        await conn.execute(
            select(p, s.c.settlement_id.label("sid"))
            .join(s, s.c.settlement_id == p.c.settlement_id)
            .where(p.c.wallet == wallet, p.c.mint == mint, p.c.state == confirmed)
            .order_by(p.c.updated_at_us, p.c.id)
        )
    ).all()
    redeemed = (
        await conn.execute(
            select(r).where(r.c.holder == wallet, r.c.mint == mint, r.c.state == completed).order_by(r.c.updated_at_us)
        )
    ).all()
    return credits, paid, redeemed


async def program_kind(conn: AsyncConnection, program_id: str) -> int | None:
    ps = schema.program_settlements
    found = (await conn.execute(select(ps.c.kind).where(ps.c.program_id == program_id))).scalar()
    return None if found is None else int(found)


async def credit_ids_of(conn: AsyncConnection, payout_ids: list[int]) -> dict[int, list[int]]:
    c = schema.credits
    found: dict[int, list[int]] = {}
    for i in range(0, len(payout_ids), 500):
        rows = await conn.execute(
            select(c.c.payout_id, c.c.id).where(c.c.payout_id.in_(payout_ids[i : i + 500])).order_by(c.c.id)
        )
        for payout_id, credit_id in rows:
            found.setdefault(int(payout_id), []).append(int(credit_id))
    return found


async def device_vendor(conn: AsyncConnection, der_id: str) -> str | None:
    d = schema.devices
    found = (await conn.execute(select(d.c.vendor_namespace).where(d.c.der_id == der_id))).scalar()
    return None if found is None else str(found)
