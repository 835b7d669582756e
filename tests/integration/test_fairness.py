"""Per-partner limits: a partner past its share is told so, with RetryInfo,
and another partner is served meanwhile."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from openvpp import errors
from openvpp.integration import ca
from openvpp.server.auth import PartnerLimits
from openvpp.v1 import registry_pb2
from tests.integration.mtls import Fabric, registry
from tests.rpc import expect_error


def _retry_delay(exc: grpc.aio.AioRpcError) -> float:
    status = rpc_status.from_call(exc)  # type: ignore[arg-type]
    assert status is not None
    for detail in status.details:
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            return float(info.retry_delay.ToTimedelta().total_seconds())
    raise AssertionError("no RetryInfo")


@pytest.mark.settings(max_streams_per_partner=1)
async def test_a_partner_past_its_streams_is_refused_while_another_is_served(fabric: Fabric) -> None:
    flooder = await fabric.onboard(ca.Role.DEVICE_VENDOR, "solarco")
    other = await fabric.onboard(ca.Role.DEVICE_VENDOR, "voltbox")
    async with fabric.channel(flooder) as a, fabric.channel(other) as b:
        held: Any = registry(a).WatchRegistry(registry_pb2.WatchRegistryRequest(follow=True))
        await held.read()  # the caught-up marker: the stream is open and counted
        second: Any = registry(a).WatchRegistry(registry_pb2.WatchRegistryRequest(follow=True))
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await second.read()
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert _retry_delay(caught.value) > 0
        await expect_error(_first(registry(a)), grpc.StatusCode.RESOURCE_EXHAUSTED, "PARTNER_STREAM_LIMIT")
        # Unary calls and the other partner's streams are not affected.
        await registry(a).GetRegistryHead(registry_pb2.GetRegistryHeadRequest())
        theirs: Any = registry(b).WatchRegistry(registry_pb2.WatchRegistryRequest(follow=True))
        await theirs.read()
        theirs.cancel()
        held.cancel()
        await asyncio.sleep(0.2)
        again: Any = registry(a).WatchRegistry(registry_pb2.WatchRegistryRequest(follow=False))
        assert [r async for r in again]


async def _first(stub: Any) -> None:
    async for _ in stub.WatchRegistry(registry_pb2.WatchRegistryRequest(follow=True)):
        return


async def test_calls_wait_their_turn_within_a_share_and_are_refused_past_it() -> None:
    limits = PartnerLimits(calls=3, streams=1, active=1)
    order: list[str] = []
    release = asyncio.Event()

    async def call(namespace: str, name: str) -> None:
        gate = limits.enter(namespace, False)
        assert gate is not None
        try:
            async with gate:
                order.append(name)
                await release.wait()
        finally:
            limits.leave(namespace, False)

    first = asyncio.create_task(call("a", "a1"))
    second = asyncio.create_task(call("a", "a2"))
    third = asyncio.create_task(call("a", "a3"))
    other = asyncio.create_task(call("b", "b1"))
    await asyncio.sleep(0.05)
    # a2 and a3 queue behind a1 inside a's share; b runs at once.
    assert order == ["a1", "b1"]
    with pytest.raises(errors.ResourceExhausted) as caught:
        limits.enter("a", False)
    assert caught.value.reason == "PARTNER_CALL_LIMIT"
    assert caught.value.retry_after_seconds
    release.set()
    await asyncio.gather(first, second, third, other)
    assert sorted(order) == ["a1", "a2", "a3", "b1"]
    assert limits.held == {False: {}, True: {}}
