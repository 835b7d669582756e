"""The pricing pass: stored readings of enrolled devices become credits.

A program credits every stored reading of an enrolled device that it has
not credited yet, whenever the reading arrived: store-and-forward after an
outage is paid like live data (readings older than the ingestion age limit
are refused at the door).

Per (program, device) a cursor names the next reading to price and the
rounding remainder carried. A pass holds the program's row lock (one
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

import logging
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace
from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from openvpp import native
from openvpp.settlement import events, ledger, tracecontext
from openvpp.settlement.oracles import Oracles, Segment, feed_segments, tariff_segments
from openvpp.settlement.programs import ProgramConfig, split_amount
from openvpp.store import schema
from openvpp.store.database import Database, upsert
from openvpp.v1 import routing_pb2
from openvpp.v1 import settlement_pb2 as pb

log = logging.getLogger(__name__)
_tracer = trace.get_tracer("openvpp.settlement")
_LEN = struct.Struct("<I")
PRICE_DECIMALS = 6  # prices are micro-units of the stablecoin


def scale(kind: int, decimals: int) -> tuple[int, int]:
    """(rate multiplier, divisor) turning a per-kWh rate into token base units."""
    if kind == pb.CREDIT_KIND_KWH_REWARD:
        return 10**decimals, 1
    if kind == pb.CREDIT_KIND_CO2_REWARD:
        return 10**decimals, 1000  # g/kWh x kWh = g; 1000 g per token
    if decimals >= PRICE_DECIMALS:
        return 10 ** (decimals - PRICE_DECIMALS), 1
    return 1, 10 ** (PRICE_DECIMALS - decimals)


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
    (length,) = _LEN.unpack_from(row.payload, 48)
    bounds = list(range(row.interval_end, row.covered_from, -length))[::-1]
    starts = [row.covered_from, *bounds[:-1]]
    total = row.interval_end - row.covered_from
    shares = [energy * (b - a) // total for a, b in zip(starts, bounds, strict=True)]
    # Whole Wh: what the floors leave goes to the newest interval, the one actually read.
    shares[-1] += energy - sum(shares)
    return [Piece(device, row.seq, a, b, e, True) for a, b, e in zip(starts, bounds, shares, strict=True)]


class Pricer:
    def __init__(self, db: Database, oracles: Oracles, *, limit: int = 50_000) -> None:
        self.db = db
        self.oracles = oracles
        self.limit = limit

    async def run(self, program: ProgramConfig, notify: Callable[[], None] = lambda: None) -> int:
        """Credits everything of `program` that can be priced; returns the number of credits posted.

        At most `limit` readings per write transaction, so ingestion (SQLite's
        one writer) never waits long behind a big backlog."""
        posted = 0
        while True:
            credits, readings = await self._pass(program, notify)
            posted += credits
            # A full pass that credited nothing may be waiting on a price: the next cycle retries.
            if readings < self.limit or not credits:
                return posted

    async def _pass(self, program: ProgramConfig, notify: Callable[[], None]) -> tuple[int, int]:
        if program.kind == pb.CREDIT_KIND_DR_PERFORMANCE:
            return 0, 0
        async with self.db.write() as conn:
            await conn.execute(
                select(schema.program_settlements.c.program_id)
                .where(schema.program_settlements.c.program_id == program.program_id)
                .with_for_update()
            )
            rows = await self._readings(conn, program.program_id)
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

    async def _readings(self, conn: AsyncConnection, program_id: str) -> list[Any]:
        r, d, e, c = schema.readings, schema.devices, schema.enrollments, schema.pricing_cursors
        query = (
            select(e.c.der_id, r.c.seq, r.c.covered_from, r.c.interval_end, r.c.export_wh, r.c.flags, r.c.missing,
                   r.c.payload, r.c.batch_id, c.c.carry)
            # Cursor before readings, so each device's readings are read from its cursor on, not from the start.
            .select_from(
                e.join(d, d.c.der_id == e.c.der_id)
                .outerjoin(c, and_(c.c.der_id == e.c.der_id, c.c.program_id == program_id))
                .join(r, and_(r.c.device == d.c.registered_seq, r.c.seq >= func.coalesce(c.c.next_seq, 0)))
            )
            .where(e.c.program_id == program_id, e.c.status == routing_pb2.ENROLLMENT_STATUS_ACTIVE)
            .order_by(e.c.der_id, r.c.seq)
            .limit(self.limit)
        )  # fmt: skip
        return list((await conn.execute(query)).all())

    async def _trace_parents(self, conn: AsyncConnection, batches: set[int]) -> list[str]:
        if not batches:
            return []
        rows = await conn.execute(
            select(schema.reading_batches.c.trace_parent)
            .where(schema.reading_batches.c.id.in_(sorted(batches)[: tracecontext.MAX_LINKS + 1]))
            .order_by(schema.reading_batches.c.id)
        )
        return [t for (t,) in rows]

    async def segments(self, conn: AsyncConnection, program: ProgramConfig, start: int, end: int) -> list[Segment]:
        token = (
            await conn.execute(
                select(schema.use_case_tokens.c.decimals).where(schema.use_case_tokens.c.mint == program.mint)
            )
        ).scalar_one()
        multiplier, _ = scale(program.kind, token)
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

    async def _price(self, conn: AsyncConnection, program: ProgramConfig, rows: list[Any]) -> int:
        devices: list[str] = []
        carries: list[int] = []
        pieces: list[Piece] = []
        for row in rows:
            if not devices or devices[-1] != row.der_id:
                devices.append(row.der_id)
                carries.append(int(row.carry or 0))
            pieces.extend(pieces_of(len(devices) - 1, row))
        start = min(p.start for p in pieces)
        end = max(p.end for p in pieces)
        segments = await self.segments(conn, program, start, end)
        decimals = (
            await conn.execute(
                select(schema.use_case_tokens.c.decimals).where(schema.use_case_tokens.c.mint == program.mint)
            )
        ).scalar_one()
        _, divisor = scale(program.kind, decimals)
        packed_segments = b"".join(native.PriceSegment(a, b, r).pack() for a, b, r in segments)

        def run(chosen: list[Piece]) -> tuple[list[int], list[int], list[int]]:
            """Verdicts, amounts and carries; energy-free pieces (a baseline
            reading, an idle interval) need no price and never wait for one."""
            priceable = [p for p in chosen if p.energy]
            if not priceable:
                return [native.PriceVerdict.PRICED] * len(chosen), [0] * len(chosen), list(carries)
            items = b"".join(native.PriceItem(p.device, p.start, p.end, p.energy).pack() for p in priceable)
            result = native.price_energy(items, packed_segments, carries, divisor)
            verdicts, amounts, k = [], [], 0
            for p in chosen:
                if p.energy:
                    verdicts.append(result.verdicts[k])
                    amounts.append(result.amounts[k])
                    k += 1
                else:
                    verdicts.append(native.PriceVerdict.PRICED)
                    amounts.append(0)
            return verdicts, amounts, result.carries

        verdicts, amounts, out_carries = run(pieces)
        # A device is credited up to its first reading without a price; if any
        # device stopped early, price the kept prefixes again so carries match.
        blocked: dict[int, int] = {}
        for i, p in enumerate(pieces):
            if verdicts[i] != native.PriceVerdict.PRICED and p.device not in blocked:
                blocked[p.device] = p.seq
                if verdicts[i] != native.PriceVerdict.NO_PRICE:
                    reason = native.PriceVerdict(verdicts[i]).name
                    log.error("reading %s/%d cannot be priced: %s", devices[p.device], p.seq, reason)
        if blocked:
            pieces = [p for p in pieces if p.seq < blocked.get(p.device, 2**64)]
            verdicts, amounts, out_carries = run(pieces)
        return await self._post(conn, program, devices, pieces, amounts, out_carries)

    async def _post(
        self,
        conn: AsyncConnection,
        program: ProgramConfig,
        devices: list[str],
        pieces: list[Piece],
        amounts: list[int],
        carries: list[int],
    ) -> int:
        totals: dict[int, list[int]] = {}  # device -> [amount, energy, estimated, first seq, last seq]
        for i, p in enumerate(pieces):
            t = totals.setdefault(p.device, [0, 0, 0, p.seq, p.seq])
            t[0] += amounts[i]
            t[1] += p.energy
            t[2] += p.energy if p.estimated else 0
            t[4] = p.seq
        if not totals:
            return 0
        credits: list[ledger.NewCredit] = []
        for d, (amount, energy, estimated, first, last) in totals.items():
            shares = program.wallets(devices[d])
            for (party, wallet, _), part in zip(shares, split_amount(amount, [s[2] for s in shares]), strict=True):
                if part:
                    credits.append(ledger.NewCredit(devices[d], party, wallet, part, first, last, energy, estimated))
        await upsert(
            conn,
            schema.pricing_cursors,
            [
                {"program_id": program.program_id, "der_id": devices[d], "next_seq": t[4] + 1,
                 "carry": str(carries[d])}
                for d, t in totals.items()
            ],
            ("program_id", "der_id"),
        )  # fmt: skip
        if not credits:
            return 0
        trace_parent = tracecontext.current()
        ids = await ledger.post_credits(conn, program.program_id, program.kind, program.mint, credits, trace_parent)
        await events.append(
            conn,
            [
                (
                    program.utility,
                    pb.SettlementEvent(program_id=program.program_id, credit=credit_message(i, program, c)),
                )
                for i, c in zip(ids, credits, strict=True)
            ],
        )
        return len(credits)


def credit_message(credit_id: int, program: ProgramConfig, c: ledger.NewCredit) -> pb.Credit:
    return pb.Credit(
        credit_id=credit_id, program_id=program.program_id, kind=program.kind, der_id=c.der_id, party=c.party,  # type: ignore[arg-type]
        wallet=c.wallet, mint=program.mint, amount_base_units=c.amount, seq_first=c.seq_first, seq_last=c.seq_last,
        energy_wh=c.energy_wh, estimated_wh=c.estimated_wh, dr_event_id=c.dr_event_id,
    )  # fmt: skip
