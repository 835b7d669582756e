"""The debit side of the demo, as the utility runs it: its NEM program bills
every enrolled account for the demo day from the tariff it publishes (as
OpenEI URDB JSON), imports only, because the program already pays exports
as SOLAR tokens; each account's running bill is read back over gRPC."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from openvpp.billing.html import exact, render_html
from openvpp.client.channel import channel_to
from openvpp.demo.routing import PROGRAM
from openvpp.demo.settlement import PERIODS, ZONE
from openvpp.v1 import billing_pb2 as pb
from openvpp.v1 import billing_pb2_grpc

CONCURRENT_READS = 16


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
            pb.ConfigureBillingRequest(
                plan=pb.BillingPlan(
                    program_id=PROGRAM,
                    regime=pb.BILLING_REGIME_IMPORTS_ONLY,
                    urdb_json=json.dumps(urdb_tariff()),
                    time_zone=ZONE.key,
                    cycle_day=min(day.day, 28),
                    true_up_month=12,
                    bills_from=day.isoformat(),
                )
            )
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


__all__ = ["Billed", "bill_accounts", "urdb_tariff"]
