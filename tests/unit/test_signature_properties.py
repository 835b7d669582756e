"""Rust batch verification agrees with the plain-Python reference on random inputs."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given, settings
from hypothesis import strategies as st

from openvpp import native
from tests.reference import ed25519 as reference


@st.composite
def signed_items(draw: st.DrawFn) -> tuple[bytes, bytes, bytes]:
    key = Ed25519PrivateKey.from_private_bytes(draw(st.binary(min_size=32, max_size=32)))
    public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    message = draw(st.binary(max_size=80))
    signature = key.sign(b"dom" + message)
    mutation = draw(st.sampled_from(["none", "key", "signature", "message", "random-key", "random-signature"]))
    if mutation == "key":
        flipped = bytearray(public)
        flipped[draw(st.integers(0, 31))] ^= 1 << draw(st.integers(0, 7))
        public = bytes(flipped)
    elif mutation == "signature":
        sig = bytearray(signature)
        sig[draw(st.integers(0, 63))] ^= 1 << draw(st.integers(0, 7))
        signature = bytes(sig)
    elif mutation == "message":
        message = message + b"!"
    elif mutation == "random-key":
        public = draw(st.binary(min_size=32, max_size=32))
    elif mutation == "random-signature":
        signature = draw(st.binary(min_size=64, max_size=64))
    return public, signature, message


@settings(max_examples=60)
@given(st.lists(signed_items(), min_size=1, max_size=40))
def test_batch_verdicts_match_the_reference(items: list[tuple[bytes, bytes, bytes]]) -> None:
    verdicts = native.verify_ed25519(b"dom", [native.SignedItem(pk, sig, msg) for pk, sig, msg in items])
    expected = [reference.verify(b"dom", pk, msg, sig) for pk, sig, msg in items]
    assert [v.name.lower() for v in verdicts] == expected
