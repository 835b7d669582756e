"""What every party must be paid, from the written contract alone.

Plain Python with `fractions.Fraction`, independent of `openvpp.settlement`:
it reads tariffs minute by minute in local wall-clock time (so DST days
have the instants they really have), values exported energy as
energy_wh x price / 1000 micro-units spread evenly over its interval, turns
value into token base units by the token's redemption value, splits it by
basis points and floors each party's total once.

Contract points it encodes (README "Prices, programs and payouts", the
CreditKind and ConfigureProgramSettlementRequest comments):
  * a device's first reading is its counters' baseline and earns nothing;
  * a reading after k missing readings carries the whole gap's energy, split
    over the k + 1 intervals in proportion to their length in whole Wh (the
    floors' leftover in the newest), each at its own interval's rate;
  * with a DR program that includes exports, a device enrolled in it earns
    no NEM credit for export energy inside that program's event windows.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from math import floor
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class Period:
    days_mask: int  # bit 0 Monday ... bit 6 Sunday
    start_minute: int
    end_minute: int
    export_price: int  # micro-units of the stablecoin per kWh


@dataclass(frozen=True)
class Reading:
    seq: int
    interval_end: int
    length: int
    exported_wh: int  # cumulative


@dataclass
class Scenario:
    time_zone: str
    periods: list[Period]
    decimals: int
    redemption_value: int  # stablecoin base units per whole token
    stablecoin_decimals: int
    # Per device: its readings (seq order) and its split as (wallet or "" for the owner, bps).
    readings: list[list[Reading]]
    split: list[tuple[str, int]]
    # DR event windows (UTC seconds) of an includes-exports program, and which devices are enrolled in it.
    windows: list[tuple[int, int]] = field(default_factory=list)
    in_dr: set[int] = field(default_factory=set)


def export_rate(s: Scenario, instant: int) -> int:
    local = dt.datetime.fromtimestamp(instant, ZoneInfo(s.time_zone))
    minute = local.hour * 60 + local.minute
    for p in s.periods:
        if p.days_mask >> local.weekday() & 1 and p.start_minute <= minute < p.end_minute:
            return p.export_price
    raise AssertionError(f"tariff does not cover {local}")


def interval_value(s: Scenario, device: int, start: int, end: int, energy: int) -> Fraction:
    """Stablecoin micro-units of `energy` Wh spread evenly over [start, end)."""
    weighted = 0
    for minute in range(start, end, 60):
        excluded = device in s.in_dr and any(a <= minute < b for a, b in s.windows)
        weighted += 0 if excluded else 60 * export_rate(s, minute)
    return Fraction(energy * weighted, (end - start) * 1000)


def device_value(s: Scenario, device: int) -> Fraction:
    total = Fraction(0)
    readings = s.readings[device]
    for before, r in itertools.pairwise(readings):
        energy = r.exported_wh - before.exported_wh
        start = before.interval_end
        intervals = r.seq - before.seq
        bounds = [r.interval_end - k * r.length for k in range(intervals - 1, -1, -1)]
        starts = [start, *bounds[:-1]]
        span = r.interval_end - start
        shares = [energy * (b - a) // span for a, b in zip(starts, bounds, strict=True)]
        shares[-1] += energy - sum(shares)
        for a, b, e in zip(starts, bounds, shares, strict=True):
            total += interval_value(s, device, a, b, e)
    return total


def tokens(s: Scenario, value_micro: Fraction) -> Fraction:
    """Token base units a stablecoin-priced value pays (DESIGN: Value of a credit)."""
    scale = Fraction(10) ** (6 - s.stablecoin_decimals)
    return Fraction(value_micro * 10**s.decimals) / (s.redemption_value * scale)


def exact_shares(s: Scenario, owners: Sequence[str]) -> dict[str, Fraction]:
    """Each receiving wallet's exact share in token base units."""
    out: dict[str, Fraction] = defaultdict(Fraction)
    for d, owner in enumerate(owners):
        worth = tokens(s, device_value(s, d))
        for wallet, bps in s.split:
            out[wallet or owner] += worth * bps / 10_000
    return dict(out)


def paid(s: Scenario, owners: Sequence[str]) -> dict[str, int]:
    """What each wallet must hold once everything is settled: the floor of its exact share."""
    return {w: floor(x) for w, x in exact_shares(s, owners).items()}


def redeemable(s: Scenario, amount: int) -> int:
    """Stablecoin base units `amount` token base units redeem for."""
    return int(amount * s.redemption_value // 10**s.decimals)
