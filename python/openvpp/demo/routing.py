"""The routing part of the demo: a utility publishes a validated endpoint and a
program, vendors enroll their devices with device-signed consent, and a vendor
cloud resolves its fleet and checks every answer with the published key."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from google.protobuf.timestamp_pb2 import Timestamp
from rich.progress import Progress

from openvpp.client.channel import channel_to
from openvpp.demo.fleet import FleetDevice
from openvpp.demo.vtn import serve_vtn
from openvpp.routing.consent import sign as sign_consent
from openvpp.v1 import common_pb2, integration_pb2, integration_pb2_grpc, routing_pb2, routing_pb2_grpc

UTILITY = "pacific"
PROGRAM = f"{UTILITY}/nem"
DR_PROGRAM = f"{UTILITY}/dr"
# Classic net metering: exports netted on the bill, not paid as tokens.
NETTED_PROGRAM = f"{UTILITY}/nem-bill"


@dataclass
class RoutingOutcome:
    endpoint_state: str
    capabilities: list[str]
    enrolled: int
    enrolled_dr: int
    resolved: int
    verified: int
    batch_seconds: float
    diagnosis: list[str]
    # Account refs of the token program and of the net-metered one.
    accounts: list[str]
    netted_accounts: list[str]


def _consent(device: FleetDevice, account: str, program: str = PROGRAM) -> routing_pb2.SignedConsent:
    expires = Timestamp()
    expires.FromMicroseconds(time.time_ns() // 1000 + 365 * 86_400_000_000)
    payload = routing_pb2.ConsentPayload(
        der_id=device.der_id,
        program_id=program,
        account_ref=account,
        expires_at=expires,
        scopes=[routing_pb2.CONSENT_SCOPE_TELEMETRY, routing_pb2.CONSENT_SCOPE_SETTLEMENT],
    )
    return sign_consent(device.keypair, payload)


async def run_routing(
    target: str,
    work: Path,
    utility: Path,
    vendors: dict[str, Path],
    fleet: Sequence[FleetDevice],
    skip: set[str],
    dr: set[str],
    progress: Progress,
    netted: frozenset[str] = frozenset(),
) -> RoutingOutcome:
    """Endpoint and programs, then each vendor enrolls its devices: all in NEM
    (`netted` in the net-metered program instead), `dr` in DR as well."""
    with serve_vtn(work) as (port, anchors):
        async with channel_to(target, utility) as channel:
            integration: Any = integration_pb2_grpc.IntegrationServiceStub(channel)
            endpoint = (
                await integration.RegisterEndpoint(
                    integration_pb2.RegisterEndpointRequest(
                        name="vtn",
                        url=f"https://localhost:{port}/openadr3",
                        programs=["nem", "dr"],
                        protocol=integration_pb2.ENDPOINT_PROTOCOL_OPENADR_3,
                        trust_anchors_pem=anchors,
                        auth_mode=integration_pb2.ENDPOINT_AUTH_MODE_OAUTH2_CLIENT_CREDENTIALS,
                    )
                )
            ).endpoint
            routing: Any = routing_pb2_grpc.RoutingServiceStub(channel)
            await routing.CreateProgram(
                routing_pb2.CreateProgramRequest(
                    code="nem", name="Net energy metering", kind=routing_pb2.PROGRAM_KIND_NET_ENERGY_METERING
                )
            )
            await routing.CreateProgram(
                routing_pb2.CreateProgramRequest(
                    code="dr", name="Evening peak demand response", kind=routing_pb2.PROGRAM_KIND_DEMAND_RESPONSE
                )
            )
            await routing.CreateProgram(
                routing_pb2.CreateProgramRequest(
                    code="nem-bill",
                    name="Net energy metering on the bill",
                    kind=routing_pb2.PROGRAM_KIND_NET_ENERGY_METERING,
                )
            )
            for program in (PROGRAM, DR_PROGRAM):
                await routing.AttachEndpoint(
                    routing_pb2.AttachEndpointRequest(
                        program_id=program, endpoint_id="pacific/vtn", priority=10, weight=100
                    )
                )
    eligible = [d for d in fleet if d.der_id not in skip]
    wanted = [(NETTED_PROGRAM if d.der_id in netted else PROGRAM, i, d) for i, d in enumerate(eligible)]
    wanted += [(DR_PROGRAM, i, d) for i, d in enumerate(eligible) if d.der_id in dr]
    task = progress.add_task("vendors enrolling devices with signed consent", total=len(wanted))
    gate = asyncio.Semaphore(32)

    async def enroll(stub: Any, program: str, index: int, device: FleetDevice) -> None:
        async with gate:
            await stub.EnrollDevice(
                routing_pb2.EnrollDeviceRequest(
                    program_id=program,
                    device=common_pb2.DeviceIdentifier(der_id=device.der_id),
                    account_ref=f"PAC-{index:07d}",
                    consent=_consent(device, f"PAC-{index:07d}", program),
                )
            )
            progress.advance(task)

    for namespace, bundle in vendors.items():
        async with channel_to(target, bundle) as channel:
            stub: Any = routing_pb2_grpc.RoutingServiceStub(channel)
            mine = [(p, i, d) for p, i, d in wanted if d.record.vendor_namespace == namespace]
            await asyncio.gather(*(enroll(stub, p, i, d) for p, i, d in mine))
    namespace, bundle = next(iter(vendors.items()))
    own = [d for d in fleet if d.record.vendor_namespace == namespace]
    async with channel_to(target, bundle) as channel:
        stub = routing_pb2_grpc.RoutingServiceStub(channel)
        key = await stub.GetRoutingKey(routing_pb2.GetRoutingKeyRequest())
        started = time.perf_counter()
        batch = await stub.ResolveBatch(routing_pb2.ResolveBatchRequest(identifiers=[d.record.name for d in own]))
        batch_seconds = time.perf_counter() - started
        public = Ed25519PublicKey.from_public_bytes(key.public_key)
        verified = 0
        for answer in batch.answers:
            if answer.HasField("routes"):
                try:
                    public.verify(answer.routes.signature, key.signing_domain.encode() + answer.routes.route_set)
                    verified += 1
                except InvalidSignature:
                    pass
        suspended = next((d for d in own if d.der_id in skip), None)
        diagnosis: list[str] = []
        if suspended is not None:
            found = await stub.Diagnose(
                routing_pb2.DiagnoseRequest(device=common_pb2.DeviceIdentifier(der_id=suspended.der_id))
            )
            state = {
                routing_pb2.CHECK_STATE_PASS: "✓",
                routing_pb2.CHECK_STATE_FAIL: "✗",
                routing_pb2.CHECK_STATE_SKIPPED: "·",
            }
            diagnosis = [
                f"{state[c.state]} {c.name}: {c.detail}" + (f" → {c.remedy}" if c.remedy else "")
                for c in found.checks[:3]
            ]
    resolved = sum(1 for a in batch.answers if a.HasField("routes"))
    return RoutingOutcome(
        integration_pb2.EndpointState.Name(endpoint.state).removeprefix("ENDPOINT_STATE_").lower(),
        list(endpoint.last_probe.capabilities),
        len(eligible),
        len(wanted) - len(eligible),
        resolved,
        verified,
        batch_seconds,
        diagnosis,
        [f"PAC-{i:07d}" for p, i, _ in wanted if p == PROGRAM],
        [f"PAC-{i:07d}" for p, i, _ in wanted if p == NETTED_PROGRAM],
    )
