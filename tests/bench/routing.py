"""`make bench`: Routing over mutual TLS against a real `openvpp serve` process.

The yardstick is outside our server: a bare `grpc.aio` echo server
(tests/bench/echo_server.py) in a process of its own with the same mTLS
credentials, called by the same client in the same run. Unary Resolve and
GetDevice are timed against it (16 calls in flight on one connection,
rounds alternating), so the ratio is what the whole server (tracing, errors,
authentication, partner limits, the request edge and the domain) costs a
call beyond gRPC itself; GetRoutingKey, our cheapest RPC, shows the
server's fixed part. ResolveBatch is reported in identifiers per second,
warm (answers cached and signed) and cold (first sight of every device).
Targets: Resolve and GetDevice >= 0.80x the echo rate; ResolveBatch >=
100,000 identifiers/s.

`--server-path DIR` runs the server from another checkout's python/ (for
before/after figures with the same client).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
from rich.console import Console
from rich.table import Table
from solders.keypair import Keypair

from openvpp.client.channel import credentials
from openvpp.integration import bootstrap, ca
from openvpp.v1 import (
    common_pb2,
    integration_pb2,
    integration_pb2_grpc,
    registry_pb2,
    registry_pb2_grpc,
    routing_pb2_grpc,
)
from openvpp.v1 import routing_pb2 as pb
from tests import factories
from tests.bench import echo_server
from tests.bench.served import free_port, openvpp_serve
from tests.integration.endpoint_servers import PartnerPki, grpc_endpoint
from tests.integration.routing_world import consent_for

OUT = Path("build/bench/routing.json")
WORKING_SET = 2_000


async def _onboard(target: str, operator: grpc.ChannelCredentials, data: Path, kind: int, namespace: str) -> Path:
    key = ca.new_key()
    async with grpc.aio.secure_channel(target, operator) as channel:
        reply = await integration_pb2_grpc.IntegrationServiceStub(channel).OnboardPartner(
            integration_pb2.OnboardPartnerRequest(
                kind=kind,  # type: ignore[arg-type]
                legal_name=namespace,
                namespace=namespace,
                csr_pem=ca.make_csr(key, namespace).decode(),
            )
        )
    bundle = bootstrap.Bundle(data / "partners" / namespace)
    root = (data / bootstrap.CA_DIR / ca.CertificateAuthority.ROOT).read_bytes()
    bundle.write(ca.private_pem(key), (reply.certificate.certificate_pem + reply.chain_pem).encode(), root)
    return bundle.directory


async def _setup(
    target: str, data: Path, devices: int, tmp: Path, keys: list[Keypair] | None = None
) -> tuple[Path, list[str]]:
    operator = credentials(data / "operator")
    utility = await _onboard(target, operator, data, integration_pb2.PARTNER_KIND_UTILITY, "pge")
    vendor = await _onboard(target, operator, data, integration_pb2.PARTNER_KIND_DEVICE_VENDOR, "solarco")
    pki = PartnerPki(tmp / "pge-ca")
    async with grpc_endpoint(pki.server()) as port, grpc.aio.secure_channel(target, credentials(utility)) as channel:
        await integration_pb2_grpc.IntegrationServiceStub(channel).RegisterEndpoint(
            integration_pb2.RegisterEndpointRequest(
                name="vtn",
                url=f"https://localhost:{port}",
                trust_anchors_pem=pki.anchors_pem,
                protocol=integration_pb2.ENDPOINT_PROTOCOL_OPENVPP_GRPC,
            )
        )
        stub = routing_pb2_grpc.RoutingServiceStub(channel)
        await stub.CreateProgram(
            pb.CreateProgramRequest(code="nem", name="NEM", kind=pb.PROGRAM_KIND_NET_ENERGY_METERING)
        )
        await stub.AttachEndpoint(pb.AttachEndpointRequest(program_id="pge/nem", endpoint_id="pge/vtn"))
    keys = keys or [Keypair() for _ in range(devices)]
    async with grpc.aio.secure_channel(target, credentials(vendor)) as channel:
        registry = registry_pb2_grpc.RegistryServiceStub(channel)

        async def chunks() -> AsyncIterator[registry_pb2.BulkRegisterDevicesRequest]:
            for i in range(0, devices, 500):
                yield registry_pb2.BulkRegisterDevicesRequest(
                    signed_records=[factories.signed(k, f"inv-{i + j}") for j, k in enumerate(keys[i : i + 500])]
                )

        await registry.BulkRegisterDevices(chunks())
        stub = routing_pb2_grpc.RoutingServiceStub(channel)
        gate = asyncio.Semaphore(32)

        async def enroll(k: Keypair) -> None:
            async with gate:
                await stub.EnrollDevice(
                    pb.EnrollDeviceRequest(
                        program_id="pge/nem",
                        device=common_pb2.DeviceIdentifier(der_id=str(k.pubkey())),
                        account_ref="A-1",
                        consent=consent_for(k, "pge/nem", "A-1"),
                    )
                )

        await asyncio.gather(*(enroll(k) for k in keys))
    return vendor, [str(k.pubkey()) for k in keys]


async def _rate(call, seconds: float, concurrency: int) -> float:  # type: ignore[no-untyped-def]
    """Completed calls per second with `concurrency` calls in flight."""
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await call()
            done += 1

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done / (time.perf_counter() - start)


async def _rounds(calls: dict[str, Any], rounds: int, seconds: float) -> dict[str, float]:
    """Per call kind, the median rate over rounds (order rotated each round),
    and each kind's median per-round ratio to the echo."""
    rates: dict[str, list[float]] = {name: [] for name in calls}
    ratios: dict[str, list[float]] = {name: [] for name in calls if name != "echo"}
    names = list(calls)
    for r in range(rounds):
        turn = names[r % len(names) :] + names[: r % len(names)]
        for name in turn:
            rates[name].append(await _rate(calls[name], seconds, 16))
        for name in ratios:
            ratios[name].append(rates[name][-1] / rates["echo"][-1])
    out = {f"{name}_per_s": statistics.median(v) for name, v in rates.items()}
    out.update({f"{name}_vs_echo": statistics.median(v) for name, v in ratios.items()})
    return out


async def _measure(
    target: str, echo_port: int, vendor: Path, ids: list[str], rounds: int, seconds: float, batch: int
) -> dict[str, object]:
    rng = random.Random(7)
    async with grpc.aio.secure_channel(target, credentials(vendor)) as channel:
        stub = routing_pb2_grpc.RoutingServiceStub(channel)
        key_request = pb.GetRoutingKeyRequest()

        async def yardstick() -> None:
            await stub.GetRoutingKey(key_request)

        async def resolve() -> None:
            await stub.Resolve(pb.ResolveRequest(device=common_pb2.DeviceIdentifier(der_id=rng.choice(ids))))

        cold_start = time.perf_counter()
        first = await stub.ResolveBatch(pb.ResolveBatchRequest(identifiers=ids[:batch]))
        cold = len(first.answers) / (time.perf_counter() - cold_start)
        assert all(a.HasField("routes") for a in first.answers)
        # Steady state: every device's answer computed and signed once, as a serving cache holds them.
        for i in range(batch, len(ids), batch):
            await stub.ResolveBatch(pb.ResolveBatchRequest(identifiers=ids[i : i + batch]))
        registry = registry_pb2_grpc.RegistryServiceStub(channel)

        # GetDevice over a working set its cache holds (each looked up once first).
        working = ids[:WORKING_SET]
        gate = asyncio.Semaphore(16)

        async def look(der_id: str) -> None:
            async with gate:
                await registry.GetDevice(
                    registry_pb2.GetDeviceRequest(identifier=common_pb2.DeviceIdentifier(der_id=der_id))
                )

        await asyncio.gather(*(look(d) for d in working))

        async def get_device() -> None:
            await registry.GetDevice(
                registry_pb2.GetDeviceRequest(identifier=common_pb2.DeviceIdentifier(der_id=rng.choice(working)))
            )

        async with grpc.aio.secure_channel(f"localhost:{echo_port}", credentials(vendor)) as bare:
            echo_call = echo_server.echo_method(bare)

            async def echo() -> None:
                await echo_call(pb.ResolveRequest(device=common_pb2.DeviceIdentifier(der_id=rng.choice(ids))))

            await _rate(echo, 0.5, 16)
            measured = await _rounds(
                {"echo": echo, "resolve": resolve, "get_device": get_device, "key": yardstick}, rounds, seconds
            )

        batch_rates = []
        for _ in range(rounds):
            sample = rng.sample(ids, batch)
            start = time.perf_counter()
            reply = await stub.ResolveBatch(pb.ResolveBatchRequest(identifiers=sample))
            batch_rates.append(len(reply.answers) / (time.perf_counter() - start))
    return {
        **measured,
        "batch_ids_per_s_warm": statistics.median(batch_rates),
        "batch_ids_per_s_cold": cold,
        "batch_size": batch,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--devices", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--server-path", type=Path, help="run the server from this checkout's python/")
    args = parser.parse_args()
    if args.quick:
        args.devices, args.batch, args.rounds, args.seconds = 2000, 1000, 3, 0.5
    with (
        tempfile.TemporaryDirectory() as tmp_name,
        openvpp_serve(Path(tmp_name), "--probe-private-addresses", server_path=args.server_path) as served,
    ):
        echo_port = free_port()
        echo = subprocess.Popen(
            [sys.executable, "-m", "tests.bench.echo_server", str(served.data), str(echo_port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        try:
            assert echo.stdout is not None
            assert echo.stdout.readline().strip() == b"ready"
            vendor, ids = asyncio.run(_setup(served.target, served.data, args.devices, Path(tmp_name)))
            result = asyncio.run(_measure(served.target, echo_port, vendor, ids, args.rounds, args.seconds, args.batch))
        finally:
            echo.kill()
            echo.wait(timeout=30)
    table = Table(title=f"Routing over mTLS ({args.devices} enrolled devices, median of {args.rounds} rounds)")
    for column in ("measure", "value", "target", "met"):
        table.add_column(column)
    warm = float(result["batch_ids_per_s_warm"])  # type: ignore[arg-type]
    echo_rate = float(result["echo_per_s"])  # type: ignore[arg-type]
    for name, label, target_ratio in (
        ("resolve", "Resolve / bare echo rate", 0.8),
        ("get_device", "GetDevice / bare echo rate", 0.8),
        ("key", "GetRoutingKey / bare echo rate", None),
    ):
        ratio = float(result[f"{name}_vs_echo"])  # type: ignore[arg-type]
        rate = float(result[f"{name}_per_s"])  # type: ignore[arg-type]
        met = "" if target_ratio is None else ("yes" if ratio >= target_ratio else "NO")
        table.add_row(
            label,
            f"{ratio:.2f}x ({rate:,.0f} vs {echo_rate:,.0f}/s)",
            "" if target_ratio is None else f">= {target_ratio:.2f}x",
            met,
        )
    table.add_row(
        f"ResolveBatch, warm ({args.batch}/call)",
        f"{warm:,.0f} ids/s",
        ">= 100,000",
        "yes" if warm >= 100_000 else "NO",
    )
    table.add_row("ResolveBatch, cold (first sight)", f"{float(result['batch_ids_per_s_cold']):,.0f} ids/s", "", "")  # type: ignore[arg-type]
    Console().print(table)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"devices": args.devices, **result}, indent=2))
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
