"""End to end, every base unit: generated fleets, tariffs (DST days included),
splits, token terms and DR events go through the real server over mTLS, the
embedded chain pays, and every party's on-chain balance, every statement line
and CheckLedger must equal the Fraction reference in tests/reference/money.py.

OPENVPP_MONEY_EXAMPLES sets the example count (default 30 per storage backend)."""

from __future__ import annotations

import datetime as dt
import itertools
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from solders.keypair import Keypair
from solders.transaction import Transaction

from openvpp.v1 import routing_pb2, routing_pb2_grpc, settlement_pb2_grpc
from openvpp.v1 import settlement_pb2 as pb
from tests.integration.mtls import Fabric
from tests.integration.routing_world import World, world
from tests.integration.settlement_world import reading
from tests.reference import money

EXAMPLES = int(os.environ.get("OPENVPP_MONEY_EXAMPLES", "30"))
# Local dates with a DST change in their zone, and one without.
DAYS = [
    ("America/Los_Angeles", "2026-03-08"),
    ("America/Los_Angeles", "2026-11-01"),
    ("Europe/Berlin", "2026-03-29"),
    ("Europe/Berlin", "2026-10-25"),
    ("Australia/Sydney", "2026-10-04"),
    ("UTC", "2026-11-20"),
]
MAX_W = 7600  # the factories' device capability


@dataclass
class Plan:
    scenario: money.Scenario
    start: int
    length: int
    counts: list[int]
    energies: list[list[int]]
    gaps: list[set[int]]
    chunks: int
    settle_between: bool
    dr: tuple[int, int] | None
    redeem: bool


@st.composite
def plans(draw: st.DrawFn) -> Plan:
    zone, day = draw(st.sampled_from(DAYS))
    length = draw(st.sampled_from([900, 1800, 3600]))
    midnight = int(dt.datetime.fromisoformat(day).replace(tzinfo=ZoneInfo(zone)).timestamp())
    start = (midnight + draw(st.integers(-6, 6)) * 3600) // length * length
    cuts = sorted(draw(st.sets(st.integers(1, 23), max_size=3)))
    bounds = [0, *(c * 60 + draw(st.sampled_from([0, 15, 45])) for c in cuts), 1440]
    bounds = sorted(set(bounds))
    prices = st.integers(0, 600_000)
    weekdays = [money.Period(0b0011111, a, b, draw(prices)) for a, b in itertools.pairwise(bounds)]
    weekend = [money.Period(0b1100000, 0, 1440, draw(prices))]
    devices = draw(st.integers(1, 5))
    counts = [draw(st.integers(2, 60)) for _ in range(devices)]
    per = MAX_W * length // 3600
    energies = [[draw(st.integers(0, per)) for _ in range(n)] for n in counts]
    gaps = [draw(st.sets(st.integers(2, n - 1), max_size=3)) if n > 3 else set() for n in counts]
    others = draw(st.lists(st.integers(1, 4_000), max_size=2))
    owner_bps = 10_000 - sum(others)
    split = [("", owner_bps)] + [(str(Keypair().pubkey()), b) for b in others]
    dr = None
    if draw(st.booleans()):
        first = start // 900 * 900 + draw(st.integers(1, 8)) * 900
        dr = (first, first + draw(st.integers(1, 8)) * 900)
    scenario = money.Scenario(
        time_zone=zone,
        periods=weekdays + weekend,
        decimals=draw(st.integers(0, 9)),
        redemption_value=draw(st.sampled_from([1, 7, 150_000, 1_000_000, 2_500_000, 999_999_937])),
        stablecoin_decimals=6,
        readings=[],
        split=split,
        windows=[dr] if dr else [],
        in_dr=set(draw(st.sets(st.integers(0, devices - 1)))) if dr else set(),
    )
    return Plan(
        scenario,
        start,
        length,
        counts,
        energies,
        gaps,
        draw(st.integers(1, 4)),
        draw(st.booleans()),
        dr,
        draw(st.booleans()),
    )


@dataclass
class Shared:
    world: World
    examples: int = 0


_SHARED: dict[int, Shared] = {}


async def _shared(fabric: Fabric, tmp_path: Path) -> Shared:
    key = id(fabric)
    if key not in _SHARED:
        # The world's context is left open for the test's life; the fabric's teardown stops the server.
        context = world(fabric, tmp_path)
        _SHARED[key] = Shared(await context.__aenter__())
    return _SHARED[key]


async def _program(w: World, code: str, kind: int) -> None:
    async with w.channel(w.utility) as channel:
        stub = routing_pb2_grpc.RoutingServiceStub(channel)
        await stub.CreateProgram(routing_pb2.CreateProgramRequest(code=code, name=code, kind=kind))  # type: ignore[arg-type]
        await stub.AttachEndpoint(routing_pb2.AttachEndpointRequest(program_id=f"pge/{code}", endpoint_id="pge/vtn"))


async def _run(fabric: Fabric, tmp_path: Path, plan: Plan) -> None:
    shared = await _shared(fabric, tmp_path)
    shared.examples += 1
    n, s, w = shared.examples, plan.scenario, shared.world
    nem = f"nem{n}"
    await _program(w, nem, routing_pb2.PROGRAM_KIND_NET_ENERGY_METERING)
    async with w.channel(w.utility) as channel:
        stub = settlement_pb2_grpc.SettlementServiceStub(channel)
        token = (
            await stub.CreateUseCaseToken(
                pb.CreateUseCaseTokenRequest(
                    program_id=f"pge/{nem}",
                    name=f"NEM {n}",
                    symbol=f"N{n}",
                    unit=pb.TOKEN_UNIT_KWH,
                    decimals=s.decimals,
                    redemption_value_base_units=s.redemption_value,
                )
            )
        ).token
        await stub.PublishTariff(
            pb.PublishTariffRequest(
                code=f"t{n}",
                time_zone=s.time_zone,
                effective_from="2025-01-01",
                periods=[
                    pb.TariffPeriod(
                        name=f"p{i}",
                        days_mask=p.days_mask,
                        start_minute=p.start_minute,
                        end_minute=p.end_minute,
                        export_price_micro_per_kwh=p.export_price,
                    )
                    for i, p in enumerate(s.periods)
                ],
            )
        )
        await stub.ConfigureProgramSettlement(
            pb.ConfigureProgramSettlementRequest(
                program_id=f"pge/{nem}",
                kind=pb.CREDIT_KIND_NEM_EXPORT,
                mint=token.mint,
                tariff_id=f"pge/t{n}",
                split=[
                    pb.SplitShare(party=pb.PARTY_INSTALLER if wallet else pb.PARTY_OWNER, wallet=wallet, bps=bps)
                    for wallet, bps in s.split
                ],
            )
        )
    devices = []
    for d in range(len(plan.counts)):
        device = await w.register(w.solarco, "solarco", f"m{n}-{d}")
        await w.enroll(w.solarco, device, program=f"pge/{nem}")
        devices.append(device)
    if plan.dr:
        await _dr_program(w, n, devices, plan)
    signed = []
    for d, device in enumerate(devices):
        seq, end, exported, series = 0, plan.start, 0, []
        length = plan.length
        for i, e in enumerate(plan.energies[d]):
            step = 2 if i in plan.gaps[d] else 1  # one reading missing before this one
            seq += step
            end += step * length
            exported += 0 if i == 0 else e * step
            series.append(money.Reading(seq, end, length, exported))
            signed.append(reading(device, seq, end, 0, exported, step=length))
        s.readings.append(series)
    owners = [str(d.pubkey()) for d in devices]
    value = sum((money.device_value(s, d) for d in range(len(devices))), Fraction(0))
    async with w.channel(w.utility) as channel:
        stub = settlement_pb2_grpc.SettlementServiceStub(channel)
        # Enough stablecoin for everything the program will mint, and one token more.
        await stub.FundReserve(
            pb.FundReserveRequest(mint=token.mint, amount_base_units=int(value) + s.redemption_value + 1)
        )
    size = -(-len(signed) // plan.chunks)
    for i in range(0, len(signed), size):
        await _submit(w, signed[i : i + size])
        if plan.settle_between:
            await _settle(w, [f"pge/{nem}"])
    await _settle(w, [f"pge/{nem}"])
    await _check(fabric, w, s, token.mint, owners, devices, plan)


async def _dr_program(w: World, n: int, devices: list[Keypair], plan: Plan) -> None:
    assert plan.dr is not None
    dr = f"dr{n}"
    await _program(w, dr, routing_pb2.PROGRAM_KIND_DEMAND_RESPONSE)
    async with w.channel(w.utility) as channel:
        stub = settlement_pb2_grpc.SettlementServiceStub(channel)
        token = (
            await stub.CreateUseCaseToken(
                pb.CreateUseCaseTokenRequest(
                    program_id=f"pge/{dr}",
                    name=f"DR {n}",
                    symbol=f"D{n}",
                    unit=pb.TOKEN_UNIT_USD,
                    decimals=6,
                    redemption_value_base_units=1_000_000,
                )
            )
        ).token
        await stub.ConfigureProgramSettlement(
            pb.ConfigureProgramSettlementRequest(
                program_id=f"pge/{dr}",
                kind=pb.CREDIT_KIND_DR_PERFORMANCE,
                mint=token.mint,
                tariff_id=f"pge/t{n}",
                dr_includes_exports=True,
            )
        )
        await stub.CreateDrEvent(
            pb.CreateDrEventRequest(
                program_id=f"pge/{dr}",
                start=Timestamp(seconds=plan.dr[0]),
                end=Timestamp(seconds=plan.dr[1]),
                incentive_micro_per_kwh=400_000,
            )
        )
    for d in sorted(plan.scenario.in_dr):
        await w.enroll(w.solarco, devices[d], program=f"pge/{dr}")


async def _submit(w: World, readings: list[tuple[bytes, bytes]]) -> None:
    async with w.channel(w.solarco) as channel:
        stub = settlement_pb2_grpc.SettlementServiceStub(channel)

        async def one() -> Any:
            yield pb.SubmitReadingsRequest(
                batch_id="b", payloads=b"".join(p for p, _ in readings), signatures=b"".join(x for _, x in readings)
            )

        replies = [r async for r in stub.SubmitReadings(one())]
    assert sum(r.rejected for r in replies) == 0, [r.verdicts for r in replies]


async def _settle(w: World, programs: list[str]) -> None:
    async with w.channel(w.utility) as channel:
        await settlement_pb2_grpc.SettlementServiceStub(channel).Settle(pb.SettleRequest(program_ids=programs))


async def _check(
    fabric: Fabric, w: World, s: money.Scenario, mint: str, owners: list[str], devices: list[Keypair], plan: Plan
) -> None:
    expected = money.exact_shares(s, owners)
    async with fabric.operator() as channel:
        stub = settlement_pb2_grpc.SettlementServiceStub(channel)
        for wallet, exact in expected.items():
            balance = await stub.GetBalance(pb.GetBalanceRequest(wallet=wallet))
            held = {b.mint: b for b in balance.balances}.get(mint)
            want = int(exact)
            assert (held.on_chain_base_units if held else 0) == want, (wallet, exact)
            statement = await stub.GetStatement(pb.GetStatementRequest(wallet=wallet, mint=mint))
            _check_statement(statement, exact, want)
        if plan.redeem and expected.get(owners[0], 0) >= 2 and money.redeemable(s, int(expected[owners[0]]) // 2):
            await _redeem(stub, s, mint, devices[0], int(expected[owners[0]]) // 2)
        check = await stub.CheckLedger(pb.CheckLedgerRequest())
    assert check.ok, check


def _fraction(r: pb.Rational) -> Fraction:
    return Fraction(int(r.numerator), int(r.denominator))


def _check_statement(statement: pb.GetStatementResponse, exact: Fraction, want: int) -> None:
    credits = [x.credit for x in statement.lines if x.WhichOneof("line") == "credit"]
    payouts = [x.payout for x in statement.lines if x.WhichOneof("line") == "payout"]
    assert sum(c.amount_base_units for c in credits) == statement.closing.credited_base_units == want
    assert sum(p.amount_base_units for p in payouts) == statement.closing.paid_base_units == want
    assert sum((_fraction(c.exact_share) for c in credits), Fraction(0)) == exact
    carry = Fraction(0)
    for c in credits:
        # Every amount is recomputable: the carry before, plus the exact share, minus what was paid.
        carry += _fraction(c.exact_share) - c.amount_base_units
        assert _fraction(c.carry_after) == carry
        assert 0 <= carry < 1
    assert _fraction(statement.closing.carry) == exact - want
    paid_ids = {i for p in payouts for i in p.credit_ids}
    assert paid_ids == {c.credit_id for c in credits if c.amount_base_units}


async def _redeem(stub: Any, s: money.Scenario, mint: str, holder: Keypair, amount: int) -> None:
    prepared = await stub.PrepareRedemption(
        pb.PrepareRedemptionRequest(mint=mint, holder=str(holder.pubkey()), amount_base_units=amount)
    )
    assert prepared.payout_base_units == money.redeemable(s, amount)
    tx = Transaction.from_bytes(prepared.transaction)
    tx.partial_sign([holder], tx.message.recent_blockhash)
    done = await stub.SubmitRedemption(
        pb.SubmitRedemptionRequest(redemption_id=prepared.redemption_id, transaction=bytes(tx))
    )
    assert done.redemption.state == pb.REDEMPTION_STATE_COMPLETED
    statement = await stub.GetStatement(pb.GetStatementRequest(wallet=str(holder.pubkey()), mint=mint))
    (line,) = [x.redemption for x in statement.lines if x.WhichOneof("line") == "redemption"]
    assert (line.amount_base_units, line.payout_base_units) == (amount, money.redeemable(s, amount))
    assert statement.closing.redeemed_base_units == amount


@pytest.mark.settings(reading_max_age_seconds=400 * 86_400)
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(plan=plans())
async def test_every_party_is_paid_the_reference_to_the_base_unit(fabric: Fabric, tmp_path: Path, plan: Plan) -> None:
    await _run(fabric, tmp_path, plan)
