"""Programs, endpoint attachments, enrollments and route look-ups: every SQL statement routing runs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, delete, select, tuple_, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from openvpp.store.schema import (
    device_aliases,
    devices,
    endpoints,
    enrollments,
    partners,
    program_endpoints,
    programs,
    registry_head,
    registry_log,
)
from openvpp.v1 import routing_pb2 as pb

IN_CHUNK = 2000


async def program(conn: AsyncConnection, program_id: str) -> Row[Any] | None:
    return (await conn.execute(select(programs).where(programs.c.program_id == program_id))).one_or_none()


async def insert_program(conn: AsyncConnection, values: dict[str, Any]) -> None:
    await conn.execute(programs.insert().values(**values))


async def list_programs(conn: AsyncConnection, utility: str, after: str, limit: int) -> Sequence[Row[Any]]:
    query = select(programs).where(programs.c.program_id > after)
    if utility:
        query = query.where(programs.c.utility_namespace == utility)
    return (await conn.execute(query.order_by(programs.c.program_id).limit(limit))).all()


async def attachments(conn: AsyncConnection, program_ids: Sequence[str]) -> Sequence[Row[Any]]:
    query = (
        select(program_endpoints)
        .where(program_endpoints.c.program_id.in_(list(program_ids)))
        .order_by(program_endpoints.c.priority, program_endpoints.c.endpoint_id)
    )
    return (await conn.execute(query)).all()


async def attach(conn: AsyncConnection, values: dict[str, Any]) -> bool:
    """Inserts or updates priority and weight; True when it was new."""
    key = and_(
        program_endpoints.c.program_id == values["program_id"],
        program_endpoints.c.endpoint_id == values["endpoint_id"],
    )
    changed = await conn.execute(
        update(program_endpoints).where(key).values(priority=values["priority"], weight=values["weight"])
    )
    if changed.rowcount:
        return False
    await conn.execute(program_endpoints.insert().values(**values))
    return True


async def detach(conn: AsyncConnection, program_id: str, endpoint_id: str) -> bool:
    result = await conn.execute(
        delete(program_endpoints).where(
            program_endpoints.c.program_id == program_id, program_endpoints.c.endpoint_id == endpoint_id
        )
    )
    return bool(result.rowcount)


async def programs_of_endpoint(conn: AsyncConnection, endpoint_id: str) -> list[str]:
    query = select(program_endpoints.c.program_id).where(program_endpoints.c.endpoint_id == endpoint_id)
    return [r.program_id for r in (await conn.execute(query)).all()]


async def detach_endpoint_everywhere(conn: AsyncConnection, endpoint_id: str) -> None:
    await conn.execute(delete(program_endpoints).where(program_endpoints.c.endpoint_id == endpoint_id))


async def enrollment(conn: AsyncConnection, program_id: str, der_id: str) -> Row[Any] | None:
    query = select(enrollments).where(enrollments.c.program_id == program_id, enrollments.c.der_id == der_id)
    return (await conn.execute(query)).one_or_none()


async def upsert_enrollment(conn: AsyncConnection, values: dict[str, Any], exists: bool) -> None:
    if exists:
        key = and_(enrollments.c.program_id == values["program_id"], enrollments.c.der_id == values["der_id"])
        await conn.execute(update(enrollments).where(key).values(**values))
    else:
        await conn.execute(enrollments.insert().values(**values))


async def set_enrollment_status(
    conn: AsyncConnection, program_id: str, der_id: str, status: int, reason: str, now_us: int
) -> None:
    await conn.execute(
        update(enrollments)
        .where(enrollments.c.program_id == program_id, enrollments.c.der_id == der_id)
        .values(status=status, status_reason=reason, updated_at_us=now_us)
    )


async def active_enrollments_of(conn: AsyncConnection, der_id: str) -> Sequence[Row[Any]]:
    query = select(enrollments).where(
        enrollments.c.der_id == der_id, enrollments.c.status == pb.ENROLLMENT_STATUS_ACTIVE
    )
    return (await conn.execute(query)).all()


async def list_enrollments(
    conn: AsyncConnection,
    program_id: str,
    der_id: str,
    include_unenrolled: bool,
    viewer: tuple[str, str] | None,
    after: tuple[str, str],
    limit: int,
) -> Sequence[Row[Any]]:
    """`viewer` is (utility, vendor) namespaces a non-operator caller is limited to (one of them set)."""
    query = select(enrollments).where(tuple_(enrollments.c.program_id, enrollments.c.der_id) > after)
    if viewer is not None:
        utility, vendor = viewer
        query = query.where(
            enrollments.c.utility_namespace == utility if utility else enrollments.c.vendor_namespace == vendor
        )
    if program_id:
        query = query.where(enrollments.c.program_id == program_id)
    if der_id:
        query = query.where(enrollments.c.der_id == der_id)
    if not include_unenrolled:
        query = query.where(enrollments.c.status == pb.ENROLLMENT_STATUS_ACTIVE)
    return (await conn.execute(query.order_by(enrollments.c.program_id, enrollments.c.der_id).limit(limit))).all()


# -- resolution ----------------------------------------------------------------


async def devices_with_vendor(conn: AsyncConnection, der_ids: Sequence[str]) -> list[Row[Any]]:
    """Device rows with their vendor's partner status (None when the vendor is not a partner)."""
    found: list[Any] = []
    for i in range(0, len(der_ids), IN_CHUNK):
        query = (
            select(
                devices.c.der_id,
                devices.c.name,
                devices.c.vendor_namespace,
                devices.c.status,
                devices.c.status_reason,
                partners.c.status.label("vendor_status"),
            )
            .select_from(devices.outerjoin(partners, partners.c.namespace == devices.c.vendor_namespace))
            .where(devices.c.der_id.in_(der_ids[i : i + IN_CHUNK]))
        )
        found.extend((await conn.execute(query)).all())
    return found


async def route_rows(conn: AsyncConnection, der_ids: Sequence[str]) -> list[Row[Any]]:
    """Every active enrollment of these devices joined to its program, utility, and attached endpoints
    (endpoint columns are None for a program with no endpoint attached)."""
    utility = partners.alias("utility")
    found: list[Any] = []
    for i in range(0, len(der_ids), IN_CHUNK):
        joined = (
            enrollments.join(programs, programs.c.program_id == enrollments.c.program_id)
            .join(utility, utility.c.namespace == programs.c.utility_namespace)
            .outerjoin(program_endpoints, program_endpoints.c.program_id == programs.c.program_id)
            .outerjoin(endpoints, endpoints.c.endpoint_id == program_endpoints.c.endpoint_id)
        )
        query = (
            select(
                enrollments.c.der_id,
                enrollments.c.program_id,
                enrollments.c.consent_expires_at_us,
                programs.c.kind.label("program_kind"),
                programs.c.route_ttl_seconds,
                programs.c.utility_namespace,
                utility.c.status.label("utility_status"),
                program_endpoints.c.endpoint_id,
                program_endpoints.c.priority,
                program_endpoints.c.weight,
                endpoints.c.url,
                endpoints.c.protocol,
                endpoints.c.tls_server_name,
                endpoints.c.auth_mode,
                endpoints.c.state.label("endpoint_state"),
                endpoints.c.probe,
            )
            .select_from(joined)
            .where(
                enrollments.c.der_id.in_(der_ids[i : i + IN_CHUNK]),
                enrollments.c.status == pb.ENROLLMENT_STATUS_ACTIVE,
            )
            .order_by(enrollments.c.der_id, program_endpoints.c.priority, program_endpoints.c.endpoint_id)
        )
        found.extend((await conn.execute(query)).all())
    return found


async def der_ids_by_text(conn: AsyncConnection, texts: Sequence[str]) -> dict[str, str]:
    """der_id or device name -> der_id, for every text that is one."""
    found: dict[str, str] = {}
    for i in range(0, len(texts), IN_CHUNK):
        chunk = list(texts[i : i + IN_CHUNK])
        query = select(devices.c.der_id, devices.c.name).where(devices.c.der_id.in_(chunk) | devices.c.name.in_(chunk))
        for row in (await conn.execute(query)).all():
            found[row.name] = row.der_id
            found[row.der_id] = row.der_id
    return found


async def der_ids_by_alias(conn: AsyncConnection, pairs: Sequence[tuple[int, str]]) -> dict[tuple[int, str], str]:
    found: dict[tuple[int, str], str] = {}
    for i in range(0, len(pairs), IN_CHUNK):
        query = select(device_aliases.c.kind, device_aliases.c.value, device_aliases.c.der_id).where(
            tuple_(device_aliases.c.kind, device_aliases.c.value).in_(list(pairs[i : i + IN_CHUNK]))
        )
        for row in (await conn.execute(query)).all():
            found[(row.kind, row.value)] = row.der_id
    return found


async def registry_changes_after(conn: AsyncConnection, cursor: int, limit: int) -> Sequence[Any]:
    """(seq, der_id) of registry log entries after `cursor`: what route caches must forget."""
    query = select(registry_log.c.seq, registry_log.c.der_id).where(registry_log.c.seq > cursor)
    return (await conn.execute(query.order_by(registry_log.c.seq).limit(limit))).all()


async def registry_head_seq(conn: AsyncConnection) -> int:
    return int((await conn.execute(select(registry_head.c.seq).where(registry_head.c.id == 1))).scalar_one())


async def active_utilities_of(conn: AsyncConnection, der_ids: Sequence[str]) -> dict[str, set[str]]:
    """Per device, the utilities of the programs it is actively enrolled in."""
    e = enrollments
    out: dict[str, set[str]] = {}
    query = select(e.c.der_id, e.c.utility_namespace).where(
        e.c.der_id.in_(list(der_ids)), e.c.status == pb.ENROLLMENT_STATUS_ACTIVE
    )
    for der_id, utility in await conn.execute(query):
        out.setdefault(der_id, set()).add(utility)
    return out
