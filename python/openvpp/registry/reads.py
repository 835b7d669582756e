"""Device records as GetDevice reads them by der_id, kept in memory so a
directory lookup costs no database round trip.

Dropped the moment anything could change them: every registry write through
this replica clears the cache as it commits, and every replica follows the
registry log and the route-change log (which carries identifier changes):
one pair of head reads per `recheck_seconds`, paid by whichever call comes
first. So a change made through another replica is served within that
interval. Lookups by name, alias or free text still read the database.

Hand-written for the same reason as the credential cache: the invalidation
rule is the point, and a TTL cache would serve a revoked device's old status.
"""

from __future__ import annotations

import asyncio
from typing import Generic, TypeVar

from openvpp.kernel import clock
from openvpp.kernel.clock import Clock
from openvpp.store import registry_repo, route_log
from openvpp.store.database import Database

T = TypeVar("T")


class DeviceReads(Generic[T]):
    def __init__(self, db: Database, recheck_seconds: float, clock_us: Clock = clock.system, capacity: int = 200_000):
        self.db = db
        self.recheck_us = int(recheck_seconds * clock.MICROS)
        self.clock_us = clock_us
        self.capacity = capacity
        self.generation = 0
        self._held: dict[str, T] = {}
        self._heads = (-1, -1)
        self._checked_us: int | None = None
        self._following: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._held)

    def invalidate(self) -> None:
        self.generation += 1
        self._held.clear()

    async def follow(self) -> None:
        now = self.clock_us()
        if self._checked_us is not None and now - self._checked_us < self.recheck_us:
            return
        if self._following is None or self._following.done():
            self._following = asyncio.ensure_future(self._read_heads(now))
        await asyncio.shield(self._following)

    async def _read_heads(self, now: int) -> None:
        async with self.db.read() as conn:
            heads = ((await registry_repo.head(conn))[0], await route_log.head(conn))
        if heads != self._heads:
            self.invalidate()
            self._heads = heads
        self._checked_us = now

    def get(self, der_id: str) -> T | None:
        return self._held.get(der_id)

    def keep(self, der_id: str, value: T, generation: int) -> None:
        """Caches a read made under `generation`, unless a change came since."""
        if generation == self.generation:
            if len(self._held) >= self.capacity:
                self._held.clear()
            self._held[der_id] = value
