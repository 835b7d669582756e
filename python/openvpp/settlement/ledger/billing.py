"""The billing part of the ledger check: each billing program's journal
against its bills and collections, and every payment against the chain."""

from __future__ import annotations

from dataclasses import dataclass, field

from solders.signature import Signature

from openvpp.chain.base import Chain
from openvpp.store.billing_repo import BillingFigures

CHAIN_PAGE = 256


@dataclass
class BillingCheck:
    program_id: str
    billed: int
    collected: int
    receivable: int
    bills: int
    payments: int
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


async def check_billing(chain: Chain, figures: list[BillingFigures]) -> list[BillingCheck]:
    out = []
    for f in figures:
        billed = f.issued_due + f.collections_paid
        collected = f.paid_due + f.collections_paid
        check = BillingCheck(f.program_id, billed, collected, f.open_due, f.bills, len(f.signatures))
        if -f.journal_billed != billed:
            check.problems.append(f"billed {-f.journal_billed} in the journal but {billed} in bills and collections")
        if f.journal_collected != collected:
            check.problems.append(f"collected {f.journal_collected} in the journal but {collected} paid")
        if f.journal_receivable != f.open_due:
            check.problems.append(f"receivable {f.journal_receivable} in the journal but {f.open_due} unpaid")
        if f.unsigned:
            check.problems.append(f"{f.unsigned} payments recorded without a transaction")
        for i in range(0, len(f.signatures), CHAIN_PAGE):
            page = f.signatures[i : i + CHAIN_PAGE]
            statuses = await chain.signature_statuses([Signature.from_string(s) for s in page])
            for signature, status in zip(page, statuses, strict=True):
                if status is None:
                    check.problems.append(f"payment {signature} is not on chain")
                elif status.error is not None:
                    check.problems.append(f"payment {signature} failed on chain: {status.error}")
        out.append(check)
    return out


__all__ = ["BillingCheck", "check_billing"]
