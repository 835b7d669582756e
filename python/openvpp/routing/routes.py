"""Computing a device's routes from storage and signing them.

A route exists when every link holds: the device is active, its vendor is
active, an enrollment is active with unexpired consent, the program's utility
is active, and an attached endpoint passed its last probe.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from solders.keypair import Keypair
from sqlalchemy.engine import Row

from openvpp import errors
from openvpp.kernel.timestamps import from_micros
from openvpp.v1 import common_pb2, integration_pb2
from openvpp.v1 import routing_pb2 as pb

SIGNING_DOMAIN = b"openvpp/routes/v1"

# Endpoint protocols as the device-facing protocol enum names them.
FIELD_PROTOCOL = {
    integration_pb2.ENDPOINT_PROTOCOL_OPENVPP_GRPC: common_pb2.PROTOCOL_OPENVPP_GRPC,
    integration_pb2.ENDPOINT_PROTOCOL_OCPP_201: common_pb2.PROTOCOL_OCPP_2_0_1,
    integration_pb2.ENDPOINT_PROTOCOL_OCPP_16: common_pb2.PROTOCOL_OCPP_1_6,
    integration_pb2.ENDPOINT_PROTOCOL_OPENADR_3: common_pb2.PROTOCOL_OPENADR_3,
}


class RoutingKey:
    """The ed25519 key answers are signed with; its public half is published."""

    def __init__(self, keypair: Keypair) -> None:
        self._keypair = keypair
        self.public_key = bytes(keypair.pubkey())
        self.key_id = str(keypair.pubkey())

    def sign(self, route_set: bytes) -> bytes:
        return bytes(self._keypair.sign_message(SIGNING_DOMAIN + route_set))


@dataclass(frozen=True, slots=True)
class Computed:
    """One device's answer for one (program, protocol) filter, before encoding.

    `vendor` and `utilities` say who may see it; `refresh_at_us` is when the
    answer must be recomputed even if nothing changes (consent expiry, half
    the signature validity)."""

    der_id: str
    vendor: str
    utilities: frozenset[str]
    signed: pb.SignedRoutes | None
    error: errors.OpenVPPError | None
    refresh_at_us: int


def _not_routable(message: str, reason: str, der_id: str) -> errors.FailedPrecondition:
    return errors.FailedPrecondition(message, reason, metadata={"der_id": der_id})


def _pins(probe_json: str) -> list[str]:
    return list(json.loads(probe_json).get("spki_pins", []))


def _certificate_until(probe_json: str) -> int:
    return int(json.loads(probe_json).get("peer_not_after_us", 0))


class RouteBuilder:
    def __init__(self, key: RoutingKey, validity_seconds: int) -> None:
        self.key = key
        self.validity_us = validity_seconds * 1_000_000

    def build(
        self,
        device: Row[Any] | None,
        der_id: str,
        rows: Sequence[Row[Any]],
        program: str,
        protocol: int,
        now_us: int,
    ) -> Computed:
        refresh = now_us + self.validity_us // 2
        if device is None:
            return Computed(
                der_id,
                "",
                frozenset(),
                None,
                errors.NotFound("no device has this identifier", "DEVICE_NOT_FOUND"),
                refresh,
            )
        utilities = frozenset(r.utility_namespace for r in rows)

        def fail(message: str, reason: str) -> Computed:
            return Computed(
                der_id, device.vendor_namespace, utilities, None, _not_routable(message, reason, der_id), refresh
            )

        if device.status != common_pb2.DEVICE_STATUS_ACTIVE:
            name = common_pb2.DeviceStatus.Name(device.status).removeprefix("DEVICE_STATUS_")
            return fail(f"the device is {name.lower()}: {device.status_reason}", f"DEVICE_{name}")
        if device.vendor_status != integration_pb2.PARTNER_STATUS_ACTIVE:
            return fail(f"vendor {device.vendor_namespace} is not active", "VENDOR_SUSPENDED")
        if not rows:
            return fail("the device is not enrolled in any program", "NOT_ENROLLED")
        if program:
            rows = [r for r in rows if r.program_id == program]
            if not rows:
                return fail(f"the device is not enrolled in {program}", "NOT_ENROLLED_IN_PROGRAM")
        live = [r for r in rows if r.consent_expires_at_us > now_us]
        if not live:
            return fail("the owner's consent has expired", "CONSENT_EXPIRED")
        live = [r for r in live if r.utility_status == integration_pb2.PARTNER_STATUS_ACTIVE]
        if not live:
            return fail(f"utility {rows[0].utility_namespace} is not active", "UTILITY_SUSPENDED")
        usable = [
            r
            for r in live
            if r.endpoint_id is not None and r.endpoint_state == integration_pb2.ENDPOINT_STATE_VALIDATED
        ]
        if not usable:
            return fail("no validated endpoint serves the device's programs", "NO_VALIDATED_ENDPOINT")
        usable = [r for r in usable if _certificate_until(r.probe) > now_us]
        if not usable:
            return fail("every validated endpoint's TLS certificate has expired", "ENDPOINT_CERTIFICATE_EXPIRED")
        if protocol:
            usable = [r for r in usable if FIELD_PROTOCOL.get(r.protocol, 0) == protocol]
            if not usable:
                return fail("no route speaks the requested protocol", "NO_ROUTE_FOR_PROTOCOL")
        expires = min(now_us + self.validity_us, *(r.consent_expires_at_us for r in usable))
        route_set = pb.RouteSet(
            der_id=der_id,
            device_name=device.name,
            routes=[
                pb.Route(
                    program_id=r.program_id,
                    program_kind=r.program_kind,
                    endpoint_id=r.endpoint_id,
                    url=r.url,
                    protocol=FIELD_PROTOCOL.get(r.protocol, common_pb2.PROTOCOL_UNSPECIFIED),
                    tls_server_name=r.tls_server_name,
                    spki_pins=_pins(r.probe),
                    auth_mode=r.auth_mode,
                    priority=r.priority,
                    weight=r.weight,
                )
                for r in usable
            ],
            ttl_seconds=min(r.route_ttl_seconds for r in usable),
            issued_at=from_micros(now_us),
            expires_at=from_micros(expires),
            program_id=program,
            protocol=protocol,  # type: ignore[arg-type]
        )
        data = route_set.SerializeToString(deterministic=True)
        signed = pb.SignedRoutes(route_set=data, signature=self.key.sign(data), key_id=self.key.key_id)
        refresh = min(
            refresh,
            *(r.consent_expires_at_us for r in rows if r.consent_expires_at_us > now_us),
            *(_certificate_until(r.probe) for r in usable),
        )
        return Computed(der_id, device.vendor_namespace, utilities, signed, None, refresh)


def group_rows(rows: Sequence[Row[Any]]) -> dict[str, list[Row[Any]]]:
    grouped: dict[str, list[Row[Any]]] = defaultdict(list)
    for row in rows:
        grouped[row.der_id].append(row)
    return grouped
