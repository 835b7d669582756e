"""Redemption, the on-chain off-ramp: one transaction burns the holder's
use-case tokens and pays the stablecoin from the reserve. Both instructions
are in the same transaction, so either both happen or neither does.

We sign as fee payer and reserve authority; the holder signs last. Because
the holder's signature is not ours to repeat, an expired redemption is
final (EXPIRED) and the holder prepares a new one.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from typing import Any, Protocol

from solders.message import Message
from solders.pubkey import Pubkey
from solders.transaction import Transaction
from sqlalchemy.ext.asyncio import AsyncConnection

from openvpp import errors
from openvpp.chain import spl
from openvpp.chain.base import Chain
from openvpp.chain.keyring import Keyring
from openvpp.chain.outbox import Handler, Outbox, OutboxState, Outcome
from openvpp.kernel import clock
from openvpp.kernel.clock import Clock
from openvpp.kernel.tenancy import Viewer, cross_tenant
from openvpp.settlement import events
from openvpp.settlement.tokens.usecase import UseCaseTokens
from openvpp.store import redemption_repo
from openvpp.store.database import Database
from openvpp.v1 import settlement_pb2 as pb


class RedemptionState(enum.IntEnum):
    PREPARED = 1
    SUBMITTED = 2
    COMPLETED = 3
    FAILED = 4
    EXPIRED = 5


@dataclass(frozen=True, slots=True)
class Redemption:
    redemption_id: str
    mint: str
    holder: str
    amount: int
    payout: int
    state: RedemptionState
    signature: str
    error: str

    @classmethod
    def from_row(cls, row: Any) -> Redemption:
        return cls(
            row.redemption_id,
            row.mint,
            row.holder,
            row.amount,
            row.payout,
            RedemptionState(row.state),
            row.signature or "",
            row.error,
        )

    def message(self) -> pb.Redemption:
        return pb.Redemption(
            redemption_id=self.redemption_id,
            mint=self.mint,
            holder=self.holder,
            amount_base_units=self.amount,
            payout_base_units=self.payout,
            state=pb.RedemptionState.ValueType(self.state.value),
            signature=self.signature,
            error=self.error,
        )


@dataclass(frozen=True, slots=True)
class Prepared:
    redemption_id: str
    transaction: bytes
    payout: int
    last_valid_block_height: int


_FINAL = {
    OutboxState.CONFIRMED: RedemptionState.COMPLETED,
    OutboxState.FAILED: RedemptionState.FAILED,
    OutboxState.EXPIRED: RedemptionState.EXPIRED,
}


async def _announce(conn: AsyncConnection, redemption_id: str, at_us: int) -> None:
    """A redemption event for the token's utility, in the transaction that changed it."""
    row = await redemption_repo.with_token(conn, redemption_id)
    event = pb.SettlementEvent(
        program_id=row.program_id, redemption=pb.RedemptionEvent(redemption=Redemption.from_row(row).message())
    )
    await events.append(conn, [(row.utility_namespace, event)], at_us=at_us)


class BillHook(Protocol):
    """Billing's side of a redemption that pays a bill (openvpp.billing.tokenpay)."""

    async def target(self, viewer: Viewer, mint: str, target: pb.BillTarget) -> tuple[int, int, Pubkey]: ...

    async def claim(self, conn: AsyncConnection, bill_id: int, now_us: int) -> None: ...

    async def settle(
        self, conn: AsyncConnection, bill_id: int, completed: bool, signature: str | None, error: str, now_us: int
    ) -> None: ...


class Redemptions:
    def __init__(
        self,
        db: Database,
        chain: Chain,
        outbox: Outbox,
        keyring: Keyring,
        tokens: UseCaseTokens,
        clock_us: Clock = clock.system,
    ) -> None:
        self.clock_us = clock_us
        self.db = db
        self.chain = chain
        self.outbox = outbox
        self.keyring = keyring
        self.tokens = tokens
        outbox.register("redemption", Handler(self._record))
        # Billing's hook for redemptions that pay a bill (set by the composition root).
        self.bills: BillHook | None = None

    async def prepare(
        self, viewer: Viewer, mint: str, holder: str, amount: int, bill: pb.BillTarget | None = None
    ) -> Prepared:
        """A redemption relayed by the token's utility, the vendor of the
        holding device, or the operator; the holder's signature on the
        returned transaction is what finally authorises it. With `bill`, the
        payout pays that bill into the utility's treasury instead."""
        if bill is not None and amount != 0:
            raise errors.InvalidArgument.field(
                "amount_base_units", "must be 0 with pay_bill: the tokens burned are the fewest worth the amount due"
            )
        if bill is None and amount <= 0:
            raise errors.InvalidArgument.field("amount_base_units", "must be positive")
        try:
            wallet = Pubkey.from_string(holder)
        except ValueError:
            raise errors.InvalidArgument.field("holder", "must be a base58 Solana address", "INVALID_ADDRESS") from None
        reserve = await self.tokens.reserve(mint)
        bill_id, recipient = None, wallet
        if bill is not None:
            if self.bills is None:
                raise errors.FailedPrecondition("billing is not running here", "TOKENS_NOT_ACCEPTED")
            bill_id, payout, recipient = await self.bills.target(viewer, mint, bill)
            amount = -(-payout * reserve.scale // reserve.redemption_value)
        else:
            if not await self._relays(viewer, mint, holder):
                raise cross_tenant("relay redemptions of its own tokens or for its own devices")
            payout = amount * reserve.redemption_value // reserve.scale
        if payout == 0:
            raise errors.InvalidArgument.field(
                "amount_base_units", "redeems for less than one stablecoin base unit", "BELOW_MINIMUM"
            )
        mint_key, program = Pubkey.from_string(mint), spl.TOKEN_2022_PROGRAM_ID
        source = spl.ata(wallet, mint_key, program)
        (account,) = await self.chain.accounts([source])
        held = 0 if account is None else spl.token_amount(bytes(account.data))
        if held < amount:
            raise errors.FailedPrecondition(
                f"{holder} holds {held} base units, less than {amount}", "INSUFFICIENT_FUNDS"
            )
        if reserve.balance < payout:
            raise errors.FailedPrecondition(f"reserve holds {reserve.balance}, less than {payout}", "RESERVE_SHORT")
        coin, payer, authority = self.tokens.stablecoin, self.keyring.fee_payer, self.keyring.reserve_authority
        destination = spl.ata(recipient, coin.mint, coin.program)
        instructions = [
            spl.create_ata(payer.pubkey(), recipient, coin.mint, coin.program),
            spl.burn(program, source, mint_key, wallet, amount, reserve.decimals),
            spl.transfer(
                coin.program,
                Pubkey.from_string(reserve.reserve_account),
                coin.mint,
                destination,
                authority.pubkey(),
                payout,
                coin.decimals,
            ),
        ]
        recent = await self.chain.latest_blockhash()
        message = Message.new_with_blockhash(instructions, payer.pubkey(), recent.blockhash)
        tx = Transaction.new_unsigned(message)
        tx.partial_sign([payer, authority], recent.blockhash)
        redemption_id = str(uuid.uuid4())
        now = self.clock_us()
        async with self.db.write() as conn:
            await redemption_repo.insert_redemption(
                conn,
                {
                    "redemption_id": redemption_id,
                    "mint": mint,
                    "holder": holder,
                    "amount": amount,
                    "payout": payout,
                    "message": bytes(message),
                    "last_valid_block_height": recent.last_valid_block_height,
                    "state": RedemptionState.PREPARED,
                    "signature": None,
                    "error": "",
                    "created_at_us": now,
                    "updated_at_us": now,
                    "bill_id": bill_id,
                },
            )
            await _announce(conn, redemption_id, self.clock_us())
        return Prepared(redemption_id, bytes(tx), payout, recent.last_valid_block_height)

    async def _relays(self, viewer: Viewer, mint: str, holder: str) -> bool:
        async with self.db.read() as conn:
            return await redemption_repo.may_relay(conn, viewer, mint, holder)

    async def _row(self, viewer: Viewer, redemption_id: str) -> Any:
        """A redemption the viewer may see; for anyone else it does not exist."""
        async with self.db.read() as conn:
            row = await redemption_repo.visible(conn, viewer, redemption_id)
        if row is None:
            raise errors.NotFound(f"no redemption {redemption_id}", "REDEMPTION_NOT_FOUND")
        return row

    async def get(self, viewer: Viewer, redemption_id: str) -> Redemption:
        return Redemption.from_row(await self._row(viewer, redemption_id))

    async def submit(self, viewer: Viewer, redemption_id: str, raw: bytes) -> Redemption:
        row = await self._row(viewer, redemption_id)
        if row.state != RedemptionState.PREPARED:
            if row.signature is None:
                raise errors.FailedPrecondition(
                    f"redemption {redemption_id} is {RedemptionState(row.state).name.lower()}", "NOT_PREPARED"
                )
            # A retried submit of the same redemption: report, never send twice.
            return await self._wait(row.signature, redemption_id)
        try:
            tx = Transaction.from_bytes(raw)
        except ValueError:
            raise errors.InvalidArgument.field("transaction", "is not a wire transaction", "MALFORMED") from None
        if bytes(tx.message) != row.message:
            raise errors.InvalidArgument.field(
                "transaction", "is not the prepared transaction (its message differs)", "MESSAGE_CHANGED"
            )
        if not all(tx.verify_with_results()):
            raise errors.InvalidArgument.field(
                "transaction", "is missing the holder's signature or carries an invalid one", "BAD_SIGNATURE"
            )
        signature = str(tx.signatures[0])
        async with self.db.write() as conn:
            won = await redemption_repo.mark_submitted(
                conn, redemption_id, RedemptionState.PREPARED, RedemptionState.SUBMITTED, signature, self.clock_us()
            )
            if won:
                if row.bill_id is not None and self.bills is not None:
                    await self.bills.claim(conn, row.bill_id, self.clock_us())
                await self.outbox.enqueue(conn, "redemption", redemption_id, raw, row.last_valid_block_height)
                await _announce(conn, redemption_id, self.clock_us())
        return await self._wait(signature, redemption_id)

    async def _wait(self, _signature: str, redemption_id: str) -> Redemption:
        outbox_id = await self.outbox.find("redemption", redemption_id)
        if outbox_id is not None:
            await self.outbox.drive(outbox_id)
        return await self.get(Viewer(True), redemption_id)

    async def _record(self, conn: AsyncConnection, redemption_id: str, outcome: Outcome) -> None:
        await redemption_repo.set_outcome(conn, redemption_id, _FINAL[outcome.state], outcome.error, self.clock_us())
        row = await redemption_repo.by_id(conn, redemption_id)
        if row.bill_id is not None and self.bills is not None:
            completed = _FINAL[outcome.state] == RedemptionState.COMPLETED
            await self.bills.settle(conn, row.bill_id, completed, outcome.signature, outcome.error, self.clock_us())
        await _announce(conn, redemption_id, self.clock_us())
