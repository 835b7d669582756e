"""The JSON-RPC methods `openvpp chain serve` answers, over one embedded chain.

Every landed transaction is final at once on the embedded chain, so each
commitment level answers the same; `commitment` is still checked, and
`minContextSlot` refuses a read the chain has not reached, as a node does.
"""

from __future__ import annotations

import base64
import json
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import base58
from solders.account import Account
from solders.hash import Hash
from solders.message import Message, MessageV0
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import VersionedTransaction
from solders.transaction_metadata import FailedTransactionMetadata

from openvpp import native
from openvpp.chain import history, rpc_accounts, rpc_transactions
from openvpp.chain.embedded import Committed, EmbeddedChain, error_json
from openvpp.chain.rpc_errors import (
    INVALID_PARAMS,
    MIN_CONTEXT_SLOT_NOT_REACHED,
    PREFLIGHT_FAILURE,
    SIGNATURE_VERIFICATION_FAILURE,
    RpcError,
)
from openvpp.chain.spl import MEMO_PROGRAM_ID, TOKEN_2022_PROGRAM_ID, TOKEN_PROGRAM_ID

COMMITMENTS = ("processed", "confirmed", "finalized", "recent", "single", "singleGossip", "root", "max")
# Airdrops are a development convenience; cap them like a test faucet.
MAX_AIRDROP_LAMPORTS = 1_000 * 1_000_000_000
MAX_SIGNATURES_FOR_ADDRESS = 1000
MAX_SIGNATURE_STATUSES = 256
MAX_MULTIPLE_ACCOUNTS = 100
LARGEST_ACCOUNTS = 20
SLOTS_PER_EPOCH = 432_000
# The slots getRecentPrioritizationFees looks back over, as a node's cache.
PRIORITIZATION_SLOTS = 150
# Semver with build metadata: tools that parse the version read 2.1.0, and
# OpenVPP recognises its own development chain by the metadata.
VERSION = {"solana-core": "2.1.0+openvpp-embedded", "feature-set": 0}
Handler = Callable[[list[Any]], Awaitable[Any]]


def config_at(params: list[Any], index: int) -> dict[str, Any]:
    config = params[index] if len(params) > index else None
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise RpcError(INVALID_PARAMS, f"Invalid params: expected a configuration object at position {index}")
    commitment = config.get("commitment")
    if commitment is not None and commitment not in COMMITMENTS:
        raise RpcError(INVALID_PARAMS, f"Invalid params: unknown commitment {commitment!r}")
    return config


def pubkey(value: Any) -> Pubkey:
    try:
        return Pubkey.from_string(value)
    except (TypeError, ValueError) as exc:
        raise RpcError(INVALID_PARAMS, f"Invalid param: {value!r} is not a public key") from exc


def decode_transaction(encoded: Any, config: dict[str, Any]) -> tuple[VersionedTransaction, bytes]:
    encoding = config.get("encoding") or "base58"
    if encoding not in ("base58", "base64"):
        raise RpcError(INVALID_PARAMS, f"Invalid params: unsupported encoding {encoding!r}; use base58 or base64")
    try:
        raw = base64.b64decode(encoded, validate=True) if encoding == "base64" else base58.b58decode(encoded)
        return VersionedTransaction.from_bytes(raw), raw
    except (TypeError, ValueError) as exc:
        raise RpcError(INVALID_PARAMS, f"invalid transaction: failed to deserialize: {exc}") from exc


def matches_filters(account: Account, filters: list[Any]) -> bool:
    data = bytes(account.data)
    for item in filters:
        if not isinstance(item, dict):
            raise RpcError(INVALID_PARAMS, "Invalid params: a filter must be an object")
        if "dataSize" in item:
            if len(data) != int(item["dataSize"]):
                return False
        elif "memcmp" in item:
            memcmp = item["memcmp"]
            offset = int(memcmp["offset"])
            raw = memcmp["bytes"]
            want = base64.b64decode(raw) if memcmp.get("encoding") == "base64" else base58.b58decode(raw)
            if data[offset : offset + len(want)] != want:
                return False
        else:
            raise RpcError(INVALID_PARAMS, f"Invalid params: unsupported filter {sorted(item)}")
    return True


class ChainRpc:
    """Method handlers; `methods` maps each JSON-RPC name to its handler."""

    def __init__(self, chain: EmbeddedChain) -> None:
        self.chain = chain
        self._fees: deque[tuple[int, int, frozenset[Pubkey]]] = deque()
        chain.observers.append(self._note_fees)
        self.methods: dict[str, Handler] = {
            "getAccountInfo": self.get_account_info,
            "getBalance": self.get_balance,
            "getBlockHeight": self.get_block_height,
            "getEpochInfo": self.get_epoch_info,
            "getEpochSchedule": self.get_epoch_schedule,
            "getFeeForMessage": self.get_fee_for_message,
            "getGenesisHash": self.get_genesis_hash,
            "getHealth": self.get_health,
            "getLatestBlockhash": self.get_latest_blockhash,
            "getMinimumBalanceForRentExemption": self.get_minimum_balance,
            "getMultipleAccounts": self.get_multiple_accounts,
            "getProgramAccounts": self.get_program_accounts,
            "getRecentPrioritizationFees": self.get_recent_prioritization_fees,
            "getSignatureStatuses": self.get_signature_statuses,
            "getSignaturesForAddress": self.get_signatures_for_address,
            "getSlot": self.get_slot,
            "getTokenAccountBalance": self.get_token_account_balance,
            "getTokenAccountsByOwner": self.get_token_accounts_by_owner,
            "getTokenLargestAccounts": self.get_token_largest_accounts,
            "getTokenSupply": self.get_token_supply,
            "getTransaction": self.get_transaction,
            "getTransactionCount": self.get_transaction_count,
            "getVersion": self.get_version,
            "isBlockhashValid": self.is_blockhash_valid,
            "requestAirdrop": self.request_airdrop,
            "sendTransaction": self.send_transaction,
            "simulateTransaction": self.simulate_transaction,
        }

    # -- helpers -----------------------------------------------------------------
    async def _slot(self, config: dict[str, Any]) -> int:
        slot = await self.chain.slot()
        wanted = config.get("minContextSlot")
        if wanted is not None and int(wanted) > slot:
            raise RpcError(
                MIN_CONTEXT_SLOT_NOT_REACHED, "Minimum context slot has not been reached", {"contextSlot": slot}
            )
        return slot

    async def _with_context(self, config: dict[str, Any], value: Any) -> dict[str, Any]:
        return {"context": {"apiVersion": VERSION["solana-core"], "slot": await self._slot(config)}, "value": value}

    def decimals_of(self, mint: Pubkey) -> int:
        return history.mint_decimals(self.chain.svm, mint)

    def encode(self, account: Account | None, config: dict[str, Any], default: str = "binary") -> Any:
        return None if account is None else rpc_accounts.encode_account(account, config, self.decimals_of, default)

    def _token_accounts(self, program: Pubkey | None) -> list[tuple[Pubkey, Account]]:
        programs = (TOKEN_PROGRAM_ID, TOKEN_2022_PROGRAM_ID) if program is None else (program,)
        return [
            (address, account)
            for p in programs
            for address, account in self.chain.svm.get_program_accounts(p)
            if history.is_token_account(account)
        ]

    def _note_fees(self, committed: Committed) -> None:
        for landed in committed.transactions:
            self._fees.append((committed.slot, landed.unit_price, frozenset(landed.writable)))
        while self._fees and self._fees[0][0] < committed.slot - PRIORITIZATION_SLOTS:
            self._fees.popleft()

    # -- accounts ----------------------------------------------------------------
    async def get_account_info(self, params: list[Any]) -> Any:
        config = config_at(params, 1)
        (account,) = await self.chain.accounts([pubkey(params[0])])
        return await self._with_context(config, self.encode(account, config))

    async def get_multiple_accounts(self, params: list[Any]) -> Any:
        config = config_at(params, 1)
        if not isinstance(params[0], list) or len(params[0]) > MAX_MULTIPLE_ACCOUNTS:
            raise RpcError(INVALID_PARAMS, f"Invalid params: up to {MAX_MULTIPLE_ACCOUNTS} public keys")
        accounts = await self.chain.accounts([pubkey(k) for k in params[0]])
        return await self._with_context(config, [self.encode(a, config, "base64") for a in accounts])

    async def get_balance(self, params: list[Any]) -> Any:
        config = config_at(params, 1)
        (account,) = await self.chain.accounts([pubkey(params[0])])
        return await self._with_context(config, 0 if account is None else account.lamports)

    async def get_program_accounts(self, params: list[Any]) -> Any:
        config = config_at(params, 1)
        filters = config.get("filters") or []
        found = [
            {"pubkey": str(address), "account": self.encode(account, config)}
            for address, account in self.chain.svm.get_program_accounts(pubkey(params[0]))
            if matches_filters(account, filters)
        ]
        return await self._with_context(config, found) if config.get("withContext") else found

    async def get_token_account_balance(self, params: list[Any]) -> Any:
        config = config_at(params, 1)
        (account,) = await self.chain.accounts([pubkey(params[0])])
        if account is None or not history.is_token_account(account):
            raise RpcError(INVALID_PARAMS, "Invalid param: could not find account")
        data = bytes(account.data)
        amount = history.ui_token_amount(int.from_bytes(data[64:72], "little"), self.decimals_of(Pubkey(data[:32])))
        return await self._with_context(config, amount)

    async def get_token_supply(self, params: list[Any]) -> Any:
        config = config_at(params, 1)
        (mint,) = await self.chain.accounts([pubkey(params[0])])
        if mint is None or not history.is_mint(mint):
            raise RpcError(INVALID_PARAMS, "Invalid param: not a Token mint")
        data = bytes(mint.data)
        return await self._with_context(
            config, history.ui_token_amount(int.from_bytes(data[36:44], "little"), data[44])
        )

    async def get_token_accounts_by_owner(self, params: list[Any]) -> Any:
        owner = pubkey(params[0])
        which = params[1] if len(params) > 1 else None
        config = config_at(params, 2)
        if not isinstance(which, dict) or len(which) != 1 or not ({"mint", "programId"} & set(which)):
            raise RpcError(INVALID_PARAMS, "Invalid params: the second parameter must be {mint} or {programId}")
        mint: Pubkey | None = None
        if "mint" in which:
            mint = pubkey(which["mint"])
            (mint_account,) = await self.chain.accounts([mint])
            if mint_account is None or not history.is_mint(mint_account):
                raise RpcError(INVALID_PARAMS, "Invalid param: could not find mint")
            program = mint_account.owner
        else:
            program = pubkey(which["programId"])
            if program not in (TOKEN_PROGRAM_ID, TOKEN_2022_PROGRAM_ID):
                raise RpcError(INVALID_PARAMS, "Invalid param: unrecognized Token program id")
        found = [
            {"pubkey": str(address), "account": self.encode(account, config)}
            for address, account in self._token_accounts(program)
            if bytes(account.data)[32:64] == bytes(owner) and (mint is None or bytes(account.data)[:32] == bytes(mint))
        ]
        return await self._with_context(config, found)

    async def get_token_largest_accounts(self, params: list[Any]) -> Any:
        config = config_at(params, 1)
        mint = pubkey(params[0])
        (mint_account,) = await self.chain.accounts([mint])
        if mint_account is None or not history.is_mint(mint_account):
            raise RpcError(INVALID_PARAMS, "Invalid param: mint could not be unpacked")
        decimals = bytes(mint_account.data)[44]
        holders = [
            (int.from_bytes(bytes(account.data)[64:72], "little"), str(address))
            for address, account in self._token_accounts(mint_account.owner)
            if bytes(account.data)[:32] == bytes(mint)
        ]
        holders.sort(key=lambda h: (-h[0], h[1]))
        value = [{"address": a, **history.ui_token_amount(n, decimals)} for n, a in holders[:LARGEST_ACCOUNTS]]
        return await self._with_context(config, value)

    async def get_minimum_balance(self, params: list[Any]) -> Any:
        config_at(params, 1)
        return await self.chain.minimum_balance(int(params[0]))

    # -- blocks and cluster ------------------------------------------------------
    async def get_latest_blockhash(self, params: list[Any]) -> Any:
        config = config_at(params, 0)
        recent = await self.chain.latest_blockhash()
        value = {"blockhash": str(recent.blockhash), "lastValidBlockHeight": recent.last_valid_block_height}
        return await self._with_context(config, value)

    async def is_blockhash_valid(self, params: list[Any]) -> Any:
        config = config_at(params, 1)
        try:
            blockhash = Hash.from_string(params[0])
        except (TypeError, ValueError) as exc:
            raise RpcError(INVALID_PARAMS, f"Invalid param: {params[0]!r} is not a blockhash") from exc
        return await self._with_context(config, self.chain.is_blockhash_valid(blockhash))

    async def get_slot(self, params: list[Any]) -> Any:
        return await self._slot(config_at(params, 0))

    async def get_block_height(self, params: list[Any]) -> Any:
        await self._slot(config_at(params, 0))
        return await self.chain.block_height()

    async def get_epoch_info(self, params: list[Any]) -> Any:
        slot = await self._slot(config_at(params, 0))
        return {
            "absoluteSlot": slot,
            "blockHeight": await self.chain.block_height(),
            "epoch": slot // SLOTS_PER_EPOCH,
            "slotIndex": slot % SLOTS_PER_EPOCH,
            "slotsInEpoch": SLOTS_PER_EPOCH,
            "transactionCount": await self.chain.transaction_count(),
        }

    async def get_epoch_schedule(self, _params: list[Any]) -> Any:
        return {
            "slotsPerEpoch": SLOTS_PER_EPOCH,
            "leaderScheduleSlotOffset": SLOTS_PER_EPOCH,
            "warmup": False,
            "firstNormalEpoch": 0,
            "firstNormalSlot": 0,
        }

    async def get_genesis_hash(self, _params: list[Any]) -> Any:
        return str(self.chain.genesis_hash)

    async def get_transaction_count(self, params: list[Any]) -> Any:
        await self._slot(config_at(params, 0))
        return await self.chain.transaction_count()

    async def get_health(self, _params: list[Any]) -> Any:
        return "ok"

    async def get_version(self, _params: list[Any]) -> Any:
        return VERSION

    # -- fees ----------------------------------------------------------------------
    async def get_fee_for_message(self, params: list[Any]) -> Any:
        config = config_at(params, 1)
        try:
            raw = base64.b64decode(params[0], validate=True)
            message: Message | MessageV0 = (
                MessageV0.from_bytes(raw[1:]) if raw[:1] == b"\x80" else Message.from_bytes(raw)
            )
        except (TypeError, ValueError) as exc:
            raise RpcError(INVALID_PARAMS, f"Invalid params: not a base64 message: {exc}") from exc
        if not self.chain.is_blockhash_valid(message.recent_blockhash):
            return await self._with_context(config, None)
        tx = VersionedTransaction.populate(message, [Signature.default()] * message.header.num_required_signatures)
        return await self._with_context(config, history.fee(tx))

    async def get_recent_prioritization_fees(self, params: list[Any]) -> Any:
        keys = frozenset(pubkey(k) for k in (params[0] if params else []) or [])
        by_slot: dict[int, int] = {}
        for slot, price, writable in self._fees:
            if keys <= writable:
                by_slot[slot] = min(price, by_slot.get(slot, price))
        return [{"slot": slot, "prioritizationFee": fee} for slot, fee in sorted(by_slot.items())]

    # -- transactions ------------------------------------------------------------
    async def _preflight(self, tx: VersionedTransaction, raw: bytes) -> None:
        """What a node checks before forwarding: signatures, blockhash, a
        duplicate, then a simulation; any failure refuses the transaction
        before it can land and be charged a fee."""
        if not native.verify_transactions([raw])[0]:
            raise RpcError(SIGNATURE_VERIFICATION_FAILURE, "Transaction signature verification failure")
        if not self.chain.is_blockhash_valid(tx.message.recent_blockhash):
            raise RpcError(
                PREFLIGHT_FAILURE, "Transaction simulation failed: Blockhash not found", _failure("BlockhashNotFound")
            )
        (status,) = await self.chain.signature_statuses([tx.signatures[0]])
        if status is not None:
            raise RpcError(
                PREFLIGHT_FAILURE,
                "Transaction simulation failed: This transaction has already been processed",
                _failure("AlreadyProcessed"),
            )
        outcome = self.chain.svm.simulate_transaction(tx)
        if isinstance(outcome, FailedTransactionMetadata):
            meta, err = outcome.meta(), json.loads(error_json(outcome.err()))
            raise RpcError(
                PREFLIGHT_FAILURE,
                f"Transaction simulation failed: {json.dumps(err)}",
                _failure(err, list(meta.logs()), meta.compute_units_consumed()),
            )

    async def send_transaction(self, params: list[Any]) -> Any:
        config = config_at(params, 1)
        tx, raw = decode_transaction(params[0], config)
        await self._slot(config)
        if not config.get("skipPreflight"):
            await self._preflight(tx, raw)
        (result,) = await self.chain.send([raw])
        if result.error is not None:
            err = json.loads(result.error) if result.error.startswith(("{", '"')) else result.error
            raise RpcError(PREFLIGHT_FAILURE, f"Transaction simulation failed: {result.error}", _failure(err))
        return str(result.signature)

    async def simulate_transaction(self, params: list[Any]) -> Any:
        config = config_at(params, 1)
        tx, raw = decode_transaction(params[0], config)
        replace = bool(config.get("replaceRecentBlockhash"))
        if replace and config.get("sigVerify"):
            raise RpcError(INVALID_PARAMS, "Invalid params: sigVerify may not be used with replaceRecentBlockhash")
        if config.get("sigVerify") and not native.verify_transactions([raw])[0]:
            raise RpcError(SIGNATURE_VERIFICATION_FAILURE, "Transaction signature verification failure")
        accounts_config = config.get("accounts") or {}
        wanted = [pubkey(k) for k in accounts_config.get("addresses", [])]
        value: dict[str, Any]
        if not replace and not self.chain.is_blockhash_valid(tx.message.recent_blockhash):
            value = _failure("BlockhashNotFound")
        else:
            # The VM ignores blockhashes (the chain checks them above), so a
            # replaced blockhash changes nothing but what is reported.
            outcome = self.chain.svm.simulate_transaction(tx)
            failed = isinstance(outcome, FailedTransactionMetadata)
            meta = outcome.meta()
            post = {} if failed else dict(outcome.post_accounts())  # type: ignore[union-attr]
            current = await self.chain.accounts(wanted)
            shown = [post.get(k, c) for k, c in zip(wanted, current, strict=True)]
            returned = meta.return_data()
            value = _failure(
                json.loads(error_json(outcome.err())) if failed else None,  # type: ignore[union-attr]
                list(meta.logs()),
                meta.compute_units_consumed(),
            )
            value["accounts"] = [self.encode(a, accounts_config, "base64") for a in shown] if wanted else None
            if returned is not None and bytes(returned.data):
                value["returnData"] = {
                    "programId": str(returned.program_id),
                    "data": [base64.b64encode(bytes(returned.data)).decode(), "base64"],
                }
        if replace:
            recent = await self.chain.latest_blockhash()
            value["replacementBlockhash"] = {
                "blockhash": str(recent.blockhash),
                "lastValidBlockHeight": recent.last_valid_block_height,
            }
        return await self._with_context(config, value)

    async def get_signature_statuses(self, params: list[Any]) -> Any:
        config = config_at(params, 1)
        if not isinstance(params[0], list) or len(params[0]) > MAX_SIGNATURE_STATUSES:
            raise RpcError(INVALID_PARAMS, f"Invalid params: up to {MAX_SIGNATURE_STATUSES} signatures")
        try:
            signatures = [Signature.from_string(s) for s in params[0]]
        except (TypeError, ValueError) as exc:
            raise RpcError(INVALID_PARAMS, f"Invalid param: {exc}") from exc
        statuses = await self.chain.signature_statuses(signatures)
        value = [
            None
            if s is None
            else {
                "slot": s.slot,
                "confirmations": None,
                "err": None if s.error is None else json.loads(s.error),
                "status": {"Ok": None} if s.error is None else {"Err": json.loads(s.error)},
                "confirmationStatus": "finalized",
            }
            for s in statuses
        ]
        return await self._with_context(config, value)

    async def get_transaction(self, params: list[Any]) -> Any:
        legacy = params[1] if len(params) > 1 else None
        # The legacy form gives the encoding alone.
        config = {"encoding": legacy} if isinstance(legacy, str) else config_at(params, 1)
        try:
            signature = Signature.from_string(params[0])
        except (TypeError, ValueError) as exc:
            raise RpcError(INVALID_PARAMS, f"Invalid param: {exc}") from exc
        record = await self.chain.transaction(signature)
        if record is None or not record.raw:
            return None
        return rpc_transactions.encode_transaction(record, config)

    async def get_signatures_for_address(self, params: list[Any]) -> Any:
        address = pubkey(params[0])
        config = config_at(params, 1)
        limit = int(config.get("limit") or MAX_SIGNATURES_FOR_ADDRESS)
        if not 1 <= limit <= MAX_SIGNATURES_FOR_ADDRESS:
            raise RpcError(INVALID_PARAMS, f"Invalid limit; max {MAX_SIGNATURES_FOR_ADDRESS}")
        await self._slot(config)
        rows = await self.chain.signatures_for(address, limit, config.get("before"), config.get("until"))
        return [
            {
                "signature": signature,
                "slot": slot,
                "err": None if error is None else json.loads(error),
                "memo": _memos(raw),
                "blockTime": block_time,
                "confirmationStatus": "finalized",
            }
            for signature, slot, error, block_time, raw in rows
        ]

    async def request_airdrop(self, params: list[Any]) -> Any:
        config_at(params, 2)
        lamports = int(params[1])
        if not 0 < lamports <= MAX_AIRDROP_LAMPORTS:
            raise RpcError(INVALID_PARAMS, f"airdrop must be 1..{MAX_AIRDROP_LAMPORTS} lamports")
        return str(await self.chain.airdrop(pubkey(params[0]), lamports))


def _failure(err: Any, logs: list[str] | None = None, units: int = 0) -> dict[str, Any]:
    """A simulation result, also the `data` of a refused sendTransaction."""
    return {
        "err": err,
        "logs": logs or [],
        "accounts": None,
        "unitsConsumed": units,
        "returnData": None,
        "innerInstructions": None,
    }


def _memos(raw: bytes) -> str | None:
    """The RPC's memo field: each memo as `[length] text`, joined by `; `."""
    if not raw:
        return None
    message = VersionedTransaction.from_bytes(raw).message
    keys = message.account_keys
    memos = []
    for ix in message.instructions:
        if ix.program_id_index < len(keys) and keys[ix.program_id_index] == MEMO_PROGRAM_ID:
            text = bytes(ix.data).decode(errors="replace")
            memos.append(f"[{len(text)}] {text}")
    return "; ".join(memos) or None


__all__ = ["COMMITMENTS", "ChainRpc", "config_at", "decode_transaction", "matches_filters", "pubkey"]
