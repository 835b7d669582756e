"""How a credit's value becomes token base units, and each party's remainder.

The Rust pricer computes, per item, energy x sum(overlap x rate) x (day /
duration) over the denominator 86,400 x 1000 x divisor. Everything a kind
means is folded into the rate multiplier and the divisor here:

  NEM / DR (stablecoin-priced): value = Wh x micro/kWh / 1000 micro-units, and
      tokens = value x 10^d / (redemption_value x 10^(6 - s))
  KWH_REWARD: tokens = Wh x 10^d / 1000
  CO2_REWARD: tokens = Wh x g/kWh x 10^d / 10^6

A split multiplies each party's item energy by its basis points and the
divisor by 10,000, so the Rust remainder slot of a party (one per wallet and
token, across devices) carries exactly that party's share: what it is paid is
floor(carry before + exact sum of its shares).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from openvpp import errors, native
from openvpp.store import settlement_repo
from openvpp.v1 import settlement_pb2 as pb

BPS = 10_000
PRICE_DECIMALS = 6  # prices are micro-units of the stablecoin
DAY_S = 86_400
WH_PER_KWH = 1000
U64 = 2**64
STABLECOIN_PRICED = (pb.CREDIT_KIND_NEM_EXPORT, pb.CREDIT_KIND_DR_PERFORMANCE)
# The token unit a reward kind pays in; stablecoin-priced kinds pay in any unit.
REWARD_UNIT: dict[int, int] = {
    pb.CREDIT_KIND_KWH_REWARD: pb.TOKEN_UNIT_KWH,
    pb.CREDIT_KIND_CO2_REWARD: pb.TOKEN_UNIT_KG_CO2,
}


@dataclass(frozen=True, slots=True)
class Conversion:
    kind: int
    multiplier: int  # applied to every per-kWh rate
    divisor: int  # includes the split's 10,000

    @property
    def denominator(self) -> int:
        return DAY_S * WH_PER_KWH * self.divisor

    def share(self, numerator: int) -> Fraction:
        """A party's exact share in token base units."""
        return Fraction(numerator, self.denominator)

    def value(self, share: Fraction, bps: int) -> Fraction:
        """The whole credit's value before the split, from one party's exact share:
        micro-units for NEM and DR, Wh for KWH rewards, g CO2 for CO2 rewards."""
        per_kwh = WH_PER_KWH if self.kind == pb.CREDIT_KIND_KWH_REWARD else 1
        return share * self.divisor * per_kwh / (bps * self.multiplier)


def conversion(kind: int, decimals: int, redemption_value: int, stablecoin_decimals: int) -> Conversion:
    if kind in STABLECOIN_PRICED:
        up = max(stablecoin_decimals - PRICE_DECIMALS, 0)
        down = max(PRICE_DECIMALS - stablecoin_decimals, 0)
        return Conversion(kind, 10 ** (decimals + up), redemption_value * 10**down * BPS)
    if kind == pb.CREDIT_KIND_CO2_REWARD:
        return Conversion(kind, 10**decimals, 1000 * BPS)  # g/kWh x kWh = g; 1000 g per token
    return Conversion(kind, 10**decimals, BPS)


def _unit_name(unit: int) -> str:
    return pb.TokenUnit.Name(unit)  # type: ignore[arg-type]


def check(kind: int, unit: int, decimals: int, redemption_value: int, stablecoin_decimals: int) -> None:
    """Refuses a token that cannot carry the kind's value exactly."""
    wanted = REWARD_UNIT.get(kind)
    if wanted is not None and unit != wanted:
        need, kind_name = _unit_name(wanted), pb.CreditKind.Name(kind)  # type: ignore[arg-type]
        raise errors.FailedPrecondition(
            f"{kind_name} pays in the token's own unit, which must be {need}, not {_unit_name(unit)}",
            "TOKEN_UNIT_MISMATCH",
            violations=[errors.FieldViolation("mint", f"must be a {need} token")],
        )
    if kind in STABLECOIN_PRICED and redemption_value <= 0:
        raise errors.FailedPrecondition(
            "a stablecoin-priced credit needs a token with a redemption value", "TOKEN_UNIT_MISMATCH"
        )
    c = conversion(kind, decimals, redemption_value, stablecoin_decimals)
    if c.divisor >= U64 or c.multiplier >= U64:
        raise errors.FailedPrecondition(
            "the token's decimals and redemption value cannot be priced exactly in 64-bit rates",
            "VALUE_NOT_REPRESENTABLE",
        )


async def for_program(conn: AsyncConnection, kind: int, mint: str) -> Conversion:
    token = await settlement_repo.token_terms(conn, mint)
    return conversion(kind, token.decimals, token.redemption_value, await stablecoin_decimals(conn))


async def stablecoin_decimals(conn: AsyncConnection) -> int:
    found = await settlement_repo.stablecoin_decimals(conn)
    return PRICE_DECIMALS if found is None else found


async def load_carries(conn: AsyncConnection, mint: str, wallets: list[str], denominator: int) -> dict[str, int]:
    return {
        wallet: _rescale(carry, stored, denominator)
        for wallet, carry, stored in await settlement_repo.carries(conn, mint, wallets)
    }


def _rescale(carry: int, stored: int, wanted: int) -> int:
    """A remainder kept under another denominator (a token's terms never change,
    so only after an upgrade): exact when it divides, otherwise rounded down."""
    return carry * wanted // stored


async def store_carries(conn: AsyncConnection, mint: str, carries: dict[str, int], denominator: int) -> None:
    await settlement_repo.store_carries(conn, mint, carries, denominator)


def rational(value: Fraction) -> pb.Rational:
    return pb.Rational(numerator=str(value.numerator), denominator=str(value.denominator))


def credit_fields(row: Any, conv: Conversion) -> dict[str, Any]:
    """The statement fields of a stored credit row."""
    den = int(row.denominator)
    exact = Fraction(int(row.exact_share), den)
    return {
        "share_bps": row.share_bps,
        "exact_share": rational(exact),
        "carry_after": rational(Fraction(int(row.carry_after), den)),
        "value": rational(conv.value(exact, row.share_bps)),
    }


# -- pricing each party's share ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class Share:
    party: int
    wallet: str
    bps: int


@dataclass(frozen=True, slots=True)
class PartyCredit:
    """One party's credit for one unit (a device's readings, or its DR result)."""

    unit: int
    share: Share
    amount: int
    exact: int  # the party's exact share, in units of 1 / denominator
    carry_after: int


@dataclass
class SharesPriced:
    verdicts: list[int]  # per piece: PRICED or the first verdict that stopped one of its items
    credits: list[PartyCredit]
    carries: dict[str, int]  # per wallet, after


def price_shares(
    conv: Conversion,
    carries: dict[str, int],
    shares: list[list[Share]],
    pieces: list[Any],
    segments: dict[Any, bytes],
    group_of: list[Any],
) -> SharesPriced:
    """Prices every piece once per party of its unit's split, in one Rust call
    per segment group, chaining the parties' remainders from call to call.

    Credits come out group by group, units in order within a group, which is
    the order the items were priced in, so each credit's carry_after is the
    party's true remainder at that point. `pieces` have .device (the unit),
    .start, .end and .energy; `group_of[unit]` names the unit's segments."""
    priced_code = int(native.PriceVerdict.PRICED)
    wallets = sorted({s.wallet for unit in shares for s in unit})
    account = {w: i for i, w in enumerate(wallets)}
    slots = [carries.get(w, 0) for w in wallets]
    verdicts = [priced_code] * len(pieces)
    sums: dict[tuple[int, int], list[int]] = {}
    order: list[Any] = []
    for g in group_of:
        if g not in order:
            order.append(g)
    for g in order:
        # Unit by unit, so the items run in the order the credits are listed.
        chosen = sorted(
            (k for k, p in enumerate(pieces) if p.energy and group_of[p.device] == g), key=lambda k: pieces[k].device
        )
        if not chosen:
            continue
        owners: list[tuple[int, int]] = []
        items = bytearray()
        for k in chosen:
            p = pieces[k]
            for j, s in enumerate(shares[p.device]):
                items += native.PriceItem(account[s.wallet], p.start, p.end, p.energy * s.bps).pack()
                owners.append((k, j))
        result = native.price_energy(bytes(items), segments[g], slots, conv.divisor)
        slots = result.carries
        for i, (k, j) in enumerate(owners):
            code = result.verdicts[i]
            if code != priced_code:
                if verdicts[k] == priced_code:
                    verdicts[k] = code
                continue
            t = sums.setdefault((pieces[k].device, j), [0, 0])
            t[0] += result.amounts[i]
            t[1] += result.values[i]
    running = dict(carries)
    credits: list[PartyCredit] = []
    den = conv.denominator
    for g in order:
        for unit in range(len(shares)):
            if group_of[unit] != g:
                continue
            for j, s in enumerate(shares[unit]):
                found = sums.get((unit, j))
                if found is None or not found[1]:
                    continue
                amount, exact = found
                carry = running.get(s.wallet, 0) + exact - amount * den
                running[s.wallet] = carry
                credits.append(PartyCredit(unit, s, amount, exact, carry))
    return SharesPriced(verdicts, credits, {w: slots[account[w]] for w in wallets})
