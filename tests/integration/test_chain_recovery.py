"""Kill the sender at every step, restart from the database, and check that
the payment happened exactly once and every intent reached a final state."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction
from sqlalchemy.ext.asyncio import AsyncConnection

from openvpp.chain import embedded, spl
from openvpp.chain.base import RecentBlockhash
from openvpp.chain.embedded import LAMPORTS_PER_SOL, EmbeddedChain
from openvpp.chain.outbox import Handler, Outbox, OutboxState, Outcome
from openvpp.store.database import Database
from tests.integration.chain_world import Backend, migrated

STEPS = ["persisted", "sent", "landed", "confirmed"]
AMOUNT = 250_000


class SimulatedCrash(BaseException):
    """Stands for the process dying: nothing after it runs, nothing catches it."""


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = await migrated(database_url)
    try:
        yield database
    finally:
        await database.close()


class Payments:
    """A token payout from a treasury, as settlement makes them."""

    def __init__(self, chain: EmbeddedChain, payer: Keypair, authority: Keypair, mint: Pubkey) -> None:
        self.chain, self.payer, self.authority, self.mint = chain, payer, authority, mint
        self.recorded: list[str] = []

    async def build(self, ref: str, recent: RecentBlockhash) -> bytes:
        wallet = Pubkey.from_string(ref.split(":")[0])
        program = spl.TOKEN_PROGRAM_ID
        return spl.signed(
            [
                spl.create_ata(self.payer.pubkey(), wallet, self.mint, program),
                spl.mint_to(
                    program, self.mint, spl.ata(wallet, self.mint, program), self.authority.pubkey(), AMOUNT, 6
                ),
            ],
            self.payer,
            [self.authority],
            recent.blockhash,
        )

    async def record(self, conn: AsyncConnection, ref: str, outcome: Outcome) -> None:
        self.recorded.append(f"{ref}:{outcome.state.name}")

    def outbox(self, db: Database, fault: object = None) -> Outbox:
        outbox = Outbox(db, self.chain, poll_seconds=0.01, fault=fault)  # type: ignore[arg-type]
        outbox.register("payout", Handler(self.record, self.build))
        return outbox


async def setup(db: Database) -> tuple[EmbeddedChain, Payments]:
    chain = await EmbeddedChain.open(db, slot_seconds=None)
    payer, authority = Keypair(), Keypair()
    await chain.airdrop(payer.pubkey(), 10 * LAMPORTS_PER_SOL)
    mint = await Backend(chain, chain, db, payer).create_mint(authority.pubkey())
    return chain, Payments(chain, payer, authority, mint)


async def balance(chain: EmbeddedChain, wallet: Pubkey, mint: Pubkey) -> int:
    (account,) = await chain.accounts([spl.ata(wallet, mint, spl.TOKEN_PROGRAM_ID)])
    return 0 if account is None else spl.token_amount(bytes(account.data))


@pytest.mark.parametrize("step", STEPS)
async def test_a_crash_at_any_step_pays_exactly_once_after_restart(db: Database, step: str) -> None:
    _chain, payments = await setup(db)
    wallet = Keypair().pubkey()
    ref = f"{wallet}:1"

    def crash(at: str) -> None:
        if at == step:
            raise SimulatedCrash(at)

    with pytest.raises(SimulatedCrash):
        await payments.outbox(db, crash).submit("payout", ref, lambda recent: payments.build(ref, recent))
    assert payments.recorded == []

    # The process is gone: a new chain is restored from the database alone.
    restarted = await EmbeddedChain.open(db, slot_seconds=None)
    again = Payments(restarted, payments.payer, payments.authority, payments.mint)
    outcomes = await again.outbox(db).recover(takeover=True)
    assert [o.state for o in outcomes] == [OutboxState.CONFIRMED]
    assert again.recorded == [f"{ref}:CONFIRMED"]
    assert await balance(restarted, wallet, payments.mint) == AMOUNT
    # Nothing left in flight, and a further recovery changes nothing.
    assert await again.outbox(db).recover(takeover=True) == []
    assert await balance(restarted, wallet, payments.mint) == AMOUNT


async def test_work_executed_in_memory_but_not_committed_is_gone_after_a_kill_and_lands_once(db: Database) -> None:
    chain, payments = await setup(db)
    wallet = Keypair().pubkey()
    ref = f"{wallet}:1"
    outbox = payments.outbox(db)
    recent = await chain.latest_blockhash()
    raw = await payments.build(ref, recent)
    async with db.write() as conn:
        await outbox.enqueue(conn, "payout", ref, raw, recent.last_valid_block_height)
    # The VM executes it, then the process dies before the database commit.
    chain.svm.send_transaction(VersionedTransaction.from_bytes(raw))
    assert await balance(chain, wallet, payments.mint) == AMOUNT

    restarted = await EmbeddedChain.open(db, slot_seconds=None)
    assert await balance(restarted, wallet, payments.mint) == 0
    again = Payments(restarted, payments.payer, payments.authority, payments.mint)
    assert [o.state for o in await again.outbox(db).recover(takeover=True)] == [OutboxState.CONFIRMED]
    assert await balance(restarted, wallet, payments.mint) == AMOUNT


async def test_an_expired_unlanded_payment_is_re_signed_once_after_restart(db: Database) -> None:
    _chain, payments = await setup(db)
    wallet = Keypair().pubkey()
    ref = f"{wallet}:1"

    def lost(at: str) -> None:
        if at == "persisted":
            raise SimulatedCrash(at)

    with pytest.raises(SimulatedCrash):
        await payments.outbox(db, lost).submit("payout", ref, lambda recent: payments.build(ref, recent))
    restarted = await EmbeddedChain.open(db, slot_seconds=None)
    restarted.produce_blocks(200)
    again = Payments(restarted, payments.payer, payments.authority, payments.mint)
    (outcome,) = await again.outbox(db).recover(takeover=True)
    assert outcome.state is OutboxState.CONFIRMED
    assert await balance(restarted, wallet, payments.mint) == AMOUNT


async def test_balances_survive_a_restart_exactly(db: Database) -> None:
    chain, payments = await setup(db)
    wallets = [Keypair().pubkey() for _ in range(5)]
    outbox = payments.outbox(db)
    for i, wallet in enumerate(wallets):
        ref = f"{wallet}:{i}"
        await outbox.submit("payout", ref, lambda recent, ref=ref: payments.build(ref, recent))  # type: ignore[misc]
    before = [await balance(chain, w, payments.mint) for w in wallets]
    restarted = await EmbeddedChain.open(db, slot_seconds=None)
    assert [await balance(restarted, w, payments.mint) for w in wallets] == before == [AMOUNT] * 5
    assert await restarted.block_height() == await chain.block_height()


async def test_statuses_answered_from_memory_are_the_durable_ones(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    chain, payments = await setup(db)
    recent = await chain.latest_blockhash()
    landed = await payments.build(f"{Keypair().pubkey()}:1", recent)
    (sent,) = await chain.send([landed])
    restarted = await EmbeddedChain.open(db, slot_seconds=None)
    assert await chain.signature_statuses([sent.signature]) == await restarted.signature_statuses([sent.signature])

    # A commit that fails leaves no status behind, in this process or the next.
    lost = await payments.build(f"{Keypair().pubkey()}:1", recent)

    async def failing(*_: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(embedded, "insert_rows", failing)
    with pytest.raises(OSError, match="disk full"):
        await chain.send([lost])
    monkeypatch.undo()
    signature = VersionedTransaction.from_bytes(lost).signatures[0]
    assert await chain.signature_statuses([signature]) == [None]
    again = await EmbeddedChain.open(db, slot_seconds=None)
    assert await again.signature_statuses([signature]) == [None]
