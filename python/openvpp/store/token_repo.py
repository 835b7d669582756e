"""Storage of use-case tokens (one row per Token-2022 mint and its reserve)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from openvpp.store import schema

_t = schema.use_case_tokens


async def token(conn: AsyncConnection, mint: str) -> Any:
    """The token's row, or None."""
    return (await conn.execute(select(_t).where(_t.c.mint == mint))).first()


async def mint_of_symbol(conn: AsyncConnection, program_id: str, symbol: str) -> str | None:
    found = (await conn.execute(select(_t.c.mint).where(_t.c.program_id == program_id, _t.c.symbol == symbol))).first()
    return None if found is None else str(found.mint)


async def insert_token(conn: AsyncConnection, values: dict[str, Any]) -> None:
    await conn.execute(insert(_t).values(**values))


async def set_state(conn: AsyncConnection, mint: str, state: int) -> None:
    await conn.execute(update(_t).where(_t.c.mint == mint).values(state=state))


async def tokens(conn: AsyncConnection, utility: str, program_id: str) -> Sequence[Any]:
    """Tokens in creation order, filtered by any non-empty field."""
    query = select(_t).order_by(_t.c.created_at_us)
    if utility:
        query = query.where(_t.c.utility_namespace == utility)
    if program_id:
        query = query.where(_t.c.program_id == program_id)
    return (await conn.execute(query)).all()
