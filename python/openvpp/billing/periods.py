"""Billing periods: calendar months, or from a cycle day of one month to the
same day of the next, each from local midnight to local midnight (so a
period holds the hours its days have, 23 or 25 on a DST change)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from openvpp import errors

MAX_CYCLE_DAY = 28  # every month has the day


@dataclass(frozen=True, slots=True)
class BillingPeriod:
    start: date
    end: date  # exclusive

    @property
    def days(self) -> int:
        return (self.end - self.start).days

    def bounds(self, zone: ZoneInfo) -> tuple[int, int]:
        """[start, end) in unix seconds."""
        return _midnight(self.start, zone), _midnight(self.end, zone)


def _midnight(day: date, zone: ZoneInfo) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=zone).timestamp())


def _add_month(day: date) -> date:
    return date(day.year + day.month // 12, day.month % 12 + 1, day.day)


def check_cycle_day(cycle_day: int) -> None:
    if not 1 <= cycle_day <= MAX_CYCLE_DAY:
        raise errors.InvalidArgument.field("plan.cycle_day", f"1 (calendar months) to {MAX_CYCLE_DAY}")


def containing(day: date, cycle_day: int) -> BillingPeriod:
    check_cycle_day(cycle_day)
    if day.day >= cycle_day:
        start = date(day.year, day.month, cycle_day)
    else:
        previous = date(day.year - (day.month == 1), (day.month - 2) % 12 + 1, 1)
        start = date(previous.year, previous.month, cycle_day)
    return BillingPeriod(start, _add_month(start))


def following(period: BillingPeriod) -> BillingPeriod:
    return BillingPeriod(period.end, _add_month(period.end))


def local_date(unix_s: int, zone: ZoneInfo) -> date:
    return datetime.fromtimestamp(unix_s, zone).date()


__all__ = ["BillingPeriod", "check_cycle_day", "containing", "following", "local_date"]
