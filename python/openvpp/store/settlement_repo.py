"""Storage of settlement's configuration: the stablecoin in use, each
program's settlement (kind, token, oracles, split, hold), and the parties'
rounding carries."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from openvpp.store import schema
from openvpp.store.database import upsert
from openvpp.v1 import settlement_pb2

_ps = schema.program_settlements


async def stablecoin(conn: AsyncConnection) -> Any:
    """The remembered stablecoin (mint, decimals, program), or None."""
    return (await conn.execute(select(schema.settlement_config))).first()


async def remember_stablecoin(conn: AsyncConnection, mint: str, decimals: int, program: str) -> None:
    """Records the stablecoin once; later calls leave the first in place."""
    if await stablecoin(conn) is None:
        await conn.execute(
            insert(schema.settlement_config).values(
                id=1, stablecoin_mint=mint, stablecoin_decimals=decimals, stablecoin_program=program
            )
        )


async def stablecoin_decimals(conn: AsyncConnection) -> int | None:
    found = (await conn.execute(select(schema.settlement_config.c.stablecoin_decimals))).scalar_one_or_none()
    return None if found is None else int(found)


async def token_terms(conn: AsyncConnection, mint: str) -> Any:
    """(decimals, redemption_value) of a use-case token."""
    t = schema.use_case_tokens
    return (await conn.execute(select(t.c.decimals, t.c.redemption_value).where(t.c.mint == mint))).one()


async def oracle_owner(conn: AsyncConnection, kind: str, oracle_id: str) -> str | None:
    """The utility of a tariff ("tariff") or price feed ("feed"); None when it does not exist."""
    table, key = (
        (schema.tariffs, schema.tariffs.c.tariff_id)
        if kind == "tariff"
        else (schema.price_feeds, schema.price_feeds.c.feed_id)
    )
    row = (await conn.execute(select(table.c.utility_namespace).where(key == oracle_id).limit(1))).first()
    return None if row is None else str(row.utility_namespace)


async def lock_programs(conn: AsyncConnection, program_ids: Sequence[str], *, skip_busy: bool = False) -> set[str]:
    """Takes the settlement rows of these programs for the transaction (one
    settler per program); returns the programs taken. `skip_busy` (the
    cadence): programs another replica is settling are left to it, not waited for."""
    query = select(_ps.c.program_id).where(_ps.c.program_id.in_(list(program_ids)))
    return set((await conn.execute(query.with_for_update(skip_locked=skip_busy))).scalars())


async def program_settlement(conn: AsyncConnection, program_id: str) -> Any:
    return (await conn.execute(select(_ps).where(_ps.c.program_id == program_id))).first()


async def pays_exports_as_tokens(conn: AsyncConnection, program_id: str) -> bool:
    row = await program_settlement(conn, program_id)
    return row is not None and row.kind == settlement_pb2.CREDIT_KIND_NEM_EXPORT


async def insert_program_settlement(conn: AsyncConnection, program_id: str, values: dict[str, Any]) -> None:
    await conn.execute(insert(_ps).values(program_id=program_id, version=1, hold_reason="", **values))


async def update_program_settlement(
    conn: AsyncConnection, program_id: str, version: int, values: dict[str, Any]
) -> None:
    await conn.execute(update(_ps).where(_ps.c.program_id == program_id).values(version=version, **values))


async def program_settlements(conn: AsyncConnection, utility: str | None) -> Sequence[Any]:
    query = select(_ps).order_by(_ps.c.program_id)
    if utility is not None:
        query = query.where(_ps.c.utility_namespace == utility)
    return (await conn.execute(query)).all()


async def vendor_enrolled_in(conn: AsyncConnection, program_id: str, vendor: str) -> bool:
    en = schema.enrollments
    query = select(en.c.der_id).where(en.c.program_id == program_id, en.c.vendor_namespace == vendor).limit(1)
    return (await conn.execute(query)).first() is not None


async def carries(conn: AsyncConnection, mint: str, wallets: list[str]) -> list[tuple[str, int, int]]:
    """(wallet, carry, denominator) of the wallets that have one in `mint`."""
    pc = schema.party_carries
    found: list[tuple[str, int, int]] = []
    for i in range(0, len(wallets), 500):
        rows = await conn.execute(
            select(pc.c.wallet, pc.c.carry, pc.c.denominator).where(
                pc.c.mint == mint, pc.c.wallet.in_(wallets[i : i + 500])
            )
        )
        found.extend((r.wallet, int(r.carry), int(r.denominator)) for r in rows)
    return found


async def store_carries(conn: AsyncConnection, mint: str, carries: dict[str, int], denominator: int) -> None:
    await upsert(
        conn,
        schema.party_carries,
        [{"wallet": w, "mint": mint, "carry": str(c), "denominator": str(denominator)} for w, c in carries.items()],
        ("wallet", "mint"),
    )
