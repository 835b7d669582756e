"""Reading verification: the shared vectors, and agreement with the reference on random batches."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given, settings
from hypothesis import strategies as st

from openvpp import native
from openvpp.errors import InvalidArgument
from tests.conftest import VECTORS
from tests.reference import readings as ref

DATA: dict[str, Any] = json.loads((VECTORS / "readings.json").read_text())
PARAMS = DATA["params"]


def run_vectors() -> native.ReadingResults:
    return native.verify_readings(
        b"".join(bytes.fromhex(r["payload"]) for r in DATA["readings"]),
        b"".join(bytes.fromhex(r["signature"]) for r in DATA["readings"]),
        b"".join(bytes.fromhex(d) for d in DATA["devices"]),
        b"".join(bytes.fromhex(s) for s in DATA["stored"]),
        **PARAMS,
    )


def test_vectors_give_every_expected_outcome() -> None:
    results = run_vectors()
    for i, item in enumerate(DATA["readings"]):
        expected = item["expected"]
        got = {
            "verdict": results.verdict(i).name.lower(),
            "flags": results.flags[i],
            "import_wh": results.import_wh[i],
            "export_wh": results.export_wh[i],
            "covered_from": results.covered_from[i] if expected["verdict"] in ("accepted", "seq_gap") else 0,
            "missing": results.missing[i],
        }
        assert got == expected, item["name"]
    assert results.devices.hex() == "".join(DATA["expected_devices"])


def test_verdict_names_are_the_shared_vocabulary() -> None:
    assert [v.name.lower() for v in native.ReadingVerdict] == DATA["verdicts"]


@pytest.mark.parametrize(
    ("payloads", "signatures", "devices", "stored"),
    [
        (b"\0" * 71, b"", b"", b""),
        (b"\0" * 72, b"\0" * 63, b"", b""),
        (b"\0" * 72, b"\0" * 64, b"\0" * 87, b""),
        (b"\0" * 72, b"\0" * 64, b"", b"\0" * 10),
        (b"\0" * 72, b"\0" * 64, b"\0" * 176, b""),  # the same device twice
    ],
)
def test_malformed_buffers_are_invalid_argument(
    payloads: bytes, signatures: bytes, devices: bytes, stored: bytes
) -> None:
    with pytest.raises(InvalidArgument):
        native.verify_readings(payloads, signatures, devices, stored, **PARAMS)


KEYS = [Ed25519PrivateKey.from_private_bytes(hashlib.sha256(bytes([i])).digest()) for i in range(4)]
PUBLIC = [k.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw) for k in KEYS]
T0 = 1_767_225_600


@st.composite
def batches(draw: st.DrawFn) -> tuple[list[bytes], list[bytes], list[ref.Device], dict[tuple[bytes, int], bytes]]:
    devices = [
        ref.Device(
            PUBLIC[i],
            active=draw(st.booleans()) or i == 0,
            has_baseline=(base := draw(st.booleans())),
            last_seq=draw(st.integers(0, 5)) if base else 0,
            last_interval_end=T0 if base else 0,
            import_wh=draw(st.integers(0, 10_000)) if base else 0,
            export_wh=draw(st.integers(0, 10_000)) if base else 0,
            max_import_w=draw(st.sampled_from([0, 5_000, 10_000])),
            max_export_w=draw(st.sampled_from([0, 5_000, 10_000])),
        )
        for i in range(3)
    ]
    payloads, signatures = [], []
    counters = {d.key: [d.last_seq, d.last_interval_end or T0, d.import_wh, d.export_wh] for d in devices}
    for _ in range(draw(st.integers(1, 25))):
        who = draw(st.integers(0, 3))  # 3 is not in the device table
        seq, end, imp, exp = counters.get(PUBLIC[who], [0, T0, 0, 0])
        seq += draw(st.sampled_from([1, 1, 1, 2, 0, -1]))
        length = draw(st.sampled_from([900, 900, 3600, 700, 30]))
        end += length * draw(st.sampled_from([1, 1, 2, 0])) + draw(st.sampled_from([0, 0, 0, 50]))
        imp += draw(st.integers(-5, 3_000))
        exp += draw(st.integers(-5, 3_000))
        reading = ref.Reading(
            PUBLIC[who], max(seq, 0), end, length, max(imp, 0), max(exp, 0), draw(st.sampled_from([0, 0, 1, 2]))
        )
        payload = reading.encode()
        signature = KEYS[who].sign(ref.DOMAIN + payload)
        if draw(st.integers(0, 9)) == 0:
            signature = bytes(64)
        payloads.append(payload)
        signatures.append(signature)
        if draw(st.booleans()):
            counters[PUBLIC[who]] = [reading.seq, reading.interval_end, reading.import_wh, reading.export_wh]
        if draw(st.integers(0, 7)) == 0:
            payloads.append(payload)
            signatures.append(signature)
    # Stored readings are ones the device state already accounts for.
    d0 = devices[0]
    stored = {(PUBLIC[0], 3): hashlib.sha256(b"x").digest()} if d0.has_baseline and d0.last_seq >= 3 else {}
    return payloads, signatures, devices, stored


@settings(max_examples=150)
@given(batches())
def test_rust_agrees_with_the_reference_on_random_batches(
    batch: tuple[list[bytes], list[bytes], list[ref.Device], dict[tuple[bytes, int], bytes]],
) -> None:
    payloads, signatures, devices, stored = batch
    now = T0 + 86_400
    expected, expected_devices = ref.apply(payloads, signatures, None, devices, stored, now, 300, 7 * 86_400)
    results = native.verify_readings(
        b"".join(payloads),
        b"".join(signatures),
        b"".join(d.encode() for d in devices),
        b"".join(k + s.to_bytes(8, "little") + digest for (k, s), digest in stored.items()),
        now=now,
        max_future_skew_s=300,
        max_age_s=7 * 86_400,
    )
    for i, want in enumerate(expected):
        got = ref.Outcome(
            results.verdict(i).name.lower(),
            results.flags[i],
            results.import_wh[i],
            results.export_wh[i],
            results.covered_from[i] if want.verdict in ("accepted", "seq_gap") else 0,
            results.missing[i],
        )
        assert asdict(got) == asdict(want), i
    assert native.DeviceState.unpack_all(results.devices) == [native.DeviceState(**asdict(d)) for d in expected_devices]
