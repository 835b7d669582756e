"""Migrations and the table definitions agree on both backends."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from openvpp.store import migrate
from openvpp.store.database import sync_url
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
