"""Registry storage: every SQL statement the Registry service runs."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, tuple_, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from openvpp.store.schema import (
    device_aliases,
    device_certificates,
    devices,
    registry_head,
    registry_log,
    registry_tree,
)

# (level, index): the root of leaves [index * 2^level, (index + 1) * 2^level).
Node = tuple[int, int]


@dataclass(frozen=True, slots=True)
class LogRow:
    seq: int
    entry_bytes: bytes
    leaf_hash: bytes


@dataclass(frozen=True, slots=True)
class ListFilter:
    vendor_namespace: str = ""
    kind: int = 0
    status: int = 0
    utility_territory: str = ""


async def lock_head(conn: AsyncConnection) -> tuple[int, bytes]:
    """The log head, locked until the transaction ends (SQLite: BEGIN IMMEDIATE already holds it)."""
    row = (
        await conn.execute(
            select(registry_head.c.seq, registry_head.c.head_hash).where(registry_head.c.id == 1).with_for_update()
        )
    ).one()
    return int(row.seq), bytes(row.head_hash)


async def head(conn: AsyncConnection) -> tuple[int, bytes]:
    row = (await conn.execute(select(registry_head.c.seq, registry_head.c.head_hash))).one()
    return int(row.seq), bytes(row.head_hash)


async def append(
    conn: AsyncConnection,
    rows: Sequence[dict[str, Any]],
    seq: int,
    head_hash: bytes,
    nodes: dict[Node, bytes],
    root_hash: bytes,
) -> None:
    """Appends log rows after a locked head, with the subtree roots they
    complete (level 0, the leaves, are the rows themselves), and moves the
    head to `seq` with its new root."""
    if not rows:
        return
    await conn.execute(registry_log.insert(), list(rows))
    inner = [{"level": level, "idx": idx, "hash": h} for (level, idx), h in nodes.items() if level > 0]
    if inner:
        await conn.execute(registry_tree.insert(), inner)
    await conn.execute(
        update(registry_head).where(registry_head.c.id == 1).values(seq=seq, head_hash=head_hash, root_hash=root_hash)
    )


async def tree_nodes(conn: AsyncConnection, nodes: Iterable[Node]) -> dict[Node, bytes]:
    """Stored subtree roots (level 0: the leaves themselves), in one or two queries."""
    wanted = set(nodes)
    leaves = [idx + 1 for level, idx in wanted if level == 0]
    found: dict[Node, bytes] = {}
    if leaves:
        query = select(registry_log.c.seq, registry_log.c.leaf_hash).where(registry_log.c.seq.in_(leaves))
        found.update({(0, int(seq) - 1): bytes(h) for seq, h in await conn.execute(query)})
    inner = [(level, idx) for level, idx in wanted if level > 0]
    if inner:
        # Point lookups on the key, OR-ed: both databases use the primary key
        # for each (a row-value IN list made SQLite scan the table).
        t = registry_tree.c
        rows = await conn.execute(
            select(t.level, t.idx, t.hash).where(or_(*(and_(t.level == lv, t.idx == i) for lv, i in inner)))
        )
        found.update({(int(r.level), int(r.idx)): bytes(r.hash) for r in rows})
    missing = wanted - found.keys()
    if missing:
        raise RuntimeError(f"registry tree nodes missing: {sorted(missing)[:5]}")
    return found


async def root(conn: AsyncConnection) -> bytes:
    return bytes((await conn.execute(select(registry_head.c.root_hash).where(registry_head.c.id == 1))).scalar_one())


async def existing_keys(
    conn: AsyncConnection, der_ids: Iterable[str], names: Iterable[str], aliases: Iterable[tuple[int, str]]
) -> tuple[set[str], dict[str, str], dict[tuple[int, str], str]]:
    """Which of these der_ids exist, and who holds these names and aliases."""
    der_ids, names, aliases = list(der_ids), list(names), list(aliases)
    found_ids: set[str] = set()
    found_names: dict[str, str] = {}
    found_aliases: dict[tuple[int, str], str] = {}
    # Chunked so PostgreSQL and SQLite parameter limits are never reached.
    for i in range(0, max(len(der_ids), len(names), len(aliases)), 500):
        if der_ids[i : i + 500]:
            result = await conn.execute(select(devices.c.der_id).where(devices.c.der_id.in_(der_ids[i : i + 500])))
            found_ids.update(r.der_id for r in result)
        if names[i : i + 500]:
            result = await conn.execute(
                select(devices.c.name, devices.c.der_id).where(devices.c.name.in_(names[i : i + 500]))
            )
            found_names.update({r.name: r.der_id for r in result})
        if aliases[i : i + 500]:
            result = await conn.execute(
                select(device_aliases.c.kind, device_aliases.c.value, device_aliases.c.der_id).where(
                    tuple_(device_aliases.c.kind, device_aliases.c.value).in_(aliases[i : i + 500])
                )
            )
            found_aliases.update({(r.kind, r.value): r.der_id for r in result})
    return found_ids, found_names, found_aliases


async def insert_devices(
    conn: AsyncConnection, device_rows: Sequence[dict[str, Any]], alias_rows: Sequence[dict[str, Any]]
) -> None:
    if device_rows:
        await conn.execute(devices.insert(), list(device_rows))
    if alias_rows:
        await conn.execute(device_aliases.insert(), list(alias_rows))


async def replace_device(
    conn: AsyncConnection, der_id: str, values: dict[str, Any], alias_rows: Sequence[dict[str, Any]]
) -> None:
    # Aliases derived from a registered certificate (negative positions) outlive record updates.
    await conn.execute(delete(device_aliases).where(device_aliases.c.der_id == der_id, device_aliases.c.position >= 0))
    derived = {
        (r.kind, r.value)
        for r in await conn.execute(
            select(device_aliases.c.kind, device_aliases.c.value).where(device_aliases.c.der_id == der_id)
        )
    }
    await conn.execute(update(devices).where(devices.c.der_id == der_id).values(**values))
    rows = [r for r in alias_rows if (r["kind"], r["value"]) not in derived]
    if rows:
        await conn.execute(device_aliases.insert(), rows)


async def alias_holders(conn: AsyncConnection, aliases: Sequence[tuple[int, str]]) -> dict[tuple[int, str], str]:
    query = select(device_aliases.c.kind, device_aliases.c.value, device_aliases.c.der_id).where(
        tuple_(device_aliases.c.kind, device_aliases.c.value).in_(list(aliases))
    )
    return {(r.kind, r.value): r.der_id for r in await conn.execute(query)}


async def add_certificate(conn: AsyncConnection, row: dict[str, Any], alias_rows: Sequence[dict[str, Any]]) -> None:
    await conn.execute(device_certificates.insert().values(**row))
    if alias_rows:
        await conn.execute(device_aliases.insert(), list(alias_rows))


async def set_status(conn: AsyncConnection, der_id: str, values: dict[str, Any]) -> None:
    await conn.execute(update(devices).where(devices.c.der_id == der_id).values(**values))


async def device_by_id(conn: AsyncConnection, der_id: str, *, lock: bool = False) -> Row[Any] | None:
    query = select(devices).where(devices.c.der_id == der_id)
    if lock:
        query = query.with_for_update()
    return (await conn.execute(query)).one_or_none()


async def device_by_name(conn: AsyncConnection, name: str) -> Row[Any] | None:
    return (await conn.execute(select(devices).where(devices.c.name == name))).one_or_none()


async def device_by_aliases(conn: AsyncConnection, aliases: Sequence[tuple[int, str]]) -> Row[Any] | None:
    if not aliases:
        return None
    query = (
        select(devices)
        .join(device_aliases, device_aliases.c.der_id == devices.c.der_id)
        .where(tuple_(device_aliases.c.kind, device_aliases.c.value).in_(list(aliases)))
        .order_by(device_aliases.c.kind)
        .limit(1)
    )
    return (await conn.execute(query)).one_or_none()


async def list_devices(conn: AsyncConnection, where: ListFilter, after_seq: int, limit: int) -> list[Row[Any]]:
    conditions = [devices.c.registered_seq > after_seq]
    if where.vendor_namespace:
        conditions.append(devices.c.vendor_namespace == where.vendor_namespace)
    if where.kind:
        conditions.append(devices.c.kind == where.kind)
    if where.status:
        conditions.append(devices.c.status == where.status)
    if where.utility_territory:
        conditions.append(devices.c.utility_territory == where.utility_territory)
    query = select(devices).where(and_(*conditions)).order_by(devices.c.registered_seq).limit(limit)
    return list((await conn.execute(query)).all())


async def log_after(conn: AsyncConnection, after_seq: int, limit: int) -> list[LogRow]:
    query = (
        select(registry_log.c.seq, registry_log.c.entry_bytes, registry_log.c.leaf_hash)
        .where(registry_log.c.seq > after_seq)
        .order_by(registry_log.c.seq)
        .limit(limit)
    )
    return [LogRow(int(r.seq), bytes(r.entry_bytes), bytes(r.leaf_hash)) for r in await conn.execute(query)]


async def log_seq_of_version(conn: AsyncConnection, der_id: str, version: int, kinds: Sequence[int]) -> int | None:
    """The log position recording record `version` of a device (0: the newest version)."""
    query = select(func.max(registry_log.c.seq)).where(
        registry_log.c.der_id == der_id, registry_log.c.kind.in_(list(kinds))
    )
    if version:
        query = query.where(registry_log.c.version == version)
    seq = (await conn.execute(query)).scalar_one_or_none()
    return None if seq is None else int(seq)


async def leaf_hashes(conn: AsyncConnection, tree_size: int) -> list[bytes]:
    query = select(registry_log.c.leaf_hash).where(registry_log.c.seq <= tree_size).order_by(registry_log.c.seq)
    return [bytes(h) for h in (await conn.execute(query)).scalars()]
