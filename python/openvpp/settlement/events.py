"""The settlement event log that utility backends follow.

Events are written in the same database transaction as the change they
describe and numbered under the head-row lock, so cursors are gapless and
commit in order: a reader that has seen cursor n has seen everything before
it. On PostgreSQL the numbering is a short final step apart from the
writers (see `store.event_repo`), so replicas write in parallel.
Each event is stored once per utility it concerns, as its serialised
message without its cursor and time: those are the row's own columns,
set on the message as a page is read, so writing tens of thousands of
payout events never touches a message after it is built.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence

from sqlalchemy.ext.asyncio import AsyncConnection

from openvpp import errors
from openvpp.kernel.timestamps import from_micros
from openvpp.store import event_repo
from openvpp.store.database import Database
from openvpp.v1 import settlement_pb2 as pb

PAGE = 500
log = logging.getLogger(__name__)


async def append(conn: AsyncConnection, events: Sequence[tuple[str, pb.SettlementEvent]], *, at_us: int) -> None:
    """Appends (utility, event) pairs in order."""
    await append_bodies(conn, [(utility, event.SerializeToString()) for utility, event in events], at_us=at_us)


async def append_bodies(conn: AsyncConnection, bodies: Sequence[tuple[str, bytes]], *, at_us: int) -> None:
    """Appends (utility, serialised event without cursor or time) pairs in order."""
    if bodies:
        await event_repo.append(conn, bodies, at_us)


class EventLog:
    """Reads the log for one viewer (a utility, or None for the operator)."""

    def __init__(self, db: Database, poll_seconds: float = 0.2) -> None:
        self.db = db
        self.poll_seconds = poll_seconds
        self._changed = asyncio.Event()
        self._staged = asyncio.Event()
        self._sequencing: asyncio.Future[None] | None = None

    def notify(self) -> None:
        """Wakes followers and the sequencer in this process at once; others
        find changes by polling."""
        self._changed.set()
        self._staged.set()

    async def sequence(self) -> None:
        """Numbers every event committed so far and not yet numbered (by any
        replica); concurrent callers in this process share one pass."""
        if self.db.is_sqlite:
            return
        if self._sequencing is None or self._sequencing.done():
            self._sequencing = asyncio.ensure_future(self._sequence(wait=True))
        await asyncio.shield(self._sequencing)

    async def _sequence(self, *, wait: bool) -> None:
        async with self.db.read() as conn:
            if not await event_repo.has_staged(conn):
                return
        while True:
            async with self.db.write() as conn:
                numbered = await event_repo.sequence(conn, wait=wait)
            if numbered:
                self._changed.set()
            if numbered < event_repo.SEQUENCE_PAGE:
                return

    async def close(self) -> None:
        """Ends a numbering pass still running for a caller that went away."""
        if self._sequencing is not None and not self._sequencing.done():
            self._sequencing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sequencing

    async def run_sequencer(self, stop: asyncio.Event) -> None:
        """Keeps the log numbered: at once when this process wrote events,
        and every poll interval for those written through other replicas."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._staged.wait(), self.poll_seconds)
            self._staged.clear()
            try:
                await self._sequence(wait=False)
            except Exception:
                log.exception("numbering settlement events failed; retrying")
                await asyncio.sleep(self.poll_seconds)

    async def head(self) -> int:
        await self.sequence()
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
