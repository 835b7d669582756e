"""Opaque page tokens over integer cursors, and the storage range of integers."""

from __future__ import annotations

import base64
import binascii

from openvpp import errors

# The largest integer every supported database stores (a signed 64-bit BIGINT).
MAX_STORED = 2**63 - 1
MAX_TOKEN_LENGTH = 128


def encode(cursor: int, kind: str = "id") -> str:
    return base64.urlsafe_b64encode(f"{kind}:{cursor}".encode()).decode().rstrip("=")


def decode(token: str, kind: str = "id", field: str = "page_token") -> int:
    """The cursor in a token this server issued; 0 for no token."""
    if not token:
        return 0
    bad = errors.InvalidArgument.field(field, "is not a token this server issued", "INVALID_PAGE_TOKEN")
    if len(token) > MAX_TOKEN_LENGTH:
        raise bad
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise bad from None
    prefix, _, value = text.partition(":")
    if prefix != kind or not value.isascii() or not value.isdigit() or len(value) > 19 or int(value) > MAX_STORED:
        raise bad
    return int(value)


def stored(value: int, field: str) -> int:
    """`value` if the database can hold it, else INVALID_ARGUMENT naming the field."""
    if not -MAX_STORED - 1 <= value <= MAX_STORED:
        raise errors.InvalidArgument.field(field, f"must be at most {MAX_STORED}", "OUT_OF_RANGE")
    return value
