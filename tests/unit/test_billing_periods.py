"""Billing periods: calendar months or cycle days, local midnight to local midnight."""

from __future__ import annotations

from datetime import date
from fractions import Fraction
from zoneinfo import ZoneInfo

import pytest

from openvpp import errors
from openvpp.billing import periods
from openvpp.billing.rounding import Balance, due


def test_calendar_months_and_cycle_days() -> None:
    assert periods.containing(date(2026, 3, 31), 1) == periods.BillingPeriod(date(2026, 3, 1), date(2026, 4, 1))
    assert periods.containing(date(2026, 1, 9), 15) == periods.BillingPeriod(date(2025, 12, 15), date(2026, 1, 15))
    assert periods.containing(date(2026, 12, 20), 15).end == date(2027, 1, 15)
    following = periods.following(periods.containing(date(2026, 12, 1), 1))
    assert following == periods.BillingPeriod(date(2027, 1, 1), date(2027, 2, 1))


def test_a_period_with_a_dst_change_holds_its_real_hours() -> None:
    zone = ZoneInfo("America/Los_Angeles")
    march = periods.containing(date(2026, 3, 10), 1)
    start, end = march.bounds(zone)
    assert march.days == 31
    assert end - start == 31 * 86_400 - 3600


def test_a_cycle_day_past_the_28th_is_refused() -> None:
    with pytest.raises(errors.InvalidArgument) as refused:
        periods.containing(date(2026, 1, 1), 31)
    assert refused.value.violations[0].field == "plan.cycle_day"


def test_rounding_carries_the_remainder_and_credits() -> None:
    first = due(Fraction(10_000_007, 10), Balance(), 6)  # 1,000,000.7 micro = base units
    assert (first.base_units, first.balance) == (1_000_000, Balance(Fraction(7, 10), Fraction(0)))
    second = due(Fraction(3, 10), first.balance, 6)
    assert (second.base_units, second.balance.remainder) == (1, Fraction(0))
    credit = due(Fraction(-500), second.balance, 6)
    assert (credit.base_units, credit.balance.credit) == (0, Fraction(500))
    used = due(Fraction(1_200), credit.balance, 6)
    assert (used.base_units, used.credit_applied, used.balance.credit) == (700, Fraction(500), Fraction(0))
    # A stablecoin with 2 decimals: a base unit is 10,000 micro-units.
    assert due(Fraction(25_000), Balance(), 2).base_units == 2
