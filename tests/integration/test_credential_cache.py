"""Authenticated calls are answered from the credential cache, and a
revocation or suspension still takes effect: at once through the replica
that made it (test_trust_fabric), and through another replica sharing the
database as soon as its recheck interval has passed."""

from __future__ import annotations

import pytest
from cryptography import x509

from openvpp import errors
from openvpp.integration import bootstrap, ca
from openvpp.integration.partners import Partners, serial_hex
from openvpp.kernel.clock import FakeClock
from openvpp.kernel.identity import Identity
from openvpp.routing.changes import RouteChanges
from openvpp.v1 import integration_pb2 as pb
from openvpp.v1 import integration_pb2_grpc, registry_pb2, registry_pb2_grpc
from tests.integration.mtls import Fabric

RECHECK = 0.25


def _identity(bundle_dir: object) -> Identity:
    bundle = bootstrap.Bundle(bundle_dir)  # type: ignore[arg-type]
    return ca.identity_of(x509.load_pem_x509_certificate(bundle.cert.read_bytes()))


def _replica(fabric: Fabric, clock: FakeClock) -> Partners:
    """A second server's view of the same database (its own cache and clock)."""
    return Partners(
        fabric.app.db,
        None,
        default_days=30,
        crl_path=None,
        changes=RouteChanges(),
        clock_us=clock,
        recheck_seconds=RECHECK,
    )


async def _refused(partners: Partners, identity: Identity, reason: str) -> None:
    with pytest.raises(errors.Unauthenticated) as refused:
        await partners.authenticate(identity)
    assert refused.value.reason == reason


async def test_another_replica_honours_a_revocation_within_its_recheck_interval(fabric: Fabric) -> None:
    bundle = await fabric.onboard(ca.Role.DEVICE_VENDOR, "solarco")
    vendor = _identity(bundle)
    clock = FakeClock.at(1_800_000_000)
    other = _replica(fabric, clock)
    assert await other.authenticate(vendor) == vendor
    assert len(other.credentials) == 1
    async with fabric.operator() as op:
        stub = integration_pb2_grpc.IntegrationServiceStub(op)
        listed = await stub.ListCertificates(pb.ListCertificatesRequest(namespace="solarco"))
        await stub.RevokeCertificate(
            pb.RevokeCertificateRequest(
                serial=listed.certificates[0].serial, reason=pb.REVOCATION_REASON_KEY_COMPROMISE
            )
        )
    # Within the interval the other replica still answers from its cache:
    # the documented bound, and proof that the hot path reads no database.
    assert await other.authenticate(vendor) == vendor
    clock.advance(RECHECK)
    await _refused(other, vendor, "CERT_REVOKED")
    assert len(other.credentials) == 0


async def test_another_replica_honours_a_suspension_and_a_reinstatement(fabric: Fabric) -> None:
    bundle = await fabric.onboard(ca.Role.UTILITY, "pge")
    utility = _identity(bundle)
    clock = FakeClock.at(1_800_000_000)
    other = _replica(fabric, clock)
    await other.authenticate(utility)
    async with fabric.operator() as op:
        stub = integration_pb2_grpc.IntegrationServiceStub(op)
        await stub.SuspendPartner(pb.SuspendPartnerRequest(namespace="pge", reason="unpaid invoice"))
        clock.advance(RECHECK)
        await _refused(other, utility, "PARTNER_SUSPENDED")
        await stub.ReinstatePartner(pb.ReinstatePartnerRequest(namespace="pge", reason="paid"))
    clock.advance(RECHECK)
    assert await other.authenticate(utility) == utility


async def test_a_lookup_that_raced_a_change_does_not_cache_its_admission(fabric: Fabric) -> None:
    bundle = await fabric.onboard(ca.Role.DEVICE_VENDOR, "solarco")
    vendor = _identity(bundle)
    other = _replica(fabric, FakeClock.at(1_800_000_000))
    stale = other.credentials.generation
    other.credentials.invalidate()
    other.credentials.admit("00", vendor, stale)
    assert len(other.credentials) == 0


async def test_repeated_calls_are_admitted_from_the_cache(fabric: Fabric) -> None:
    bundle = await fabric.onboard(ca.Role.DEVICE_VENDOR, "solarco")
    async with fabric.channel(bundle) as channel:
        stub = registry_pb2_grpc.RegistryServiceStub(channel)
        for _ in range(3):
            await stub.GetRegistryHead(registry_pb2.GetRegistryHeadRequest())
    partners = fabric.app.partners
    assert partners is not None
    vendor = _identity(bundle)
    assert partners.credentials.admitted(serial_hex(vendor.serial), vendor)
