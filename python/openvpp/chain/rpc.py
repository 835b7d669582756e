"""Any Solana JSON-RPC endpoint (devnet, mainnet, a local validator,
`openvpp chain serve`) through solana-py's async client."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from typing import Any

from solana.exceptions import SolanaRpcException
from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Commitment as RpcCommitment
from solana.rpc.core import RPCException
from solana.rpc.models import TxOpts
from solders.account import Account
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import VersionedTransaction
from solders.transaction_status import TransactionConfirmationStatus

from openvpp.chain.base import (
    ChainError,
    Commitment,
    RecentBlockhash,
    SendResult,
    SignatureStatus,
    TransactionRecord,
)

_LEVEL = {
    Commitment.PROCESSED: RpcCommitment("processed"),
    Commitment.CONFIRMED: RpcCommitment("confirmed"),
    Commitment.FINALIZED: RpcCommitment("finalized"),
}


def _level(status: TransactionConfirmationStatus | None) -> Commitment:
    if status == TransactionConfirmationStatus.Finalized:
        return Commitment.FINALIZED
    if status == TransactionConfirmationStatus.Confirmed:
        return Commitment.CONFIRMED
    return Commitment.PROCESSED


_MAX_ACCOUNTS_PER_CALL = 100
_MAX_SIGNATURES_PER_CALL = 256


class RpcChain:
    """A cluster behind JSON-RPC. Reads use `commitment`; sends preflight at it."""

    name = "rpc"

    def __init__(self, url: str, *, commitment: Commitment = Commitment.CONFIRMED, development: bool = False) -> None:
        self.url = url
        self.commitment = commitment
        self.development = development
        self.client = AsyncClient(url, commitment=_LEVEL[commitment])

    async def _call(self, what: str, call: Awaitable[Any]) -> Any:
        try:
            return await call
        except (SolanaRpcException, RPCException, OSError) as exc:
            raise ChainError(f"{what} at {self.url}: {exc}") from exc

    async def serves_embedded_chain(self) -> bool:
        """True when the endpoint is `openvpp chain serve`: a development chain."""
        resp = await self._call("getVersion", self.client.get_version())
        return "openvpp" in str(resp.value.solana_core)

    async def latest_blockhash(self) -> RecentBlockhash:
        resp = await self._call("getLatestBlockhash", self.client.get_latest_blockhash(_LEVEL[self.commitment]))
        return RecentBlockhash(resp.value.blockhash, resp.value.last_valid_block_height)

    async def block_height(self) -> int:
        resp = await self._call("getBlockHeight", self.client.get_block_height(_LEVEL[self.commitment]))
        return int(resp.value)

    async def slot(self) -> int:
        resp = await self._call("getSlot", self.client.get_slot(_LEVEL[self.commitment]))
        return int(resp.value)

    async def send(self, transactions: Sequence[bytes]) -> list[SendResult]:
        opts = TxOpts(skip_preflight=False, preflight_commitment=_LEVEL[self.commitment], max_retries=0)
        results = []
        for raw in transactions:
            try:
                signature = VersionedTransaction.from_bytes(raw).signatures[0]
            except (ValueError, IndexError):
                results.append(SendResult(Signature.default(), "malformed transaction"))
                continue
            try:
                await self.client.send_raw_transaction(raw, opts)
                results.append(SendResult(signature))
            except RPCException as exc:
                text = str(exc)
                already = "AlreadyProcessed" in text or "already been processed" in text
                results.append(SendResult(signature, text, already_processed=already))
            except (SolanaRpcException, OSError) as exc:
                raise ChainError(f"sendTransaction at {self.url}: {exc}") from exc
        return results

    async def signature_statuses(self, signatures: Sequence[Signature]) -> list[SignatureStatus | None]:
        out: list[SignatureStatus | None] = []
        for i in range(0, len(signatures), _MAX_SIGNATURES_PER_CALL):
            chunk = list(signatures[i : i + _MAX_SIGNATURES_PER_CALL])
            resp = await self._call(
                "getSignatureStatuses", self.client.get_signature_statuses(chunk, search_transaction_history=True)
            )
            for status in resp.value:
                if status is None:
                    out.append(None)
                    continue
                level = _level(status.confirmation_status)
                out.append(SignatureStatus(status.slot, None if status.err is None else str(status.err), level))
        return out

    async def accounts(self, addresses: Sequence[Pubkey]) -> list[Account | None]:
        out: list[Account | None] = []
        for i in range(0, len(addresses), _MAX_ACCOUNTS_PER_CALL):
            chunk = list(addresses[i : i + _MAX_ACCOUNTS_PER_CALL])
            resp = await self._call("getMultipleAccounts", self.client.get_multiple_accounts(chunk))
            out.extend(resp.value)
        return out

    async def minimum_balance(self, size: int) -> int:
        resp = await self._call(
            "getMinimumBalanceForRentExemption", self.client.get_minimum_balance_for_rent_exemption(size)
        )
        return int(resp.value)

    async def transaction(self, signature: Signature) -> TransactionRecord | None:
        resp = await self._call(
            "getTransaction",
            self.client.get_transaction(signature, encoding="base64", max_supported_transaction_version=0),
        )
        found = resp.value
        if found is None:
            return None
        meta = found.transaction.meta
        tx = found.transaction.transaction
        return TransactionRecord(
            signature,
            bytes(tx),
            found.slot,
            None if meta is None or meta.err is None else str(meta.err),
            0 if meta is None else meta.fee,
            [] if meta is None or meta.log_messages is None else list(meta.log_messages),
        )

    async def airdrop(self, address: Pubkey, lamports: int) -> Signature:
        if not self.development:
            raise ChainError("airdrops are for development clusters only")
        resp = await self._call("requestAirdrop", self.client.request_airdrop(address, lamports))
        for _ in range(120):
            if (await self.signature_statuses([resp.value]))[0] is not None:
                return resp.value  # type: ignore[no-any-return]
            await asyncio.sleep(0.5)
        raise ChainError(f"airdrop {resp.value} did not land")

    def watch(self, address: Pubkey) -> None:
        """A node indexes every address: nothing to ask for."""

    async def signatures_for_address(self, address: Pubkey, limit: int) -> list[Signature]:
        resp = await self._call("getSignaturesForAddress", self.client.get_signatures_for_address(address, limit=limit))
        return [entry.signature for entry in resp.value]

    async def close(self) -> None:
        await self.client.close()
