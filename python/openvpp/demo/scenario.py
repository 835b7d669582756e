"""The scenario: a real `openvpp serve` process, driven over gRPC with mTLS.

Until the settlement pipeline lands this is the main job: bulk-register a
fleet, resolve it by every kind of identifier, follow the log, prove a
record; then a utility publishes a validated endpoint and a program, the
vendors enroll their devices with signed consent and resolve signed routes.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import socket
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from openvpp import native
from openvpp.client.channel import channel_to
from openvpp.client.errors import describe_status
from openvpp.demo.fleet import VENDORS, FleetDevice, build
from openvpp.demo.routing import UTILITY, run_routing
from openvpp.demo.tokens import FUNDING, reserve_table, run_tokens
from openvpp.integration import bootstrap, ca
from openvpp.registry import merkle, records
from openvpp.registry.signing import sign_record
from openvpp.v1 import (
    common_pb2,
    integration_pb2,
    integration_pb2_grpc,
    registry_pb2,
    registry_pb2_grpc,
    settlement_pb2,
)

CHUNK = 100


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _start_server(data_dir: Path, port: int, health_port: int, log_path: Path) -> asyncio.subprocess.Process:
    log = log_path.open("wb")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "openvpp", "serve", "--data-dir", str(data_dir),
        "--listen", f"127.0.0.1:{port}", "--health-listen", f"127.0.0.1:{health_port}",
        # The demo utility's VTN runs on this machine.
        "--probe-private-addresses",
        stdout=log, stderr=log,
    )  # fmt: skip
    # Health has its own plaintext listener: probes need no client certificate.
    async with grpc.aio.insecure_channel(f"127.0.0.1:{health_port}") as channel:
        health: Any = health_pb2_grpc.HealthStub(channel)  # the stubs package types only sync channels
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.returncode is not None:
                raise RuntimeError(f"server exited with {process.returncode}; see {log_path}")
            try:
                reply = await health.Check(
                    health_pb2.HealthCheckRequest(service="openvpp.v1.RegistryService"), timeout=1
                )
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return process
            except grpc.aio.AioRpcError:
                await asyncio.sleep(0.2)
    process.kill()
    raise RuntimeError(f"server did not become healthy; see {log_path}")


async def _onboard(target: str, data_dir: Path) -> dict[str, Path]:
    """The operator onboards the utility and each vendor over mTLS; each gets a bundle of its own."""
    bundles = {}
    authority_root = (data_dir / "operator" / "ca.pem").read_bytes()
    partners = [(UTILITY, integration_pb2.PARTNER_KIND_UTILITY, "Pacific Power & Light")] + [
        (v, integration_pb2.PARTNER_KIND_DEVICE_VENDOR, f"{v.capitalize()} Energy Devices Ltd.") for v in VENDORS
    ]
    async with channel_to(target, data_dir / "operator") as channel:
        stub: Any = integration_pb2_grpc.IntegrationServiceStub(channel)
        for namespace, kind, legal_name in partners:
            key = ca.new_key()
            reply = await stub.OnboardPartner(
                integration_pb2.OnboardPartnerRequest(
                    kind=kind,
                    legal_name=legal_name,
                    namespace=namespace,
                    contacts=[integration_pb2.Contact(name="Integration desk", email=f"ops@{namespace}.example")],
                    csr_pem=ca.make_csr(key, namespace).decode(),
                )
            )
            bundle = bootstrap.Bundle(data_dir / "partners" / namespace)
            bundle.write(
                ca.private_pem(key), (reply.certificate.certificate_pem + reply.chain_pem).encode(), authority_root
            )
            bundles[namespace] = bundle.directory
    return bundles


def _bad_records(fleet: Sequence[FleetDevice]) -> dict[str, list[registry_pb2.SignedDeviceRecord]]:
    """Records a careless factory line or a confused vendor might send: each is refused alone."""
    replay = fleet[0].signed
    forged = registry_pb2.SignedDeviceRecord(record=fleet[1].signed.record, signature=fleet[2].signed.signature)
    outsider = registry_pb2.DeviceRecord()
    outsider.CopyFrom(fleet[3].record)
    outsider.name = "intruder.othervendor"
    # fleet[0] belongs to the first vendor: the second may not register it.
    return {VENDORS[0]: [replay, forged, sign_record(fleet[3].keypair, outsider)], VENDORS[1]: [fleet[0].signed]}


async def _register(
    target: str, bundles: dict[str, Path], fleet: Sequence[FleetDevice], progress: Progress
) -> tuple[list[registry_pb2.BulkRegisterDevicesResponse], float]:
    """Each vendor streams its own devices over its own certificate, concurrently."""
    extra = _bad_records(fleet)
    total = len(fleet) + sum(len(v) for v in extra.values())
    task = progress.add_task("vendors bulk-registering over mTLS", total=total)

    async def one_vendor(namespace: str) -> registry_pb2.BulkRegisterDevicesResponse:
        items = [d.signed for d in fleet if d.record.vendor_namespace == namespace] + extra[namespace]

        async def chunks() -> AsyncIterator[registry_pb2.BulkRegisterDevicesRequest]:
            for i in range(0, len(items), CHUNK):
                yield registry_pb2.BulkRegisterDevicesRequest(signed_records=items[i : i + CHUNK])
                progress.advance(task, len(items[i : i + CHUNK]))

        async with channel_to(target, bundles[namespace]) as channel:
            stub: Any = registry_pb2_grpc.RegistryServiceStub(channel)
            response: registry_pb2.BulkRegisterDevicesResponse = await stub.BulkRegisterDevices(chunks())
            return response

    started = time.perf_counter()
    responses = await asyncio.gather(*(one_vendor(ns) for ns in VENDORS))
    return list(responses), time.perf_counter() - started


async def _resolve(stub: registry_pb2_grpc.RegistryServiceAsyncStub, fleet: Sequence[FleetDevice]) -> Table:
    table = Table(title="Resolving a sample by every kind of identifier")
    for column in ("identifier", "value", "resolves to", "ok"):
        table.add_column(column)
    probes: list[tuple[str, common_pb2.DeviceIdentifier, str]] = []
    first = fleet[0]
    probes.append(("der_id", common_pb2.DeviceIdentifier(der_id=first.der_id), first.der_id))
    probes.append(("name", common_pb2.DeviceIdentifier(name=first.record.name), first.der_id))
    seen: set[int] = set()
    for device in fleet:
        for alias in device.record.aliases:
            if alias.kind not in seen:
                seen.add(alias.kind)
                kind = common_pb2.AliasKind.Name(alias.kind).removeprefix("ALIAS_KIND_")
                probes.append((kind, common_pb2.DeviceIdentifier(alias=alias), device.der_id))
                probes.append((f"any ({kind})", common_pb2.DeviceIdentifier(any=alias.value), device.der_id))
    ok = True
    for label, identifier, expected in probes:
        reply = await stub.GetDevice(registry_pb2.GetDeviceRequest(identifier=identifier))
        value = getattr(identifier, identifier.WhichOneof("id") or "any")
        shown = value.value if isinstance(value, common_pb2.Alias) else value
        good = reply.device.der_id == expected
        ok &= good
        table.add_row(label, str(shown)[:44], reply.device.record.name, "✓" if good else "✗")
    table.caption = "all identifiers resolve to their device" if ok else "MISMATCH"
    return table


async def _next(call: Any) -> registry_pb2.WatchRegistryResponse:
    message = await asyncio.wait_for(call.read(), 10)
    if not isinstance(message, registry_pb2.WatchRegistryResponse):
        raise RuntimeError("the watch stream ended early")
    return message


async def _watch_and_follow(
    stub: registry_pb2_grpc.RegistryServiceAsyncStub, vendor: Any, fleet: Sequence[FleetDevice]
) -> tuple[int, int, bool, list[str]]:
    """Catches up from position 0 checking the hash chain, then follows live changes."""
    entries, prev, chain_ok, head = 0, bytes(32), True, 0
    async for event in stub.WatchRegistry(registry_pb2.WatchRegistryRequest(after_seq=0)):
        if event.HasField("caught_up"):
            head = event.caught_up.head_seq
            break
        entries += 1
        chain_ok &= (
            event.entry.entry.prev_hash == prev and merkle.leaf_hash(event.entry.entry_bytes) == event.entry.leaf_hash
        )
        prev = event.entry.leaf_hash
    live: list[str] = []
    follow = stub.WatchRegistry(registry_pb2.WatchRegistryRequest(after_seq=head, follow=True))
    if not (await _next(follow)).HasField("caught_up"):
        raise RuntimeError("a follow stream from the head must start caught up")
    await vendor.SetDeviceStatus(
        registry_pb2.SetDeviceStatusRequest(
            der_id=fleet[4].der_id, status=common_pb2.DEVICE_STATUS_SUSPENDED, reason="tamper alarm from vendor cloud"
        )
    )
    updated = registry_pb2.DeviceRecord()
    updated.CopyFrom(fleet[6].record)
    updated.version = 2
    updated.model += "-FW2"
    # Devices 4 and 6 share a vendor (the fleet alternates vendors); it acts on both.
    await vendor.UpdateDevice(registry_pb2.UpdateDeviceRequest(signed_record=sign_record(fleet[6].keypair, updated)))
    for _ in range(2):
        entry = (await _next(follow)).entry.entry
        kind = registry_pb2.LogEntryKind.Name(entry.kind).removeprefix("LOG_ENTRY_KIND_")
        live.append(f"#{entry.seq} {kind} {entry.der_id[:10]}… v{entry.version} {entry.reason}".rstrip())
    follow.cancel()
    return entries, head, chain_ok, live


async def _prove(
    stub: registry_pb2_grpc.RegistryServiceAsyncStub, device: FleetDevice
) -> tuple[bool, bool, bytes, int]:
    head = await stub.GetRegistryHead(registry_pb2.GetRegistryHeadRequest())
    proof = await stub.GetInclusionProof(registry_pb2.GetInclusionProofRequest(der_id=device.der_id, version=1))
    included = proof.root_hash == head.root_hash and merkle.verify_inclusion(
        merkle.leaf_hash(proof.entry_bytes), proof.leaf_index, proof.tree_size, proof.audit_path, head.root_hash
    )
    entry = registry_pb2.LogEntry.FromString(proof.entry_bytes)
    verdict = native.verify_ed25519(
        records.RECORD_DOMAIN,
        [native.SignedItem(bytes(device.keypair.pubkey()), entry.signed_record.signature, entry.signed_record.record)],
    )[0]
    return included, verdict is native.SignatureVerdict.VALID, head.root_hash, head.tree_size


async def run(devices: int, seed: int, out: Path, console: Console) -> int:
    """Runs the scenario; returns the process exit code (0 when every check passed)."""
    started = time.perf_counter()
    data_dir = out / "data"
    # A fresh registry every run, so the demo always shows the same story.
    await asyncio.to_thread(shutil.rmtree, data_dir, True)
    await asyncio.to_thread(out.mkdir, parents=True, exist_ok=True)
    port, health_port = _free_port(), _free_port()
    target = f"localhost:{port}"
    console.rule("[bold]OpenVPP demo: registry, routing and on-chain tokens")
    await asyncio.to_thread(
        bootstrap.initialise, data_dir, ["localhost"], ["127.0.0.1"], f"sqlite:///{(data_dir / 'openvpp.db').resolve()}"
    )
    console.print(f"openvpp init: CA, server certificate and operator bundle in {data_dir}")
    console.print(f"serving mTLS on {target} (health on 127.0.0.1:{health_port}) · SQLite (WAL)")
    server = await _start_server(data_dir, port, health_port, out / "server.log")
    try:
        partners = await _onboard(target, data_dir)
        utility_bundle = partners.pop(UTILITY)
        bundles = partners
        console.print(f"operator onboarded utility {UTILITY} and vendors {', '.join(bundles)} (certificates from CSRs)")
        progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
        )
        with progress:
            task = progress.add_task("generating device keys and signing records", total=1)
            fleet = await asyncio.to_thread(build, devices, seed)
            progress.update(task, completed=1)
            responses, bulk_seconds = await _register(target, bundles, fleet, progress)
        async with (
            channel_to(target, data_dir / "operator") as channel,
            channel_to(target, bundles[fleet[4].record.vendor_namespace]) as vendor_channel,
        ):
            stub: Any = registry_pb2_grpc.RegistryServiceStub(channel)
            vendor: Any = registry_pb2_grpc.RegistryServiceStub(vendor_channel)
            console.print(await _resolve(stub, fleet))
            entries, head, chain_ok, live = await _watch_and_follow(stub, vendor, fleet)
            console.print(f"watch: caught up with {entries} log entries (head {head}), hash chain intact: {chain_ok}")
            for line in live:
                console.print(f"  live → {line}")
            included, signature_ok, root, size = await _prove(stub, fleet[7])
        enrolling = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
        )
        with enrolling:
            routed = await run_routing(target, out, utility_bundle, bundles, fleet, {fleet[4].der_id}, enrolling)
        console.print(
            f"utility endpoint pacific/vtn (OpenADR 3): {routed.endpoint_state}; found "
            + ", ".join(c for c in routed.capabilities if c.startswith("openadr3.program:"))
        )
        for line in routed.diagnosis:
            console.print(f"  diagnose suspended device → {line}")
        minted = await run_tokens(target, data_dir, utility_bundle, fleet[7].der_id)
        console.print(
            f"utility created {minted.token.symbol} ({minted.token.mint}) on Token-2022 with "
            + ", ".join(minted.token.extensions)
        )
        console.print(reserve_table(minted))
        for name, ok, detail in minted.anchor_checks:
            console.print(f"  anchored proof → {'✓' if ok else '✗'} {name}: {detail}")
    finally:
        server.send_signal(signal.SIGTERM)
        exit_code = await asyncio.wait_for(server.wait(), 30)
    accepted = sum(r.accepted for r in responses)
    rejected = Counter(describe_status(v.status).reason for r in responses for v in r.verdicts if v.status.code != 0)
    throughput = accepted / bulk_seconds if bulk_seconds else 0.0
    summary = Table(title="Summary", show_header=False)
    summary.add_column(style="bold")
    summary.add_column()
    summary.add_row("devices registered", f"{accepted} of {len(fleet)} by {len(bundles)} vendors over mTLS")
    summary.add_row("records refused", ", ".join(f"{r} x{n}" for r, n in sorted(rejected.items())) or "none")
    summary.add_row(
        "registration throughput", f"{throughput:,.0f} devices/s ({bulk_seconds:.2f} s, signatures checked in Rust)"
    )
    summary.add_row("registry log", f"{size} entries, Merkle root {root.hex()[:16]}…")
    summary.add_row(
        "inclusion proof", f"verified offline: {included}; device signature over stored bytes: {signature_ok}"
    )
    summary.add_row("enrolled in pacific/nem", f"{routed.enrolled} devices, each with consent signed by its own key")
    summary.add_row(
        "signed routes",
        f"{routed.resolved} resolved in one ResolveBatch ({routed.batch_seconds * 1000:.0f} ms), "
        f"{routed.verified} verified with the published routing key",
    )
    summary.add_row(
        "use-case token",
        f"{minted.token.symbol} reserve {minted.after.reserve_balance_base_units / 1e6:,.2f} stablecoin, "
        f"covered: {minted.after.covered}, funding tx {minted.funding_signature[:16]}…",
    )
    summary.add_row(
        "registry anchored on chain",
        f"root of {minted.anchor.tree_size} entries in memo tx {minted.anchor.signature[:16]}… "
        f"(slot {minted.anchor.slot}); record verified against it: {minted.anchor_verified}",
    )
    summary.add_row("server shutdown", "drained cleanly" if exit_code == 0 else f"exit code {exit_code}")
    summary.add_row("time taken", f"{time.perf_counter() - started:.1f} s")
    console.print(summary)
    checks = [
        accepted == len(fleet),
        set(rejected) == {"DEVICE_EXISTS", "BAD_SIGNATURE", "NAME_OUTSIDE_NAMESPACE", "CROSS_TENANT"},
        chain_ok,
        len(live) == 2,
        included,
        signature_ok,
        routed.endpoint_state == "validated",
        routed.enrolled == len(fleet) - 1,
        routed.resolved == routed.verified > 0,
        any(line.startswith("✗ device_active") for line in routed.diagnosis),
        minted.token.state == settlement_pb2.USE_CASE_TOKEN_STATE_ACTIVE,
        minted.after.covered and minted.after.reserve_balance_base_units == FUNDING,
        minted.anchor_verified,
        exit_code == 0,
    ]
    return 0 if all(checks) else 1
