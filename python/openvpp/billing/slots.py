"""Metered intervals cut into 15-minute slots on the clock, in local time.

A slot is the unit every charge is computed on: its local month, hour and
day type pick the TOU period; its import is the demand window (a tariff's
"15-minute demand" is the slot's import x 4); its local date picks the
billing period. An interval that spans several slots, such as a reading
after a gap, is shared among them in proportion to time, so a period or
billing boundary inside a gap splits its energy exactly (as fractions).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from fractions import Fraction
from zoneinfo import ZoneInfo

from openvpp import errors

SLOT_S = 900
WEEKEND = (5, 6)  # Saturday, Sunday (Monday is 0)


@dataclass(frozen=True, slots=True)
class Interval:
    """Energy through the meter between two instants (unix seconds, UTC)."""

    start_s: int
    end_s: int
    import_wh: Fraction | int
    export_wh: Fraction | int


@dataclass(frozen=True, slots=True)
class Slot:
    start_s: int
    day: date  # local
    month: int  # local, 1-12
    hour: int  # local, 0-23
    weekend: bool
    import_wh: Fraction
    export_wh: Fraction


def _local(start_s: int, zone: ZoneInfo) -> datetime:
    return datetime.fromtimestamp(start_s, UTC).astimezone(zone)


def slots(intervals: Iterable[Interval], zone: ZoneInfo) -> Iterator[Slot]:
    """Slots in time order, merging what several intervals put in one slot."""
    shares: dict[int, list[Fraction | int]] = {}
    for interval in intervals:
        if interval.end_s <= interval.start_s:
            raise errors.InvalidArgument.field("interval", "an interval must end after it starts")
        length = interval.end_s - interval.start_s
        first = interval.start_s - interval.start_s % SLOT_S
        for start in range(first, interval.end_s, SLOT_S):
            overlap = min(start + SLOT_S, interval.end_s) - max(start, interval.start_s)
            share = shares.setdefault(start, [0, 0])
            if overlap == length:  # the whole interval in this slot: no fractions to make
                share[0] += interval.import_wh
                share[1] += interval.export_wh
            else:
                share[0] += Fraction(interval.import_wh) * overlap / length
                share[1] += Fraction(interval.export_wh) * overlap / length
    for start in sorted(shares):
        local = _local(start, zone)
        imported, exported = shares[start]
        yield Slot(
            start,
            local.date(),
            local.month,
            local.hour,
            local.weekday() in WEEKEND,
            Fraction(imported),
            Fraction(exported),
        )


def merge(parts: Iterable[Slot]) -> list[Slot]:
    """Slots of several intervals cut one by one, summed per slot, in time order."""
    out: dict[int, Slot] = {}
    for part in parts:
        seen = out.get(part.start_s)
        out[part.start_s] = (
            part
            if seen is None
            else replace(seen, import_wh=seen.import_wh + part.import_wh, export_wh=seen.export_wh + part.export_wh)
        )
    return [out[k] for k in sorted(out)]


__all__ = ["SLOT_S", "Interval", "Slot", "merge", "slots"]
