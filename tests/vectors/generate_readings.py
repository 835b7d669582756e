"""Writes readings.json: signed v1 readings and the verdicts the rules must give.

Run from the repository root with `python -m tests.vectors.generate_readings`.
Every expected outcome is written by hand below and cross-checked against the
plain-Python reference before the file is written; `cargo test` and pytest
both read the file.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, replace
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from tests.reference import readings as ref

T0 = 1_767_225_600  # 2026-01-01T00:00:00Z
NOW = T0 + 3 * 3600
FUTURE_SKEW, MAX_AGE = 300, 7 * 86400


def key(seed: int) -> tuple[Ed25519PrivateKey, bytes]:
    private = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(f"device-{seed}".encode()).digest())
    return private, private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def main() -> None:
    (a_sk, a), (b_sk, b), (c_sk, c), (x_sk, x) = key(1), key(2), key(3), key(4)
    devices = [
        ref.Device(a, True, True, 10, T0, 1_000, 5_000, 10_000, 10_000),
        ref.Device(b, True, False, 0, 0, 0, 0, 5_000, 5_000),
        ref.Device(c, False, True, 4, T0, 0, 0, 5_000, 5_000),
    ]
    signer = {a: a_sk, b: b_sk, c: c_sk, x: x_sk}
    a10 = ref.Reading(a, 10, T0, 900, 1_000, 5_000, 0)
    stored = {(a, 10): hashlib.sha256(a10.encode()).digest()}
    a11 = ref.Reading(a, 11, T0 + 900, 900, 1_500, 6_000, 0)
    b1 = ref.Reading(b, 1, T0 + 900, 900, 42_000, 7_000, 0)
    b2 = ref.Reading(b, 2, T0 + 1800, 900, 42_400, 8_100, 0)
    steps: list[tuple[str, ref.Reading, bytes | None, ref.Outcome]] = [
        ("first reading after the last stored one", a11, None, ref.Outcome("accepted", 0, 500, 1_000, T0, 0)),
        (
            "first reading of a device sets its baseline",
            b1,
            None,
            ref.Outcome("accepted", ref.OUT_BASELINE, 0, 0, T0, 0),
        ),
        ("exact replay in the same batch", a11, None, ref.Outcome("duplicate")),
        ("same seq, other bytes", replace(a11, export_wh=6_001), None, ref.Outcome("conflict")),
        ("exact replay of a stored reading", a10, None, ref.Outcome("duplicate")),
        ("suspended device", ref.Reading(c, 5, T0 + 900, 900, 10, 10, 0), None, ref.Outcome("device_not_active")),
        ("unknown device", ref.Reading(x, 1, T0 + 900, 900, 10, 10, 0), None, ref.Outcome("unknown_device")),
        ("signature flipped", b2, b"flip", ref.Outcome("bad_signature")),
        ("import counter went backwards", replace(b2, import_wh=41_999), None, ref.Outcome("counter_decreased")),
        (
            "export beyond 5 kW for 15 minutes",
            replace(b2, export_wh=7_000 + 1_277),
            None,
            ref.Outcome("beyond_capability"),
        ),
        (
            "interval length that does not tile the day",
            replace(b2, interval_len=700),
            None,
            ref.Outcome("invalid_interval"),
        ),
        ("interval end off the grid", replace(b2, interval_end=T0 + 1750), None, ref.Outcome("invalid_interval")),
        (
            "interval shorter than a minute",
            replace(b2, interval_len=30, interval_end=T0 + 1800),
            None,
            ref.Outcome("invalid_interval"),
        ),
        ("reserved flag bit", replace(b2, flags=2), None, ref.Outcome("reserved_flags")),
        ("interval ending in the future", replace(b2, interval_end=NOW + 900), None, ref.Outcome("outside_skew")),
        (
            "interval older than the settlement window",
            replace(b2, seq=2, interval_end=T0 - 8 * 86400),
            None,
            ref.Outcome("outside_skew"),
        ),
        (
            "export at the edge of capability plus tolerance",
            replace(b2, export_wh=7_000 + 1_276, flags=1),
            None,
            ref.Outcome("accepted", ref.OUT_ESTIMATED, 400, 1_276, T0 + 900, 0),
        ),
        (
            "seq jump is accepted and flagged",
            ref.Reading(a, 13, T0 + 2700, 900, 1_900, 6_500, 0),
            None,
            ref.Outcome("seq_gap", ref.OUT_GAP, 400, 500, T0 + 900, 1),
        ),
        (
            "lower seq after a later one",
            ref.Reading(a, 12, T0 + 1800, 900, 1_700, 6_200, 0),
            None,
            ref.Outcome("out_of_order"),
        ),
        ("old seq never stored", ref.Reading(a, 9, T0 - 900, 900, 900, 4_900, 0), None, ref.Outcome("out_of_order")),
        (
            "overlapping the last interval",
            ref.Reading(b, 3, T0 + 3600, 3600, 42_500, 8_200, 0),
            None,
            ref.Outcome("invalid_interval"),
        ),
        (
            "hourly reading after quarter-hours",
            ref.Reading(b, 3, T0 + 7200, 3600, 42_500, 8_276, 0),
            None,
            ref.Outcome("accepted", 0, 100, 0, T0 + 1800, 0),
        ),
    ]
    payloads, signatures = [], []
    for _, reading, tamper, _ in steps:
        payload = reading.encode()
        signature = signer[reading.key].sign(ref.DOMAIN + payload)
        if tamper:
            signature = signature[:10] + bytes([signature[10] ^ 1]) + signature[11:]
        payloads.append(payload)
        signatures.append(signature)
    outcomes, updated = ref.apply(payloads, signatures, None, devices, stored, NOW, FUTURE_SKEW, MAX_AGE)
    for (name, _, _, expected), got in zip(steps, outcomes, strict=True):
        assert got == expected, (name, got, expected)
    out = {
        "description": "Signed v1 readings (72-byte payload, signature over 'openvpp/reading/v1' || payload) "
        "of several devices in one batch, with the device table and stored digests the caller holds.",
        "params": {"now": NOW, "max_future_skew_s": FUTURE_SKEW, "max_age_s": MAX_AGE},
        "devices": [d.encode().hex() for d in devices],
        "stored": [(k + s.to_bytes(8, "little") + digest).hex() for (k, s), digest in stored.items()],
        "readings": [
            {"name": name, "payload": p.hex(), "signature": s.hex(), "expected": asdict(o)}
            for (name, _, _, _), p, s, o in zip(steps, payloads, signatures, outcomes, strict=True)
        ],
        "expected_devices": [d.encode().hex() for d in updated],
        "verdicts": ref.VERDICTS,
    }
    Path(__file__).with_name("readings.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
