"""Enrolling devices in utility programs with the owner's signed consent."""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Row

from openvpp import errors
from openvpp.kernel import clock
from openvpp.kernel.clock import Clock
from openvpp.kernel.identity import Identity, Role
from openvpp.kernel.programs import denied, program_not_found
from openvpp.registry.service import DeviceState, Registry
from openvpp.routing import consent
from openvpp.store import billing_repo, partner_repo, route_log, settlement_repo
from openvpp.store import routing_repo as repo
from openvpp.store.database import Database
from openvpp.v1 import common_pb2, integration_pb2
from openvpp.v1 import routing_pb2 as pb

_ACCOUNT_RE = re.compile(r"^[\x21-\x7e]([\x20-\x7e]{0,126}[\x21-\x7e])?$")
MAX_REASON = 512


@dataclass(frozen=True, slots=True)
class EnrollmentState:
    program_id: str
    der_id: str
    vendor_namespace: str
    utility_namespace: str
    account_ref: str
    consent_payload: bytes
    consent_signature: bytes
    scopes: tuple[int, ...]
    status: int
    status_reason: str
    consent_expires_at_us: int
    enrolled_at_us: int
    updated_at_us: int

    @classmethod
    def from_row(cls, r: Row[Any]) -> EnrollmentState:
        return cls(
            r.program_id,
            r.der_id,
            r.vendor_namespace,
            r.utility_namespace,
            r.account_ref,
            r.consent_payload,
            r.consent_signature,
            tuple(json.loads(r.scopes)),
            r.status,
            r.status_reason,
            r.consent_expires_at_us,
            r.enrolled_at_us,
            r.updated_at_us,
        )


def _may_act(caller: Identity, utility: str, vendor: str) -> bool:
    return caller.acts_for(utility, vendor)


class Enrollments:
    def __init__(self, db: Database, registry: Registry, clock_us: Clock = clock.system) -> None:
        self.db = db
        self.registry = registry
        self.clock_us = clock_us

    async def enroll(
        self,
        caller: Identity,
        program_id: str,
        identifier: common_pb2.DeviceIdentifier,
        account_ref: str,
        signed: pb.SignedConsent,
    ) -> EnrollmentState:
        if not _ACCOUNT_RE.match(account_ref):
            raise errors.InvalidArgument.field(
                "account_ref", "must be 1-128 printable ASCII characters", "INVALID_TEXT"
            )
        device = await self.registry.get(identifier)
        now = self.clock_us()
        async with self.db.write() as conn:
            program = await repo.program(conn, program_id)
            if program is None:
                raise program_not_found(program_id)
            utility = program.utility_namespace
            if not _may_act(caller, utility, device.vendor_namespace):
                raise denied("enroll its own devices or into its own programs")
            await self._check_parties(conn, device, utility)
            given = consent.check(signed, device.der_id, program_id, account_ref, now)
            existing = await repo.enrollment(conn, program_id, device.der_id)
            if existing is not None and existing.status == pb.ENROLLMENT_STATUS_ACTIVE:
                raise errors.AlreadyExists(f"{device.der_id} is already enrolled in {program_id}", "ENROLLMENT_EXISTS")
            for other in await repo.active_enrollments_of(conn, device.der_id):
                if other.utility_namespace != utility:
                    raise errors.FailedPrecondition(
                        f"the device is enrolled with utility {other.utility_namespace}; a device has one utility",
                        "ENROLLED_WITH_ANOTHER_UTILITY",
                    )
            await self._check_exports_once(conn, program_id, device.der_id)
            values = {
                "program_id": program_id,
                "der_id": device.der_id,
                "utility_namespace": utility,
                "vendor_namespace": device.vendor_namespace,
                "account_ref": account_ref,
                "consent_payload": given.payload,
                "consent_signature": given.signature,
                "scopes": json.dumps(list(given.scopes)),
                "status": pb.ENROLLMENT_STATUS_ACTIVE,
                "status_reason": "",
                "consent_expires_at_us": given.expires_at_us,
                "enrolled_at_us": now,
                "updated_at_us": now,
            }
            await repo.upsert_enrollment(conn, values, exists=existing is not None)
            await route_log.append(
                conn,
                [
                    route_log.RouteChange(
                        pb.ROUTE_EVENT_KIND_ENROLLED, device.der_id, device.vendor_namespace, utility, program_id
                    )
                ],
                now,
            )
            row = await repo.enrollment(conn, program_id, device.der_id)
        return EnrollmentState.from_row(_present(row))

    @staticmethod
    async def _check_exports_once(conn: Any, program_id: str, der_id: str) -> None:
        """A device's exports are paid as tokens by one program or credited on
        the bills of another, never both."""
        for nets in (True, False):
            pays = (
                await billing_repo.nets_exports(conn, program_id)
                if nets
                else await settlement_repo.pays_exports_as_tokens(conn, program_id)
            )
            if not pays:
                continue
            clash = await billing_repo.exports_paid_twice(conn, program_id, nets=nets, der_id=der_id)
            if clash is not None:
                raise errors.FailedPrecondition(
                    f"{der_id} is enrolled in {clash[1]}, which "
                    + ("pays its exports as tokens" if nets else "credits its exports on its bills")
                    + f"; enrolling it in {program_id} too would pay them twice",
                    "EXPORTS_PAID_TWICE",
                )

    async def unenroll(
        self, caller: Identity, program_id: str, identifier: common_pb2.DeviceIdentifier, reason: str
    ) -> EnrollmentState:
        if not reason.strip() or len(reason) > MAX_REASON:
            raise errors.InvalidArgument.field(
                "reason", f"must say why, in at most {MAX_REASON} characters", "EMPTY_FIELD"
            )
        device = await self.registry.get(identifier)
        now = self.clock_us()
        async with self.db.write() as conn:
            row = await repo.enrollment(conn, program_id, device.der_id)
            if row is None or row.status != pb.ENROLLMENT_STATUS_ACTIVE:
                if await repo.program(conn, program_id) is None:
                    raise program_not_found(program_id)
                raise errors.NotFound(f"{device.der_id} is not enrolled in {program_id}", "ENROLLMENT_NOT_FOUND")
            if not _may_act(caller, row.utility_namespace, row.vendor_namespace):
                raise denied("unenroll its own devices or from its own programs")
            await repo.set_enrollment_status(
                conn, program_id, device.der_id, pb.ENROLLMENT_STATUS_UNENROLLED, reason, now
            )
            change = route_log.RouteChange(
                pb.ROUTE_EVENT_KIND_UNENROLLED,
                device.der_id,
                row.vendor_namespace,
                row.utility_namespace,
                program_id,
                detail=reason,
            )
            await route_log.append(conn, [change], now)
            row = await repo.enrollment(conn, program_id, device.der_id)
        return EnrollmentState.from_row(_present(row))

    async def list_enrollments(
        self,
        caller: Identity,
        program_id: str,
        identifier: common_pb2.DeviceIdentifier | None,
        include_unenrolled: bool,
        page_size: int,
        token: str,
    ) -> tuple[list[EnrollmentState], str]:
        if not program_id and identifier is None:
            raise errors.InvalidArgument.field("program_id", "give a program, a device, or both", "EMPTY_FIELD")
        if page_size > 1000:
            raise errors.InvalidArgument.field("page_size", "must be at most 1000", "OUT_OF_RANGE")
        der_id = (await self.registry.get(identifier)).der_id if identifier is not None else ""
        viewer: tuple[str, str] | None = None
        if caller.role is Role.UTILITY:
            viewer = (caller.namespace, "")
        elif caller.role is not Role.OPERATOR:
            viewer = ("", caller.namespace)
        after = _decode_token(token)
        limit = page_size or 100
        async with self.db.read() as conn:
            rows = await repo.list_enrollments(conn, program_id, der_id, include_unenrolled, viewer, after, limit + 1)
        found = [EnrollmentState.from_row(r) for r in rows[:limit]]
        more = len(rows) > limit
        return found, (_encode_token(found[-1].program_id, found[-1].der_id) if more else "")

    @staticmethod
    async def _check_parties(conn: Any, device: DeviceState, utility: str) -> None:
        if device.status != common_pb2.DEVICE_STATUS_ACTIVE:
            raise errors.FailedPrecondition(f"device {device.der_id} is not active", "DEVICE_NOT_ACTIVE")
        for namespace, reason in ((device.vendor_namespace, "VENDOR_SUSPENDED"), (utility, "UTILITY_SUSPENDED")):
            partner = await partner_repo.partner(conn, namespace)
            if partner is None or partner.status != integration_pb2.PARTNER_STATUS_ACTIVE:
                raise errors.FailedPrecondition(f"partner {namespace} is not active", reason)


def _present(row: Row[Any] | None) -> Row[Any]:
    if row is None:
        raise RuntimeError("a row written in this transaction is missing")
    return row


def _encode_token(program_id: str, der_id: str) -> str:
    return base64.urlsafe_b64encode(f"{program_id}\n{der_id}".encode()).decode()


def _decode_token(token: str) -> tuple[str, str]:
    if not token:
        return ("", "")
    try:
        program_id, der_id = base64.urlsafe_b64decode(token.encode()).decode().split("\n")
    except (ValueError, UnicodeDecodeError):
        raise errors.InvalidArgument.field(
            "page_token", "is not a token this server issued", "INVALID_PAGE_TOKEN"
        ) from None
    return (program_id, der_id)
