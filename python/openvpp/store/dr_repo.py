"""Storage of demand-response events and their per-device results, and the
reads DR settlement takes its readings from."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from openvpp.store import schema
from openvpp.v1 import routing_pb2

_e, _r = schema.dr_events, schema.dr_results


async def overlapping(conn: AsyncConnection, program_id: str, start: int, end: int) -> str | None:
    """The id of an event of the program that overlaps [start, end), if any."""
    query = select(_e.c.event_id).where(_e.c.program_id == program_id, _e.c.start_s < end, _e.c.end_s > start)
    found = (await conn.execute(query)).first()
    return None if found is None else str(found.event_id)


async def insert_event(conn: AsyncConnection, values: dict[str, Any]) -> None:
    await conn.execute(insert(_e).values(**values))


async def event(conn: AsyncConnection, event_id: str, utility: str | None) -> Any:
    """The event, if it exists and (unless `utility` is None) belongs to that utility's program."""
    query = select(_e).where(_e.c.event_id == event_id)
    if utility is not None:
        p = schema.programs
        query = query.where(_e.c.program_id.in_(select(p.c.program_id).where(p.c.utility_namespace == utility)))
    return (await conn.execute(query)).first()


async def results(conn: AsyncConnection, event_id: str) -> list[Any]:
    return list((await conn.execute(select(_r).where(_r.c.event_id == event_id).order_by(_r.c.der_id))).all())


async def events_of(conn: AsyncConnection, program_id: str) -> Sequence[Any]:
    return (await conn.execute(select(_e).where(_e.c.program_id == program_id).order_by(_e.c.start_s))).all()


async def ready_devices(conn: AsyncConnection, program_id: str, event_id: str, end_s: int, limit: int) -> list[str]:
    """Actively enrolled devices without a result whose readings reach the event's end."""
    en, rd = schema.enrollments, schema.reading_devices
    done = select(_r.c.der_id).where(_r.c.event_id == event_id)
    query = (
        select(en.c.der_id)
        .select_from(en.join(rd, rd.c.der_id == en.c.der_id))
        .where(
            en.c.program_id == program_id,
            en.c.status == routing_pb2.ENROLLMENT_STATUS_ACTIVE,
            rd.c.last_interval_end >= end_s,
            en.c.der_id.not_in(done),
        )
        .order_by(en.c.der_id)
        .limit(limit)
    )
    return [d for (d,) in await conn.execute(query)]


async def readings_in_windows(
    conn: AsyncConnection, der_ids: Sequence[str], windows: Sequence[tuple[int, int]]
) -> list[Any]:
    """(der_id, seq, covered_from, interval_end, import_wh, export_wh,
    batch_id) of the devices' readings that overlap any (lo, hi) window."""
    r, d = schema.readings, schema.devices
    overlap = or_(*(and_(r.c.interval_end > lo, r.c.covered_from < hi) for lo, hi in windows))
    out: list[Any] = []
    for chunk in range(0, len(der_ids), 500):
        query = (
            select(d.c.der_id, r.c.seq, r.c.covered_from, r.c.interval_end, r.c.import_wh, r.c.export_wh, r.c.batch_id)
            .join(d, d.c.registered_seq == r.c.device)
            .where(d.c.der_id.in_(list(der_ids[chunk : chunk + 500])), overlap)
        )
        out.extend(await conn.execute(query))
    return out


async def insert_results(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
    await conn.execute(insert(_r), list(rows))
