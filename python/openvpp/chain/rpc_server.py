"""`openvpp chain serve`: Solana JSON-RPC over HTTP in front of the embedded
chain, so solana-py, the Solana CLI and other tools can use it.

Answers are built with solders' own RPC response types, so their JSON is
exactly what those clients parse. The dispatch is written here because no
library serves JSON-RPC for a Solana VM; the methods are the ones the RPC
backend and common tools call.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable
from typing import Any

import base58
from aiohttp import web
from solders.account import Account
from solders.account_decoder import UiTokenAmount
from solders.pubkey import Pubkey
from solders.rpc.responses import (
    GetAccountInfoResp,
    GetBalanceResp,
    GetBlockHeightResp,
    GetLatestBlockhashResp,
    GetMinimumBalanceForRentExemptionResp,
    GetMultipleAccountsResp,
    GetSlotResp,
    GetTokenAccountBalanceResp,
    GetTokenSupplyResp,
    GetTransactionResp,
    RequestAirdropResp,
    RpcBlockhash,
    RpcResponseContext,
    RpcSimulateTransactionResult,
    SendTransactionResp,
    SimulateTransactionResp,
)
from solders.signature import Signature
from solders.transaction import VersionedTransaction
from solders.transaction_metadata import FailedTransactionMetadata
from solders.transaction_status import (
    EncodedConfirmedTransactionWithStatusMeta,
    EncodedTransactionWithStatusMeta,
    UiTransactionStatusMeta,
)

from openvpp.chain.embedded import EmbeddedChain

INVALID_PARAMS = -32602
METHOD_NOT_FOUND = -32601
PARSE_ERROR = -32700
PREFLIGHT_FAILURE = -32002
SERVER_ERROR = -32000
# Airdrops are a development convenience; cap them like a test faucet.
MAX_AIRDROP_LAMPORTS = 1_000 * 1_000_000_000


class RpcError(Exception):
    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.data = data


def _decode_tx(encoded: str, config: dict[str, Any]) -> VersionedTransaction:
    try:
        raw = base64.b64decode(encoded) if config.get("encoding") == "base64" else base58.b58decode(encoded)
        return VersionedTransaction.from_bytes(raw)
    except ValueError as exc:
        raise RpcError(INVALID_PARAMS, f"invalid transaction: {exc}") from exc


def _pubkey(value: Any) -> Pubkey:
    try:
        return Pubkey.from_string(value)
    except (TypeError, ValueError) as exc:
        raise RpcError(INVALID_PARAMS, f"Invalid param: {value!r} is not a public key") from exc


def _token_amount(amount: int, decimals: int) -> UiTokenAmount:
    text = str(amount).rjust(decimals + 1, "0")
    ui = f"{text[:-decimals]}.{text[-decimals:]}".rstrip("0").rstrip(".") if decimals else text
    return UiTokenAmount(amount / 10**decimals, decimals, str(amount), ui)


class ChainRpc:
    """Method handlers over one embedded chain."""

    def __init__(self, chain: EmbeddedChain) -> None:
        self.chain = chain
        self.methods: dict[str, Callable[[list[Any]], Awaitable[Any]]] = {
            "getLatestBlockhash": self.get_latest_blockhash,
            "sendTransaction": self.send_transaction,
            "simulateTransaction": self.simulate_transaction,
            "getSignatureStatuses": self.get_signature_statuses,
            "getAccountInfo": self.get_account_info,
            "getMultipleAccounts": self.get_multiple_accounts,
            "getBalance": self.get_balance,
            "getTokenAccountBalance": self.get_token_account_balance,
            "getTokenSupply": self.get_token_supply,
            "requestAirdrop": self.request_airdrop,
            "getMinimumBalanceForRentExemption": self.get_minimum_balance,
            "getSlot": self.get_slot,
            "getBlockHeight": self.get_block_height,
            "getTransaction": self.get_transaction,
            "getHealth": self.get_health,
            "getVersion": self.get_version,
        }

    async def _context(self) -> RpcResponseContext:
        return RpcResponseContext(await self.chain.slot())

    async def get_latest_blockhash(self, _params: list[Any]) -> Any:
        recent = await self.chain.latest_blockhash()
        return GetLatestBlockhashResp(
            RpcBlockhash(recent.blockhash, recent.last_valid_block_height), await self._context()
        )

    async def send_transaction(self, params: list[Any]) -> Any:
        tx = _decode_tx(params[0], params[1] if len(params) > 1 else {})
        (result,) = await self.chain.send([bytes(tx)])
        if result.error is not None:
            err = json.loads(result.error) if result.error.startswith(("{", '"')) else result.error
            data: dict[str, Any] = {"err": err, "logs": [], "accounts": None, "unitsConsumed": 0, "returnData": None}
            raise RpcError(PREFLIGHT_FAILURE, f"Transaction simulation failed: {result.error}", data)
        return SendTransactionResp(result.signature)

    async def simulate_transaction(self, params: list[Any]) -> Any:
        tx = _decode_tx(params[0], params[1] if len(params) > 1 else {})
        outcome = self.chain.svm.simulate_transaction(tx)
        if isinstance(outcome, FailedTransactionMetadata):
            meta, err = outcome.meta(), outcome.err()
        else:
            meta, err = outcome.meta(), None
        result = RpcSimulateTransactionResult(err, list(meta.logs()), None, meta.compute_units_consumed(), None)
        return SimulateTransactionResp(result, await self._context())  # type: ignore[call-arg]

    async def get_signature_statuses(self, params: list[Any]) -> Any:
        signatures = [Signature.from_string(s) for s in params[0]]
        statuses = await self.chain.signature_statuses(signatures)
        # Built as JSON: errors are stored in their JSON-RPC form already.
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
        return {"context": {"slot": await self.chain.slot()}, "value": value}

    async def _accounts(self, keys: list[Any]) -> list[Account | None]:
        return await self.chain.accounts([_pubkey(k) for k in keys])

    async def get_account_info(self, params: list[Any]) -> Any:
        (account,) = await self._accounts([params[0]])
        return GetAccountInfoResp(account, await self._context())

    async def get_multiple_accounts(self, params: list[Any]) -> Any:
        return GetMultipleAccountsResp(await self._accounts(params[0]), await self._context())

    async def get_balance(self, params: list[Any]) -> Any:
        (account,) = await self._accounts([params[0]])
        return GetBalanceResp(0 if account is None else account.lamports, await self._context())

    async def get_token_account_balance(self, params: list[Any]) -> Any:
        (account,) = await self._accounts([params[0]])
        if account is None or len(account.data) < 165:
            raise RpcError(INVALID_PARAMS, "Invalid param: not a Token account")
        data = bytes(account.data)
        (mint,) = await self.chain.accounts([Pubkey(data[:32])])
        decimals = bytes(mint.data)[44] if mint is not None else 0
        amount = int.from_bytes(data[64:72], "little")
        return GetTokenAccountBalanceResp(_token_amount(amount, decimals), await self._context())

    async def get_token_supply(self, params: list[Any]) -> Any:
        (mint,) = await self._accounts([params[0]])
        if mint is None or len(mint.data) < 82:
            raise RpcError(INVALID_PARAMS, "Invalid param: not a Token mint")
        data = bytes(mint.data)
        amount = int.from_bytes(data[36:44], "little")
        return GetTokenSupplyResp(_token_amount(amount, data[44]), await self._context())

    async def request_airdrop(self, params: list[Any]) -> Any:
        lamports = int(params[1])
        if not 0 < lamports <= MAX_AIRDROP_LAMPORTS:
            raise RpcError(INVALID_PARAMS, f"airdrop must be 1..{MAX_AIRDROP_LAMPORTS} lamports")
        signature = await self.chain.airdrop(_pubkey(params[0]), lamports)
        return RequestAirdropResp(signature)

    async def get_minimum_balance(self, params: list[Any]) -> Any:
        return GetMinimumBalanceForRentExemptionResp(await self.chain.minimum_balance(int(params[0])))

    async def get_slot(self, _params: list[Any]) -> Any:
        return GetSlotResp(await self.chain.slot())

    async def get_block_height(self, _params: list[Any]) -> Any:
        return GetBlockHeightResp(await self.chain.block_height())

    async def get_transaction(self, params: list[Any]) -> Any:
        record = await self.chain.transaction(Signature.from_string(params[0]))
        if record is None or not record.raw:
            return GetTransactionResp(None)
        meta = UiTransactionStatusMeta(None, record.fee, [], [], log_messages=record.logs)
        tx = VersionedTransaction.from_bytes(record.raw)
        encoded = EncodedTransactionWithStatusMeta(tx, meta, tx.version())
        body = json.loads(
            GetTransactionResp(EncodedConfirmedTransactionWithStatusMeta(record.slot, encoded, None)).to_json()
        )
        if record.error is not None:
            body["result"]["meta"]["err"] = json.loads(record.error)
            body["result"]["meta"]["status"] = {"Err": json.loads(record.error)}
        return body["result"]

    async def get_health(self, _params: list[Any]) -> Any:
        return "ok"

    async def get_version(self, _params: list[Any]) -> Any:
        return {"solana-core": "openvpp-embedded", "feature-set": 0}


def _envelope(request_id: Any, result: Any) -> dict[str, Any]:
    if hasattr(result, "to_json"):
        body: dict[str, Any] = json.loads(result.to_json())
        body["id"] = request_id
        return body
    return {"jsonrpc": "2.0", "result": result, "id": request_id}


def _error(request_id: Any, code: int, message: str, data: Any = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return {"jsonrpc": "2.0", "error": error, "id": request_id}


async def _dispatch(rpc: ChainRpc, call: Any) -> dict[str, Any]:
    if not isinstance(call, dict) or not isinstance(call.get("method"), str):
        return _error(None, -32600, "Invalid request")
    request_id = call.get("id")
    handler = rpc.methods.get(call["method"])
    if handler is None:
        return _error(request_id, METHOD_NOT_FOUND, "Method not found")
    params = call.get("params") or []
    if not isinstance(params, list):
        return _error(request_id, INVALID_PARAMS, "params must be an array")
    try:
        return _envelope(request_id, await handler(params))
    except RpcError as exc:
        return _error(request_id, exc.code, str(exc), exc.data)
    except (IndexError, KeyError, TypeError, ValueError) as exc:
        return _error(request_id, INVALID_PARAMS, f"Invalid params: {exc}")


def make_app(chain: EmbeddedChain) -> web.Application:
    rpc = ChainRpc(chain)

    async def handle(request: web.Request) -> web.Response:
        try:
            body = await request.json(loads=json.loads)
        except ValueError:
            return web.json_response(_error(None, PARSE_ERROR, "Parse error"))
        if isinstance(body, list):
            return web.json_response([await _dispatch(rpc, call) for call in body])
        return web.json_response(await _dispatch(rpc, body))

    app = web.Application(client_max_size=4 * 1024 * 1024)
    app.router.add_post("/", handle)
    return app


async def serve(chain: EmbeddedChain, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Starts serving; returns the runner (to stop it) and the bound port."""
    runner = web.AppRunner(make_app(chain), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    return runner, int(runner.addresses[0][1])


__all__ = ["ChainRpc", "make_app", "serve"]
