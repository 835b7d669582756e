"""Bills computed by hand: each regime, tiers, demand windows, a DST change
and a billing boundary inside a reading gap."""

from __future__ import annotations

from datetime import UTC, datetime
from fractions import Fraction
from zoneinfo import ZoneInfo

import pytest

from openvpp import errors
from openvpp.billing.engine import Carry, LineKind, Plan, Regime, Statement, bill_period, rollover_target
from openvpp.billing.slots import Interval, slots
from openvpp.billing.tariff import DemandTier, EnergyTier, Tariff, flat_schedule

UTC_ZONE = ZoneInfo("UTC")
LA = ZoneInfo("America/Los_Angeles")


def at(zone: ZoneInfo, year: int, month: int, day: int, hour_: int = 0) -> int:
    return int(datetime(year, month, day, hour_, tzinfo=zone).timestamp())


def hour(zone: ZoneInfo, y: int, mo: int, d: int, h: int, import_wh: int, export_wh: int = 0) -> Interval:
    start = at(zone, y, mo, d, h)
    return Interval(start, start + 3600, import_wh, export_wh)


def peak_schedule(on: range = range(16, 21)) -> tuple[tuple[int, ...], ...]:
    """Period 0 on-peak in `on` every day, period 1 otherwise."""
    return tuple(tuple(0 if h in on else 1 for h in range(24)) for _ in range(12))


def two_period(buy: tuple[int, int] = (400_000, 200_000), sell: tuple[int, int] = (80_000, 50_000)) -> Tariff:
    return Tariff(
        "two periods",
        peak_schedule(),
        peak_schedule(),
        {0: (EnergyTier(None, buy[0], sell[0]),), 1: (EnergyTier(None, buy[1], sell[1]),)},
    )


def bill(
    plan: Plan,
    intervals: list[Interval],
    zone: ZoneInfo = UTC_ZONE,
    carry: Carry | None = None,
    month: int = 1,
    days: int = 31,
) -> Statement:
    return bill_period(plan, slots(intervals, zone), carry or Carry(), month=month, days=days)


def test_net_metering_nets_within_each_period_and_carries_surplus_by_time_of_day() -> None:
    plan = Plan(two_period(), Regime.NET_METERING)
    january = [
        hour(UTC_ZONE, 2026, 1, 5, 17, 2_000, 5_000),  # on-peak: 3 kWh surplus
        hour(UTC_ZONE, 2026, 1, 5, 3, 4_000),  # off-peak: 4 kWh use
    ]
    first = bill(plan, january)
    (energy,) = [line for line in first.lines if line.kind is LineKind.ENERGY]
    # The on-peak surplus does not offset off-peak use in the same period.
    assert (energy.period, energy.quantity, energy.amount) == (1, Fraction(4_000), Fraction(4 * 200_000))
    assert first.carry.surplus_wh == {0: 3_000}
    assert first.carry.excess_wh == 0  # 3 kWh out, 6 kWh in: no whole-period excess
    february = [hour(UTC_ZONE, 2026, 2, 2, 18, 5_000)]
    second = bill(plan, february, carry=first.carry, month=2, days=28)
    (carried,) = [line for line in second.lines if line.kind is LineKind.ENERGY]
    assert (carried.period, carried.quantity, carried.amount) == (0, Fraction(2_000), Fraction(2 * 400_000))
    assert second.total == 800_000


def test_net_metering_true_up_pays_the_whole_period_excess_and_starts_afresh() -> None:
    plan = Plan(two_period(), Regime.NET_METERING, true_up_month=3, surplus_rate=30_000)
    march = [hour(UTC_ZONE, 2026, 3, 2, 12, 1_000, 11_000)]
    carry = Carry(surplus_wh={1: Fraction(500)}, excess_wh=Fraction(2_500), month=2, fresh=False)
    statement = bill(plan, march, carry=carry, month=3)
    (true_up,) = [line for line in statement.lines if line.kind is LineKind.TRUE_UP]
    assert true_up.quantity == 12_500  # 2.5 kWh carried + 10 kWh this period
    assert true_up.amount == -Fraction(12_500 * 30_000, 1000)
    assert statement.carry.fresh
    april = bill(plan, [hour(UTC_ZONE, 2026, 4, 1, 12, 1_000)], carry=statement.carry, month=4, days=30)
    assert april.total == 200_000  # nothing rolled in after the true-up


def test_net_metering_tiers_apply_to_the_whole_use_shared_among_periods() -> None:
    tiers = (EnergyTier(10_000, 100_000), EnergyTier(None, 300_000))
    tariff = Tariff("tiers", peak_schedule(), peak_schedule(), {0: tiers, 1: tiers})
    plan = Plan(tariff, Regime.NET_METERING)
    statement = bill(plan, [hour(UTC_ZONE, 2026, 1, 5, 17, 5_000), hour(UTC_ZONE, 2026, 1, 5, 3, 15_000)])
    # 20 kWh in all: 10 in tier 0 and 10 in tier 1, shared 1:3 between the periods.
    amounts = {(line.period, line.tier): line.quantity for line in statement.lines if line.kind is LineKind.ENERGY}
    assert amounts == {(0, 0): 2_500, (0, 1): 2_500, (1, 0): 7_500, (1, 1): 7_500}
    assert statement.total == 10 * 100_000 + 10 * 300_000


def test_net_billing_prices_every_interval_and_can_owe_the_customer() -> None:
    plan = Plan(two_period(), Regime.NET_BILLING)
    statement = bill(plan, [hour(UTC_ZONE, 2026, 1, 5, 17, 1_000, 0), hour(UTC_ZONE, 2026, 1, 5, 12, 0, 20_000)])
    assert statement.amount(LineKind.ENERGY) == 400_000
    assert statement.amount(LineKind.EXPORT_CREDIT) == -20 * 50_000
    assert statement.total == -600_000


def test_net_billing_tiers_follow_the_cumulative_import_across_a_slot() -> None:
    tiers = (EnergyTier(1_500, 100_000, 10_000), EnergyTier(None, 200_000, 20_000))
    plan = Plan(Tariff("t", flat_schedule(), flat_schedule(), {0: tiers}), Regime.NET_BILLING)
    statement = bill(plan, [hour(UTC_ZONE, 2026, 1, 5, 1, 1_000), hour(UTC_ZONE, 2026, 1, 5, 2, 1_000)])
    energy = {line.tier: line.quantity for line in statement.lines if line.kind is LineKind.ENERGY}
    assert energy == {0: 1_500, 1: 500}
    assert statement.total == Fraction(1_500 * 100_000 + 500 * 200_000, 1000)


def test_demand_is_the_highest_fifteen_minute_import_tiered() -> None:
    tariff = Tariff(
        "demand",
        flat_schedule(),
        flat_schedule(),
        {0: (EnergyTier(None, 0),)},
        demand_weekday=flat_schedule(),
        demand_weekend=flat_schedule(),
        demand_tou={0: (DemandTier(2_000, 10_000_000), DemandTier(None, 15_000_000))},
        demand_flat={1: (DemandTier(None, 1_000_000),)},
    )
    start = at(UTC_ZONE, 2026, 1, 5, 9)
    # Five-minute readings: 250 Wh, 250 Wh, 400 Wh in one window = 900 Wh → 3.6 kW.
    readings = [Interval(start + 300 * i, start + 300 * (i + 1), wh, 0) for i, wh in enumerate((250, 250, 400))]
    readings.append(Interval(start + 900, start + 4500, 2_000, 0))  # an hour at 2 kW
    statement = bill(Plan(tariff, Regime.NET_BILLING), readings)
    tou = {line.tier: (line.quantity, line.amount) for line in statement.lines if line.kind is LineKind.DEMAND_TOU}
    assert tou == {0: (Fraction(2_000), Fraction(2 * 10_000_000)), 1: (Fraction(1_600), Fraction(16 * 15_000_000, 10))}
    (flat,) = [line for line in statement.lines if line.kind is LineKind.DEMAND_FLAT]
    assert (flat.quantity, flat.amount) == (Fraction(3_600), Fraction(36 * 1_000_000, 10))


def test_a_spring_forward_day_prices_its_23_local_hours_by_local_clock() -> None:
    plan = Plan(two_period(), Regime.NET_BILLING)
    day = at(LA, 2026, 3, 8, 0)  # 23 hours long: 02:00 does not exist
    readings = [Interval(day + 3600 * i, day + 3600 * (i + 1), 1_000, 0) for i in range(23)]
    statement = bill(plan, readings, LA, month=3)
    energy = {line.period: line.quantity for line in statement.lines if line.kind is LineKind.ENERGY}
    assert energy == {0: 5_000, 1: 18_000}  # 16:00-21:00 local on-peak, the rest off
    assert sum(s.import_wh for s in slots(readings, LA) if s.day.day == 8) == 23_000


def test_a_fall_back_day_prices_its_repeated_hour_twice_off_peak() -> None:
    plan = Plan(two_period(), Regime.NET_BILLING)
    day = at(LA, 2026, 11, 1, 0)  # 25 hours long: 01:00 happens twice
    readings = [Interval(day + 3600 * i, day + 3600 * (i + 1), 1_000, 0) for i in range(25)]
    statement = bill(plan, readings, LA, month=11)
    energy = {line.period: line.quantity for line in statement.lines if line.kind is LineKind.ENERGY}
    assert energy == {0: 5_000, 1: 20_000}
    hours = [s.hour for s in slots(readings, LA)][::4]
    assert hours.count(1) == 2


def test_a_billing_boundary_inside_a_reading_gap_splits_the_energy_by_time() -> None:
    # The device was silent from 22:00 on January 31 to 02:00 on February 1:
    # its next reading covers the four hours, 8 kWh.
    gap = Interval(at(LA, 2026, 1, 31, 22), at(LA, 2026, 2, 1, 2), 8_000, 0)
    by_month: dict[int, Fraction] = {}
    for slot in slots([gap], LA):
        by_month[slot.month] = by_month.get(slot.month, Fraction(0)) + slot.import_wh
    assert by_month == {1: 4_000, 2: 4_000}


def test_fixed_minimum_and_tax() -> None:
    tariff = Tariff(
        "fixed",
        flat_schedule(),
        flat_schedule(),
        {0: (EnergyTier(None, 100_000),)},
        fixed_monthly=5_000_000,
        fixed_daily=100_000,
        minimum_monthly=10_000_000,
    )
    statement = bill(Plan(tariff, Regime.NET_METERING, tax_bps=750), [hour(UTC_ZONE, 2026, 1, 5, 1, 1_000)], days=31)
    assert statement.amount(LineKind.FIXED_MONTHLY) == 5_000_000
    assert statement.amount(LineKind.FIXED_DAILY) == 3_100_000
    assert statement.amount(LineKind.MINIMUM) == 10_000_000 - 5_000_000 - 3_100_000 - 100_000
    assert statement.amount(LineKind.TAX) == Fraction(10_000_000 * 750, 10_000)
    assert statement.total == 10_750_000


def test_rollover_finds_the_period_at_the_same_time_of_day() -> None:
    winter = tuple(2 if 17 <= h < 20 else 1 for h in range(24))
    summer = tuple(0 if 16 <= h < 21 else 1 for h in range(24))
    schedule = tuple(summer if 6 <= m <= 9 else winter for m in range(1, 13))
    tiers = (EnergyTier(None, 1),)
    tariff = Tariff("seasons", schedule, schedule, {0: tiers, 1: tiers, 2: tiers})
    assert rollover_target(tariff, 0, 9, 10) == 2  # summer on-peak at 17:00 → winter mid-peak
    assert rollover_target(tariff, 1, 9, 10) == 1


@pytest.mark.parametrize(
    ("tiers", "reason"),
    [
        ((EnergyTier(100, 1),), "LAST_TIER_LIMITED"),
        ((EnergyTier(200, 1), EnergyTier(100, 1), EnergyTier(None, 1)), "TIER_ORDER"),
        ((), "NO_TIERS"),
    ],
)
def test_bad_tiers_are_refused(tiers: tuple[EnergyTier, ...], reason: str) -> None:
    with pytest.raises(errors.InvalidArgument) as refused:
        Tariff("bad", flat_schedule(), flat_schedule(), {0: tiers})
    assert refused.value.reason == reason


def test_a_schedule_naming_a_period_without_rates_is_refused() -> None:
    with pytest.raises(errors.InvalidArgument) as refused:
        Tariff("bad", flat_schedule(3), flat_schedule(), {0: (EnergyTier(None, 1),)})
    assert refused.value.reason == "UNKNOWN_PERIOD"
    assert refused.value.violations[0].field == "energy_weekday"


def test_slot_split_is_exact_and_conserves_energy() -> None:
    start = at(UTC_ZONE, 2026, 1, 1, 0) + 100
    readings = [Interval(start, start + 1000, 7, 3)]
    parts = list(slots(readings, UTC_ZONE))
    assert [p.import_wh for p in parts] == [Fraction(7 * 800, 1000), Fraction(7 * 200, 1000)]
    assert sum(p.export_wh for p in parts) == 3
    assert datetime.fromtimestamp(parts[0].start_s, UTC).minute == 0


def test_imports_only_bills_imports_and_leaves_exports_to_the_tokens() -> None:
    plan = Plan(two_period(), Regime.IMPORTS_ONLY)
    statement = bill(plan, [hour(UTC_ZONE, 2026, 1, 5, 17, 1_000, 0), hour(UTC_ZONE, 2026, 1, 5, 12, 0, 20_000)])
    assert statement.amount(LineKind.EXPORT_CREDIT) == 0
    assert statement.total == 400_000
    assert statement.exported_wh == 20_000
