"""Migrations and the table definitions agree on both backends; write
transactions do not nest."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from hashlib import sha256

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, insert, inspect, select, text, update

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


def _at(database_url: str, step: Callable[[Config, str], None], revision: str) -> None:
    config = migrate.alembic_config(database_url)
    engine = create_engine(sync_url(database_url))
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            step(config, revision)
    finally:
        engine.dispose()


def test_stored_readings_move_to_device_numbers_and_back_with_their_digests(database_url: str) -> None:
    migrate.upgrade(database_url, "0007_settlement")
    payloads = {(name, seq): bytes([n, seq]) * 36 for n, name in enumerate(("dev-a", "dev-b")) for seq in (1, 2)}
    engine = create_engine(sync_url(database_url))
    try:
        with engine.begin() as conn:
            for number, name in ((40, "dev-a"), (41, "dev-b")):
                conn.execute(
                    text(
                        "INSERT INTO devices (der_id, public_key, name, vendor_namespace, kind, utility_territory, "
                        "status, status_reason, version, record_bytes, signature, registered_seq, log_seq, "
                        "registered_at_us, updated_at_us) VALUES (:d, :k, :d, 'v', 1, 't', 1, '', 1, :b, :s, :n, "
                        ":n, 0, 0)"
                    ),
                    {"d": name, "k": bytes(32), "b": b"", "s": bytes(64), "n": number},
                )
            for (name, seq), payload in payloads.items():
                conn.execute(
                    text(
                        "INSERT INTO readings (der_id, seq, covered_from, interval_end, import_wh, export_wh, flags, "
                        "missing, payload, signature, digest, chain_hash, received_at_us, batch_id) VALUES "
                        "(:d, :q, 0, :q, 0, 0, 0, 0, :p, :s, :h, :c, 0, NULL)"
                    ),
                    {
                        "d": name,
                        "q": seq,
                        "p": payload,
                        "s": bytes(64),
                        "h": sha256(payload).digest(),
                        "c": bytes([seq]) * 32,
                    },
                )
        migrate.upgrade(database_url)
        with engine.connect() as conn:
            moved = conn.execute(text("SELECT device, seq, payload, chain_hash FROM readings")).all()
        numbers = {"dev-a": 40, "dev-b": 41}
        assert sorted(moved) == sorted((numbers[n], q, p, bytes([q]) * 32) for (n, q), p in payloads.items())
        _at(database_url, command.downgrade, "0007_settlement")
        with engine.connect() as conn:
            back = conn.execute(text("SELECT der_id, seq, payload, digest FROM readings")).all()
        assert sorted(back) == sorted((n, q, p, sha256(p).digest()) for (n, q), p in payloads.items())
        migrate.upgrade(database_url)
    finally:
        engine.dispose()
    test_migrations_build_exactly_the_declared_schema(database_url)


def test_replicas_migrating_an_empty_database_together_all_succeed(database_url: str) -> None:
    """Four at once (as replicas starting together): they take turns, none fails."""
    barrier = threading.Barrier(4)
    failures: list[BaseException] = []

    def replica() -> None:
        barrier.wait()
        try:
            migrate.upgrade(database_url)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=replica) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    engine = create_engine(sync_url(database_url))
    try:
        with engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), metadata) == []
    finally:
        engine.dispose()


async def test_one_leader_at_a_time_among_replicas(database_url: str) -> None:
    await asyncio.to_thread(migrate.upgrade, database_url)
    first, second = Database(database_url), Database(database_url)
    try:
        async with first.leader("job", wait=False) as leading:
            assert leading
            async with second.leader("job", wait=False) as also:
                # SQLite is one process by construction; PostgreSQL refuses the second.
                assert also is first.is_sqlite
            async with second.leader("another job", wait=False) as other:
                assert other
        async with second.leader("job", wait=False) as leading:
            assert leading
    finally:
        await first.close()
        await second.close()
