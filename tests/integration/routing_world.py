"""A small world for routing tests over mTLS: a utility with a validated
endpoint and a program, two vendors with registered devices, and helpers to
sign consent and verify answers with nothing but the published key."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from google.protobuf.timestamp_pb2 import Timestamp
from solders.keypair import Keypair

from openvpp.integration import ca
from openvpp.routing.consent import sign as sign_consent
from openvpp.v1 import common_pb2, integration_pb2, registry_pb2, routing_pb2, routing_pb2_grpc
from tests import factories
from tests.integration.endpoint_servers import PartnerPki, ServerIdentity, grpc_endpoint
from tests.integration.mtls import Fabric, integration, registry

PROGRAM = "pge/nem"
DAY_US = 86_400_000_000


def routing(channel: grpc.aio.Channel) -> routing_pb2_grpc.RoutingServiceAsyncStub:
    return routing_pb2_grpc.RoutingServiceStub(channel)


def consent_for(
    device: Keypair,
    program: str = PROGRAM,
    account: str = "ACCT-1",
    days: float = 30,
    signer: Keypair | None = None,
    **overrides: Any,
) -> routing_pb2.SignedConsent:
    now = time.time_ns() // 1000
    expires = Timestamp()
    expires.FromMicroseconds(now + int(days * DAY_US))
    payload = routing_pb2.ConsentPayload(
        der_id=str(device.pubkey()),
        program_id=program,
        account_ref=account,
        scopes=[routing_pb2.CONSENT_SCOPE_TELEMETRY, routing_pb2.CONSENT_SCOPE_SETTLEMENT],
        expires_at=expires,
    )
    for name, value in overrides.items():
        if isinstance(value, list):
            payload.ClearField(name)  # type: ignore[arg-type]
            getattr(payload, name).extend(value)
        else:
            setattr(payload, name, value)
    return sign_consent(signer or device, payload)


def verify(signed: routing_pb2.SignedRoutes, key: routing_pb2.GetRoutingKeyResponse) -> routing_pb2.RouteSet:
    """What an offline device or vendor cloud does: check the signature, then parse the exact bytes."""
    Ed25519PublicKey.from_public_bytes(key.public_key).verify(
        signed.signature, key.signing_domain.encode() + signed.route_set
    )
    return routing_pb2.RouteSet.FromString(signed.route_set)


@dataclass
class World:
    fabric: Fabric
    utility: Path
    solarco: Path
    voltbox: Path
    server: ServerIdentity
    port: int
    devices: dict[str, Keypair] = field(default_factory=dict)

    def channel(self, bundle: Path) -> grpc.aio.Channel:
        return self.fabric.channel(bundle)

    async def register(self, bundle: Path, namespace: str, label: str) -> Keypair:
        keypair = Keypair()
        async with self.channel(bundle) as channel:
            await registry(channel).RegisterDevice(
                registry_pb2.RegisterDeviceRequest(signed_record=factories.signed(keypair, label, namespace=namespace))
            )
        self.devices[label] = keypair
        return keypair

    async def enroll(self, bundle: Path, device: Keypair, program: str = PROGRAM) -> routing_pb2.Enrollment:
        async with self.channel(bundle) as channel:
            reply = await routing(channel).EnrollDevice(
                routing_pb2.EnrollDeviceRequest(
                    program_id=program,
                    device=common_pb2.DeviceIdentifier(der_id=str(device.pubkey())),
                    account_ref="ACCT-1",
                    consent=consent_for(device, program),
                )
            )
        return reply.enrollment


@asynccontextmanager
async def world(fabric: Fabric, tmp_path: Path) -> AsyncIterator[World]:
    utility = await fabric.onboard(ca.Role.UTILITY, "pge")
    solarco = await fabric.onboard(ca.Role.DEVICE_VENDOR, "solarco")
    voltbox = await fabric.onboard(ca.Role.DEVICE_VENDOR, "voltbox")
    pki = PartnerPki(tmp_path / "pge-ca")
    server = pki.server()
    async with grpc_endpoint(server) as port:
        async with fabric.channel(utility) as channel:
            await integration(channel).RegisterEndpoint(
                integration_pb2.RegisterEndpointRequest(
                    name="vtn",
                    url=f"https://localhost:{port}",
                    protocol=integration_pb2.ENDPOINT_PROTOCOL_OPENVPP_GRPC,
                    trust_anchors_pem=pki.anchors_pem,
                    programs=["nem"],
                    auth_mode=integration_pb2.ENDPOINT_AUTH_MODE_MUTUAL_TLS,
                )
            )
            stub = routing(channel)
            await stub.CreateProgram(
                routing_pb2.CreateProgramRequest(
                    code="nem",
                    name="Net metering",
                    kind=routing_pb2.PROGRAM_KIND_NET_ENERGY_METERING,
                    route_ttl_seconds=120,
                )
            )
            await stub.AttachEndpoint(
                routing_pb2.AttachEndpointRequest(program_id=PROGRAM, endpoint_id="pge/vtn", priority=10, weight=5)
            )
        yield World(fabric, utility, solarco, voltbox, server, port)
