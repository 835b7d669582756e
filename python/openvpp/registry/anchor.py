"""Writes the registry's Merkle root on chain in a Memo transaction, so any
client can check an inclusion proof against a root the operator cannot
rewrite afterwards."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from solders.instruction import AccountMeta, Instruction
from solders.pubkey import Pubkey
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from openvpp import errors
from openvpp.chain import spl
from openvpp.chain.base import RecentBlockhash
from openvpp.chain.keyring import Keyring
from openvpp.chain.outbox import Handler, Outbox, OutboxState, Outcome
from openvpp.kernel import clock
from openvpp.kernel.clock import Clock
from openvpp.registry.service import InclusionProof, Registry
from openvpp.store import schema
from openvpp.store.database import Database

log = logging.getLogger(__name__)
# Advisory lock names: the periodic anchoring leader, and one anchor at a time.
ANCHOR_TIMER = "registry-anchor-timer"
ANCHOR_LEADER = "registry-anchor"

MEMO_PROGRAM = Pubkey.from_string("MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr")
MEMO_PREFIX = "openvpp/registry-root/v1"


def memo_text(tree_size: int, root: bytes) -> str:
    return f"{MEMO_PREFIX} {tree_size} {root.hex()}"


@dataclass(frozen=True, slots=True)
class Anchor:
    tree_size: int
    root_hash: bytes
    signature: str
    slot: int
    authority: str

    @property
    def memo(self) -> str:
        return memo_text(self.tree_size, self.root_hash)


def _anchor(row: object) -> Anchor:
    return Anchor(row.tree_size, row.root_hash, row.signature, row.slot, row.authority)  # type: ignore[attr-defined]


class Anchorer:
    def __init__(
        self, db: Database, registry: Registry, outbox: Outbox, keyring: Keyring, clock_us: Clock = clock.system
    ) -> None:
        self.clock_us = clock_us
        self.db = db
        self.registry = registry
        self.outbox = outbox
        self.keyring = keyring
        self._lock = asyncio.Lock()
        outbox.register("registry_anchor", Handler(self._record, self._build))

    async def latest(self) -> Anchor | None:
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    select(schema.registry_anchors).order_by(schema.registry_anchors.c.tree_size.desc()).limit(1)
                )
            ).first()
        return None if row is None else _anchor(row)

    async def covering(self, seq: int) -> Anchor | None:
        """The newest anchor whose tree holds log position `seq`."""
        anchor = await self.latest()
        return anchor if anchor is not None and anchor.tree_size >= seq else None

    async def at(self, tree_size: int) -> Anchor | None:
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    select(schema.registry_anchors).where(schema.registry_anchors.c.tree_size == tree_size)
                )
            ).first()
        return None if row is None else _anchor(row)

    async def proof(
        self, seq: int, der_id: str, version: int, tree_size: int, anchored: bool
    ) -> tuple[InclusionProof, Anchor | None]:
        """An inclusion proof and the on-chain anchor of its root (if that root is anchored).

        `anchored` proves against the newest anchored root holding the entry."""
        if not anchored:
            proof = await self.registry.inclusion_proof(seq, der_id, version, tree_size)
            return proof, await self.at(proof.tree_size)
        if tree_size:
            raise errors.InvalidArgument.field("tree_size", "must be 0 when asking for an anchored proof")
        current = await self.registry.inclusion_proof(seq, der_id, version, 0)
        anchor = await self.covering(current.leaf_index + 1)
        if anchor is None:
            raise errors.FailedPrecondition(
                f"log position {current.leaf_index + 1} is not anchored on chain yet", "NOT_YET_ANCHORED"
            )
        return await self.registry.inclusion_proof(current.leaf_index + 1, "", 0, anchor.tree_size), anchor

    async def anchor_now(self) -> Anchor:
        """Anchors the current root; the newest anchor when the log has not grown.
        One replica anchors at a time (the others wait, then find the anchor)."""
        async with self._lock, self.db.leader(ANCHOR_LEADER):
            size, root, _ = await self.registry.head()
            if size == 0:
                raise errors.FailedPrecondition("the registry log is empty; nothing to anchor", "EMPTY_LOG")
            existing = await self.at(size)
            if existing is not None:
                return existing
            outcome = await self.outbox.submit(
                "registry_anchor", f"{size}:{root.hex()}", lambda recent: self._build(f"{size}:{root.hex()}", recent)
            )
            if outcome.state is not OutboxState.CONFIRMED:
                raise errors.Unavailable(f"anchor transaction failed: {outcome.error}", "CHAIN_FAILED")
            found = await self.at(size)
            assert found is not None
            log.info("anchored registry root %s at size %d in %s", root.hex(), size, found.signature)
            return found

    async def _build(self, ref: str, recent: RecentBlockhash) -> bytes:
        size, root = ref.split(":")
        authority = self.keyring.settlement_authority
        memo = Instruction(
            MEMO_PROGRAM,
            memo_text(int(size), bytes.fromhex(root)).encode(),
            [AccountMeta(authority.pubkey(), True, False)],
        )
        return spl.signed([memo], self.keyring.fee_payer, [authority], recent.blockhash)

    async def _record(self, conn: AsyncConnection, ref: str, outcome: Outcome) -> None:
        if outcome.state is not OutboxState.CONFIRMED:
            return
        size, root = ref.split(":")
        await conn.execute(
            insert(schema.registry_anchors).values(
                tree_size=int(size),
                root_hash=bytes.fromhex(root),
                signature=outcome.signature,
                slot=outcome.slot or 0,
                authority=str(self.keyring.settlement_authority.pubkey()),
                anchored_at_us=self.clock_us(),
            )
        )

    async def run(self, interval_seconds: float, stop: asyncio.Event) -> None:
        """Anchors periodically when the log has grown, until `stop` is set."""
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=interval_seconds)
                return
            except TimeoutError:
                pass
            try:
                # Every replica runs this timer; the one that leads anchors.
                async with self.db.leader(ANCHOR_TIMER, wait=False) as leading:
                    if not leading:
                        continue
                    size, _, _ = await self.registry.head()
                    latest = await self.latest()
                    if size and (latest is None or latest.tree_size < size):
                        await self.anchor_now()
            except Exception:
                log.exception("periodic registry anchoring failed; retrying next interval")
