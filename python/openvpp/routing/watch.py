"""WatchRoutes: the route-change log from a cursor, filtered to what the caller may see."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from openvpp import errors
from openvpp.kernel.identity import Identity, Role
from openvpp.registry.log import LogNotifier
from openvpp.store import route_log
from openvpp.store.database import Database

WATCH_BATCH = 500


@dataclass(frozen=True, slots=True)
class CaughtUp:
    head_seq: int


class RouteWatch:
    def __init__(self, db: Database, poll_seconds: float) -> None:
        self.db = db
        self.poll_seconds = poll_seconds
        self.notifier = LogNotifier()
        db.on_commit.append(self.notifier.notify)

    async def watch(self, caller: Identity, after_seq: int, follow: bool) -> AsyncIterator[Any | CaughtUp]:
        """Rows after `after_seq` in order, one CaughtUp, then (if following) live ones.
        Filtering never breaks resumption: the cursor advances past rows the caller cannot see."""
        viewer = None if caller.role is Role.OPERATOR else caller.namespace
        async with self.db.read() as conn:
            head = await route_log.head(conn)
        if after_seq > head:
            raise errors.FailedPrecondition(
                f"after_seq {after_seq} is beyond the route log head {head}",
                "CURSOR_AHEAD_OF_LOG",
                metadata={"head_seq": str(head)},
            )
        cursor, caught_up = after_seq, False
        while not self.notifier.closed:
            async with self.db.read() as conn:
                head = await route_log.head(conn)
                rows = await route_log.after(conn, cursor, WATCH_BATCH, viewer)
            for row in rows:
                yield row
                cursor = row.seq
            if len(rows) == WATCH_BATCH:
                continue
            # Nothing visible between the last row and the head read in the same snapshot.
            cursor = max(cursor, head)
            if not caught_up:
                caught_up = True
                yield CaughtUp(cursor)
                if not follow:
                    return
            await self.notifier.wait(self.poll_seconds)
