"""A demand-response event end to end: history streamed in, the event run,
performance against the baseline credited and paid."""

from __future__ import annotations

from pathlib import Path

from google.protobuf.timestamp_pb2 import Timestamp
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy import select

from openvpp.server import app as server_app
from openvpp.store import schema
from openvpp.v1 import routing_pb2, routing_pb2_grpc
from openvpp.v1 import settlement_pb2 as pb
from tests.integration.mtls import Fabric
from tests.integration.settlement_world import reading, settlement_world

HOUR = 3600
INCENTIVE = 500_000  # micro-units per kWh


async def test_dr_performance_against_the_baseline_is_credited_and_paid(
    fabric: Fabric, tmp_path: Path, spans: InMemorySpanExporter
) -> None:
    # Three weeks of history must be accepted: widen the age limit and restart.
    settings = fabric.app.settings.model_copy(update={"reading_max_age_seconds": 30 * 86_400})
    await fabric.app.stop(grace=0)
    fabric.app = await server_app.start(settings)
    try:
        async with settlement_world(fabric, tmp_path, devices=2) as w:
            async with fabric.channel(w.routing.utility) as channel:
                routing = routing_pb2_grpc.RoutingServiceStub(channel)
                await routing.CreateProgram(
                    routing_pb2.CreateProgramRequest(
                        code="dr", name="Evening peak", kind=routing_pb2.PROGRAM_KIND_DEMAND_RESPONSE
                    )
                )
                await routing.AttachEndpoint(
                    routing_pb2.AttachEndpointRequest(program_id="pge/dr", endpoint_id="pge/vtn")
                )
            token = (
                await w.utility_call(
                    "CreateUseCaseToken",
                    pb.CreateUseCaseTokenRequest(
                        program_id="pge/dr",
                        name="PG&E DR",
                        symbol="DR",
                        unit=pb.TOKEN_UNIT_USD,
                        decimals=6,
                        redemption_value_base_units=1_000_000,
                    ),
                )
            ).token
            await w.utility_call("FundReserve", pb.FundReserveRequest(mint=token.mint, amount_base_units=10_000_000))
            await w.utility_call(
                "ConfigureProgramSettlement",
                pb.ConfigureProgramSettlementRequest(
                    program_id="pge/dr", kind=pb.CREDIT_KIND_DR_PERFORMANCE, mint=token.mint, tariff_id="pge/tou"
                ),
            )
            for device in w.devices:
                await w.routing.enroll(w.routing.solarco, device, program="pge/dr")
            import time

            end = (int(time.time()) // HOUR - 1) * HOUR
            start = end - 2 * HOUR
            first = start - 22 * 24 * HOUR
            # Device 0 uses 1,000 Wh every hour but 200 during the event; device 1 never changes.
            history = []
            for d, device in enumerate(w.devices):
                counter = 0
                for seq, t in enumerate(range(first, end + HOUR, HOUR), start=1):
                    during = start < t <= end
                    counter += 200 if during and d == 0 else 1_000
                    history.append(reading(device, seq, t, counter, 0, step=HOUR))
            for i in range(0, len(history), 5_000):
                reply = await w.submit(history[i : i + 5_000])
                assert reply.rejected == 0
            event = (
                await w.utility_call(
                    "CreateDrEvent",
                    pb.CreateDrEventRequest(
                        program_id="pge/dr",
                        start=Timestamp(seconds=start),
                        end=Timestamp(seconds=end),
                        incentive_micro_per_kwh=INCENTIVE,
                    ),
                )
            ).event
            await w.utility_call("Settle", pb.SettleRequest(program_ids=["pge/dr"]))
            result = await w.utility_call("GetDrEvent", pb.GetDrEventRequest(event_id=event.event_id))
            by_device = {r.der_id: r for r in result.devices}
            saver = by_device[str(w.devices[0].pubkey())]
            # Baseline 250 Wh per 15 minutes (no adjustment: the morning looked as usual); actual 50.
            assert saver.adjustment_bps == 10_000
            assert list(saver.baseline_intervals_wh) == [250] * 8
            assert list(saver.actual_intervals_wh) == [50] * 8
            assert saver.performance_wh == 1_600
            assert saver.credited_base_units == 1_600 * INCENTIVE // 1_000
            assert 5 <= len(saver.baseline_days) <= 10  # like days only: weekdays, or weekend days
            assert by_device[str(w.devices[1].pubkey())].performance_wh == 0
            balance = await w.utility_call("GetBalance", pb.GetBalanceRequest(wallet=str(w.devices[0].pubkey())))
            dr = next(b for b in balance.balances if b.mint == token.mint)
            assert dr.on_chain_base_units == 800_000
            assert (await w.utility_call("CheckLedger", pb.CheckLedgerRequest())).ok
            # DR crediting joins the traces of the reading batches inside the event.
            async with fabric.app.db.read() as conn:
                parents = (await conn.execute(select(schema.reading_batches.c.trace_parent))).scalars().all()
            batch_traces = {int(p.split("-")[1], 16) for p in parents if p}
            (dr_span,) = [x for x in spans.get_finished_spans() if x.name == "settlement.price_dr"]
            assert dr_span.parent is not None
            assert dr_span.context.trace_id in batch_traces
            assert dr_span.attributes is not None
            assert int(dr_span.attributes["openvpp.credits"]) > 0  # type: ignore[arg-type]
    finally:
        await fabric.app.stop(grace=0)
