"""`make bench`: one tenant flooding must not starve another.

Against a real `openvpp serve` over mTLS, tenant B makes sequential
GetRegistryHead calls alone, then again while tenant A floods the same
server: many concurrent ListDevices calls and 1 MiB identifiers, on several
connections. Reported: B's p50/p99 latency in both phases and their ratio
(the yardstick is B alone, timed in the same run), how A's flood was
answered, and how fast a 1 MiB identifier is refused.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

import grpc
from rich.console import Console
from rich.table import Table

from openvpp.client.channel import credentials
from openvpp.v1 import common_pb2, integration_pb2, registry_pb2, registry_pb2_grpc
from tests.bench.routing import _onboard
from tests.bench.served import openvpp_serve

OUT = Path("build/bench/fairness.json")
HUGE = "1" * (1024 * 1024)


async def _latencies(stub: registry_pb2_grpc.RegistryServiceStub, calls: int) -> list[float]:
    out = []
    for _ in range(calls):
        start = time.perf_counter()
        await stub.GetRegistryHead(registry_pb2.GetRegistryHeadRequest())  # type: ignore[misc]
        out.append(time.perf_counter() - start)
    return out


def _p(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))]


async def _measure(
    target: str, a: Path, b: Path, calls: int, flood: int, connections: int, huge: bool
) -> dict[str, object]:
    async with grpc.aio.secure_channel(target, credentials(b)) as channel:
        stub = registry_pb2_grpc.RegistryServiceStub(channel)
        await _latencies(stub, 50)
        alone = await _latencies(stub, calls)
        outcomes: Counter[str] = Counter()
        stop = asyncio.Event()
        refusals: list[float] = []

        async def flooder(flood_stub: registry_pb2_grpc.RegistryServiceStub, n: int) -> None:
            while not stop.is_set():
                start = time.perf_counter()
                try:
                    if huge and n % 4 == 0:
                        await flood_stub.GetDevice(  # type: ignore[misc]
                            registry_pb2.GetDeviceRequest(identifier=common_pb2.DeviceIdentifier(der_id=HUGE))
                        )
                    else:
                        await flood_stub.ListDevices(registry_pb2.ListDevicesRequest(page_size=100))  # type: ignore[misc]
                    outcomes["OK"] += 1
                except grpc.aio.AioRpcError as exc:
                    outcomes[exc.code().name] += 1
                    if n % 4 == 0 and exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
                        refusals.append(time.perf_counter() - start)

        flood_channels = [grpc.aio.secure_channel(target, credentials(a)) for _ in range(connections)]
        try:
            stubs = [registry_pb2_grpc.RegistryServiceStub(c) for c in flood_channels]
            tasks = [asyncio.create_task(flooder(stubs[i % connections], i)) for i in range(flood)]
            await asyncio.sleep(1.0)
            flooded = await _latencies(stub, calls)
            stop.set()
            await asyncio.gather(*tasks)
        finally:
            await asyncio.gather(*(c.close() for c in flood_channels))
    return {
        "alone_p50_ms": statistics.median(alone) * 1000,
        "alone_p99_ms": _p(alone, 0.99) * 1000,
        "flooded_p50_ms": statistics.median(flooded) * 1000,
        "flooded_p99_ms": _p(flooded, 0.99) * 1000,
        "p99_ratio": _p(flooded, 0.99) / _p(alone, 0.99),
        "flood_outcomes": dict(outcomes),
        "huge_identifier_refused_ms": statistics.median(refusals) * 1000 if refusals else None,
        "flood_concurrency": flood,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--flood", type=int, default=256, help="concurrent calls tenant A keeps in flight")
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--huge", action="store_true", help="a quarter of A's calls carry a 1 MiB identifier")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name, openvpp_serve(Path(tmp_name)) as served:
        target, data = served.target, served.data
        operator = credentials(data / "operator")
        kind = integration_pb2.PARTNER_KIND_DEVICE_VENDOR
        a = asyncio.run(_onboard(target, operator, data, kind, "flooder"))
        b = asyncio.run(_onboard(target, operator, data, kind, "neighbour"))
        result = asyncio.run(_measure(target, a, b, args.calls, args.flood, args.connections, args.huge))
    table = Table(title=f"Tenant B's GetRegistryHead while tenant A keeps {args.flood} calls in flight")
    for column in ("measure", "B alone", "B while A floods", "ratio"):
        table.add_column(column)
    table.add_row("p50", f"{result['alone_p50_ms']:.2f} ms", f"{result['flooded_p50_ms']:.2f} ms", "")
    table.add_row(
        "p99", f"{result['alone_p99_ms']:.2f} ms", f"{result['flooded_p99_ms']:.2f} ms", f"{result['p99_ratio']:.1f}x"
    )
    Console().print(table)
    print(f"A's flood answered: {result['flood_outcomes']}")
    if result["huge_identifier_refused_ms"] is not None:
        print(f"a 1 MiB identifier refused in {result['huge_identifier_refused_ms']:.2f} ms (median, under the flood)")
    out = OUT.with_name("fairness_huge.json") if args.huge else OUT
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
