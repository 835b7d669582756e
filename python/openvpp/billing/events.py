"""Bills in the settlement stream: issued, paid, past due, each appended in
the database transaction that makes it so."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from openvpp.settlement import events
from openvpp.store import billing_repo
from openvpp.v1 import settlement_pb2 as pb

ISSUED, PAID, PAST_DUE, COLLECTED = "bill_issued", "bill_paid", "bill_past_due", "bill_collected"


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


async def announce_collection(conn: AsyncConnection, collection_id: int, at_us: int) -> None:
    row = await billing_repo.collection(conn, collection_id)
    utility = await billing_repo.program_utility(conn, row.program_id)
    event = pb.SettlementEvent(program_id=row.program_id)
    event.bill_collected.CopyFrom(
        pb.BillEvent(
            account_ref=row.account_ref,
            period_start=row.period_start,
            period_end=row.period_end,
            amount_due_base_units=row.amount,
            payment_signature=row.signature or "",
        )
    )
    await events.append(conn, [(utility or "", event)], at_us=at_us)


__all__ = ["COLLECTED", "ISSUED", "PAID", "PAST_DUE", "announce", "announce_collection", "bill_event"]
