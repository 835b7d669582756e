"""Pay-by-request: a Solana Pay transfer request per issued bill, paid by the
customer's own wallet on the embedded chain and matched by its reference."""

from __future__ import annotations

import urllib.parse
from decimal import Decimal

import grpc
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from openvpp.chain import spl
from openvpp.v1 import billing_pb2 as pb
from tests.integration.mtls import Fabric
from tests.integration.routing_world import PROGRAM
from tests.integration.test_billing import Billing
from tests.integration.test_billing_autopay import (
    USDC,
    billed,  # noqa: F401 - the fixture
    billing_check,
    enrol_autopay,
    fund,
    holdings,
    issue_now,
    runtime,
)
from tests.rpc import expect_error


async def pay_as_wallet(fabric: Fabric, payer: Keypair, url: str, amount: int | None = None) -> str:
    """What a Solana Pay wallet does with a transfer request URL: a TransferChecked
    of the amount to the recipient's token account, naming the reference."""
    parsed = urllib.parse.urlparse(url)
    assert parsed.scheme == "solana"
    query = dict(urllib.parse.parse_qsl(parsed.query))
    services = runtime(fabric).services
    coin = services.stablecoin
    assert query["spl-token"] == str(coin.mint)
    recipient, reference = Pubkey.from_string(parsed.path), Pubkey.from_string(query["reference"])
    units = int(Decimal(query["amount"]) * 10**coin.decimals) if amount is None else amount
    transfer = spl.transfer(
        coin.program,
        spl.ata(payer.pubkey(), coin.mint, coin.program),
        coin.mint,
        spl.ata(recipient, coin.mint, coin.program),
        payer.pubkey(),
        units,
        coin.decimals,
    )
    named = Instruction(transfer.program_id, transfer.data, [*transfer.accounts, AccountMeta(reference, False, False)])
    await services.chain.airdrop(payer.pubkey(), 1_000_000_000)
    recent = await services.chain.latest_blockhash()
    raw = spl.signed([spl.memo(query["memo"]), named], payer, [], recent.blockhash)
    (sent,) = await services.chain.send([raw])
    assert sent.error is None, sent
    return str(sent.signature)


async def test_a_bill_is_paid_by_its_solana_pay_request_exactly_once(billed: Billing, fabric: Fabric) -> None:  # noqa: F811
    stub = billed.stub()
    await expect_error(
        stub.RequestBillPayment(pb.RequestBillPaymentRequest(program_id=PROGRAM, account_ref="ACCT-1")),
        grpc.StatusCode.FAILED_PRECONDITION,
        "BILL_NOT_ISSUED",
    )
    first, _ = await issue_now(fabric, billed)
    assert first.state == pb.BILL_STATE_ISSUED
    asked = pb.RequestBillPaymentRequest(program_id=PROGRAM, account_ref="ACCT-1", period=first.period_start)
    request = (await stub.RequestBillPayment(asked)).request
    assert request.state == pb.PAYMENT_REQUEST_STATE_OPEN
    assert request.amount_base_units == first.amount_due_base_units
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlparse(request.url).query))
    assert Decimal(query["amount"]) == Decimal(first.amount_due_base_units) / USDC
    assert query["reference"] == request.reference
    again = (await stub.RequestBillPayment(asked)).request
    assert again.reference == request.reference  # one request per bill

    alice = Keypair()
    await fund(fabric, alice.pubkey(), 50 * USDC)
    requests = runtime(fabric).billing.requests
    # One base unit short does not pay it.
    await pay_as_wallet(fabric, alice, request.url, request.amount_base_units - 1)
    assert await requests.detect() == 0
    signature = await pay_as_wallet(fabric, alice, request.url)
    assert await requests.detect() == 1
    assert await requests.detect() == 0  # matched once

    bill = (
        await stub.GetBill(pb.GetBillRequest(program_id=PROGRAM, account_ref="ACCT-1", period=first.period_start))
    ).bill
    assert (bill.state, bill.payment_signature) == (pb.BILL_STATE_PAID, signature)
    assert [(p.method, p.amount_base_units) for p in bill.payments] == [
        (pb.PAYMENT_METHOD_PAYMENT_REQUEST, first.amount_due_base_units)
    ]
    paid = (await stub.RequestBillPayment(asked)).request
    assert (paid.state, paid.signature) == (pb.PAYMENT_REQUEST_STATE_PAID, signature)
    books = await billing_check(billed)
    assert books.ok, books.problems
    assert books.collected_base_units == first.amount_due_base_units
    # The short transfer reached the treasury too, but paid nothing.
    assert (await holdings(fabric, alice.pubkey())).balance == 50 * USDC - 2 * first.amount_due_base_units + 1


async def test_autopay_leaves_a_requested_bill_to_its_request(billed: Billing, fabric: Fabric) -> None:  # noqa: F811
    bob = Keypair()
    await fund(fabric, bob.pubkey(), 50 * USDC)
    stub = billed.stub()
    # Issued before autopay is active, so the bill waits; then the customer is asked to pay it.
    _, second = await issue_now(fabric, billed)
    assert second.state == pb.BILL_STATE_ISSUED
    await stub.RequestBillPayment(
        pb.RequestBillPaymentRequest(program_id=PROGRAM, account_ref="ACCT-2", period=second.period_start)
    )
    await enrol_autopay(billed, "ACCT-2", bob, 40 * USDC)
    assert await runtime(fabric).billing.autopay.collect_due() == []
    assert (await holdings(fabric, bob.pubkey())).balance == 50 * USDC
