"""What a utility's books need from the stream, and totals that do not depend
on how the cadence happened to batch the readings."""

from __future__ import annotations

import asyncio
import csv
import io
import subprocess
import sys
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from solders.keypair import Keypair
from solders.transaction import Transaction

from openvpp.integration import ca
from openvpp.v1 import settlement_pb2 as pb
from tests.integration.mtls import Fabric
from tests.integration.settlement_world import (
    ALL_DAYS,
    FLAT_EXPORT,
    STEP,
    SettlementWorld,
    aligned_now,
    reading,
    settlement_world,
)
from tests.reference import money
from tests.rpc import expect_error

INSTALLER = str(Keypair().pubkey())
SPLIT = [
    pb.SplitShare(party=pb.PARTY_OWNER, bps=9_500),
    pb.SplitShare(party=pb.PARTY_INSTALLER, wallet=INSTALLER, bps=500),
]
# The README's token: kWh units, 3 decimals, redeemable for 0.15 stablecoin each.
DECIMALS, VALUE = 3, 150_000


def _plan(w: SettlementWorld, start: int) -> tuple[list[list[tuple[bytes, bytes]]], money.Scenario]:
    """Four batches of readings of every device, and what the contract says they pay."""
    energies = [[137, 1_211, 3, 999, 1_700, 1], [1_333, 7, 401, 50, 1_899, 777], [0, 1, 2, 3, 4, 5]]
    batches: list[list[tuple[bytes, bytes]]] = [[] for _ in range(4)]
    scenario = money.Scenario(
        "UTC", [money.Period(ALL_DAYS, 0, 1440, FLAT_EXPORT)], DECIMALS, VALUE, 6, [], [("", 9_500), (INSTALLER, 500)]
    )
    for device, series in zip(w.devices, energies, strict=True):
        exported, rows = 0, []
        for i, e in enumerate(series):
            exported += e if i else 0
            rows.append(money.Reading(i + 1, start + i * STEP, STEP, exported))
            batches[min(i * 4 // len(series), 3)].append(reading(device, i + 1, start + i * STEP, 0, exported))
        scenario.readings.append(rows)
    return batches, scenario


async def _balances(w: SettlementWorld, wallets: list[str]) -> dict[str, int]:
    out = {}
    for wallet in wallets:
        reply = await w.utility_call("GetBalance", pb.GetBalanceRequest(wallet=wallet))
        out[wallet] = sum(b.on_chain_base_units for b in reply.balances if b.mint == w.mint)
    return out


async def _events(w: SettlementWorld) -> list[pb.SettlementEvent]:
    stub = w.stub(w.routing.utility)
    request = pb.StreamSettlementsRequest(until_caught_up=True)
    return [e async for page in stub.StreamSettlements(request) for e in page.events]


async def _pays_the_reference(fabric: Fabric, tmp_path: Path, settle: str) -> None:
    kwargs: dict[str, Any] = {"devices": 3, "split": SPLIT, "decimals": DECIMALS, "redemption_value": VALUE}
    async with settlement_world(fabric, tmp_path, **kwargs) as w:
        batches, scenario = _plan(w, aligned_now() - 20 * STEP)
        owners = [str(d.pubkey()) for d in w.devices]
        want = money.paid(scenario, owners)
        for batch in batches:
            assert (await w.submit(batch)).rejected == 0
            if settle == "each batch":
                await w.settle()
            elif settle == "cadence":
                await asyncio.sleep(0.3)
        if settle != "cadence":
            await w.settle()
        for _ in range(100):
            if await _balances(w, list(want)) == want:
                break
            await asyncio.sleep(0.2)
        assert await _balances(w, list(want)) == want
        assert sum(want.values()) > 0
        assert (await w.utility_call("CheckLedger", pb.CheckLedgerRequest())).ok


@pytest.mark.parametrize("settle", ["once at the end", "each batch"])
async def test_the_same_readings_pay_every_party_the_same_however_settled(
    fabric: Fabric, tmp_path: Path, settle: str
) -> None:
    await _pays_the_reference(fabric, tmp_path, settle)


@pytest.mark.settings(settle_interval_seconds=0.2)
async def test_a_fast_cadence_pays_what_one_settlement_pays(fabric: Fabric, tmp_path: Path) -> None:
    await _pays_the_reference(fabric, tmp_path, "cadence")


async def test_the_readme_token_redeems_for_what_the_export_was_worth(fabric: Fabric, tmp_path: Path) -> None:
    async with settlement_world(fabric, tmp_path, devices=1, decimals=DECIMALS, redemption_value=VALUE) as w:
        (device,) = w.devices
        end = aligned_now() - 10 * STEP
        # 1,814 Wh exported at 0.08 stablecoin/kWh is worth 145,120 stablecoin base units.
        assert (await w.submit([reading(device, 1, end, 0, 0), reading(device, 2, end + STEP, 0, 1_814)])).rejected == 0
        await w.settle()
        (balance,) = (await w.utility_call("GetBalance", pb.GetBalanceRequest(wallet=str(device.pubkey())))).balances
        # 145,120 x 10^3 / 150,000 = 967.47: 967 base units, not 145 (the token's decimals alone).
        assert balance.on_chain_base_units == 967
        assert 967 * VALUE // 10**DECIMALS == 145_050
        # The auditor's view: `openvpp statement --csv` shows how 967 was made.
        command = [
            sys.executable,
            "-m",
            "openvpp",
            "statement",
            "--target",
            fabric.target,
            "--bundle",
            str(fabric.data_dir / "operator"),
            "--wallet",
            str(device.pubkey()),
            "--mint",
            w.mint,
            "--csv",
        ]
        run = await asyncio.to_thread(subprocess.run, command, capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stderr
        (credit, payout) = list(csv.DictReader(io.StringIO(run.stdout)))
        assert (credit["kind"], credit["energy_wh"], credit["value"]) == ("credit", "1814", "145120")
        assert (credit["exact_share"], credit["amount_base_units"], credit["carry_after"]) == (
            "14512/15",
            "967",
            "7/15",
        )
        assert (payout["kind"], payout["amount_base_units"], payout["credit_ids"]) == ("payout", "967", credit["id"])
        assert payout["signature"]


async def test_a_backend_links_every_reading_to_its_signature_and_follows_redemptions(
    fabric: Fabric, tmp_path: Path
) -> None:
    kwargs: dict[str, Any] = {"devices": 3, "split": SPLIT, "decimals": DECIMALS, "redemption_value": VALUE}
    async with settlement_world(fabric, tmp_path, **kwargs) as w:
        batches, _ = _plan(w, aligned_now() - 20 * STEP)
        for batch in batches:
            await w.submit(batch)
        await w.submit(batches[0], batch_id="again")  # every reading a duplicate
        await w.settle()
        events = await _events(w)
        credits = {e.credit.credit_id: e.credit for e in events if e.HasField("credit")}
        paid_by = {
            i: e.payout_sent.payout_id for e in events if e.HasField("payout_sent") for i in e.payout_sent.credit_ids
        }
        signature = {
            e.payout_confirmed.payout_id: e.payout_confirmed.signature for e in events if e.HasField("payout_confirmed")
        }
        assert credits
        for credit_id, credit in credits.items():
            if credit.amount_base_units:
                assert signature[paid_by[credit_id]], credit
            else:
                assert credit_id not in paid_by
        # Each device's readings 2..6 are covered by its owner's credits exactly once.
        for device in w.devices:
            mine = [c for c in credits.values() if c.der_id == str(device.pubkey()) and c.party == pb.PARTY_OWNER]
            covered = sorted(s for c in mine for s in range(c.seq_first, c.seq_last + 1))
            assert covered == list(range(1, 7)) or covered == list(range(2, 7)), covered
        (duplicates,) = [e.readings for e in events if e.HasField("readings") and e.readings.batch_id == "again"]
        assert dict(duplicates.rejected_by_reason) == {"READING_VERDICT_DUPLICATE": len(batches[0])}

        holder = w.devices[0]
        stub = w.stub(w.routing.utility)
        prepared = await stub.PrepareRedemption(
            pb.PrepareRedemptionRequest(mint=w.mint, holder=str(holder.pubkey()), amount_base_units=100)
        )
        tx = Transaction.from_bytes(prepared.transaction)
        tx.partial_sign([holder], tx.message.recent_blockhash)
        await stub.SubmitRedemption(
            pb.SubmitRedemptionRequest(redemption_id=prepared.redemption_id, transaction=bytes(tx))
        )
        after = [e for e in await _events(w) if e.HasField("redemption")]
        states = [e.redemption.redemption.state for e in after]
        assert states == [pb.REDEMPTION_STATE_PREPARED, pb.REDEMPTION_STATE_SUBMITTED, pb.REDEMPTION_STATE_COMPLETED]
        done = after[-1].redemption.redemption
        assert (done.amount_base_units, done.payout_base_units) == (100, 100 * VALUE // 10**DECIMALS)
        assert done.signature == str(tx.signatures[0])
        assert after[-1].program_id == w.program_id
        check = await stub.CheckLedger(pb.CheckLedgerRequest())
        assert check.ok
        assert {t.mint: t.redemptions for t in check.tokens}[w.mint] == 1


async def test_a_statement_refuses_bad_input_and_other_tenants(fabric: Fabric, tmp_path: Path) -> None:
    async with settlement_world(fabric, tmp_path, devices=1) as w:
        owner = str(w.devices[0].pubkey())
        utility = w.stub(w.routing.utility)
        await expect_error(
            utility.GetStatement(pb.GetStatementRequest(wallet="not-base58!", mint=w.mint)),
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_ADDRESS",
            "wallet",
        )
        await expect_error(
            utility.GetStatement(pb.GetStatementRequest(wallet=owner, mint=str(Keypair().pubkey()))),
            grpc.StatusCode.NOT_FOUND,
            "TOKEN_NOT_FOUND",
        )
        backwards = pb.GetStatementRequest(wallet=owner, mint=w.mint, to=Timestamp(seconds=1))
        getattr(backwards, "from").CopyFrom(Timestamp(seconds=2))
        await expect_error(utility.GetStatement(backwards), grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD", "to")
        # Its own vendor and utility may read it; another vendor, and another utility, may not.
        assert (await w.stub(w.routing.solarco).GetStatement(pb.GetStatementRequest(wallet=owner, mint=w.mint))).wallet
        assert (await utility.GetStatement(pb.GetStatementRequest(wallet=owner, mint=w.mint))).wallet == owner
        other = await fabric.onboard(ca.Role.UTILITY, "atlantic")
        for bundle in (w.routing.voltbox, other):
            await expect_error(
                w.stub(bundle).GetStatement(pb.GetStatementRequest(wallet=owner, mint=w.mint)),
                grpc.StatusCode.PERMISSION_DENIED,
                "CROSS_TENANT",
            )
