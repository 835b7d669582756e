"""Partner lifecycle and certificates: onboard, suspend, issue, renew, revoke, CRL."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from sqlalchemy.engine import Row

from openvpp import errors
from openvpp.integration import ca
from openvpp.integration.credentials import CredentialCache
from openvpp.kernel import clock
from openvpp.kernel.changes import Change, Fact, Listener
from openvpp.kernel.clock import Clock
from openvpp.registry import identifiers
from openvpp.store import partner_repo as repo
from openvpp.store.database import Database
from openvpp.v1 import integration_pb2 as pb

ROLE_OF_KIND: dict[int, ca.Role] = {
    pb.PARTNER_KIND_OPERATOR: ca.Role.OPERATOR,
    pb.PARTNER_KIND_UTILITY: ca.Role.UTILITY,
    pb.PARTNER_KIND_DEVICE_VENDOR: ca.Role.DEVICE_VENDOR,
    pb.PARTNER_KIND_AGGREGATOR: ca.Role.AGGREGATOR,
}
KIND_OF_ROLE = {role: kind for kind, role in ROLE_OF_KIND.items()}
X509_REASONS = {
    pb.REVOCATION_REASON_KEY_COMPROMISE: x509.ReasonFlags.key_compromise,
    pb.REVOCATION_REASON_AFFILIATION_CHANGED: x509.ReasonFlags.affiliation_changed,
    pb.REVOCATION_REASON_SUPERSEDED: x509.ReasonFlags.superseded,
    pb.REVOCATION_REASON_CESSATION_OF_OPERATION: x509.ReasonFlags.cessation_of_operation,
    pb.REVOCATION_REASON_PRIVILEGE_WITHDRAWN: x509.ReasonFlags.privilege_withdrawn,
}
MAX_CONTACTS = 10
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass(frozen=True, slots=True)
class Contact:
    name: str
    email: str
    phone: str


@dataclass(frozen=True, slots=True)
class PartnerState:
    namespace: str
    kind: int
    legal_name: str
    contacts: tuple[Contact, ...]
    status: int
    status_reason: str
    onboarded_at_us: int

    @classmethod
    def from_row(cls, row: Row[Any]) -> PartnerState:
        contacts = tuple(Contact(**c) for c in json.loads(row.contacts))
        return cls(
            row.namespace, row.kind, row.legal_name, contacts, row.status, row.status_reason, row.onboarded_at_us
        )


@dataclass(frozen=True, slots=True)
class CertificateState:
    serial: str
    namespace: str
    kind: int
    not_before_us: int
    not_after_us: int
    revoked_at_us: int | None
    revocation_reason: int
    certificate_pem: str

    @classmethod
    def from_row(cls, row: Row[Any]) -> CertificateState:
        return cls(
            row.serial,
            row.namespace,
            row.kind,
            row.not_before_us,
            row.not_after_us,
            row.revoked_at_us,
            row.revocation_reason,
            row.certificate_pem,
        )


def serial_hex(serial: int) -> str:
    return f"{serial:x}"


def _us(when: dt.datetime) -> int:
    return int(when.timestamp() * 1_000_000)


def certificate_row(cert: x509.Certificate, namespace: str, kind: int) -> dict[str, Any]:
    return {
        "serial": serial_hex(cert.serial_number),
        "namespace": namespace,
        "kind": kind,
        "not_before_us": _us(cert.not_valid_before_utc),
        "not_after_us": _us(cert.not_valid_after_utc),
        "revoked_at_us": None,
        "revocation_reason": pb.REVOCATION_REASON_UNSPECIFIED,
        "certificate_pem": ca.cert_pem(cert).decode(),
    }


def partner_row(namespace: str, kind: int, legal_name: str, contacts: Sequence[Contact], now_us: int) -> dict[str, Any]:
    return {
        "namespace": namespace,
        "kind": kind,
        "legal_name": legal_name,
        "contacts": json.dumps([{"name": c.name, "email": c.email, "phone": c.phone} for c in contacts]),
        "status": pb.PARTNER_STATUS_ACTIVE,
        "status_reason": "",
        "onboarded_at_us": now_us,
    }


def _denied(what: str) -> errors.PermissionDenied:
    return errors.PermissionDenied(f"a partner may only {what} its own namespace", "CROSS_TENANT")


class Partners:
    """Partner and certificate operations; every method takes the caller's identity."""

    def __init__(
        self,
        db: Database,
        authority: ca.CertificateAuthority | None,
        *,
        default_days: int,
        crl_path: Path | None,
        changes: Listener,
        clock_us: Clock = clock.system,
        recheck_seconds: float = 0.25,
    ) -> None:
        self.db = db
        self.changes = changes
        self.credentials = CredentialCache(db, recheck_seconds, clock_us)
        self._authority = authority
        self.default_days = default_days
        self.crl_path = crl_path
        self.clock_us = clock_us

    @property
    def authority(self) -> ca.CertificateAuthority:
        if self._authority is None:
            raise errors.FailedPrecondition(
                "this server has no certificate authority; run `openvpp init`", "NO_CERTIFICATE_AUTHORITY"
            )
        return self._authority

    # -- authentication -------------------------------------------------------

    async def authenticate(self, identity: ca.Identity) -> ca.Identity:
        """Refuses certificates that were revoked or whose partner is suspended:
        at once for changes through this replica, within the recheck interval
        for changes through another (see `CredentialCache`)."""
        serial = serial_hex(identity.serial)
        await self.credentials.follow()
        if self.credentials.admitted(serial, identity):
            return identity
        generation = self.credentials.generation
        async with self.db.read() as conn:
            row = await repo.credential(conn, serial)
        if row is None or row.namespace != identity.namespace or ROLE_OF_KIND.get(row.kind) is not identity.role:
            raise errors.Unauthenticated("this certificate was not issued to a known partner", "CERT_UNKNOWN")
        if row.revoked_at_us is not None:
            raise errors.Unauthenticated("this certificate has been revoked", "CERT_REVOKED")
        if row.status != pb.PARTNER_STATUS_ACTIVE:
            raise errors.Unauthenticated(f"partner {identity.namespace} is suspended", "PARTNER_SUSPENDED")
        self.credentials.admit(serial, identity, generation)
        return identity

    # -- partners -------------------------------------------------------------

    async def onboard(
        self,
        caller: ca.Identity,
        kind: int,
        legal_name: str,
        namespace: str,
        contacts: Sequence[Contact],
        csr_pem: str,
        days: int,
    ) -> tuple[PartnerState, CertificateState]:
        if kind not in (pb.PARTNER_KIND_UTILITY, pb.PARTNER_KIND_DEVICE_VENDOR, pb.PARTNER_KIND_AGGREGATOR):
            raise errors.InvalidArgument.field("kind", "must be a utility, device vendor or aggregator", "INVALID_ENUM")
        if not legal_name.strip() or len(legal_name) > 256:
            raise errors.InvalidArgument.field("legal_name", "must be 1-256 characters", "INVALID_TEXT")
        identifiers.check_namespace(namespace, "namespace")
        _check_contacts(contacts)
        role = ROLE_OF_KIND[kind]
        csr = ca.check_csr(csr_pem.encode(), role, namespace)
        cert = self.authority.issue_client(csr, role, namespace, days or self.default_days)
        async with self.db.write() as conn:
            if await repo.partner(conn, namespace) is not None:
                raise errors.AlreadyExists(
                    f"namespace {namespace} is taken",
                    "NAMESPACE_TAKEN",
                    violations=[errors.FieldViolation("namespace", "already onboarded")],
                )
            await repo.insert_partner(conn, partner_row(namespace, kind, legal_name, contacts, self.clock_us()))
            await repo.insert_certificate(conn, certificate_row(cert, namespace, kind))
            partner = _present(await repo.partner(conn, namespace))
            stored = _present(await repo.certificate(conn, serial_hex(cert.serial_number)))
        return PartnerState.from_row(partner), CertificateState.from_row(stored)

    async def get(self, caller: ca.Identity, namespace: str) -> PartnerState:
        if not caller.acts_for(namespace):
            raise _denied("read")
        async with self.db.read() as conn:
            row = await repo.partner(conn, namespace)
        if row is None:
            raise errors.NotFound(f"no partner {namespace}", "PARTNER_NOT_FOUND")
        return PartnerState.from_row(row)

    async def list_partners(
        self, kind: int, status: int, page_size: int, page_token: str
    ) -> tuple[list[PartnerState], str]:
        if page_size > 1000:
            raise errors.InvalidArgument.field("page_size", "must be at most 1000", "OUT_OF_RANGE")
        limit = page_size or 100
        async with self.db.read() as conn:
            rows = await repo.list_partners(conn, kind, status, page_token, limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        return [PartnerState.from_row(r) for r in rows], (rows[-1].namespace if more else "")

    async def set_status(self, caller: ca.Identity, namespace: str, status: int, reason: str) -> PartnerState:
        if not reason.strip():
            raise errors.InvalidArgument.field("reason", "must say why", "EMPTY_FIELD")
        if namespace == caller.namespace:
            raise errors.FailedPrecondition("the operator cannot suspend itself", "SELF_SUSPENSION")
        async with self.db.write() as conn:
            row = await repo.partner(conn, namespace, lock=True)
            if row is None:
                raise errors.NotFound(f"no partner {namespace}", "PARTNER_NOT_FOUND")
            if row.status != status:
                await repo.set_partner_status(conn, namespace, status, reason)
                await self.changes.changed(conn, [_partner_change(row, status, reason)], self.clock_us())
                change = "active" if status == pb.PARTNER_STATUS_ACTIVE else "suspended"
                await repo.log_credential_change(conn, namespace, "", change, self.clock_us())
            updated = _present(await repo.partner(conn, namespace))
        self.credentials.invalidate()
        return PartnerState.from_row(updated)

    # -- certificates ---------------------------------------------------------

    async def issue(self, caller: ca.Identity, namespace: str, csr_pem: str, days: int) -> CertificateState:
        if not caller.acts_for(namespace):
            raise _denied("request certificates for")
        async with self.db.write() as conn:
            partner = await repo.partner(conn, namespace, lock=True)
            if partner is None:
                raise errors.NotFound(f"no partner {namespace}", "PARTNER_NOT_FOUND")
            if partner.status != pb.PARTNER_STATUS_ACTIVE:
                raise errors.FailedPrecondition(f"partner {namespace} is suspended", "PARTNER_SUSPENDED")
            role = ROLE_OF_KIND[partner.kind]
            cert = self.authority.issue_client(
                ca.check_csr(csr_pem.encode(), role, namespace), role, namespace, days or self.default_days
            )
            await repo.insert_certificate(conn, certificate_row(cert, namespace, partner.kind))
            stored = _present(await repo.certificate(conn, serial_hex(cert.serial_number)))
        return CertificateState.from_row(stored)

    async def renew(self, caller: ca.Identity, serial: str, csr_pem: str, days: int) -> CertificateState:
        async with self.db.read() as conn:
            row = await repo.certificate(conn, serial.lower())
        if row is None:
            raise errors.NotFound(f"no certificate {serial}", "CERT_NOT_FOUND")
        if row.revoked_at_us is not None:
            raise errors.FailedPrecondition("a revoked certificate cannot be renewed", "CERT_REVOKED")
        return await self.issue(caller, row.namespace, csr_pem, days)

    async def revoke(self, caller: ca.Identity, serial: str, reason: int) -> CertificateState:
        if reason not in X509_REASONS:
            raise errors.InvalidArgument.field("reason", "must be a known revocation reason", "INVALID_ENUM")
        async with self.db.write() as conn:
            row = await repo.certificate(conn, serial.lower(), lock=True)
            if row is None:
                raise errors.NotFound(f"no certificate {serial}", "CERT_NOT_FOUND")
            if not caller.acts_for(row.namespace):
                raise _denied("revoke certificates of")
            if row.revoked_at_us is not None:
                raise errors.FailedPrecondition("the certificate is already revoked", "CERT_ALREADY_REVOKED")
            await repo.revoke(conn, row.serial, self.clock_us(), reason)
            await repo.log_credential_change(conn, row.namespace, row.serial, "revoked", self.clock_us())
            updated = _present(await repo.certificate(conn, row.serial))
        self.credentials.invalidate()
        await self.publish_crl()
        return CertificateState.from_row(updated)

    async def certificates(self, caller: ca.Identity, namespace: str) -> list[CertificateState]:
        if not caller.acts_for(namespace):
            raise _denied("list certificates of")
        async with self.db.read() as conn:
            rows = await repo.certificates_of(conn, namespace)
        return [CertificateState.from_row(r) for r in rows]

    async def crl(self) -> bytes:
        async with self.db.read() as conn:
            rows = await repo.revoked(conn)
        entries = [
            (
                int(r.serial, 16),
                dt.datetime.fromtimestamp(r.revoked_at_us / 1e6, dt.UTC),
                X509_REASONS[r.revocation_reason],
            )
            for r in rows
        ]
        return self.authority.crl(entries)

    async def publish_crl(self) -> bytes:
        """Writes the CRL file next to the CA (replaced atomically) and returns it."""
        der = await self.crl()
        if self.crl_path is not None:
            partial = self.crl_path.with_suffix(".tmp")
            partial.write_bytes(der)
            partial.replace(self.crl_path)
        return der


def _partner_change(row: Row[Any], status: int, reason: str) -> Change:
    """Every route through this partner appears or disappears with its status."""
    suspended = status != pb.PARTNER_STATUS_ACTIVE
    return Change(
        Fact.PARTNER_SUSPENDED if suspended else Fact.PARTNER_REINSTATED,
        vendor=row.namespace if row.kind == pb.PARTNER_KIND_DEVICE_VENDOR else "",
        utility=row.namespace if row.kind == pb.PARTNER_KIND_UTILITY else "",
        partner=row.namespace,
        detail=reason,
    )


def _present(row: Row[Any] | None) -> Row[Any]:
    """A row this transaction just wrote; its absence would be a storage fault."""
    if row is None:
        raise RuntimeError("a row written in this transaction is missing")
    return row


def _check_contacts(contacts: Sequence[Contact]) -> None:
    if len(contacts) > MAX_CONTACTS:
        raise errors.InvalidArgument.field("contacts", f"at most {MAX_CONTACTS}", "TOO_MANY")
    for i, c in enumerate(contacts):
        if c.email and not _EMAIL_RE.match(c.email):
            raise errors.InvalidArgument.field(f"contacts[{i}].email", "is not an email address", "INVALID_EMAIL")
        if not (c.name or c.email or c.phone):
            raise errors.InvalidArgument.field(f"contacts[{i}]", "must not be empty", "EMPTY_FIELD")
