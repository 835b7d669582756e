"""Billing plans, accounts and issued bills: every SQL statement billing runs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from openvpp.store.schema import billing_plans, bills, enrollments, programs


async def latest_plan(conn: AsyncConnection, program_id: str) -> Row[Any] | None:
    query = (
        select(billing_plans)
        .where(billing_plans.c.program_id == program_id)
        .order_by(billing_plans.c.version.desc())
        .limit(1)
    )
    return (await conn.execute(query)).one_or_none()


async def plan_version(conn: AsyncConnection, program_id: str, version: int) -> Row[Any] | None:
    query = select(billing_plans).where(billing_plans.c.program_id == program_id, billing_plans.c.version == version)
    return (await conn.execute(query)).one_or_none()


async def insert_plan(conn: AsyncConnection, values: dict[str, Any]) -> None:
    await conn.execute(billing_plans.insert().values(**values))


async def billed_programs(conn: AsyncConnection) -> list[str]:
    return [p for (p,) in await conn.execute(select(billing_plans.c.program_id).distinct())]


async def nets_exports(conn: AsyncConnection, program_id: str) -> bool:
    """Whether the program's current plan credits exports on the bill."""
    plan = await latest_plan(conn, program_id)
    return plan is not None and plan.regime != IMPORTS_ONLY


# billing_pb2.BILLING_REGIME_IMPORTS_ONLY; the store does not import the API.
IMPORTS_ONLY = 3


async def program_utility(conn: AsyncConnection, program_id: str) -> str | None:
    query = select(programs.c.utility_namespace).where(programs.c.program_id == program_id)
    return (await conn.execute(query)).scalar_one_or_none()


async def accounts(conn: AsyncConnection, program_id: str) -> list[str]:
    """Every account enrolled in the program, in order."""
    query = (
        select(enrollments.c.account_ref)
        .where(enrollments.c.program_id == program_id)
        .distinct()
        .order_by(enrollments.c.account_ref)
    )
    return [a for (a,) in await conn.execute(query)]


async def account_devices(conn: AsyncConnection, program_id: str, account_ref: str) -> list[str]:
    query = (
        select(enrollments.c.der_id)
        .where(enrollments.c.program_id == program_id, enrollments.c.account_ref == account_ref)
        .order_by(enrollments.c.der_id)
    )
    return [d for (d,) in await conn.execute(query)]


async def last_bill(conn: AsyncConnection, program_id: str, account_ref: str) -> Row[Any] | None:
    query = (
        select(bills)
        .where(bills.c.program_id == program_id, bills.c.account_ref == account_ref)
        .order_by(bills.c.period_start.desc())
        .limit(1)
    )
    return (await conn.execute(query)).one_or_none()


async def bill(conn: AsyncConnection, program_id: str, account_ref: str, period_start: str) -> Row[Any] | None:
    query = select(bills).where(
        bills.c.program_id == program_id, bills.c.account_ref == account_ref, bills.c.period_start == period_start
    )
    return (await conn.execute(query)).one_or_none()


async def insert_bill(conn: AsyncConnection, values: dict[str, Any]) -> bool:
    """Issues a bill unless another replica issued the same period first."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(bills).values(**values).on_conflict_do_nothing()
    result = await conn.execute(statement)
    return bool(result.rowcount)


async def list_bills(
    conn: AsyncConnection, program_id: str, account_ref: str | None, before_id: int | None, limit: int
) -> Sequence[Row[Any]]:
    conditions = [bills.c.program_id == program_id]
    if account_ref:
        conditions.append(bills.c.account_ref == account_ref)
    if before_id is not None:
        conditions.append(bills.c.id < before_id)
    query = select(bills).where(and_(*conditions)).order_by(bills.c.id.desc()).limit(limit)
    return (await conn.execute(query)).all()


async def count_bills(conn: AsyncConnection, program_id: str) -> int:
    query = select(func.count()).select_from(bills).where(bills.c.program_id == program_id)
    return int((await conn.execute(query)).scalar_one())


__all__ = [
    "IMPORTS_ONLY",
    "account_devices",
    "accounts",
    "bill",
    "billed_programs",
    "count_bills",
    "insert_bill",
    "insert_plan",
    "last_bill",
    "latest_plan",
    "list_bills",
    "nets_exports",
    "plan_version",
    "program_utility",
]
