"""Storage of redemptions (prepared, submitted, final) and the reads that
scope them to a viewer."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, literal, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from openvpp.kernel.tenancy import Viewer
from openvpp.store import schema, scope

_r = schema.redemptions


async def with_token(conn: AsyncConnection, redemption_id: str) -> Any:
    """The redemption with its token's utility and program."""
    t = schema.use_case_tokens
    query = select(_r, t.c.utility_namespace, t.c.program_id).join(t, t.c.mint == _r.c.mint)
    return (await conn.execute(query.where(_r.c.redemption_id == redemption_id))).one()


async def insert_redemption(conn: AsyncConnection, values: dict[str, Any]) -> None:
    await conn.execute(insert(_r).values(**values))


async def may_relay(conn: AsyncConnection, viewer: Viewer, mint: str, holder: str) -> bool:
    """Whether the viewer may act for `holder`'s account in `mint`."""
    found = await conn.execute(select(literal(1)).where(scope.wallet(viewer, literal(mint), literal(holder))))
    return found.first() is not None


async def by_id(conn: AsyncConnection, redemption_id: str) -> Any:
    return (await conn.execute(select(_r).where(_r.c.redemption_id == redemption_id))).one()


async def visible(conn: AsyncConnection, viewer: Viewer, redemption_id: str) -> Any:
    """The redemption if the viewer may see it, else None."""
    query = select(_r).where(_r.c.redemption_id == redemption_id, scope.wallet(viewer, _r.c.mint, _r.c.holder))
    return (await conn.execute(query)).first()


async def mark_submitted(
    conn: AsyncConnection, redemption_id: str, prepared: int, submitted: int, signature: str, at_us: int
) -> bool:
    """PREPARED → SUBMITTED with its signature; False when another submit won."""
    changed = await conn.execute(
        update(_r)
        .where(_r.c.redemption_id == redemption_id, _r.c.state == prepared)
        .values(state=submitted, signature=signature, updated_at_us=at_us)
    )
    return bool(changed.rowcount)


async def set_outcome(conn: AsyncConnection, redemption_id: str, state: int, error: str, at_us: int) -> None:
    await conn.execute(
        update(_r).where(_r.c.redemption_id == redemption_id).values(state=state, error=error, updated_at_us=at_us)
    )
