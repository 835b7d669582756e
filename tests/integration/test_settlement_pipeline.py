"""Readings in, priced, credited, split, paid on chain and reconciled, over
mTLS on both databases."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import grpc
import pytest
from solders.keypair import Keypair
from solders.signature import Signature
from solders.transaction import VersionedTransaction

from openvpp.chain import spl
from openvpp.v1 import settlement_pb2 as pb
from tests.integration.mtls import Fabric
from tests.integration.settlement_world import STEP, aligned_now, reading, settlement_world, signed_points
from tests.rpc import expect_error

INSTALLER = Keypair()


@pytest.mark.parametrize(
    "batching",
    [True, pytest.param(False, marks=pytest.mark.settings(payout_batch_instructions=False))],
    ids=["batch-instruction", "one-by-one"],
)
async def test_readings_are_credited_split_paid_once_and_the_ledger_checks(
    fabric: Fabric, tmp_path: Path, batching: bool
) -> None:
    split = [
        pb.SplitShare(party=pb.PARTY_OWNER, bps=7_000),
        pb.SplitShare(party=pb.PARTY_INSTALLER, wallet=str(INSTALLER.pubkey()), bps=3_000),
    ]
    async with settlement_world(fabric, tmp_path, split=split) as w:
        end = aligned_now() - 10 * STEP
        exports = {0: [0, 1_001, 2_003, 3_010], 1: [500, 500, 1_777, 1_778], 2: [0, 0, 0, 9]}
        batch = [
            reading(w.devices[d], seq + 1, end + seq * STEP, 10 * seq, counter)
            for d, counters in exports.items()
            for seq, counter in enumerate(counters)
        ]
        reply = await w.submit(batch)
        assert (reply.accepted, reply.rejected) == (12, 0)
        settled = await w.settle()
        (settlement,) = settled.settlements
        assert settlement.state == pb.SETTLEMENT_STATE_COMPLETED
        assert all(settlement.signatures)
        assert settlement.HasField("completed_at")
        assert settlement.completed_at.ToNanoseconds() >= settlement.created_at.ToNanoseconds() > 0
        # 80 base units per Wh; each device's credit is split 70/30 exactly to the base unit.
        owed = {d: (c[-1] - c[0]) * 80 for d, c in exports.items()}
        assert settlement.amount_base_units == sum(owed.values())
        for d, device in enumerate(w.devices):
            balance = await w.utility_call("GetBalance", pb.GetBalanceRequest(wallet=str(device.pubkey())))
            (token,) = balance.balances
            owner = owed[d] - owed[d] * 3_000 // 10_000
            assert (token.credited_base_units, token.paid_base_units, token.on_chain_base_units) == (owner,) * 3
            assert token.pending_base_units == 0
        installer = await w.utility_call("GetBalance", pb.GetBalanceRequest(wallet=str(INSTALLER.pubkey())))
        assert installer.balances[0].on_chain_base_units == sum(v * 3_000 // 10_000 for v in owed.values())
        # Nothing left to pay: a second settle sends nothing.
        assert not (await w.settle()).settlements
        check = await w.utility_call("CheckLedger", pb.CheckLedgerRequest())
        assert check.ok, check
        (token_check,) = check.tokens
        assert token_check.credited_base_units == token_check.paid_base_units == token_check.supply_base_units
        payouts = await w.utility_call("ListPayouts", pb.ListPayoutsRequest(settlement_id=settlement.settlement_id))
        assert len(payouts.payouts) == settlement.payouts == 4
        assert {p.signature for p in payouts.payouts} <= set(settlement.signatures)
        # Four payments of one token program: one Batch invocation, or four.
        assert await token_invocations(fabric, settlement.signatures) == ([4] if batching else [1, 1, 1, 1])


async def token_invocations(fabric: Fabric, signatures: Sequence[str]) -> list[int]:
    """Per token-program invocation on chain, how many payments it made."""
    assert fabric.app.settlement is not None
    counts = []
    for signature in signatures:
        record = await fabric.app.settlement.chain.transaction(Signature.from_string(signature))
        assert record is not None
        assert record.error is None
        message = VersionedTransaction.from_bytes(record.raw).message
        keys = message.account_keys
        for ix in message.instructions:
            if keys[ix.program_id_index] == spl.TOKEN_2022_PROGRAM_ID:
                counts.append(batch_length(bytes(ix.data)))
    return counts


def batch_length(data: bytes) -> int:
    """Inner instructions of a token `Batch` (tag 255), else 1."""
    if data[0] != 255:
        return 1
    at, n = 1, 0
    while at < len(data):
        at += 2 + data[at + 1]
        n += 1
    return n


async def test_a_gap_is_split_over_the_missing_intervals_and_marked_estimated(fabric: Fabric, tmp_path: Path) -> None:
    async with settlement_world(fabric, tmp_path, devices=1) as w:
        (device,) = w.devices
        end = aligned_now() - 10 * STEP
        # Seqs 2 and 3 never arrive: seq 4 carries three intervals' energy (3,001 Wh).
        await w.submit([reading(device, 1, end, 0, 1_000), reading(device, 4, end + 3 * STEP, 0, 4_001)])
        await w.settle()
        stream = w.stub(w.routing.utility)
        credits = [
            e.credit
            async for page in stream.StreamSettlements(pb.StreamSettlementsRequest(until_caught_up=True))
            for e in page.events
            if e.HasField("credit")
        ]
        (credit,) = credits
        assert (credit.seq_first, credit.seq_last) == (1, 4)
        assert credit.energy_wh == credit.estimated_wh == 3_001
        assert credit.amount_base_units == 3_001 * 80


async def test_no_price_means_the_reading_waits_until_the_feed_reaches_it(fabric: Fabric, tmp_path: Path) -> None:
    feed = "pge/rtp"
    async with settlement_world(fabric, tmp_path, devices=1, price_feed_id=feed) as w:
        (device,) = w.devices
        end = aligned_now() - 10 * STEP
        await w.submit([reading(device, s + 1, end + s * STEP, 0, 1_000 * s) for s in range(5)])
        # A point valid for 1,800 s prices the first two intervals after the baseline only.
        points, signature = signed_points(feed, [(end, 120_000, 300)])
        published = await w.utility_call(
            "PublishPriceFeed", pb.PublishPriceFeedRequest(feed_id=feed, points=points, signature=signature)
        )
        assert published.accepted == 1
        await w.settle()
        balance = await w.utility_call("GetBalance", pb.GetBalanceRequest(wallet=str(device.pubkey())))
        assert balance.balances[0].credited_base_units == 2_000 * 120
        # A forged publication is refused; a point restated with another price is refused whole.
        forged, bad = signed_points(feed, [(end + 2 * STEP, 1, 1)], key=Keypair())
        await expect_error(
            w.utility_call("PublishPriceFeed", pb.PublishPriceFeedRequest(feed_id=feed, points=forged, signature=bad)),
            grpc.StatusCode.PERMISSION_DENIED,
            "BAD_ORACLE_SIGNATURE",
        )
        clash, sig = signed_points(feed, [(end, 999_999, 300), (end + 2 * STEP, 150_000, 250)])
        await expect_error(
            w.utility_call("PublishPriceFeed", pb.PublishPriceFeedRequest(feed_id=feed, points=clash, signature=sig)),
            grpc.StatusCode.FAILED_PRECONDITION,
            "POINT_CONFLICT",
        )
        later, sig = signed_points(feed, [(end + 2 * STEP, 150_000, 250)])
        await w.utility_call("PublishPriceFeed", pb.PublishPriceFeedRequest(feed_id=feed, points=later, signature=sig))
        await w.settle()
        balance = await w.utility_call("GetBalance", pb.GetBalanceRequest(wallet=str(device.pubkey())))
        assert balance.balances[0].credited_base_units == 2_000 * 120 + 2_000 * 150
        assert balance.balances[0].on_chain_base_units == balance.balances[0].credited_base_units


async def test_a_short_reserve_holds_the_program_until_funded(fabric: Fabric, tmp_path: Path) -> None:
    async with settlement_world(fabric, tmp_path, devices=1, fund=100_000) as w:
        (device,) = w.devices
        end = aligned_now() - 10 * STEP
        await w.submit([reading(device, 1, end, 0, 0), reading(device, 2, end + STEP, 0, 1_500)])
        await expect_error(w.settle(), grpc.StatusCode.FAILED_PRECONDITION, "RESERVE_SHORT")
        status = await w.utility_call("GetProgramSettlement", pb.GetProgramSettlementRequest(program_id=w.program_id))
        assert status.settlement.hold_reason == "RESERVE_SHORT"
        assert status.settlement.pending_base_units == 120_000
        balance = await w.utility_call("GetBalance", pb.GetBalanceRequest(wallet=str(device.pubkey())))
        assert balance.balances[0].on_chain_base_units == 0
        await w.utility_call("FundReserve", pb.FundReserveRequest(mint=w.mint, amount_base_units=100_000))
        (settlement,) = (await w.settle()).settlements
        assert settlement.amount_base_units == 120_000
        status = await w.utility_call("GetProgramSettlement", pb.GetProgramSettlementRequest(program_id=w.program_id))
        assert (status.settlement.hold_reason, status.settlement.paid_base_units) == ("", 120_000)
