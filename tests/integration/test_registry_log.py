"""WatchRegistry (resume without gaps or duplicates) and Merkle inclusion proofs."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import grpc
from solders.keypair import Keypair

from openvpp.registry import merkle
from openvpp.v1 import common_pb2, registry_pb2
from tests import factories
from tests.rpc import expect_error

if TYPE_CHECKING:
    from openvpp.v1.registry_pb2_grpc import RegistryServiceAsyncStub as Stub


async def register_many(stub: Stub, count: int, start: int = 0) -> list[Keypair]:
    keys = [Keypair() for _ in range(count)]
    for i, kp in enumerate(keys):
        await stub.RegisterDevice(
            registry_pb2.RegisterDeviceRequest(signed_record=factories.signed(kp, f"d-{start + i}"))
        )
    return keys


async def drain(stub: Stub, after: int) -> tuple[list[registry_pb2.LogEntryEvent], int]:
    entries, head = [], -1
    async for event in stub.WatchRegistry(registry_pb2.WatchRegistryRequest(after_seq=after)):
        if event.HasField("caught_up"):
            head = event.caught_up.head_seq
        else:
            entries.append(event.entry)
    return entries, head


async def test_watch_from_zero_then_resume_sees_every_entry_once_and_chained(registry: Stub) -> None:
    await register_many(registry, 6)
    first, head = await drain(registry, 0)
    assert [e.seq for e in first] == [1, 2, 3, 4, 5, 6]
    assert head == 6
    await register_many(registry, 3, start=6)
    rest, head = await drain(registry, first[-1].seq)
    assert [e.seq for e in rest] == [7, 8, 9]
    previous = bytes(32)
    for event in first + rest:
        assert event.entry.prev_hash == previous
        assert merkle.leaf_hash(event.entry_bytes) == event.leaf_hash
        assert registry_pb2.LogEntry.FromString(event.entry_bytes) == event.entry
        previous = event.leaf_hash
    assert (await registry.GetRegistryHead(registry_pb2.GetRegistryHeadRequest())).head_hash == previous


async def test_follow_pushes_live_entries_in_order(registry: Stub) -> None:
    keys = await register_many(registry, 2)
    call = registry.WatchRegistry(registry_pb2.WatchRegistryRequest(after_seq=1, follow=True))
    received: list[int] = []

    async def reader() -> None:
        async for event in call:
            if event.HasField("entry"):
                received.append(event.entry.seq)
                if len(received) == 3:
                    return

    task = asyncio.create_task(reader())
    await registry.SetDeviceStatus(
        registry_pb2.SetDeviceStatusRequest(
            der_id=str(keys[0].pubkey()), status=common_pb2.DEVICE_STATUS_SUSPENDED, reason="test"
        )
    )
    await register_many(registry, 1, start=10)
    await asyncio.wait_for(task, 10)
    call.cancel()
    assert received == [2, 3, 4]


async def test_watch_cursor_beyond_the_head_is_failed_precondition(registry: Stub) -> None:
    await register_many(registry, 1)
    await expect_error(drain(registry, 5), grpc.StatusCode.FAILED_PRECONDITION, "CURSOR_AHEAD_OF_LOG")


async def test_every_entry_has_a_proof_against_every_later_root(registry: Stub) -> None:
    keys = await register_many(registry, 7)
    for size in range(1, 8):
        for seq in range(1, size + 1):
            proof = await registry.GetInclusionProof(registry_pb2.GetInclusionProofRequest(seq=seq, tree_size=size))
            assert proof.leaf_index == seq - 1
            assert merkle.verify_inclusion(
                merkle.leaf_hash(proof.entry_bytes), proof.leaf_index, size, proof.audit_path, proof.root_hash
            )
    head = await registry.GetRegistryHead(registry_pb2.GetRegistryHeadRequest())
    by_device = await registry.GetInclusionProof(
        registry_pb2.GetInclusionProofRequest(der_id=str(keys[3].pubkey()), version=1)
    )
    assert by_device.root_hash == head.root_hash
    entry = registry_pb2.LogEntry.FromString(by_device.entry_bytes)
    assert entry.der_id == str(keys[3].pubkey())
    assert entry.signed_record == factories.signed(keys[3], "d-3")


async def test_bad_proof_requests(registry: Stub) -> None:
    keys = await register_many(registry, 2)
    cases = [
        (registry_pb2.GetInclusionProofRequest(seq=3), grpc.StatusCode.NOT_FOUND, "NOT_IN_LOG"),
        (registry_pb2.GetInclusionProofRequest(seq=2, tree_size=1), grpc.StatusCode.INVALID_ARGUMENT, "OUT_OF_RANGE"),
        (registry_pb2.GetInclusionProofRequest(seq=1, tree_size=9), grpc.StatusCode.INVALID_ARGUMENT, "OUT_OF_RANGE"),
        (registry_pb2.GetInclusionProofRequest(der_id="0OIl"), grpc.StatusCode.INVALID_ARGUMENT, "MALFORMED_BASE58"),
        (registry_pb2.GetInclusionProofRequest(), grpc.StatusCode.INVALID_ARGUMENT, "EMPTY_FIELD"),
        (
            registry_pb2.GetInclusionProofRequest(der_id=str(keys[0].pubkey()), version=2),
            grpc.StatusCode.NOT_FOUND,
            "NOT_IN_LOG",
        ),
    ]
    for request, code, reason in cases:
        await expect_error(registry.GetInclusionProof(request), code, reason)


async def test_concurrent_writers_leave_a_contiguous_intact_chain(registry: Stub) -> None:
    keys = [Keypair() for _ in range(24)]

    async def one(i: int, kp: Keypair) -> int:
        if i % 3 == 0:
            reply = await registry.BulkRegisterDevices(_chunk([factories.signed(kp, f"c-{i}")]))
            return reply.verdicts[0].log_seq
        response = await registry.RegisterDevice(
            registry_pb2.RegisterDeviceRequest(signed_record=factories.signed(kp, f"c-{i}"))
        )
        return response.log_seq

    seqs = await asyncio.gather(*(one(i, kp) for i, kp in enumerate(keys)))
    assert sorted(seqs) == list(range(1, 25))
    entries, _ = await drain(registry, 0)
    previous = bytes(32)
    for event in entries:
        assert event.entry.prev_hash == previous
        previous = event.leaf_hash
    head = await registry.GetRegistryHead(registry_pb2.GetRegistryHeadRequest())
    assert head.root_hash == merkle.root([e.leaf_hash for e in entries])


async def _chunk(records: list[registry_pb2.SignedDeviceRecord]):  # type: ignore[no-untyped-def]
    yield registry_pb2.BulkRegisterDevicesRequest(signed_records=records)
