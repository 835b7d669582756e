"""Storage of the settlement event log: rows under one head row, appended
under its lock so cursors are gapless and commit in order."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from openvpp.store import schema
from openvpp.store.database import insert_rows

_COLUMNS = ("seq", "utility_namespace", "body", "at_us")


async def append(conn: AsyncConnection, bodies: Sequence[tuple[str, bytes]], at_us: int) -> int:
    """Appends (utility, body) rows in order after the head; returns the new head."""
    head_table = schema.settlement_event_head
    head = (await conn.execute(select(head_table.c.seq).where(head_table.c.id == 1).with_for_update())).scalar_one()
    rows = [(head + i, utility, body, at_us) for i, (utility, body) in enumerate(bodies, 1)]
    await insert_rows(conn, schema.settlement_events, _COLUMNS, rows)
    await conn.execute(update(head_table).where(head_table.c.id == 1).values(seq=head + len(rows)))
    return int(head + len(rows))


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
