"""JSON-RPC error codes the Solana RPC uses, and the error handlers raise."""

from __future__ import annotations

from typing import Any

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
SERVER_ERROR = -32000
BLOCK_NOT_AVAILABLE = -32004
PREFLIGHT_FAILURE = -32002
SIGNATURE_VERIFICATION_FAILURE = -32003
UNSUPPORTED_TRANSACTION_VERSION = -32015
MIN_CONTEXT_SLOT_NOT_REACHED = -32016


class RpcError(Exception):
    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.data = data


__all__ = [
    "BLOCK_NOT_AVAILABLE",
    "INVALID_PARAMS",
    "INVALID_REQUEST",
    "METHOD_NOT_FOUND",
    "MIN_CONTEXT_SLOT_NOT_REACHED",
    "PARSE_ERROR",
    "PREFLIGHT_FAILURE",
    "SERVER_ERROR",
    "SIGNATURE_VERIFICATION_FAILURE",
    "UNSUPPORTED_TRANSACTION_VERSION",
    "RpcError",
]
