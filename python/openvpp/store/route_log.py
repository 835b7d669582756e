"""The route-change log: appended by every module whose writes change a route
(routing, the registry's device status, endpoint probes, partner status), in
the same transaction as the change, and read by WatchRoutes and route caches."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from openvpp.store.schema import enrollments, route_head, route_log
from openvpp.v1 import routing_pb2 as pb

PARTNER_KINDS = (pb.ROUTE_EVENT_KIND_PARTNER_SUSPENDED, pb.ROUTE_EVENT_KIND_PARTNER_REINSTATED)


@dataclass(frozen=True, slots=True)
class RouteChange:
    kind: int
    der_id: str = ""
    vendor_namespace: str = ""
    utility_namespace: str = ""
    program_id: str = ""
    endpoint_id: str = ""
    namespace: str = ""
    detail: str = ""


async def append(conn: AsyncConnection, changes: Sequence[RouteChange], at_us: int) -> int:
    """Appends in order under the head-row lock; returns the new head."""
    if not changes:
        return -1
    head = (await conn.execute(select(route_head.c.seq).where(route_head.c.id == 1).with_for_update())).scalar_one()
    rows = [{"seq": head + i + 1, "at_us": at_us, **asdict(c)} for i, c in enumerate(changes)]
    await conn.execute(route_log.insert(), rows)
    await conn.execute(update(route_head).where(route_head.c.id == 1).values(seq=head + len(rows)))
    return int(head + len(rows))


async def head(conn: AsyncConnection) -> int:
    return int((await conn.execute(select(route_head.c.seq).where(route_head.c.id == 1))).scalar_one())


async def after(conn: AsyncConnection, cursor: int, limit: int, viewer: str | None) -> Sequence[Row[Any]]:
    """Entries after `cursor`; `viewer` None sees all, else only what concerns that partner:
    its own devices and programs, programs its devices are enrolled in, and its counterparties."""
    query = select(route_log).where(route_log.c.seq > cursor).order_by(route_log.c.seq).limit(limit)
    if viewer is not None:
        vendor_programs = select(enrollments.c.program_id).where(enrollments.c.vendor_namespace == viewer)
        my_utilities = select(enrollments.c.utility_namespace).where(enrollments.c.vendor_namespace == viewer)
        my_vendors = select(enrollments.c.vendor_namespace).where(enrollments.c.utility_namespace == viewer)
        query = query.where(
            or_(
                route_log.c.vendor_namespace == viewer,
                route_log.c.utility_namespace == viewer,
                and_(route_log.c.vendor_namespace == "", route_log.c.program_id.in_(vendor_programs)),
                and_(route_log.c.kind.in_(PARTNER_KINDS), route_log.c.utility_namespace.in_(my_utilities)),
                and_(route_log.c.kind.in_(PARTNER_KINDS), route_log.c.vendor_namespace.in_(my_vendors)),
            )
        )
    return (await conn.execute(query)).all()


async def utility_of_device(conn: AsyncConnection, der_id: str) -> str:
    """The utility a device is actively enrolled with ("" if none)."""
    row = (
        await conn.execute(
            select(enrollments.c.utility_namespace)
            .where(enrollments.c.der_id == der_id, enrollments.c.status == pb.ENROLLMENT_STATUS_ACTIVE)
            .limit(1)
        )
    ).one_or_none()
    return str(row.utility_namespace) if row else ""
