"""The debit side of the demo, as the utility runs it: its NEM program bills
every enrolled account for the demo day from the tariff it publishes (as
OpenEI URDB JSON), imports only, because the program already pays exports
as SOLAR tokens; each account's running bill is read back over gRPC.

One household with panels is on classic net metering instead: its exports
are netted against its imports per TOU period on the bill, never paid as
tokens. Its wallet signs one capped Approve and continuous autopay collects
the netted bill on the embedded chain as it accrues. (A real customer buys
the stablecoin; here the operator's development faucet gives the wallet
some test stablecoin first.)"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from solders.transaction import Transaction

from openvpp.billing.html import exact, render_html
from openvpp.client.channel import channel_to
from openvpp.demo.fleet import FleetDevice
from openvpp.demo.routing import NETTED_PROGRAM, PROGRAM
from openvpp.demo.settlement import PERIODS, ZONE
from openvpp.v1 import billing_pb2 as pb
from openvpp.v1 import billing_pb2_grpc, settlement_pb2, settlement_pb2_grpc

CONCURRENT_READS = 16
# The household's test stablecoin, and the most its autopay may take.
HOUSEHOLD_FUNDS = 25_000_000
HOUSEHOLD_ALLOWANCE = 100_000_000
# Net surplus at true-up: the off-peak export price.
SURPLUS_RATE = 40_000
COLLECTED_WITHIN_S = 60.0


def urdb_tariff() -> dict[str, Any]:
    """The published TOU import prices as a URDB rate: one period per price."""
    prices = sorted({p[3] for p in PERIODS})
    hours = [next(prices.index(p[3]) for p in PERIODS if p[1] <= h < p[2]) for h in range(24)]
    return {
        "label": "pacific-e-tou",
        "name": "Pacific residential time-of-use",
        "energyratestructure": [[{"rate": price / 1_000_000}] for price in prices],
        "energyweekdayschedule": [hours] * 12,
        "energyweekendschedule": [hours] * 12,
    }


@dataclass
class Billed:
    accounts: int = 0
    due_base_units: int = 0
    total_micro: Fraction = Fraction(0)
    imported_wh: int = 0
    largest: pb.Bill | None = None
    bills: list[pb.Bill] = field(default_factory=list)


async def bill_accounts(target: str, utility: Path, accounts: list[str], day: dt.date, out: Path) -> Billed:
    """Configures the program's billing from `day` (periods start on its day of
    the month, so the first holds the demo day), then reads every account's bill."""
    billed = Billed()
    async with channel_to(target, utility) as channel:
        stub: Any = billing_pb2_grpc.BillingServiceStub(channel)
        await stub.ConfigureBilling(
            pb.ConfigureBillingRequest(plan=_plan(PROGRAM, pb.BILLING_REGIME_IMPORTS_ONLY, day))
        )
        gate = asyncio.Semaphore(CONCURRENT_READS)

        async def read(account: str) -> pb.Bill:
            async with gate:
                reply = await stub.GetBill(
                    pb.GetBillRequest(program_id=PROGRAM, account_ref=account, period=day.isoformat())
                )
                bill: pb.Bill = reply.bill
                return bill

        billed.bills = list(await asyncio.gather(*(read(a) for a in accounts)))
    for bill in billed.bills:
        billed.accounts += 1
        billed.due_base_units += bill.amount_due_base_units
        billed.total_micro += exact(bill.total_micro)
        billed.imported_wh += bill.imported_wh
        if billed.largest is None or bill.amount_due_base_units > billed.largest.amount_due_base_units:
            billed.largest = bill
    if billed.largest is not None:
        (out / "bill.html").write_text(render_html(billed.largest))
    return billed


def _plan(program: str, regime: int, day: dt.date, **fields: Any) -> pb.BillingPlan:
    return pb.BillingPlan(
        program_id=program,
        regime=regime,  # type: ignore[arg-type]
        urdb_json=json.dumps(urdb_tariff()),
        time_zone=ZONE.key,
        cycle_day=min(day.day, 28),
        true_up_month=12,
        bills_from=day.isoformat(),
        **fields,
    )


@dataclass
class Netted:
    account: str
    bill: pb.Bill
    autopay: pb.Autopay
    funded: str
    collected_in_s: float


async def bill_netted(
    target: str, operator: Path, utility: Path, household: FleetDevice, account: str, day: dt.date, out: Path
) -> Netted:
    """Net metering for one household, paid by continuous autopay from its own wallet."""
    wallet = household.der_id
    async with channel_to(target, operator) as channel:
        funded = await settlement_pb2_grpc.SettlementServiceStub(channel).FundTestWallet(
            settlement_pb2.FundTestWalletRequest(wallet=wallet, amount_base_units=HOUSEHOLD_FUNDS)
        )
    async with channel_to(target, utility) as channel:
        stub: Any = billing_pb2_grpc.BillingServiceStub(channel)
        await stub.ConfigureBilling(
            pb.ConfigureBillingRequest(
                plan=_plan(
                    NETTED_PROGRAM,
                    pb.BILLING_REGIME_NET_METERING,
                    day,
                    surplus_rate_micro_per_kwh=SURPLUS_RATE,
                    # Continuous: whatever has accrued is collected as soon as it is due.
                    collect_threshold_base_units=1,
                    payment_retries=3,
                )
            )
        )
        prepared = await stub.PrepareAutopay(
            pb.PrepareAutopayRequest(
                program_id=NETTED_PROGRAM, account_ref=account, holder=wallet, allowance_base_units=HOUSEHOLD_ALLOWANCE
            )
        )
        tx = Transaction.from_bytes(prepared.transaction)
        tx.partial_sign([household.keypair], tx.message.recent_blockhash)
        started = time.perf_counter()
        active = (
            await stub.SubmitAutopay(
                pb.SubmitAutopayRequest(program_id=NETTED_PROGRAM, account_ref=account, transaction=bytes(tx))
            )
        ).autopay
        request = pb.GetBillRequest(program_id=NETTED_PROGRAM, account_ref=account, period=day.isoformat())
        bill: pb.Bill = (await stub.GetBill(request)).bill
        # The server's billing pass collects it (every second in the demo).
        while active.state == pb.AUTOPAY_STATE_ACTIVE and time.perf_counter() - started < COLLECTED_WITHIN_S:
            bill = (await stub.GetBill(request)).bill
            if bill.payments and bill.amount_due_base_units == 0:
                break
            await asyncio.sleep(0.5)
    (out / "bill-netted.html").write_text(render_html(bill))
    return Netted(account, bill, active, funded.signature, time.perf_counter() - started)


__all__ = ["Billed", "Netted", "bill_accounts", "bill_netted", "urdb_tariff"]
