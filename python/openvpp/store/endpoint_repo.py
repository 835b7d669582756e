"""Endpoint storage: every SQL statement the endpoint registry runs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, delete, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from openvpp.store.schema import endpoints


async def endpoint(conn: AsyncConnection, endpoint_id: str) -> Row[Any] | None:
    return (await conn.execute(select(endpoints).where(endpoints.c.endpoint_id == endpoint_id))).one_or_none()


async def insert(conn: AsyncConnection, values: dict[str, Any]) -> None:
    await conn.execute(endpoints.insert().values(**values))


async def record_probe(conn: AsyncConnection, endpoint_id: str, state: int, probe: str, at_us: int) -> bool:
    result = await conn.execute(
        update(endpoints)
        .where(endpoints.c.endpoint_id == endpoint_id)
        .values(state=state, probe=probe, probed_at_us=at_us, updated_at_us=at_us)
    )
    return bool(result.rowcount)


async def remove(conn: AsyncConnection, endpoint_id: str) -> bool:
    result = await conn.execute(delete(endpoints).where(endpoints.c.endpoint_id == endpoint_id))
    return bool(result.rowcount)


async def list_endpoints(
    conn: AsyncConnection, namespace: str, protocol: int, state: int, program: str, after: str, limit: int
) -> Sequence[Row[Any]]:
    conditions = [endpoints.c.endpoint_id > after]
    if namespace:
        conditions.append(endpoints.c.namespace == namespace)
    if protocol:
        conditions.append(endpoints.c.protocol == protocol)
    if state:
        conditions.append(endpoints.c.state == state)
    if program:
        # Program codes are [a-z0-9-] only, so the quoted code matches exactly one JSON array element.
        conditions.append(endpoints.c.programs.contains(f'"{program}"', autoescape=True))
    query = select(endpoints).where(and_(*conditions)).order_by(endpoints.c.endpoint_id).limit(limit)
    return (await conn.execute(query)).all()
