"""Programs and enrollment refusals: exact status codes, and nothing written."""

from __future__ import annotations

from pathlib import Path

import grpc
from solders.keypair import Keypair

from openvpp.integration import ca
from openvpp.v1 import common_pb2, integration_pb2, registry_pb2
from openvpp.v1 import routing_pb2 as pb
from tests.integration.mtls import Fabric, integration, registry
from tests.integration.routing_world import PROGRAM, consent_for, routing, world
from tests.rpc import expect_error


def enroll_request(device: Keypair, **overrides: object) -> pb.EnrollDeviceRequest:
    fields: dict[str, object] = {
        "program_id": PROGRAM,
        "device": common_pb2.DeviceIdentifier(der_id=str(device.pubkey())),
        "account_ref": "ACCT-1",
        "consent": consent_for(device),
    } | overrides
    return pb.EnrollDeviceRequest(**fields)  # type: ignore[arg-type]


async def test_program_refusals(fabric: Fabric, tmp_path: Path) -> None:
    async with world(fabric, tmp_path) as w:
        async with w.channel(w.utility) as channel:
            stub = routing(channel)
            await expect_error(
                stub.CreateProgram(pb.CreateProgramRequest(code="nem", name="x", kind=pb.PROGRAM_KIND_REWARDS)),
                grpc.StatusCode.ALREADY_EXISTS,
                "PROGRAM_EXISTS",
                "code",
            )
            await expect_error(
                stub.CreateProgram(pb.CreateProgramRequest(code="Bad Code", name="x", kind=pb.PROGRAM_KIND_REWARDS)),
                grpc.StatusCode.INVALID_ARGUMENT,
                "INVALID_NAME",
                "code",
            )
            await expect_error(
                stub.CreateProgram(pb.CreateProgramRequest(code="dr", name="x")),
                grpc.StatusCode.INVALID_ARGUMENT,
                "INVALID_ENUM",
                "kind",
            )
            await expect_error(
                stub.CreateProgram(
                    pb.CreateProgramRequest(code="dr", name="x", kind=pb.PROGRAM_KIND_REWARDS, route_ttl_seconds=1)
                ),
                grpc.StatusCode.INVALID_ARGUMENT,
                "OUT_OF_RANGE",
                "route_ttl_seconds",
            )
            await expect_error(
                stub.CreateProgram(
                    pb.CreateProgramRequest(
                        utility_namespace="other", code="dr", name="x", kind=pb.PROGRAM_KIND_REWARDS
                    )
                ),
                grpc.StatusCode.PERMISSION_DENIED,
                "CROSS_TENANT",
            )
            await expect_error(
                stub.AttachEndpoint(pb.AttachEndpointRequest(program_id="pge/none", endpoint_id="pge/vtn")),
                grpc.StatusCode.NOT_FOUND,
                "PROGRAM_NOT_FOUND",
            )
            await expect_error(
                stub.AttachEndpoint(pb.AttachEndpointRequest(program_id=PROGRAM, endpoint_id="pge/none")),
                grpc.StatusCode.NOT_FOUND,
                "ENDPOINT_NOT_FOUND",
            )
            await expect_error(
                stub.AttachEndpoint(pb.AttachEndpointRequest(program_id=PROGRAM, endpoint_id="pge/vtn", weight=70000)),
                grpc.StatusCode.INVALID_ARGUMENT,
                "OUT_OF_RANGE",
                "weight",
            )
            await expect_error(
                stub.DetachEndpoint(pb.DetachEndpointRequest(program_id=PROGRAM, endpoint_id="pge/other")),
                grpc.StatusCode.NOT_FOUND,
                "ENDPOINT_NOT_ATTACHED",
            )
            # An endpoint that failed its probe cannot be attached.
            await integration(channel).RegisterEndpoint(
                integration_pb2.RegisterEndpointRequest(
                    name="dead", url="https://localhost:1", protocol=integration_pb2.ENDPOINT_PROTOCOL_HTTPS
                )
            )
            await expect_error(
                stub.AttachEndpoint(pb.AttachEndpointRequest(program_id=PROGRAM, endpoint_id="pge/dead")),
                grpc.StatusCode.FAILED_PRECONDITION,
                "ENDPOINT_NOT_VALIDATED",
            )
        async with w.channel(w.solarco) as channel:
            stub = routing(channel)
            await expect_error(
                stub.CreateProgram(pb.CreateProgramRequest(code="x", name="x", kind=pb.PROGRAM_KIND_REWARDS)),
                grpc.StatusCode.PERMISSION_DENIED,
                "ROLE_NOT_ALLOWED",
            )
            await expect_error(
                stub.AttachEndpoint(pb.AttachEndpointRequest(program_id=PROGRAM, endpoint_id="pge/vtn")),
                grpc.StatusCode.PERMISSION_DENIED,
                "ROLE_NOT_ALLOWED",
            )
            visible = await stub.ListPrograms(pb.ListProgramsRequest())
            assert [p.program_id for p in visible.programs] == [PROGRAM]
        async with w.channel(w.fabric.data_dir / "operator") as channel:
            await expect_error(
                routing(channel).CreateProgram(
                    pb.CreateProgramRequest(
                        utility_namespace="solarco", code="x", name="x", kind=pb.PROGRAM_KIND_REWARDS
                    )
                ),
                grpc.StatusCode.FAILED_PRECONDITION,
                "NOT_A_UTILITY",
            )
            program = (await routing(channel).GetProgram(pb.GetProgramRequest(program_id=PROGRAM))).program
        assert [(e.endpoint_id, e.priority, e.weight) for e in program.endpoints] == [("pge/vtn", 10, 5)]


async def test_enrollment_refusals_write_nothing(fabric: Fabric, tmp_path: Path) -> None:
    async with world(fabric, tmp_path) as w:
        device = await w.register(w.solarco, "solarco", "inv-1")
        foreign = await w.register(w.voltbox, "voltbox", "ev-1")
        stranger = Keypair()
        cases = [
            (w.solarco, enroll_request(device, account_ref=""), grpc.StatusCode.INVALID_ARGUMENT, "INVALID_TEXT"),
            (
                w.solarco,
                enroll_request(device, consent=consent_for(device, program="pge/other")),
                grpc.StatusCode.INVALID_ARGUMENT,
                "CONSENT_MISMATCH",
            ),
            (
                w.solarco,
                enroll_request(device, consent=consent_for(device, account="ACCT-2")),
                grpc.StatusCode.INVALID_ARGUMENT,
                "CONSENT_MISMATCH",
            ),
            (
                w.solarco,
                enroll_request(device, consent=consent_for(device, signer=stranger)),
                grpc.StatusCode.INVALID_ARGUMENT,
                "BAD_SIGNATURE",
            ),
            (
                w.solarco,
                enroll_request(device, consent=consent_for(device, days=-1)),
                grpc.StatusCode.FAILED_PRECONDITION,
                "CONSENT_EXPIRED",
            ),
            (
                w.solarco,
                enroll_request(device, consent=consent_for(device, days=500)),
                grpc.StatusCode.INVALID_ARGUMENT,
                "CONSENT_TOO_LONG",
            ),
            (
                w.solarco,
                enroll_request(device, consent=pb.SignedConsent(payload=b"\xff\xff", signature=bytes(64))),
                grpc.StatusCode.INVALID_ARGUMENT,
                "CONSENT_UNPARSEABLE",
            ),
            (
                w.solarco,
                enroll_request(device, consent=consent_for(device, scopes=[])),
                grpc.StatusCode.INVALID_ARGUMENT,
                "INVALID_ENUM",
            ),
            (w.solarco, enroll_request(device, program_id="pge/none"), grpc.StatusCode.NOT_FOUND, "PROGRAM_NOT_FOUND"),
            (w.solarco, enroll_request(stranger), grpc.StatusCode.NOT_FOUND, "DEVICE_NOT_FOUND"),
            (w.solarco, enroll_request(foreign), grpc.StatusCode.PERMISSION_DENIED, "CROSS_TENANT"),
            (w.voltbox, enroll_request(device), grpc.StatusCode.PERMISSION_DENIED, "CROSS_TENANT"),
        ]
        for bundle, request, code, reason in cases:
            async with w.channel(bundle) as channel:
                await expect_error(routing(channel).EnrollDevice(request), code, reason)
        suspended = registry_pb2.SetDeviceStatusRequest(
            der_id=str(device.pubkey()), status=common_pb2.DEVICE_STATUS_SUSPENDED, reason="x"
        )
        async with w.channel(w.solarco) as channel:
            await registry(channel).SetDeviceStatus(suspended)
            await expect_error(
                routing(channel).EnrollDevice(enroll_request(device)),
                grpc.StatusCode.FAILED_PRECONDITION,
                "DEVICE_NOT_ACTIVE",
            )
        async with w.channel(w.fabric.data_dir / "operator") as channel:
            listed = await routing(channel).ListEnrollments(
                pb.ListEnrollmentsRequest(program_id=PROGRAM, include_unenrolled=True)
            )
        assert list(listed.enrollments) == []


async def test_one_utility_per_device_and_no_double_enrollment(fabric: Fabric, tmp_path: Path) -> None:
    async with world(fabric, tmp_path) as w:
        other = await w.fabric.onboard(ca.Role.UTILITY, "sce")
        async with w.channel(other) as channel:
            await routing(channel).CreateProgram(
                pb.CreateProgramRequest(code="dr", name="DR", kind=pb.PROGRAM_KIND_DEMAND_RESPONSE)
            )
        async with w.channel(w.utility) as channel:
            await routing(channel).CreateProgram(
                pb.CreateProgramRequest(code="dr", name="DR", kind=pb.PROGRAM_KIND_DEMAND_RESPONSE)
            )
        device = await w.register(w.solarco, "solarco", "inv-1")
        await w.enroll(w.utility, device)
        await w.enroll(w.solarco, device, "pge/dr")
        async with w.channel(w.solarco) as channel:
            stub = routing(channel)
            await expect_error(
                stub.EnrollDevice(enroll_request(device)), grpc.StatusCode.ALREADY_EXISTS, "ENROLLMENT_EXISTS"
            )
            await expect_error(
                stub.EnrollDevice(
                    enroll_request(device, program_id="sce/dr", consent=consent_for(device, program="sce/dr"))
                ),
                grpc.StatusCode.FAILED_PRECONDITION,
                "ENROLLED_WITH_ANOTHER_UTILITY",
            )
            mine = await stub.ListEnrollments(
                pb.ListEnrollmentsRequest(device=common_pb2.DeviceIdentifier(der_id=str(device.pubkey())))
            )
            assert sorted(e.program_id for e in mine.enrollments) == ["pge/dr", PROGRAM]
            await expect_error(
                stub.UnenrollDevice(
                    pb.UnenrollDeviceRequest(
                        program_id=PROGRAM, device=common_pb2.DeviceIdentifier(der_id=str(device.pubkey()))
                    )
                ),
                grpc.StatusCode.INVALID_ARGUMENT,
                "EMPTY_FIELD",
                "reason",
            )
            await expect_error(
                stub.ListEnrollments(pb.ListEnrollmentsRequest()), grpc.StatusCode.INVALID_ARGUMENT, "EMPTY_FIELD"
            )
        async with w.channel(other) as channel:
            theirs = await routing(channel).ListEnrollments(
                pb.ListEnrollmentsRequest(device=common_pb2.DeviceIdentifier(der_id=str(device.pubkey())))
            )
            assert list(theirs.enrollments) == [], "another utility sees none of the device's enrollments"


async def test_lookups_of_what_does_not_exist_and_endpoint_removal(fabric: Fabric, tmp_path: Path) -> None:
    async with world(fabric, tmp_path) as w:
        device = await w.register(w.solarco, "solarco", "inv-1")
        identifier = common_pb2.DeviceIdentifier(der_id=str(device.pubkey()))
        async with w.channel(w.solarco) as channel:
            stub = routing(channel)
            await expect_error(
                stub.GetProgram(pb.GetProgramRequest(program_id="pge/none")),
                grpc.StatusCode.NOT_FOUND,
                "PROGRAM_NOT_FOUND",
            )
            await expect_error(
                stub.UnenrollDevice(pb.UnenrollDeviceRequest(program_id=PROGRAM, device=identifier, reason="x")),
                grpc.StatusCode.NOT_FOUND,
                "ENROLLMENT_NOT_FOUND",
            )
            await expect_error(
                stub.ListEnrollments(pb.ListEnrollmentsRequest(program_id=PROGRAM, page_token="%%%")),
                grpc.StatusCode.INVALID_ARGUMENT,
                "INVALID_PAGE_TOKEN",
                "page_token",
            )
            await expect_error(
                stub.WatchRoutes(pb.WatchRoutesRequest(after_seq=10_000)).read(),
                grpc.StatusCode.FAILED_PRECONDITION,
                "CURSOR_AHEAD_OF_LOG",
            )
        await w.enroll(w.solarco, device)
        async with w.channel(w.utility) as channel:
            await integration(channel).RemoveEndpoint(integration_pb2.RemoveEndpointRequest(endpoint_id="pge/vtn"))
            program = (await routing(channel).GetProgram(pb.GetProgramRequest(program_id=PROGRAM))).program
            assert list(program.endpoints) == [], "a removed endpoint is detached from every program"
        async with w.channel(w.solarco) as channel:
            stub = routing(channel)
            await expect_error(
                stub.Resolve(pb.ResolveRequest(device=identifier)),
                grpc.StatusCode.FAILED_PRECONDITION,
                "NO_VALIDATED_ENDPOINT",
            )
            kinds = [
                item.change.kind async for item in stub.WatchRoutes(pb.WatchRoutesRequest()) if item.HasField("change")
            ]
        assert kinds[-1] == pb.ROUTE_EVENT_KIND_ENDPOINT_REMOVED
