"""Storage of readings: batches, the signed rows with their chain links, the
per-device reading state, and the reads that ingestion and the chain check
need. Column lists for the bulk rows come from the native core (passed in by
the domain, which knows them); the SQL lives here."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from openvpp.store import schema
from openvpp.store.database import execute_rows, insert_rows


async def insert_batch(
    conn: AsyncConnection,
    *,
    batch_ref: str,
    vendor: str,
    accepted: int,
    rejected: int,
    trace_parent: str,
    received_at_us: int,
) -> int:
    row = await conn.execute(
        insert(schema.reading_batches).values(
            batch_ref=batch_ref[:64],
            vendor_namespace=vendor,
            accepted=accepted,
            rejected=rejected,
            trace_parent=trace_parent,
            received_at_us=received_at_us,
        )
    )
    return int(row.inserted_primary_key[0])  # type: ignore[index]


async def payloads_between(conn: AsyncConnection, device: int, low: int, high: int) -> Sequence[Any]:
    """(seq, payload) of a device's kept readings with low <= seq <= high."""
    r = schema.readings
    query = select(r.c.seq, r.c.payload).where(r.c.device == device, r.c.seq >= low, r.c.seq <= high)
    return (await conn.execute(query)).all()


async def store(
    conn: AsyncConnection,
    reading_columns: Sequence[str],
    readings: Sequence[Sequence[Any]],
    state_columns: Sequence[str],
    updates: Sequence[Sequence[Any]],
    inserts: Sequence[Sequence[Any]],
) -> int:
    """Inserts reading rows and new device states, and applies state updates
    (values in `state_columns` order, then der_id and the `stored` count each
    was read with). Returns how many updates found their row unchanged."""
    await insert_rows(conn, schema.readings, reading_columns, readings)
    changed = 0
    if updates:
        sets = ", ".join(f"{c} = ?" for c in state_columns)
        sql = f"UPDATE reading_devices SET {sets} WHERE der_id = ? AND stored = ?"
        changed = await execute_rows(conn, sql, updates)
    await insert_rows(conn, schema.reading_devices, ("der_id", *state_columns), inserts)
    return changed


async def devices_with_state(conn: AsyncConnection, der_ids: Sequence[str]) -> Sequence[Any]:
    """Registry facts and reading state (NULLs before the first reading) of each device."""
    d, rd = schema.devices, schema.reading_devices
    query = (
        select(
            d.c.der_id,
            d.c.registered_seq,
            d.c.vendor_namespace,
            d.c.status,
            d.c.record_bytes,
            rd.c.has_baseline,
            rd.c.last_seq,
            rd.c.last_interval_end,
            rd.c.import_wh,
            rd.c.export_wh,
            rd.c.head_hash,
            rd.c.stored,
        )
        .select_from(d.outerjoin(rd, rd.c.der_id == d.c.der_id))
        .where(d.c.der_id.in_(list(der_ids)))
    )
    return (await conn.execute(query)).all()


async def chain_heads(conn: AsyncConnection) -> Sequence[Any]:
    """(der_id, registered_seq, head_hash) of every device with readings."""
    d, rd = schema.devices, schema.reading_devices
    query = select(d.c.der_id, d.c.registered_seq, rd.c.head_hash).join(rd, rd.c.der_id == d.c.der_id)
    return (await conn.execute(query)).all()


async def chain(conn: AsyncConnection, device: int) -> Sequence[Any]:
    """A device's kept readings in seq order, with signatures and links."""
    r = schema.readings
    query = select(r.c.seq, r.c.payload, r.c.signature, r.c.chain_hash).where(r.c.device == device).order_by(r.c.seq)
    return (await conn.execute(query)).all()
