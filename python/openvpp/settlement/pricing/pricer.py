"""The pricing pass: stored readings of enrolled devices become credits.

A program credits every stored reading of an enrolled device that it has
not credited yet, whenever the reading arrived: store-and-forward after an
outage is paid like live data (readings older than the ingestion age limit
are refused at the door).

Per (program, device) a cursor names the next reading to price; rounding
remainders are carried per receiving party (see valuation). A pass holds the program's row lock (one
writer per program across replicas), prices every device's readings from
its cursor in one Rust call, and credits each device's longest priced
prefix: a reading whose interval has no valid price stops its device
there, and is priced by a later pass once the price arrives.

A reading after a sequence gap carries the whole gap's energy (counters
are cumulative, so the total is exact). It is split over the missing
intervals in proportion to their length, each piece priced at its own
interval's rate, and counted as estimated.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from opentelemetry import trace
from sqlalchemy.ext.asyncio import AsyncConnection

from openvpp import native
from openvpp.kernel import clock
from openvpp.kernel.clock import Clock
from openvpp.kernel.timestamps import from_micros
from openvpp.settlement import events, money, tracecontext
from openvpp.settlement.ledger import journal
from openvpp.settlement.pricing.oracles import Oracles, Segment, feed_segments, tariff_segments
from openvpp.settlement.programs import ProgramConfig
from openvpp.store import pricing_repo, settlement_repo
from openvpp.store.database import Database
from openvpp.v1 import settlement_pb2 as pb

log = logging.getLogger(__name__)
_tracer = trace.get_tracer("openvpp.settlement")
_INTERVAL_LEN = native.READING_OFFSETS["interval_len"]


@dataclass(frozen=True, slots=True)
class Piece:
    """One priced item: a reading's energy, or one interval's share of a gap."""

    device: int
    seq: int
    start: int
    end: int
    energy: int
    estimated: bool


def pieces_of(device: int, row: Any) -> list[Piece]:
    energy = row.export_wh
    if not row.missing:
        return [Piece(device, row.seq, row.covered_from, row.interval_end, energy, False)]
    length = int.from_bytes(row.payload[_INTERVAL_LEN : _INTERVAL_LEN + 4], "little")
    bounds = list(range(row.interval_end, row.covered_from, -length))[::-1]
    starts = [row.covered_from, *bounds[:-1]]
    total = row.interval_end - row.covered_from
    shares = [energy * (b - a) // total for a, b in zip(starts, bounds, strict=True)]
    # Whole Wh: what the floors leave goes to the newest interval, the one actually read.
    shares[-1] += energy - sum(shares)
    return [Piece(device, row.seq, a, b, e, True) for a, b, e in zip(starts, bounds, shares, strict=True)]


class Pricer:
    def __init__(self, db: Database, oracles: Oracles, *, limit: int = 50_000, clock_us: Clock = clock.system) -> None:
        self.clock_us = clock_us
        self.db = db
        self.oracles = oracles
        self.limit = limit

    async def run(
        self, program: ProgramConfig, notify: Callable[[], None] = lambda: None, *, skip_busy: bool = False
    ) -> int:
        """Credits everything of `program` that can be priced; returns the number of credits posted.

        At most `limit` readings per write transaction, so ingestion (SQLite's
        one writer) never waits long behind a big backlog."""
        posted = 0
        while True:
            credits, readings = await self._pass(program, notify, skip_busy)
            posted += credits
            # A full pass that credited nothing may be waiting on a price: the next cycle retries.
            if readings < self.limit or not credits:
                return posted

    async def _pass(self, program: ProgramConfig, notify: Callable[[], None], skip_busy: bool) -> tuple[int, int]:
        if program.kind == pb.CREDIT_KIND_DR_PERFORMANCE:
            return 0, 0
        async with self.db.write() as conn:
            if not await settlement_repo.lock_programs(conn, [program.program_id], skip_busy=skip_busy):
                return 0, 0
            rows = await pricing_repo.unpriced(conn, program.program_id, self.limit)
            if not rows:
                return 0, 0
            batches = {r.batch_id for r in rows if r.batch_id is not None}
            parents = await self._trace_parents(conn, batches)
            parent, links = tracecontext.parented(parents)
            with _tracer.start_as_current_span("settlement.price", context=parent, links=links) as span:
                span.set_attribute("openvpp.program_id", program.program_id)
                span.set_attribute("openvpp.readings", len(rows))
                posted = await self._price(conn, program, rows)
                span.set_attribute("openvpp.credits", posted)
        if posted:
            notify()
        return posted, len(rows)

    async def _trace_parents(self, conn: AsyncConnection, batches: set[int]) -> list[str]:
        if not batches:
            return []
        return await pricing_repo.batch_trace_parents(conn, sorted(batches)[: tracecontext.MAX_LINKS + 1])

    async def segments(
        self, conn: AsyncConnection, program: ProgramConfig, conv: money.Conversion, start: int, end: int
    ) -> list[Segment]:
        multiplier = conv.multiplier
        if program.kind == pb.CREDIT_KIND_KWH_REWARD:
            return [(start, end, multiplier)]
        if program.price_feed_id:
            feed = await self.oracles.feed(program.price_feed_id, conn)
            points = await self.oracles.points(conn, program.price_feed_id, start, end)
            column = 2 if program.kind == pb.CREDIT_KIND_CO2_REWARD else 1
            return [
                (a, b, r * multiplier) for a, b, r in feed_segments(points, feed.max_age_seconds, start, end, column)
            ]
        versions = await self.oracles._versions(conn, program.tariff_id)
        return tariff_segments(versions, start, end, lambda p: p.export_price_micro_per_kwh * multiplier)

    async def _exclusions(
        self, conn: AsyncConnection, program: ProgramConfig, devices: list[str], start: int, end: int
    ) -> dict[str, tuple[tuple[int, int], ...]]:
        """Event windows of DR programs that pay exports, per device enrolled in them:
        NEM does not credit that export energy a second time."""
        if program.kind != pb.CREDIT_KIND_NEM_EXPORT:
            return {}
        found: dict[str, list[tuple[int, int]]] = {}
        for der_id, lo, hi in await pricing_repo.export_paying_dr_windows(conn, devices, start, end):
            found.setdefault(der_id, []).append((lo, hi))
        return {d: tuple(sorted(w)) for d, w in found.items()}

    async def _price(self, conn: AsyncConnection, program: ProgramConfig, rows: list[Any]) -> int:
        devices: list[str] = []
        pieces: list[Piece] = []
        for row in rows:
            if not devices or devices[-1] != row.der_id:
                devices.append(row.der_id)
            pieces.extend(pieces_of(len(devices) - 1, row))
        start = min(p.start for p in pieces)
        end = max(p.end for p in pieces)
        conv = await money.for_program(conn, program.kind, program.mint)
        segments = await self.segments(conn, program, conv, start, end)
        exclusions = await self._exclusions(conn, program, devices, start, end)
        group_of = [exclusions.get(d, ()) for d in devices]
        packed = {
            g: b"".join(native.PriceSegment(a, b, r).pack() for a, b, r in carve(segments, g)) for g in set(group_of)
        }
        shares = [[money.Share(party, wallet, bps) for party, wallet, bps in program.wallets(d)] for d in devices]
        wallets = sorted({s.wallet for unit in shares for s in unit})
        carries = await money.load_carries(conn, program.mint, wallets, conv.denominator)
        priced = money.price_shares(conv, carries, shares, pieces, packed, group_of)
        # A device is credited up to its first reading without a price; if any
        # device stopped early, price the kept prefixes again so carries match.
        blocked: dict[int, int] = {}
        for i, p in enumerate(pieces):
            if priced.verdicts[i] != native.PriceVerdict.PRICED and p.device not in blocked:
                blocked[p.device] = p.seq
                if priced.verdicts[i] != native.PriceVerdict.NO_PRICE:
                    reason = native.PriceVerdict(priced.verdicts[i]).name
                    log.error("reading %s/%d cannot be priced: %s", devices[p.device], p.seq, reason)
        if blocked:
            pieces = [p for p in pieces if p.seq < blocked.get(p.device, 2**64)]
            priced = money.price_shares(conv, carries, shares, pieces, packed, group_of)
        return await self._post(conn, program, conv, devices, pieces, priced)

    async def _post(
        self,
        conn: AsyncConnection,
        program: ProgramConfig,
        conv: money.Conversion,
        devices: list[str],
        pieces: list[Piece],
        priced: money.SharesPriced,
    ) -> int:
        totals: dict[int, list[int]] = {}  # device -> [energy, estimated, first seq, last seq, start, end]
        for p in pieces:
            t = totals.setdefault(p.device, [0, 0, p.seq, p.seq, p.start, p.end])
            t[0] += p.energy
            t[1] += p.energy if p.estimated else 0
            t[3] = p.seq
            t[4], t[5] = min(t[4], p.start), max(t[5], p.end)
        if not totals:
            return 0
        await pricing_repo.advance_cursors(conn, program.program_id, {devices[d]: t[3] + 1 for d, t in totals.items()})
        await money.store_carries(conn, program.mint, priced.carries, conv.denominator)
        credits = []
        for c in priced.credits:
            energy, estimated, first, last, a, b = totals[c.unit]
            credits.append(
                journal.NewCredit(
                    devices[c.unit],
                    c.share.party,
                    c.share.wallet,
                    c.amount,
                    first,
                    last,
                    energy,
                    estimated,
                    "",
                    c.share.bps,
                    c.exact,
                    c.carry_after,
                    conv.denominator,
                    a,
                    b,
                )
            )
        return await post_and_announce(conn, program, conv, credits, self.clock_us())


async def post_and_announce(
    conn: AsyncConnection,
    program: ProgramConfig,
    conv: money.Conversion,
    credits: list[journal.NewCredit],
    at_us: int,
) -> int:
    """Posts credits (those of amount 0 too: they carry their party's remainder
    and a statement shows them) and appends one event per credit."""
    if not credits:
        return 0
    trace_parent = tracecontext.current()
    ids = await journal.post_credits(
        conn, program.program_id, program.kind, program.mint, credits, trace_parent, at_us=at_us
    )
    await events.append(
        conn,
        [
            (
                program.utility,
                pb.SettlementEvent(program_id=program.program_id, credit=credit_message(i, program, c, conv)),
            )
            for i, c in zip(ids, credits, strict=True)
        ],
        at_us=at_us,
    )
    return len(credits)


def carve(segments: list[Segment], windows: tuple[tuple[int, int], ...]) -> list[Segment]:
    """`segments` with rate 0 inside `windows` (sorted, non-overlapping per program)."""
    out: list[Segment] = []
    for a, b, rate in segments:
        cuts = sorted({a, b, *(x for w in windows for x in w if a < x < b)})
        for lo, hi in itertools.pairwise(cuts):
            inside = any(s <= lo and hi <= e for s, e in windows)
            out.append((lo, hi, 0 if inside else rate))
    return out


def credit_message(credit_id: int, program: ProgramConfig, c: journal.NewCredit, conv: money.Conversion) -> pb.Credit:
    share = Fraction(c.exact_share, c.denominator)
    return pb.Credit(
        credit_id=credit_id,
        program_id=program.program_id,
        kind=pb.CreditKind.ValueType(program.kind),
        der_id=c.der_id,
        party=pb.Party.ValueType(c.party),
        wallet=c.wallet,
        mint=program.mint,
        amount_base_units=c.amount,
        seq_first=c.seq_first,
        seq_last=c.seq_last,
        energy_wh=c.energy_wh,
        estimated_wh=c.estimated_wh,
        dr_event_id=c.dr_event_id,
        share_bps=c.share_bps,
        exact_share=money.rational(share),
        carry_after=money.rational(Fraction(c.carry_after, c.denominator)),
        interval_start=from_micros(c.interval_start * 1_000_000),
        interval_end=from_micros(c.interval_end * 1_000_000),
        value=money.rational(conv.value(share, c.share_bps)),
    )
