"""The DR baseline (10-of-10 with a day-of adjustment capped at +-20 %)
against cases computed by hand."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from fractions import Fraction
from types import SimpleNamespace
from zoneinfo import ZoneInfo

from openvpp.settlement.pricing import dr

UTC = ZoneInfo("UTC")
EVENT_DAY = dt.date(2026, 11, 18)  # a Wednesday
OTHER_EVENT = dt.date(2026, 11, 12)


def ts(day: dt.date, hour: int) -> int:
    return int(dt.datetime(day.year, day.month, day.day, hour, tzinfo=dt.UTC).timestamp())


def hourly(days: list[dt.date], load: Callable[[dt.date, int], int], until_hour: int = 24) -> list[SimpleNamespace]:
    rows: list[SimpleNamespace] = []
    for day in days:
        for hour in range(until_hour if day == EVENT_DAY else 24):
            end = ts(day, hour) + 3600
            rows.append(
                SimpleNamespace(
                    seq=len(rows) + 1, covered_from=end - 3600, interval_end=end, import_wh=load(day, hour), export_wh=0
                )
            )
    return rows


def event() -> SimpleNamespace:
    return SimpleNamespace(start_s=ts(EVENT_DAY, 17), end_s=ts(EVENT_DAY, 19))


def history(first: int = 1) -> list[dt.date]:
    return [dt.date(2026, 11, d) for d in range(first, 19)]


def base_load(adjust: int, during: int) -> Callable[[dt.date, int], int]:
    def load(day: dt.date, hour: int) -> int:
        if day == EVENT_DAY:
            return during if hour >= 17 else adjust
        return 1000 + 10 * day.day

    return load


def test_ten_weekdays_skipping_other_event_days_and_a_day_of_adjustment() -> None:
    rows = hourly(history(), base_load(adjust=1_200, during=300), until_hour=19)
    result = dr.baseline("d", rows, event(), UTC, {OTHER_EVENT})
    assert [d.day for d in result.days] == [17, 16, 13, 11, 10, 9, 6, 5, 4, 3]
    # Mean of 1000 + 10 x day over those days = 1094 Wh/h = 273.5 Wh per 15 minutes.
    assert result.baseline == [Fraction(2735, 10)] * 8
    # Adjustment window 13:00-16:00: actual 3 x 1,200 against baseline 3 x 1,094.
    assert result.factor == Fraction(3600, 3282)
    assert result.adjusted == [Fraction(300)] * 8
    assert result.actual == [Fraction(75)] * 8
    assert result.performance_wh == 8 * (300 - 75)


def test_the_adjustment_is_capped_at_twenty_percent() -> None:
    rows = hourly(history(), base_load(adjust=5_000, during=300), until_hour=19)
    result = dr.baseline("d", rows, event(), UTC, {OTHER_EVENT})
    assert result.factor == Fraction(12, 10)
    # 8 x (273.5 x 1.2 - 75) = 8 x 253.2 = 2025.6, floored.
    assert result.performance_wh == 2025


def test_using_more_than_the_baseline_performs_nothing() -> None:
    rows = hourly(history(), base_load(adjust=1_094, during=2_000), until_hour=19)
    result = dr.baseline("d", rows, event(), UTC, set())
    # Without the other event excluded the days average 1,103 Wh/h.
    assert result.factor == Fraction(1094, 1103)
    assert all(a > b for a, b in zip(result.actual, result.adjusted, strict=True))
    assert result.performance_wh == 0


def test_too_little_history_computes_no_performance() -> None:
    rows = hourly(history(first=14), base_load(adjust=1_200, during=300), until_hour=19)
    result = dr.baseline("d", rows, event(), UTC, set())
    assert [d.day for d in result.days] == [17, 16]
    assert result.note.startswith("INSUFFICIENT_HISTORY")
    assert result.performance_wh == 0


def test_days_with_missing_readings_are_not_baseline_days() -> None:
    rows = [
        r
        for r in hourly(history(), base_load(1_200, 300), until_hour=19)
        if not (r.covered_from >= ts(dt.date(2026, 11, 17), 15) and r.interval_end <= ts(dt.date(2026, 11, 17), 16))
    ]
    result = dr.baseline("d", rows, event(), UTC, {OTHER_EVENT})
    assert 17 not in [d.day for d in result.days]
    assert len(result.days) == 10
