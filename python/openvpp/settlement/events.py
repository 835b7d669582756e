"""The settlement event log that utility backends follow.

Events are appended in the same database transaction as the change they
describe, under the head-row lock, so cursors are gapless and commit in
order: a reader that has seen cursor n has seen everything before it.
Each event is stored once per utility it concerns, as its serialised
message, so a page is read with one indexed query and sent as stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Sequence

from google.protobuf import timestamp_pb2
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from openvpp.store import schema
from openvpp.store.database import Database, insert_rows
from openvpp.v1 import settlement_pb2 as pb

PAGE = 500
_COLUMNS = ("seq", "utility_namespace", "body", "at_us")


def timestamp(micros: int) -> timestamp_pb2.Timestamp:
    seconds, rest = divmod(micros, 1_000_000)
    return timestamp_pb2.Timestamp(seconds=seconds, nanos=rest * 1000)


async def append(conn: AsyncConnection, events: Sequence[tuple[str, pb.SettlementEvent]]) -> int:
    """Appends (utility, event) pairs in order; returns the new head (or -1 when empty)."""
    if not events:
        return -1
    head_table = schema.settlement_event_head
    head = (await conn.execute(select(head_table.c.seq).where(head_table.c.id == 1).with_for_update())).scalar_one()
    now = time.time_ns() // 1000
    at = timestamp(now)
    rows: list[tuple[int, str, bytes, int]] = []
    for i, (utility, event) in enumerate(events):
        event.cursor = head + i + 1
        event.at.CopyFrom(at)
        rows.append((event.cursor, utility, event.SerializeToString(), now))
    await insert_rows(conn, schema.settlement_events, _COLUMNS, rows)
    await conn.execute(update(head_table).where(head_table.c.id == 1).values(seq=head + len(rows)))
    return int(head + len(rows))


class EventLog:
    """Reads the log for one viewer (a utility, or None for the operator)."""

    def __init__(self, db: Database, poll_seconds: float = 0.2) -> None:
        self.db = db
        self.poll_seconds = poll_seconds
        self._changed = asyncio.Event()

    def notify(self) -> None:
        """Wakes followers in this process at once; others find changes by polling."""
        self._changed.set()

    async def head(self) -> int:
        async with self.db.read() as conn:
            table = schema.settlement_event_head
            return int((await conn.execute(select(table.c.seq).where(table.c.id == 1))).scalar_one())

    async def page(self, viewer: str | None, after: int, limit: int = PAGE) -> list[bytes]:
        table = schema.settlement_events
        query = select(table.c.body).where(table.c.seq > after).order_by(table.c.seq).limit(limit)
        if viewer is not None:
            query = query.where(table.c.utility_namespace == viewer)
        async with self.db.read() as conn:
            return [r.body for r in await conn.execute(query)]

    async def follow(
        self, viewer: str | None, after: int, *, until_caught_up: bool = False
    ) -> AsyncIterator[tuple[list[pb.SettlementEvent], int]]:
        """Pages of events after `after`, then live ones. Each page is read only
        when the previous one has been taken, so a slow consumer holds at most
        one page in memory: gRPC's flow control stops the writer, and the
        writer stops reading."""
        cursor = after
        while True:
            self._changed.clear()
            head = await self.head()
            bodies = await self.page(viewer, cursor)
            if bodies:
                events = [pb.SettlementEvent.FromString(b) for b in bodies]
                cursor = events[-1].cursor
                yield events, head
                continue
            # Nothing of this viewer's up to head: skip the scan next time.
            cursor = max(cursor, head)
            if until_caught_up:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), self.poll_seconds)
