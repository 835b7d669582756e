"""No kWh is paid twice: a battery exporting during a DR event earns either
load reduction (DR) plus its export (NEM), or performance including the
export (DR) and no NEM credit for it, as the DR program says."""

from __future__ import annotations

import time
from pathlib import Path

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from openvpp.v1 import routing_pb2, routing_pb2_grpc
from openvpp.v1 import settlement_pb2 as pb
from tests.integration.mtls import Fabric
from tests.integration.settlement_world import FLAT_EXPORT, reading, settlement_world
from tests.rpc import expect_error

HOUR = 3600
INCENTIVE = 500_000  # micro-units per kWh


@pytest.mark.settings(reading_max_age_seconds=30 * 86_400)
@pytest.mark.parametrize(
    ("includes_exports", "performance_wh", "nem_base_units"),
    [
        # Load reduction only: 250 Wh per 15 minutes down to zero; the 1,000 Wh exported stay NEM's.
        (False, 2_000, 1_000 * FLAT_EXPORT // 1_000),
        # Including exports: 250 - (-125) per 15 minutes, and NEM pays nothing for the event's export.
        (True, 3_000, 0),
    ],
)
async def test_an_exporting_battery_is_paid_once(
    fabric: Fabric, tmp_path: Path, includes_exports: bool, performance_wh: int, nem_base_units: int
) -> None:
    async with settlement_world(fabric, tmp_path, devices=1) as w:
        async with fabric.channel(w.routing.utility) as channel:
            routing = routing_pb2_grpc.RoutingServiceStub(channel)
            await routing.CreateProgram(
                routing_pb2.CreateProgramRequest(
                    code="dr", name="Evening peak", kind=routing_pb2.PROGRAM_KIND_DEMAND_RESPONSE
                )
            )
            await routing.AttachEndpoint(routing_pb2.AttachEndpointRequest(program_id="pge/dr", endpoint_id="pge/vtn"))
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
        configured = await w.utility_call(
            "ConfigureProgramSettlement",
            pb.ConfigureProgramSettlementRequest(
                program_id="pge/dr",
                kind=pb.CREDIT_KIND_DR_PERFORMANCE,
                mint=token.mint,
                tariff_id="pge/tou",
                dr_includes_exports=includes_exports,
            ),
        )
        assert configured.settlement.dr_includes_exports is includes_exports
        battery = w.devices[0]
        await w.routing.enroll(w.routing.solarco, battery, program="pge/dr")
        end = (int(time.time()) // HOUR - 1) * HOUR
        start = end - 2 * HOUR
        await w.utility_call(
            "CreateDrEvent",
            pb.CreateDrEventRequest(
                program_id="pge/dr",
                start=Timestamp(seconds=start),
                end=Timestamp(seconds=end),
                incentive_micro_per_kwh=INCENTIVE,
            ),
        )
        # 1,000 Wh imported every hour for three weeks; during the event it exports 500 Wh an hour instead.
        history, imported, exported = [], 0, 0
        for seq, t in enumerate(range(start - 22 * 24 * HOUR, end + HOUR, HOUR), start=1):
            if start < t <= end:
                exported += 500
            else:
                imported += 1_000
            history.append(reading(battery, seq, t, imported, exported, step=HOUR))
        for i in range(0, len(history), 5_000):
            assert (await w.submit(history[i : i + 5_000])).rejected == 0
        await w.utility_call("Settle", pb.SettleRequest(program_ids=["pge/dr", "pge/nem"]))
        owner = str(battery.pubkey())
        events = await w.utility_call("GetProgramSettlement", pb.GetProgramSettlementRequest(program_id="pge/dr"))
        assert events.settlement.paid_base_units == performance_wh * INCENTIVE // 1_000
        balances = {
            b.mint: b for b in (await w.utility_call("GetBalance", pb.GetBalanceRequest(wallet=owner))).balances
        }
        assert balances[token.mint].on_chain_base_units == performance_wh * INCENTIVE // 1_000
        nem = balances.get(w.mint)
        assert (nem.on_chain_base_units if nem else 0) == nem_base_units
        assert (await w.utility_call("CheckLedger", pb.CheckLedgerRequest())).ok


async def test_only_a_dr_program_can_include_exports_and_rewards_need_their_unit(
    fabric: Fabric, tmp_path: Path
) -> None:
    async with settlement_world(fabric, tmp_path, devices=0) as w:
        await expect_error(
            w.utility_call(
                "ConfigureProgramSettlement",
                pb.ConfigureProgramSettlementRequest(
                    program_id="pge/nem",
                    kind=pb.CREDIT_KIND_NEM_EXPORT,
                    mint=w.mint,
                    tariff_id="pge/tou",
                    dr_includes_exports=True,
                ),
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_FIELD",
        )
        # The world's token is a USD token: it cannot pay one token per kWh.
        await expect_error(
            w.utility_call(
                "ConfigureProgramSettlement",
                pb.ConfigureProgramSettlementRequest(program_id="pge/nem", kind=pb.CREDIT_KIND_KWH_REWARD, mint=w.mint),
            ),
            grpc.StatusCode.FAILED_PRECONDITION,
            "TOKEN_UNIT_MISMATCH",
        )
