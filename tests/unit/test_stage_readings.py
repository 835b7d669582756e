"""Storage rows built by the Rust core for a batch, checked on the shared reading vectors."""

from __future__ import annotations

import json
from typing import Any

import pytest

from openvpp import native
from openvpp.errors import InvalidArgument
from openvpp.settlement.ingest.ingestor import ACCEPTING, chain_hash
from tests.conftest import VECTORS

DATA: dict[str, Any] = json.loads((VECTORS / "readings.json").read_text())
PAYLOADS = b"".join(bytes.fromhex(r["payload"]) for r in DATA["readings"])
SIGNATURES = b"".join(bytes.fromhex(r["signature"]) for r in DATA["readings"])
DEVICES = b"".join(bytes.fromhex(d) for d in DATA["devices"])
COUNT = len(DATA["devices"])


def results() -> native.ReadingResults:
    stored = b"".join(bytes.fromhex(s) for s in DATA["stored"])
    return native.verify_readings(PAYLOADS, SIGNATURES, DEVICES, stored, **DATA["params"])


def table(existed: bytes) -> native.DeviceTable:
    # A head and a stored count of their own per device, so rows taken from the wrong device show.
    return native.DeviceTable(
        DEVICES,
        b"".join(bytes([d + 1]) * 32 for d in range(COUNT)),
        [100 + d for d in range(COUNT)],
        existed,
        [f"der-{d}" for d in range(COUNT)],
        [1_000 + d for d in range(COUNT)],
    )


def test_rows_carry_each_accepted_reading_keyed_by_its_device_number_with_its_own_device_chain() -> None:
    out = results()
    devices = table(bytes([1]) * COUNT)
    staged = native.stage_readings(PAYLOADS, SIGNATURES, out, devices, batch_id=7, now_us=123)
    heads = [devices.heads[d * 32 : d * 32 + 32] for d in range(COUNT)]
    gained = [0] * COUNT
    expected = []
    for i, verdict in enumerate(out.verdicts):
        if verdict not in ACCEPTING:
            continue
        d, payload, signature = out.device[i], PAYLOADS[i * 72 : i * 72 + 72], SIGNATURES[i * 64 : i * 64 + 64]
        heads[d] = chain_hash(heads[d], payload, signature)
        gained[d] += 1
        seq, end = int.from_bytes(payload[32:40], "little"), int.from_bytes(payload[40:48], "little", signed=True)
        expected.append(
            (
                1_000 + d,
                seq,
                end,
                out.covered_from[i],
                out.import_wh[i],
                out.export_wh[i],
                out.flags[i],
                out.missing[i],
                payload,
                signature,
                heads[d],
                123,
                7,
            )
        )
    assert 0 < len(expected) < len(out.verdicts)
    assert staged.readings == expected
    assert staged.inserts == []
    after = [out.devices[d * 88 : d * 88 + 88] for d in range(COUNT)]
    moved = [d for d in range(COUNT) if gained[d] or after[d] != DEVICES[d * 88 : d * 88 + 88]]
    assert [c[0] for c in staged.changed] == moved
    for (d, packed, head, stored), update in zip(staged.changed, staged.updates, strict=True):
        assert (packed, head, stored) == (after[d], heads[d], 100 + d + gained[d])
        state = native.DEVICE_STATE.unpack(packed)
        # SET has_baseline .. updated_at_us, then WHERE der_id = ? AND stored = (the count read).
        assert update == (state[2], state[3], state[4], state[5], state[6], heads[d], stored, 123, f"der-{d}", 100 + d)


def test_a_device_without_a_state_row_is_inserted_not_updated() -> None:
    out = results()
    staged = native.stage_readings(PAYLOADS, SIGNATURES, out, table(bytes(COUNT)), batch_id=1, now_us=5)
    assert staged.updates == []
    assert [row[0] for row in staged.inserts] == [f"der-{d}" for d, *_ in staged.changed]
    assert [row[1:] for row in staged.inserts] == [
        (*native.DEVICE_STATE.unpack(packed)[2:7], head, stored, 5) for _, packed, head, stored in staged.changed
    ]


@pytest.mark.parametrize(
    "broken",
    [
        lambda t: native.DeviceTable(t.packed, t.heads[:-1], t.stored, t.existed, t.der_ids, t.numbers),
        lambda t: native.DeviceTable(t.packed, t.heads, t.stored[:-1], t.existed, t.der_ids, t.numbers),
        lambda t: native.DeviceTable(t.packed, t.heads, t.stored, t.existed[:-1], t.der_ids, t.numbers),
        lambda t: native.DeviceTable(t.packed[:-88], t.heads, t.stored, t.existed, t.der_ids, t.numbers),
        lambda t: native.DeviceTable(t.packed, t.heads, t.stored, t.existed, t.der_ids, t.numbers[:-1]),
    ],
)
def test_device_columns_that_disagree_are_refused(broken: Any) -> None:
    with pytest.raises(InvalidArgument):
        native.stage_readings(PAYLOADS, SIGNATURES, results(), broken(table(bytes([1]) * COUNT)), batch_id=1, now_us=1)
