"""The fleet's meters: cumulative counters turned into signed readings and
streamed by each vendor through SubmitReadings, in time order.

Devices in the DR program first send two weeks of hourly history (their
baseline needs it), then every device sends the demo days at 15 minutes.
A handful of deliberately bad readings follow, each refused with its reason.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from openvpp import native
from openvpp.client.channel import channel_to
from openvpp.demo.fleet import FleetDevice
from openvpp.demo.profiles import STEP, Day, Fleet, Window
from openvpp.v1 import settlement_pb2 as pb
from openvpp.v1 import settlement_pb2_grpc

HISTORY_DAYS = 14
BATCH = 8_000
PAYLOAD = np.dtype(
    [("key", "V32"), ("seq", "<u8"), ("end", "<i8"), ("step", "<u4"), ("imp", "<u8"), ("exp", "<u8"), ("flags", "<u4")]
)
assert PAYLOAD.itemsize == native.READING_LEN


@dataclass(frozen=True)
class Block:
    """Readings of some devices over consecutive intervals of one step."""

    devices: np.ndarray  # fleet indices
    ends: np.ndarray  # interval ends, epoch seconds
    step: int
    imports: np.ndarray  # Wh, devices x intervals
    exports: np.ndarray


@dataclass
class Timeline:
    """The demo's readings for every device, in the order they are sent."""

    blocks: list[Block]
    days: list[Day]
    zone: ZoneInfo
    day_imports: np.ndarray  # fleet-wide Wh per 15-minute interval of the demo days
    day_exports: np.ndarray

    @property
    def readings(self) -> int:
        return sum(b.imports.size for b in self.blocks)


def build_timeline(
    fleet: Fleet, dr: np.ndarray, last_day: dt.date, days: int, zone: ZoneInfo, event: Window, active: np.ndarray
) -> Timeline:
    """`active` devices send the demo days; those of them in `dr` send the history first."""
    first = last_day - dt.timedelta(days=days - 1)
    blocks = []
    everyone = np.sort(active)
    history = everyone[dr[everyone]]
    for k in range(HISTORY_DAYS, 0, -1):
        day = Day.of(first - dt.timedelta(days=k), zone)
        imports, exports = fleet.day(day, None, dr)
        hourly = (
            imports[history].reshape(len(history), -1, 4).sum(axis=2),
            exports[history].reshape(len(history), -1, 4).sum(axis=2),
        )
        blocks.append(Block(history, day.ends[3::4], 4 * STEP, *hourly))
    demo_days = [Day.of(first + dt.timedelta(days=k), zone) for k in range(days)]
    totals_in, totals_out = [], []
    for day in demo_days:
        imports, exports = fleet.day(day, event if day.date == last_day else None, dr)
        blocks.append(Block(everyone, day.ends, STEP, imports[everyone], exports[everyone]))
        totals_in.append(imports[everyone].sum(axis=0))
        totals_out.append(exports[everyone].sum(axis=0))
    return Timeline(blocks, demo_days, zone, np.concatenate(totals_in), np.concatenate(totals_out))


class Signer:
    """Counters and sequence numbers per device; signs in Rust on all cores."""

    def __init__(self, devices: Sequence[FleetDevice]) -> None:
        self.keys = np.frombuffer(b"".join(bytes(d.keypair.pubkey()) for d in devices), dtype="V32")
        self.seeds = b"".join(bytes(d.keypair)[:32] for d in devices)
        n = len(devices)
        self.seq = np.zeros(n, dtype=np.uint64)
        self.imported = np.zeros(n, dtype=np.uint64)
        self.exported = np.zeros(n, dtype=np.uint64)
        self.last: dict[int, tuple[bytes, bytes]] = {}

    def sign(self, block: Block, columns: slice, rows: np.ndarray) -> tuple[bytes, bytes]:
        """The readings of `rows` (positions in block.devices) over `columns`, time-major."""
        devices = block.devices[rows]
        ends = block.ends[columns]
        out = np.zeros((len(ends), len(devices)), dtype=PAYLOAD)
        imp = np.cumsum(block.imports[rows, columns], axis=1).T.astype(np.uint64) + self.imported[devices]
        exp = np.cumsum(block.exports[rows, columns], axis=1).T.astype(np.uint64) + self.exported[devices]
        out["key"] = self.keys[devices]
        out["seq"] = self.seq[devices] + np.arange(1, len(ends) + 1, dtype=np.uint64)[:, None]
        out["end"] = ends[:, None]
        out["step"] = block.step
        out["imp"], out["exp"] = imp, exp
        self.seq[devices] += len(ends)
        self.imported[devices], self.exported[devices] = imp[-1], exp[-1]
        payloads = out.tobytes()
        signatures = native.sign_readings(self.seeds, payloads)
        tail = (len(ends) - 1) * len(devices)
        for k, device in enumerate(devices.tolist()):
            at = tail + k
            self.last[device] = (payloads[at * 72 : (at + 1) * 72], signatures[at * 64 : (at + 1) * 64])
        return payloads, signatures


def bad_readings(signer: Signer, devices: np.ndarray) -> tuple[bytes, bytes, list[str]]:
    """A replay, a forged signature and a counter running backwards, from the
    device among `devices` that has imported the most."""
    device = int(devices[np.argmax(signer.imported[devices])])
    payload, signature = signer.last[device]
    row = np.frombuffer(payload, dtype=PAYLOAD).copy()
    forged = row.copy()
    forged["seq"] = int(signer.seq[device]) + 1
    forged["end"] = int(row["end"][0]) + STEP
    backwards = forged.copy()
    backwards["imp"] = int(signer.imported[device]) - 1
    backwards_bytes = backwards.tobytes()
    # The forged one carries another reading's signature; the backwards one is properly signed.
    payloads = payload + forged.tobytes() + backwards_bytes
    signatures = signature + signature + native.sign_readings(signer.seeds, backwards_bytes)
    return payloads, signatures, ["replay", "forged signature", "counter backwards"]


@dataclass
class Outcome:
    verdicts: Counter[str] = field(default_factory=Counter)
    submitted: int = 0
    seconds: float = 0.0
    bad_expected: list[str] = field(default_factory=list)


async def stream(
    target: str,
    bundles: dict[str, Path],
    fleet: Sequence[FleetDevice],
    timeline: Timeline,
    on_progress: Callable[[int], None],
) -> Outcome:
    """Each vendor streams its own devices' readings over its own certificate."""
    signer = Signer(fleet)
    outcome = Outcome()
    vendor_of = np.array([list(bundles).index(d.record.vendor_namespace) for d in fleet])
    loop = asyncio.get_running_loop()
    started = loop.time()

    async def one(v: int, namespace: str) -> None:
        async def requests() -> AsyncIterator[pb.SubmitReadingsRequest]:
            count = 0
            for block in timeline.blocks:
                rows = np.flatnonzero(vendor_of[block.devices] == v)
                if not len(rows):
                    continue
                per = max(1, BATCH // len(rows))
                for c in range(0, len(block.ends), per):
                    payloads, signatures = await asyncio.to_thread(signer.sign, block, slice(c, c + per), rows)
                    count += 1
                    yield pb.SubmitReadingsRequest(
                        batch_id=f"{namespace}-{count}", payloads=payloads, signatures=signatures
                    )
            payloads, signatures, kinds = bad_readings(signer, np.flatnonzero(vendor_of == v))
            outcome.bad_expected.extend(kinds)
            yield pb.SubmitReadingsRequest(batch_id=f"{namespace}-bad", payloads=payloads, signatures=signatures)

        async with channel_to(target, bundles[namespace]) as channel:
            stub: Any = settlement_pb2_grpc.SettlementServiceStub(channel)
            async for reply in stub.SubmitReadings(requests()):
                if reply.HasField("error"):
                    raise RuntimeError(f"batch {reply.batch_id} refused: {reply.error.message}")
                for code, count in Counter(reply.verdicts).items():
                    outcome.verdicts[pb.ReadingVerdict.Name(code).removeprefix("READING_VERDICT_")] += count
                outcome.submitted += len(reply.verdicts)
                on_progress(len(reply.verdicts))

    await asyncio.gather(*(one(v, ns) for v, ns in enumerate(bundles)))
    outcome.seconds = loop.time() - started
    return outcome
