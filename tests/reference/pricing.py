"""Plain-Python reference of exact pricing (rust/openvpp-core/src/pricing.rs), with Fractions."""

from __future__ import annotations

from fractions import Fraction

U64 = 2**64


def price(
    items: list[tuple[int, int, int, int]],
    segments: list[tuple[int, int, int]],
    carries: list[int],
    divisor: int,
) -> tuple[list[str], list[int], list[int]]:
    """Items are (account, start, end, energy_wh); segments (start, end, rate)."""
    denominator = 86_400 * 1000 * divisor
    carries = list(carries)
    verdicts, amounts = [], []
    for account, start, end, wh in items:
        if account >= len(carries) or start >= end or (end - start) > 86_400 or 86_400 % (end - start):
            verdicts.append("invalid_item")
            amounts.append(0)
            continue
        value = Fraction(0)
        seconds = 0
        for s_start, s_end, rate in segments:
            overlap = min(s_end, end) - max(s_start, start)
            if overlap > 0:
                seconds += overlap
                value += Fraction(wh * overlap * rate, (end - start) * 1000 * divisor)
        if seconds < end - start:
            verdicts.append("no_price")
            amounts.append(0)
            continue
        total = Fraction(carries[account], denominator) + value
        whole = total.numerator // total.denominator
        if whole >= U64 or value * denominator >= 2**128:
            verdicts.append("overflow")
            amounts.append(0)
            continue
        rest = total - whole
        assert (rest * denominator).denominator == 1
        carries[account] = int(rest * denominator)
        verdicts.append("priced")
        amounts.append(whole)
    return verdicts, amounts, carries
