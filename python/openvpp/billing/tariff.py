"""Import tariffs as utilities publish them: energy charges by time-of-use
period with tiers, demand charges (per TOU period and monthly), and fixed
charges; with the export rates net billing credits.

Money follows the platform's rules: rates are integers, micro-units of the
stablecoin per kWh (energy) or per kW (demand), fixed charges micro-units;
energy tiers are Wh. A period is chosen by a 12 x 24 schedule (month x local
hour) for weekdays and one for weekends, as in OpenEI's rate database.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from openvpp import errors

MONTHS = 12
HOURS = 24
Schedule = tuple[tuple[int, ...], ...]


@dataclass(frozen=True, slots=True)
class EnergyTier:
    """Up to `upto_wh` of the month's energy (None: without limit) at these rates."""

    upto_wh: int | None
    buy: int  # micro-units per kWh imported
    sell: int = 0  # micro-units per kWh exported (net billing)


@dataclass(frozen=True, slots=True)
class DemandTier:
    """Up to `upto_w` of the peak (None: without limit) at `rate` micro-units per kW."""

    upto_w: int | None
    rate: int


@dataclass(frozen=True, slots=True)
class Tariff:
    name: str
    energy_weekday: Schedule
    energy_weekend: Schedule
    # Indexed by the schedules' period numbers.
    energy: Mapping[int, tuple[EnergyTier, ...]]
    demand_weekday: Schedule | None = None
    demand_weekend: Schedule | None = None
    demand_tou: Mapping[int, tuple[DemandTier, ...]] = field(default_factory=dict)
    # Month (1-12) → tiers of the month's highest 15-minute demand.
    demand_flat: Mapping[int, tuple[DemandTier, ...]] = field(default_factory=dict)
    fixed_monthly: int = 0
    fixed_daily: int = 0
    minimum_monthly: int = 0

    def __post_init__(self) -> None:
        check_schedule("energy_weekday", self.energy_weekday, self.energy)
        check_schedule("energy_weekend", self.energy_weekend, self.energy)
        for period, tiers in self.energy.items():
            check_tiers(f"energy[{period}]", [t.upto_wh for t in tiers])
            for i, tier in enumerate(tiers):
                if tier.buy < 0 or tier.sell < 0:
                    raise errors.InvalidArgument.field(f"energy[{period}].tiers[{i}]", "rates must not be negative")
        # Net metering allocates the month's tiers across periods, so every
        # period must share one set of tier bounds (as SAM also requires).
        bounds = {tuple(t.upto_wh for t in tiers) for tiers in self.energy.values()}
        if len(bounds) > 1:
            raise errors.InvalidArgument.field("energy", "every period must have the same tier limits", "TIERS_DIFFER")
        if self.demand_tou:
            if self.demand_weekday is None or self.demand_weekend is None:
                raise errors.InvalidArgument.field("demand_weekday", "TOU demand charges need demand schedules")
            check_schedule("demand_weekday", self.demand_weekday, self.demand_tou)
            check_schedule("demand_weekend", self.demand_weekend, self.demand_tou)
        for where, table in (("demand_tou", self.demand_tou), ("demand_flat", self.demand_flat)):
            for key, demand_tiers in table.items():
                check_tiers(f"{where}[{key}]", [t.upto_w for t in demand_tiers])
                if any(t.rate < 0 for t in demand_tiers):
                    raise errors.InvalidArgument.field(f"{where}[{key}]", "rates must not be negative")
        if any(not 1 <= month <= MONTHS for month in self.demand_flat):
            raise errors.InvalidArgument.field("demand_flat", "months are 1 to 12")
        if min(self.fixed_monthly, self.fixed_daily, self.minimum_monthly) < 0:
            raise errors.InvalidArgument.field("fixed_monthly", "fixed and minimum charges must not be negative")

    def energy_period(self, month: int, hour: int, weekend: bool) -> int:
        return (self.energy_weekend if weekend else self.energy_weekday)[month - 1][hour]

    def demand_period(self, month: int, hour: int, weekend: bool) -> int | None:
        schedule = self.demand_weekend if weekend else self.demand_weekday
        return None if schedule is None or not self.demand_tou else schedule[month - 1][hour]


def check_schedule(name: str, schedule: Schedule, periods: Mapping[int, object]) -> None:
    if len(schedule) != MONTHS or any(len(row) != HOURS for row in schedule):
        raise errors.InvalidArgument.field(name, "a schedule is 12 months of 24 hours", "BAD_SCHEDULE")
    unknown = sorted({p for row in schedule for p in row} - set(periods))
    if unknown:
        raise errors.InvalidArgument.field(name, f"periods {unknown} have no rates", "UNKNOWN_PERIOD")


def check_tiers(name: str, limits: Sequence[int | None]) -> None:
    if not limits:
        raise errors.InvalidArgument.field(name, "at least one tier", "NO_TIERS")
    if limits[-1] is not None:
        raise errors.InvalidArgument.field(name, "the last tier must be without limit", "LAST_TIER_LIMITED")
    bounded = [b for b in limits[:-1]]
    if any(b is None for b in bounded):
        raise errors.InvalidArgument.field(name, "only the last tier may be without limit", "TIER_ORDER")
    values = [b for b in bounded if b is not None]
    if any(b <= 0 for b in values) or values != sorted(set(values)):
        raise errors.InvalidArgument.field(name, "tier limits must be positive and increasing", "TIER_ORDER")


def flat_schedule(period: int = 0) -> Schedule:
    return tuple(tuple(period for _ in range(HOURS)) for _ in range(MONTHS))


__all__ = ["MONTHS", "DemandTier", "EnergyTier", "Schedule", "Tariff", "check_schedule", "check_tiers", "flat_schedule"]
