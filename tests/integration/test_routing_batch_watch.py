"""ResolveBatch (one answer per identifier), WatchRoutes (resumable, tenant-filtered) and Diagnose."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
from google.rpc import error_details_pb2

from openvpp.v1 import common_pb2, integration_pb2, registry_pb2
from openvpp.v1 import routing_pb2 as pb
from tests.integration.mtls import Fabric, integration, registry
from tests.integration.routing_world import PROGRAM, World, routing, verify, world
from tests.rpc import expect_error


def reason_of(status: object) -> str:
    for detail in status.details:  # type: ignore[attr-defined]
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return str(info.reason)
    return ""


async def test_resolve_batch_answers_each_identifier_in_order(fabric: Fabric, tmp_path: Path) -> None:
    async with world(fabric, tmp_path) as w:
        enrolled = [await w.register(w.solarco, "solarco", f"inv-{i}") for i in range(40)]
        for device in enrolled:
            await w.enroll(w.solarco, device)
        await w.register(w.solarco, "solarco", "idle")
        foreign = await w.register(w.voltbox, "voltbox", "ev-1")
        identifiers = [str(d.pubkey()) for d in enrolled] + [
            "idle.solarco",
            str(foreign.pubkey()),
            "no-such-device",
            "",
            "inv-3.solarco",
        ]
        async with w.channel(w.solarco) as channel:
            stub = routing(channel)
            key = await stub.GetRoutingKey(pb.GetRoutingKeyRequest())
            for _ in range(2):  # cold, then from the cache
                answers = (await stub.ResolveBatch(pb.ResolveBatchRequest(identifiers=identifiers))).answers
                assert len(answers) == len(identifiers)
                for device, answer in zip(enrolled, answers[: len(enrolled)], strict=True):
                    assert verify(answer.routes, key).der_id == str(device.pubkey())
                tail = answers[len(enrolled) :]
                assert [a.WhichOneof("result") for a in tail] == ["error", "error", "error", "error", "routes"]
                codes = [
                    grpc.StatusCode.FAILED_PRECONDITION,
                    grpc.StatusCode.PERMISSION_DENIED,
                    grpc.StatusCode.NOT_FOUND,
                    grpc.StatusCode.INVALID_ARGUMENT,
                ]
                assert [a.error.code for a in tail[:4]] == [c.value[0] for c in codes]
                assert [reason_of(a.error) for a in tail[:4]] == [
                    "NOT_ENROLLED",
                    "CROSS_TENANT",
                    "DEVICE_NOT_FOUND",
                    "EMPTY_FIELD",
                ]
                assert verify(tail[4].routes, key).device_name == "inv-3.solarco"
            filtered = await stub.ResolveBatch(
                pb.ResolveBatchRequest(identifiers=identifiers[:2], protocol=common_pb2.PROTOCOL_OCPP_2_0_1)
            )
            assert {reason_of(a.error) for a in filtered.answers} == {"NO_ROUTE_FOR_PROTOCOL"}


async def test_batch_size_is_bounded(fabric: Fabric, tmp_path: Path) -> None:
    async with world(fabric, tmp_path) as w, w.channel(w.solarco) as channel:
        limit = w.fabric.app.settings.max_resolve_batch
        with_too_many = pb.ResolveBatchRequest(identifiers=["x"] * (limit + 1))
        await expect_error(
            routing(channel).ResolveBatch(with_too_many), grpc.StatusCode.INVALID_ARGUMENT, "TOO_MANY", "identifiers"
        )


async def drain(w: World, bundle: Path, after: int) -> tuple[list[pb.RouteEvent], int]:
    events: list[pb.RouteEvent] = []
    head = -1
    async with w.channel(bundle) as channel:
        async for item in routing(channel).WatchRoutes(pb.WatchRoutesRequest(after_seq=after)):
            if item.HasField("caught_up"):
                head = item.caught_up.head_seq
            else:
                events.append(item.change)
    return events, head


async def test_watch_routes_is_filtered_and_resumes_without_gaps(fabric: Fabric, tmp_path: Path) -> None:
    async with world(fabric, tmp_path) as w:
        mine = [await w.register(w.solarco, "solarco", f"inv-{i}") for i in range(3)]
        theirs = await w.register(w.voltbox, "voltbox", "ev-1")
        await w.enroll(w.solarco, mine[0])
        await w.enroll(w.voltbox, theirs)
        await w.enroll(w.solarco, mine[1])
        everything, head = await drain(w, w.fabric.data_dir / "operator", 0)
        assert [e.seq for e in everything] == list(range(1, head + 1)), "the operator sees every change, gap-free"
        first, cursor = await drain(w, w.solarco, 0)
        assert [e.kind for e in first] == [
            pb.ROUTE_EVENT_KIND_ENDPOINT_ATTACHED,
            pb.ROUTE_EVENT_KIND_ENROLLED,
            pb.ROUTE_EVENT_KIND_ENROLLED,
        ]
        assert {e.der_id for e in first if e.der_id} == {str(mine[0].pubkey()), str(mine[1].pubkey())}
        assert cursor == head
        # Changes while away: a device suspension, an unenrolment, the endpoint failing.
        async with w.channel(w.solarco) as channel:
            await registry(channel).SetDeviceStatus(
                registry_pb2.SetDeviceStatusRequest(
                    der_id=str(mine[1].pubkey()), status=common_pb2.DEVICE_STATUS_SUSPENDED, reason="fault"
                )
            )
            await routing(channel).UnenrollDevice(
                pb.UnenrollDeviceRequest(
                    program_id=PROGRAM, device=common_pb2.DeviceIdentifier(der_id=str(mine[0].pubkey())), reason="sold"
                )
            )
        async with w.channel(w.voltbox) as channel:
            await routing(channel).UnenrollDevice(
                pb.UnenrollDeviceRequest(
                    program_id=PROGRAM, device=common_pb2.DeviceIdentifier(der_id=str(theirs.pubkey())), reason="x"
                )
            )
    async with w.channel(w.utility) as channel:
        await integration(channel).ValidateEndpoint(integration_pb2.ValidateEndpointRequest(endpoint_id="pge/vtn"))
    resumed, _ = await drain(w, w.solarco, cursor)
    assert [e.kind for e in resumed] == [
        pb.ROUTE_EVENT_KIND_DEVICE_STATUS,
        pb.ROUTE_EVENT_KIND_UNENROLLED,
        pb.ROUTE_EVENT_KIND_ENDPOINT_FAILED,
    ]
    assert all(e.seq > cursor for e in resumed)
    utility_view, _ = await drain(w, w.utility, 0)
    assert {e.der_id for e in utility_view if e.der_id} == {str(d.pubkey()) for d in (mine[0], mine[1], theirs)}


async def test_watch_follows_live_changes(fabric: Fabric, tmp_path: Path) -> None:
    async with world(fabric, tmp_path) as w:
        device = await w.register(w.solarco, "solarco", "inv-1")
        seen: list[pb.RouteEvent] = []
        async with w.channel(w.solarco) as channel:
            stream = routing(channel).WatchRoutes(pb.WatchRoutesRequest(follow=True))
            async for item in stream:
                if item.HasField("caught_up"):
                    asyncio.get_running_loop().create_task(w.enroll(w.solarco, device))
                    continue
                seen.append(item.change)
                if item.change.kind == pb.ROUTE_EVENT_KIND_ENROLLED:
                    break
            stream.cancel()
        assert seen[-1].der_id == str(device.pubkey())


async def test_diagnose_names_the_broken_link(fabric: Fabric, tmp_path: Path) -> None:
    async with world(fabric, tmp_path) as w:
        device = await w.register(w.solarco, "solarco", "inv-1")
        identifier = common_pb2.DeviceIdentifier(der_id=str(device.pubkey()))

        async def diagnose(bundle: Path, ident: common_pb2.DeviceIdentifier = identifier) -> pb.DiagnoseResponse:
            async with w.channel(bundle) as channel:
                return await routing(channel).Diagnose(pb.DiagnoseRequest(device=ident))

        def failing(answer: pb.DiagnoseResponse) -> str:
            return next(c.name for c in answer.checks if c.state == pb.CHECK_STATE_FAIL)

        missing = await diagnose(w.solarco, common_pb2.DeviceIdentifier(name="ghost.solarco"))
        assert failing(missing) == "registered"
        assert not missing.routable
        assert failing(await diagnose(w.solarco)) == "enrolled"
        await w.enroll(w.solarco, device)
        healthy = await diagnose(w.utility)
        assert healthy.routable
        assert [c.state for c in healthy.checks] == [pb.CHECK_STATE_PASS] * 8
        async with w.channel(w.fabric.data_dir / "operator") as channel:
            await integration(channel).SuspendPartner(
                integration_pb2.SuspendPartnerRequest(namespace="pge", reason="audit")
            )
        broken = await diagnose(w.solarco)
        assert failing(broken) == "utility_active"
        assert broken.checks[-1].state == pb.CHECK_STATE_SKIPPED
        assert "ReinstatePartner" in next(c.remedy for c in broken.checks if c.state == pb.CHECK_STATE_FAIL)
        async with w.channel(w.voltbox) as channel:
            await expect_error(
                routing(channel).Diagnose(pb.DiagnoseRequest(device=identifier)),
                grpc.StatusCode.PERMISSION_DENIED,
                "CROSS_TENANT",
            )
