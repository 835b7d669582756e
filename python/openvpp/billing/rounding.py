"""From a period's exact total to what is due, as credits are rounded:
down to the stablecoin's base unit, the remainder carried to the account's
next bill; a total below zero is carried as a credit instead. Over any run
of bills, what is due plus what is still carried equals the exact sum.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

PRICE_DECIMALS = 6  # amounts are micro-units of the stablecoin


@dataclass(frozen=True, slots=True)
class Balance:
    """What an account carries between bills, in micro-units."""

    remainder: Fraction = Fraction(0)  # 0 ≤ remainder < one base unit
    credit: Fraction = Fraction(0)  # ≥ 0, owed to the account


@dataclass(frozen=True, slots=True)
class Due:
    base_units: int
    balance: Balance
    credit_applied: Fraction  # micro-units of carried credit this bill used


def micro_per_base_unit(stablecoin_decimals: int) -> Fraction:
    return Fraction(10**PRICE_DECIMALS, 10**stablecoin_decimals)


def due(total: Fraction, before: Balance, stablecoin_decimals: int) -> Due:
    unit = micro_per_base_unit(stablecoin_decimals)
    applied = min(before.credit, max(total, Fraction(0)))
    net = total - before.credit + before.remainder
    if net <= 0:
        return Due(0, Balance(Fraction(0), -net), applied)
    base_units = int(net // unit)
    return Due(base_units, Balance(net - base_units * unit, Fraction(0)), applied)


__all__ = ["Balance", "Due", "due", "micro_per_base_unit"]
