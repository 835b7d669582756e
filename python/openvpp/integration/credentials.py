"""Per-certificate verdicts of `Partners.authenticate`, kept in memory so an
authenticated call costs no database round trip.

A verdict is dropped the moment anything could change it: a revocation,
suspension or reinstatement through this replica clears the cache as it
commits, and every replica follows the credential change log (one cheap
head read per `recheck_seconds`, whichever call comes first pays it), so a
change made through another replica is honoured within that interval. Only
admissions are cached: a refusal is always read afresh.

Hand-written because the invalidation rule (a change log, a generation that
keeps a lookup that raced a change from caching a stale admission) is the
point; a TTL cache would keep a revoked certificate working until expiry.
"""

from __future__ import annotations

import asyncio

from openvpp.kernel import clock
from openvpp.kernel.clock import Clock
from openvpp.kernel.identity import Identity
from openvpp.store import partner_repo
from openvpp.store.database import Database


class CredentialCache:
    def __init__(self, db: Database, recheck_seconds: float, clock_us: Clock = clock.system) -> None:
        self.db = db
        self.recheck_us = int(recheck_seconds * clock.MICROS)
        self.clock_us = clock_us
        self.generation = 0
        self._admitted: dict[str, Identity] = {}
        self._head = -1
        self._checked_us: int | None = None
        self._following: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._admitted)

    def invalidate(self) -> None:
        """Forget every verdict (after a local change; or the log moved)."""
        self.generation += 1
        self._admitted.clear()

    async def follow(self) -> None:
        """Reads the log head when a recheck is due; concurrent callers share one read."""
        now = self.clock_us()
        if self._checked_us is not None and now - self._checked_us < self.recheck_us:
            return
        if self._following is None or self._following.done():
            self._following = asyncio.ensure_future(self._read_head(now))
        await asyncio.shield(self._following)

    async def _read_head(self, now: int) -> None:
        async with self.db.read() as conn:
            head = await partner_repo.credential_head(conn)
        if head != self._head:
            self.invalidate()
            self._head = head
        self._checked_us = now

    def admitted(self, serial: str, identity: Identity) -> bool:
        return self._admitted.get(serial) == identity

    def admit(self, serial: str, identity: Identity, generation: int) -> None:
        """Caches an admission read under `generation`, unless a change came since."""
        if generation == self.generation:
            self._admitted[serial] = identity
