"""Storage behind pricing: the readings each enrolled device has not had
priced yet (from its pricing cursor on), the cursors themselves, the trace
context of reading batches, and the DR windows that exclude NEM credit."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from openvpp.store import schema
from openvpp.store.database import upsert
from openvpp.v1 import routing_pb2, settlement_pb2


async def unpriced(conn: AsyncConnection, program_id: str, limit: int) -> list[Any]:
    """(der_id, seq, covered_from, interval_end, export_wh, flags, missing,
    payload, batch_id) of readings past each active device's cursor, by device then seq."""
    r, d, e, c = schema.readings, schema.devices, schema.enrollments, schema.pricing_cursors
    query = (
        select(
            e.c.der_id,
            r.c.seq,
            r.c.covered_from,
            r.c.interval_end,
            r.c.export_wh,
            r.c.flags,
            r.c.missing,
            r.c.payload,
            r.c.batch_id,
        )
        # Cursor before readings, so each device's readings are read from its cursor on, not from the start.
        .select_from(
            e.join(d, d.c.der_id == e.c.der_id)
            .outerjoin(c, and_(c.c.der_id == e.c.der_id, c.c.program_id == program_id))
            .join(r, and_(r.c.device == d.c.registered_seq, r.c.seq >= func.coalesce(c.c.next_seq, 0)))
        )
        .where(e.c.program_id == program_id, e.c.status == routing_pb2.ENROLLMENT_STATUS_ACTIVE)
        .order_by(e.c.der_id, r.c.seq)
        .limit(limit)
    )
    return list((await conn.execute(query)).all())


async def batch_trace_parents(conn: AsyncConnection, batch_ids: Sequence[int]) -> list[str]:
    b = schema.reading_batches
    rows = await conn.execute(select(b.c.trace_parent).where(b.c.id.in_(list(batch_ids))).order_by(b.c.id))
    return [t for (t,) in rows]


async def export_paying_dr_windows(
    conn: AsyncConnection, der_ids: Sequence[str], start: int, end: int
) -> list[tuple[str, int, int]]:
    """(der_id, start_s, end_s) of events overlapping [start, end) in DR
    programs that pay exports, for the devices actively enrolled in them."""
    e, ps, en = schema.dr_events, schema.program_settlements, schema.enrollments
    found: list[tuple[str, int, int]] = []
    for i in range(0, len(der_ids), 500):
        rows = await conn.execute(
            select(en.c.der_id, e.c.start_s, e.c.end_s)
            .select_from(e.join(ps, ps.c.program_id == e.c.program_id).join(en, en.c.program_id == e.c.program_id))
            .where(
                ps.c.dr_includes_exports == 1,
                ps.c.kind == settlement_pb2.CREDIT_KIND_DR_PERFORMANCE,
                en.c.status == routing_pb2.ENROLLMENT_STATUS_ACTIVE,
                en.c.der_id.in_(list(der_ids[i : i + 500])),
                e.c.start_s < end,
                e.c.end_s > start,
            )
        )
        found.extend((r.der_id, r.start_s, r.end_s) for r in rows)
    return found


async def advance_cursors(conn: AsyncConnection, program_id: str, next_seqs: dict[str, int]) -> None:
    """Per device, the first seq the program has not priced."""
    await upsert(
        conn,
        schema.pricing_cursors,
        [{"program_id": program_id, "der_id": d, "next_seq": n, "carry": "0"} for d, n in next_seqs.items()],
        ("program_id", "der_id"),
    )
