"""Payout events encoded by the Rust core read back, through the generated
classes, exactly as the messages the Python runtime would have built."""

from __future__ import annotations

import pytest

from openvpp import native
from openvpp.errors import InvalidArgument
from openvpp.kernel.timestamps import from_micros
from openvpp.v1 import settlement_pb2 as pb

_ARMS: dict[int, str] = {
    pb.PAYOUT_STATE_SENT: "payout_sent",
    pb.PAYOUT_STATE_CONFIRMED: "payout_confirmed",
    pb.PAYOUT_STATE_FAILED: "payout_failed",
}


def _expected(settlement_id: str, row: native.PayoutEventRow) -> pb.SettlementEvent:
    payout_id, program_id, wallet, mint, amount, credits, state, signature, created_at_us, credit_ids = row
    payout = pb.Payout(
        payout_id=payout_id,
        settlement_id=settlement_id,
        wallet=wallet,
        mint=mint,
        amount_base_units=amount,
        state=pb.PayoutState.ValueType(state),
        signature=signature,
        credits=credits,
        created_at=from_micros(created_at_us),
        credit_ids=credit_ids,
    )
    event = pb.SettlementEvent(program_id=program_id)
    getattr(event, _ARMS[state]).CopyFrom(payout)
    return event


@pytest.mark.parametrize("state", sorted(_ARMS))
@pytest.mark.parametrize(
    "signature", ["", "5VERv8NMvzbJMEkV8xnrLkEaWRtSz9CosKDYjCJjBRnbJLgp8uirBgmQpjKhoR4tjF3ZpRzrFmBV6UjKdiSZkQUW"]
)
def test_each_state_reads_back_as_the_message_python_builds(state: int, signature: str) -> None:
    rows: list[native.PayoutEventRow] = [
        (
            1,
            "nem-solar",
            "7xKXtg2CW87d97TXJSDpbD5jBkheTqA83TZRuJosgAsU",
            "So11111111111111111111111111111111111111112",
            18_446_744_073_709_551_615,
            4_294_967_295,
            state,
            signature,
            1_763_800_000_123_456,
            [1, 2**64 - 1],
        ),
        (2**63, "dr-summer", "wallet-é", "mint", 0, 0, state, signature, 0, []),
    ]
    bodies = native.encode_payout_events("settlement-1", rows)
    assert len(bodies) == len(rows)
    for row, body in zip(rows, bodies, strict=True):
        got = pb.SettlementEvent.FromString(body)
        assert got == _expected("settlement-1", row)
        assert got.WhichOneof("event") == _ARMS[state]
        assert not got.HasField("at")
        assert got.cursor == 0


def test_a_state_without_an_event_is_refused_whole() -> None:
    rows: list[native.PayoutEventRow] = [
        (1, "p", "w", "m", 1, 1, pb.PAYOUT_STATE_SENT, "", 0, [5]),
        (2, "p", "w", "m", 1, 1, pb.PAYOUT_STATE_UNSPECIFIED, "", 0, []),
    ]
    with pytest.raises(InvalidArgument, match="payout row 1: state 0 has no event"):
        native.encode_payout_events("s", rows)


def test_an_empty_settlement_has_no_events() -> None:
    assert native.encode_payout_events("s", []) == []
