"""The Routing service over mTLS: programs, enrollment with consent, signed resolution, and every refusal."""

from __future__ import annotations

from pathlib import Path

import grpc
from solders.keypair import Keypair

from openvpp.v1 import common_pb2, integration_pb2, registry_pb2
from openvpp.v1 import routing_pb2 as pb
from tests import factories
from tests.integration.mtls import Fabric, integration, registry
from tests.integration.routing_world import PROGRAM, World, consent_for, routing, verify, world
from tests.rpc import expect_error


def by_id(device: Keypair) -> common_pb2.DeviceIdentifier:
    return common_pb2.DeviceIdentifier(der_id=str(device.pubkey()))


async def resolve(w: World, bundle: Path, identifier: common_pb2.DeviceIdentifier, **filters: object) -> pb.RouteSet:
    async with w.channel(bundle) as channel:
        stub = routing(channel)
        key = await stub.GetRoutingKey(pb.GetRoutingKeyRequest())
        reply = await stub.Resolve(pb.ResolveRequest(device=identifier, **filters))  # type: ignore[arg-type]
    return verify(reply.routes, key)


async def resolve_error(w: World, bundle: Path, device: Keypair, code: grpc.StatusCode, reason: str) -> None:
    async with w.channel(bundle) as channel:
        await expect_error(routing(channel).Resolve(pb.ResolveRequest(device=by_id(device))), code, reason)


async def test_enrolled_device_resolves_to_a_signed_route_by_every_identifier(fabric: Fabric, tmp_path: Path) -> None:
    async with world(fabric, tmp_path) as w:
        device = await w.register(w.solarco, "solarco", "inv-1")
        enrollment = await w.enroll(w.solarco, device)
        assert enrollment.status == pb.ENROLLMENT_STATUS_ACTIVE
        assert enrollment.consent.payload, "the consent is stored verbatim"
        async with w.channel(w.solarco) as channel:
            got = (await registry(channel).GetDevice(registry_pb2.GetDeviceRequest(identifier=by_id(device)))).device
        record = got.record
        lfdi = next(a for a in record.aliases if a.kind == common_pb2.ALIAS_KIND_LFDI)
        identifiers = [
            by_id(device),
            common_pb2.DeviceIdentifier(name="inv-1.solarco"),
            common_pb2.DeviceIdentifier(alias=lfdi),
            common_pb2.DeviceIdentifier(any=lfdi.value.lower()),
        ]
        for identifier in identifiers:
            for bundle in (w.solarco, w.utility, w.fabric.data_dir / "operator"):
                routes = await resolve(w, bundle, identifier)
                assert routes.der_id == str(device.pubkey())
                assert routes.device_name == "inv-1.solarco"
                [route] = routes.routes
                assert route.program_id == PROGRAM
                assert route.url == f"https://localhost:{w.port}"
                assert route.protocol == common_pb2.PROTOCOL_OPENVPP_GRPC
                assert route.tls_server_name == "localhost"
                assert route.spki_pins == [w.server.pin]
                assert route.auth_mode == integration_pb2.ENDPOINT_AUTH_MODE_MUTUAL_TLS
                assert (route.priority, route.weight) == (10, 5)
                assert routes.ttl_seconds == 120
                assert routes.expires_at.seconds > routes.issued_at.seconds
        filtered = await resolve(
            w, w.solarco, by_id(device), program_id=PROGRAM, protocol=common_pb2.PROTOCOL_OPENVPP_GRPC
        )
        assert filtered.program_id == PROGRAM
        async with w.channel(w.solarco) as channel:
            stub = routing(channel)
            await expect_error(
                stub.Resolve(pb.ResolveRequest(device=by_id(device), protocol=common_pb2.PROTOCOL_OCPP_1_6)),
                grpc.StatusCode.FAILED_PRECONDITION,
                "NO_ROUTE_FOR_PROTOCOL",
            )
            await expect_error(
                stub.Resolve(pb.ResolveRequest(device=by_id(device), program_id="pge/dr")),
                grpc.StatusCode.FAILED_PRECONDITION,
                "NOT_ENROLLED_IN_PROGRAM",
            )
            await expect_error(
                stub.Resolve(pb.ResolveRequest(device=by_id(device), program_id="Bad")),
                grpc.StatusCode.INVALID_ARGUMENT,
                "INVALID_NAME",
                "program_id",
            )
            await expect_error(
                stub.Resolve(pb.ResolveRequest(device=common_pb2.DeviceIdentifier(name="nope.solarco"))),
                grpc.StatusCode.NOT_FOUND,
                "DEVICE_NOT_FOUND",
            )
            await expect_error(
                stub.Resolve(pb.ResolveRequest()), grpc.StatusCode.INVALID_ARGUMENT, "EMPTY_FIELD", "device"
            )
        await resolve_error(w, w.voltbox, device, grpc.StatusCode.PERMISSION_DENIED, "CROSS_TENANT")


async def test_a_tampered_answer_fails_verification(fabric: Fabric, tmp_path: Path) -> None:
    import pytest
    from cryptography.exceptions import InvalidSignature

    async with world(fabric, tmp_path) as w:
        device = await w.register(w.solarco, "solarco", "inv-1")
        await w.enroll(w.solarco, device)
        async with w.channel(w.solarco) as channel:
            stub = routing(channel)
            key = await stub.GetRoutingKey(pb.GetRoutingKeyRequest())
            signed = (await stub.Resolve(pb.ResolveRequest(device=by_id(device)))).routes
        assert key.key_id == signed.key_id
        forged = pb.RouteSet.FromString(signed.route_set)
        forged.routes[0].url = "https://attacker.example"
        with pytest.raises(InvalidSignature):
            verify(pb.SignedRoutes(route_set=forged.SerializeToString(), signature=signed.signature), key)


async def test_routes_disappear_with_any_broken_link_and_come_back(fabric: Fabric, tmp_path: Path) -> None:
    async with world(fabric, tmp_path) as w:
        device = await w.register(w.solarco, "solarco", "inv-1")
        await w.enroll(w.solarco, device)
        await resolve(w, w.utility, by_id(device))
        status = registry_pb2.SetDeviceStatusRequest(
            der_id=str(device.pubkey()), status=common_pb2.DEVICE_STATUS_SUSPENDED, reason="tamper alarm"
        )
        async with w.channel(w.solarco) as channel:
            await registry(channel).SetDeviceStatus(status)
        await resolve_error(w, w.utility, device, grpc.StatusCode.FAILED_PRECONDITION, "DEVICE_SUSPENDED")
        status.status = common_pb2.DEVICE_STATUS_ACTIVE
        async with w.channel(w.solarco) as channel:
            await registry(channel).SetDeviceStatus(status)
        await resolve(w, w.utility, by_id(device))
        operator = w.fabric.data_dir / "operator"
        for namespace, reason, asker in (
            ("solarco", "VENDOR_SUSPENDED", w.utility),
            ("pge", "UTILITY_SUSPENDED", w.solarco),
        ):
            async with w.channel(operator) as channel:
                await integration(channel).SuspendPartner(
                    integration_pb2.SuspendPartnerRequest(namespace=namespace, reason="audit")
                )
            await resolve_error(w, asker, device, grpc.StatusCode.FAILED_PRECONDITION, reason)
            async with w.channel(operator) as channel:
                await integration(channel).ReinstatePartner(
                    integration_pb2.ReinstatePartnerRequest(namespace=namespace, reason="ok")
                )
            await resolve(w, asker, by_id(device))
        async with w.channel(w.utility) as channel:
            await routing(channel).DetachEndpoint(pb.DetachEndpointRequest(program_id=PROGRAM, endpoint_id="pge/vtn"))
        await resolve_error(w, w.solarco, device, grpc.StatusCode.FAILED_PRECONDITION, "NO_VALIDATED_ENDPOINT")
        async with w.channel(w.utility) as channel:
            await routing(channel).AttachEndpoint(
                pb.AttachEndpointRequest(program_id=PROGRAM, endpoint_id="pge/vtn", priority=1)
            )
        await resolve(w, w.solarco, by_id(device))
        async with w.channel(w.solarco) as channel:
            await routing(channel).UnenrollDevice(
                pb.UnenrollDeviceRequest(program_id=PROGRAM, device=by_id(device), reason="moved out")
            )
        await resolve_error(w, w.solarco, device, grpc.StatusCode.FAILED_PRECONDITION, "NOT_ENROLLED")
        # No longer enrolled with the utility: it no longer sees the device at all.
        await resolve_error(w, w.utility, device, grpc.StatusCode.PERMISSION_DENIED, "CROSS_TENANT")
    # The endpoint server is gone: re-validation fails and the route with it.
    async with w.channel(w.solarco) as channel:
        await routing(channel).EnrollDevice(
            pb.EnrollDeviceRequest(
                program_id=PROGRAM, device=by_id(device), account_ref="ACCT-1", consent=consent_for(device)
            )
        )
    async with w.channel(w.utility) as channel:
        failed = (
            await integration(channel).ValidateEndpoint(integration_pb2.ValidateEndpointRequest(endpoint_id="pge/vtn"))
        ).endpoint
    assert failed.state == integration_pb2.ENDPOINT_STATE_FAILED
    await resolve_error(w, w.solarco, device, grpc.StatusCode.FAILED_PRECONDITION, "NO_VALIDATED_ENDPOINT")


def device_certificate(common_name: str) -> bytes:
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=3650))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.DER)


async def test_a_2030_5_certificate_gives_lfdi_and_sfdi_aliases(fabric: Fabric, tmp_path: Path) -> None:
    import hashlib

    from openvpp.registry.identifiers import sfdi_check_digit

    async with world(fabric, tmp_path) as w:
        device = await w.register(w.solarco, "solarco", "inv-1")
        await w.enroll(w.solarco, device)
        der = device_certificate("inv-1")
        request = registry_pb2.RegisterDeviceCertificateRequest(der_id=str(device.pubkey()), certificate_der=der)
        async with w.channel(w.solarco) as channel:
            # The negative answer is cached first; registering must make the new identifiers resolvable at once.
            lfdi_expected = hashlib.sha256(der).hexdigest()[:40].upper()
            await expect_error(
                routing(channel).Resolve(pb.ResolveRequest(device=common_pb2.DeviceIdentifier(any=lfdi_expected))),
                grpc.StatusCode.NOT_FOUND,
                "DEVICE_NOT_FOUND",
            )
            reply = await registry(channel).RegisterDeviceCertificate(request)
            again = await registry(channel).RegisterDeviceCertificate(request)
        assert reply.lfdi == lfdi_expected
        value = int(reply.lfdi[:9], 16)
        assert reply.sfdi == f"{value}{sfdi_check_digit(value)}"
        assert again == reply, "registering the same certificate twice is idempotent"
        for alias in (
            common_pb2.Alias(kind=common_pb2.ALIAS_KIND_LFDI, value=reply.lfdi),
            common_pb2.Alias(kind=common_pb2.ALIAS_KIND_SFDI, value=reply.sfdi),
        ):
            routes = await resolve(w, w.utility, common_pb2.DeviceIdentifier(alias=alias))
            assert routes.der_id == str(device.pubkey())
        other = await w.register(w.solarco, "solarco", "inv-2")
        async with w.channel(w.solarco) as channel:
            stub = registry(channel)
            await expect_error(
                stub.RegisterDeviceCertificate(
                    registry_pb2.RegisterDeviceCertificateRequest(der_id=str(other.pubkey()), certificate_der=der)
                ),
                grpc.StatusCode.ALREADY_EXISTS,
                "ALIAS_TAKEN",
            )
            await expect_error(
                stub.RegisterDeviceCertificate(
                    registry_pb2.RegisterDeviceCertificateRequest(
                        der_id=str(other.pubkey()), certificate_der=b"not der"
                    )
                ),
                grpc.StatusCode.INVALID_ARGUMENT,
                "INVALID_CERTIFICATE",
                "certificate_der",
            )
        async with w.channel(w.voltbox) as channel:
            await expect_error(
                registry(channel).RegisterDeviceCertificate(
                    registry_pb2.RegisterDeviceCertificateRequest(
                        der_id=str(other.pubkey()), certificate_der=device_certificate("x")
                    )
                ),
                grpc.StatusCode.PERMISSION_DENIED,
                "CROSS_TENANT",
            )
        # A record update keeps the derived aliases.
        async with w.channel(w.solarco) as channel:
            update = factories.signed(device, "inv-1", version=2)
            await registry(channel).UpdateDevice(registry_pb2.UpdateDeviceRequest(signed_record=update))
        routes = await resolve(w, w.solarco, common_pb2.DeviceIdentifier(any=reply.sfdi))
        assert routes.der_id == str(device.pubkey())
