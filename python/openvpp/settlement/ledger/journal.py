"""The double-entry ledger.

Every credit posts an entry moving value from the program's issuance
account to the recipient's pending account; every confirmed payout posts
one moving it from pending to paid. Each entry's lines sum to zero. The
subledgers (credits linked to readings, payouts linked to credits and a
transaction signature) must agree with the journal, and the chain must
agree with what the journal says was paid: `check()` proves all of it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from solders.pubkey import Pubkey
from sqlalchemy.ext.asyncio import AsyncConnection

from openvpp import errors
from openvpp.chain import spl
from openvpp.chain.base import Chain
from openvpp.kernel.tenancy import Viewer
from openvpp.settlement.ledger.billing import BillingCheck, check_billing
from openvpp.settlement.tokens.redemption import RedemptionState
from openvpp.store import billing_repo, ledger_repo
from openvpp.store.database import Database
from openvpp.v1 import settlement_pb2 as pb

ISSUED = "issued:"
PENDING = "pending:"
PAID = "paid:"
CHAIN_PAGE = 100
_BILLING_ACCOUNTS = {billing_repo.LEDGER_BILLED, billing_repo.LEDGER_RECEIVABLE, billing_repo.LEDGER_COLLECTED}


class PayoutState:
    """Stored as the API's enum values."""

    SENT = pb.PAYOUT_STATE_SENT
    CONFIRMED = pb.PAYOUT_STATE_CONFIRMED
    FAILED = pb.PAYOUT_STATE_FAILED


@dataclass(frozen=True, slots=True)
class NewCredit:
    der_id: str
    party: int
    wallet: str
    amount: int
    seq_first: int
    seq_last: int
    energy_wh: int
    estimated_wh: int
    dr_event_id: str = ""
    share_bps: int = 10_000
    # The party's exact share and its remainder after, in units of 1 / denominator.
    exact_share: int = 0
    carry_after: int = 0
    denominator: int = 1
    interval_start: int = 0
    interval_end: int = 0


async def post_entry(
    conn: AsyncConnection, kind: str, ref: str, lines: Sequence[tuple[str, str, int]], *, at_us: int
) -> int:
    """One balanced journal entry of (account, mint, signed amount) lines."""
    if sum(amount for _, _, amount in lines) != 0:
        raise ValueError(f"unbalanced {kind} entry {ref}")
    entry_id = await ledger_repo.insert_entry(conn, kind, ref, at_us)
    await ledger_repo.insert_lines(conn, [(entry_id, a, m, x) for a, m, x in lines if x])
    return entry_id


async def post_credits(
    conn: AsyncConnection,
    program_id: str,
    kind: int,
    mint: str,
    credits: Sequence[NewCredit],
    trace_parent: str,
    *,
    at_us: int,
) -> list[int]:
    """Posts credits as one entry; returns their ids in order. A credit of
    amount 0 moves nothing: it records a share that only its party's
    remainder carried, and is never paid."""
    per_wallet: dict[str, int] = defaultdict(int)
    for c in credits:
        per_wallet[c.wallet] += c.amount
    total = sum(per_wallet.values())
    lines = [(ISSUED + program_id, mint, -total)] + [(PENDING + w, mint, x) for w, x in per_wallet.items()]
    entry_id = await post_entry(conn, "credit", program_id, lines, at_us=at_us)
    now = at_us
    rows = [
        (
            program_id,
            kind,
            c.der_id,
            c.party,
            c.wallet,
            mint,
            c.amount,
            c.seq_first,
            c.seq_last,
            c.energy_wh,
            c.estimated_wh,
            c.dr_event_id,
            entry_id,
            None,
            trace_parent,
            now,
            c.share_bps,
            str(c.exact_share),
            str(c.carry_after),
            str(c.denominator),
            c.interval_start,
            c.interval_end,
        )
        for c in credits
    ]
    return await ledger_repo.insert_credits(conn, rows)


async def post_paid_many(
    conn: AsyncConnection, batches: Sequence[tuple[str, Sequence[tuple[str, str, int]]]], *, at_us: int
) -> None:
    """One balanced entry per confirmed transaction (ref: its signature), written set-wise."""
    if not batches:
        return
    entry_ids = await ledger_repo.insert_entries(conn, [("payout", ref) for ref, _ in batches], at_us)
    lines: list[tuple[int, str, str, int]] = []
    for entry_id, (_, paid) in zip(entry_ids, batches, strict=True):
        for wallet, mint, amount in paid:
            lines.append((entry_id, PENDING + wallet, mint, -amount))
            lines.append((entry_id, PAID + wallet, mint, amount))
    await ledger_repo.insert_lines(conn, lines)


@dataclass
class Balance:
    mint: str
    credited: int = 0
    paid: int = 0
    redeemed: int = 0
    on_chain: int = 0

    @property
    def pending(self) -> int:
        return self.credited - self.paid


@dataclass
class TokenCheck:
    mint: str
    credited: int = 0
    paid: int = 0
    pending: int = 0
    redeemed: int = 0
    redemptions: int = 0
    supply: int = 0
    holders: int = 0
    in_flight: int = 0
    mismatches: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and not self.mismatches


@dataclass
class LedgerCheck:
    entries: int
    unbalanced: list[int]
    tokens: list[TokenCheck]
    problems: list[str]
    # The slots between which the chain was read.
    chain_slot_from: int = 0
    chain_slot: int = 0
    billing: list[BillingCheck] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            not self.unbalanced
            and not self.problems
            and all(t.ok for t in self.tokens)
            and all(b.ok for b in self.billing)
        )


class Ledger:
    def __init__(self, db: Database, chain: Chain) -> None:
        self.db = db
        self.chain = chain

    async def balances(self, viewer: Viewer, wallet: str) -> list[Balance]:
        """One account's balances in the tokens the viewer may see: a utility's
        own tokens, any token for a vendor's own device address."""
        try:
            owner = Pubkey.from_string(wallet)
        except ValueError:
            raise errors.InvalidArgument.field("wallet", "must be a base58 Solana address") from None
        async with self.db.read() as conn:
            credited, paid, redeemed = await ledger_repo.account_sums(
                conn, viewer, wallet, PayoutState.CONFIRMED, RedemptionState.COMPLETED
            )
        mints = sorted(set(credited) | set(paid) | set(redeemed))
        accounts = await self.chain.accounts(
            [spl.ata(owner, Pubkey.from_string(m), spl.TOKEN_2022_PROGRAM_ID) for m in mints]
        )
        return [
            Balance(
                m,
                credited.get(m, 0),
                paid.get(m, 0),
                redeemed.get(m, 0),
                0 if a is None else spl.token_amount(bytes(a.data)),
            )
            for m, a in zip(mints, accounts, strict=True)
        ]

    async def program_totals(self, program_id: str, viewer: Viewer) -> tuple[int, int]:
        """(pending, paid) base units of one program's credits (a vendor's: of its devices)."""
        async with self.db.read() as conn:
            credited, paid = await ledger_repo.program_sums(conn, viewer, program_id, PayoutState.CONFIRMED)
        return int(credited) - int(paid), int(paid)

    async def check(self, viewer: Viewer) -> LedgerCheck:
        """The ledger's invariants over the tokens the viewer may see: every
        token for the operator, a utility's own tokens otherwise.

        The chain is read first, between two slots, and the books after it
        in one snapshot: whatever settles meanwhile, on any replica, is then
        either surely on chain (confirmed by the first slot), allowed for
        (in flight, or confirmed between the slots) or surely not yet
        (confirmed after), so concurrent settlement never looks like a
        mismatch (see CheckLedgerResponse)."""
        async with self.db.read() as conn:
            holders = await ledger_repo.holders(conn, viewer, failed=PayoutState.FAILED)
        first_slot = await self.chain.slot()
        chain = {mint: await self._chain_state(mint, wallets) for mint, wallets in holders.items()}
        last_slot = await self.chain.slot()
        async with self.db.read() as conn:
            figures = await ledger_repo.check_figures(
                conn,
                viewer,
                confirmed=PayoutState.CONFIRMED,
                failed=PayoutState.FAILED,
                completed=RedemptionState.COMPLETED,
            )
            window = await ledger_repo.chain_window(
                conn,
                viewer,
                first_slot,
                last_slot,
                confirmed=PayoutState.CONFIRMED,
                sent=PayoutState.SENT,
                completed=RedemptionState.COMPLETED,
                submitted=RedemptionState.SUBMITTED,
            )
            # Billing programs are the operator's and each utility's to check; no one else's.
            billed = (
                await billing_repo.ledger_figures(conn, None if viewer.everything else viewer.utility)
                if viewer.everything or viewer.utility is not None
                else []
            )
        entries, unbalanced, credited = figures.entries, figures.unbalanced, figures.credited
        wrong_payouts, failed_holding = figures.wrong_payouts, figures.failed_holding
        by_account, paid_rows, redeemed_rows = figures.by_account, figures.paid, figures.redeemed
        problems = [f"payout {i} differs from the sum of its credits" for i in wrong_payouts]
        if failed_holding:
            problems.append(f"{failed_holding} credits still point at failed payouts")
        journal: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for mint, account, amount in by_account:
            kind = account.split(":", 1)[0] + ":"
            if kind not in _BILLING_ACCOUNTS:  # checked per program below
                journal[mint][kind] += int(amount)
        paid_by: dict[str, dict[str, int]] = defaultdict(dict)
        for mint, wallet, amount in paid_rows:
            paid_by[mint][wallet] = int(amount)
        redeemed_by: dict[str, dict[str, int]] = defaultdict(dict)
        redemptions: dict[str, int] = defaultdict(int)
        for mint, holder, amount, count in redeemed_rows:
            redeemed_by[mint][holder] = int(amount)
            redemptions[mint] += int(count)
        wanted = sorted(set(credited) | set(paid_by) | set(journal))
        tokens = []
        for m in wanted:
            t = self._check_books(m, credited.get(m, 0), journal[m], paid_by[m], redeemed_by[m])
            supply, held = chain.get(m) or await self._chain_state(m, [])
            _check_chain(t, supply, held, window)
            t.redemptions = redemptions.get(m, 0)
            tokens.append(t)
        billing = await check_billing(self.chain, billed)
        return LedgerCheck(entries, unbalanced, tokens, problems, first_slot, last_slot, billing)

    async def _chain_state(self, mint: str, holders: list[str]) -> tuple[int, dict[str, int]]:
        """A token's supply and its holders' balances, as the chain has them now."""
        mint_key = Pubkey.from_string(mint)
        (account,) = await self.chain.accounts([mint_key])
        supply = 0 if account is None else spl.mint_supply(bytes(account.data))
        held: dict[str, int] = {}
        for i in range(0, len(holders), CHAIN_PAGE):
            page = holders[i : i + CHAIN_PAGE]
            found = await self.chain.accounts(
                [spl.ata(Pubkey.from_string(h), mint_key, spl.TOKEN_2022_PROGRAM_ID) for h in page]
            )
            held.update(
                (h, 0 if a is None else spl.token_amount(bytes(a.data))) for h, a in zip(page, found, strict=True)
            )
        return supply, held

    @staticmethod
    def _check_books(
        mint: str, credited: int, journal: dict[str, int], paid: dict[str, int], redeemed: dict[str, int]
    ) -> TokenCheck:
        t = TokenCheck(mint, credited=credited, paid=sum(paid.values()), redeemed=sum(redeemed.values()))
        t.pending = credited - t.paid
        if -journal.get(ISSUED, 0) != credited:
            t.problems.append(f"issued {-journal.get(ISSUED, 0)} in the journal but {credited} credited")
        if journal.get(PAID, 0) != t.paid:
            t.problems.append(f"paid {journal.get(PAID, 0)} in the journal but {t.paid} in confirmed payouts")
        if journal.get(PENDING, 0) != t.pending:
            t.problems.append(f"pending {journal.get(PENDING, 0)} in the journal but credited - paid = {t.pending}")
        t.holders = len(set(paid) | set(redeemed))
        return t


def _check_chain(t: TokenCheck, supply: int, held: dict[str, int], window: ledger_repo.ChainWindow) -> None:
    """The chain against the books, allowing for what was in flight while it was read."""

    def bounds(keys: list[tuple[str, str]]) -> tuple[int, int, int]:
        surely_in = sum(window.surely_in.get(k, 0) for k in keys)
        maybe_in = sum(window.maybe_in.get(k, 0) for k in keys)
        surely_out = sum(window.surely_out.get(k, 0) for k in keys)
        maybe_out = sum(window.maybe_out.get(k, 0) for k in keys)
        return surely_in - surely_out - maybe_out, surely_in + maybe_in - surely_out, maybe_in + maybe_out

    every = [k for k in {*window.surely_in, *window.maybe_in, *window.surely_out, *window.maybe_out} if k[0] == t.mint]
    t.supply = supply
    low, high, t.in_flight = bounds(every)
    if not low <= supply <= high:
        expected = f"{low}" if low == high else f"{low} to {high}"
        t.problems.append(f"chain supply {supply} but the books expect {expected} (paid - redeemed)")
    for holder, amount in held.items():
        low, high, _ = bounds([(t.mint, holder)])
        if not low <= amount <= high:
            t.mismatches.append(holder)
