"""Use-case tokens applied to a bill: the holder signs one transaction that
burns the fewest tokens worth the amount due and pays exactly that from the
token's reserve into the utility's treasury; the bill is paid when it lands."""

from __future__ import annotations

import grpc
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.transaction import Transaction

from openvpp.chain import spl
from openvpp.v1 import billing_pb2 as pb
from openvpp.v1 import settlement_pb2 as S
from openvpp.v1 import settlement_pb2_grpc
from tests.integration.mtls import Fabric
from tests.integration.routing_world import PROGRAM
from tests.integration.test_billing import Billing, plan
from tests.integration.test_billing_autopay import (
    billed,  # noqa: F401 - the fixture
    billing_check,
    issue_now,
    runtime,
)
from tests.rpc import expect_error

# 1 token (6 decimals) redeems for 0.50 of the stablecoin.
VALUE = 500_000


async def token_held_by(b: Billing, fabric: Fabric, holder: Keypair, amount: int) -> str:
    """A use-case token of the billing utility with a funded reserve, and `amount` of it held by `holder`."""
    async with b.w.channel(b.w.utility) as channel:
        stub = settlement_pb2_grpc.SettlementServiceStub(channel)
        token = (
            await stub.CreateUseCaseToken(
                S.CreateUseCaseTokenRequest(
                    program_id=PROGRAM,
                    name="Home credits",
                    symbol="HOME",
                    unit=S.TOKEN_UNIT_USD,
                    decimals=6,
                    redemption_value_base_units=VALUE,
                )
            )
        ).token
        await stub.FundReserve(S.FundReserveRequest(mint=token.mint, amount_base_units=100_000_000))
    services = runtime(fabric).services
    mint, program, authority = Pubkey.from_string(token.mint), spl.TOKEN_2022_PROGRAM_ID, services.keyring
    payer = authority.fee_payer
    recent = await services.chain.latest_blockhash()
    raw = spl.signed(
        [
            spl.create_ata(payer.pubkey(), holder.pubkey(), mint, program),
            spl.mint_to(
                program,
                mint,
                spl.ata(holder.pubkey(), mint, program),
                authority.settlement_authority.pubkey(),
                amount,
                6,
            ),
        ],
        payer,
        [authority.settlement_authority],
        recent.blockhash,
    )
    (sent,) = await services.chain.send([raw])
    assert sent.error is None, sent
    return str(token.mint)


async def test_tokens_pay_an_issued_bill_at_their_redemption_value(billed: Billing, fabric: Fabric) -> None:  # noqa: F811
    alice = Keypair()
    mint = await token_held_by(billed, fabric, alice, 100 * 1_000_000)
    first, _ = await issue_now(fabric, billed)
    target = S.BillTarget(program_id=PROGRAM, account_ref="ACCT-1", period=first.period_start)
    async with billed.w.channel(billed.w.utility) as channel:
        stub = settlement_pb2_grpc.SettlementServiceStub(channel)
        # The plan does not take tokens yet.
        await expect_error(
            stub.PrepareRedemption(S.PrepareRedemptionRequest(mint=mint, holder=str(alice.pubkey()), pay_bill=target)),
            grpc.StatusCode.FAILED_PRECONDITION,
            "TOKENS_NOT_ACCEPTED",
        )
        await billed.stub().ConfigureBilling(
            pb.ConfigureBillingRequest(plan=plan(pb.BILLING_REGIME_NET_BILLING, accepts_tokens=True))
        )
        await expect_error(
            stub.PrepareRedemption(
                S.PrepareRedemptionRequest(mint=mint, holder=str(alice.pubkey()), amount_base_units=5, pay_bill=target)
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            field="amount_base_units",
        )
        prepared = await stub.PrepareRedemption(
            S.PrepareRedemptionRequest(mint=mint, holder=str(alice.pubkey()), pay_bill=target)
        )
        due = first.amount_due_base_units
        assert prepared.payout_base_units == due
        tx = Transaction.from_bytes(prepared.transaction)
        tx.partial_sign([alice], tx.message.recent_blockhash)
        done = (
            await stub.SubmitRedemption(
                S.SubmitRedemptionRequest(redemption_id=prepared.redemption_id, transaction=bytes(tx))
            )
        ).redemption
    assert done.state == S.REDEMPTION_STATE_COMPLETED
    burned = -(-due * 1_000_000 // VALUE)  # the fewest tokens worth the amount due
    assert done.amount_base_units == burned
    assert done.payout_base_units == due
    bill = (
        await billed.stub().GetBill(
            pb.GetBillRequest(program_id=PROGRAM, account_ref="ACCT-1", period=first.period_start)
        )
    ).bill
    assert (bill.state, bill.payment_signature) == (pb.BILL_STATE_PAID, done.signature)
    assert [(p.method, p.amount_base_units) for p in bill.payments] == [(pb.PAYMENT_METHOD_TOKENS, due)]
    services = runtime(fabric).services
    (held,) = await services.chain.accounts(
        [spl.ata(alice.pubkey(), Pubkey.from_string(mint), spl.TOKEN_2022_PROGRAM_ID)]
    )
    assert held is not None
    assert spl.token_amount(bytes(held.data)) == 100 * 1_000_000 - burned
    books = await billing_check(billed)
    assert books.ok, books.problems
    assert books.collected_base_units == due

    # Paid: nothing more to pay with tokens.
    async with billed.w.channel(billed.w.utility) as channel:
        await expect_error(
            settlement_pb2_grpc.SettlementServiceStub(channel).PrepareRedemption(
                S.PrepareRedemptionRequest(mint=mint, holder=str(alice.pubkey()), pay_bill=target)
            ),
            grpc.StatusCode.FAILED_PRECONDITION,
            "NOTHING_TO_PAY",
        )
