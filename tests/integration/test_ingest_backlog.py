"""Overload is explicit: past its backlog bound SubmitReadings refuses a
batch at once with RESOURCE_EXHAUSTED, RetryInfo and the backlog figure,
instead of stalling the sender behind flow control; the stream stays open,
the refused batch changed nothing, and resending it later succeeds."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import grpc
import pytest
from google.rpc import error_details_pb2
from solders.keypair import Keypair
from sqlalchemy import select, text

from openvpp import native
from openvpp.client.errors import describe_status
from openvpp.integration import ca
from openvpp.store import schema
from openvpp.v1 import settlement_pb2 as pb
from openvpp.v1 import settlement_pb2_grpc
from tests.integration.mtls import Fabric

STEP = 900
START = 1_800_000_000 // STEP * STEP
BATCH = 50


def _batch(batch_id: str) -> pb.SubmitReadingsRequest:
    payloads, signatures = [], []
    for i in range(BATCH):
        key = Keypair()
        payload = native.READING.pack(bytes(key.pubkey()), 1, START + STEP * (i % 4), STEP, 10, 20, 0)
        payloads.append(payload)
        signatures.append(bytes(key.sign_message(native.READING_DOMAIN + payload)))
    return pb.SubmitReadingsRequest(batch_id=batch_id, payloads=b"".join(payloads), signatures=b"".join(signatures))


async def _stream(
    stub: settlement_pb2_grpc.SettlementServiceStub, *requests: pb.SubmitReadingsRequest
) -> list[pb.SubmitReadingsResponse]:
    async def send() -> AsyncIterator[pb.SubmitReadingsRequest]:
        for r in requests:
            yield r

    return [reply async for reply in stub.SubmitReadings(send())]  # type: ignore[arg-type, attr-defined]


@pytest.mark.settings(max_ingest_backlog_readings=BATCH)
async def test_a_batch_past_the_backlog_bound_is_refused_with_a_retry_delay(fabric: Fabric) -> None:
    vendor = await fabric.onboard(ca.Role.DEVICE_VENDOR, "solarco")
    batches = schema.reading_batches
    async with fabric.channel(vendor) as channel:
        stub: settlement_pb2_grpc.SettlementServiceAsyncStub = settlement_pb2_grpc.SettlementServiceStub(channel)
        # Hold storage still: SQLite's one writer is this transaction; on
        # PostgreSQL the batch row's table is locked against inserts.
        async with fabric.app.db.write() as held:
            if held.dialect.name == "postgresql":
                await held.execute(text("LOCK TABLE reading_batches IN EXCLUSIVE MODE"))
            first = asyncio.create_task(_stream(stub, _batch("a")))
            await _until(lambda: _backlog(fabric) >= BATCH)
            (refused,) = await _stream(stub, _batch("b"))
        assert refused.batch_id == "b"
        assert refused.backlog_readings == BATCH
        error = describe_status(refused.error)
        assert (error.code, error.reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED.name, "INGEST_BACKLOG")
        retry = [d for d in refused.error.details if d.Is(error_details_pb2.RetryInfo.DESCRIPTOR)]
        assert len(retry) == 1
        (stored,) = await first
        assert stored.accepted + stored.rejected == BATCH
        assert not stored.HasField("error")
        async with fabric.app.db.read() as conn:
            refs = {r.batch_ref for r in await conn.execute(select(batches.c.batch_ref))}
        assert refs == {"a"}
        (again,) = await _stream(stub, _batch("b"))
        assert not again.HasField("error")
        assert again.backlog_readings == 0


async def _until(condition: Callable[[], bool]) -> None:
    """Polls a condition of another task's making (no event to wait on from here)."""
    async with asyncio.timeout(30):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


def _backlog(fabric: Fabric) -> int:
    ingestor = fabric.app.ingestor
    assert ingestor is not None
    return ingestor.backlog
