"""The settlement event log that utility backends follow.

Events are appended in the same database transaction as the change they
describe, under the head-row lock, so cursors are gapless and commit in
order: a reader that has seen cursor n has seen everything before it.
Each event is stored once per utility it concerns, as its serialised
message without its cursor and time: those are the row's own columns,
set on the message as a page is read, so writing tens of thousands of
payout events never touches a message after it is built.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence

from sqlalchemy.ext.asyncio import AsyncConnection

from openvpp import errors
from openvpp.kernel.timestamps import from_micros
from openvpp.store import event_repo
from openvpp.store.database import Database
from openvpp.v1 import settlement_pb2 as pb

PAGE = 500


async def append(conn: AsyncConnection, events: Sequence[tuple[str, pb.SettlementEvent]], *, at_us: int) -> int:
    """Appends (utility, event) pairs in order; returns the new head (or -1 when empty)."""
    return await append_bodies(conn, [(utility, event.SerializeToString()) for utility, event in events], at_us=at_us)


async def append_bodies(conn: AsyncConnection, bodies: Sequence[tuple[str, bytes]], *, at_us: int) -> int:
    """Appends (utility, serialised event without cursor or time) pairs in order."""
    if not bodies:
        return -1
    return await event_repo.append(conn, bodies, at_us)


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
            return await event_repo.head(conn)

    async def page(self, viewer: str | None, after: int, limit: int = PAGE) -> list[pb.SettlementEvent]:
        async with self.db.read() as conn:
            rows = await event_repo.page(conn, viewer, after, limit)
        page = []
        for row in rows:
            event = pb.SettlementEvent.FromString(row.body)
            event.cursor = row.seq
            event.at.CopyFrom(from_micros(row.at_us))
            page.append(event)
        return page

    async def follow(
        self, viewer: str | None, after: int, *, until_caught_up: bool = False
    ) -> AsyncIterator[tuple[list[pb.SettlementEvent], int]]:
        """Pages of events after `after`, then live ones. Each page is read only
        when the previous one has been taken, so a slow consumer holds at most
        one page in memory: gRPC's flow control stops the writer, and the
        writer stops reading."""
        cursor = after
        if after > await self.head():
            # The rule of every stream (WatchRegistry, WatchRoutes): a cursor
            # this log never issued is refused, not silently waited on.
            raise errors.FailedPrecondition(
                f"after_cursor {after} is beyond the settlement event log head; is this the same server?",
                "CURSOR_AHEAD_OF_LOG",
            )
        while True:
            self._changed.clear()
            head = await self.head()
            events = await self.page(viewer, cursor)
            if events:
                cursor = events[-1].cursor
                yield events, head
                continue
            # Nothing of this viewer's up to head: skip the scan next time.
            cursor = max(cursor, head)
            if until_caught_up:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), self.poll_seconds)
