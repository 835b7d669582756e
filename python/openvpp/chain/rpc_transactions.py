"""Landed transactions in getTransaction's shapes: `json`, `jsonParsed`,
`base58` and `base64`, with the status metadata a served chain recorded.

The instruction parsers cover what OpenVPP and wallets send (System
transfers and account creation, SPL Token and Token-2022 transfers, mints,
burns, approvals and initialisation, associated token accounts, memos);
anything else is shown partially decoded, as the RPC does for programs it
does not know.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import base58
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction

from openvpp.chain import history
from openvpp.chain.base import TransactionRecord
from openvpp.chain.rpc_errors import INVALID_PARAMS, UNSUPPORTED_TRANSACTION_VERSION, RpcError
from openvpp.chain.spl import MEMO_PROGRAM_ID, TOKEN_2022_PROGRAM_ID, TOKEN_PROGRAM_ID

TRANSACTION_ENCODINGS = ("json", "jsonParsed", "base58", "base64")
SYSTEM_PROGRAM_ID = Pubkey.from_string("11111111111111111111111111111111")
ATA_PROGRAM_ID = Pubkey.from_string("ATokenGPvbdGVxr1b2hvZbsiqW5xWH25efTNsLJA8knL")


def version_of(tx: VersionedTransaction, config: dict[str, Any]) -> Any:
    """`"legacy"` or 0; refuses a v0 transaction to a client that did not say it reads them."""
    v0 = isinstance(tx.message, MessageV0)
    supported = config.get("maxSupportedTransactionVersion")
    if v0 and supported is None:
        raise RpcError(
            UNSUPPORTED_TRANSACTION_VERSION,
            "Transaction version (0) is not supported by the requesting client. Please try the request again "
            'with the following configuration parameter: "maxSupportedTransactionVersion": 0',
        )
    if supported is not None and supported != 0:
        raise RpcError(INVALID_PARAMS, f"Invalid params: unsupported maxSupportedTransactionVersion {supported!r}")
    return 0 if v0 else "legacy"


def _flags(tx: VersionedTransaction, loaded: tuple[list[Pubkey], list[Pubkey]]) -> list[tuple[Pubkey, bool, bool, str]]:
    """(key, signer, writable, source) for every account, in index order."""
    message = tx.message
    keys = list(message.account_keys)
    header = message.header
    signed = header.num_required_signatures
    out = [
        (
            key,
            i < signed,
            i < signed - header.num_readonly_signed_accounts
            or signed <= i < len(keys) - header.num_readonly_unsigned_accounts,
            "transaction",
        )
        for i, key in enumerate(keys)
    ]
    out.extend((k, False, True, "lookupTable") for k in loaded[0])
    out.extend((k, False, False, "lookupTable") for k in loaded[1])
    return out


def _u64(data: bytes, at: int) -> int:
    return int.from_bytes(data[at : at + 8], "little")


def _token(kind: int, data: bytes, names: list[str]) -> tuple[str, dict[str, Any]] | None:
    """SPL Token instruction `kind` (its first byte) over accounts `names`."""

    def acc(*roles: str) -> dict[str, Any]:
        return dict(zip(roles, names, strict=False))

    def checked(amount_at: int) -> dict[str, Any]:
        return history.ui_token_amount(_u64(data, amount_at), data[amount_at + 8])

    match kind:
        case 3:
            return "transfer", {**acc("source", "destination", "authority"), "amount": str(_u64(data, 1))}
        case 12:
            return "transferChecked", {**acc("source", "mint", "destination", "authority"), "tokenAmount": checked(1)}
        case 7:
            return "mintTo", {**acc("mint", "account", "mintAuthority"), "amount": str(_u64(data, 1))}
        case 14:
            return "mintToChecked", {**acc("mint", "account", "mintAuthority"), "tokenAmount": checked(1)}
        case 8:
            return "burn", {**acc("account", "mint", "authority"), "amount": str(_u64(data, 1))}
        case 15:
            return "burnChecked", {**acc("account", "mint", "authority"), "tokenAmount": checked(1)}
        case 4:
            return "approve", {**acc("source", "delegate", "owner"), "amount": str(_u64(data, 1))}
        case 13:
            return "approveChecked", {**acc("source", "mint", "delegate", "owner"), "tokenAmount": checked(1)}
        case 5:
            return "revoke", acc("source", "owner")
        case 9:
            return "closeAccount", acc("account", "destination", "owner")
        case 18:
            return "initializeAccount3", {**acc("account", "mint"), "owner": str(Pubkey(data[1:33]))}
        case 20:
            info: dict[str, Any] = {**acc("mint"), "decimals": data[1], "mintAuthority": str(Pubkey(data[2:34]))}
            if len(data) >= 67 and data[34]:
                info["freezeAuthority"] = str(Pubkey(data[35:67]))
            return "initializeMint2", info
    return None


def _parse(program: Pubkey, data: bytes, names: list[str]) -> dict[str, Any] | None:
    """`{"program", "parsed"}` for a known instruction, else None."""
    if program == SYSTEM_PROGRAM_ID and len(data) >= 4:
        kind = int.from_bytes(data[:4], "little")
        if kind == 2 and len(names) >= 2:
            info = {"source": names[0], "destination": names[1], "lamports": _u64(data, 4)}
            return {"program": "system", "parsed": {"type": "transfer", "info": info}}
        if kind == 0 and len(names) >= 2 and len(data) >= 52:
            info = {
                "source": names[0],
                "newAccount": names[1],
                "lamports": _u64(data, 4),
                "space": _u64(data, 12),
                "owner": str(Pubkey(data[20:52])),
            }
            return {"program": "system", "parsed": {"type": "createAccount", "info": info}}
    elif program in (TOKEN_PROGRAM_ID, TOKEN_2022_PROGRAM_ID) and data:
        try:
            found = _token(data[0], data, names)
        except (IndexError, ValueError):
            found = None
        if found is not None:
            label = "spl-token-2022" if program == TOKEN_2022_PROGRAM_ID else "spl-token"
            return {"program": label, "parsed": {"type": found[0], "info": found[1]}}
    elif program == ATA_PROGRAM_ID and len(data) <= 1 and len(names) >= 6:
        roles = ("source", "account", "wallet", "mint", "systemProgram", "tokenProgram")
        created = "createIdempotent" if data == b"\x01" else "create"
        return {
            "program": "spl-associated-token-account",
            "parsed": {"type": created, "info": dict(zip(roles, names, strict=False))},
        }
    elif program == MEMO_PROGRAM_ID:
        try:
            return {"program": "spl-memo", "parsed": data.decode()}
        except UnicodeDecodeError:
            return None
    return None


def _instruction(
    keys: list[Pubkey],
    program_index: int,
    accounts: list[int],
    data: bytes,
    height: int | None,
    parsed: bool,
) -> dict[str, Any]:
    if not parsed:
        return {
            "programIdIndex": program_index,
            "accounts": accounts,
            "data": base58.b58encode(data).decode(),
            "stackHeight": height,
        }
    program = keys[program_index]
    names = [str(keys[a]) for a in accounts]
    known = _parse(program, data, names)
    if known is not None:
        return {**known, "programId": str(program), "stackHeight": height}
    return {
        "programId": str(program),
        "accounts": names,
        "data": base58.b58encode(data).decode(),
        "stackHeight": height,
    }


def _message(tx: VersionedTransaction, loaded: tuple[list[Pubkey], list[Pubkey]], parsed: bool) -> dict[str, Any]:
    message = tx.message
    flags = _flags(tx, loaded)
    keys = [k for k, *_ in flags]
    instructions = [
        _instruction(keys, ix.program_id_index, list(ix.accounts), bytes(ix.data), None, parsed)
        for ix in message.instructions
    ]
    out: dict[str, Any] = {"recentBlockhash": str(message.recent_blockhash), "instructions": instructions}
    if parsed:
        out["accountKeys"] = [
            {"pubkey": str(k), "signer": signer, "writable": writable, "source": source}
            for k, signer, writable, source in flags
        ]
    else:
        header = message.header
        out["accountKeys"] = [str(k) for k in message.account_keys]
        out["header"] = {
            "numRequiredSignatures": header.num_required_signatures,
            "numReadonlySignedAccounts": header.num_readonly_signed_accounts,
            "numReadonlyUnsignedAccounts": header.num_readonly_unsigned_accounts,
        }
    if isinstance(message, MessageV0):
        out["addressTableLookups"] = [
            {
                "accountKey": str(lookup.account_key),
                "writableIndexes": list(lookup.writable_indexes),
                "readonlyIndexes": list(lookup.readonly_indexes),
            }
            for lookup in message.address_table_lookups
        ]
    return out


def _meta(record: TransactionRecord, keys: list[Pubkey], parsed: bool) -> dict[str, Any]:
    err = None if record.error is None else json.loads(record.error)
    details = record.details or {}
    inner = [
        {
            "index": group["index"],
            "instructions": [
                _instruction(
                    keys,
                    ix["programIdIndex"],
                    ix["accounts"],
                    base58.b58decode(ix["data"]),
                    ix["stackHeight"],
                    parsed,
                )
                for ix in group["instructions"]
            ],
        }
        for group in details.get("innerInstructions", [])
    ]
    meta: dict[str, Any] = {
        "err": err,
        "status": {"Ok": None} if err is None else {"Err": err},
        "fee": record.fee,
        "preBalances": details.get("preBalances", []),
        "postBalances": details.get("postBalances", []),
        "innerInstructions": inner,
        "logMessages": record.logs,
        "preTokenBalances": details.get("preTokenBalances", []),
        "postTokenBalances": details.get("postTokenBalances", []),
        "rewards": [],
        "computeUnitsConsumed": record.compute_units,
    }
    if not parsed:
        meta["loadedAddresses"] = details.get("loadedAddresses", {"writable": [], "readonly": []})
    if details.get("returnData") is not None:
        meta["returnData"] = details["returnData"]
    return meta


def encode_transaction(record: TransactionRecord, config: dict[str, Any]) -> dict[str, Any]:
    """getTransaction's result for a landed transaction."""
    encoding = config.get("encoding") or "json"
    if encoding not in TRANSACTION_ENCODINGS:
        raise RpcError(
            INVALID_PARAMS, f"Invalid params: unknown variant `{encoding}`, expected one of {TRANSACTION_ENCODINGS}"
        )
    tx = VersionedTransaction.from_bytes(record.raw)
    version = version_of(tx, config)
    details = record.details or {}
    recorded = details.get("loadedAddresses", {"writable": [], "readonly": []})
    loaded = (
        [Pubkey.from_string(k) for k in recorded["writable"]],
        [Pubkey.from_string(k) for k in recorded["readonly"]],
    )
    keys = [k for k, *_ in _flags(tx, loaded)]
    parsed = encoding == "jsonParsed"
    transaction: Any
    if encoding == "base64":
        transaction = [base64.b64encode(record.raw).decode(), "base64"]
    elif encoding == "base58":
        transaction = [base58.b58encode(record.raw).decode(), "base58"]
    else:
        transaction = {"signatures": [str(s) for s in tx.signatures], "message": _message(tx, loaded, parsed)}
    out: dict[str, Any] = {
        "slot": record.slot,
        "blockTime": record.block_time,
        "meta": _meta(record, keys, parsed),
        "transaction": transaction,
    }
    if config.get("maxSupportedTransactionVersion") is not None:
        out["version"] = version
    return out


__all__ = ["TRANSACTION_ENCODINGS", "encode_transaction", "version_of"]
