"""`make bench`: sustained load on the embedded defaults, measured as a
backend sees it.

One `openvpp serve` process (SQLite, the embedded chain, the settlement
cadence every second) and a fleet of devices streaming 15-minute readings in
compressed time at a fixed offered rate for a fixed time. The utility
follows StreamSettlements meanwhile. Per reading, the latency is the time
from its ACCEPTED answer to the arrival of the `payout_confirmed` event of
the payout that includes it (readings → credit by seq range, credit →
payout by the sent event's credit ids). Reported: the accepted rate, p50 and
p99 of that latency over every reading paid during the run, refusals
(INGEST_BACKLOG, resent after their RetryInfo delay) and the server's
resident set after warm-up. Targets: >= 20,000 readings/s for >= 60 s,
p50 <= 2 s, p99 <= 5 s, memory flat.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
from google.rpc import error_details_pb2
from rich.console import Console
from rich.table import Table
from solders.keypair import Keypair

from openvpp import native
from openvpp.client.channel import credentials
from openvpp.client.errors import describe_status
from openvpp.v1 import settlement_pb2 as pb
from openvpp.v1 import settlement_pb2_grpc
from tests.bench.routing import _setup
from tests.bench.served import openvpp_serve
from tests.bench.settlement import configure, rss_kib

OUT = Path("build/bench/latency.json")
STEP = 900


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


class Fleet:
    """Pre-signed readings: device d's reading k is seq k + 1."""

    def __init__(self, keys: list[Keypair], per_device: int) -> None:
        self.keys = keys
        self.ids = [str(k.pubkey()) for k in keys]
        self.index = {der: d for d, der in enumerate(self.ids)}
        self.start = (int(time.time()) // STEP - per_device - 4) * STEP
        payloads = [
            native.READING.pack(
                bytes(k.pubkey()), s + 1, self.start + (s + 1) * STEP, STEP, s * 5, s * (60 + d % 40), 0
            )
            for s in range(per_device)
            for d, k in enumerate(keys)
        ]
        seeds = b"".join(bytes(k)[:32] for k in keys)
        self.payloads = payloads
        self.signatures = native.sign_readings(seeds, b"".join(payloads))
        # accepted[d][s]: when reading seq s + 1 of device d was answered ACCEPTED.
        self.accepted: list[list[float]] = [[0.0] * per_device for _ in keys]

    def batch(self, first: int, size: int) -> pb.SubmitReadingsRequest:
        sig = self.signatures[first * 64 : (first + size) * 64]
        return pb.SubmitReadingsRequest(
            batch_id=str(first), payloads=b"".join(self.payloads[first : first + size]), signatures=sig
        )


async def _send(
    stub: settlement_pb2_grpc.SettlementServiceAsyncStub,
    fleet: Fleet,
    rate: float,
    seconds: float,
    batch: int,
) -> tuple[int, int, float]:
    """Offers `rate` readings/s in batches on one stream; (accepted, refusals, elapsed)."""
    devices = len(fleet.keys)
    total = min(len(fleet.payloads), int(rate * seconds))
    accepted = refused = 0
    queue: asyncio.Queue[pb.SubmitReadingsRequest | None] = asyncio.Queue()
    begin = time.perf_counter()

    async def pace() -> None:
        for i, first in enumerate(range(0, total, batch)):
            due = begin + i * batch / rate
            if (wait := due - time.perf_counter()) > 0:
                await asyncio.sleep(wait)
            await queue.put(fleet.batch(first, min(batch, total - first)))
        await queue.put(None)

    async def source() -> AsyncIterator[pb.SubmitReadingsRequest]:
        while (item := await queue.get()) is not None:
            yield item

    resending: set[asyncio.Task[None]] = set()

    async def resend(at: int, after: float) -> None:
        await asyncio.sleep(after)
        await queue.put(fleet.batch(at, min(batch, total - at)))

    async def close() -> None:
        await pacer
        while resending:
            await asyncio.gather(*list(resending))
        await queue.put(None)

    pacer = asyncio.create_task(pace())
    closer = asyncio.create_task(close())
    async for reply in stub.SubmitReadings(source()):
        now = time.perf_counter()
        first = int(reply.batch_id)
        if reply.HasField("error"):
            error = describe_status(reply.error)
            assert error.reason == "INGEST_BACKLOG", error
            refused += 1
            delay = 0.2
            for detail in reply.error.details:
                info = error_details_pb2.RetryInfo()
                if detail.Unpack(info):
                    delay = info.retry_delay.ToTimedelta().total_seconds()
            task = asyncio.create_task(resend(first, delay))
            resending.add(task)
            task.add_done_callback(resending.discard)
            continue
        for k in range(len(reply.verdicts)):
            if reply.verdicts[k] in (pb.READING_VERDICT_ACCEPTED, pb.READING_VERDICT_SEQ_GAP):
                i = first + k
                fleet.accepted[i % devices][i // devices] = now
                accepted += 1
    await closer
    return accepted, refused, time.perf_counter() - begin


async def _follow(
    stub: settlement_pb2_grpc.SettlementServiceAsyncStub,
    fleet: Fleet,
    latencies: list[float],
    stop: asyncio.Event,
    after: int,
) -> None:
    credits: dict[int, tuple[int, int, int]] = {}  # credit id -> (device, first seq, last seq)
    payouts: dict[int, list[int]] = {}
    call = stub.StreamSettlements(pb.StreamSettlementsRequest(after_cursor=after))
    try:
        async for page in call:
            now = time.perf_counter()
            for event in page.events:
                kind = event.WhichOneof("event")
                if kind == "credit" and event.credit.amount_base_units:
                    c = event.credit
                    credits[c.credit_id] = (fleet.index[c.der_id], c.seq_first, c.seq_last)
                elif kind == "payout_sent":
                    payouts[event.payout_sent.payout_id] = list(event.payout_sent.credit_ids)
                elif kind == "payout_confirmed":
                    for credit_id in payouts.pop(event.payout_confirmed.payout_id, []):
                        device, first, last = credits.pop(credit_id, (0, 0, -1))
                        for seq in range(first, last + 1):
                            at = fleet.accepted[device][seq - 1]
                            if at:
                                latencies.append(now - at)
            if stop.is_set():
                return
    finally:
        call.cancel()


async def measure(target: str, data: Path, tmp: Path, pid: int, args: argparse.Namespace) -> dict[str, object]:
    keys = [Keypair() for _ in range(args.devices)]
    vendor, _ = await _setup(target, data, args.devices, tmp, keys)
    utility = data / "partners" / "pge"
    await configure(target, utility)
    per_device = int(args.rate * args.seconds / args.devices) + 1
    fleet = Fleet(keys, per_device)
    latencies: list[float] = []
    stop = asyncio.Event()
    rss: list[int] = []
    async with (
        grpc.aio.secure_channel(target, credentials(utility)) as u,
        grpc.aio.secure_channel(target, credentials(vendor)) as v,
    ):
        follower_stub = settlement_pb2_grpc.SettlementServiceStub(u)
        follower = asyncio.create_task(_follow(follower_stub, fleet, latencies, stop, 0))

        async def sample() -> None:
            while not stop.is_set():
                rss.append(rss_kib(pid))
                await asyncio.sleep(5)

        sampler = asyncio.create_task(sample())
        sender = settlement_pb2_grpc.SettlementServiceStub(v)
        accepted, refused, elapsed = await _send(sender, fleet, args.rate, args.seconds, args.batch)
        # Let the last readings be paid before the follower stops.
        deadline = time.perf_counter() + 30
        paid_target = accepted * 0.999
        while len(latencies) < paid_target and time.perf_counter() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.5)
        stop.set()
        follower.cancel()
        sampler.cancel()
        await asyncio.gather(follower, sampler, return_exceptions=True)
    warm = rss[len(rss) // 3 :] or rss
    return {
        "devices": args.devices,
        "offered_per_s": args.rate,
        "seconds": elapsed,
        "accepted": accepted,
        "accepted_per_s": accepted / elapsed,
        "refused_batches": refused,
        "paid_readings": len(latencies),
        "latency_p50_s": _percentile(latencies, 0.50),
        "latency_p99_s": _percentile(latencies, 0.99),
        "latency_mean_s": statistics.fmean(latencies) if latencies else float("nan"),
        "rss_kib": rss,
        "rss_growth_after_warmup": (warm[-1] - warm[0]) / warm[0] if warm and warm[0] else 0.0,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--devices", type=int, default=2_000)
    parser.add_argument("--rate", type=float, default=20_000)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--settle-interval", type=float, default=1.0)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--server-path", type=Path, help="run the server from this checkout's python/")
    args = parser.parse_args()
    if args.quick:
        args.devices, args.rate, args.seconds = 500, 5_000, 15
    flags = ("--probe-private-addresses", "--settle-interval", str(args.settle_interval))
    with (
        tempfile.TemporaryDirectory() as tmp_name,
        openvpp_serve(Path(tmp_name), *flags, server_path=args.server_path) as served,
    ):
        result = asyncio.run(measure(served.target, served.data, Path(tmp_name), served.pid, args))
    report(result, args)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2))
    print(f"wrote {OUT}")
    return 0


def report(r: dict[str, object], args: argparse.Namespace) -> None:
    table = Table(
        title=f"Sustained load: {args.devices} devices, cadence {args.settle_interval:g} s, SQLite, embedded chain"
    )
    for column in ("measure", "value", "target", "met"):
        table.add_column(column)
    rate, seconds = float(r["accepted_per_s"]), float(r["seconds"])  # type: ignore[arg-type]
    p50, p99 = float(r["latency_p50_s"]), float(r["latency_p99_s"])  # type: ignore[arg-type]
    growth = float(r["rss_growth_after_warmup"])  # type: ignore[arg-type]
    table.add_row(
        "readings accepted",
        f"{rate:,.0f}/s over {seconds:.0f} s (offered {float(r['offered_per_s']):,.0f}/s)",  # type: ignore[arg-type]
        ">= 20,000/s for >= 60 s",
        "yes" if rate >= 20_000 and seconds >= 60 else "NO",
    )
    table.add_row("ACCEPTED → payout confirmed, p50", f"{p50:.2f} s", "<= 2 s", "yes" if p50 <= 2 else "NO")
    table.add_row("ACCEPTED → payout confirmed, p99", f"{p99:.2f} s", "<= 5 s", "yes" if p99 <= 5 else "NO")
    table.add_row("readings paid during the run", f"{r['paid_readings']:,} of {r['accepted']:,}", "", "")
    table.add_row("batches refused (INGEST_BACKLOG, resent)", str(r["refused_batches"]), "", "")
    table.add_row("server RSS after warm-up", f"{growth:+.0%}", "flat (< 10 %)", "yes" if growth < 0.10 else "NO")
    Console().print(table)


if __name__ == "__main__":
    raise SystemExit(main())
