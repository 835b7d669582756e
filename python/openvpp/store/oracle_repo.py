"""Storage of tariffs (immutable versions), price feeds, their signed
publications and the points they carried."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from openvpp.store import schema

_points = schema.price_points


async def tariff_versions(conn: AsyncConnection, tariff_id: str) -> Sequence[Any]:
    t = schema.tariffs
    return (await conn.execute(select(t).where(t.c.tariff_id == tariff_id).order_by(t.c.version))).all()


async def insert_tariff(conn: AsyncConnection, values: dict[str, Any]) -> None:
    await conn.execute(insert(schema.tariffs).values(**values))


async def feed(conn: AsyncConnection, feed_id: str) -> Any:
    f = schema.price_feeds
    return (await conn.execute(select(f).where(f.c.feed_id == feed_id))).first()


async def insert_feed(conn: AsyncConnection, values: dict[str, Any]) -> None:
    await conn.execute(insert(schema.price_feeds).values(**values))


async def latest_point(conn: AsyncConnection, feed_id: str) -> int | None:
    query = select(_points.c.at).where(_points.c.feed_id == feed_id).order_by(_points.c.at.desc()).limit(1)
    found = (await conn.execute(query)).scalar()
    return None if found is None else int(found)


async def points_between(conn: AsyncConnection, feed_id: str, first: int, last: int) -> list[tuple[int, int, int]]:
    """(at, price, carbon) of stored points with first <= at <= last."""
    query = select(_points).where(_points.c.feed_id == feed_id, _points.c.at.between(first, last))
    return [(r.at, r.price_micro_per_kwh, r.carbon_g_per_kwh) for r in await conn.execute(query)]


async def insert_publication(
    conn: AsyncConnection, feed_id: str, points: bytes, signature: bytes, received_at_us: int
) -> int:
    publication = await conn.execute(
        insert(schema.price_publications).values(
            feed_id=feed_id, points=points, signature=signature, received_at_us=received_at_us
        )
    )
    return int(publication.inserted_primary_key[0])  # type: ignore[index]


async def insert_points(
    conn: AsyncConnection, feed_id: str, publication_id: int, points: Sequence[tuple[int, int, int]]
) -> None:
    if not points:
        return
    rows = [
        {
            "feed_id": feed_id,
            "at": at,
            "price_micro_per_kwh": price,
            "carbon_g_per_kwh": carbon,
            "publication_id": publication_id,
        }
        for at, price, carbon in points
    ]
    await conn.execute(insert(_points), rows)


async def points_reaching(conn: AsyncConnection, feed_id: str, start: int, end: int) -> list[tuple[int, int, int]]:
    """Points that can reach [start, end): from the last one at or before start."""
    before = (
        await conn.execute(
            select(_points.c.at)
            .where(_points.c.feed_id == feed_id, _points.c.at <= start)
            .order_by(_points.c.at.desc())
            .limit(1)
        )
    ).scalar()
    rows = await conn.execute(
        select(_points.c.at, _points.c.price_micro_per_kwh, _points.c.carbon_g_per_kwh)
        .where(
            _points.c.feed_id == feed_id, _points.c.at >= (before if before is not None else start), _points.c.at < end
        )
        .order_by(_points.c.at)
    )
    return [(r.at, r.price_micro_per_kwh, r.carbon_g_per_kwh) for r in rows]
