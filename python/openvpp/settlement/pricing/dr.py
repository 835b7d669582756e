"""Demand-response events and their performance against a baseline.

Baseline method "10-of-10/adj20/v1", reproducible from stored readings:
  * load is net import (import - export) in Wh, spread evenly over each
    reading's interval (a reading after a gap over the whole gap);
  * baseline days: the 10 most recent days before the event day of the same
    kind (weekday, or weekend day) within 21 days, skipping days with an
    event of the same program and days the device's readings do not fully
    cover; fewer than 5 such days and no performance is computed;
  * baseline per 15-minute interval of the event window (same local
    wall-clock times) = the mean of those days' loads;
  * day-of adjustment: the ratio of actual to baseline load over the three
    hours ending one hour before the event, clamped to 0.8 - 1.2 (1 when
    the baseline there is not positive);
  * actual per interval is floored at zero unless the program's
    dr_includes_exports is set (load reduction only: exports stay NEM's;
    with it set, NEM does not credit exports inside the event instead);
  * performance = sum over intervals of max(0, adjusted baseline - actual),
    floored to whole Wh;
  * value: performance spread evenly over the event's 15-minute intervals
    (whole Wh, remainder in the last), each at the event's incentive or the
    tariff's incentive of that interval.
All arithmetic is exact (fractions); only the final figures are floored.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

from google.protobuf import timestamp_pb2
from opentelemetry import trace
from sqlalchemy.ext.asyncio import AsyncConnection

from openvpp import errors, native
from openvpp.kernel import clock
from openvpp.kernel.clock import Clock
from openvpp.kernel.identity import Identity
from openvpp.kernel.programs import denied, program_not_found
from openvpp.kernel.tenancy import Viewer
from openvpp.settlement import money, tracecontext
from openvpp.settlement.ledger import journal
from openvpp.settlement.pricing import pricer
from openvpp.settlement.pricing.oracles import Oracles, local_instant, tariff_segments
from openvpp.settlement.programs import ProgramConfig, ProgramSettlements
from openvpp.store import dr_repo, pricing_repo, settlement_repo
from openvpp.store.database import Database
from openvpp.v1 import settlement_pb2 as pb

_tracer = trace.get_tracer(__name__)

METHOD = "10-of-10/adj20/v1"
SLOT_S = 900
DAYS = 10
MIN_DAYS = 5
DEVICES_PER_PASS = 250
LOOKBACK_DAYS = 21
ADJ_HOURS = 3
ADJ_GAP_HOURS = 1
ADJ_LOW, ADJ_HIGH = Fraction(8, 10), Fraction(12, 10)
MAX_EVENT_S = 12 * 3600


@dataclass
class Result:
    der_id: str
    baseline: list[Fraction] = field(default_factory=list)
    actual: list[Fraction] = field(default_factory=list)
    factor: Fraction = Fraction(1)
    days: list[dt.date] = field(default_factory=list)
    note: str = ""
    seq_first: int = 0
    seq_last: int = 0

    @property
    def adjusted(self) -> list[Fraction]:
        return [b * self.factor for b in self.baseline]

    @property
    def performance_wh(self) -> int:
        return math.floor(
            sum((max(Fraction(0), a - b) for a, b in zip(self.adjusted, self.actual, strict=True)), Fraction(0))
        )


def load(readings: Sequence[Any], start: int, end: int) -> tuple[Fraction, int]:
    """Net import over [start, end) and the seconds of it the readings cover."""
    total, covered = Fraction(0), 0
    for r in readings:
        a, b = max(r.covered_from, start), min(r.interval_end, end)
        if a < b:
            covered += b - a
            total += Fraction((r.import_wh - r.export_wh) * (b - a), r.interval_end - r.covered_from)
    return total, covered


def day_windows(day: dt.date, zone: ZoneInfo, start_minute: int, slots: int) -> tuple[int, int, int]:
    """(adjustment window start, event window start, event window end) on `day`."""
    begin = local_instant(day, start_minute, zone)
    return begin - (ADJ_HOURS + ADJ_GAP_HOURS) * 3600, begin, begin + slots * SLOT_S


def baseline(
    der_id: str,
    readings: Sequence[Any],
    event: Any,
    zone: ZoneInfo,
    event_days: set[dt.date],
    includes_exports: bool = False,
) -> Result:
    start_local = dt.datetime.fromtimestamp(event.start_s, zone)
    event_day = start_local.date()
    start_minute = start_local.hour * 60 + start_local.minute
    slots = (event.end_s - event.start_s) // SLOT_S
    result = Result(der_id)
    adj_lo, begin, _end = day_windows(event_day, zone, start_minute, slots)
    result.actual = [load(readings, begin + k * SLOT_S, begin + (k + 1) * SLOT_S)[0] for k in range(slots)]
    if not includes_exports:
        # Load reduction only: exporting during the event earns NEM, not DR as well.
        result.actual = [max(Fraction(0), a) for a in result.actual]
    actual_adj, _ = load(readings, adj_lo, adj_lo + ADJ_HOURS * 3600)
    weekend = event_day.weekday() >= 5
    for back in range(1, LOOKBACK_DAYS + 1):
        day = event_day - dt.timedelta(days=back)
        if (day.weekday() >= 5) != weekend or day in event_days:
            continue
        lo, b, e = day_windows(day, zone, start_minute, slots)
        _, covered = load(readings, lo, e)
        if covered < e - lo:
            continue
        result.days.append(day)
        if len(result.days) == DAYS:
            break
    if len(result.days) < MIN_DAYS:
        result.note = f"INSUFFICIENT_HISTORY: {len(result.days)} of {MIN_DAYS} baseline days with complete readings"
        result.baseline = [Fraction(0)] * slots
        result.factor = Fraction(1)
        return result
    n = len(result.days)
    sums = [Fraction(0)] * slots
    base_adj = Fraction(0)
    for day in result.days:
        lo, b, _ = day_windows(day, zone, start_minute, slots)
        for k in range(slots):
            sums[k] += load(readings, b + k * SLOT_S, b + (k + 1) * SLOT_S)[0]
        base_adj += load(readings, lo, lo + ADJ_HOURS * 3600)[0]
    result.baseline = [s / n for s in sums]
    base_adj /= n
    if base_adj > 0 and actual_adj >= 0:
        result.factor = min(max(actual_adj / base_adj, ADJ_LOW), ADJ_HIGH)
    return result


@dataclass(frozen=True, slots=True)
class DrEvent:
    event_id: str
    program_id: str
    start_s: int
    end_s: int
    incentive: int
    method: str


def _timestamp(seconds: int) -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(seconds=seconds)


class DemandResponse:
    def __init__(
        self, db: Database, oracles: Oracles, programs: ProgramSettlements, clock_us: Clock = clock.system
    ) -> None:
        self.db = db
        self.oracles = oracles
        self.programs = programs
        self.clock_us = clock_us

    async def create(self, caller: Identity, program_id: str, start: int, end: int, incentive: int) -> DrEvent:
        if start % SLOT_S or end % SLOT_S:
            raise errors.InvalidArgument.field("start", "start and end must fall on 15-minute boundaries")
        if not 0 < end - start <= MAX_EVENT_S:
            raise errors.InvalidArgument.field("end", "must be after start, at most 12 hours later")
        try:
            program = await self.programs.get(program_id)
        except errors.NotFound:
            raise program_not_found(program_id) from None
        if not caller.acts_for(program.utility):
            raise denied("run events of its own programs")
        if program.kind != pb.CREDIT_KIND_DR_PERFORMANCE:
            raise errors.FailedPrecondition(f"{program_id} does not pay DR performance", "NOT_A_DR_PROGRAM")
        async with self.db.write() as conn:
            overlap = await dr_repo.overlapping(conn, program_id, start, end)
            if overlap is not None:
                raise errors.AlreadyExists(f"event {overlap} already covers part of that window", "EVENT_OVERLAPS")
            event = DrEvent(str(uuid.uuid4()), program_id, start, end, incentive, METHOD)
            await dr_repo.insert_event(
                conn,
                {
                    "event_id": event.event_id,
                    "program_id": program_id,
                    "start_s": start,
                    "end_s": end,
                    "incentive": incentive,
                    "method": METHOD,
                    "created_at_us": self.clock_us(),
                },
            )
        return event

    async def get(self, viewer: Viewer, event_id: str) -> tuple[DrEvent, list[Any]]:
        """An event with its per-device baselines and loads (customers' personal
        data): for the program's utility and the operator only; for anyone
        else the event does not exist."""
        async with self.db.read() as conn:
            row = await dr_repo.event(conn, event_id, None if viewer.everything else (viewer.utility or ""))
            if row is None:
                raise errors.NotFound(f"no DR event {event_id}", "DR_EVENT_NOT_FOUND")
            results = await dr_repo.results(conn, event_id)
        event = DrEvent(row.event_id, row.program_id, row.start_s, row.end_s, row.incentive, row.method)
        return event, results

    async def run(self, program: ProgramConfig, *, skip_busy: bool = False) -> int:
        """Computes and credits every device whose readings now cover an ended event."""
        if program.kind != pb.CREDIT_KIND_DR_PERFORMANCE:
            return 0
        posted = 0
        # A few hundred devices per write transaction: a big fleet's baselines
        # take seconds, and SQLite's single writer must not wait that long.
        while True:
            credits, devices = await self._pass(program, skip_busy)
            posted += credits
            if devices == 0:
                return posted

    async def _pass(self, program: ProgramConfig, skip_busy: bool = False) -> tuple[int, int]:
        """(credits posted, devices settled) for at most one event's next devices."""
        now = clock.seconds(self.clock_us)
        posted = settled = 0
        async with self.db.write() as conn:
            if not await settlement_repo.lock_programs(conn, [program.program_id], skip_busy=skip_busy):
                return 0, 0
            rows = await dr_repo.events_of(conn, program.program_id)
            versions = await self.oracles._versions(conn, program.tariff_id)
            zone = ZoneInfo(versions[0].time_zone)
            event_days = {dt.datetime.fromtimestamp(r.start_s, zone).date() for r in rows}
            for row in rows:
                if row.end_s <= now:
                    posted, settled = await self._settle_event(conn, program, row, zone, event_days, versions)
                if settled:
                    break
        return posted, settled

    async def _settle_event(
        self,
        conn: AsyncConnection,
        program: ProgramConfig,
        row: Any,
        zone: ZoneInfo,
        event_days: set[dt.date],
        versions: Any,
    ) -> tuple[int, int]:
        devices = await dr_repo.ready_devices(conn, program.program_id, row.event_id, row.end_s, DEVICES_PER_PASS)
        if not devices:
            return 0, 0
        event_day = dt.datetime.fromtimestamp(row.start_s, zone).date()
        windows = []
        for back in range(0, LOOKBACK_DAYS + 1):
            day = event_day - dt.timedelta(days=back)
            start_local = dt.datetime.fromtimestamp(row.start_s, zone)
            lo, _, hi = day_windows(
                day, zone, start_local.hour * 60 + start_local.minute, (row.end_s - row.start_s) // SLOT_S
            )
            windows.append((lo, hi))
        readings: dict[str, list[Any]] = defaultdict(list)
        for x in await dr_repo.readings_in_windows(conn, devices, windows):
            readings[x.der_id].append(x)
        days = event_days - {event_day}
        # The span joins the traces of the reading batches inside the event,
        # as pricing does, so the credits and their payout are in those traces.
        batches = sorted(
            {
                x.batch_id
                for xs in readings.values()
                for x in xs
                if x.batch_id is not None and x.interval_end > row.start_s and x.covered_from < row.end_s
            }
        )
        parents = await pricing_repo.batch_trace_parents(conn, batches[: tracecontext.MAX_LINKS + 1]) if batches else []
        parent, links = tracecontext.parented(parents)
        with _tracer.start_as_current_span("settlement.price_dr", context=parent, links=links) as span:
            span.set_attribute("openvpp.program_id", program.program_id)
            span.set_attribute("openvpp.dr_event_id", row.event_id)
            span.set_attribute("openvpp.devices", len(devices))
            results = [baseline(d, readings[d], row, zone, days, program.dr_includes_exports) for d in devices]
            for res in results:
                inside = [
                    x.seq for x in readings[res.der_id] if x.interval_end > row.start_s and x.covered_from < row.end_s
                ]
                res.seq_first, res.seq_last = (min(inside), max(inside)) if inside else (0, 0)
            posted = await self._credit(conn, program, row, results, versions)
            span.set_attribute("openvpp.credits", posted)
        return posted, len(devices)

    async def _credit(
        self, conn: AsyncConnection, program: ProgramConfig, row: Any, results: list[Result], versions: Any
    ) -> int:
        conv = await money.for_program(conn, program.kind, program.mint)
        if row.incentive:
            segments = [(row.start_s, row.end_s, row.incentive * conv.multiplier)]
        else:
            segments = tariff_segments(
                versions, row.start_s, row.end_s, lambda p: p.incentive_micro_per_kwh * conv.multiplier
            )
        pieces = [p for i, x in enumerate(results) for p in slot_pieces(i, row.start_s, row.end_s, x.performance_wh)]
        shares = [
            [money.Share(party, wallet, bps) for party, wallet, bps in program.wallets(x.der_id)] for x in results
        ]
        wallets = sorted({s.wallet for unit in shares for s in unit})
        carries = await money.load_carries(conn, program.mint, wallets, conv.denominator)
        packed = b"".join(native.PriceSegment(a, b, rate).pack() for a, b, rate in segments)
        priced = money.price_shares(conv, carries, shares, pieces, {0: packed}, [0] * len(results))
        await money.store_carries(conn, program.mint, priced.carries, conv.denominator)
        credited = [0] * len(results)
        credits: list[journal.NewCredit] = []
        for c in priced.credits:
            x = results[c.unit]
            credited[c.unit] += c.amount
            credits.append(
                journal.NewCredit(
                    x.der_id,
                    c.share.party,
                    c.share.wallet,
                    c.amount,
                    x.seq_first,
                    x.seq_last,
                    x.performance_wh,
                    0,
                    row.event_id,
                    c.share.bps,
                    c.exact,
                    c.carry_after,
                    conv.denominator,
                    row.start_s,
                    row.end_s,
                )
            )
        now = self.clock_us()
        result_rows = []
        for i, x in enumerate(results):
            result_rows.append(
                {
                    "event_id": row.event_id,
                    "der_id": x.der_id,
                    "baseline_wh": math.floor(sum(x.adjusted, Fraction(0))),
                    "actual_wh": math.floor(sum(x.actual, Fraction(0))),
                    "performance_wh": x.performance_wh,
                    "adjustment_bps": int(x.factor * 10_000),
                    "baseline_days": json.dumps([d.isoformat() for d in x.days]),
                    "intervals": json.dumps(
                        [[math.floor(b), math.floor(a)] for b, a in zip(x.adjusted, x.actual, strict=True)]
                    ),
                    "credited": credited[i],
                    "note": x.note,
                    "computed_at_us": now,
                }
            )
        await dr_repo.insert_results(conn, result_rows)
        return await pricer.post_and_announce(conn, program, conv, credits, self.clock_us())


def slot_pieces(device: int, start: int, end: int, energy: int) -> list[pricer.Piece]:
    """Performance spread evenly over the event's 15-minute intervals (whole Wh,
    the remainder in the last), each priced at its own interval's incentive."""
    slots = (end - start) // SLOT_S
    parts = [energy // slots] * slots
    parts[-1] += energy - sum(parts)
    return [
        pricer.Piece(device, 0, start + k * SLOT_S, start + (k + 1) * SLOT_S, e, False) for k, e in enumerate(parts)
    ]


def event_message(event: DrEvent, results: Sequence[Any]) -> pb.DrEvent:
    return pb.DrEvent(
        event_id=event.event_id,
        program_id=event.program_id,
        start=_timestamp(event.start_s),
        end=_timestamp(event.end_s),
        incentive_micro_per_kwh=event.incentive,
        baseline_method=event.method,
        devices_settled=len(results),
        performance_wh=sum(r.performance_wh for r in results),
        credited_base_units=sum(r.credited for r in results),
    )


def result_message(row: Any) -> pb.DrDeviceResult:
    intervals = json.loads(row.intervals)
    return pb.DrDeviceResult(
        der_id=row.der_id,
        baseline_wh=row.baseline_wh,
        actual_wh=row.actual_wh,
        performance_wh=row.performance_wh,
        adjustment_bps=row.adjustment_bps,
        baseline_days=json.loads(row.baseline_days),
        credited_base_units=row.credited,
        note=row.note,
        baseline_intervals_wh=[b for b, _ in intervals],
        actual_intervals_wh=[a for _, a in intervals],
    )
