"""The fuzz battery: hostile requests to every RPC, as the operator (who
reaches every handler), over mTLS against a server holding a small world.

For each request: never UNKNOWN or INTERNAL, never past its deadline, and a
refused request writes nothing. Afterwards the server is healthy and a
known-good call works. `OPENVPP_FUZZ_REQUESTS` sets the count (`make
api-fuzz` runs it long)."""

from __future__ import annotations

import asyncio
import os
import random
from collections import Counter
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy import func, select

from openvpp.store import schema
from openvpp.v1 import common_pb2, registry_pb2
from tests.integration import api_fuzz
from tests.integration.mtls import Fabric, registry
from tests.integration.routing_world import world
from tests.rpc import expect_error

REQUESTS = int(os.environ.get("OPENVPP_FUZZ_REQUESTS", "640"))
SEED = int(os.environ.get("OPENVPP_FUZZ_SEED", "20261202"))
DEADLINE = 20.0
STREAM_BUDGET = 1.0
NEVER = {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL, grpc.StatusCode.DEADLINE_EXCEEDED}


async def _snapshot(fabric: Fabric, skip: tuple[str, ...] = ()) -> tuple[int, ...]:
    """Row counts of every table and the sum of every update time: a refused
    request must leave both as they were. Settlement events staged by earlier
    calls are numbered first, so the background numbering pass cannot move
    rows between two snapshots."""
    if fabric.app.settlement is not None:
        await fabric.app.settlement.event_log.sequence()
    parts = []
    for table in schema.metadata.sorted_tables:
        if table.name in skip:
            continue
        parts.append(select(func.count()).select_from(table).scalar_subquery())
        if "updated_at_us" in table.c:
            parts.append(select(func.coalesce(func.sum(table.c.updated_at_us), 0)).scalar_subquery())
    async with fabric.app.db.read() as conn:
        row = (await conn.execute(select(*parts))).one()
    return tuple(int(v) for v in row)


async def _send(channel: Any, case: api_fuzz.Case) -> grpc.StatusCode:
    method = case.method
    target = api_fuzz.path(method)
    if not method.client_streaming and not method.server_streaming:
        try:
            await channel.unary_unary(target)(case.raw, timeout=DEADLINE)
        except grpc.aio.AioRpcError as exc:
            return exc.code()
        return grpc.StatusCode.OK

    async def one() -> Any:
        yield case.raw

    if method.client_streaming and not method.server_streaming:
        try:
            await channel.stream_unary(target)(one(), timeout=DEADLINE)
        except grpc.aio.AioRpcError as exc:
            return exc.code()
        return grpc.StatusCode.OK
    if method.client_streaming:
        call: Any = channel.stream_stream(target)(one(), timeout=DEADLINE)
    else:
        call = channel.unary_stream(target)(case.raw, timeout=DEADLINE)
    try:
        async with asyncio.timeout(STREAM_BUDGET):
            async for _ in call:
                pass
    except TimeoutError:
        # Still open and well-behaved (a follow stream): that is an answer too.
        call.cancel()
        return grpc.StatusCode.OK
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


@pytest.mark.settings(max_message_bytes=8 * 1024 * 1024)
async def test_hostile_requests_to_every_rpc(fabric: Fabric, tmp_path: Path) -> None:
    async with world(fabric, tmp_path) as w:
        device = await w.register(w.solarco, "solarco", "inv-1")
        await w.enroll(w.solarco, device)
        der_id = str(device.pubkey())
        pool: dict[str, list[Any]] = {
            "der_id": [der_id],
            "wallet": [der_id],
            "holder": [der_id],
            "program_id": ["pge/nem"],
            "namespace": ["pge", "solarco"],
            "utility_namespace": ["pge"],
            "vendor_namespace": ["solarco"],
            "endpoint_id": ["pge/vtn"],
            "program_ids": ["pge/nem"],
            "identifiers": [der_id],
            "code": ["nem", "tou"],
            "any": [der_id],
        }
        rng = random.Random(SEED)
        tally: Counter[str] = Counter()
        bad: list[str] = []
        async with fabric.operator() as channel:
            for case in api_fuzz.cases(rng, pool, REQUESTS):
                before = await _snapshot(fabric)
                code = await _send(channel, case)
                tally[code.name] += 1
                if code in NEVER:
                    bad.append(f"{api_fuzz.path(case.method)} {case.kind} -> {code.name}: {case.raw[:80]!r}")
                elif code is not grpc.StatusCode.OK and await _snapshot(fabric) != before:
                    bad.append(f"{api_fuzz.path(case.method)} {case.kind} -> {code.name} but wrote")
            print(f"\nfuzz: {REQUESTS} requests over {len(api_fuzz.methods())} RPCs: {dict(sorted(tally.items()))}")
            assert not bad, "\n".join(bad[:40])
            health_stub: Any = health_pb2_grpc.HealthStub(channel)
            health = await health_stub.Check(health_pb2.HealthCheckRequest())
            assert health.status == health_pb2.HealthCheckResponse.SERVING
            found = await registry(channel).GetDevice(
                registry_pb2.GetDeviceRequest(identifier=common_pb2.DeviceIdentifier(der_id=der_id))
            )
            assert found.device.der_id == der_id


async def test_a_huge_identifier_is_refused_at_the_edge_naming_the_field(fabric: Fabric) -> None:
    async with fabric.operator() as channel:
        error = await expect_error(
            registry(channel).GetDevice(
                registry_pb2.GetDeviceRequest(identifier=common_pb2.DeviceIdentifier(der_id="1" * (1024 * 1024))),
                timeout=5,
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "FIELD_TOO_LONG",
            "identifier.der_id",
        )
        assert "320" in error.message
        await expect_error(
            registry(channel).GetDevice(
                registry_pb2.GetDeviceRequest(identifier=common_pb2.DeviceIdentifier(der_id="1" * 45))
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "WRONG_KEY_LENGTH",
            "identifier.der_id",
        )
        head = await registry(channel).GetRegistryHead(registry_pb2.GetRegistryHeadRequest(), timeout=5)
        assert head.tree_size >= 0


async def test_undecodable_bytes_are_invalid_argument_on_every_rpc_kind(fabric: Fabric) -> None:
    garbage = b"\x0a\xff\xff\xff\xff\x0f"
    async with fabric.operator() as channel:
        for method in api_fuzz.methods():
            code = await _send(channel, api_fuzz.Case(method, "bytes", garbage))
            assert code == grpc.StatusCode.INVALID_ARGUMENT, api_fuzz.path(method)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await channel.unary_unary("/openvpp.v1.RegistryService/GetDevice")(garbage)  # type: ignore[arg-type]
        assert "MALFORMED_REQUEST" in str(caught.value.trailing_metadata())


async def test_integers_beyond_the_store_are_invalid_argument(fabric: Fabric) -> None:
    from openvpp.v1 import settlement_pb2, settlement_pb2_grpc

    async with fabric.operator() as channel:
        await expect_error(
            registry(channel).GetInclusionProof(registry_pb2.GetInclusionProofRequest(version=2**64 - 1)),
            grpc.StatusCode.INVALID_ARGUMENT,
            "OUT_OF_RANGE",
            "version",
        )
        stub = settlement_pb2_grpc.SettlementServiceStub(channel)
        await expect_error(
            stub.ListPayouts(settlement_pb2.ListPayoutsRequest(page_token="99999999999999999999999")),
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_PAGE_TOKEN",
            "page_token",
        )

        async def drain(request: settlement_pb2.StreamSettlementsRequest) -> None:
            async for _ in stub.StreamSettlements(request):
                pass

        await expect_error(
            drain(settlement_pb2.StreamSettlementsRequest(after_cursor=2**64 - 1)),
            grpc.StatusCode.INVALID_ARGUMENT,
            "OUT_OF_RANGE",
            "after_cursor",
        )
        # One rule for every stream: a cursor beyond the head is refused, following or not.
        for until_caught_up in (False, True):
            await expect_error(
                drain(settlement_pb2.StreamSettlementsRequest(after_cursor=10**6, until_caught_up=until_caught_up)),
                grpc.StatusCode.FAILED_PRECONDITION,
                "CURSOR_AHEAD_OF_LOG",
            )
