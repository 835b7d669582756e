"""Settlement events streamed from a cursor, a crash at any step of paying,
and one trace from a reading batch to its payout's signature."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy import select

from openvpp.integration import ca
from openvpp.server import app as server_app
from openvpp.store import schema
from openvpp.v1 import settlement_pb2 as pb
from tests.integration.mtls import Fabric
from tests.integration.settlement_world import STEP, SettlementWorld, aligned_now, reading, settlement_world

PGE = ca.Identity(ca.Role.UTILITY, "pge", 0)


class Crash(BaseException):
    """Nothing catches this: the process dies here."""


def day_of_readings(w: SettlementWorld, first_seq: int, count: int, start: int) -> list[tuple[bytes, bytes]]:
    return [
        reading(device, first_seq + i, start + i * STEP, 0, 500 * (first_seq + i) + d)
        for d, device in enumerate(w.devices)
        for i in range(count)
    ]


async def events(w: SettlementWorld, after: int) -> list[pb.SettlementEvent]:
    async with w.fabric.channel(w.routing.utility) as channel:
        stub = w.stub(w.routing.utility).__class__(channel)
        request = pb.StreamSettlementsRequest(after_cursor=after, until_caught_up=True)
        return [e async for page in stub.StreamSettlements(request) for e in page.events]


async def test_a_utility_resumes_its_stream_without_gap_or_duplicate(fabric: Fabric, tmp_path: Path) -> None:
    async with settlement_world(fabric, tmp_path, devices=2) as w:
        start = aligned_now() - 20 * STEP
        await w.submit(day_of_readings(w, 1, 3, start))
        await w.settle()
        first = await events(w, 0)
        kinds = {e.WhichOneof("event") for e in first}
        assert kinds == {"readings", "credit", "payout_sent", "payout_confirmed"}
        cursors = [e.cursor for e in first]
        assert cursors == list(range(1, len(first) + 1))
        # Follow live from the last cursor while more happens.
        seen: list[pb.SettlementEvent] = []

        async def follow() -> None:
            async with w.fabric.channel(w.routing.utility) as channel:
                stub = w.stub(w.routing.utility).__class__(channel)
                async for page in stub.StreamSettlements(pb.StreamSettlementsRequest(after_cursor=cursors[-1])):
                    seen.extend(page.events)

        follower = asyncio.create_task(follow())
        await w.submit(day_of_readings(w, 4, 2, start + 3 * STEP), batch_id="second")
        await w.settle()
        for _ in range(100):
            if any(e.HasField("payout_confirmed") for e in seen):
                break
            await asyncio.sleep(0.05)
        follower.cancel()
        resumed = await events(w, cursors[-1])
        assert [e.cursor for e in seen] == [e.cursor for e in resumed][: len(seen)]
        assert [e.cursor for e in resumed] == list(range(cursors[-1] + 1, cursors[-1] + 1 + len(resumed)))
        batch = next(e.readings for e in resumed if e.HasField("readings"))
        assert (batch.batch_id, batch.accepted, batch.rejected) == ("second", 4, 0)
        # A vendor may not follow a utility's settlements.
        assert all(e.program_id in ("", w.program_id) for e in first + resumed)


@pytest.mark.parametrize("step", ["persisted", "sent", "landed", "confirmed"])
async def test_a_crash_while_paying_never_pays_twice_nor_loses_a_credit(
    fabric: Fabric, tmp_path: Path, step: str
) -> None:
    async with settlement_world(fabric, tmp_path, devices=3) as w:
        await w.submit(day_of_readings(w, 1, 4, aligned_now() - 20 * STEP))
        settlement = fabric.app.settlement
        assert settlement is not None

        def crash(at: str) -> None:
            if at == step:
                raise Crash(at)

        settlement.outbox._fault = crash
        with pytest.raises(Crash):
            await settlement.pipeline.settle_now(PGE, [w.program_id])
        settings = fabric.app.settings
        await fabric.app.stop(grace=0)
        # The restart finishes what was in flight, from the database alone.
        fabric.app = await server_app.start(settings)
        try:
            await _check_paid_once(w, fabric)
        finally:
            await fabric.app.stop(grace=0)


async def _check_paid_once(w: SettlementWorld, fabric: Fabric) -> None:
    assert not (await w.settle()).settlements
    check = await w.utility_call("CheckLedger", pb.CheckLedgerRequest())
    assert check.ok, check
    (token,) = check.tokens
    assert token.pending_base_units == 0
    assert token.credited_base_units == token.paid_base_units == token.supply_base_units > 0
    for device in w.devices:
        balance = await w.utility_call("GetBalance", pb.GetBalanceRequest(wallet=str(device.pubkey())))
        assert balance.balances[0].on_chain_base_units == (500 * 3) * 80
    async with fabric.app.db.read() as conn:
        states = (await conn.execute(select(schema.settlements.c.state))).scalars().all()
    assert states == [pb.SETTLEMENT_STATE_COMPLETED]


async def test_one_trace_runs_from_a_reading_batch_to_its_payout_signature(
    fabric: Fabric, tmp_path: Path, spans: InMemorySpanExporter
) -> None:
    async with settlement_world(fabric, tmp_path, devices=1) as w:
        await w.submit(day_of_readings(w, 1, 3, aligned_now() - 20 * STEP), batch_id="traced")
        async with fabric.app.db.read() as conn:
            parent = (await conn.execute(select(schema.reading_batches.c.trace_parent))).scalar_one()
        trace_id = int(parent.split("-")[1], 16)
        (settled,) = (await w.settle()).settlements
        finished = spans.get_finished_spans()
        in_trace = {s.name: s for s in finished if s.context.trace_id == trace_id}
        assert {"settlement.price", "settlement.settle", "settlement.payout"} <= set(in_trace)
        payout = in_trace["settlement.payout"]
        assert payout.attributes is not None
        assert payout.attributes["solana.signature"] in settled.signatures
