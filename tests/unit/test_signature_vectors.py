"""The shared ed25519 vectors, through the native façade (Rust reads the same file)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from openvpp import native
from openvpp.errors import InvalidArgument
from tests.conftest import VECTORS

DATA: dict[str, Any] = json.loads((VECTORS / "ed25519.json").read_text())
CASES = DATA["cases"]


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_case_alone(case: dict[str, str]) -> None:
    item = native.SignedItem(
        bytes.fromhex(case["public_key"]), bytes.fromhex(case["signature"]), bytes.fromhex(case["message"])
    )
    (verdict,) = native.verify_ed25519(bytes.fromhex(case["domain"]), [item])
    assert verdict.name.lower() == case["expected"]


def test_all_cases_in_one_batch_past_the_parallel_threshold() -> None:
    cases = [c for c in CASES if not c["domain"]] * 8
    items = [
        native.SignedItem(bytes.fromhex(c["public_key"]), bytes.fromhex(c["signature"]), bytes.fromhex(c["message"]))
        for c in cases
    ]
    verdicts = native.verify_ed25519(b"", items)
    assert [v.name.lower() for v in verdicts] == [c["expected"] for c in cases]


def test_empty_batch() -> None:
    assert native.verify_ed25519(b"", []) == []


@pytest.mark.parametrize("call", DATA["malformed_calls"], ids=[c["name"] for c in DATA["malformed_calls"]])
def test_malformed_call_is_refused_by_the_native_function(call: dict[str, Any]) -> None:
    from openvpp import _rust

    messages = [bytes.fromhex(m) for m in call["messages"]]
    offsets = [0]
    for m in messages:
        offsets.append(offsets[-1] + len(m))
    with pytest.raises(InvalidArgument) as caught:
        _rust.verify_ed25519_batch(
            b"", bytes.fromhex(call["public_keys"]), bytes.fromhex(call["signatures"]), b"".join(messages), offsets
        )
    assert caught.value.reason == "MALFORMED_BATCH"


def test_facade_refuses_items_whose_lengths_would_cancel_out() -> None:
    good = CASES[0]
    key, sig = bytes.fromhex(good["public_key"]), bytes.fromhex(good["signature"])
    items = [native.SignedItem(key[:31], sig, b""), native.SignedItem(key + b"\0", sig, b"")]
    with pytest.raises(InvalidArgument):
        native.verify_ed25519(b"", items)


def test_verdict_codes_match_the_vector_vocabulary() -> None:
    assert [v.name.lower() for v in native.SignatureVerdict] == DATA["verdicts"]
