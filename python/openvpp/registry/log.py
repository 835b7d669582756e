"""Registry log entries: building the chained leaf bytes, and waking watchers."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import timestamp_pb2

from openvpp.registry import merkle
from openvpp.v1 import common_pb2, registry_pb2


@dataclass(slots=True)
class LogWriter:
    """Appends entries after a locked head; collects the rows to insert."""

    seq: int
    head_hash: bytes
    now_us: int
    rows: list[dict[str, Any]] = field(default_factory=list)

    def append(
        self,
        kind: int,
        der_id: str,
        version: int,
        signed_record: registry_pb2.SignedDeviceRecord | None = None,
        status: int = common_pb2.DEVICE_STATUS_UNSPECIFIED,
        reason: str = "",
    ) -> int:
        self.seq += 1
        seconds, micros = divmod(self.now_us, 1_000_000)
        entry = registry_pb2.LogEntry(
            seq=self.seq,
            prev_hash=self.head_hash,
            kind=kind,  # type: ignore[arg-type]
            der_id=der_id,
            version=version,
            signed_record=signed_record,
            status=status,  # type: ignore[arg-type]
            reason=reason,
            appended_at=timestamp_pb2.Timestamp(seconds=seconds, nanos=micros * 1000),
        )
        # Serialised once here and stored verbatim: these bytes are the leaf.
        entry_bytes = entry.SerializeToString(deterministic=True)
        self.head_hash = merkle.leaf_hash(entry_bytes)
        self.rows.append(
            {
                "seq": self.seq,
                "der_id": der_id,
                "kind": kind,
                "version": version,
                "entry_bytes": entry_bytes,
                "leaf_hash": self.head_hash,
            }
        )
        return self.seq


class LogNotifier:
    """Wakes watch streams in this process when the log grows.

    Replicas sharing PostgreSQL do not see each other's notifications; their
    watchers also poll (settings.watch_poll_seconds), so they catch up anyway.
    """

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self.closed = False

    def notify(self) -> None:
        event, self._event = self._event, asyncio.Event()
        event.set()

    def close(self) -> None:
        self.closed = True
        self.notify()

    async def wait(self, seconds: float) -> None:
        """Returns on the next append, on close, or after `seconds`."""
        event = self._event
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), seconds)
