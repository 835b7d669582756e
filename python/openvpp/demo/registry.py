"""The registry side of the demo: the server process, onboarding the
partners, bulk registration (with records that must be refused), resolving
by every kind of identifier, following the log and proving a record."""

from __future__ import annotations

import asyncio
import socket
import sys
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from rich.progress import Progress
from rich.table import Table

from openvpp import native
from openvpp.client.channel import channel_to
from openvpp.demo.fleet import VENDORS, FleetDevice
from openvpp.demo.routing import UTILITY
from openvpp.integration import bootstrap, ca
from openvpp.registry import merkle, records
from openvpp.registry.signing import sign_record
from openvpp.v1 import (
    common_pb2,
    integration_pb2,
    integration_pb2_grpc,
    registry_pb2,
    registry_pb2_grpc,
)

CHUNK = 100


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def start_server(
    data_dir: Path, port: int, health_port: int, log_path: Path, env: dict[str, str]
) -> asyncio.subprocess.Process:
    # The child keeps its own descriptor; ours closes once it has started.
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "openvpp",
            "serve",
            "--data-dir",
            str(data_dir),
            "--listen",
            f"127.0.0.1:{port}",
            "--health-listen",
            f"127.0.0.1:{health_port}",
            # The demo utility's VTN runs on this machine.
            "--probe-private-addresses",
            "--settle-interval",
            "1",
            stdout=log,
            stderr=log,
            env=env,
        )
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


async def onboard(target: str, data_dir: Path) -> dict[str, Path]:
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


async def register(
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


async def resolve(stub: registry_pb2_grpc.RegistryServiceAsyncStub, fleet: Sequence[FleetDevice]) -> Table:
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


async def watch_and_follow(
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


async def prove(stub: registry_pb2_grpc.RegistryServiceAsyncStub, device: FleetDevice) -> tuple[bool, bool, bytes, int]:
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
