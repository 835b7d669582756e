"""Accounts in the JSON-RPC's encodings: `binary` (the legacy bare base58),
`base58`, `base64`, `base64+zstd` and `jsonParsed` for SPL Token and
Token-2022 mints and token accounts, with their extensions.

Written here because no Python library renders accounts the way the RPC
does: solana-py's layouts cover only the base Token structs, and nothing
parses Token-2022's extension records (type-length-value after the base
layout) into the RPC's camelCase `extensions` list.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import base58
import zstandard
from solders.account import Account
from solders.pubkey import Pubkey

from openvpp.chain import history
from openvpp.chain.rpc_errors import INVALID_PARAMS, INVALID_REQUEST, RpcError
from openvpp.chain.spl import TOKEN_2022_PROGRAM_ID

ENCODINGS = ("binary", "base58", "base64", "base64+zstd", "jsonParsed")
MAX_BASE58_BYTES = 128
_STATES = {0: "uninitialized", 1: "initialized", 2: "frozen"}


def check_encoding(config: dict[str, Any], default: str) -> str:
    encoding = config.get("encoding") or default
    if encoding not in ENCODINGS:
        raise RpcError(INVALID_PARAMS, f"Invalid params: unknown variant `{encoding}`, expected one of {ENCODINGS}")
    return str(encoding)


def _slice(data: bytes, config: dict[str, Any]) -> bytes:
    window = config.get("dataSlice")
    if window is None:
        return data
    offset, length = int(window["offset"]), int(window["length"])
    if offset < 0 or length < 0:
        raise RpcError(INVALID_PARAMS, "Invalid params: dataSlice offset and length must be non-negative")
    return data[offset : offset + length]


def encode_data(data: bytes, encoding: str) -> Any:
    if encoding in ("binary", "base58"):
        if len(data) > MAX_BASE58_BYTES:
            raise RpcError(
                INVALID_REQUEST,
                f"Encoded binary (base 58) data should be less than {MAX_BASE58_BYTES} bytes, "
                "please use Base64 encoding.",
            )
        text = base58.b58encode(data).decode()
        return text if encoding == "binary" else [text, "base58"]
    if encoding == "base64+zstd":
        return [base64.b64encode(zstandard.ZstdCompressor().compress(data)).decode(), "base64+zstd"]
    return [base64.b64encode(data).decode(), "base64"]


DecimalsOf = Callable[[Pubkey], int]


def encode_account(
    account: Account, config: dict[str, Any], decimals_of: DecimalsOf, default: str = "binary"
) -> dict[str, Any]:
    """`decimals_of` reads a mint's decimals: a parsed token account shows
    its amounts in its mint's units, which only the mint records."""
    encoding = check_encoding(config, default)
    raw = bytes(account.data)
    data: Any = None
    if encoding == "jsonParsed" and config.get("dataSlice") is None:
        data = parse_token(account, decimals_of)
    if data is None:
        data = encode_data(_slice(raw, config), "base64" if encoding == "jsonParsed" else encoding)
    return {
        "data": data,
        "executable": account.executable,
        "lamports": account.lamports,
        "owner": str(account.owner),
        "rentEpoch": account.rent_epoch,
        "space": len(raw),
    }


def _coption_key(data: bytes, at: int) -> str | None:
    return str(Pubkey(data[at + 4 : at + 36])) if int.from_bytes(data[at : at + 4], "little") else None


def _nonzero_key(data: bytes) -> str | None:
    return None if data == bytes(32) else str(Pubkey(data))


def parse_token(account: Account, decimals_of: DecimalsOf) -> dict[str, Any] | None:
    """`{"program", "parsed", "space"}` for a mint or token account; None otherwise."""
    data = bytes(account.data)
    program = "spl-token-2022" if account.owner == TOKEN_2022_PROGRAM_ID else "spl-token"
    if history.is_token_account(account):
        parsed = {"type": "account", "info": _token_account(account, data, decimals_of(Pubkey(data[:32])))}
    elif history.is_mint(account):
        parsed = {"type": "mint", "info": _mint(data)}
    else:
        return None
    return {"program": program, "parsed": parsed, "space": len(data)}


def _token_account(account: Account, data: bytes, decimals: int) -> dict[str, Any]:
    info: dict[str, Any] = {
        "isNative": bool(int.from_bytes(data[109:113], "little")),
        "mint": str(Pubkey(data[:32])),
        "owner": str(Pubkey(data[32:64])),
        "state": _STATES.get(data[108], "uninitialized"),
        "tokenAmount": history.ui_token_amount(int.from_bytes(data[64:72], "little"), decimals),
    }
    delegate = _coption_key(data, 72)
    if delegate is not None:
        info["delegate"] = delegate
        info["delegatedAmount"] = history.ui_token_amount(int.from_bytes(data[121:129], "little"), decimals)
    if info["isNative"]:
        info["rentExemptReserve"] = history.ui_token_amount(int.from_bytes(data[113:121], "little"), 9)
    close = _coption_key(data, 129)
    if close is not None:
        info["closeAuthority"] = close
    if account.owner == TOKEN_2022_PROGRAM_ID and len(data) > history.TOKEN_ACCOUNT_LEN:
        info["extensions"] = _extensions(data[history.ACCOUNT_TYPE_OFFSET + 1 :])
    return info


def _mint(data: bytes) -> dict[str, Any]:
    info: dict[str, Any] = {
        "decimals": data[44],
        "freezeAuthority": _coption_key(data, 46),
        "isInitialized": bool(data[45]),
        "mintAuthority": _coption_key(data, 0),
        "supply": str(int.from_bytes(data[36:44], "little")),
    }
    if len(data) > history.ACCOUNT_TYPE_OFFSET:
        info["extensions"] = _extensions(data[history.ACCOUNT_TYPE_OFFSET + 1 :])
    return info


def _borsh_strings(data: bytes, at: int, count: int) -> tuple[list[str], int]:
    out = []
    for _ in range(count):
        size = int.from_bytes(data[at : at + 4], "little")
        out.append(data[at + 4 : at + 4 + size].decode())
        at += 4 + size
    return out, at


def _token_metadata(value: bytes) -> dict[str, Any]:
    (name, symbol, uri), at = _borsh_strings(value, 64, 3)
    pairs = int.from_bytes(value[at : at + 4], "little")
    flat, _ = _borsh_strings(value, at + 4, 2 * pairs)
    return {
        "updateAuthority": _nonzero_key(value[:32]),
        "mint": str(Pubkey(value[32:64])),
        "name": name,
        "symbol": symbol,
        "uri": uri,
        "additionalMetadata": [[flat[i], flat[i + 1]] for i in range(0, len(flat), 2)],
    }


def _i(value: bytes, start: int, size: int) -> int:
    return int.from_bytes(value[start : start + size], "little", signed=True)


_PARSERS: dict[int, tuple[str, Callable[[bytes], dict[str, Any] | None]]] = {
    3: ("mintCloseAuthority", lambda v: {"closeAuthority": _nonzero_key(v[:32])}),
    6: ("defaultAccountState", lambda v: {"accountState": _STATES.get(v[0], "uninitialized")}),
    7: ("immutableOwner", lambda v: None),
    8: ("memoTransfer", lambda v: {"requireIncomingTransferMemos": bool(v[0])}),
    9: ("nonTransferable", lambda v: None),
    10: (
        "interestBearingConfig",
        lambda v: {
            "rateAuthority": _nonzero_key(v[:32]),
            "initializationTimestamp": _i(v, 32, 8),
            "preUpdateAverageRate": _i(v, 40, 2),
            "lastUpdateTimestamp": _i(v, 42, 8),
            "currentRate": _i(v, 50, 2),
        },
    ),
    11: ("cpiGuard", lambda v: {"lockCpi": bool(v[0])}),
    12: ("permanentDelegate", lambda v: {"delegate": _nonzero_key(v[:32])}),
    13: ("nonTransferableAccount", lambda v: None),
    14: ("transferHook", lambda v: {"authority": _nonzero_key(v[:32]), "programId": _nonzero_key(v[32:64])}),
    15: ("transferHookAccount", lambda v: {"transferring": bool(v[0])}),
    18: ("metadataPointer", lambda v: {"authority": _nonzero_key(v[:32]), "metadataAddress": _nonzero_key(v[32:64])}),
    19: ("tokenMetadata", _token_metadata),
    26: ("pausableConfig", lambda v: {"authority": _nonzero_key(v[:32]), "paused": bool(v[32])}),
    27: ("pausableAccount", lambda v: None),
}


def _extensions(tlv: bytes) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    at = 0
    while at + 4 <= len(tlv):
        kind = int.from_bytes(tlv[at : at + 2], "little")
        size = int.from_bytes(tlv[at + 2 : at + 4], "little")
        value = tlv[at + 4 : at + 4 + size]
        at += 4 + size
        if kind == 0:  # Uninitialized: the padding after the last record
            break
        name, parse = _PARSERS.get(kind, ("unparseableExtension", lambda v: None))
        try:
            state = parse(value)
        except (IndexError, UnicodeDecodeError, ValueError):
            name, state = "unparseableExtension", None
        out.append({"extension": name} if state is None else {"extension": name, "state": state})
    return out


__all__ = ["ENCODINGS", "check_encoding", "encode_account", "encode_data", "parse_token"]
