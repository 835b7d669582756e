"""Diagnose: the checklist that says why a device is or is not routable, and what to do."""

from __future__ import annotations

import json
from dataclasses import dataclass

from openvpp import errors
from openvpp.kernel import clock
from openvpp.kernel.clock import Clock
from openvpp.kernel.identity import Identity, Role
from openvpp.registry.service import Registry
from openvpp.store import partner_repo
from openvpp.store import routing_repo as repo
from openvpp.store.database import Database
from openvpp.v1 import common_pb2, integration_pb2
from openvpp.v1 import routing_pb2 as pb

PASS, FAIL, SKIPPED = pb.CHECK_STATE_PASS, pb.CHECK_STATE_FAIL, pb.CHECK_STATE_SKIPPED
ORDER = (
    "registered",
    "device_active",
    "vendor_active",
    "enrolled",
    "consent_valid",
    "utility_active",
    "endpoint_validated",
    "endpoint_certificate_valid",
)


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    state: int
    detail: str
    remedy: str = ""


@dataclass(frozen=True, slots=True)
class Diagnosis:
    der_id: str
    checks: tuple[Check, ...]

    @property
    def routable(self) -> bool:
        return all(c.state == PASS for c in self.checks)


class Diagnoser:
    def __init__(self, db: Database, registry: Registry, clock_us: Clock = clock.system) -> None:
        self.db = db
        self.registry = registry
        self.clock_us = clock_us

    async def diagnose(self, caller: Identity, identifier: common_pb2.DeviceIdentifier, program: str) -> Diagnosis:
        checks: list[Check] = []

        def done(der_id: str = "") -> Diagnosis:
            seen = {c.name for c in checks}
            rest = [Check(n, SKIPPED, "not checked: an earlier check failed") for n in ORDER if n not in seen]
            return Diagnosis(der_id, (*checks, *rest))

        try:
            device = await self.registry.get(identifier)
        except errors.NotFound:
            checks.append(
                Check(
                    "registered",
                    FAIL,
                    "no device has this identifier",
                    "register the device (RegistryService.RegisterDevice) or check the identifier",
                )
            )
            return done()
        now = self.clock_us()
        async with self.db.read() as conn:
            enrollments = [
                e
                for e in await repo.active_enrollments_of(conn, device.der_id)
                if not program or e.program_id == program
            ]
            utilities = {e.utility_namespace for e in enrollments}
            if (
                caller.role is not Role.OPERATOR
                and caller.namespace != device.vendor_namespace
                and caller.namespace not in utilities
            ):
                raise errors.PermissionDenied(
                    "only the device's vendor and its utilities may diagnose it", "CROSS_TENANT"
                )
            vendor = await partner_repo.partner(conn, device.vendor_namespace)
            rows = [r for r in await repo.route_rows(conn, [device.der_id]) if not program or r.program_id == program]
            utility_rows = {u: await partner_repo.partner(conn, u) for u in utilities}
        checks.append(Check("registered", PASS, f"{device.name} ({device.der_id})"))
        name = common_pb2.DeviceStatus.Name(device.status)  # type: ignore[arg-type]
        status = name.removeprefix("DEVICE_STATUS_").lower()
        if device.status != common_pb2.DEVICE_STATUS_ACTIVE:
            checks.append(
                Check(
                    "device_active",
                    FAIL,
                    f"the device is {status}: {device.status_reason}",
                    "the vendor reactivates it with SetDeviceStatus (revocation is final)",
                )
            )
            return done(device.der_id)
        checks.append(Check("device_active", PASS, "active"))
        if vendor is None or vendor.status != integration_pb2.PARTNER_STATUS_ACTIVE:
            checks.append(
                Check(
                    "vendor_active",
                    FAIL,
                    f"vendor {device.vendor_namespace} is suspended or unknown",
                    "the operator reinstates the vendor (ReinstatePartner)",
                )
            )
            return done(device.der_id)
        checks.append(Check("vendor_active", PASS, device.vendor_namespace))
        if not enrollments:
            where = f"in {program}" if program else "in any program"
            checks.append(
                Check(
                    "enrolled",
                    FAIL,
                    f"not enrolled {where}",
                    "enroll it with the owner's signed consent (RoutingService.EnrollDevice)",
                )
            )
            return done(device.der_id)
        checks.append(Check("enrolled", PASS, ", ".join(sorted(e.program_id for e in enrollments))))
        live = [e for e in enrollments if e.consent_expires_at_us > now]
        if not live:
            checks.append(
                Check(
                    "consent_valid",
                    FAIL,
                    "the owner's consent has expired",
                    "enroll again with a fresh consent signed by the device",
                )
            )
            return done(device.der_id)
        checks.append(Check("consent_valid", PASS, f"{len(live)} unexpired consent(s)"))
        inactive = sorted(
            u for u, p in utility_rows.items() if p is None or p.status != integration_pb2.PARTNER_STATUS_ACTIVE
        )
        if len(inactive) == len(utility_rows):
            checks.append(
                Check(
                    "utility_active",
                    FAIL,
                    f"utility {', '.join(inactive)} is suspended",
                    "the operator reinstates the utility (ReinstatePartner)",
                )
            )
            return done(device.der_id)
        checks.append(Check("utility_active", PASS, ", ".join(sorted(set(utility_rows) - set(inactive)))))
        attached = [r for r in rows if r.endpoint_id is not None]
        validated = [r for r in attached if r.endpoint_state == integration_pb2.ENDPOINT_STATE_VALIDATED]
        if not validated:
            detail = (
                "no endpoint is attached to the device's programs"
                if not attached
                else (
                    "every attached endpoint failed its last probe: "
                    + "; ".join(f"{r.endpoint_id}: {json.loads(r.probe).get('failure_reason', '')}" for r in attached)
                )
            )
            checks.append(
                Check(
                    "endpoint_validated",
                    FAIL,
                    detail,
                    "the utility attaches a validated endpoint or fixes it and runs ValidateEndpoint",
                )
            )
            return done(device.der_id)
        checks.append(Check("endpoint_validated", PASS, ", ".join(sorted({r.endpoint_id for r in validated}))))
        current = [r for r in validated if json.loads(r.probe).get("peer_not_after_us", 0) > now]
        if not current:
            checks.append(
                Check(
                    "endpoint_certificate_valid",
                    FAIL,
                    "every validated endpoint's TLS certificate has expired",
                    "the utility renews the endpoint's certificate and runs ValidateEndpoint",
                )
            )
            return done(device.der_id)
        checks.append(Check("endpoint_certificate_valid", PASS, f"{len(current)} endpoint certificate(s) current"))
        return done(device.der_id)
