"""Billing in the double-entry journal, in the stablecoin: an issued bill's
amount due moves from the program's billed account to the customer's
receivable; a payment moves it from receivable to collected; a collection
from an open bill (continuous autopay) is billed and collected at once.
Each posting is made in the database transaction that changes the bill."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from openvpp.settlement.ledger.journal import post_entry
from openvpp.store import billing_repo, settlement_repo

BILLED, RECEIVABLE, COLLECTED = (
    billing_repo.LEDGER_BILLED,
    billing_repo.LEDGER_RECEIVABLE,
    billing_repo.LEDGER_COLLECTED,
)


def receivable(program_id: str, account_ref: str) -> str:
    # Program ids are "<utility>/<code>" without spaces, so the first space ends one.
    return f"{RECEIVABLE}{program_id} {account_ref}"


async def _mint(conn: AsyncConnection) -> str:
    coin = await settlement_repo.stablecoin(conn)
    return "" if coin is None else str(coin.stablecoin_mint)


async def post_issued(
    conn: AsyncConnection, program_id: str, account_ref: str, bill_id: int, amount: int, at_us: int
) -> None:
    if amount:
        mint = await _mint(conn)
        lines = [(BILLED + program_id, mint, -amount), (receivable(program_id, account_ref), mint, amount)]
        await post_entry(conn, "bill_issued", str(bill_id), lines, at_us=at_us)


async def post_paid(
    conn: AsyncConnection, program_id: str, account_ref: str, bill_id: int, amount: int, at_us: int
) -> None:
    if amount:
        mint = await _mint(conn)
        lines = [(receivable(program_id, account_ref), mint, -amount), (COLLECTED + program_id, mint, amount)]
        await post_entry(conn, "bill_paid", str(bill_id), lines, at_us=at_us)


async def post_collected(conn: AsyncConnection, program_id: str, collection_id: int, amount: int, at_us: int) -> None:
    if amount:
        mint = await _mint(conn)
        lines = [(BILLED + program_id, mint, -amount), (COLLECTED + program_id, mint, amount)]
        await post_entry(conn, "bill_collected", str(collection_id), lines, at_us=at_us)


__all__ = ["BILLED", "COLLECTED", "RECEIVABLE", "post_collected", "post_issued", "post_paid", "receivable"]
