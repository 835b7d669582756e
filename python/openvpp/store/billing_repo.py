"""Billing plans, accounts and issued bills: every SQL statement billing runs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from openvpp import errors
from openvpp.store.schema import (
    bill_collections,
    bill_payment_requests,
    billing_autopay,
    billing_plans,
    bills,
    devices,
    enrollments,
    ledger_lines,
    program_settlements,
    programs,
    readings,
)
from openvpp.v1 import settlement_pb2


async def latest_plan(conn: AsyncConnection, program_id: str) -> Row[Any] | None:
    query = (
        select(billing_plans)
        .where(billing_plans.c.program_id == program_id)
        .order_by(billing_plans.c.version.desc())
        .limit(1)
    )
    return (await conn.execute(query)).one_or_none()


async def plan_version(conn: AsyncConnection, program_id: str, version: int) -> Row[Any] | None:
    query = select(billing_plans).where(billing_plans.c.program_id == program_id, billing_plans.c.version == version)
    return (await conn.execute(query)).one_or_none()


async def insert_plan(conn: AsyncConnection, values: dict[str, Any]) -> None:
    await conn.execute(billing_plans.insert().values(**values))


async def billed_programs(conn: AsyncConnection) -> list[str]:
    return [p for (p,) in await conn.execute(select(billing_plans.c.program_id).distinct())]


async def nets_exports(conn: AsyncConnection, program_id: str) -> bool:
    """Whether the program's current plan credits exports on the bill."""
    plan = await latest_plan(conn, program_id)
    return plan is not None and plan.regime != IMPORTS_ONLY


# billing_pb2.BILLING_REGIME_IMPORTS_ONLY; the store does not import the API.
IMPORTS_ONLY = 3


def _netting_programs() -> Any:
    """Programs whose current billing plan credits exports on the bill."""
    latest = (
        select(billing_plans.c.program_id, func.max(billing_plans.c.version).label("version"))
        .group_by(billing_plans.c.program_id)
        .subquery()
    )
    return (
        select(billing_plans.c.program_id)
        .join(
            latest,
            and_(billing_plans.c.program_id == latest.c.program_id, billing_plans.c.version == latest.c.version),
        )
        .where(billing_plans.c.regime != IMPORTS_ONLY)
    )


def _token_export_programs() -> Any:
    """Programs whose settlement pays exports as tokens."""
    return select(program_settlements.c.program_id).where(
        program_settlements.c.kind == settlement_pb2.CREDIT_KIND_NEM_EXPORT
    )


async def exports_paid_twice(
    conn: AsyncConnection, program_id: str, *, nets: bool, der_id: str | None = None
) -> tuple[str, str] | None:
    """A (device, other program) that would have its exports both paid as
    tokens and credited on a bill if `program_id` netted exports (`nets`)
    or paid them as tokens (not `nets`); for one device, or any enrolled in
    the program."""
    others = _token_export_programs() if nets else _netting_programs()
    mine, theirs = enrollments.alias("mine"), enrollments.alias("theirs")
    query = (
        select(theirs.c.der_id, theirs.c.program_id)
        .where(theirs.c.program_id != program_id, theirs.c.program_id.in_(others))
        .limit(1)
    )
    if der_id is not None:
        query = query.where(theirs.c.der_id == der_id)
    else:
        query = query.join(mine, and_(mine.c.der_id == theirs.c.der_id, mine.c.program_id == program_id))
    row = (await conn.execute(query)).first()
    return None if row is None else (row.der_id, row.program_id)


async def program_utility(conn: AsyncConnection, program_id: str) -> str | None:
    query = select(programs.c.utility_namespace).where(programs.c.program_id == program_id)
    return (await conn.execute(query)).scalar_one_or_none()


async def accounts(conn: AsyncConnection, program_id: str) -> list[str]:
    """Every account enrolled in the program, in order."""
    query = (
        select(enrollments.c.account_ref)
        .where(enrollments.c.program_id == program_id)
        .distinct()
        .order_by(enrollments.c.account_ref)
    )
    return [a for (a,) in await conn.execute(query)]


async def last_issued(conn: AsyncConnection, program_id: str) -> dict[str, str]:
    """Each account's newest issued period start (accounts never issued are absent), in one query."""
    query = (
        select(bills.c.account_ref, func.max(bills.c.period_start))
        .where(bills.c.program_id == program_id)
        .group_by(bills.c.account_ref)
    )
    return {a: start for a, start in await conn.execute(query)}


async def account_devices(conn: AsyncConnection, program_id: str, account_ref: str) -> list[str]:
    query = (
        select(enrollments.c.der_id)
        .where(enrollments.c.program_id == program_id, enrollments.c.account_ref == account_ref)
        .order_by(enrollments.c.der_id)
    )
    return [d for (d,) in await conn.execute(query)]


async def account_enrollments(conn: AsyncConnection, program_id: str, account_ref: str) -> Sequence[Any]:
    """(der_id, status, consent_payload, updated_at_us) of the account's devices."""
    query = (
        select(enrollments.c.der_id, enrollments.c.status, enrollments.c.consent_payload, enrollments.c.updated_at_us)
        .where(enrollments.c.program_id == program_id, enrollments.c.account_ref == account_ref)
        .order_by(enrollments.c.der_id)
    )
    return (await conn.execute(query)).all()


async def account_readings(conn: AsyncConnection, der_ids: Sequence[str], start: int, end: int) -> list[Any]:
    """(der_id, seq, covered_from, interval_end, import_wh, export_wh) of the
    devices' readings that overlap [start, end), device by device: each
    query walks one device's part of the readings key rather than every
    device's readings in the window."""
    out: list[Any] = []
    for der_id in der_ids:
        number = (
            await conn.execute(select(devices.c.registered_seq).where(devices.c.der_id == der_id))
        ).scalar_one_or_none()
        if number is None:
            continue
        query = select(
            readings.c.seq,
            readings.c.covered_from,
            readings.c.interval_end,
            readings.c.import_wh,
            readings.c.export_wh,
        ).where(readings.c.device == number, readings.c.interval_end > start, readings.c.covered_from < end)
        out.extend(_Reading(der_id, *row) for row in await conn.execute(query))
    return out


@dataclass(frozen=True, slots=True)
class _Reading:
    der_id: str
    seq: int
    covered_from: int
    interval_end: int
    import_wh: int
    export_wh: int


async def last_bill(conn: AsyncConnection, program_id: str, account_ref: str) -> Row[Any] | None:
    query = (
        select(bills)
        .where(bills.c.program_id == program_id, bills.c.account_ref == account_ref)
        .order_by(bills.c.period_start.desc())
        .limit(1)
    )
    return (await conn.execute(query)).one_or_none()


async def bill(conn: AsyncConnection, program_id: str, account_ref: str, period_start: str) -> Row[Any] | None:
    query = select(bills).where(
        bills.c.program_id == program_id, bills.c.account_ref == account_ref, bills.c.period_start == period_start
    )
    return (await conn.execute(query)).one_or_none()


async def insert_bill(conn: AsyncConnection, values: dict[str, Any]) -> int | None:
    """Issues a bill unless another replica issued the same period first; its id, or None."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(bills).values(**values).on_conflict_do_nothing()
    result = await conn.execute(statement)
    if not result.rowcount:
        return None
    row = await bill(conn, values["program_id"], values["account_ref"], values["period_start"])
    assert row is not None
    return int(row.id)


async def list_bills(
    conn: AsyncConnection, program_id: str, account_ref: str | None, before_id: int | None, limit: int
) -> Sequence[Row[Any]]:
    conditions = [bills.c.program_id == program_id]
    if account_ref:
        conditions.append(bills.c.account_ref == account_ref)
    if before_id is not None:
        conditions.append(bills.c.id < before_id)
    query = select(bills).where(and_(*conditions)).order_by(bills.c.id.desc()).limit(limit)
    return (await conn.execute(query)).all()


async def bill_by_id(conn: AsyncConnection, bill_id: int) -> Any:
    return (await conn.execute(select(bills).where(bills.c.id == bill_id))).one()


# billing_pb2.BillState values the store selects on.
ISSUED, COLLECTING, PAID, PAST_DUE = 2, 3, 4, 5


async def bills_to_collect(conn: AsyncConnection, now_us: int) -> Sequence[Row[Any]]:
    """Issued bills with an amount due, and past-due ones whose retry is
    due, whose account has an active autopay."""
    active = select(billing_autopay.c.id).where(
        billing_autopay.c.program_id == bills.c.program_id,
        billing_autopay.c.account_ref == bills.c.account_ref,
        billing_autopay.c.state == AUTOPAY_ACTIVE,
    )
    wanted = or_(
        and_(bills.c.state == ISSUED, bills.c.amount_due > 0),
        and_(bills.c.state == PAST_DUE, bills.c.retry_at_us <= now_us),
    )
    # A bill the customer was asked to pay by request is theirs to pay.
    requested = select(bill_payment_requests.c.bill_id).where(
        bill_payment_requests.c.bill_id == bills.c.id, bill_payment_requests.c.state == REQUEST_OPEN
    )
    query = select(bills).where(wanted, active.exists(), ~requested.exists()).order_by(bills.c.id)
    return (await conn.execute(query)).all()


async def set_bill_payment(
    conn: AsyncConnection,
    bill_id: int,
    before: int,
    after: int,
    signature: str | None,
    reason: str,
    now_us: int,
    *,
    attempted: bool = False,
    retry_at_us: int | None = None,
    method: int = 0,
) -> bool:
    """Compare-and-set of a bill's payment state: False when another replica
    moved it first. `attempted` counts a collection attempt; `retry_at_us`
    is when a past-due bill is next tried (None: not again on its own)."""
    values: dict[str, Any] = {
        "state": after,
        "payment_signature": signature,
        "payment_reason": reason,
        "updated_at_us": now_us,
        "retry_at_us": retry_at_us,
    }
    if attempted:
        values["attempts"] = bills.c.attempts + 1
    if method:
        values["payment_method"] = method
    result = await conn.execute(update(bills).where(bills.c.id == bill_id, bills.c.state == before).values(**values))
    return bool(result.rowcount)


async def paid_collections(conn: AsyncConnection, program_id: str, account_ref: str, period_start: str) -> list[Any]:
    """(amount, signature, updated_at_us) of the transfers collected from one open period, oldest first."""
    c = bill_collections
    query = (
        select(c.c.amount, c.c.signature, c.c.updated_at_us)
        .where(
            c.c.program_id == program_id,
            c.c.account_ref == account_ref,
            c.c.period_start == period_start,
            c.c.state == COLLECTION_PAID,
        )
        .order_by(c.c.id)
    )
    return list((await conn.execute(query)).all())


# billing_pb2.AutopayState values the store selects on.
AUTOPAY_PREPARED, AUTOPAY_SUBMITTED, AUTOPAY_ACTIVE = 1, 2, 3


async def autopay(conn: AsyncConnection, program_id: str, account_ref: str) -> Row[Any] | None:
    query = select(billing_autopay).where(
        billing_autopay.c.program_id == program_id, billing_autopay.c.account_ref == account_ref
    )
    return (await conn.execute(query)).one_or_none()


async def autopay_by_id(conn: AsyncConnection, autopay_id: int) -> Row[Any]:
    return (await conn.execute(select(billing_autopay).where(billing_autopay.c.id == autopay_id))).one()


async def put_autopay(conn: AsyncConnection, values: dict[str, Any]) -> None:
    """A new prepared autopay for the account, replacing one that is not in flight."""
    existing = await autopay(conn, values["program_id"], values["account_ref"])
    if existing is None:
        await conn.execute(billing_autopay.insert().values(**values))
        return
    if existing.state == AUTOPAY_SUBMITTED:
        raise errors.FailedPrecondition("an autopay Approve for this account is in flight", "AUTOPAY_IN_FLIGHT")
    await conn.execute(update(billing_autopay).where(billing_autopay.c.id == existing.id).values(**values))


async def mark_autopay_submitted(
    conn: AsyncConnection, program_id: str, account_ref: str, signature: str, now_us: int
) -> bool:
    result = await conn.execute(
        update(billing_autopay)
        .where(
            billing_autopay.c.program_id == program_id,
            billing_autopay.c.account_ref == account_ref,
            billing_autopay.c.state == AUTOPAY_PREPARED,
        )
        .values(state=AUTOPAY_SUBMITTED, signature=signature, updated_at_us=now_us)
    )
    return bool(result.rowcount)


async def set_autopay_state(conn: AsyncConnection, autopay_id: int, state: int, error: str, now_us: int) -> None:
    await conn.execute(
        update(billing_autopay)
        .where(billing_autopay.c.id == autopay_id, billing_autopay.c.state == AUTOPAY_SUBMITTED)
        .values(state=state, error=error, updated_at_us=now_us)
    )


# bill_collections.state
COLLECTION_IN_FLIGHT, COLLECTION_PAID, COLLECTION_FAILED = 1, 2, 3


async def collected(conn: AsyncConnection, program_id: str, account_ref: str, period_start: str) -> tuple[int, int]:
    """(base units collected and paid, collections still in flight) for one open period."""
    c = bill_collections
    where = and_(c.c.program_id == program_id, c.c.account_ref == account_ref, c.c.period_start == period_start)
    paid = (
        await conn.execute(select(func.coalesce(func.sum(c.c.amount), 0)).where(where, c.c.state == COLLECTION_PAID))
    ).scalar_one()
    flying = (
        await conn.execute(select(func.count()).select_from(c).where(where, c.c.state == COLLECTION_IN_FLIGHT))
    ).scalar_one()
    return int(paid), int(flying)


async def insert_collection(conn: AsyncConnection, values: dict[str, Any]) -> int:
    result = await conn.execute(bill_collections.insert().values(**values))
    return int(result.inserted_primary_key[0])  # type: ignore[index]


async def collection(conn: AsyncConnection, collection_id: int) -> Any:
    return (await conn.execute(select(bill_collections).where(bill_collections.c.id == collection_id))).one()


async def set_collection(
    conn: AsyncConnection, collection_id: int, after: int, signature: str | None, reason: str, now_us: int
) -> bool:
    result = await conn.execute(
        update(bill_collections)
        .where(bill_collections.c.id == collection_id, bill_collections.c.state == COLLECTION_IN_FLIGHT)
        .values(state=after, signature=signature, reason=reason, updated_at_us=now_us)
    )
    return bool(result.rowcount)


async def lock_account(conn: AsyncConnection, program_id: str, account_ref: str) -> None:
    """Serialises issuing an account's bill against collecting from it: both
    write the account's autopay row first (a row lock on PostgreSQL; SQLite
    has one writer), so neither decides on a state the other is changing."""
    await conn.execute(
        update(billing_autopay)
        .where(billing_autopay.c.program_id == program_id, billing_autopay.c.account_ref == account_ref)
        .values(updated_at_us=billing_autopay.c.updated_at_us)
    )


async def active_autopays(conn: AsyncConnection, program_id: str) -> list[str]:
    query = select(billing_autopay.c.account_ref).where(
        billing_autopay.c.program_id == program_id, billing_autopay.c.state == AUTOPAY_ACTIVE
    )
    return [a for (a,) in await conn.execute(query.order_by(billing_autopay.c.account_ref))]


async def count_bills(conn: AsyncConnection, program_id: str) -> int:
    query = select(func.count()).select_from(bills).where(bills.c.program_id == program_id)
    return int((await conn.execute(query)).scalar_one())


# Payment requests: open, paid (by the transfer in `signature`), closed.
REQUEST_OPEN, REQUEST_PAID, REQUEST_CLOSED = 1, 2, 3


async def bill_containing(conn: AsyncConnection, program_id: str, account_ref: str, day: str) -> Row[Any] | None:
    """The issued bill whose period holds the local date `day`; the newest one when `day` is empty."""
    query = select(bills).where(bills.c.program_id == program_id, bills.c.account_ref == account_ref)
    if day:
        query = query.where(bills.c.period_start <= day, bills.c.period_end > day)
    return (await conn.execute(query.order_by(bills.c.period_start.desc()).limit(1))).one_or_none()


async def payment_request(conn: AsyncConnection, bill_id: int) -> Row[Any] | None:
    query = select(bill_payment_requests).where(bill_payment_requests.c.bill_id == bill_id)
    return (await conn.execute(query)).one_or_none()


async def open_payment_requests(conn: AsyncConnection) -> Sequence[Row[Any]]:
    query = select(bill_payment_requests).where(bill_payment_requests.c.state == REQUEST_OPEN)
    return (await conn.execute(query.order_by(bill_payment_requests.c.bill_id))).all()


async def insert_payment_request(
    conn: AsyncConnection, bill_id: int, reference: str, recipient: str, amount: int, now_us: int
) -> None:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    await conn.execute(
        dialect.insert(bill_payment_requests)
        .values(
            bill_id=bill_id,
            reference=reference,
            recipient=recipient,
            amount=amount,
            state=REQUEST_OPEN,
            signature=None,
            created_at_us=now_us,
            updated_at_us=now_us,
        )
        .on_conflict_do_nothing()
    )


async def close_payment_request(
    conn: AsyncConnection, bill_id: int, state: int, signature: str | None, now_us: int
) -> bool:
    """Compare-and-set from open: False when another replica closed it first."""
    result = await conn.execute(
        update(bill_payment_requests)
        .where(bill_payment_requests.c.bill_id == bill_id, bill_payment_requests.c.state == REQUEST_OPEN)
        .values(state=state, signature=signature, updated_at_us=now_us)
    )
    return bool(result.rowcount)


# Billing's journal accounts (openvpp.billing.books posts them).
LEDGER_BILLED, LEDGER_RECEIVABLE, LEDGER_COLLECTED = "billed:", "receivable:", "collected:"


@dataclass
class BillingFigures:
    """One billing program's books and what they must agree with."""

    program_id: str
    journal_billed: int = 0  # the lines' sum: negative, what was billed
    journal_collected: int = 0
    journal_receivable: int = 0
    bills: int = 0
    issued_due: int = 0
    paid_due: int = 0
    open_due: int = 0
    collections_paid: int = 0
    # Transfers that paid bills or collections, to be found on chain.
    signatures: list[str] = field(default_factory=list)
    unsigned: int = 0


async def ledger_figures(conn: AsyncConnection, utility: str | None) -> list[BillingFigures]:
    """Every billing program's figures (one utility's, when given), in one snapshot."""
    plans = select(billing_plans.c.program_id).distinct()
    if utility is not None:
        plans = plans.where(billing_plans.c.utility_namespace == utility)
    out = {p: BillingFigures(p) for (p,) in await conn.execute(plans)}
    if not out:
        return []
    kinds = (LEDGER_BILLED, LEDGER_RECEIVABLE, LEDGER_COLLECTED)
    journal = await conn.execute(
        select(ledger_lines.c.account, func.sum(ledger_lines.c.amount))
        .where(or_(*(ledger_lines.c.account.startswith(k) for k in kinds)))
        .group_by(ledger_lines.c.account)
    )
    for account, amount in journal:
        kind, rest = account.split(":", 1)
        figures = out.get(rest.split(" ", 1)[0])
        if figures is not None:
            name = {"billed": "journal_billed", "receivable": "journal_receivable", "collected": "journal_collected"}
            setattr(figures, name[kind], getattr(figures, name[kind]) + int(amount))
    wanted = list(out)
    counted = await conn.execute(
        select(bills.c.program_id, bills.c.state, func.count(), func.coalesce(func.sum(bills.c.amount_due), 0))
        .where(bills.c.program_id.in_(wanted))
        .group_by(bills.c.program_id, bills.c.state)
    )
    for program_id, state, count, amount in counted:
        f = out[program_id]
        f.bills += int(count)
        f.issued_due += int(amount)
        if state == PAID:
            f.paid_due += int(amount)
        else:
            f.open_due += int(amount)
    paid = await conn.execute(
        select(bill_collections.c.program_id, func.sum(bill_collections.c.amount))
        .where(bill_collections.c.program_id.in_(wanted), bill_collections.c.state == COLLECTION_PAID)
        .group_by(bill_collections.c.program_id)
    )
    for program_id, amount in paid:
        out[program_id].collections_paid = int(amount)
    signed = select(bills.c.program_id, bills.c.payment_signature, bills.c.amount_due).where(
        bills.c.program_id.in_(wanted), bills.c.state == PAID
    )
    collections = select(bill_collections.c.program_id, bill_collections.c.signature, bill_collections.c.amount).where(
        bill_collections.c.program_id.in_(wanted), bill_collections.c.state == COLLECTION_PAID
    )
    for query in (signed, collections):
        for program_id, signature, amount in await conn.execute(query):
            if signature:
                out[program_id].signatures.append(signature)
            elif amount:
                out[program_id].unsigned += 1
    return [out[p] for p in sorted(out)]


__all__ = [
    "AUTOPAY_ACTIVE",
    "AUTOPAY_PREPARED",
    "AUTOPAY_SUBMITTED",
    "COLLECTING",
    "COLLECTION_FAILED",
    "COLLECTION_IN_FLIGHT",
    "COLLECTION_PAID",
    "IMPORTS_ONLY",
    "ISSUED",
    "LEDGER_BILLED",
    "LEDGER_COLLECTED",
    "LEDGER_RECEIVABLE",
    "PAID",
    "PAST_DUE",
    "REQUEST_CLOSED",
    "REQUEST_OPEN",
    "REQUEST_PAID",
    "BillingFigures",
    "account_devices",
    "account_enrollments",
    "account_readings",
    "accounts",
    "active_autopays",
    "autopay",
    "autopay_by_id",
    "bill",
    "bill_by_id",
    "bill_containing",
    "billed_programs",
    "bills_to_collect",
    "close_payment_request",
    "collected",
    "collection",
    "count_bills",
    "exports_paid_twice",
    "insert_bill",
    "insert_collection",
    "insert_payment_request",
    "insert_plan",
    "last_bill",
    "latest_plan",
    "ledger_figures",
    "list_bills",
    "lock_account",
    "mark_autopay_submitted",
    "nets_exports",
    "open_payment_requests",
    "paid_collections",
    "payment_request",
    "plan_version",
    "program_utility",
    "put_autopay",
    "set_autopay_state",
    "set_bill_payment",
    "set_collection",
]
