"""Tariffs from the OpenEI Utility Rate Database (URDB) JSON, the format
US utility tariffs are commonly published in (an API answer `{"items":
[...]}` or one rate object).

What OpenVPP bills is read exactly: energy rates by TOU period and tier
(rate + adjustment, optional export `sell` rate), the weekday and weekend
schedules, TOU and flat (monthly) demand charges in kW over 15-minute
windows, fixed charges per month or per day, and a monthly minimum.
Anything else a rate may carry that would change the bill (other units,
ratchets, coincident demand, reactive power, other demand windows, monthly
fuel adjustments) is refused with a precise error rather than ignored.
Hand-written: no library reads URDB rates into exact amounts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from openvpp import errors
from openvpp.billing.tariff import DemandTier, EnergyTier, Schedule, Tariff

MICRO = Decimal(1_000_000)
# Fields that change a bill in ways OpenVPP does not model; refused when set.
UNSUPPORTED = {
    "coincidentratestructure": "coincident demand charges",
    "coincidentrateschedule": "coincident demand charges",
    "demandreactivepowercharge": "reactive power charges",
    "fueladjustmentsmonthly": "monthly fuel adjustments",
    "demandratchetpercentage": "demand ratchets",
    "lookbackpercent": "demand look-back",
    "lookbackrange": "demand look-back",
    "lookbackmonths": "demand look-back",
}


def _refuse(path: str, what: str) -> errors.InvalidArgument:
    return errors.InvalidArgument.field(path, f"not supported: {what}", "URDB_UNSUPPORTED")


def _micro(value: Any, path: str) -> int:
    """$ (or $/kWh, $/kW) as exact micro-units."""
    try:
        amount = Decimal(str(value)) * MICRO
    except InvalidOperation as exc:
        raise errors.InvalidArgument.field(path, f"{value!r} is not a number") from exc
    if amount != amount.to_integral_value():
        raise errors.InvalidArgument.field(path, f"{value} is finer than a micro-unit", "URDB_PRECISION")
    return int(amount)


def _whole(value: Any, path: str, scale: int) -> int:
    amount = Decimal(str(value)) * scale
    if amount != amount.to_integral_value() or amount <= 0:
        raise errors.InvalidArgument.field(path, f"{value} must be positive, to 1/{scale}", "URDB_PRECISION")
    return int(amount)


def _schedule(rate: Mapping[str, Any], key: str) -> Schedule:
    rows = rate.get(key)
    if not isinstance(rows, list) or len(rows) != 12 or any(not isinstance(r, list) or len(r) != 24 for r in rows):
        raise errors.InvalidArgument.field(key, "a 12 x 24 schedule of period numbers", "BAD_SCHEDULE")
    try:
        return tuple(tuple(int(p) for p in row) for row in rows)
    except (TypeError, ValueError) as exc:
        raise errors.InvalidArgument.field(key, "period numbers must be integers", "BAD_SCHEDULE") from exc


def _energy(rate: Mapping[str, Any]) -> dict[int, tuple[EnergyTier, ...]]:
    out = {}
    for period, tiers in enumerate(rate.get("energyratestructure") or []):
        parsed = []
        for index, tier in enumerate(tiers):
            path = f"energyratestructure[{period}][{index}]"
            unit = tier.get("unit", "kWh")
            if unit != "kWh":
                raise _refuse(f"{path}.unit", f"energy tiers in {unit!r} (only kWh per month)")
            upto = None if tier.get("max") is None else _whole(tier["max"], f"{path}.max", 1000)
            buy = _micro(tier.get("rate", 0), f"{path}.rate") + _micro(tier.get("adj", 0), f"{path}.adj")
            parsed.append(EnergyTier(upto, buy, _micro(tier.get("sell", 0), f"{path}.sell")))
        out[period] = tuple(parsed)
    if not out:
        raise errors.InvalidArgument.field("energyratestructure", "a tariff needs energy rates", "URDB_NO_ENERGY")
    return out


def _demand_tiers(tiers: Sequence[Mapping[str, Any]], path: str) -> tuple[DemandTier, ...]:
    parsed = []
    for index, tier in enumerate(tiers):
        upto = None if tier.get("max") is None else _whole(tier["max"], f"{path}[{index}].max", 1000)
        rate = _micro(tier.get("rate", 0), f"{path}[{index}].rate") + _micro(tier.get("adj", 0), f"{path}[{index}].adj")
        parsed.append(DemandTier(upto, rate))
    return tuple(parsed)


def _per_month(amount: Any, unit: Any, path: str) -> tuple[int, int]:
    """(monthly, daily) micro-units from an amount and its URDB unit."""
    micro = _micro(amount or 0, path)
    if unit in (None, "$/month"):
        return micro, 0
    if unit == "$/day":
        return 0, micro
    raise _refuse(f"{path}units", f"charges in {unit!r}")


def _check_supported(rate: Mapping[str, Any]) -> None:
    for key, what in UNSUPPORTED.items():
        value = rate.get(key)
        if value not in (None, 0, [], "", {}):
            raise _refuse(key, what)
    if rate.get("demandunits", "kW") != "kW" or rate.get("flatdemandunit", "kW") != "kW":
        raise _refuse("demandunits", "demand in units other than kW")
    window = rate.get("demandwindow")
    if window not in (None, 15):
        raise _refuse("demandwindow", f"{window}-minute demand windows (15 only)")
    if rate.get("demandrateunit", "kW") != "kW":
        raise _refuse("demandrateunit", "demand rates other than $/kW")


def pick(document: Any, label: str | None = None) -> Mapping[str, Any]:
    """The rate object in a URDB document: its only item, or the one labelled `label`."""
    if isinstance(document, Mapping) and "items" in document:
        items = [i for i in document["items"] if label is None or i.get("label") == label]
        if len(items) != 1:
            raise errors.InvalidArgument.field(
                "items", f"{len(items)} rates match; name one by its label", "URDB_AMBIGUOUS"
            )
        return items[0]  # type: ignore[no-any-return]
    if not isinstance(document, Mapping):
        raise errors.InvalidArgument.field("document", "a URDB rate object or an API answer", "URDB_FORMAT")
    return document


def tariff(document: Any, label: str | None = None) -> Tariff:
    rate = pick(document, label)
    _check_supported(rate)
    demand_tou = {
        period: _demand_tiers(tiers, f"demandratestructure[{period}]")
        for period, tiers in enumerate(rate.get("demandratestructure") or [])
    }
    flat_periods = [
        _demand_tiers(tiers, f"flatdemandstructure[{period}]")
        for period, tiers in enumerate(rate.get("flatdemandstructure") or [])
    ]
    demand_flat = {}
    if flat_periods:
        months = rate.get("flatdemandmonths")
        if not isinstance(months, list) or len(months) != 12:
            raise errors.InvalidArgument.field("flatdemandmonths", "12 period numbers, one per month", "BAD_SCHEDULE")
        for month, period in enumerate(months, start=1):
            if not 0 <= int(period) < len(flat_periods):
                raise errors.InvalidArgument.field(
                    "flatdemandmonths", f"period {period} has no rates", "UNKNOWN_PERIOD"
                )
            demand_flat[month] = flat_periods[int(period)]
    fixed_monthly, fixed_daily = _per_month(
        rate.get("fixedchargefirstmeter", rate.get("fixedmonthlycharge")), rate.get("fixedchargeunits"), "fixedcharge"
    )
    minimum, minimum_daily = _per_month(rate.get("mincharge"), rate.get("minchargeunits"), "mincharge")
    if minimum_daily:
        raise _refuse("minchargeunits", "a daily minimum charge")
    try:
        return _build(rate, demand_tou, demand_flat, fixed_monthly, fixed_daily, minimum)
    except errors.InvalidArgument as exc:
        raise _in_urdb_terms(exc) from None


# The tariff model's names for what URDB calls otherwise, so errors name the document's fields.
_URDB_FIELDS = {
    "energy_weekday": "energyweekdayschedule",
    "energy_weekend": "energyweekendschedule",
    "demand_weekday": "demandweekdayschedule",
    "demand_weekend": "demandweekendschedule",
    "energy": "energyratestructure",
    "demand_tou": "demandratestructure",
    "demand_flat": "flatdemandstructure",
}


def _in_urdb_terms(exc: errors.InvalidArgument) -> errors.InvalidArgument:
    violations = []
    for v in exc.violations:
        head, dot, rest = v.field.partition("[")
        violations.append(errors.FieldViolation(_URDB_FIELDS.get(head, head) + dot + rest, v.description))
    message = "; ".join(f"{v.field}: {v.description}" for v in violations) or exc.message
    return errors.InvalidArgument(message, exc.reason, violations=violations)


def _build(
    rate: Mapping[str, Any],
    demand_tou: dict[int, tuple[DemandTier, ...]],
    demand_flat: dict[int, tuple[DemandTier, ...]],
    fixed_monthly: int,
    fixed_daily: int,
    minimum: int,
) -> Tariff:
    return Tariff(
        name=str(rate.get("name") or rate.get("label") or "URDB tariff"),
        energy_weekday=_schedule(rate, "energyweekdayschedule"),
        energy_weekend=_schedule(rate, "energyweekendschedule"),
        energy=_energy(rate),
        demand_weekday=_schedule(rate, "demandweekdayschedule") if demand_tou else None,
        demand_weekend=_schedule(rate, "demandweekendschedule") if demand_tou else None,
        demand_tou=demand_tou,
        demand_flat=demand_flat,
        fixed_monthly=fixed_monthly,
        fixed_daily=fixed_daily,
        minimum_monthly=minimum,
    )


__all__ = ["UNSUPPORTED", "pick", "tariff"]
