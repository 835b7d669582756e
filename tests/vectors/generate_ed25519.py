"""Writes ed25519.json: RFC 8032 known answers plus the strictness edge cases.

Run from the repository root with `python -m tests.vectors.generate_ed25519`.
The output is committed; both `cargo test` and pytest read it, so the two
implementations are held to the same expected verdicts.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from tests.reference import ed25519 as ed

P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
D = (-121665 * pow(121666, P - 2, P)) % P
DEVICE_RECORD_DOMAIN = b"openvpp/device-record/v1"

RFC8032 = [
    ("rfc8032-test-1", "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60", ""),
    ("rfc8032-test-2", "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb", "72"),
    ("rfc8032-test-3", "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7", "af82"),
    (
        "rfc8032-test-sha-abc",
        "833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42",
        hashlib.sha512(b"abc").hexdigest(),
    ),
]

# Canonical encodings of points of order 1, 2, 4 and 8.
SMALL_ORDER_KEYS = [
    "0100000000000000000000000000000000000000000000000000000000000000",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "0000000000000000000000000000000000000000000000000000000000000000",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
]


def key_pair(seed_hex: str) -> tuple[Ed25519PrivateKey, bytes]:
    key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(seed_hex))
    return key, key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def case(name: str, pk: bytes, msg: bytes, sig: bytes, expected: str, domain: bytes = b"") -> dict[str, str]:
    return {
        "name": name,
        "domain": domain.hex(),
        "public_key": pk.hex(),
        "message": msg.hex(),
        "signature": sig.hex(),
        "expected": expected,
    }


def torsioned_signature(seed_hex: str, message: bytes) -> bytes:
    """Signs with R = r*B + T (T of order 2), as only the secret holder can."""
    digest = hashlib.sha512(bytes.fromhex(seed_hex)).digest()
    a = int.from_bytes(digest[:32], "little")
    a &= (1 << 254) - 8
    a |= 1 << 254
    public = ed.encode(ed.mul(a, ed.BASE))
    r = int.from_bytes(hashlib.sha512(digest[32:] + message).digest(), "little") % ed.L
    order_two = ed.decode(bytes.fromhex(SMALL_ORDER_KEYS[1]))
    assert order_two is not None
    r_bytes = ed.encode(ed.add(ed.mul(r, ed.BASE), order_two))
    k = int.from_bytes(hashlib.sha512(r_bytes + public + message).digest(), "little") % ed.L
    return r_bytes + ((r + k * a) % ed.L).to_bytes(32, "little")


def first_y_off_curve() -> int:
    for y in range(2, 1000):
        u = (y * y - 1) % P
        v = (D * y * y + 1) % P
        x2 = u * pow(v, P - 2, P) % P
        if x2 != 0 and pow(x2, (P - 1) // 2, P) != 1:
            return y
    raise AssertionError("no off-curve y below 1000")


def main() -> None:
    cases = []
    for name, seed, msg_hex in RFC8032:
        key, pk = key_pair(seed)
        msg = bytes.fromhex(msg_hex)
        cases.append(case(name, pk, msg, key.sign(msg), "valid"))

    key, pk = key_pair(RFC8032[1][1])
    sig = key.sign(b"\x72")
    cases.append(case("signature-over-another-message", pk, b"\x73", sig, "bad_signature"))
    flipped = bytearray(sig)
    flipped[5] ^= 0x01
    cases.append(case("flipped-bit-in-r", pk, b"\x72", bytes(flipped), "bad_signature"))
    cases.append(case("all-zero-signature", pk, b"\x72", bytes(64), "bad_signature"))
    _, other_pk = key_pair(RFC8032[2][1])
    cases.append(case("signature-by-another-key", other_pk, b"\x72", sig, "bad_signature"))

    s = int.from_bytes(sig[32:], "little")
    malleated = sig[:32] + (s + L).to_bytes(32, "little")
    cases.append(case("non-canonical-s-plus-l", pk, b"\x72", malleated, "non_canonical_signature"))
    cases.append(case("s-all-ones", pk, b"\x72", sig[:32] + b"\xff" * 32, "non_canonical_signature"))

    # R = identity and S = 0 satisfy the lenient equation for any small-order key.
    trivial = bytes.fromhex(SMALL_ORDER_KEYS[0]) + bytes(32)
    for i, weak in enumerate(SMALL_ORDER_KEYS):
        cases.append(case(f"small-order-public-key-{i}", bytes.fromhex(weak), b"", trivial, "weak_public_key"))

    for name, y in (("y-equals-p", P), ("y-equals-p-plus-1", P + 1)):
        cases.append(
            case(f"non-canonical-public-key-{name}", y.to_bytes(32, "little"), b"\x72", sig, "malformed_public_key")
        )
    # R + T (T of order 2): only the key holder can make it; the cofactored
    # equation accepts it, single and batch alike.
    torsioned = torsioned_signature(RFC8032[1][1], b"\x72")
    cases.append(case("r-with-order-two-component", pk, b"\x72", torsioned, "valid"))
    cases.append(case("r-of-small-order", pk, b"\x72", bytes.fromhex(SMALL_ORDER_KEYS[3]) + sig[32:], "bad_signature"))
    cases.append(case("r-non-canonical", pk, b"\x72", P.to_bytes(32, "little") + sig[32:], "bad_signature"))
    off = first_y_off_curve()
    cases.append(case("public-key-not-on-curve", off.to_bytes(32, "little"), b"\x72", sig, "malformed_public_key"))

    record = b"\x0a\x20" + pk + b"\x12\x0finverter-7f3a.solarco"
    cases.append(
        case(
            "device-record-domain-separated",
            pk,
            record,
            key.sign(DEVICE_RECORD_DOMAIN + record),
            "valid",
            DEVICE_RECORD_DOMAIN,
        )
    )
    cases.append(
        case(
            "device-record-signed-without-domain",
            pk,
            record,
            key.sign(record),
            "bad_signature",
            DEVICE_RECORD_DOMAIN,
        )
    )

    malformed = [
        {"name": "public-key-31-bytes", "public_keys": pk[:31].hex(), "signatures": sig.hex(), "messages": ["72"]},
        {"name": "public-key-33-bytes", "public_keys": (pk + b"\0").hex(), "signatures": sig.hex(), "messages": ["72"]},
        {"name": "signature-63-bytes", "public_keys": pk.hex(), "signatures": sig[:63].hex(), "messages": ["72"]},
        {"name": "signature-65-bytes", "public_keys": pk.hex(), "signatures": (sig + b"\0").hex(), "messages": ["72"]},
        {
            "name": "two-keys-one-signature",
            "public_keys": (pk + pk).hex(),
            "signatures": sig.hex(),
            "messages": ["72", "72"],
        },
        {"name": "one-key-two-messages", "public_keys": pk.hex(), "signatures": sig.hex(), "messages": ["72", "72"]},
    ]

    out = {
        "description": "Strict, cofactored ed25519: RFC 8032 section 7.1 known answers and strictness "
        "edge cases. A message is verified as domain || message.",
        "verdicts": ["valid", "bad_signature", "malformed_public_key", "weak_public_key", "non_canonical_signature"],
        "cases": cases,
        "malformed_calls": malformed,
    }
    for c in cases:
        got = ed.verify(*(bytes.fromhex(c[k]) for k in ("domain", "public_key", "message", "signature")))
        assert got == c["expected"], (c["name"], got)
    path = Path(__file__).with_name("ed25519.json")
    path.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
