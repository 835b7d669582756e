"""Credit value to token base units, and remainders carried per party.

Checked against `fractions.Fraction` arithmetic written from the contract
(DESIGN.md "Value of a credit"), not against the implementation."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from fractions import Fraction
from math import floor

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from openvpp import errors, native
from openvpp.settlement import money
from openvpp.v1 import settlement_pb2 as pb


@dataclass(frozen=True)
class _Piece:
    device: int
    start: int
    end: int
    energy: int


def _segments(rate: int, conv: money.Conversion) -> bytes:
    return native.PriceSegment(0, 86_400, rate * conv.multiplier).pack()


def test_the_readme_token_pays_what_the_export_is_worth() -> None:
    # 12.345 kWh at 0.15 stablecoin/kWh = 1.85175 stablecoin; the token redeems
    # 150,000 stablecoin base units (6 decimals) per whole token of 3 decimals.
    conv = money.conversion(pb.CREDIT_KIND_NEM_EXPORT, 3, 150_000, 6)
    owner = [money.Share(pb.PARTY_OWNER, "W", 10_000)]
    out = money.price_shares(conv, {}, [owner], [_Piece(0, 0, 900, 12_345)], {0: _segments(150_000, conv)}, [0])
    (credit,) = out.credits
    exact = Fraction(12_345 * 150_000, 1000) * 10**3 / 150_000
    assert credit.amount == floor(exact) == 12_345
    # Redeeming it pays the value to the base unit.
    assert credit.amount * 150_000 // 10**3 == 1_851_750


@pytest.mark.parametrize("stablecoin_decimals", [2, 6, 9])
def test_other_stablecoin_decimals_keep_the_value(stablecoin_decimals: int) -> None:
    conv = money.conversion(pb.CREDIT_KIND_NEM_EXPORT, 6, 10**stablecoin_decimals, stablecoin_decimals)
    owner = [money.Share(pb.PARTY_OWNER, "W", 10_000)]
    out = money.price_shares(conv, {}, [owner], [_Piece(0, 0, 900, 1_000)], {0: _segments(250_000, conv)}, [0])
    # A token worth one stablecoin: 1 kWh at 0.25 is 0.25 tokens.
    assert out.credits[0].amount == 250_000


@given(
    energies=st.lists(st.integers(0, 50_000), min_size=1, max_size=30),
    bps=st.integers(1, 9_999),
    rate=st.integers(0, 900_000),
    decimals=st.integers(0, 9),
    value=st.integers(1, 10**7),
    cuts=st.sets(st.integers(1, 29)),
)
@settings(max_examples=200, deadline=None)
def test_each_party_gets_the_floor_of_its_exact_share_however_batched(
    energies: list[int], bps: int, rate: int, decimals: int, value: int, cuts: set[int]
) -> None:
    conv = money.conversion(pb.CREDIT_KIND_NEM_EXPORT, decimals, value, 6)
    # Two devices, each split between its owner and one shared installer.
    split = [
        [money.Share(pb.PARTY_OWNER, f"owner{d}", 10_000 - bps), money.Share(pb.PARTY_INSTALLER, "inst", bps)]
        for d in range(2)
    ]
    pieces = [_Piece(i % 2, (i // 2) * 900, (i // 2 + 1) * 900, e) for i, e in enumerate(energies)]
    segments = {0: native.PriceSegment(0, 86_400 * 2, rate * conv.multiplier).pack()}
    carries: dict[str, int] = {}
    paid: dict[str, int] = {}
    bounds = [0, *sorted(c for c in cuts if c < len(pieces)), len(pieces)]
    for a, b in itertools.pairwise(bounds):
        out = money.price_shares(conv, carries, split, pieces[a:b], segments, [0, 0])
        carries = {**carries, **out.carries}
        for c in out.credits:
            paid[c.share.wallet] = paid.get(c.share.wallet, 0) + c.amount
            assert 0 <= c.carry_after < conv.denominator
    exact: dict[str, Fraction] = {}
    for p in pieces:
        worth = Fraction(p.energy * rate, 1000) * 10**decimals / value
        for s in split[p.device]:
            exact[s.wallet] = exact.get(s.wallet, Fraction(0)) + worth * s.bps / 10_000
    for wallet, share in exact.items():
        assert paid.get(wallet, 0) == floor(share), wallet


def test_reward_kinds_need_a_token_in_their_unit() -> None:
    with pytest.raises(errors.FailedPrecondition) as refused:
        money.check(pb.CREDIT_KIND_KWH_REWARD, pb.TOKEN_UNIT_USD, 3, 1_000, 6)
    assert refused.value.reason == "TOKEN_UNIT_MISMATCH"
    with pytest.raises(errors.FailedPrecondition):
        money.check(pb.CREDIT_KIND_CO2_REWARD, pb.TOKEN_UNIT_KWH, 3, 1_000, 6)
    money.check(pb.CREDIT_KIND_NEM_EXPORT, pb.TOKEN_UNIT_KWH, 3, 150_000, 6)
    with pytest.raises(errors.FailedPrecondition) as refused:
        money.check(pb.CREDIT_KIND_NEM_EXPORT, pb.TOKEN_UNIT_USD, 0, 2**62, 6)
    assert refused.value.reason == "VALUE_NOT_REPRESENTABLE"


def test_the_value_shown_is_the_whole_credit_before_the_split() -> None:
    conv = money.conversion(pb.CREDIT_KIND_NEM_EXPORT, 3, 150_000, 6)
    share = Fraction(1_234_567, 1000) * 2_500 / 10_000
    assert conv.value(share, 2_500) == Fraction(1_234_567, 1000) * 150_000 / 10**3
    kwh = money.conversion(pb.CREDIT_KIND_KWH_REWARD, 2, 0, 6)
    # 1,500 Wh is 1.5 tokens = 150 base units; the value shown is the energy.
    assert kwh.value(Fraction(150), 10_000) == 1_500
