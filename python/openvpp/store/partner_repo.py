"""Partner and certificate storage: every SQL statement the Integration service runs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, func, insert, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from openvpp.store.schema import certificates, credential_log, partners


async def partner(conn: AsyncConnection, namespace: str, *, lock: bool = False) -> Row[Any] | None:
    query = select(partners).where(partners.c.namespace == namespace)
    if lock:
        query = query.with_for_update()
    return (await conn.execute(query)).one_or_none()


async def insert_partner(conn: AsyncConnection, values: dict[str, Any]) -> None:
    await conn.execute(partners.insert().values(**values))


async def set_partner_status(conn: AsyncConnection, namespace: str, status: int, reason: str) -> None:
    await conn.execute(
        update(partners).where(partners.c.namespace == namespace).values(status=status, status_reason=reason)
    )


async def list_partners(conn: AsyncConnection, kind: int, status: int, after: str, limit: int) -> Sequence[Row[Any]]:
    conditions = [partners.c.namespace > after]
    if kind:
        conditions.append(partners.c.kind == kind)
    if status:
        conditions.append(partners.c.status == status)
    query = select(partners).where(and_(*conditions)).order_by(partners.c.namespace).limit(limit)
    return (await conn.execute(query)).all()


async def insert_certificate(conn: AsyncConnection, values: dict[str, Any]) -> None:
    await conn.execute(certificates.insert().values(**values))


async def certificate(conn: AsyncConnection, serial: str, *, lock: bool = False) -> Row[Any] | None:
    query = select(certificates).where(certificates.c.serial == serial)
    if lock:
        query = query.with_for_update()
    return (await conn.execute(query)).one_or_none()


async def revoke(conn: AsyncConnection, serial: str, at_us: int, reason: int) -> None:
    await conn.execute(
        update(certificates)
        .where(certificates.c.serial == serial)
        .values(revoked_at_us=at_us, revocation_reason=reason)
    )


async def certificates_of(conn: AsyncConnection, namespace: str) -> Sequence[Row[Any]]:
    query = select(certificates).where(certificates.c.namespace == namespace).order_by(certificates.c.not_before_us)
    return (await conn.execute(query)).all()


async def revoked(conn: AsyncConnection) -> Sequence[Any]:
    query = select(certificates.c.serial, certificates.c.revoked_at_us, certificates.c.revocation_reason).where(
        certificates.c.revoked_at_us.is_not(None)
    )
    return (await conn.execute(query)).all()


async def credential(conn: AsyncConnection, serial: str) -> Any:
    """The certificate and its partner's status, for authenticating a call."""
    query = (
        select(certificates.c.revoked_at_us, certificates.c.namespace, partners.c.status, partners.c.kind)
        .join(partners, partners.c.namespace == certificates.c.namespace)
        .where(certificates.c.serial == serial)
    )
    return (await conn.execute(query)).one_or_none()


async def log_credential_change(conn: AsyncConnection, namespace: str, serial: str, change: str, at_us: int) -> None:
    """Appends to the log credential caches follow (`serial` empty for a whole partner)."""
    await conn.execute(insert(credential_log).values(namespace=namespace, serial=serial, change=change, at_us=at_us))


async def credential_head(conn: AsyncConnection) -> int:
    """The newest credential change, 0 before the first."""
    return int((await conn.execute(select(func.coalesce(func.max(credential_log.c.seq), 0)))).scalar_one())
