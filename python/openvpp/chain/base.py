"""The interface every chain backend implements, and the types it speaks."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from solders.account import Account
from solders.hash import Hash
from solders.pubkey import Pubkey
from solders.signature import Signature

from openvpp import errors

# A blockhash is accepted for this many blocks after the one that made it.
MAX_BLOCKHASH_AGE = 150


class Commitment(enum.IntEnum):
    """How final a landed transaction is, in increasing order."""

    PROCESSED = 1
    CONFIRMED = 2
    FINALIZED = 3


@dataclass(frozen=True, slots=True)
class RecentBlockhash:
    blockhash: Hash
    last_valid_block_height: int


@dataclass(frozen=True, slots=True)
class SendResult:
    """What the chain said when a transaction was handed to it.

    `error` is set only when the chain refused it outright (it did not
    land); a transaction that landed and failed shows up in its status.
    `already_processed` means the very same transaction landed before.
    """

    signature: Signature
    error: str | None = None
    already_processed: bool = False


@dataclass(frozen=True, slots=True)
class SignatureStatus:
    slot: int
    error: str | None
    commitment: Commitment


@dataclass(frozen=True, slots=True)
class TransactionRecord:
    """A landed transaction: its wire bytes, where it landed and how it went.

    `details` holds the JSON-RPC `meta` parts only a served embedded chain
    keeps (balances, inner instructions, loaded addresses)."""

    signature: Signature
    raw: bytes
    slot: int
    error: str | None
    fee: int
    logs: list[str]
    compute_units: int = 0
    block_time: int | None = None
    details: dict[str, Any] | None = None


class ChainError(errors.Unavailable):
    """The chain could not be reached or answered nonsense; retry later."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "CHAIN_UNAVAILABLE")


class Chain(Protocol):
    """A Solana cluster as OpenVPP uses it."""

    name: str
    development: bool

    async def latest_blockhash(self) -> RecentBlockhash: ...

    async def block_height(self) -> int: ...

    async def slot(self) -> int: ...

    async def send(self, transactions: Sequence[bytes]) -> list[SendResult]:
        """Hands signed wire transactions to the chain, in order."""
        ...

    async def signature_statuses(self, signatures: Sequence[Signature]) -> list[SignatureStatus | None]:
        """Statuses with a full history search: None means it never landed."""
        ...

    async def accounts(self, addresses: Sequence[Pubkey]) -> list[Account | None]: ...

    async def minimum_balance(self, size: int) -> int: ...

    async def transaction(self, signature: Signature) -> TransactionRecord | None: ...

    async def airdrop(self, address: Pubkey, lamports: int) -> Signature:
        """Development chains only; a real cluster's faucet is out of scope."""
        ...

    def watch(self, address: Pubkey) -> None:
        """Asks for `signatures_for_address` to find transactions naming
        `address` (a Solana Pay reference); a full node indexes every
        address anyway, the embedded chain only those it is asked to."""
        ...

    async def signatures_for_address(self, address: Pubkey, limit: int) -> list[Signature]:
        """Newest first: transactions that named `address` (watched, on the embedded chain)."""
        ...

    async def close(self) -> None: ...
