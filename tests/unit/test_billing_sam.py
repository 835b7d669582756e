"""OpenVPP's bills against an independent calculator: NREL's System Advisor
Model (`PySAM.Utilityrate5`), for a year of hourly load and generation.

SAM's calendar is 365 days from a Monday, no holidays, no daylight saving,
calendar months, and it rounds nothing: so the year is 2018 (January 1 is a
Monday) in a zone without DST, OpenVPP's unrounded (exact) amounts are held
to SAM's to the cent, and the rounded bill to OpenVPP's own rounding of them.
Load and generation are netted within each hour, as SAM sees them.
"""

from __future__ import annotations

import calendar
import json
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path
from zoneinfo import ZoneInfo

import PySAM.Utilityrate5 as ur
import pytest

from openvpp.billing import urdb
from openvpp.billing.engine import Carry, LineKind, Plan, Regime, Statement, bill_period
from openvpp.billing.rounding import Balance, due
from openvpp.billing.slots import Interval, Slot, slots
from openvpp.billing.tariff import DemandTier, EnergyTier, Tariff

ZONE = ZoneInfo("Etc/GMT+7")  # UTC-7 all year
YEAR = 2018
UNLIMITED = 1e38
CENT = Fraction(1, 100)
MICRO = 1_000_000


def hourly_year(seed: int, pv_kw: float) -> tuple[list[int], list[int]]:
    """Load and generation in Wh per hour: evening-peaked load with weather
    noise, and PV shaped by season and cloud."""
    rng = random.Random(seed)
    load, gen = [], []
    for hour in range(8760):
        day, h = divmod(hour, 24)
        season = math.cos(2 * math.pi * (day - 172) / 365)  # 1 at midsummer
        base = 450 + 250 * (1 if 17 <= h <= 21 else 0) + 150 * max(0.0, -season) * (1 if h < 8 else 0)
        cooling = 900 * max(0.0, season) * max(0.0, math.sin(math.pi * (h - 11) / 12)) if 11 <= h <= 22 else 0
        load.append(int(base + cooling + rng.uniform(-120, 300)))
        daylight = 12 + 2.5 * season
        rise = 12 - daylight / 2
        sun = math.sin(math.pi * (h + 0.5 - rise) / daylight) if rise <= h + 0.5 <= rise + daylight else 0.0
        cloud = rng.choice((1.0, 1.0, 1.0, 0.8, 0.5, 0.2))
        gen.append(int(1000 * pv_kw * max(0.0, sun) * (0.75 + 0.25 * season) * cloud))
    return load, gen


def intervals(load: Sequence[int], gen: Sequence[int]) -> list[Interval]:
    start = int(datetime(YEAR, 1, 1, tzinfo=ZONE).astimezone(UTC).timestamp())
    return [
        Interval(start + 3600 * i, start + 3600 * (i + 1), max(used - made, 0), max(made - used, 0))
        for i, (used, made) in enumerate(zip(load, gen, strict=True))
    ]


def openvpp_year(plan: Plan, load: Sequence[int], gen: Sequence[int]) -> list[Statement]:
    by_month: dict[int, list[Slot]] = {}
    for slot in slots(intervals(load, gen), ZONE):
        by_month.setdefault(slot.month, []).append(slot)
    carry = Carry()
    out = []
    for month in range(1, 13):
        statement = bill_period(plan, by_month[month], carry, month=month, days=calendar.monthrange(YEAR, month)[1])
        carry = statement.carry
        out.append(statement)
    return out


def _schedule(schedule: Sequence[Sequence[int]]) -> list[list[int]]:
    return [[p + 1 for p in row] for row in schedule]


def _limit(value: int | None, scale: float) -> float:
    return UNLIMITED if value is None else value / scale


def sam_year(plan: Plan, load: Sequence[int], gen: Sequence[int]) -> dict[str, list[float]]:
    tariff = plan.tariff
    model = ur.new()
    model.Lifetime.analysis_period = 1
    model.Lifetime.system_use_lifetime_output = 0
    model.Lifetime.inflation_rate = 0
    model.SystemOutput.gen = [g / 1000 for g in gen]
    model.SystemOutput.degradation = [0]
    model.Load.load = [used / 1000 for used in load]
    rates = model.ElectricityRates
    rates.en_electricity_rates = 1
    rates.rate_escalation = [0]
    rates.ur_metering_option = 0 if plan.regime is Regime.NET_METERING else 2
    rates.ur_nm_credit_month = plan.true_up_month - 1
    rates.ur_nm_yearend_sell_rate = plan.surplus_rate / MICRO
    rates.ur_ec_sched_weekday = _schedule(tariff.energy_weekday)
    rates.ur_ec_sched_weekend = _schedule(tariff.energy_weekend)
    rates.ur_ec_tou_mat = [
        [period + 1, tier + 1, _limit(t.upto_wh, 1000), 0, t.buy / MICRO, t.sell / MICRO]
        for period, tiers in sorted(tariff.energy.items())
        for tier, t in enumerate(tiers)
    ]
    rates.ur_monthly_fixed_charge = tariff.fixed_monthly / MICRO
    rates.ur_monthly_min_charge = tariff.minimum_monthly / MICRO
    demand = bool(tariff.demand_tou or tariff.demand_flat)
    rates.ur_dc_enable = int(demand)
    if demand:
        weekday = tariff.demand_weekday or tuple(tuple(0 for _ in range(24)) for _ in range(12))
        weekend = tariff.demand_weekend or weekday
        rates.ur_dc_sched_weekday = _schedule(weekday)
        rates.ur_dc_sched_weekend = _schedule(weekend)
        tou = tariff.demand_tou or {0: (DemandTier(None, 0),)}
        rates.ur_dc_tou_mat = [
            [period + 1, tier + 1, _limit(t.upto_w, 1000), t.rate / MICRO]
            for period, tiers in sorted(tou.items())
            for tier, t in enumerate(tiers)
        ]
        rates.ur_dc_flat_mat = [
            [month - 1, tier + 1, _limit(t.upto_w, 1000), t.rate / MICRO]
            for month in range(1, 13)
            for tier, t in enumerate(tariff.demand_flat.get(month, (DemandTier(None, 0),)))
        ]
    model.execute()
    out = model.Outputs
    names = (
        "charge_w_sys_ec_ym",
        "charge_w_sys_dc_tou_ym",
        "charge_w_sys_dc_fixed_ym",
        "charge_w_sys_fixed_ym",
        "charge_w_sys_minimum_ym",
        "true_up_credits_ym",
        "utility_bill_w_sys_ym",
    )
    # Row 0 is "year 0" (before the system); row 1 is the first year.
    return {name: list(getattr(out, name)[1]) for name in names}


def dollars(micro: Fraction) -> Fraction:
    return micro / MICRO


def assert_matches(plan: Plan, load: Sequence[int], gen: Sequence[int]) -> list[Statement]:
    ours = openvpp_year(plan, load, gen)
    sam = sam_year(plan, load, gen)
    energy = (LineKind.ENERGY, LineKind.EXPORT_CREDIT)
    pairs = {
        "charge_w_sys_ec_ym": energy,
        "charge_w_sys_dc_tou_ym": (LineKind.DEMAND_TOU,),
        "charge_w_sys_dc_fixed_ym": (LineKind.DEMAND_FLAT,),
        "charge_w_sys_fixed_ym": (LineKind.FIXED_MONTHLY, LineKind.FIXED_DAILY),
        "charge_w_sys_minimum_ym": (LineKind.MINIMUM,),
    }
    for month, statement in enumerate(ours):
        for name, kinds in pairs.items():
            mine = dollars(statement.amount(*kinds))
            assert abs(mine - Fraction(sam[name][month])) < CENT / 2, (month + 1, name, float(mine), sam[name][month])
        true_up = -dollars(statement.amount(LineKind.TRUE_UP))
        assert abs(true_up - Fraction(sam["true_up_credits_ym"][month])) < CENT / 2, (month + 1, "true-up")
        total = dollars(statement.total)
        assert abs(total - Fraction(sam["utility_bill_w_sys_ym"][month])) < CENT / 2, (
            month + 1,
            float(total),
            sam["utility_bill_w_sys_ym"][month],
        )
    return ours


def summer_peak() -> tuple[tuple[int, ...], ...]:
    """Period 0 on-peak 16-21 in June-September, 1 off-peak, 2 winter mid-peak 17-20."""
    rows = []
    for month in range(1, 13):
        if 6 <= month <= 9:
            rows.append(tuple(0 if 16 <= h < 21 else 1 for h in range(24)))
        else:
            rows.append(tuple(2 if 17 <= h < 20 else 1 for h in range(24)))
    return tuple(rows)


def tou_tariff(**extra: object) -> Tariff:
    weekday = summer_peak()
    weekend = tuple(tuple(1 for _ in range(24)) for _ in range(12))
    limits = (350_000, None)
    return Tariff(
        name="TOU with tiers and demand",
        energy_weekday=weekday,
        energy_weekend=weekend,
        energy={
            0: (EnergyTier(limits[0], 452_100, 95_000), EnergyTier(None, 512_300, 95_000)),
            1: (EnergyTier(limits[0], 231_770, 41_250), EnergyTier(None, 287_000, 41_250)),
            2: (EnergyTier(limits[0], 318_400, 63_000), EnergyTier(None, 371_900, 63_000)),
        },
        demand_weekday=weekday,
        demand_weekend=weekend,
        demand_tou={
            0: (DemandTier(3_000, 9_250_000), DemandTier(None, 12_000_000)),
            1: (DemandTier(3_000, 1_100_000), DemandTier(None, 1_300_000)),
            2: (DemandTier(3_000, 4_400_000), DemandTier(None, 5_000_000)),
        },
        demand_flat={m: (DemandTier(None, 2_150_000),) for m in range(1, 13)},
        fixed_monthly=12_500_000,
        **extra,  # type: ignore[arg-type]
    )


def urdb_example() -> Tariff:
    path = Path(__file__).resolve().parents[1] / "vectors" / "urdb" / "residential_tou_demand.json"
    return urdb.tariff(json.loads(path.read_text()))


@dataclass(frozen=True)
class Case:
    name: str
    plan: Plan
    pv_kw: float


CASES = [
    Case("URDB tariff, NEM, December true-up", Plan(urdb_example(), Regime.NET_METERING, 12, 31_200), 6.5),
    Case("URDB tariff, net billing", Plan(urdb_example(), Regime.NET_BILLING), 9.0),
    Case("NEM, TOU, tiers, demand, December true-up", Plan(tou_tariff(), Regime.NET_METERING, 12, 31_200), 6.5),
    Case("NEM, large system, April true-up", Plan(tou_tariff(), Regime.NET_METERING, 4, 27_500), 7.0),
    Case("net billing, TOU, tiers, demand", Plan(tou_tariff(), Regime.NET_BILLING), 3.5),
    Case(
        "net billing, large system, minimum bill",
        Plan(tou_tariff(minimum_monthly=65_000_000), Regime.NET_BILLING),
        16.0,
    ),
    Case(
        "NEM, flat three tiers, minimum bill",
        Plan(
            Tariff(
                name="flat tiers",
                energy_weekday=tuple(tuple(0 for _ in range(24)) for _ in range(12)),
                energy_weekend=tuple(tuple(0 for _ in range(24)) for _ in range(12)),
                energy={0: (EnergyTier(200_000, 110_000), EnergyTier(500_000, 160_000), EnergyTier(None, 240_000))},
                fixed_monthly=8_000_000,
                minimum_monthly=15_000_000,
            ),
            Regime.NET_METERING,
            12,
            20_000,
        ),
        4.5,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_monthly_bills_match_sam_to_the_cent(case: Case) -> None:
    load, gen = hourly_year(seed=2018, pv_kw=case.pv_kw)
    statements = assert_matches(case.plan, load, gen)
    # The case exercises what it names: something was netted, credited or trued up.
    assert any(s.exported_wh > 0 for s in statements)
    # Rounded as credits are (6-decimal stablecoin: a base unit is a micro-unit):
    # each bill is the floor of its exact total plus what was carried, and
    # over the year what is due plus what is carried is the exact sum.
    balance, paid = Balance(), 0
    for statement in statements:
        owed = due(statement.total, balance, 6)
        net = statement.total - balance.credit + balance.remainder
        assert owed.base_units == max(math.floor(net), 0)
        paid += owed.base_units
        balance = owed.balance
    assert paid + balance.remainder - balance.credit == sum(s.total for s in statements)
