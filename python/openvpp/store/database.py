"""Engine set-up for both backends and the read/write transaction helpers."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import Select, Table, event, func, select, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

_WRITE = "openvpp_write"


def async_url(url: str) -> URL:
    """The async-driver form of a configured URL (sqlite → aiosqlite)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite")
    if parsed.get_backend_name() == "postgresql":
        return parsed.set(drivername="postgresql+psycopg")
    raise ValueError(f"unsupported database backend {parsed.get_backend_name()!r}")


def sync_url(url: str) -> URL:
    """The sync-driver form, for Alembic."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return parsed.set(drivername="sqlite")
    return parsed.set(drivername="postgresql+psycopg")


# The writer's page cache. A batch of readings from thousands of devices
# touches index pages all over the file; SQLite's default 2 MiB cache makes
# every batch re-read most of them.
WRITER_CACHE_KIB = 65_536
# Checkpoints run beside the writer (see Database); past this many WAL pages
# the writer checkpoints itself, so the log stays bounded whatever happens.
WAL_PAGES_LIMIT = 25_000


def _configure_sqlite(engine: AsyncEngine, *, writer: bool) -> None:
    # pysqlite's own transaction handling would defer BEGIN; we issue it
    # ourselves so write transactions take the write lock up front (BEGIN
    # IMMEDIATE) and cannot deadlock upgrading a read lock.
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # FULL: an acknowledged write survives power loss, not just a crash.
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        if writer:
            cursor.execute(f"PRAGMA cache_size=-{WRITER_CACHE_KIB}")
            cursor.execute(f"PRAGMA wal_autocheckpoint={WAL_PAGES_LIMIT}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(_WRITE) else "BEGIN")


class NestedWriteError(RuntimeError):
    """A programming error: a write transaction opened while the same task holds one."""


def advisory_key(name: str) -> int:
    """A PostgreSQL advisory lock key (a signed 64-bit integer) for a name."""
    return int.from_bytes(hashlib.blake2b(f"openvpp:{name}".encode(), digest_size=8).digest(), "big", signed=True)


class Database:
    """Owns the engine; hands out short read or write transactions."""

    def __init__(self, url: str) -> None:
        self.url = url
        parsed = async_url(url)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        kwargs: dict[str, Any] = {"pool_pre_ping": not self.is_sqlite}
        if not self.is_sqlite:
            kwargs.update(pool_size=10, max_overflow=10)
        self.engine = create_async_engine(parsed, **kwargs)
        self._write_engine = self.engine
        self._read_engine = self.engine
        if not self.is_sqlite:
            # PostgreSQL's default (READ COMMITTED) gives each statement its own
            # snapshot; a read that spans statements (the ledger check above
            # all) must see one. Read-only REPEATABLE READ never fails to
            # serialise, so it costs nothing to use it for every read.
            self._read_engine = create_async_engine(parsed, isolation_level="REPEATABLE READ", **kwargs)
        self._checkpointer: _Checkpointer | None = None
        if self.is_sqlite:
            _configure_sqlite(self.engine, writer=False)
            # One connection for every write (SQLite has one writer anyway), so
            # one big page cache serves them all.
            self._write_engine = create_async_engine(parsed, pool_size=1, max_overflow=0)
            _configure_sqlite(self._write_engine, writer=True)
            if parsed.database and parsed.database != ":memory:":
                self._checkpointer = _Checkpointer(parsed.database)
        # Bumped after every committed write in this process, so in-memory
        # caches can tell cheaply whether to look at the change logs.
        self.generation = 0
        self.on_commit: list[Callable[[], None]] = []
        # SQLite has one writer, and its busy handler is not fair: under steady
        # load a waiter can lose every race for longer than the busy timeout.
        # Writers in this process queue here instead, first come first served.
        self._writers = asyncio.Lock() if self.is_sqlite else None
        self._writing: set[asyncio.Task[Any]] = set()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A read-only transaction (a consistent snapshot on both backends)."""
        async with self._read_engine.connect() as conn, conn.begin():
            yield conn

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction: committed on exit, rolled back on any exception.

        One per task at a time: a second one opened inside the first would
        wait for ever for the first's lock (SQLite) or for rows it has
        locked (PostgreSQL), so it is refused at once instead."""
        task = asyncio.current_task()
        if task in self._writing:
            raise NestedWriteError("a write transaction was opened inside another in the same task")
        if task is not None:
            self._writing.add(task)
        try:
            async with self._writers or contextlib.nullcontext(), self._write_engine.connect() as conn:
                await conn.execution_options(**{_WRITE: True})
                async with conn.begin():
                    yield conn
                self.generation += 1
                for listener in self.on_commit:
                    listener()
        finally:
            self._writing.discard(task)
        if self._checkpointer is not None:
            self._checkpointer.kick()

    @asynccontextmanager
    async def leader(self, name: str, *, wait: bool = True) -> AsyncIterator[bool]:
        """Whether this process leads `name` (one holder among all replicas)
        for the block: a PostgreSQL session advisory lock on a connection of
        its own, waited for or (`wait=False`) only tried. SQLite serves one
        process (the data directory's lock), which always leads."""
        if self.is_sqlite:
            yield True
            return
        key = advisory_key(name)
        async with self.engine.connect() as conn:
            if wait:
                await conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
                held = True
            else:
                held = bool((await conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": key})).scalar())
            await conn.commit()
            try:
                yield held
            finally:
                if held:
                    await conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                    await conn.commit()

    async def close(self) -> None:
        if self._checkpointer is not None:
            await self._checkpointer.close()
        await self.engine.dispose()
        for engine in {self._write_engine, self._read_engine} - {self.engine}:
            await engine.dispose()


class _Checkpointer:
    """Copies committed WAL pages back into the database file beside the
    writer, on a connection of its own in a thread, instead of inside
    whichever commit crosses SQLite's autocheckpoint threshold. PASSIVE
    never waits for readers or the writer; at most one runs at a time.

    Hand-written because it is one pragma on a schedule: neither
    SQLAlchemy nor the driver offers a background checkpoint."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._task: asyncio.Task[None] | None = None
        self._connection: sqlite3.Connection | None = None

    def kick(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(asyncio.to_thread(self._checkpoint))

    def _checkpoint(self) -> None:
        if self._connection is None:
            self._connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._connection.execute("PRAGMA busy_timeout=30000")
        self._connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    async def close(self) -> None:
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task
        if self._connection is not None:
            self._connection.close()
            self._connection = None


async def upsert(conn: AsyncConnection, table: Table, rows: Sequence[dict[str, Any]], keys: Sequence[str]) -> None:
    """INSERT … ON CONFLICT (keys) DO UPDATE, in the dialect of the connection."""
    if not rows:
        return
    from sqlalchemy.dialects import postgresql, sqlite

    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(table)
    changing = {c: statement.excluded[c] for c in rows[0] if c not in keys}
    await conn.execute(statement.on_conflict_do_update(index_elements=list(keys), set_=changing), list(rows))


async def insert_ignore(conn: AsyncConnection, table: Table, columns: Sequence[str], rows: Select[Any]) -> None:
    """INSERT … SELECT … ON CONFLICT DO NOTHING, in the dialect of the connection."""
    from sqlalchemy.dialects import postgresql, sqlite

    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    await conn.execute(dialect.insert(table).from_select(list(columns), rows).on_conflict_do_nothing())


def driver_sql(conn: AsyncConnection, sql: str) -> str:
    """`sql`, written with `?` markers, in the paramstyle of the connection's driver."""
    return sql if conn.dialect.paramstyle == "qmark" else sql.replace("?", "%s")


async def execute_rows(conn: AsyncConnection, sql: str, rows: Sequence[Sequence[Any]]) -> int:
    """One positional executemany of plain values; returns the rows changed.

    Settlement writes tens of thousands of rows at a time, and below the
    expression layer the driver takes tuples as they are: SQLAlchemy's
    per-row parameter processing was most of the cost of these statements."""
    if not rows:
        return 0
    result = await conn.exec_driver_sql(driver_sql(conn, sql), list(rows))
    return int(result.rowcount)


async def insert_rows(
    conn: AsyncConnection, table: Table, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    """`execute_rows` for an INSERT of `columns`, one tuple per row."""
    sql = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
    await execute_rows(conn, sql, rows)


async def reserve_ids(conn: AsyncConnection, table: Table, count: int) -> list[int]:
    """Ids for `count` new rows of `table`, in order.

    SQLite does not promise RETURNING rows in insertion order for a many-row
    INSERT, so asking for them costs one statement per row. Reserving the ids
    first makes it one executemany: PostgreSQL draws them from the column's
    sequence; SQLite has a single writer (every write transaction begins
    IMMEDIATE), so the ids above the current maximum are this transaction's."""
    if not count:
        return []
    if conn.dialect.name == "postgresql":
        drawn = await conn.execute(
            text("SELECT nextval(pg_get_serial_sequence(:t, 'id')) FROM generate_series(1, :n)"),
            {"t": table.name, "n": count},
        )
        return [int(r[0]) for r in drawn]
    top = (await conn.execute(select(func.coalesce(func.max(table.c.id), 0)))).scalar_one()
    return list(range(int(top) + 1, int(top) + 1 + count))


async def insert_rows_with_ids(
    conn: AsyncConnection, table: Table, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> list[int]:
    """`insert_rows` that returns the new rows' ids in order (see `reserve_ids`)."""
    ids = await reserve_ids(conn, table, len(rows))
    await insert_rows(conn, table, ("id", *columns), [(i, *row) for i, row in zip(ids, rows, strict=True)])
    return ids
