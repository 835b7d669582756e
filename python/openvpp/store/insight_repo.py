"""Aggregate reads the web app charts: energy and credits per hour, a
program's enrolment counts, a program's DR events, one device's DR results
and the accounts a device is billed in. Each is one grouped query."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, cast, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from openvpp.store import schema

HOUR_S = 3600


def _sum(column: Any) -> Any:
    """SUM as a whole number on every backend (PostgreSQL sums bigints as numeric)."""
    return cast(func.sum(column), BigInteger)


_r, _d, _en, _c = schema.readings, schema.devices, schema.enrollments, schema.credits


async def energy_by_hour(conn: AsyncConnection, where: ColumnElement[bool], start: int, end: int) -> Sequence[Any]:
    """(hour, import_wh, export_wh) of readings ending in (start, end] whose
    device matches `where` (a condition on devices and enrollments)."""
    hour = (_r.c.interval_end - 1) // HOUR_S * HOUR_S
    query = (
        select(hour.label("hour"), _sum(_r.c.import_wh), _sum(_r.c.export_wh))
        .select_from(_r.join(_d, _d.c.registered_seq == _r.c.device))
        .where(where, _r.c.interval_end > start, _r.c.interval_end <= end)
        .group_by(hour)
        .order_by(hour)
    )
    return (await conn.execute(query)).all()


def device_is(der_id: str) -> ColumnElement[bool]:
    return _d.c.der_id == der_id


def enrolled_in(program_id: str) -> ColumnElement[bool]:
    return _d.c.der_id.in_(select(_en.c.der_id).where(_en.c.program_id == program_id))


def credited_to(wallet: str) -> ColumnElement[bool]:
    return _c.c.wallet == wallet


def credited_in(program_ids: Sequence[str]) -> ColumnElement[bool]:
    return _c.c.program_id.in_(program_ids)


async def credits_by_hour(
    conn: AsyncConnection, where: ColumnElement[bool], start_us: int, end_us: int
) -> Sequence[Any]:
    """(hour, amount, energy_wh) of credits made in [start_us, end_us)."""
    hour = _c.c.created_at_us // (HOUR_S * 1_000_000) * HOUR_S
    query = (
        select(hour.label("hour"), _sum(_c.c.amount), _sum(_c.c.energy_wh))
        .where(where, _c.c.created_at_us >= start_us, _c.c.created_at_us < end_us)
        .group_by(hour)
        .order_by(hour)
    )
    return (await conn.execute(query)).all()


async def programs(conn: AsyncConnection, utility: str | None) -> Sequence[Any]:
    """Programs of one utility (None: every program)."""
    p = schema.programs
    query = select(p).order_by(p.c.program_id)
    if utility is not None:
        query = query.where(p.c.utility_namespace == utility)
    return (await conn.execute(query)).all()


async def vendor_programs(conn: AsyncConnection, vendor: str) -> Sequence[Any]:
    """Programs a vendor's devices are enrolled in."""
    p = schema.programs
    enrolled = select(_en.c.program_id).where(_en.c.vendor_namespace == vendor)
    return (await conn.execute(select(p).where(p.c.program_id.in_(enrolled)).order_by(p.c.program_id))).all()


async def enrollment_counts(
    conn: AsyncConnection, program_ids: Sequence[str], vendor: str | None
) -> dict[tuple[str, int], int]:
    """(program, status) -> devices (of one vendor, when given)."""
    query = select(_en.c.program_id, _en.c.status, func.count()).where(_en.c.program_id.in_(program_ids))
    if vendor is not None:
        query = query.where(_en.c.vendor_namespace == vendor)
    query = query.group_by(_en.c.program_id, _en.c.status)
    return {(p, s): n for p, s, n in await conn.execute(query)}


async def last_reading(conn: AsyncConnection, der_id: str) -> Any:
    rd = schema.reading_devices
    return (await conn.execute(select(rd).where(rd.c.der_id == der_id))).first()


async def device_enrollments(conn: AsyncConnection, der_id: str) -> Sequence[Any]:
    """The device's enrollments with their program."""
    p = schema.programs
    query = (
        select(_en.c.program_id, _en.c.account_ref, _en.c.status, _en.c.enrolled_at_us, p.c.name, p.c.kind)
        .join(p, p.c.program_id == _en.c.program_id)
        .where(_en.c.der_id == der_id)
        .order_by(_en.c.program_id)
    )
    return (await conn.execute(query)).all()


async def dr_events(conn: AsyncConnection, program_ids: Sequence[str], limit: int) -> Sequence[Any]:
    """The programs' newest events with their settled totals."""
    e, res = schema.dr_events, schema.dr_results
    totals = (
        select(
            res.c.event_id,
            func.count().label("devices"),
            _sum(res.c.baseline_wh).label("baseline_wh"),
            _sum(res.c.actual_wh).label("actual_wh"),
            _sum(res.c.performance_wh).label("performance_wh"),
            _sum(res.c.credited).label("credited"),
        )
        .group_by(res.c.event_id)
        .subquery()
    )
    query = (
        select(
            e, totals.c.devices, totals.c.baseline_wh, totals.c.actual_wh, totals.c.performance_wh, totals.c.credited
        )
        .outerjoin(totals, totals.c.event_id == e.c.event_id)
        .where(e.c.program_id.in_(program_ids))
        .order_by(e.c.start_s.desc())
        .limit(limit)
    )
    return (await conn.execute(query)).all()


async def device_dr_results(conn: AsyncConnection, der_id: str, limit: int) -> Sequence[Any]:
    e, res = schema.dr_events, schema.dr_results
    query = (
        select(res, e.c.program_id, e.c.start_s, e.c.end_s)
        .join(e, e.c.event_id == res.c.event_id)
        .where(res.c.der_id == der_id)
        .order_by(e.c.start_s.desc())
        .limit(limit)
    )
    return (await conn.execute(query)).all()


async def holder_redemptions(conn: AsyncConnection, holder: str, limit: int) -> Sequence[Any]:
    r, t = schema.redemptions, schema.use_case_tokens
    query = (
        select(
            r.c.redemption_id, r.c.mint, r.c.amount, r.c.payout, r.c.state, r.c.signature, r.c.created_at_us, t.c.symbol
        )
        .join(t, t.c.mint == r.c.mint)
        .where(r.c.holder == holder)
        .order_by(r.c.created_at_us.desc())
        .limit(limit)
    )
    return (await conn.execute(query)).all()


async def program_owner(conn: AsyncConnection, program_id: str) -> str | None:
    p = schema.programs
    found = await conn.execute(select(p.c.utility_namespace).where(p.c.program_id == program_id))
    return found.scalar_one_or_none()
