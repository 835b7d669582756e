"""The settlement event log with writers on several replicas at once: every
cursor from 1 to the head is issued exactly once, each writer's events keep
their order, and a reader sees every event committed before it asked."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from openvpp.settlement.events import EventLog, append
from openvpp.store import migrate
from openvpp.store.database import Database
from openvpp.v1 import settlement_pb2 as pb

WRITERS, TRANSACTIONS, PER_TRANSACTION = 4, 25, 7


@pytest.fixture
async def replicas(database_url: str) -> AsyncIterator[list[Database]]:
    await asyncio.to_thread(migrate.upgrade, database_url)
    dbs = [Database(database_url) for _ in range(2)]
    try:
        yield dbs
    finally:
        for db in dbs:
            await db.close()


def _event(writer: int, n: int) -> pb.SettlementEvent:
    return pb.SettlementEvent(program_id=f"w{writer}/{n:05d}")


async def test_parallel_writers_get_gapless_cursors_in_their_own_order(replicas: list[Database]) -> None:
    async def writer(w: int) -> None:
        db = replicas[w % len(replicas)]
        for t in range(TRANSACTIONS):
            async with db.write() as conn:
                base = t * PER_TRANSACTION
                await append(conn, [("pge", _event(w, base + i)) for i in range(PER_TRANSACTION)], at_us=1)
            await asyncio.sleep(0)

    logs = [EventLog(db, poll_seconds=0.05) for db in replicas]
    stop = asyncio.Event()
    sequencers = [asyncio.create_task(log.run_sequencer(stop)) for log in logs]
    await asyncio.gather(*(writer(w) for w in range(WRITERS)))
    # Read through the other replica: it numbers whatever is still staged first.
    seen = [e async for page, _ in logs[1].follow("pge", 0, until_caught_up=True) for e in page]
    stop.set()
    await asyncio.gather(*sequencers)
    total = WRITERS * TRANSACTIONS * PER_TRANSACTION
    assert [e.cursor for e in seen] == list(range(1, total + 1))
    assert await logs[0].head() == total
    for w in range(WRITERS):
        mine = [e.program_id for e in seen if e.program_id.startswith(f"w{w}/")]
        assert mine == [f"w{w}/{n:05d}" for n in range(TRANSACTIONS * PER_TRANSACTION)]


async def test_a_reader_sees_what_was_committed_before_it_asked(replicas: list[Database]) -> None:
    writer_db, reader_db = replicas
    async with writer_db.write() as conn:
        await append(conn, [("pge", _event(0, 0)), ("sce", _event(0, 1))], at_us=1)
    # No sequencer runs: the read itself numbers what is staged.
    reader = EventLog(reader_db)
    assert await reader.head() == 2
    (only,) = await reader.page("pge", 0)
    assert (only.cursor, only.program_id) == (1, "w0/00000")
