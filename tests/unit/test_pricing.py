"""Exact pricing: Rust against the Fraction reference, and conservation."""

from __future__ import annotations

import itertools
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from openvpp import native
from tests.reference import pricing as ref

LENGTHS = [300, 900, 3600, 700]


@st.composite
def cases(draw: st.DrawFn) -> tuple[list[tuple[int, int, int, int]], list[tuple[int, int, int]], list[int], int]:
    divisor = draw(st.sampled_from([1, 3, 7, 1000, 1_000_000]))
    bounds = sorted(set(draw(st.lists(st.integers(0, 8).map(lambda h: h * 1800), min_size=2, max_size=8))))
    segments = []
    for a, b in itertools.pairwise(bounds):
        if draw(st.integers(0, 6)):  # sometimes leave a hole in the schedule
            segments.append((a, b, draw(st.integers(0, 500_000))))
    accounts = draw(st.integers(1, 3))
    carries = [draw(st.integers(0, 86_400 * 1000 * divisor - 1)) for _ in range(accounts)]
    items = []
    for _ in range(draw(st.integers(1, 30))):
        length = draw(st.sampled_from(LENGTHS))
        start = draw(st.integers(0, 14_400 // 300)) * 300
        items.append((draw(st.integers(0, accounts)), start, start + length, draw(st.integers(0, 50_000))))
    return items, segments, carries, divisor


def run(
    items: list[tuple[int, int, int, int]], segments: list[tuple[int, int, int]], carries: list[int], divisor: int
) -> native.PricedBatch:
    return native.price_energy(
        b"".join(native.PriceItem(*i).pack() for i in items),
        b"".join(native.PriceSegment(*s).pack() for s in segments),
        carries,
        divisor,
    )


@settings(max_examples=300)
@given(cases())
def test_rust_agrees_with_the_fraction_reference(
    case: tuple[list[tuple[int, int, int, int]], list[tuple[int, int, int]], list[int], int],
) -> None:
    items, segments, carries, divisor = case
    verdicts, amounts, final = ref.price(items, segments, carries, divisor)
    got = run(items, segments, carries, divisor)
    assert [got.verdict(i).name.lower() for i in range(len(items))] == verdicts
    assert list(got.amounts) == amounts
    assert got.carries == final


@settings(max_examples=200)
@given(cases())
def test_credits_plus_carry_equal_the_exact_value(
    case: tuple[list[tuple[int, int, int, int]], list[tuple[int, int, int]], list[int], int],
) -> None:
    items, segments, carries, divisor = case
    got = run(items, segments, carries, divisor)
    for account in range(len(carries)):
        exact = Fraction(carries[account], got.denominator)
        paid = 0
        for i, (acct, start, end, wh) in enumerate(items):
            if acct != account or got.verdict(i) is not native.PriceVerdict.PRICED:
                continue
            paid += got.amounts[i]
            for s_start, s_end, rate in segments:
                overlap = min(s_end, end) - max(s_start, start)
                if overlap > 0:
                    exact += Fraction(wh * overlap * rate, (end - start) * 1000 * divisor)
        assert paid + Fraction(got.carries[account], got.denominator) == exact


def test_overflow_is_refused_not_wrapped() -> None:
    got = run([(0, 0, 60, 2**64 - 1)], [(0, 60, 2**64 - 1)], [0], 1)
    assert got.verdict(0) is native.PriceVerdict.OVERFLOW
    assert got.carries == [0]
