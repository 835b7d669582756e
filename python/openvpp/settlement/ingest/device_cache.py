"""Per-device ingestion state, kept in memory between batches.

A vendor's batch typically carries one reading from each of thousands of
devices, so reading each device's registry record and reading state back
from the database costs more than verifying and storing the readings. This
cache holds both, and stays correct without trusting itself:

- registry facts (vendor, status, power limits) and the utilities whose
  programs the device is enrolled in are dropped when the registry or
  route log moves past an entry that names the device, exactly as the
  route resolver's caches are;
- reading state is written back with a guard (`stored` unchanged since it
  was read), so a writer that is not this process (another replica on
  PostgreSQL) makes the guarded write miss; the batch is then rolled back
  and retried from the database.
"""

from __future__ import annotations

from dataclasses import dataclass

from solders.pubkey import Pubkey
from sqlalchemy.ext.asyncio import AsyncConnection

from openvpp import native
from openvpp.store import reading_repo, route_log, routing_repo
from openvpp.v1 import common_pb2, registry_pb2

GENESIS = bytes(32)
# Past this many registry changes, forgetting everything is cheaper than reading them.
RESYNC_LIMIT = 10_000


_HAS_BASELINE = native.DEVICE_STATE_OFFSETS["has_baseline"]
_LAST_SEQ = native.DEVICE_STATE_OFFSETS["last_seq"]


class StaleState(Exception):
    """A guarded state write missed: someone else wrote the device's state."""


@dataclass(slots=True)
class Held:
    """One device: its registry facts and reading state as the Rust core packs them."""

    vendor: str
    der_id: str
    number: int  # devices.registered_seq: the device's key in readings
    packed: bytes
    head: bytes
    stored: int
    existed: bool
    utilities: tuple[str, ...]

    @property
    def has_baseline(self) -> bool:
        return bool(self.packed[_HAS_BASELINE])

    @property
    def last_seq(self) -> int:
        return int.from_bytes(self.packed[_LAST_SEQ : _LAST_SEQ + 8], "little")


class DeviceCache:
    def __init__(self, capacity: int = 250_000) -> None:
        self.capacity = capacity
        self._held: dict[bytes, Held] = {}
        self._registry_seq = -1
        self._route_seq = -1

    def __len__(self) -> int:
        return len(self._held)

    async def load(self, conn: AsyncConnection, keys: set[bytes]) -> dict[bytes, Held]:
        """Every registered device among `keys` (read inside the batch's write transaction)."""
        await self._follow_registry(conn)
        await self._follow_routes(conn)
        missing = [k for k in keys if k not in self._held]
        fresh = await _read(conn, missing) if missing else {}
        return {k: h for k in keys if (h := self._held.get(k) or fresh.get(k)) is not None}

    def keep(self, held: dict[bytes, Held]) -> None:
        """Remembers states that are now committed."""
        self._held.update(held)
        if len(self._held) > self.capacity:
            # Insertion order approximates age; drop the oldest tenth at once so this is rare.
            for key in list(self._held)[: len(self._held) - self.capacity * 9 // 10]:
                del self._held[key]

    def forget(self, keys: set[bytes] | None = None) -> None:
        if keys is None:
            self._held.clear()
            self._registry_seq = self._route_seq = -1
        else:
            for key in keys:
                self._held.pop(key, None)

    async def _follow_registry(self, conn: AsyncConnection) -> None:
        head = await routing_repo.registry_head_seq(conn)
        if head == self._registry_seq:
            return
        if self._registry_seq < 0 or head - self._registry_seq > RESYNC_LIMIT:
            self._held.clear()
        else:
            changes = await routing_repo.registry_changes_after(conn, self._registry_seq, RESYNC_LIMIT + 1)
            for change in changes:
                self._held.pop(bytes(Pubkey.from_string(change.der_id)), None)
        self._registry_seq = head

    async def _follow_routes(self, conn: AsyncConnection) -> None:
        head = await route_log.head(conn)
        if head == self._route_seq:
            return
        changes = [] if self._route_seq < 0 else await route_log.after(conn, self._route_seq, RESYNC_LIMIT + 1, None)
        if self._route_seq < 0 or len(changes) > RESYNC_LIMIT or any(not c.der_id for c in changes):
            self._held.clear()
        else:
            for change in changes:
                self._held.pop(bytes(Pubkey.from_string(change.der_id)), None)
        self._route_seq = head


async def _read(conn: AsyncConnection, keys: list[bytes]) -> dict[bytes, Held]:
    ids = {str(Pubkey.from_bytes(k)): k for k in keys}
    utilities = await routing_repo.active_utilities_of(conn, list(ids))
    out: dict[bytes, Held] = {}
    for row in await reading_repo.devices_with_state(conn, list(ids)):
        key = ids[row.der_id]
        caps = registry_pb2.DeviceRecord.FromString(row.record_bytes).capabilities
        existed = row.last_seq is not None
        packed = native.DEVICE_STATE.pack(
            key,
            row.status == common_pb2.DEVICE_STATUS_ACTIVE,
            bool(existed and row.has_baseline),
            row.last_seq or 0,
            row.last_interval_end or 0,
            row.import_wh or 0,
            row.export_wh or 0,
            caps.max_import_w,
            caps.max_export_w,
        )
        head = row.head_hash if existed else GENESIS
        enrolled = tuple(sorted(utilities.get(row.der_id, ())))
        out[key] = Held(
            row.vendor_namespace, row.der_id, row.registered_seq, packed, head, row.stored or 0, existed, enrolled
        )
    return out
