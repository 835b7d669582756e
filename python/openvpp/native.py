"""Typed façade over the Rust extension; the only module that imports it."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate

from opentelemetry import trace

from openvpp import _rust
from openvpp.errors import InvalidArgument

PUBLIC_KEY_LEN = 32
SIGNATURE_LEN = 64

_tracer = trace.get_tracer("openvpp.native")


class SignatureVerdict(enum.IntEnum):
    """Mirror of `openvpp_core::signature::Verdict`; the codes are shared."""

    VALID = 0
    BAD_SIGNATURE = 1
    MALFORMED_PUBLIC_KEY = 2
    WEAK_PUBLIC_KEY = 3
    NON_CANONICAL_SIGNATURE = 4


@dataclass(frozen=True, slots=True)
class SignedItem:
    """One message to verify: 32-byte key, 64-byte signature, the exact bytes."""

    public_key: bytes
    signature: bytes
    message: bytes


def verify_ed25519(domain: bytes, items: Sequence[SignedItem]) -> list[SignatureVerdict]:
    """Strictly verifies `domain || message` for every item, in one native call.

    Raises `openvpp.errors.InvalidArgument` when a key or signature has the
    wrong length (the call is malformed, not the item).
    """
    for index, item in enumerate(items):
        # Checked here because packing would let a short key and a long one cancel out.
        if len(item.public_key) != PUBLIC_KEY_LEN or len(item.signature) != SIGNATURE_LEN:
            raise InvalidArgument(
                f"item {index}: public key must be {PUBLIC_KEY_LEN} bytes and signature "
                f"{SIGNATURE_LEN} bytes, got {len(item.public_key)} and {len(item.signature)}",
                "MALFORMED_BATCH",
            )
    messages = [item.message for item in items]
    offsets = [0, *accumulate(len(m) for m in messages)]
    with _tracer.start_as_current_span("native.verify_ed25519") as span:
        codes = _rust.verify_ed25519_batch(
            domain,
            b"".join(item.public_key for item in items),
            b"".join(item.signature for item in items),
            b"".join(messages),
            offsets,
        )
        verdicts = [SignatureVerdict(code) for code in codes]
        span.set_attribute("openvpp.batch.size", len(items))
        span.set_attribute("openvpp.batch.rejected", sum(1 for v in verdicts if v is not SignatureVerdict.VALID))
    return verdicts
