"""mTLS and authorization: who may call what, and every certificate that must be refused."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509
from grpc_health.v1 import health_pb2, health_pb2_grpc
from solders.keypair import Keypair

from openvpp.integration import bootstrap, ca
from openvpp.server.auth import TABLE
from openvpp.v1 import (
    billing_pb2,
    billing_pb2_grpc,
    common_pb2,
    registry_pb2,
    routing_pb2,
    routing_pb2_grpc,
    settlement_pb2,
    settlement_pb2_grpc,
)
from openvpp.v1 import integration_pb2 as pb
from tests import factories
from tests.integration.mtls import Fabric, integration, registry
from tests.rpc import expect_error

ROLES = [ca.Role.OPERATOR, ca.Role.UTILITY, ca.Role.DEVICE_VENDOR, ca.Role.AGGREGATOR]


async def bundles(fabric: Fabric) -> dict[ca.Role, Path]:
    return {
        ca.Role.OPERATOR: fabric.data_dir / "operator",
        ca.Role.UTILITY: await fabric.onboard(ca.Role.UTILITY, "pge"),
        ca.Role.DEVICE_VENDOR: await fabric.onboard(ca.Role.DEVICE_VENDOR, "solarco"),
        ca.Role.AGGREGATOR: await fabric.onboard(ca.Role.AGGREGATOR, "gridagg"),
    }


def _minimal_call(channel: grpc.aio.Channel, method: str) -> Any:
    service, name = method.strip("/").split("/")
    if service.endswith("RegistryService"):
        stub: Any = registry(channel)
        if name == "BulkRegisterDevices":

            async def empty() -> Any:
                if False:
                    yield registry_pb2.BulkRegisterDevicesRequest()

            return stub.BulkRegisterDevices(empty())
        if name == "WatchRegistry":
            return _drain(stub.WatchRegistry(registry_pb2.WatchRegistryRequest()))
        request_type = getattr(registry_pb2, f"{name}Request")
    elif service.endswith("IntegrationService"):
        stub = integration(channel)
        request_type = getattr(pb, f"{name}Request")
    elif service.endswith("RoutingService"):
        stub = routing_pb2_grpc.RoutingServiceStub(channel)
        if name == "WatchRoutes":
            return _drain(stub.WatchRoutes(routing_pb2.WatchRoutesRequest()))
        request_type = getattr(routing_pb2, f"{name}Request")
    elif service.endswith("SettlementService"):
        stub = settlement_pb2_grpc.SettlementServiceStub(channel)
        if name == "SubmitReadings":

            async def no_batches() -> Any:
                if False:
                    yield settlement_pb2.SubmitReadingsRequest()

            return _drain(stub.SubmitReadings(no_batches()))
        if name == "StreamSettlements":
            return _drain(stub.StreamSettlements(settlement_pb2.StreamSettlementsRequest(until_caught_up=True)))
        request_type = getattr(settlement_pb2, f"{name}Request")
    elif service.endswith("BillingService"):
        stub = billing_pb2_grpc.BillingServiceStub(channel)
        request_type = getattr(billing_pb2, f"{name}Request")
    else:
        return None
    return getattr(stub, name)(request_type())


async def _drain(call: Any) -> None:
    async for _ in call:
        pass


async def test_every_role_against_every_rpc_follows_the_table(fabric: Fabric) -> None:
    by_role = await bundles(fabric)
    checked = 0
    for role, bundle in by_role.items():
        async with fabric.channel(bundle) as channel:
            for method, rule in TABLE.items():
                call = _minimal_call(channel, method)
                if call is None:
                    continue
                try:
                    await call
                    denied = False
                except grpc.aio.AioRpcError as exc:
                    denied = exc.code() == grpc.StatusCode.PERMISSION_DENIED and "may not call" in (exc.details() or "")
                assert denied == (role not in rule.roles), (role, method)
                checked += 1
    assert checked == 4 * len([m for m in TABLE if "reflection" not in m])
    assert checked == 4 * 74


async def test_only_the_operator_onboards_and_nothing_is_written_otherwise(fabric: Fabric) -> None:
    vendor = await fabric.onboard(ca.Role.DEVICE_VENDOR, "solarco")
    request = pb.OnboardPartnerRequest(
        kind=pb.PARTNER_KIND_UTILITY,
        legal_name="X",
        namespace="sneaky",
        csr_pem=ca.make_csr(ca.new_key(), "sneaky").decode(),
    )
    async with fabric.channel(vendor) as channel:
        await expect_error(
            integration(channel).OnboardPartner(request), grpc.StatusCode.PERMISSION_DENIED, "ROLE_NOT_ALLOWED"
        )
    async with fabric.operator() as channel:
        listed = await integration(channel).ListPartners(pb.ListPartnersRequest())
        assert sorted(p.namespace for p in listed.partners) == ["operator", "solarco"]
        await expect_error(
            integration(channel).OnboardPartner(
                pb.OnboardPartnerRequest(
                    kind=pb.PARTNER_KIND_UTILITY,
                    legal_name="Dup",
                    namespace="solarco",
                    csr_pem=ca.make_csr(ca.new_key(), "solarco").decode(),
                )
            ),
            grpc.StatusCode.ALREADY_EXISTS,
            "NAMESPACE_TAKEN",
        )
        await expect_error(
            integration(channel).OnboardPartner(
                pb.OnboardPartnerRequest(kind=pb.PARTNER_KIND_UTILITY, legal_name="Y", namespace="Bad NS", csr_pem="x")
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_NAME",
            "namespace",
        )
        await expect_error(
            integration(channel).OnboardPartner(
                pb.OnboardPartnerRequest(
                    kind=pb.PARTNER_KIND_UTILITY, legal_name="Y", namespace="ok", csr_pem="garbage"
                )
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "CSR_UNPARSEABLE",
            "csr_pem",
        )
        after = await integration(channel).ListPartners(pb.ListPartnersRequest())
        assert len(after.partners) == 2


async def test_vendors_act_only_in_their_own_namespace(fabric: Fabric) -> None:
    solarco = await fabric.onboard(ca.Role.DEVICE_VENDOR, "solarco")
    voltbox = await fabric.onboard(ca.Role.DEVICE_VENDOR, "voltbox")
    mine, theirs = Keypair(), Keypair()
    async with fabric.channel(solarco) as channel:
        await registry(channel).RegisterDevice(
            registry_pb2.RegisterDeviceRequest(signed_record=factories.signed(mine, "inv-1"))
        )
        await expect_error(
            registry(channel).RegisterDevice(
                registry_pb2.RegisterDeviceRequest(signed_record=factories.signed(theirs, "inv-2", namespace="voltbox"))
            ),
            grpc.StatusCode.PERMISSION_DENIED,
            "CROSS_TENANT",
        )
        await expect_error(
            integration(channel).GetPartner(pb.GetPartnerRequest(namespace="voltbox")),
            grpc.StatusCode.PERMISSION_DENIED,
            "CROSS_TENANT",
        )
        await expect_error(
            integration(channel).ListCertificates(pb.ListCertificatesRequest(namespace="voltbox")),
            grpc.StatusCode.PERMISSION_DENIED,
            "CROSS_TENANT",
        )
    async with fabric.channel(voltbox) as channel:
        await expect_error(
            registry(channel).SetDeviceStatus(
                registry_pb2.SetDeviceStatusRequest(
                    der_id=str(mine.pubkey()), status=common_pb2.DEVICE_STATUS_SUSPENDED, reason="x"
                )
            ),
            grpc.StatusCode.PERMISSION_DENIED,
            "CROSS_TENANT",
        )
        serial = (
            (await integration(channel).ListCertificates(pb.ListCertificatesRequest(namespace="voltbox")))
            .certificates[0]
            .serial
        )
    async with fabric.channel(solarco) as channel:
        await expect_error(
            integration(channel).RevokeCertificate(
                pb.RevokeCertificateRequest(serial=serial, reason=pb.REVOCATION_REASON_KEY_COMPROMISE)
            ),
            grpc.StatusCode.PERMISSION_DENIED,
            "CROSS_TENANT",
        )
    async with fabric.operator() as channel:
        head = await registry(channel).GetRegistryHead(registry_pb2.GetRegistryHeadRequest())
        assert head.tree_size == 1


async def test_revocation_and_suspension_take_effect_for_the_next_call(fabric: Fabric) -> None:
    vendor = await fabric.onboard(ca.Role.DEVICE_VENDOR, "solarco")
    head = registry_pb2.GetRegistryHeadRequest()
    async with fabric.operator() as op:
        async with fabric.channel(vendor) as channel:
            await registry(channel).GetRegistryHead(head)
        await integration(op).SuspendPartner(pb.SuspendPartnerRequest(namespace="solarco", reason="unpaid invoice"))
        async with fabric.channel(vendor) as channel:
            await expect_error(
                registry(channel).GetRegistryHead(head), grpc.StatusCode.UNAUTHENTICATED, "PARTNER_SUSPENDED"
            )
        await integration(op).ReinstatePartner(pb.ReinstatePartnerRequest(namespace="solarco", reason="paid"))
        async with fabric.channel(vendor) as channel:
            await registry(channel).GetRegistryHead(head)
            serial = (
                (await integration(channel).ListCertificates(pb.ListCertificatesRequest(namespace="solarco")))
                .certificates[0]
                .serial
            )
        revoked = await integration(op).RevokeCertificate(
            pb.RevokeCertificateRequest(serial=serial, reason=pb.REVOCATION_REASON_KEY_COMPROMISE)
        )
        assert revoked.certificate.status == pb.CERTIFICATE_STATUS_REVOKED
        async with fabric.channel(vendor) as channel:
            await expect_error(registry(channel).GetRegistryHead(head), grpc.StatusCode.UNAUTHENTICATED, "CERT_REVOKED")
        await expect_error(
            integration(op).RevokeCertificate(
                pb.RevokeCertificateRequest(serial=serial, reason=pb.REVOCATION_REASON_SUPERSEDED)
            ),
            grpc.StatusCode.FAILED_PRECONDITION,
            "CERT_ALREADY_REVOKED",
        )
        crl = x509.load_der_x509_crl((await integration(op).GetCrl(pb.GetCrlRequest())).crl_der)
        assert crl.get_revoked_certificate_by_serial_number(int(serial, 16)) is not None
        published = x509.load_der_x509_crl((fabric.data_dir / "crl.der").read_bytes())
        assert published.get_revoked_certificate_by_serial_number(int(serial, 16)) is not None


def _write_bundle(
    directory: Path, key: Any, cert: x509.Certificate, authority: ca.CertificateAuthority, root: bytes
) -> Path:
    bootstrap.Bundle(directory).write(
        ca.private_pem(key), ca.cert_pem(cert) + ca.cert_pem(authority.intermediate), root
    )
    return directory


async def test_refused_certificates(fabric: Fabric, tmp_path: Path) -> None:
    authority = fabric.app_ca()
    root = ca.cert_pem(authority.root)
    key = ca.new_key()
    csr = ca.check_csr(ca.make_csr(key, "operator"), ca.Role.OPERATOR, "operator")
    now = dt.datetime.now(dt.UTC)
    expired_ca = ca.CertificateAuthority(
        authority.root, authority.intermediate, authority._key, clock=lambda: now - dt.timedelta(days=40)
    )
    future_ca = ca.CertificateAuthority(
        authority.root, authority.intermediate, authority._key, clock=lambda: now + dt.timedelta(days=10)
    )
    stranger = ca.CertificateAuthority.create(tmp_path / "stranger")
    cases = {
        "expired": (
            _write_bundle(
                tmp_path / "expired",
                key,
                expired_ca.issue_client(csr, ca.Role.OPERATOR, "operator", 30),
                authority,
                root,
            ),
            grpc.StatusCode.UNAVAILABLE,
        ),
        "not yet valid": (
            _write_bundle(
                tmp_path / "future", key, future_ca.issue_client(csr, ca.Role.OPERATOR, "operator", 30), authority, root
            ),
            grpc.StatusCode.UNAVAILABLE,
        ),
        "unknown CA": (
            _write_bundle(
                tmp_path / "stranger-bundle",
                key,
                stranger.issue_client(csr, ca.Role.OPERATOR, "operator", 30),
                stranger,
                root,
            ),
            grpc.StatusCode.UNAVAILABLE,
        ),
        "never recorded": (
            _write_bundle(
                tmp_path / "forged", key, authority.issue_client(csr, ca.Role.OPERATOR, "operator", 30), authority, root
            ),
            grpc.StatusCode.UNAUTHENTICATED,
        ),
    }
    for name, (bundle, code) in cases.items():
        async with fabric.channel(bundle) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await registry(channel).GetRegistryHead(registry_pb2.GetRegistryHeadRequest(), timeout=5)
            assert caught.value.code() == code, name
    server_cert = authority.issue_server(key, ["localhost"], [])
    async with fabric.channel(
        _write_bundle(tmp_path / "server-as-client", key, server_cert, authority, root)
    ) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await registry(channel).GetRegistryHead(registry_pb2.GetRegistryHeadRequest(), timeout=5)
        # The TLS stack refuses a server-auth-only certificate as a client before any RPC.
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    async with grpc.aio.secure_channel(fabric.target, grpc.ssl_channel_credentials(root_certificates=root)) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await registry(channel).GetRegistryHead(registry_pb2.GetRegistryHeadRequest(), timeout=5)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_health_needs_no_client_certificate(fabric: Fabric) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{fabric.app.health_port}") as channel:
        health: Any = health_pb2_grpc.HealthStub(channel)
        reply = await health.Check(health_pb2.HealthCheckRequest(service="openvpp.v1.IntegrationService"))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
