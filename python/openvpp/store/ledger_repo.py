"""Storage of the journal (balanced entries of lines), the credits it
issues, and the sums a balance, a program's totals and the ledger check
read. Tenant scoping comes from `store.scope` for the viewer given."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, case, func, insert, literal, select, true
from sqlalchemy.ext.asyncio import AsyncConnection

from openvpp.kernel.tenancy import Viewer
from openvpp.store import schema, scope
from openvpp.store.database import insert_rows, insert_rows_with_ids

_LINE = ("entry_id", "account", "mint", "amount")
# Credit rows as `insert_credits` takes them.
CREDIT_COLUMNS = (
    "program_id",
    "kind",
    "der_id",
    "party",
    "wallet",
    "mint",
    "amount",
    "seq_first",
    "seq_last",
    "energy_wh",
    "estimated_wh",
    "dr_event_id",
    "entry_id",
    "payout_id",
    "trace_parent",
    "created_at_us",
    "share_bps",
    "exact_share",
    "carry_after",
    "denominator",
    "interval_start",
    "interval_end",
)


async def insert_entry(conn: AsyncConnection, kind: str, ref: str, at_us: int) -> int:
    entry = await conn.execute(insert(schema.ledger_entries).values(kind=kind, ref=ref, created_at_us=at_us))
    return int(entry.inserted_primary_key[0])  # type: ignore[index]


async def insert_entries(conn: AsyncConnection, entries: Sequence[tuple[str, str]], at_us: int) -> list[int]:
    """(kind, ref) entries; their ids in order."""
    rows = [(kind, ref, at_us) for kind, ref in entries]
    return await insert_rows_with_ids(conn, schema.ledger_entries, ("kind", "ref", "created_at_us"), rows)


async def insert_lines(conn: AsyncConnection, lines: Sequence[tuple[int, str, str, int]]) -> None:
    """(entry id, account, mint, signed amount) lines."""
    await insert_rows(conn, schema.ledger_lines, _LINE, lines)


async def insert_credits(conn: AsyncConnection, rows: Sequence[Sequence[Any]]) -> list[int]:
    """Credit rows in `CREDIT_COLUMNS` order; their ids in order."""
    return await insert_rows_with_ids(conn, schema.credits, CREDIT_COLUMNS, rows)


def _sums(rows: Sequence[Any]) -> dict[str, int]:
    return {k: int(v or 0) for k, v in rows}


async def account_sums(
    conn: AsyncConnection, viewer: Viewer, wallet: str, confirmed: int, completed: int
) -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
    """Per mint, one wallet's credited, confirmed-paid and redeemed base units."""
    c, p, r = schema.credits, schema.payouts, schema.redemptions
    credited = await conn.execute(
        select(c.c.mint, func.sum(c.c.amount))
        .where(c.c.wallet == wallet, scope.wallet(viewer, c.c.mint, c.c.wallet))
        .group_by(c.c.mint)
    )
    paid = await conn.execute(
        select(p.c.mint, func.sum(p.c.amount))
        .where(p.c.wallet == wallet, p.c.state == confirmed, scope.wallet(viewer, p.c.mint, p.c.wallet))
        .group_by(p.c.mint)
    )
    redeemed = await conn.execute(
        select(r.c.mint, func.sum(r.c.amount))
        .where(r.c.holder == wallet, r.c.state == completed, scope.wallet(viewer, r.c.mint, r.c.holder))
        .group_by(r.c.mint)
    )
    return _sums(credited.all()), _sums(paid.all()), _sums(redeemed.all())


async def program_sums(conn: AsyncConnection, viewer: Viewer, program_id: str, confirmed: int) -> tuple[int, int]:
    """(credited, confirmed-paid) base units of a program's credits (a vendor's: of its devices)."""
    c, p = schema.credits, schema.payouts
    mine = scope.credits(viewer) if viewer.vendor is not None else true()
    credited = await conn.execute(
        select(func.coalesce(func.sum(c.c.amount), 0)).where(c.c.program_id == program_id, mine)
    )
    paid = await conn.execute(
        select(func.coalesce(func.sum(c.c.amount), 0))
        .select_from(c.join(p, c.c.payout_id == p.c.id))
        .where(c.c.program_id == program_id, p.c.state == confirmed, mine)
    )
    return int(credited.scalar_one()), int(paid.scalar_one())


@dataclass(frozen=True)
class CheckFigures:
    """What the ledger check compares, over the tokens a viewer may see."""

    entries: int
    unbalanced: list[int]
    # (mint, account, sum of lines)
    by_account: list[tuple[str, str, int]]
    credited: dict[str, int]
    # (mint, wallet, confirmed paid)
    paid: list[tuple[str, str, int]]
    # (mint, holder, redeemed, redemptions)
    redeemed: list[tuple[str, str, int, int]]
    # Payouts whose amount is not the sum of the credits they paid.
    wrong_payouts: list[int]
    # Credits still claimed by failed payouts.
    failed_holding: int


async def check_figures(
    conn: AsyncConnection, viewer: Viewer, *, confirmed: int, failed: int, completed: int
) -> CheckFigures:
    lines, c, p, r = schema.ledger_lines, schema.credits, schema.payouts, schema.redemptions
    in_lines, in_credits = scope.mints(viewer, lines.c.mint), scope.mints(viewer, c.c.mint)
    in_payouts, in_redemptions = scope.mints(viewer, p.c.mint), scope.mints(viewer, r.c.mint)
    counted = (
        select(func.count()).select_from(schema.ledger_entries)
        if viewer.everything
        else select(func.count(func.distinct(lines.c.entry_id))).where(in_lines)
    )
    entries = int((await conn.execute(counted)).scalar_one())
    unbalanced = [
        int(e)
        for (e,) in await conn.execute(
            select(lines.c.entry_id).where(in_lines).group_by(lines.c.entry_id).having(func.sum(lines.c.amount) != 0)
        )
    ]
    by_account = await conn.execute(
        select(lines.c.mint, lines.c.account, func.sum(lines.c.amount))
        .where(in_lines)
        .group_by(lines.c.mint, lines.c.account)
    )
    credited = await conn.execute(select(c.c.mint, func.sum(c.c.amount)).where(in_credits).group_by(c.c.mint))
    paid = await conn.execute(
        select(p.c.mint, p.c.wallet, func.sum(p.c.amount))
        .where(p.c.state == confirmed, in_payouts)
        .group_by(p.c.mint, p.c.wallet)
    )
    redeemed = await conn.execute(
        select(r.c.mint, r.c.holder, func.sum(r.c.amount), func.count())
        .where(r.c.state == completed, in_redemptions)
        .group_by(r.c.mint, r.c.holder)
    )
    # A payout is exactly the sum of the credits it paid.
    joined = (
        select(p.c.id, p.c.amount, func.coalesce(func.sum(c.c.amount), 0).label("credited"))
        .select_from(p.outerjoin(c, c.c.payout_id == p.c.id))
        .where(p.c.state != failed, in_payouts)
        .group_by(p.c.id, p.c.amount)
    ).subquery()
    wrong = [int(i) for (i,) in await conn.execute(select(joined.c.id).where(joined.c.amount != joined.c.credited))]
    holding = await conn.execute(
        select(func.count()).select_from(c.join(p, c.c.payout_id == p.c.id)).where(p.c.state == failed, in_payouts)
    )
    return CheckFigures(
        entries,
        unbalanced,
        [(m, a, int(x)) for m, a, x in by_account.all()],
        _sums(credited.all()),
        [(m, w, int(x)) for m, w, x in paid.all()],
        [(m, h, int(x), int(n)) for m, h, x, n in redeemed.all()],
        wrong,
        int(holding.scalar_one()),
    )


async def holders(conn: AsyncConnection, viewer: Viewer, *, failed: int) -> dict[str, list[str]]:
    """Per mint credited, every wallet a payout (not failed) went to."""
    p, c = schema.payouts, schema.credits
    found: dict[str, list[str]] = {
        m: [] for (m,) in await conn.execute(select(c.c.mint).where(scope.mints(viewer, c.c.mint)).distinct())
    }
    rows = await conn.execute(
        select(p.c.mint, p.c.wallet).where(p.c.state != failed, scope.mints(viewer, p.c.mint)).distinct()
    )
    for mint, wallet in rows:
        found.setdefault(mint, []).append(wallet)
    return found


@dataclass(frozen=True, slots=True)
class ChainWindow:
    """Per (mint, holder), what the chain read between two slots must show:
    tokens surely there (confirmed at or before the first slot), tokens
    perhaps there (in flight, or confirmed between the slots), and the same
    for burns. Anything confirmed after the second slot is not counted."""

    surely_in: dict[tuple[str, str], int]
    maybe_in: dict[tuple[str, str], int]
    surely_out: dict[tuple[str, str], int]
    maybe_out: dict[tuple[str, str], int]


def _classified(state: Any, done: int, in_flight: int, slot: Any, first: int, last: int) -> Any:
    return case(
        (and_(state == done, slot <= first), literal("sure")),
        (and_(state == done, slot > last), literal("after")),
        (state.in_((done, in_flight)), literal("maybe")),
        else_=literal("none"),
    )


async def chain_window(
    conn: AsyncConnection,
    viewer: Viewer,
    first_slot: int,
    last_slot: int,
    *,
    confirmed: int,
    sent: int,
    completed: int,
    submitted: int,
) -> ChainWindow:
    p, r, o = schema.payouts, schema.redemptions, schema.chain_outbox
    window = ChainWindow({}, {}, {}, {})
    paid = _classified(p.c.state, confirmed, sent, o.c.slot, first_slot, last_slot).label("cls")
    burned = _classified(r.c.state, completed, submitted, o.c.slot, first_slot, last_slot).label("cls")
    queries = (
        (
            select(p.c.mint, p.c.wallet, paid, func.sum(p.c.amount))
            .select_from(p.outerjoin(o, o.c.signature == p.c.signature))
            .where(scope.mints(viewer, p.c.mint))
            .group_by(p.c.mint, p.c.wallet, paid),
            window.surely_in,
            window.maybe_in,
        ),
        (
            select(r.c.mint, r.c.holder, burned, func.sum(r.c.amount))
            .select_from(r.outerjoin(o, o.c.signature == r.c.signature))
            .where(scope.mints(viewer, r.c.mint))
            .group_by(r.c.mint, r.c.holder, burned),
            window.surely_out,
            window.maybe_out,
        ),
    )
    for query, surely, maybe in queries:
        for mint, holder, cls, amount in await conn.execute(query):
            if cls == "sure":
                surely[(mint, holder)] = surely.get((mint, holder), 0) + int(amount)
            elif cls == "maybe":
                maybe[(mint, holder)] = maybe.get((mint, holder), 0) + int(amount)
    return window
