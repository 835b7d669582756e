"""Autopay on the embedded chain: the customer signs one capped Approve,
each issued bill is collected exactly once, and a bill the customer's
account cannot cover goes past due with the reason, with nothing taken."""

from __future__ import annotations

import asyncio
import csv
import io
import os
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path

import grpc
import pytest
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import Transaction
from sqlalchemy import text

from openvpp.billing import autopay
from openvpp.billing.bills import Bills
from openvpp.billing.plans import BillingPlans
from openvpp.chain import spl
from openvpp.server.compose import Runtime
from openvpp.v1 import billing_pb2 as pb
from openvpp.v1 import settlement_pb2, settlement_pb2_grpc
from tests.integration.mtls import Fabric
from tests.integration.routing_world import PROGRAM, world
from tests.integration.settlement_world import STEP, aligned_now, reading
from tests.integration.test_billing import Billing, plan
from tests.rpc import expect_error

USDC = 1_000_000  # base units of the 6-decimal test stablecoin


@pytest.fixture
async def billed(fabric: Fabric, tmp_path: Path) -> AsyncIterator[Billing]:
    async with world(fabric, tmp_path) as w:
        b = Billing(w)
        meter = await b.enroll("ACCT-1", "meter")
        neighbour = await b.enroll("ACCT-2", "neighbour")
        start = aligned_now() - 8 * STEP
        b.start = start
        await b.submit(
            [
                reading(meter, 1, start, 0, 0),
                reading(meter, 2, start + STEP, 1_200, 0),
                reading(neighbour, 1, start, 0, 0),
                reading(neighbour, 2, start + STEP, 800, 0),
            ]
        )
        await b.stub().ConfigureBilling(pb.ConfigureBillingRequest(plan=plan(pb.BILLING_REGIME_NET_BILLING)))
        try:
            yield b
        finally:
            for channel in b.channels:
                await channel.close()


def runtime(fabric: Fabric) -> Runtime:
    assert fabric.app.runtime is not None
    return fabric.app.runtime


async def fund(fabric: Fabric, wallet: Pubkey, amount: int) -> None:
    """Test stablecoin from the development faucet's mint authority."""
    services = runtime(fabric).services
    coin, payer = services.stablecoin, services.keyring.fee_payer
    assert coin.mint_authority is not None
    account = spl.ata(wallet, coin.mint, coin.program)
    recent = await services.chain.latest_blockhash()
    raw = spl.signed(
        [
            spl.create_ata(payer.pubkey(), wallet, coin.mint, coin.program),
            spl.mint_to(coin.program, coin.mint, account, coin.mint_authority.pubkey(), amount, coin.decimals),
        ],
        payer,
        [coin.mint_authority],
        recent.blockhash,
    )
    (sent,) = await services.chain.send([raw])
    assert sent.error is None, sent


async def holdings(fabric: Fabric, wallet: Pubkey) -> autopay.Funds:
    services = runtime(fabric).services
    coin = services.stablecoin
    (account,) = await services.chain.accounts([spl.ata(wallet, coin.mint, coin.program)])
    return autopay.funds(None if account is None else bytes(account.data))


async def enrol_autopay(b: Billing, account: str, holder: Keypair, allowance: int) -> pb.Autopay:
    stub = b.stub()
    prepared = await stub.PrepareAutopay(
        pb.PrepareAutopayRequest(
            program_id=PROGRAM, account_ref=account, holder=str(holder.pubkey()), allowance_base_units=allowance
        )
    )
    assert prepared.autopay.state == pb.AUTOPAY_STATE_PREPARED
    tx = Transaction.from_bytes(prepared.transaction)
    tx.partial_sign([holder], tx.message.recent_blockhash)
    submitted = await stub.SubmitAutopay(
        pb.SubmitAutopayRequest(program_id=PROGRAM, account_ref=account, transaction=bytes(tx))
    )
    result: pb.Autopay = submitted.autopay
    return result


async def issue_now(fabric: Fabric, b: Billing) -> list[pb.Bill]:
    """Issues the current periods as if they had ended, then collects them."""
    current = (await b.stub().GetBill(pb.GetBillRequest(program_id=PROGRAM, account_ref="ACCT-1"))).bill
    later = datetime.fromisoformat(current.period_end).replace(tzinfo=UTC) + timedelta(hours=2)
    plans = BillingPlans(fabric.app.db)
    bills = Bills(fabric.app.db, plans, clock_us=lambda: int(later.timestamp() * 1e6))
    assert await bills.close_ended() == 2
    billing = runtime(fabric).billing
    started = await billing.autopay.collect_due()
    await billing.autopay.outbox.drive_many(started)
    out = []
    for account in ("ACCT-1", "ACCT-2"):
        request = pb.GetBillRequest(program_id=PROGRAM, account_ref=account, period=current.period_start)
        out.append((await b.stub().GetBill(request)).bill)
    return out


async def test_autopay_collects_each_bill_once_and_past_dues_what_it_cannot(billed: Billing, fabric: Fabric) -> None:
    alice, bob = Keypair(), Keypair()
    await fund(fabric, alice.pubkey(), 50 * USDC)
    await fund(fabric, bob.pubkey(), 5 * USDC)
    active = await enrol_autopay(billed, "ACCT-1", alice, 40 * USDC)
    assert active.state == pb.AUTOPAY_STATE_ACTIVE
    delegate = runtime(fabric).services.keyring.settlement_authority.pubkey()
    on_chain = await holdings(fabric, alice.pubkey())
    assert (on_chain.delegate, on_chain.allowance) == (str(delegate), 40 * USDC)
    assert (await enrol_autopay(billed, "ACCT-2", bob, 40 * USDC)).state == pb.AUTOPAY_STATE_ACTIVE

    first, second = await issue_now(fabric, billed)
    # 1.2 kWh at 0.25 $/kWh plus the $10 fixed charge.
    assert first.amount_due_base_units == 300_000 + 10 * USDC
    assert first.state == pb.BILL_STATE_PAID
    assert first.payment_signature
    after = await holdings(fabric, alice.pubkey())
    assert after.balance == 50 * USDC - first.amount_due_base_units
    assert after.allowance == 40 * USDC - first.amount_due_base_units
    assert second.state == pb.BILL_STATE_PAST_DUE
    assert second.past_due_reason.startswith("INSUFFICIENT_FUNDS")
    assert (await holdings(fabric, bob.pubkey())).balance == 5 * USDC  # nothing taken

    # Collecting again finds nothing to do: each bill is paid at most once.
    assert await runtime(fabric).billing.autopay.collect_due() == []
    assert (await holdings(fabric, alice.pubkey())).balance == after.balance
    record = await runtime(fabric).services.chain.transaction(Signature.from_string(first.payment_signature))
    assert record is not None
    assert record.error is None

    # The books: both bills billed, one collected, the other receivable; the payment found on chain.
    books = await billing_check(billed)
    assert books.ok, books.problems
    due = first.amount_due_base_units + second.amount_due_base_units
    assert (books.billed_base_units, books.collected_base_units) == (due, first.amount_due_base_units)
    assert books.receivable_base_units == second.amount_due_base_units
    assert (books.bills, books.payments) == (2, 1)

    async with billed.w.channel(billed.w.utility) as channel:
        stub = settlement_pb2_grpc.SettlementServiceStub(channel)
        kinds = [
            (kind, getattr(e, kind).account_ref)
            async for reply in stub.StreamSettlements(settlement_pb2.StreamSettlementsRequest(until_caught_up=True))
            for e in reply.events
            if (kind := e.WhichOneof("event") or "").startswith("bill_")
        ]
    assert ("bill_issued", "ACCT-1") in kinds
    assert ("bill_paid", "ACCT-1") in kinds
    assert ("bill_past_due", "ACCT-2") in kinds
    assert kinds.index(("bill_issued", "ACCT-1")) < kinds.index(("bill_paid", "ACCT-1"))

    # The same bill through the CLI: a table, exact CSV and the customer's HTML page.
    target = ["--target", fabric.target, "--bundle", str(billed.w.utility)]
    period = ["--period", first.period_start]
    page = billed.w.fabric.data_dir / "bill.html"
    shown = await cli("bill", "show", PROGRAM, "ACCT-1", *period, "--html", str(page), *target)
    assert "paid by" in shown
    html = page.read_text()
    assert first.payment_signature in html
    assert "amount due" in html
    exported = await cli("bill", "export", PROGRAM, "ACCT-1", *period, "--csv", *target)
    rows = list(csv.DictReader(io.StringIO(exported)))
    assert {r["kind"] for r in rows} == {"energy", "fixed_monthly"}
    assert sum(Fraction(r["amount_micro"]) for r in rows) == first.amount_due_base_units
    listed = await cli("bill", "list", PROGRAM, *target)
    assert "ACCT-2" in listed


async def billing_check(b: Billing) -> settlement_pb2.BillingCheck:
    async with b.w.channel(b.w.utility) as channel:
        checked = await settlement_pb2_grpc.SettlementServiceStub(channel).CheckLedger(
            settlement_pb2.CheckLedgerRequest()
        )
    (books,) = [c for c in checked.billing if c.program_id == PROGRAM]
    assert checked.ok == books.ok or not books.ok
    return books


async def test_a_past_due_bill_is_retried_by_the_plan_and_paid_once(billed: Billing, fabric: Fabric) -> None:
    alice, bob = Keypair(), Keypair()
    await fund(fabric, alice.pubkey(), 5 * USDC)
    await fund(fabric, bob.pubkey(), 5 * USDC)
    stub = billed.stub()
    await stub.ConfigureBilling(
        pb.ConfigureBillingRequest(
            plan=plan(pb.BILLING_REGIME_NET_BILLING, payment_retries=1, retry_interval_seconds=3_600)
        )
    )
    await enrol_autopay(billed, "ACCT-1", alice, 40 * USDC)
    await enrol_autopay(billed, "ACCT-2", bob, 40 * USDC)
    first, second = await issue_now(fabric, billed)
    for bill in (first, second):
        assert bill.state == pb.BILL_STATE_PAST_DUE
        assert bill.past_due_reason.startswith("INSUFFICIENT_FUNDS")
        assert bill.attempts == 1
        assert bill.HasField("next_attempt_at")
    autopayer = runtime(fabric).billing.autopay
    assert await autopayer.collect_due() == []  # the retry is not due yet

    await fund(fabric, alice.pubkey(), 50 * USDC)
    system = autopayer.clock_us
    autopayer.clock_us = lambda: system() + 2 * 3_600_000_000  # the retry interval has passed
    try:
        started = await autopayer.collect_due()
        assert len(started) == 1  # alice's; bob still cannot pay and is marked past due again
        await autopayer.outbox.drive_many(started)
        assert await autopayer.collect_due() == []
    finally:
        autopayer.clock_us = system

    async def bill_of(account: str) -> pb.Bill:
        request = pb.GetBillRequest(program_id=PROGRAM, account_ref=account, period=first.period_start)
        found: pb.Bill = (await stub.GetBill(request)).bill
        return found

    paid, exhausted = await bill_of("ACCT-1"), await bill_of("ACCT-2")
    assert (paid.state, paid.attempts) == (pb.BILL_STATE_PAID, 2)
    assert [(m.method, m.amount_base_units) for m in paid.payments] == [
        (pb.PAYMENT_METHOD_AUTOPAY, paid.amount_due_base_units)
    ]
    assert paid.payments[0].signature == paid.payment_signature
    assert (await holdings(fabric, alice.pubkey())).balance == 55 * USDC - paid.amount_due_base_units
    assert (exhausted.state, exhausted.attempts) == (pb.BILL_STATE_PAST_DUE, 2)
    assert not exhausted.HasField("next_attempt_at")  # one retry, used: never tried again on its own
    assert (await holdings(fabric, bob.pubkey())).balance == 5 * USDC
    books = await billing_check(billed)
    assert books.ok, books.problems
    assert books.receivable_base_units == exhausted.amount_due_base_units


async def test_the_ledger_check_finds_a_payment_missing_from_the_journal(billed: Billing, fabric: Fabric) -> None:
    alice = Keypair()
    await fund(fabric, alice.pubkey(), 50 * USDC)
    await enrol_autopay(billed, "ACCT-1", alice, 40 * USDC)
    first, _ = await issue_now(fabric, billed)
    assert first.state == pb.BILL_STATE_PAID
    assert (await billing_check(billed)).ok
    async with fabric.app.db.write() as conn:
        await conn.execute(
            text("DELETE FROM ledger_lines WHERE entry_id IN (SELECT id FROM ledger_entries WHERE kind = 'bill_paid')")
        )
    books = await billing_check(billed)
    assert not books.ok
    assert any(p.startswith("collected 0 in the journal") for p in books.problems), books.problems
    assert any(p.startswith("receivable") for p in books.problems), books.problems


async def cli(*args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "openvpp",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "COLUMNS": "200"},
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    return out.decode()


async def test_an_allowance_below_the_bill_is_past_due_and_a_changed_approve_is_refused(
    billed: Billing, fabric: Fabric
) -> None:
    alice = Keypair()
    await fund(fabric, alice.pubkey(), 50 * USDC)
    stub = billed.stub()
    prepared = await stub.PrepareAutopay(
        pb.PrepareAutopayRequest(
            program_id=PROGRAM, account_ref="ACCT-1", holder=str(alice.pubkey()), allowance_base_units=1 * USDC
        )
    )
    # Sent without the holder's signature: only the holder authorises it.
    tx = Transaction.from_bytes(prepared.transaction)
    await expect_error(
        stub.SubmitAutopay(pb.SubmitAutopayRequest(program_id=PROGRAM, account_ref="ACCT-1", transaction=bytes(tx))),
        grpc.StatusCode.INVALID_ARGUMENT,
        "BAD_SIGNATURE",
    )
    assert (await enrol_autopay(billed, "ACCT-1", alice, 1 * USDC)).state == pb.AUTOPAY_STATE_ACTIVE
    first, _ = await issue_now(fabric, billed)
    assert first.state == pb.BILL_STATE_PAST_DUE
    assert first.past_due_reason.startswith("INSUFFICIENT_ALLOWANCE")
    assert (await holdings(fabric, alice.pubkey())).balance == 50 * USDC


async def test_continuous_autopay_collects_the_running_bill_and_the_issued_bill_asks_only_for_the_rest(
    billed: Billing, fabric: Fabric
) -> None:
    alice = Keypair()
    await fund(fabric, alice.pubkey(), 50 * USDC)
    stub = billed.stub()
    await stub.ConfigureBilling(
        pb.ConfigureBillingRequest(plan=plan(pb.BILLING_REGIME_NET_BILLING, collect_threshold_base_units=100_000))
    )
    await enrol_autopay(billed, "ACCT-1", alice, 40 * USDC)
    billing = runtime(fabric).billing

    async def collect() -> int:
        started = await billing.autopay.collect_running(billing.bills)
        await billing.autopay.outbox.drive_many(started)
        return len(started)

    assert await collect() == 1
    bill = (await stub.GetBill(pb.GetBillRequest(program_id=PROGRAM, account_ref="ACCT-1"))).bill
    assert bill.state == pb.BILL_STATE_OPEN
    assert bill.collected_base_units == 10 * USDC + 300_000  # the fixed charge and 1.2 kWh so far
    assert bill.amount_due_base_units == 0
    assert (await holdings(fabric, alice.pubkey())).balance == 50 * USDC - bill.collected_base_units
    assert await collect() == 0  # nothing new has accrued: nothing collected twice

    meter = billed.devices["ACCT-1"][0]
    await billed.submit([reading(meter, 3, billed.start + 2 * STEP, 1_600, 0)])
    assert await collect() == 1  # the next 0.4 kWh reached the threshold
    bill = (await stub.GetBill(pb.GetBillRequest(program_id=PROGRAM, account_ref="ACCT-1"))).bill
    assert bill.collected_base_units == 10 * USDC + 400_000
    assert (await holdings(fabric, alice.pubkey())).balance == 50 * USDC - 10 * USDC - 400_000

    first, _ = await issue_now(fabric, billed)
    assert first.collected_base_units == 10 * USDC + 400_000
    assert first.amount_due_base_units == 0
    assert first.state == pb.BILL_STATE_ISSUED  # nothing left to collect
    async with billed.w.channel(billed.w.utility) as channel:
        events = [
            e
            async for reply in settlement_pb2_grpc.SettlementServiceStub(channel).StreamSettlements(
                settlement_pb2.StreamSettlementsRequest(until_caught_up=True)
            )
            for e in reply.events
            if e.WhichOneof("event") == "bill_collected"
        ]
    assert [e.bill_collected.amount_due_base_units for e in events] == [10 * USDC + 300_000, 100_000]
    books = await billing_check(billed)
    assert books.ok, books.problems
    # ACCT-2 (no autopay) was issued too and is receivable.
    assert books.collected_base_units == 10 * USDC + 400_000
    assert books.billed_base_units == books.collected_base_units + books.receivable_base_units
    assert (books.receivable_base_units, books.payments) == (10 * USDC + 200_000, 2)


async def test_bad_autopay_and_bill_requests_are_refused_with_the_field(billed: Billing) -> None:
    stub = billed.stub()
    holder = Keypair()
    await expect_error(
        stub.PrepareAutopay(
            pb.PrepareAutopayRequest(
                program_id=PROGRAM, account_ref="ACCT-1", holder="not-a-key", allowance_base_units=1
            )
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_ADDRESS",
        "holder",
    )
    await expect_error(
        stub.PrepareAutopay(
            pb.PrepareAutopayRequest(program_id=PROGRAM, account_ref="ACCT-1", holder=str(holder.pubkey()))
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        field="allowance_base_units",
    )
    await expect_error(
        stub.PrepareAutopay(
            pb.PrepareAutopayRequest(
                program_id=PROGRAM, account_ref="NOBODY", holder=str(holder.pubkey()), allowance_base_units=1
            )
        ),
        grpc.StatusCode.NOT_FOUND,
        "ACCOUNT_NOT_FOUND",
    )
    await expect_error(
        stub.GetAutopay(pb.GetAutopayRequest(program_id=PROGRAM, account_ref="ACCT-1")),
        grpc.StatusCode.NOT_FOUND,
        "AUTOPAY_NOT_FOUND",
    )
    prepared = await stub.PrepareAutopay(
        pb.PrepareAutopayRequest(
            program_id=PROGRAM, account_ref="ACCT-1", holder=str(holder.pubkey()), allowance_base_units=5
        )
    )
    other = await stub.PrepareAutopay(
        pb.PrepareAutopayRequest(
            program_id=PROGRAM, account_ref="ACCT-2", holder=str(holder.pubkey()), allowance_base_units=7
        )
    )
    # ACCT-2's Approve, signed, sent as ACCT-1's: not the transaction prepared for it.
    changed = Transaction.from_bytes(other.transaction)
    changed.partial_sign([holder], changed.message.recent_blockhash)
    await expect_error(
        stub.SubmitAutopay(
            pb.SubmitAutopayRequest(program_id=PROGRAM, account_ref="ACCT-1", transaction=bytes(changed))
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "MESSAGE_CHANGED",
        "transaction",
    )
    await expect_error(
        stub.SubmitAutopay(pb.SubmitAutopayRequest(program_id=PROGRAM, account_ref="ACCT-1", transaction=b"\x01")),
        grpc.StatusCode.INVALID_ARGUMENT,
        "MALFORMED",
    )
    # Nothing was half-applied: ACCT-1's autopay is still only prepared.
    assert (await stub.GetAutopay(pb.GetAutopayRequest(program_id=PROGRAM, account_ref="ACCT-1"))).autopay.state == (
        pb.AUTOPAY_STATE_PREPARED
    )
    assert prepared.autopay.allowance_base_units == 5

    await expect_error(
        stub.GetBill(pb.GetBillRequest(program_id=PROGRAM, account_ref="ACCT-1", period="yesterday")),
        grpc.StatusCode.INVALID_ARGUMENT,
        field="period",
    )
    future = (datetime.now(UTC) + timedelta(days=70)).date().isoformat()
    await expect_error(
        stub.GetBill(pb.GetBillRequest(program_id=PROGRAM, account_ref="ACCT-1", period=future)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "PERIOD_IN_FUTURE",
    )
    await expect_error(
        stub.ListBills(pb.ListBillsRequest(program_id=PROGRAM, page_token="x")),
        grpc.StatusCode.INVALID_ARGUMENT,
        field="page_token",
    )
