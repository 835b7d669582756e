"""Plain-Python strict, cofactored ed25519 verification: the reference the Rust
core is checked against. Slow and obvious on purpose (RFC 8032 §5.1 formulas).
"""

from __future__ import annotations

import hashlib

P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
D = (-121665 * pow(121666, P - 2, P)) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)

Point = tuple[int, int, int, int]  # extended coordinates (X, Y, Z, T)
IDENTITY: Point = (0, 1, 1, 0)


def add(p: Point, q: Point) -> Point:
    a = (p[1] - p[0]) * (q[1] - q[0]) % P
    b = (p[1] + p[0]) * (q[1] + q[0]) % P
    c = 2 * p[3] * q[3] * D % P
    d = 2 * p[2] * q[2] % P
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def mul(k: int, p: Point) -> Point:
    out = IDENTITY
    while k:
        if k & 1:
            out = add(out, p)
        p = add(p, p)
        k >>= 1
    return out


def neg(p: Point) -> Point:
    return (-p[0] % P, p[1], p[2], -p[3] % P)


def equal(p: Point, q: Point) -> bool:
    return (p[0] * q[2] - q[0] * p[2]) % P == 0 and (p[1] * q[2] - q[1] * p[2]) % P == 0


def decode(data: bytes) -> Point | None:
    """The point of a canonical encoding, or None (y >= p, off-curve, x = 0 with sign set)."""
    value = int.from_bytes(data, "little")
    y, sign = value & ((1 << 255) - 1), value >> 255
    if y >= P:
        return None
    u, v = (y * y - 1) % P, (D * y * y + 1) % P
    x = u * pow(v, 3, P) * pow(u * pow(v, 7, P), (P - 5) // 8, P) % P
    if (v * x * x - u) % P != 0:
        x = x * SQRT_M1 % P
        if (v * x * x - u) % P != 0:
            return None
    if x == 0 and sign:
        return None
    if x & 1 != sign:
        x = P - x
    return (x, y, 1, x * y % P)


def encode(p: Point) -> bytes:
    zi = pow(p[2], P - 2, P)
    x, y = p[0] * zi % P, p[1] * zi % P
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


def _base() -> Point:
    point = decode(bytes.fromhex("5866666666666666666666666666666666666666666666666666666666666666"))
    assert point is not None
    return point


BASE = _base()


def is_small_order(p: Point) -> bool:
    return equal(mul(8, p), IDENTITY)


def verify(domain: bytes, public_key: bytes, message: bytes, signature: bytes) -> str:
    """The verdict name the Rust core must give for this item."""
    a = decode(public_key)
    if a is None:
        return "malformed_public_key"
    if is_small_order(a):
        return "weak_public_key"
    s = int.from_bytes(signature[32:], "little")
    if s >= L:
        return "non_canonical_signature"
    r = decode(signature[:32])
    if r is None or is_small_order(r):
        return "bad_signature"
    k = int.from_bytes(hashlib.sha512(signature[:32] + public_key + domain + message).digest(), "little") % L
    lhs = add(add(mul(s, BASE), neg(r)), neg(mul(k, a)))
    return "valid" if equal(mul(8, lhs), IDENTITY) else "bad_signature"
