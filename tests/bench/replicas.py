"""`make bench`: scale-out on PostgreSQL — readings accepted per second by 1
replica and by 3 (the same offered load: three vendor gateways streaming
pre-signed readings as fast as they are answered, the settlement cadence
running), and the share of PostgreSQL's active backends waiting on a lock,
sampled from pg_stat_activity meanwhile.

This machine has two cores, so three replicas cannot add CPU; the target is
that they do not lose throughput: 3 replicas >= 0.90x of 1. `--server-path`
runs the replicas from another checkout's python/ (before/after figures).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import psycopg
from rich.console import Console
from rich.table import Table
from solders.keypair import Keypair

from openvpp.client.channel import credentials
from openvpp.v1 import settlement_pb2 as pb
from openvpp.v1 import settlement_pb2_grpc
from tests import pg
from tests.bench.latency import Fleet
from tests.bench.routing import _setup
from tests.bench.settlement import configure
from tests.integration.replicas import topology

OUT = Path("build/bench/replicas.json")


class LockSampler:
    """Samples pg_stat_activity in a thread: active backends of the bench
    database, and how many of them wait on a lock (heavyweight: row, tuple,
    transaction, advisory)."""

    def __init__(self, url: str, database: str) -> None:
        self.url, self.database = url, database
        self.active = self.waiting = 0
        # What waits, most often first: "lock kind: statement".
        self.waits: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> LockSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self._stop.wait(0.05):
                rows = conn.execute(
                    "SELECT wait_event_type, wait_event, left(regexp_replace(query, '\\s+', ' ', 'g'), 90) "
                    "FROM pg_stat_activity WHERE datname = %s AND state = 'active' AND pid <> pg_backend_pid()",
                    (self.database,),
                ).fetchall()
                self.active += len(rows)
                for kind, event, query in rows:
                    if kind == "Lock":
                        self.waiting += 1
                        self.waits[f"{event}: {query}"] += 1

    @property
    def share(self) -> float:
        return self.waiting / self.active if self.active else 0.0


async def _stream(target: str, vendor: Path, fleet: Fleet, devices: list[int], readings: int, total: int) -> int:
    async def requests() -> AsyncIterator[pb.SubmitReadingsRequest]:
        for s in range(readings):
            indices = [s * total + d for d in devices]
            yield pb.SubmitReadingsRequest(
                batch_id=str(s),
                payloads=b"".join(fleet.payloads[i] for i in indices),
                signatures=b"".join(fleet.signatures[i * 64 : (i + 1) * 64] for i in indices),
            )

    accepted = 0
    async with grpc.aio.secure_channel(target, credentials(vendor)) as channel:
        stub = settlement_pb2_grpc.SettlementServiceStub(channel)
        async for reply in stub.SubmitReadings(requests()):
            accepted += sum(v == pb.READING_VERDICT_ACCEPTED for v in reply.verdicts)
    return accepted


def run_once(base: str, replicas: int, devices: int, readings: int, server_path: Path | None) -> dict[str, Any]:
    database = f"bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base.replace("postgresql+psycopg", "postgresql") + "/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}"')
    url = f"{base}/{database}"
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        with topology(tmp, url, replicas, "--settle-interval", "1", server_path=server_path) as world:

            async def scenario() -> dict[str, Any]:
                keys = [Keypair() for _ in range(devices)]
                targets = [r.target for r in world.replicas]
                vendor, _ = await _setup(targets[0], world.data, devices, tmp, keys)
                await configure(targets[0], world.data / "partners" / "pge")
                fleet = Fleet(keys, readings)
                gateways = 3
                with LockSampler(url.replace("postgresql+psycopg", "postgresql"), database) as locks:
                    start = time.perf_counter()
                    counts = await asyncio.gather(
                        *(
                            _stream(
                                targets[g % len(targets)],
                                vendor,
                                fleet,
                                list(range(g, devices, gateways)),
                                readings,
                                devices,
                            )
                            for g in range(gateways)
                        )
                    )
                    elapsed = time.perf_counter() - start
                return {
                    "accepted": sum(counts),
                    "per_s": sum(counts) / elapsed,
                    "lock_wait_share": locks.share,
                    "top_waits": locks.waits.most_common(5),
                }

            return asyncio.run(scenario())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--devices", type=int, default=600)
    parser.add_argument("--readings", type=int, default=40, help="readings per device")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--server-path", type=Path, help="run the replicas from this checkout's python/")
    args = parser.parse_args()
    if args.quick:
        args.devices, args.readings, args.runs = 150, 20, 1
    bindir = pg.find_bindir()
    if bindir is None:
        print("PostgreSQL server binaries not installed; skipping the scale-out bench")
        return 0
    results: dict[str, dict[str, object]] = {}
    with pg.throwaway_server(bindir) as base:
        for replicas in (1, 3):
            runs = [run_once(base, replicas, args.devices, args.readings, args.server_path) for _ in range(args.runs)]
            results[str(replicas)] = {
                "runs": runs,
                "per_s": statistics.median(r["per_s"] for r in runs),
                "lock_wait_share": statistics.median(r["lock_wait_share"] for r in runs),
            }
    one, three = (float(results[k]["per_s"]) for k in ("1", "3"))  # type: ignore[arg-type]
    ratio = three / one
    table = Table(title=f"Scale-out on PostgreSQL ({args.devices} devices, median of {args.runs})")
    for column in ("replicas", "readings/s accepted", "lock-wait share", "target", "met"):
        table.add_column(column)
    for key in ("1", "3"):
        share = float(results[key]["lock_wait_share"])  # type: ignore[arg-type]
        per_s = float(results[key]["per_s"])  # type: ignore[arg-type]
        target = "" if key == "1" else ">= 0.90x of 1"
        met = "" if key == "1" else ("yes" if ratio >= 0.9 else "NO")
        table.add_row(key, f"{per_s:,.0f}" + ("" if key == "1" else f" ({ratio:.2f}x)"), f"{share:.1%}", target, met)
    Console().print(table)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"devices": args.devices, "ratio_3_vs_1": ratio, **results}, indent=2))
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
