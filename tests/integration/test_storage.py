"""Migrations and the table definitions agree on both backends; write
transactions do not nest."""

from __future__ import annotations

import asyncio

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, insert, inspect, select, update

from openvpp.store import migrate, schema
from openvpp.store.database import Database, NestedWriteError, sync_url
from openvpp.store.schema import metadata


def test_migrations_build_exactly_the_declared_schema(database_url: str) -> None:
    migrate.upgrade(database_url)
    migrate.upgrade(database_url)  # a second run is a no-op
    engine = create_engine(sync_url(database_url))
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
            tables = set(inspect(conn).get_table_names())
    finally:
        engine.dispose()
    assert diff == []
    assert {"devices", "device_aliases", "registry_log", "registry_head"} <= tables


async def test_a_write_inside_a_write_of_the_same_task_is_refused_at_once(database_url: str) -> None:
    await asyncio.to_thread(migrate.upgrade, database_url)
    db = Database(database_url)
    try:
        async with db.write() as conn:
            await conn.execute(insert(schema.registry_head).values(id=99, seq=5, head_hash=bytes(32)))
            with pytest.raises(NestedWriteError):
                async with db.write():
                    pass
        # The outer transaction is unharmed, and the next write (and one in another task) proceeds.
        async with db.write() as conn:
            seq = select(schema.registry_head.c.seq).where(schema.registry_head.c.id == 99)
            assert (await conn.execute(seq)).scalar_one() == 5

        async def other() -> int:
            async with db.write() as conn:
                await conn.execute(update(schema.registry_head).where(schema.registry_head.c.id == 99).values(seq=6))
                return int((await conn.execute(seq)).scalar_one())

        assert await asyncio.create_task(other()) == 6
    finally:
        await db.close()
