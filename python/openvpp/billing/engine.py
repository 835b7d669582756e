"""One billing period's charges, exactly, under a tariff and a net-metering
regime. Pure: slots and the state carried from the previous period in, a
statement and the state to carry out.

The regimes follow the conventions of NREL's System Advisor Model (SAM,
`Utilityrate5`), which the test suite checks them against:

Net energy metering (NEM). Within the billing period, imports and exports
are netted per TOU period. A period's net import is charged at retail; the
period's tiers apply to the whole period's net import, shared among TOU
periods in proportion to their net import. A period's net export is carried
as energy into the next billing period's TOU period at the same time of day
(the periods in force at 00:00, 05:00, 11:00 or 17:00 on weekdays), where it
offsets imports. Separately, the whole period's net export accumulates since
the last true-up; the billing period that ends in the true-up month pays it
at the net-surplus compensation rate and starts both carries afresh.

Net billing. Every slot on its own: imports at the retail rate of their
period, exports credited at its export rate, each tiered by the period's
cumulative import (or export) so far. A period's credits may exceed its
charges: the statement's total is then negative (the account layer carries
it as a credit). Imports only: net billing without export credits, for a
program that pays exports as tokens instead.

Then, for both: demand charges on the highest 15-minute import per demand
period and per billing period (tiered), fixed charges per period and per
day, a minimum bill (what the total, taken as zero when negative, falls
short of it), taxes as a percentage of the positive total, and NEM's
true-up credit last.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction

from openvpp import errors
from openvpp.billing.slots import SLOT_S, Slot
from openvpp.billing.tariff import DemandTier, EnergyTier, Tariff

WH_PER_KWH = 1000
BPS = 10_000
SLOTS_PER_HOUR = 3600 // SLOT_S
# Where NEM looks for "the same time of day" in the next period (SAM's hours).
ROLLOVER_HOURS = (0, 5, 11, 17)


class Regime(enum.Enum):
    NET_METERING = "net_metering"
    NET_BILLING = "net_billing"
    # Net billing without export credits: the program pays exports as tokens.
    IMPORTS_ONLY = "imports_only"


class LineKind(enum.Enum):
    ENERGY = "energy"
    EXPORT_CREDIT = "export_credit"
    DEMAND_TOU = "demand_tou"
    DEMAND_FLAT = "demand_flat"
    FIXED_MONTHLY = "fixed_monthly"
    FIXED_DAILY = "fixed_daily"
    MINIMUM = "minimum"
    TAX = "tax"
    TRUE_UP = "true_up"
    # Not the engine's: the account layer's line for credit carried from earlier bills.
    CREDIT_CARRIED = "credit_carried"


@dataclass(frozen=True, slots=True)
class Plan:
    tariff: Tariff
    regime: Regime
    # The billing period ending in this month (1-12) trues up NEM.
    true_up_month: int = 12
    surplus_rate: int = 0  # micro-units per kWh of net surplus at true-up
    tax_bps: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.true_up_month <= 12:
            raise errors.InvalidArgument.field("true_up_month", "a month, 1 to 12")
        if self.surplus_rate < 0 or not 0 <= self.tax_bps <= BPS:
            raise errors.InvalidArgument.field("tax_bps", "tax 0-10000 bps, surplus rate not negative")


@dataclass(frozen=True, slots=True)
class Carry:
    """NEM state between billing periods."""

    surplus_wh: dict[int, Fraction] = field(default_factory=dict)  # by TOU period, for the next period
    excess_wh: Fraction = Fraction(0)  # whole-period net export since the last true-up
    month: int | None = None  # the month of the period that produced `surplus_wh`
    fresh: bool = True  # nothing rolls into the next period (first period, or just trued up)


@dataclass(frozen=True, slots=True)
class Line:
    kind: LineKind
    amount: Fraction  # micro-units of the stablecoin; credits negative
    quantity: Fraction  # Wh (energy), W (demand), days or periods
    rate: int | None = None  # micro-units per kWh, per kW, per day or per period
    period: int | None = None
    tier: int | None = None


@dataclass(frozen=True, slots=True)
class Statement:
    lines: tuple[Line, ...]
    carry: Carry
    imported_wh: Fraction
    exported_wh: Fraction

    def amount(self, *kinds: LineKind) -> Fraction:
        return sum((line.amount for line in self.lines if line.kind in kinds), Fraction(0))

    @property
    def total(self) -> Fraction:
        return self.amount(*LineKind)


def _tier_split(amount: Fraction, already: Fraction, limits: Sequence[int | None]) -> list[tuple[int, Fraction]]:
    """How `amount` more, after `already`, falls into tiers with these upper limits."""
    out = []
    lower = Fraction(0)
    start, end = already, already + amount
    for tier, upper in enumerate(limits):
        top = end if upper is None else min(end, Fraction(upper))
        part = top - max(start, lower)
        if part > 0:
            out.append((tier, part))
        if upper is None or end <= upper:
            break
        lower = Fraction(upper)
    return out


def _demand(tiers: Sequence[DemandTier], peak_w: Fraction) -> list[tuple[int, Fraction, int]]:
    """(tier, W in it, rate) for a peak."""
    return [
        (tier, watts, tiers[tier].rate) for tier, watts in _tier_split(peak_w, Fraction(0), [t.upto_w for t in tiers])
    ]


def _kwh(wh: Fraction, rate: int) -> Fraction:
    return wh * rate / WH_PER_KWH


def rollover_target(tariff: Tariff, source: int, from_month: int, to_month: int) -> int | None:
    """The TOU period in `to_month` at the time of day `source` held in `from_month`."""
    hours = [*ROLLOVER_HOURS, *range(24)]
    for weekend in (False, True):
        for hour in hours:
            if tariff.energy_period(from_month, hour, weekend) == source:
                return tariff.energy_period(to_month, hour, weekend)
    return None


def _net_metering(plan: Plan, slots: Sequence[Slot], carry: Carry, month: int) -> tuple[list[Line], Carry]:
    tariff = plan.tariff
    net: dict[int, Fraction] = {}
    for slot in slots:
        period = tariff.energy_period(slot.month, slot.hour, slot.weekend)
        net[period] = net.get(period, Fraction(0)) + slot.export_wh - slot.import_wh
    if not carry.fresh and carry.month is not None:
        for source, wh in carry.surplus_wh.items():
            target = rollover_target(tariff, source, carry.month, month)
            if target is not None:
                net[target] = net.get(target, Fraction(0)) + wh
    use = {p: -wh for p, wh in net.items() if wh < 0}
    surplus = {p: wh for p, wh in net.items() if wh > 0}
    total_use = sum(use.values(), Fraction(0))
    lines = []
    for period in sorted(use):
        tiers: tuple[EnergyTier, ...] = tariff.energy[period]
        share = use[period] / total_use
        for tier, wh in _tier_split(total_use, Fraction(0), [t.upto_wh for t in tiers]):
            energy = wh * share
            lines.append(Line(LineKind.ENERGY, _kwh(energy, tiers[tier].buy), energy, tiers[tier].buy, period, tier))
    month_net = sum((s.export_wh - s.import_wh for s in slots), Fraction(0))
    excess = max((Fraction(0) if carry.fresh else carry.excess_wh) + month_net, Fraction(0))
    if month == plan.true_up_month:
        if excess > 0:
            lines.append(Line(LineKind.TRUE_UP, -_kwh(excess, plan.surplus_rate), excess, plan.surplus_rate))
        return lines, Carry(month=month, fresh=True)
    return lines, Carry(surplus, excess, month, fresh=False)


def _net_billing(plan: Plan, slots: Sequence[Slot]) -> list[Line]:
    tariff = plan.tariff
    imported: dict[tuple[int, int], Fraction] = {}
    exported: dict[tuple[int, int], Fraction] = {}
    so_far_in = so_far_out = Fraction(0)
    for slot in slots:
        period = tariff.energy_period(slot.month, slot.hour, slot.weekend)
        limits = [t.upto_wh for t in tariff.energy[period]]
        for tier, wh in _tier_split(slot.import_wh, so_far_in, limits):
            imported[period, tier] = imported.get((period, tier), Fraction(0)) + wh
        if plan.regime is not Regime.IMPORTS_ONLY:
            for tier, wh in _tier_split(slot.export_wh, so_far_out, limits):
                exported[period, tier] = exported.get((period, tier), Fraction(0)) + wh
            so_far_out += slot.export_wh
        so_far_in += slot.import_wh
    lines = []
    for (period, tier), wh in sorted(imported.items()):
        rate = tariff.energy[period][tier].buy
        lines.append(Line(LineKind.ENERGY, _kwh(wh, rate), wh, rate, period, tier))
    for (period, tier), wh in sorted(exported.items()):
        rate = tariff.energy[period][tier].sell
        lines.append(Line(LineKind.EXPORT_CREDIT, -_kwh(wh, rate), wh, rate, period, tier))
    return lines


def _demand_lines(tariff: Tariff, slots: Sequence[Slot], month: int) -> list[Line]:
    lines = []
    peaks: dict[int, Fraction] = {}
    flat = Fraction(0)
    for slot in slots:
        watts = slot.import_wh * SLOTS_PER_HOUR
        flat = max(flat, watts)
        period = tariff.demand_period(slot.month, slot.hour, slot.weekend)
        if period is not None:
            peaks[period] = max(peaks.get(period, Fraction(0)), watts)
    for period in sorted(peaks):
        for tier, watts, rate in _demand(tariff.demand_tou[period], peaks[period]):
            lines.append(Line(LineKind.DEMAND_TOU, _kwh(watts, rate), watts, rate, period, tier))
    if month in tariff.demand_flat:
        for tier, watts, rate in _demand(tariff.demand_flat[month], flat):
            lines.append(Line(LineKind.DEMAND_FLAT, _kwh(watts, rate), watts, rate, None, tier))
    return lines


def bill_period(plan: Plan, slots: Iterable[Slot], carry: Carry, *, month: int, days: int) -> Statement:
    """The statement of one billing period: `month` (1-12) is the one it is
    billed in (its flat demand row, and whether it trues up), `days` its length."""
    ordered = sorted(slots, key=lambda s: s.start_s)
    tariff = plan.tariff
    lines: list[Line] = []
    true_up: list[Line] = []
    if plan.regime is Regime.NET_METERING:
        energy, carry = _net_metering(plan, ordered, carry, month)
        lines += [line for line in energy if line.kind is not LineKind.TRUE_UP]
        true_up = [line for line in energy if line.kind is LineKind.TRUE_UP]
    else:
        lines += _net_billing(plan, ordered)
    lines += _demand_lines(tariff, ordered, month)
    if tariff.fixed_monthly:
        lines.append(Line(LineKind.FIXED_MONTHLY, Fraction(tariff.fixed_monthly), Fraction(1), tariff.fixed_monthly))
    if tariff.fixed_daily:
        lines.append(
            Line(LineKind.FIXED_DAILY, Fraction(tariff.fixed_daily * days), Fraction(days), tariff.fixed_daily)
        )
    so_far = max(sum((line.amount for line in lines), Fraction(0)), Fraction(0))
    if so_far < tariff.minimum_monthly:
        lines.append(Line(LineKind.MINIMUM, tariff.minimum_monthly - so_far, Fraction(1), tariff.minimum_monthly))
        so_far = Fraction(tariff.minimum_monthly)
    if plan.tax_bps and so_far > 0:
        lines.append(Line(LineKind.TAX, so_far * plan.tax_bps / BPS, so_far, plan.tax_bps))
    lines += true_up
    return Statement(
        tuple(lines),
        carry,
        sum((s.import_wh for s in ordered), Fraction(0)),
        sum((s.export_wh for s in ordered), Fraction(0)),
    )


__all__ = ["Carry", "Line", "LineKind", "Plan", "Regime", "Statement", "bill_period", "rollover_target"]
