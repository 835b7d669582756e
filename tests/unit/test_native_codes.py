"""The native core, the generated layout module and the protos name the same
verdicts and flags with the same codes; the reading payload keeps the public
v1 offsets."""

from __future__ import annotations

import pytest

from openvpp import _layout, _rust, native
from openvpp.settlement.ingest.ingestor import PROTO_VERDICTS
from openvpp.v1 import settlement_pb2 as pb


def test_the_extension_was_built_from_the_generated_layouts() -> None:
    assert _rust.LAYOUT_DIGEST == _layout.DIGEST


@pytest.mark.parametrize(
    "name", ["SignatureVerdict", "ReadingVerdict", "ReadingFlag", "PriceVerdict", "SettlementVerdict"]
)
def test_native_reexports_the_generated_tables(name: str) -> None:
    assert getattr(native, name) is getattr(_layout, name)


def test_reading_verdicts_match_the_proto_by_name() -> None:
    proto = {n.removeprefix("READING_VERDICT_"): v for n, v in pb.ReadingVerdict.items() if v}
    assert set(proto) == {v.name for v in native.ReadingVerdict}
    for verdict in native.ReadingVerdict:
        assert PROTO_VERDICTS[verdict] == proto[verdict.name]
    unknown = [c for c in range(256) if c not in native.ReadingVerdict._value2member_map_]
    assert {PROTO_VERDICTS[c] for c in unknown} == {pb.READING_VERDICT_UNSPECIFIED}


def test_reading_flags_match_the_proto_bits() -> None:
    proto = {n.removeprefix("READING_FLAG_"): v for n, v in pb.ReadingFlag.items() if v}
    assert proto == {f.name: f.value for f in native.ReadingFlag}


def test_payout_states_the_core_encodes_are_the_protos() -> None:
    # The core picks the event arm from these values (events.rs, generated from proto/).
    row: native.PayoutEventRow = (1, "p", "W", "M", 5, 1, pb.PAYOUT_STATE_CONFIRMED, "sig", 0, [])
    (body,) = native.encode_payout_events("s", [row])
    event = pb.SettlementEvent.FromString(body)
    assert event.WhichOneof("event") == "payout_confirmed"
    assert event.payout_confirmed.state == pb.PAYOUT_STATE_CONFIRMED


def test_the_reading_payload_keeps_its_public_offsets() -> None:
    # DESIGN.md's v1 layout: a contract with every device in the field.
    assert native.READING_OFFSETS == {
        "key": 0,
        "seq": 32,
        "interval_end": 40,
        "interval_len": 48,
        "import_wh": 52,
        "export_wh": 60,
        "flags": 68,
    }
    assert native.READING_LEN == 72
