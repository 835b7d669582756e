"""Accounts' bills: the open period accrues from every reading stored so
far; a period that has ended (after a short delay for late readings) is
issued once, final, with what it carries to the account's next bill.

An account is an enrollment `account_ref` of the program; its devices'
readings are summed, so enroll the meters whose flows no other enrolled
meter also sees. Billing starts with the period in which the program's
plan was first configured.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from fractions import Fraction
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy.ext.asyncio import AsyncConnection

from openvpp import errors
from openvpp.billing import books, engine, periods
from openvpp.billing import events as bill_events
from openvpp.billing.engine import Carry, Line, LineKind, Statement
from openvpp.billing.plans import BillingPlans, PlanRecord
from openvpp.billing.rounding import Balance, Due, due, micro_per_base_unit
from openvpp.billing.slots import Interval, Slot, merge, slots
from openvpp.kernel import clock
from openvpp.kernel.clock import Clock
from openvpp.kernel.tenancy import Viewer
from openvpp.settlement import money
from openvpp.store import billing_repo
from openvpp.store.database import Database
from openvpp.v1 import billing_pb2 as pb
from openvpp.v1 import routing_pb2, settlement_pb2

# A period is issued this long after it ends, so late readings are in it.
DEFAULT_CLOSE_DELAY_S = 3600
MAX_PAGE = 500
# Periods computed in a row to reach one (an account unbilled for years is refused).
MAX_CHAIN = 36


@dataclass(frozen=True, slots=True)
class ReadingRange:
    der_id: str
    first_seq: int
    last_seq: int
    count: int


@dataclass(frozen=True, slots=True)
class Payment:
    method: int  # billing_pb2.PaymentMethod
    amount: int
    signature: str
    at_us: int


@dataclass(frozen=True, slots=True)
class Bill:
    program_id: str
    account_ref: str
    period: periods.BillingPeriod
    state: int  # billing_pb2.BillState
    plan_version: int
    statement: Statement
    credit_in: Fraction
    owed: Due
    der_ids: list[str]
    readings: list[list[ReadingRange]]  # per line of the statement
    readings_through: int | None
    issued_at_us: int | None = None
    payment_signature: str = ""
    past_due_reason: str = ""
    collected: int = 0  # base units collected from the open bill (continuous autopay)
    attempts: int = 0
    retry_at_us: int | None = None
    payment_method: int = 0  # billing_pb2.PaymentMethod of payment_signature
    payments: tuple[Payment, ...] = ()
    updated_at_us: int | None = None

    @property
    def issued(self) -> bool:
        return self.state != pb.BILL_STATE_OPEN

    @property
    def lines(self) -> tuple[Line, ...]:
        """The period's charges, then the carried credit this bill used."""
        applied = self.owed.credit_applied
        credit = (Line(LineKind.CREDIT_CARRIED, -applied, self.credit_in),) if applied else ()
        return self.statement.lines + credit

    @property
    def total(self) -> Fraction:
        """What this bill asks for before rounding: charges less credit used."""
        return self.statement.total - self.owed.credit_applied


def _fraction(value: Fraction) -> str:
    return f"{value.numerator}/{value.denominator}"


def _parse(text: str) -> Fraction:
    return Fraction(text)


def _summarise(readings: Sequence[tuple[str, int]]) -> list[ReadingRange]:
    by_device: dict[str, list[int]] = {}
    for der_id, seq in readings:
        by_device.setdefault(der_id, []).append(seq)
    return [ReadingRange(d, min(s), max(s), len(set(s))) for d, s in sorted(by_device.items())]


def _attribute(
    plan: PlanRecord, counted: Sequence[tuple[Any, list[Slot]]], lines: Sequence[Line], start: int, end: int
) -> list[list[ReadingRange]]:
    """Which readings each line was computed from: its TOU (or demand) period's."""
    tariff = plan.engine_plan().tariff
    energy: dict[int, list[tuple[str, int]]] = {}
    demand: dict[int, list[tuple[str, int]]] = {}
    every: list[tuple[str, int]] = []
    for row, cut in counted:
        if not (row.import_wh or row.export_wh):
            continue  # a baseline, or a reading of nothing: behind no amount
        ref = (row.der_id, row.seq)
        for slot in cut:
            if not start <= slot.start_s < end:
                continue
            energy.setdefault(tariff.energy_period(slot.month, slot.hour, slot.weekend), []).append(ref)
            period = tariff.demand_period(slot.month, slot.hour, slot.weekend)
            if period is not None:
                demand.setdefault(period, []).append(ref)
            every.append(ref)
    out = []
    for line in lines:
        if line.kind in (LineKind.ENERGY, LineKind.EXPORT_CREDIT) and line.period is not None:
            out.append(_summarise(energy.get(line.period, [])))
        elif line.kind is LineKind.DEMAND_TOU and line.period is not None:
            out.append(_summarise(demand.get(line.period, [])))
        elif line.kind in (LineKind.DEMAND_FLAT, LineKind.TRUE_UP):
            out.append(_summarise(every))
        else:
            out.append([])
    return out


class Bills:
    def __init__(
        self,
        db: Database,
        plans: BillingPlans,
        *,
        clock_us: Clock = clock.system,
        close_delay_s: int = DEFAULT_CLOSE_DELAY_S,
    ) -> None:
        self.db = db
        self.plans = plans
        self.clock_us = clock_us
        self.close_delay_s = close_delay_s

    # -- reading ---------------------------------------------------------------
    async def bill(self, viewer: Viewer, program_id: str, account_ref: str, period_day: str = "") -> Bill:
        # One read transaction: every query of the bill sees the same state.
        async with self.db.read() as conn:
            devices = await billing_repo.account_devices(conn, program_id, account_ref)
            plan = await self.plans.visible_in(conn, viewer, program_id, devices)
            if not devices:
                raise errors.NotFound(f"no account {account_ref} in {program_id}", "ACCOUNT_NOT_FOUND")
            day = self._today(plan) if not period_day else _day(period_day)
            wanted = periods.containing(day, plan.cycle_day)
            issued = await billing_repo.bill(conn, program_id, account_ref, wanted.start.isoformat())
            if issued is not None:
                found = _from_row(issued)
            else:
                first = await self._first_period(plan)
                if wanted.start < first.start:
                    raise errors.NotFound(f"{program_id} was not billing on {day}", "BILL_NOT_FOUND")
                if wanted.start > self._today_period(plan).start:
                    raise errors.InvalidArgument.field("period", "a period that has begun", "PERIOD_IN_FUTURE")
                found = (await self._compute_through(conn, plan, account_ref, devices, wanted))[-1]
            return await _with_payments(conn, found)

    async def list_bills(
        self, viewer: Viewer, program_id: str, account_ref: str, page_size: int, page_token: str
    ) -> tuple[list[Bill], str]:
        await self.plans.visible(viewer, program_id)
        limit = min(page_size or 50, MAX_PAGE)
        before = int(page_token) if page_token.isdigit() else None
        if page_token and before is None:
            raise errors.InvalidArgument.field("page_token", "not a token this server gave")
        async with self.db.read() as conn:
            rows = await billing_repo.list_bills(conn, program_id, account_ref or None, before, limit + 1)
        bills = [_from_row(r) for r in rows[:limit]]
        return bills, (str(rows[limit - 1].id) if len(rows) > limit else "")

    # -- issuing ---------------------------------------------------------------
    async def close_ended(self) -> int:
        """Issues every period that ended (plus the delay) for every billed account; returns how many."""
        async with self.db.read() as conn:
            programs = await billing_repo.billed_programs(conn)
        issued = 0
        for program_id in programs:
            plan = await self.plans.current(program_id)
            current = self._today_period(plan).start
            first = (await self._first_period(plan)).start
            async with self.db.read() as conn:
                accounts = await billing_repo.accounts(conn, program_id)
                last = await billing_repo.last_issued(conn, program_id)
            # Most passes find nothing ended: an account whose next unissued
            # period is today's costs no query of its own.
            for account_ref in accounts:
                newest = last.get(account_ref)
                next_start = first if newest is None else self._after(plan, newest)
                if next_start < current:
                    issued += await self._close_account(plan, account_ref)
        return issued

    @staticmethod
    def _after(plan: PlanRecord, period_start: str) -> date:
        return periods.following(periods.containing(date.fromisoformat(period_start), plan.cycle_day)).start

    async def _close_account(self, plan: PlanRecord, account_ref: str) -> int:
        now_s = self.clock_us() // 1_000_000
        async with self.db.read() as conn:
            devices = await billing_repo.account_devices(conn, plan.program_id, account_ref)
        current = self._today_period(plan)
        start = await self._next_unissued(plan, account_ref)
        if start is None or start.start >= current.start:
            return 0
        ended = [p for p in self._periods(start, current) if p.bounds(plan.zone)[1] + self.close_delay_s <= now_s]
        async with self.db.read() as conn:
            for index, period in enumerate(ended):
                _, flying = await billing_repo.collected(conn, plan.program_id, account_ref, period.start.isoformat())
                if flying:
                    # A collection from the open bill is still in flight: issue once it is final.
                    ended = ended[:index]
                    break
        if not ended:
            return 0
        issued = 0
        async with self.db.read() as conn:
            computed = await self._compute_through(conn, plan, account_ref, devices, ended[-1])
        for bill in computed:
            if bill.issued:
                continue
            now = self.clock_us()
            async with self.db.write() as conn:
                await billing_repo.lock_account(conn, plan.program_id, account_ref)
                paid, flying = await billing_repo.collected(
                    conn, plan.program_id, account_ref, bill.period.start.isoformat()
                )
                if flying or paid != bill.collected:
                    break  # a collection started or finished since it was computed: the next pass issues it
                bill_id = await billing_repo.insert_bill(conn, _row(bill, now))
                if bill_id is not None:
                    await books.post_issued(conn, plan.program_id, account_ref, bill_id, bill.owed.base_units, now)
                    await bill_events.announce(conn, bill_events.ISSUED, bill_id, now)
                    issued += 1
        return issued

    # -- computing ---------------------------------------------------------------
    def _today(self, plan: PlanRecord) -> date:
        return periods.local_date(self.clock_us() // 1_000_000, plan.zone)

    def _today_period(self, plan: PlanRecord) -> periods.BillingPeriod:
        return periods.containing(self._today(plan), plan.cycle_day)

    @staticmethod
    async def _first_period(plan: PlanRecord) -> periods.BillingPeriod:
        return periods.containing(date.fromisoformat(plan.bills_from), plan.cycle_day)

    async def _next_unissued(self, plan: PlanRecord, account_ref: str) -> periods.BillingPeriod | None:
        async with self.db.read() as conn:
            last = await billing_repo.last_bill(conn, plan.program_id, account_ref)
        if last is None:
            return await self._first_period(plan)
        return periods.following(periods.containing(date.fromisoformat(last.period_start), plan.cycle_day))

    @staticmethod
    def _periods(first: periods.BillingPeriod, last: periods.BillingPeriod) -> list[periods.BillingPeriod]:
        out = [first]
        while out[-1].start < last.start:
            out.append(periods.following(out[-1]))
            if len(out) > MAX_CHAIN:
                raise errors.FailedPrecondition("too many unissued periods before this one", "BILLS_BEHIND")
        return out

    async def _compute_through(
        self,
        conn: AsyncConnection,
        plan: PlanRecord,
        account_ref: str,
        devices: list[str],
        target: periods.BillingPeriod,
    ) -> list[Bill]:
        """Every unissued period up to `target`, in order, each carrying into the next."""
        last = await billing_repo.last_bill(conn, plan.program_id, account_ref)
        decimals = await money.stablecoin_decimals(conn)
        if last is None:
            carry, balance = Carry(), Balance()
            first = await self._first_period(plan)
        else:
            previous = _from_row(last)
            carry, balance = _carry_of(last), previous.owed.balance
            first = periods.following(previous.period)
        out = []
        for period in self._periods(first, target):
            bill = await self._compute(conn, plan, account_ref, devices, period, carry, balance, decimals)
            out.append(bill)
            carry, balance = bill.statement.carry, bill.owed.balance
        return out

    async def _compute(
        self,
        conn: AsyncConnection,
        plan: PlanRecord,
        account_ref: str,
        devices: list[str],
        period: periods.BillingPeriod,
        carry: Carry,
        balance: Balance,
        decimals: int,
    ) -> Bill:
        start, end = period.bounds(plan.zone)
        enrolled = await billing_repo.account_enrollments(conn, plan.program_id, account_ref)
        rows = await billing_repo.account_readings(conn, devices, start, end)
        windows = {e.der_id: _window(e, start, end) for e in enrolled}
        intervals, rows = _inside(rows, windows)
        # Each reading cut once: its slots price the bill and say which lines it is behind.
        cuts = [list(slots([interval], plan.zone)) for interval in intervals]
        inside = [s for s in merge(s for cut in cuts for s in cut) if start <= s.start_s < end]
        statement = engine.bill_period(plan.engine_plan(), inside, carry, month=period.start.month, days=period.days)
        collected, _ = await billing_repo.collected(conn, plan.program_id, account_ref, period.start.isoformat())
        # What continuous autopay already collected counts as paid against the total.
        owed = due(statement.total - collected * micro_per_base_unit(decimals), balance, decimals)
        through = max((min(r.interval_end, end) for r in rows), default=None)
        readings = _attribute(plan, list(zip(rows, cuts, strict=True)), statement.lines, start, end)
        if owed.credit_applied:
            readings.append([])
        return Bill(
            plan.program_id,
            account_ref,
            period,
            pb.BILL_STATE_OPEN,
            plan.version,
            statement,
            balance.credit,
            owed,
            devices,
            readings,
            through,
            collected=collected,
        )


async def _with_payments(conn: AsyncConnection, bill: Bill) -> Bill:
    """The transfers that paid towards the bill: collections while it was open, then its own payment."""
    rows = await billing_repo.paid_collections(conn, bill.program_id, bill.account_ref, bill.period.start.isoformat())
    made = [Payment(pb.PAYMENT_METHOD_AUTOPAY, r.amount, r.signature or "", r.updated_at_us) for r in rows]
    if bill.state == pb.BILL_STATE_PAID and bill.payment_signature:
        made.append(Payment(bill.payment_method, bill.owed.base_units, bill.payment_signature, bill.updated_at_us or 0))
    return dataclasses.replace(bill, payments=tuple(made))


def _window(enrollment: Any, start: int, end: int) -> tuple[int, int]:
    """The part of [start, end) the customer's consent covers: from its
    not_before (if any) until it expires or the device was unenrolled."""
    consent = routing_pb2.ConsentPayload.FromString(enrollment.consent_payload)
    low, high = start, end
    if consent.HasField("not_before"):
        low = max(low, consent.not_before.seconds)
    if consent.HasField("expires_at"):
        high = min(high, consent.expires_at.seconds)
    if enrollment.status != routing_pb2.ENROLLMENT_STATUS_ACTIVE:
        high = min(high, enrollment.updated_at_us // 1_000_000)
    return low, high


def _inside(rows: Sequence[Any], windows: dict[str, tuple[int, int]]) -> tuple[list[Interval], list[Any]]:
    """Each reading's energy within its device's window, shared by time; and the readings that count."""
    intervals, kept = [], []
    for r in rows:
        low, high = windows.get(r.der_id, (0, 0))
        a, b = max(r.covered_from, low), min(r.interval_end, high)
        if b <= a or r.interval_end <= r.covered_from:
            continue
        share = Fraction(b - a, r.interval_end - r.covered_from)
        intervals.append(Interval(a, b, r.import_wh * share, r.export_wh * share))
        kept.append(r)
    return intervals, kept


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise errors.InvalidArgument.field("period", "a date, YYYY-MM-DD") from exc


def _line_json(line: Line, readings: list[ReadingRange]) -> dict[str, Any]:
    return {
        "kind": line.kind.value,
        "amount": _fraction(line.amount),
        "quantity": _fraction(line.quantity),
        "rate": line.rate,
        "period": line.period,
        "tier": line.tier,
        "readings": [[r.der_id, r.first_seq, r.last_seq, r.count] for r in readings],
    }


def _carry_json(carry: Carry) -> dict[str, Any]:
    return {
        "surplus_wh": {str(k): _fraction(v) for k, v in carry.surplus_wh.items()},
        "excess_wh": _fraction(carry.excess_wh),
        "month": carry.month,
        "fresh": carry.fresh,
    }


def _carry_of(row: Any) -> Carry:
    body = json.loads(row.body)["carry"]
    return Carry(
        {int(k): _parse(v) for k, v in body["surplus_wh"].items()},
        _parse(body["excess_wh"]),
        body["month"],
        body["fresh"],
    )


def _row(bill: Bill, now_us: int) -> dict[str, Any]:
    body = {
        "lines": [_line_json(line, r) for line, r in zip(bill.lines, bill.readings, strict=True)],
        "total": _fraction(bill.statement.total),
        "credit_in": _fraction(bill.credit_in),
        "credit_applied": _fraction(bill.owed.credit_applied),
        "remainder": _fraction(bill.owed.balance.remainder),
        "credit_out": _fraction(bill.owed.balance.credit),
        "carry": _carry_json(bill.statement.carry),
        "imported_wh": _fraction(bill.statement.imported_wh),
        "exported_wh": _fraction(bill.statement.exported_wh),
        "der_ids": bill.der_ids,
        "readings_through": bill.readings_through,
        "period_end": bill.period.end.isoformat(),
        "collected": bill.collected,
    }
    return {
        "program_id": bill.program_id,
        "account_ref": bill.account_ref,
        "period_start": bill.period.start.isoformat(),
        "period_end": bill.period.end.isoformat(),
        "plan_version": bill.plan_version,
        "body": json.dumps(body),
        "amount_due": bill.owed.base_units,
        "issued_at_us": now_us,
        "state": pb.BILL_STATE_ISSUED,
        "payment_signature": None,
        "payment_reason": "",
        "updated_at_us": now_us,
    }


def _from_row(row: Any) -> Bill:
    body = json.loads(row.body)
    lines = []
    readings = []
    for item in body["lines"]:
        lines.append(
            Line(
                LineKind(item["kind"]),
                _parse(item["amount"]),
                _parse(item["quantity"]),
                item["rate"],
                item["period"],
                item["tier"],
            )
        )
        readings.append([ReadingRange(*r) for r in item["readings"]])
    carry = _carry_of(row)
    charges = tuple(line for line in lines if line.kind is not LineKind.CREDIT_CARRIED)
    statement = Statement(charges, carry, _parse(body["imported_wh"]), _parse(body["exported_wh"]))
    owed = Due(
        row.amount_due, Balance(_parse(body["remainder"]), _parse(body["credit_out"])), _parse(body["credit_applied"])
    )
    return Bill(
        row.program_id,
        row.account_ref,
        periods.BillingPeriod(date.fromisoformat(row.period_start), date.fromisoformat(row.period_end)),
        row.state,
        row.plan_version,
        statement,
        _parse(body["credit_in"]),
        owed,
        body["der_ids"],
        readings,
        body["readings_through"],
        row.issued_at_us,
        row.payment_signature or "",
        row.payment_reason,
        body.get("collected", 0),
        row.attempts,
        row.retry_at_us,
        row.payment_method,
        updated_at_us=row.updated_at_us,
    )


def message(bill: Bill, *, with_lines: bool = True) -> pb.Bill:
    def rational(value: Fraction) -> settlement_pb2.Rational:
        return settlement_pb2.Rational(numerator=str(value.numerator), denominator=str(value.denominator))

    out = pb.Bill(
        program_id=bill.program_id,
        account_ref=bill.account_ref,
        period_start=bill.period.start.isoformat(),
        period_end=bill.period.end.isoformat(),
        state=bill.state,  # type: ignore[arg-type]
        payment_signature=bill.payment_signature,
        past_due_reason=bill.past_due_reason,
        collected_base_units=bill.collected,
        plan_version=bill.plan_version,
        total_micro=rational(bill.total),
        amount_due_base_units=bill.owed.base_units,
        remainder_micro=rational(bill.owed.balance.remainder),
        credit_carried_out_micro=rational(bill.owed.balance.credit),
        imported_wh=int(bill.statement.imported_wh),
        exported_wh=int(bill.statement.exported_wh),
        der_ids=bill.der_ids,
    )
    if with_lines:
        for line, readings in zip(bill.lines, bill.readings, strict=True):
            item = pb.BillLine(
                kind=KINDS[line.kind],
                quantity=rational(line.quantity),
                rate=line.rate or 0,
                amount_micro=rational(line.amount),
                readings=[
                    pb.BillReadings(der_id=r.der_id, first_seq=r.first_seq, last_seq=r.last_seq, count=r.count)
                    for r in readings
                ],
            )
            if line.period is not None:
                item.period = line.period
            if line.tier is not None:
                item.tier = line.tier
            out.lines.append(item)
    out.attempts = bill.attempts
    if bill.retry_at_us is not None and bill.state == pb.BILL_STATE_PAST_DUE:
        out.next_attempt_at.CopyFrom(Timestamp(seconds=bill.retry_at_us // 1_000_000))
    for made in bill.payments:
        out.payments.append(
            pb.BillPayment(
                method=made.method,  # type: ignore[arg-type]
                amount_base_units=made.amount,
                signature=made.signature,
                paid_at=Timestamp(seconds=made.at_us // 1_000_000),
            )
        )
    if bill.issued_at_us is not None:
        out.issued_at.CopyFrom(Timestamp(seconds=bill.issued_at_us // 1_000_000))
    if bill.readings_through is not None:
        out.readings_through.CopyFrom(Timestamp(seconds=bill.readings_through))
    return out


KINDS = {
    LineKind.ENERGY: pb.BILL_LINE_KIND_ENERGY,
    LineKind.EXPORT_CREDIT: pb.BILL_LINE_KIND_EXPORT_CREDIT,
    LineKind.DEMAND_TOU: pb.BILL_LINE_KIND_DEMAND_TOU,
    LineKind.DEMAND_FLAT: pb.BILL_LINE_KIND_DEMAND_FLAT,
    LineKind.FIXED_MONTHLY: pb.BILL_LINE_KIND_FIXED_MONTHLY,
    LineKind.FIXED_DAILY: pb.BILL_LINE_KIND_FIXED_DAILY,
    LineKind.MINIMUM: pb.BILL_LINE_KIND_MINIMUM,
    LineKind.TAX: pb.BILL_LINE_KIND_TAX,
    LineKind.TRUE_UP: pb.BILL_LINE_KIND_TRUE_UP,
    LineKind.CREDIT_CARRIED: pb.BILL_LINE_KIND_CREDIT_CARRIED,
}


__all__ = ["Bill", "Bills", "ReadingRange", "message"]
