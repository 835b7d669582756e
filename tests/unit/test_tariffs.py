"""Tariff expansion in local time, across DST changes, priced exactly."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest

from openvpp import errors, native
from openvpp.settlement.pricing.oracles import TariffVersion, check_periods, feed_segments, tariff_segments
from openvpp.v1 import settlement_pb2 as pb

ALL = 0b111_1111
PEAK, OFF = 400_000, 100_000


def tou() -> TariffVersion:
    periods = (
        pb.TariffPeriod(name="night", days_mask=ALL, start_minute=0, end_minute=120, export_price_micro_per_kwh=OFF),
        pb.TariffPeriod(
            name="early", days_mask=ALL, start_minute=120, end_minute=960, export_price_micro_per_kwh=OFF + 1
        ),
        pb.TariffPeriod(name="peak", days_mask=ALL, start_minute=960, end_minute=1260, export_price_micro_per_kwh=PEAK),
        pb.TariffPeriod(name="late", days_mask=ALL, start_minute=1260, end_minute=1440, export_price_micro_per_kwh=OFF),
    )
    return TariffVersion("pge/tou", "pge", 1, "America/Los_Angeles", dt.date(2026, 1, 1), periods, 0)


def utc(year: int, month: int, day: int, hour: int) -> int:
    return int(dt.datetime(year, month, day, hour, tzinfo=dt.UTC).timestamp())


def export_rate(p: pb.TariffPeriod) -> int:
    return p.export_price_micro_per_kwh


def test_peak_follows_local_time_across_the_spring_forward_day() -> None:
    # 2026-03-08: clocks jump 02:00 PST -> 03:00 PDT. Peak 16:00-21:00 PDT is 23:00-04:00 UTC.
    segments = tariff_segments([tou()], utc(2026, 3, 8, 0), utc(2026, 3, 10, 0), export_rate)
    peak = [(a, b) for a, b, r in segments if r == PEAK]
    assert peak[0] == (utc(2026, 3, 8, 0), utc(2026, 3, 8, 5))  # the 7th's peak, still PST (16:00-21:00 = 00:00-05:00)
    assert peak[1] == (utc(2026, 3, 8, 23), utc(2026, 3, 9, 4))
    # The night period of the 8th is 00:00-02:00 PST (08:00-10:00 UTC); 02:00 local does not exist,
    # so "early" starts at 03:00 PDT = 10:00 UTC: no gap, no overlap, 23 local hours.
    night = [(a, b) for a, b, r in segments if r == OFF and a == utc(2026, 3, 8, 5)]
    assert night == [(utc(2026, 3, 8, 5), utc(2026, 3, 8, 10))]
    assert all(x[1] == y[0] for x, y in itertools.pairwise(segments))


def test_the_fall_back_day_has_25_hours_and_prices_the_repeated_hour_once_per_instant() -> None:
    # 2026-11-01: 02:00 PDT -> 01:00 PST. Night 00:00-02:00 local spans three real hours.
    start, end = utc(2026, 11, 1, 7), utc(2026, 11, 2, 8)  # local midnight to local midnight
    segments = tariff_segments([tou()], start, end, export_rate)
    assert segments[0][0] == start
    assert sum(b - a for a, b, _ in segments) == 25 * 3600
    first = segments[0]
    assert (first[1] - first[0], first[2]) == (3 * 3600, OFF)  # 00:00 PDT .. 02:00 PST
    # 1 kWh exported in each of the day's 25 real hours, priced hour by hour in micro-units.
    items = b"".join(native.PriceItem(0, t, t + 3600, 1_000).pack() for t in range(start, end, 3600))
    packed = b"".join(native.PriceSegment(a, b, r).pack() for a, b, r in segments)
    priced = native.price_energy(items, packed, [0], 1)
    hours = {OFF: 3 + 3, OFF + 1: 14, PEAK: 5}  # night 3 h, late 3 h, early 14 h, peak 5 h
    assert sum(priced.amounts) == sum(rate * n for rate, n in hours.items())


def test_a_later_version_takes_over_from_its_local_midnight() -> None:
    old = tou()
    flat = (pb.TariffPeriod(name="flat", days_mask=ALL, start_minute=0, end_minute=1440, export_price_micro_per_kwh=7),)
    new = TariffVersion("pge/tou", "pge", 2, "America/Los_Angeles", dt.date(2026, 6, 2), flat, 0)
    segments = tariff_segments([old, new], utc(2026, 6, 1, 12), utc(2026, 6, 3, 12), export_rate)
    switch = utc(2026, 6, 2, 7)  # local midnight, PDT
    assert all(r != 7 for a, _, r in segments if a < switch)
    assert [(a, r) for a, _, r in segments if a >= switch] == [(switch, 7)]


def test_periods_must_cover_every_minute_once() -> None:
    gap = [pb.TariffPeriod(days_mask=ALL, start_minute=0, end_minute=600)]
    with pytest.raises(errors.InvalidArgument, match="not covered from minute 600"):
        check_periods(gap)
    overlap = [
        pb.TariffPeriod(days_mask=ALL, start_minute=0, end_minute=700),
        pb.TariffPeriod(days_mask=ALL, start_minute=600, end_minute=1440),
    ]
    with pytest.raises(errors.InvalidArgument, match="overlap"):
        check_periods(overlap)
    weekdays_only = [pb.TariffPeriod(days_mask=0b11111, start_minute=0, end_minute=1440)]
    with pytest.raises(errors.InvalidArgument, match="weekday 5"):
        check_periods(weekdays_only)


def test_feed_points_expire_at_their_maximum_age() -> None:
    points = [(1_000, 50, 400), (1_600, 60, 300), (10_000, 70, 200)]
    assert feed_segments(points, 900, 0, 20_000, 1) == [(1_000, 1_600, 50), (1_600, 2_500, 60), (10_000, 10_900, 70)]
    assert feed_segments(points, 900, 0, 20_000, 2)[0] == (1_000, 1_600, 400)
