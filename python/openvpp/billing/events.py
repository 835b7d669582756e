"""Bills in the settlement stream: issued, paid, past due, each appended in
the database transaction that makes it so."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from openvpp.settlement import events
from openvpp.store import billing_repo
from openvpp.v1 import settlement_pb2 as pb

ISSUED, PAID, PAST_DUE = "bill_issued", "bill_paid", "bill_past_due"


def bill_event(row: Any) -> pb.BillEvent:
    return pb.BillEvent(
        account_ref=row.account_ref,
        period_start=row.period_start,
        period_end=row.period_end,
        amount_due_base_units=row.amount_due,
        payment_signature=row.payment_signature or "",
        reason=row.payment_reason,
    )


async def announce(conn: AsyncConnection, kind: str, bill_id: int, at_us: int) -> None:
    row = await billing_repo.bill_by_id(conn, bill_id)
    utility = await billing_repo.program_utility(conn, row.program_id)
    event = pb.SettlementEvent(program_id=row.program_id)
    getattr(event, kind).CopyFrom(bill_event(row))
    await events.append(conn, [(utility or "", event)], at_us=at_us)


__all__ = ["ISSUED", "PAID", "PAST_DUE", "announce", "bill_event"]
