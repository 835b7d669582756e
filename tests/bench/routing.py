"""`make bench`: Routing over mutual TLS against a real `openvpp serve` process.

Unary Resolve is timed against GetRoutingKey, the cheapest RPC on the same
server that passes the same interceptors (tracing, errors, certificate
authentication and the role table) and returns a constant: whatever Resolve
costs beyond it is the routing itself. Rounds alternate the two. ResolveBatch
is reported in identifiers per second, warm (answers cached and signed) and
cold (first sight of every device). Targets: Resolve >= 0.8x the yardstick's
request rate; ResolveBatch >= 100,000 identifiers/s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

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
from tests.integration.endpoint_servers import PartnerPki, grpc_endpoint
from tests.integration.routing_world import consent_for

OUT = Path("build/bench/routing.json")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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


async def _measure(
    target: str, vendor: Path, ids: list[str], rounds: int, seconds: float, batch: int
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
        await _rate(resolve, 1.0, 16)
        ratios: list[float] = []
        unary: list[float] = []
        echo: list[float] = []
        for r in range(rounds):
            order = [(yardstick, echo), (resolve, unary)]
            for call, sink in order if r % 2 == 0 else reversed(order):
                sink.append(await _rate(call, seconds, 16))
            ratios.append(unary[-1] / echo[-1])
        batch_rates = []
        for _ in range(rounds):
            sample = rng.sample(ids, batch)
            start = time.perf_counter()
            reply = await stub.ResolveBatch(pb.ResolveBatchRequest(identifiers=sample))
            batch_rates.append(len(reply.answers) / (time.perf_counter() - start))
    return {
        "resolve_per_s": statistics.median(unary),
        "get_routing_key_per_s": statistics.median(echo),
        "resolve_vs_yardstick": statistics.median(ratios),
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
    args = parser.parse_args()
    if args.quick:
        args.devices, args.batch, args.rounds, args.seconds = 2000, 1000, 3, 0.5
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        data = tmp / "data"
        bootstrap.initialise(data, ["localhost"], ["127.0.0.1"], f"sqlite:///{data / 'openvpp.db'}")
        port, health = _free_port(), _free_port()
        target = f"localhost:{port}"
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "openvpp",
                "serve",
                "--data-dir",
                str(data),
                "--listen",
                f"127.0.0.1:{port}",
                "--health-listen",
                f"127.0.0.1:{health}",
                "--probe-private-addresses",
            ],
            env={**os.environ, "OTEL_SDK_DISABLED": "true"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            with grpc.insecure_channel(f"127.0.0.1:{health}") as channel:
                grpc.channel_ready_future(channel).result(timeout=60)
            vendor, ids = asyncio.run(_setup(target, data, args.devices, tmp))
            result = asyncio.run(_measure(target, vendor, ids, args.rounds, args.seconds, args.batch))
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
    table = Table(title=f"Routing over mTLS ({args.devices} enrolled devices, median of {args.rounds} rounds)")
    for column in ("measure", "value", "target", "met"):
        table.add_column(column)
    ratio = float(result["resolve_vs_yardstick"])  # type: ignore[arg-type]
    warm = float(result["batch_ids_per_s_warm"])  # type: ignore[arg-type]
    table.add_row(
        "Resolve / GetRoutingKey rate",
        f"{ratio:.2f}x ({result['resolve_per_s']:.0f} vs {result['get_routing_key_per_s']:.0f}/s)",
        ">= 0.80x",
        "yes" if ratio >= 0.8 else "NO",
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
