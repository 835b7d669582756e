"""Storage of the web app's sign-in challenges and sessions (hashes only)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from openvpp.store import schema

_c, _s = schema.web_challenges, schema.web_sessions


async def insert_challenge(conn: AsyncConnection, values: dict[str, Any]) -> None:
    await conn.execute(insert(_c).values(**values))


async def use_challenge(conn: AsyncConnection, secret_hash: bytes, kind: str, now_us: int) -> Any:
    """Marks an unused, unexpired challenge used and returns it; None when
    there is none. The conditional update makes a challenge good for one
    sign-in even when two replicas race for it."""
    used = await conn.execute(
        update(_c)
        .where(
            _c.c.secret_hash == secret_hash,
            _c.c.kind == kind,
            _c.c.used_at_us.is_(None),
            _c.c.expires_at_us > now_us,
        )
        .values(used_at_us=now_us)
    )
    if used.rowcount != 1:
        return None
    return (await conn.execute(select(_c).where(_c.c.secret_hash == secret_hash))).one()


async def purge(conn: AsyncConnection, now_us: int) -> None:
    await conn.execute(delete(_c).where(_c.c.expires_at_us <= now_us))
    await conn.execute(delete(_s).where(_s.c.expires_at_us <= now_us))


async def insert_session(conn: AsyncConnection, values: dict[str, Any]) -> None:
    await conn.execute(insert(_s).values(**values))


async def session(conn: AsyncConnection, token_hash: bytes, now_us: int) -> Any:
    query = select(_s).where(_s.c.token_hash == token_hash, _s.c.ended_at_us.is_(None), _s.c.expires_at_us > now_us)
    return (await conn.execute(query)).first()


async def end_session(conn: AsyncConnection, token_hash: bytes, now_us: int) -> None:
    await conn.execute(update(_s).where(_s.c.token_hash == token_hash).values(ended_at_us=now_us))
