"""BulkRegisterDevices: one verdict per device; one bad device never rejects the rest."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING

import grpc
from solders.keypair import Keypair

from openvpp.client.errors import describe_status
from openvpp.v1 import common_pb2, registry_pb2
from tests import factories
from tests.rpc import expect_error

if TYPE_CHECKING:
    from openvpp.v1.registry_pb2_grpc import RegistryServiceAsyncStub as Stub


async def stream(
    chunks: Sequence[Sequence[registry_pb2.SignedDeviceRecord]],
) -> AsyncIterator[registry_pb2.BulkRegisterDevicesRequest]:
    for chunk in chunks:
        yield registry_pb2.BulkRegisterDevicesRequest(signed_records=chunk)


async def test_mixed_stream_gets_one_precise_verdict_per_device(registry: Stub) -> None:
    keys = [Keypair() for _ in range(7)]
    good = [factories.signed(k, f"dev-{i}") for i, k in enumerate(keys[:5])]
    forged = registry_pb2.SignedDeviceRecord(
        record=factories.signed(keys[5], "dev-5").record, signature=good[0].signature
    )
    same_name_in_batch = factories.signed(keys[6], "dev-1")
    replay = good[2]
    chunks = [[good[0], good[1], forged], [same_name_in_batch, good[2], replay], [good[3], good[4]]]
    response = await registry.BulkRegisterDevices(stream(chunks))
    verdicts = [(v.index, describe_status(v.status).reason or "OK") for v in response.verdicts]
    assert verdicts == [
        (0, "OK"),
        (1, "OK"),
        (2, "BAD_SIGNATURE"),
        (3, "NAME_TAKEN"),
        (4, "OK"),
        (5, "DEVICE_EXISTS"),
        (6, "OK"),
        (7, "OK"),
    ]
    assert (response.accepted, response.rejected) == (5, 3)
    assert response.verdicts[2].status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert describe_status(response.verdicts[2].status).fields[0][0] == "signed_records[2].signature"
    assert response.verdicts[3].status.code == grpc.StatusCode.ALREADY_EXISTS.value[0]
    assert [v.log_seq for v in response.verdicts if v.status.code == 0] == [1, 2, 3, 4, 5]
    listed = await registry.ListDevices(registry_pb2.ListDevicesRequest())
    assert {d.der_id for d in listed.devices} == {str(k.pubkey()) for k in keys[:5]}


async def test_alias_claimed_twice_in_one_chunk_goes_to_the_first(registry: Stub) -> None:
    a, b = Keypair(), Keypair()
    shared = [common_pb2.Alias(kind=common_pb2.ALIAS_KIND_OCPP_CHARGE_POINT_ID, value="CP-1")]
    response = await registry.BulkRegisterDevices(
        stream([[factories.signed(a, "evse-a", aliases=shared), factories.signed(b, "evse-b", aliases=shared)]])
    )
    assert [describe_status(v.status).reason for v in response.verdicts] == ["", "ALIAS_TAKEN"]
    assert response.verdicts[0].der_id == str(a.pubkey())


async def test_empty_stream_is_an_empty_answer(registry: Stub) -> None:
    response = await registry.BulkRegisterDevices(stream([]))
    assert (len(response.verdicts), response.accepted, response.rejected) == (0, 0, 0)


async def test_oversized_chunk_is_resource_exhausted_after_earlier_chunks_committed(registry: Stub) -> None:
    first = [factories.signed(Keypair(), f"ok-{i}") for i in range(3)]
    too_many = [factories.signed(Keypair(), f"big-{i}") for i in range(501)]
    error = await expect_error(
        registry.BulkRegisterDevices(stream([first, too_many])), grpc.StatusCode.RESOURCE_EXHAUSTED, "CHUNK_TOO_LARGE"
    )
    assert "500" in error.message
    head = await registry.GetRegistryHead(registry_pb2.GetRegistryHeadRequest())
    assert head.tree_size == 3
