"""Replicas sharing one outbox: a row is driven only under a live lease, a
lapsed lease is taken over, and a replica whose lease was taken can neither
re-sign the row, so an expired payment is re-signed once."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from sqlalchemy import select

from openvpp.chain.outbox import FaultHook, Handler, Outbox, OutboxState
from openvpp.kernel.clock import FakeClock
from openvpp.store import schema
from openvpp.store.database import Database
from tests.integration.chain_world import migrated
from tests.integration.test_chain_recovery import AMOUNT, Payments, SimulatedCrash, balance, setup


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = await migrated(database_url)
    try:
        yield database
    finally:
        await database.close()


def replica(payments: Payments, db: Database, name: str, clock: FakeClock, fault: FaultHook | None = None) -> Outbox:
    outbox = Outbox(
        db,
        payments.chain,
        poll_seconds=0.01,
        fault=fault,
        clock_us=clock,
        replica=name,
        lease_seconds=5,
    )
    outbox.register("payout", Handler(payments.record, payments.build))
    return outbox


async def _row(db: Database) -> object:
    async with db.read() as conn:
        return (await conn.execute(select(schema.chain_outbox))).one()


async def _dies_at(step: str, payments: Payments, db: Database, clock: FakeClock) -> tuple[Outbox, str, object]:
    """Replica "a" submits a payout and dies at `step`: (a's outbox, the wallet, the stored row)."""
    wallet = Keypair().pubkey()
    ref = f"{wallet}:1"

    def dies(at: str) -> None:
        if at == step:
            raise SimulatedCrash(at)

    a = replica(payments, db, "a", clock, dies)
    with pytest.raises(SimulatedCrash):
        await a.submit("payout", ref, lambda r: payments.build(ref, r))
    return a, str(wallet), await _row(db)


async def test_a_live_lease_is_left_alone_and_a_lapsed_one_is_taken_over(db: Database) -> None:
    chain, payments = await setup(db)
    clock = FakeClock(1_000_000_000)
    _, wallet, _ = await _dies_at("persisted", payments, db, clock)
    ref = f"{wallet}:1"
    b = replica(payments, db, "b", clock)
    # a's lease is live: b neither drives the row nor pays.
    assert await b.recover() == []
    assert await b.recover(takeover=True) == []
    assert payments.recorded == []
    clock.advance(6)
    (outcome,) = await b.recover()
    assert outcome.state is OutboxState.CONFIRMED
    assert payments.recorded == [f"{ref}:CONFIRMED"]
    assert await balance(chain, Pubkey.from_string(wallet), payments.mint) == AMOUNT
    row = await _row(db)
    assert row.lease_owner.startswith("b:")  # type: ignore[attr-defined]


async def test_a_replica_that_lost_its_lease_cannot_re_sign_so_the_payment_lands_once(db: Database) -> None:
    chain, payments = await setup(db)
    clock = FakeClock(1_000_000_000)
    a, wallet, first = await _dies_at("persisted", payments, db, clock)
    ref = f"{wallet}:1"
    # a pauses past its lease; the blockhash expires unlanded; b takes over.
    chain.produce_blocks(200)
    clock.advance(6)
    b = replica(payments, db, "b", clock)
    b_held = await b._claim([first.id])  # type: ignore[attr-defined]
    assert list(b_held) == [first.id]  # type: ignore[attr-defined]
    # a wakes up holding its old token and tries to re-sign: refused.
    a_token = first.fence  # type: ignore[attr-defined]
    a_held = {first.id: a_token}  # type: ignore[attr-defined]
    await a._expired(first, a_held)
    assert a_held == {}
    assert (await _row(db)).signature == first.signature  # type: ignore[attr-defined]
    # b re-signs once and the payment lands once.
    (outcome,) = await b._drive([first.id], b_held, 60.0)  # type: ignore[attr-defined]
    assert outcome.state is OutboxState.CONFIRMED
    assert outcome.signature != first.signature  # type: ignore[attr-defined]
    assert await balance(chain, Pubkey.from_string(wallet), payments.mint) == AMOUNT
    assert payments.recorded == [f"{ref}:CONFIRMED"]


async def test_a_restarted_replica_takes_over_its_own_rows_at_once(db: Database) -> None:
    chain, payments = await setup(db)
    clock = FakeClock(1_000_000_000)
    _, wallet, _ = await _dies_at("sent", payments, db, clock)
    # Another replica leaves it (the lease is live); a's next process takes it at start.
    assert await replica(payments, db, "b", clock).recover(takeover=True) == []
    (outcome,) = await replica(payments, db, "a", clock).recover(takeover=True)
    assert outcome.state is OutboxState.CONFIRMED
    assert await balance(chain, Pubkey.from_string(wallet), payments.mint) == AMOUNT
