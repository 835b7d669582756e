"""The embedded chain: LiteSVM in process, running the real SPL programs,
made as durable as the database.

LiteSVM keeps everything in memory and accepts only its newest blockhash.
This wrapper adds what a cluster has and a VM lacks: blocks on a wall-clock
cadence, blockhashes valid for `MAX_BLOCKHASH_AGE` blocks, and persistence.
Like a validator, it checks signatures in a batch stage ahead of execution
(the Rust core, strict ed25519, on every core with the GIL released)
rather than one by one inside the VM, where they were a fifth of the time
a settlement spends executing.
Each batch of sent transactions commits, in one database transaction, the
post-state of every account they could write and their signature statuses,
so a restart (or a kill at any moment) resumes from a state in which every
transaction either fully happened or never did.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from solders.account import Account
from solders.clock import Clock
from solders.hash import Hash
from solders.litesvm import LiteSVM
from solders.pubkey import Pubkey
from solders.rpc.responses import RpcSimulateTransactionResult
from solders.signature import Signature
from solders.transaction import VersionedTransaction
from solders.transaction_metadata import FailedTransactionMetadata, TransactionMetadata
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from openvpp import native
from openvpp.chain import history
from openvpp.chain.base import (
    MAX_BLOCKHASH_AGE,
    ChainError,
    Commitment,
    RecentBlockhash,
    SendResult,
    SignatureStatus,
    TransactionRecord,
)
from openvpp.store import schema
from openvpp.store.database import Database, execute_rows, insert_rows

LAMPORTS_PER_SOL = 1_000_000_000
# Generous: a restored chain must still refuse a replay of anything recent.
HISTORY_CAPACITY = 1_000_000
# Statuses of transactions this process made durable, answered without the
# database: the outbox asks for every one it sent right after sending it.
RECENT_STATUSES = 100_000
_STATE_ID = 1
_TRANSACTION_COLUMNS = ("signature", "slot", "error", "fee", "compute_units", "logs", "raw", "block_time", "details")
_Record = tuple[str, int, str | None, int, int, str, bytes, int, str | None]


def _new_blockhash() -> Hash:
    return Hash(hashlib.sha256(os.urandom(32)).digest())


def error_json(err: object) -> str:
    """A transaction error in the JSON-RPC form (`"BlockhashNotFound"`,
    `{"InstructionError":[0,{"Custom":1}]}`); solders serialises it for us
    inside a simulation result."""
    return json.dumps(json.loads(RpcSimulateTransactionResult(err, [], None, 0, None).to_json())["err"])  # type: ignore[arg-type]


ALREADY_PROCESSED = json.dumps("AlreadyProcessed")
BLOCKHASH_NOT_FOUND = json.dumps("BlockhashNotFound")
SIGNATURE_FAILURE = json.dumps("SignatureFailure")


def writable_accounts(svm: LiteSVM, tx: VersionedTransaction) -> list[Pubkey]:
    """The accounts a transaction may write: static keys by the header's
    rules, plus the writable entries it loads from lookup tables."""
    message = tx.message
    keys = list(message.account_keys)
    header = message.header
    signed = header.num_required_signatures
    out = [
        key
        for i, key in enumerate(keys)
        if i < signed - header.num_readonly_signed_accounts
        or signed <= i < len(keys) - header.num_readonly_unsigned_accounts
    ]
    out.extend(history.loaded_addresses(svm, tx)[0])
    return out


@dataclass(frozen=True, slots=True)
class Committed:
    """What one durable commit changed: told to observers (the PubSub) after it."""

    slot: int
    accounts: dict[Pubkey, Account | None]
    transactions: list[history.Landed]


Observer = Callable[[Committed], None]


class EmbeddedChain:
    """A development cluster in this process; see the module docstring."""

    name = "embedded"
    development = True

    def __init__(
        self,
        db: Database,
        *,
        slot_seconds: float | None = 0.4,
        clock: Callable[[], float] = time.time,
        history: bool = False,
    ) -> None:
        self.db = db
        # Balances, inner instructions and the address index, for a chain
        # served over JSON-RPC; settlement in process reads none of them.
        self.history = history
        self.observers: list[Observer] = []
        self.genesis_hash = _new_blockhash()
        self._genesis_persisted = False
        self._slot_seconds = slot_seconds
        self._clock = clock
        self._lock = asyncio.Lock()
        self.svm = self._new_vm()
        self._slot = 0
        self._height = 0
        self._block_started = clock()
        self._blockhashes: dict[Hash, int] = {}
        self._current = _new_blockhash()
        self._current_persisted = False
        self._recent: dict[str, SignatureStatus] = {}
        # Addresses indexed even without history (Solana Pay references).
        self._watched: set[str] = set()

    def watch(self, address: Pubkey) -> None:
        self._watched.add(str(address))

    async def signatures_for_address(self, address: Pubkey, limit: int) -> list[Signature]:
        return [Signature.from_string(row[0]) for row in await self.signatures_for(address, limit, None, None)]

    @staticmethod
    def _new_vm() -> LiteSVM:
        # Our own blockhash queue replaces LiteSVM's newest-only check, and
        # `send` verifies signatures before anything reaches the VM.
        return LiteSVM().with_blockhash_check(False).with_sigverify(False).with_transaction_history(HISTORY_CAPACITY)

    @classmethod
    async def open(cls, db: Database, **kwargs: Any) -> EmbeddedChain:
        """Restores the chain persisted in `db` (or starts a new one)."""
        chain = cls(db, **kwargs)
        await chain._restore()
        return chain

    async def _restore(self) -> None:
        self.svm = self._new_vm()
        self._recent = {}
        async with self.db.read() as conn:
            state = (await conn.execute(select(schema.chain_state))).first()
            accounts = (await conn.execute(select(schema.chain_accounts))).all()
            hashes = (await conn.execute(select(schema.chain_blockhashes))).all()
        for row in accounts:
            self.svm.set_account(Pubkey.from_string(row.address), Account.from_bytes(row.account))
        if state is None:
            self._slot, self._height = 1, 1
            self._block_started = self._clock()
        else:
            self._slot, self._height = state.slot, state.block_height
            if state.genesis_hash is not None:
                self.genesis_hash = Hash.from_string(state.genesis_hash)
                self._genesis_persisted = True
            # Downtime counts: blockhashes expire while the process is down, as on a cluster.
            self._block_started = state.unix_time_us / 1e6
        self._blockhashes = {Hash.from_string(h.blockhash): h.block_height for h in hashes}
        self._current = max(self._blockhashes, key=self._blockhashes.__getitem__, default=_new_blockhash())
        self._current_persisted = bool(self._blockhashes)
        if not self._blockhashes:
            self._blockhashes[self._current] = self._height
        self._advance()
        self._set_clock()

    def _set_clock(self) -> None:
        clock = self.svm.get_clock()
        self.svm.set_clock(
            Clock(
                slot=self._slot,
                epoch_start_timestamp=clock.epoch_start_timestamp,
                epoch=clock.epoch,
                leader_schedule_epoch=clock.leader_schedule_epoch,
                unix_timestamp=int(self._clock()),
            )
        )

    def _advance(self) -> None:
        if self._slot_seconds is None:
            return
        due = int((self._clock() - self._block_started) / self._slot_seconds)
        if due > 0:
            self.produce_blocks(due)
            self._block_started += due * self._slot_seconds

    def produce_blocks(self, count: int = 1) -> None:
        """Moves the chain on `count` blocks with a fresh blockhash (tests use this to expire one)."""
        self._slot += count
        self._height += count
        self._current = _new_blockhash()
        self._current_persisted = False
        self._blockhashes[self._current] = self._height
        floor = self._height - MAX_BLOCKHASH_AGE - 1
        self._blockhashes = {h: b for h, b in self._blockhashes.items() if b >= floor}
        self._set_clock()

    async def _persist_state(self, conn: AsyncConnection) -> None:
        values: dict[str, Any] = {
            "slot": self._slot,
            "block_height": self._height,
            "unix_time_us": int(self._block_started * 1e6),
        }
        if not self._genesis_persisted:
            values["genesis_hash"] = str(self.genesis_hash)
        changed = await conn.execute(
            update(schema.chain_state).where(schema.chain_state.c.id == _STATE_ID).values(**values)
        )
        if changed.rowcount == 0:
            await conn.execute(insert(schema.chain_state).values(id=_STATE_ID, **values))
        self._genesis_persisted = True
        if not self._current_persisted:
            await conn.execute(
                insert(schema.chain_blockhashes).values(blockhash=str(self._current), block_height=self._height)
            )
            await conn.execute(
                delete(schema.chain_blockhashes).where(
                    schema.chain_blockhashes.c.block_height < self._height - 2 * MAX_BLOCKHASH_AGE
                )
            )
            self._current_persisted = True

    def is_blockhash_valid(self, blockhash: Hash) -> bool:
        self._advance()
        made = self._blockhashes.get(blockhash)
        return made is not None and self._height <= made + MAX_BLOCKHASH_AGE

    async def latest_blockhash(self) -> RecentBlockhash:
        async with self._lock:
            self._advance()
            if not self._current_persisted:
                async with self.db.write() as conn:
                    await self._persist_state(conn)
            return RecentBlockhash(self._current, self._blockhashes[self._current] + MAX_BLOCKHASH_AGE)

    async def block_height(self) -> int:
        self._advance()
        return self._height

    async def slot(self) -> int:
        self._advance()
        return self._slot

    async def minimum_balance(self, size: int) -> int:
        return self.svm.minimum_balance_for_rent_exemption(size)

    async def accounts(self, addresses: Sequence[Pubkey]) -> list[Account | None]:
        return [self.svm.get_account(a) for a in addresses]

    async def airdrop(self, address: Pubkey, lamports: int) -> Signature:
        async with self._lock:
            self._advance()
            # LiteSVM signs its faucet transfer over its own blockhash: a fresh
            # one per airdrop, so a second equal airdrop is a new transaction.
            self.svm.expire_blockhash()
            result = self.svm.airdrop(address, lamports)
            if isinstance(result, FailedTransactionMetadata):
                raise ChainError(f"airdrop failed: {result.err()}")
            # The faucet's transaction is LiteSVM's own; its status is kept, its bytes are not.
            await self._commit([address], [], [(result.signature(), address)])
            return result.signature()

    async def send(self, transactions: Sequence[bytes]) -> list[SendResult]:
        async with self._lock:
            self._advance()
            parsed: list[VersionedTransaction | None] = []
            for raw in transactions:
                try:
                    parsed.append(VersionedTransaction.from_bytes(raw))
                except ValueError:
                    parsed.append(None)
            seen = await self._landed_before([tx.signatures[0] for tx in parsed if tx is not None])
            signed = native.verify_transactions(transactions)
            results: list[SendResult] = []
            landed: list[_Landing] = []
            touched: list[Pubkey] = []
            for tx, raw, valid in zip(parsed, transactions, signed, strict=True):
                if tx is None or not tx.signatures:
                    results.append(SendResult(Signature.default(), "malformed transaction"))
                    continue
                signature = tx.signatures[0]
                made = self._blockhashes.get(tx.message.recent_blockhash)
                if not valid:
                    results.append(SendResult(signature, SIGNATURE_FAILURE))
                elif signature in seen:
                    results.append(SendResult(signature, ALREADY_PROCESSED, already_processed=True))
                elif made is None or self._height > made + MAX_BLOCKHASH_AGE:
                    results.append(SendResult(signature, BLOCKHASH_NOT_FOUND))
                else:
                    keys = history.account_keys(self.svm, tx) if self.history else []
                    before = [self.svm.get_account(k) for k in keys]
                    meta = self.svm.send_transaction(tx)
                    if isinstance(meta, FailedTransactionMetadata) and self.svm.get_transaction(signature) is None:
                        error = error_json(meta.err())
                        results.append(SendResult(signature, error, already_processed=error == ALREADY_PROCESSED))
                        continue
                    told = history.details(self.svm, tx, keys, before, meta) if self.history else None
                    landed.append(_Landing(tx, raw, meta, keys, told))
                    touched.extend(writable_accounts(self.svm, tx))
                    results.append(SendResult(signature))
            if landed:
                await self._commit(touched, landed)
            return results

    async def _landed_before(self, signatures: list[Signature]) -> set[Signature]:
        if not signatures:
            return set()
        async with self.db.read() as conn:
            rows = await conn.execute(
                select(schema.chain_transactions.c.signature).where(
                    schema.chain_transactions.c.signature.in_([str(s) for s in signatures])
                )
            )
            return {Signature.from_string(r.signature) for r in rows}

    async def _commit(
        self, touched: list[Pubkey], landed: list[_Landing], faucet: Sequence[tuple[Signature, Pubkey]] = ()
    ) -> None:
        live, gone = [], []
        after: dict[Pubkey, Account | None] = {}
        for address in dict.fromkeys(touched):
            account = self.svm.get_account(address)
            if account is not None and account.lamports > 0:
                live.append((str(address), bytes(account)))
                after[address] = account
            else:
                gone.append((str(address),))
                after[address] = None
        now = int(self._clock())
        records: list[_Record] = []
        told: list[history.Landed] = []
        # Only a served chain tells subscribers and indexes addresses; settlement
        # in process pays nothing for either on its hot path.
        telling = self.history or bool(self.observers)
        for landing in landed:
            outcome = landing.outcome
            meta = outcome.meta() if isinstance(outcome, FailedTransactionMetadata) else outcome
            error = error_json(outcome.err()) if isinstance(outcome, FailedTransactionMetadata) else None
            logs = list(meta.logs())
            signature = str(landing.tx.signatures[0])
            details = None if landing.details is None else json.dumps(landing.details)
            records.append(
                (
                    signature,
                    self._slot,
                    error,
                    meta.fee(),
                    meta.compute_units_consumed(),
                    json.dumps(logs),
                    landing.raw,
                    now,
                    details,
                )
            )
            if telling:
                told.append(
                    history.Landed(
                        signature,
                        self._slot,
                        error,
                        logs,
                        landing.keys,
                        writable_accounts(self.svm, landing.tx),
                        history.compute_budget(landing.tx)[1],
                    )
                )
        for signature_, to in faucet:
            records.append((str(signature_), self._slot, None, 0, 0, "[]", b"", now, None))
            if telling:
                told.append(history.Landed(str(signature_), self._slot, None, [], [to], [to]))
        if self.history:
            index = [(str(k), t.signature, self._slot) for t in told for k in dict.fromkeys(t.keys)]
        else:
            index = (
                [
                    (str(k), str(landing.tx.signatures[0]), self._slot)
                    for landing in landed
                    for k in dict.fromkeys(landing.tx.message.account_keys)
                    if str(k) in self._watched
                ]
                if self._watched
                else []
            )
        try:
            async with self.db.write() as conn:
                await execute_rows(conn, "DELETE FROM chain_accounts WHERE address = ?", gone)
                await execute_rows(
                    conn,
                    "INSERT INTO chain_accounts (address, account) VALUES (?, ?) "
                    "ON CONFLICT (address) DO UPDATE SET account = excluded.account",
                    live,
                )
                await insert_rows(conn, schema.chain_transactions, _TRANSACTION_COLUMNS, records)
                await insert_rows(conn, schema.chain_address_signatures, ("address", "signature", "slot"), index)
                await self._persist_state(conn)
        except BaseException:
            # The VM ran ahead of what is durable: rewind it to the database.
            await self._restore()
            raise
        self._remember(records)
        if self.observers:
            committed = Committed(self._slot, after, told)
            for observer in self.observers:
                observer(committed)

    def _remember(self, records: list[_Record]) -> None:
        if len(self._recent) + len(records) > RECENT_STATUSES:
            self._recent = dict(list(self._recent.items())[len(self._recent) // 2 :])
        for signature, slot, error, *_ in records:
            self._recent[signature] = SignatureStatus(slot, error, Commitment.FINALIZED)

    async def signature_statuses(self, signatures: Sequence[Signature]) -> list[SignatureStatus | None]:
        keys = [str(s) for s in signatures]
        found = {k: self._recent[k] for k in keys if k in self._recent}
        missing = [k for k in keys if k not in found]
        if missing:
            t = schema.chain_transactions
            async with self.db.read() as conn:
                rows = await conn.execute(select(t.c.signature, t.c.slot, t.c.error).where(t.c.signature.in_(missing)))
                found.update((r.signature, SignatureStatus(r.slot, r.error, Commitment.FINALIZED)) for r in rows)
        return [found.get(k) for k in keys]

    async def transaction(self, signature: Signature) -> TransactionRecord | None:
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    select(schema.chain_transactions).where(schema.chain_transactions.c.signature == str(signature))
                )
            ).first()
        if row is None:
            return None
        return TransactionRecord(
            signature,
            row.raw,
            row.slot,
            row.error,
            row.fee,
            json.loads(row.logs),
            row.compute_units,
            row.block_time,
            None if row.details is None else json.loads(row.details),
        )

    async def signatures_for(
        self, address: Pubkey, limit: int, before: str | None, until: str | None
    ) -> list[tuple[str, int, str | None, int | None, bytes]]:
        """Newest first: (signature, slot, error, block time, wire bytes) of
        transactions that loaded `address`, strictly between `until` and `before`."""
        index, txs = schema.chain_address_signatures, schema.chain_transactions
        query = (
            select(txs.c.signature, txs.c.slot, txs.c.error, txs.c.block_time, txs.c.raw)
            .select_from(index.join(txs, txs.c.signature == index.c.signature))
            .where(index.c.address == str(address))
            .order_by(index.c.id.desc())
            .limit(limit)
        )
        async with self.db.read() as conn:
            for bound, newer in ((before, True), (until, False)):
                if bound is None:
                    continue
                at = (
                    await conn.execute(
                        select(index.c.id).where(index.c.address == str(address), index.c.signature == bound)
                    )
                ).scalar()
                if at is not None:
                    query = query.where(index.c.id < at if newer else index.c.id > at)
            return [tuple(row) for row in await conn.execute(query)]

    async def transaction_count(self) -> int:
        async with self.db.read() as conn:
            return int((await conn.execute(select(func.count()).select_from(schema.chain_transactions))).scalar_one())

    async def close(self) -> None:
        return None


@dataclass(frozen=True, slots=True)
class _Landing:
    tx: VersionedTransaction
    raw: bytes
    outcome: TransactionMetadata | FailedTransactionMetadata
    keys: list[Pubkey]
    details: dict[str, Any] | None


class PersistedChain(EmbeddedChain):
    """Reads an embedded chain's persisted state from its database without
    running it, so tools can inspect a chain another process owns."""

    async def accounts(self, addresses: Sequence[Pubkey]) -> list[Account | None]:
        keys = [str(a) for a in addresses]
        async with self.db.read() as conn:
            rows = await conn.execute(select(schema.chain_accounts).where(schema.chain_accounts.c.address.in_(keys)))
            found = {r.address: Account.from_bytes(r.account) for r in rows}
        return [found.get(k) for k in keys]

    async def send(self, transactions: Sequence[bytes]) -> list[SendResult]:
        raise ChainError("a persisted chain is read-only; send to the process that runs it")


__all__ = ["LAMPORTS_PER_SOL", "EmbeddedChain", "PersistedChain", "writable_accounts"]
