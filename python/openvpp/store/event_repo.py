"""Storage of the settlement event log: rows numbered by one head row, so
cursors are gapless and a reader that has seen cursor n has seen every
event numbered before it.

On PostgreSQL, writers (ingestion, pricing, payouts, on any replica) only
stage their events, in their own transaction, and never touch the head:
one row taken by every writer until its commit serialised them all. The
staged rows are numbered in a short final step (`sequence`) under the head
lock, by a background pass on each replica and before every read of the
log, so a reader sees every event committed before it asked. Each writer's
events keep their order; events of concurrent writers are ordered as they
are sequenced. SQLite has a single writer already, so there events are
numbered as they are written.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from openvpp.store import schema
from openvpp.store.database import insert_rows

_COLUMNS = ("seq", "utility_namespace", "body", "at_us")
_STAGED = ("utility_namespace", "body", "at_us")
# Staged rows numbered per pass (one short transaction each).
SEQUENCE_PAGE = 5_000


async def append(conn: AsyncConnection, bodies: Sequence[tuple[str, bytes]], at_us: int) -> None:
    """Appends (utility, body) rows in order (staged on PostgreSQL)."""
    if conn.dialect.name != "sqlite":
        await insert_rows(conn, schema.settlement_event_staging, _STAGED, [(u, b, at_us) for u, b in bodies])
        return
    await _number(conn, [(utility, body, at_us) for utility, body in bodies])


async def _number(conn: AsyncConnection, rows: Sequence[tuple[str, bytes, int]]) -> int:
    head_table = schema.settlement_event_head
    head = (await conn.execute(select(head_table.c.seq).where(head_table.c.id == 1).with_for_update())).scalar_one()
    numbered = [(head + i, utility, body, at_us) for i, (utility, body, at_us) in enumerate(rows, 1)]
    await insert_rows(conn, schema.settlement_events, _COLUMNS, numbered)
    await conn.execute(update(head_table).where(head_table.c.id == 1).values(seq=head + len(numbered)))
    return int(head + len(numbered))


async def has_staged(conn: AsyncConnection) -> bool:
    table = schema.settlement_event_staging
    return (await conn.execute(select(table.c.id).limit(1))).first() is not None


async def sequence(conn: AsyncConnection, *, wait: bool = True) -> int:
    """Numbers up to SEQUENCE_PAGE staged rows in staging order; how many.
    `wait=False` (the background pass) gives way when another replica is
    numbering: that pass numbers these rows too."""
    head_table, staged = schema.settlement_event_head, schema.settlement_event_staging
    # The head lock first: sequencers on other replicas wait here, then see
    # what this one numbered and removed.
    locked = await conn.execute(
        select(head_table.c.seq).where(head_table.c.id == 1).with_for_update(skip_locked=not wait)
    )
    if locked.first() is None:
        return 0
    rows = (
        await conn.execute(
            select(staged.c.id, staged.c.utility_namespace, staged.c.body, staged.c.at_us)
            .order_by(staged.c.id)
            .limit(SEQUENCE_PAGE)
        )
    ).all()
    if not rows:
        return 0
    await _number(conn, [(r.utility_namespace, r.body, r.at_us) for r in rows])
    await conn.execute(delete(staged).where(staged.c.id.in_([r.id for r in rows])))
    return len(rows)


async def head(conn: AsyncConnection) -> int:
    table = schema.settlement_event_head
    return int((await conn.execute(select(table.c.seq).where(table.c.id == 1))).scalar_one())


async def page(conn: AsyncConnection, utility: str | None, after: int, limit: int) -> Sequence[Any]:
    """(seq, body, at_us) after `after` in order; one utility's rows, or all (None)."""
    table = schema.settlement_events
    query = select(table.c.seq, table.c.body, table.c.at_us).where(table.c.seq > after)
    query = query.order_by(table.c.seq).limit(limit)
    if utility is not None:
        query = query.where(table.c.utility_namespace == utility)
    return (await conn.execute(query)).all()
