"""Plain-Python reference of the reading rules (rust/openvpp-core/src/readings.rs).

Written from DESIGN.md's rule list, one reading at a time, with Python
integers: obviously right rather than fast. The packed layouts are the core's
own (`openvpp._layout`); test_layout pins the payload's to DESIGN.md.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

from openvpp._layout import DEVICE_STATE, READING
from tests.reference import ed25519

DOMAIN = b"openvpp/reading/v1"
VERDICTS = [
    "accepted",
    "duplicate",
    "conflict",
    "bad_signature",
    "unknown_device",
    "device_not_active",
    "seq_gap",
    "out_of_order",
    "counter_decreased",
    "beyond_capability",
    "outside_skew",
    "invalid_interval",
    "reserved_flags",
]
OUT_ESTIMATED, OUT_BASELINE, OUT_GAP = 1, 2, 4


@dataclass(frozen=True)
class Reading:
    key: bytes
    seq: int
    interval_end: int
    interval_len: int
    import_wh: int
    export_wh: int
    flags: int

    @classmethod
    def decode(cls, payload: bytes) -> Reading:
        return cls(*READING.unpack(payload))

    def encode(self) -> bytes:
        return READING.pack(
            self.key, self.seq, self.interval_end, self.interval_len, self.import_wh, self.export_wh, self.flags
        )


@dataclass(frozen=True)
class Device:
    key: bytes
    active: bool = True
    has_baseline: bool = False
    last_seq: int = 0
    last_interval_end: int = 0
    import_wh: int = 0
    export_wh: int = 0
    max_import_w: int = 0
    max_export_w: int = 0

    def encode(self) -> bytes:
        return DEVICE_STATE.pack(
            self.key,
            self.active,
            self.has_baseline,
            self.last_seq,
            self.last_interval_end,
            self.import_wh,
            self.export_wh,
            self.max_import_w,
            self.max_export_w,
        )

    @classmethod
    def decode(cls, data: bytes) -> Device:
        return cls(*DEVICE_STATE.unpack(data[: DEVICE_STATE.size]))


@dataclass(frozen=True)
class Outcome:
    verdict: str
    flags: int = 0
    import_wh: int = 0
    export_wh: int = 0
    covered_from: int = 0
    missing: int = 0


def apply(
    payloads: list[bytes],
    signatures: list[bytes] | None,
    signature_ok: list[bool] | None,
    devices: list[Device],
    stored: dict[tuple[bytes, int], bytes],
    now: int,
    future_skew: int,
    max_age: int,
) -> tuple[list[Outcome], list[Device]]:
    table = {d.key: d for d in devices}
    seen = dict(stored)
    out = []
    for i, payload in enumerate(payloads):
        r = Reading.decode(payload)
        if r.key not in table:
            out.append(Outcome("unknown_device"))
            continue
        ok = signature_ok[i] if signature_ok is not None else None
        if ok is None:
            assert signatures is not None
            ok = ed25519.verify(DOMAIN, r.key, payload, signatures[i]) == "valid"
        if not ok:
            out.append(Outcome("bad_signature"))
            continue
        digest = hashlib.sha256(payload).digest()
        d = table[r.key]
        # Only a reading the state already accounts for can be repeated.
        if d.has_baseline and r.seq <= d.last_seq and (r.key, r.seq) in seen:
            out.append(Outcome("duplicate" if seen[(r.key, r.seq)] == digest else "conflict"))
            continue
        outcome = judge(r, d, now, future_skew, max_age)
        if outcome.verdict in ("accepted", "seq_gap"):
            seen[(r.key, r.seq)] = digest
            table[r.key] = replace(
                d,
                has_baseline=True,
                last_seq=r.seq,
                last_interval_end=r.interval_end,
                import_wh=r.import_wh,
                export_wh=r.export_wh,
            )
        out.append(outcome)
    return out, [table[d.key] for d in devices]


def judge(r: Reading, d: Device, now: int, future_skew: int, max_age: int) -> Outcome:
    if not d.active:
        return Outcome("device_not_active")
    if r.flags & ~1:
        return Outcome("reserved_flags")
    if not 60 <= r.interval_len <= 86400 or 86400 % r.interval_len or r.interval_end % r.interval_len:
        return Outcome("invalid_interval")
    if r.interval_end > now + future_skew or r.interval_end < now - max_age:
        return Outcome("outside_skew")
    flags = OUT_ESTIMATED if r.flags & 1 else 0
    start = r.interval_end - r.interval_len
    if not d.has_baseline:
        return Outcome("accepted", flags | OUT_BASELINE, covered_from=start)
    if r.seq <= d.last_seq or r.interval_end <= d.last_interval_end:
        return Outcome("out_of_order")
    if start < d.last_interval_end:
        return Outcome("invalid_interval")
    if r.import_wh < d.import_wh or r.export_wh < d.export_wh:
        return Outcome("counter_decreased")
    imp, exp = r.import_wh - d.import_wh, r.export_wh - d.export_wh
    elapsed = r.interval_end - d.last_interval_end
    for energy, max_w in ((imp, d.max_import_w), (exp, d.max_export_w)):
        # Possible energy: max_w * elapsed / 3600 Wh, plus 2 % and 1 Wh of metering tolerance.
        if (energy - 1) * 3600 * 100 > max_w * elapsed * 102:
            return Outcome("beyond_capability")
    missing = r.seq - d.last_seq - 1
    return Outcome(
        "seq_gap" if missing else "accepted",
        flags | (OUT_GAP if missing else 0),
        imp,
        exp,
        d.last_interval_end,
        missing,
    )
