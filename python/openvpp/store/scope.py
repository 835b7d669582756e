"""A viewer's part of settlement rows, as SQL conditions.

Shared settlement data is attributed by program (a utility owns its
programs and their tokens) and by device (a vendor owns the devices it
registered; a device's own address is where its owner is paid).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, false, select, true

from openvpp.kernel.tenancy import Viewer
from openvpp.store import schema


def _utility_programs(utility: str) -> Any:
    p = schema.programs
    return select(p.c.program_id).where(p.c.utility_namespace == utility).scalar_subquery()


def _vendor_devices(vendor: str) -> Any:
    d = schema.devices
    return select(d.c.der_id).where(d.c.vendor_namespace == vendor).scalar_subquery()


def utility_mints(utility: str) -> Any:
    t = schema.use_case_tokens
    return select(t.c.mint).where(t.c.utility_namespace == utility).scalar_subquery()


def payouts(viewer: Viewer) -> ColumnElement[bool]:
    """Payouts of the viewer's programs, or to the viewer's devices."""
    p = schema.payouts
    if viewer.everything:
        return true()
    if viewer.utility is not None:
        return p.c.program_id.in_(_utility_programs(viewer.utility))
    if viewer.vendor is not None:
        return p.c.wallet.in_(_vendor_devices(viewer.vendor))
    if viewer.holder is not None:
        return p.c.wallet == viewer.holder
    return false()


def credits(viewer: Viewer) -> ColumnElement[bool]:
    """Credits of the viewer's programs, or earned by the viewer's devices."""
    c = schema.credits
    if viewer.everything:
        return true()
    if viewer.utility is not None:
        return c.c.program_id.in_(_utility_programs(viewer.utility))
    if viewer.vendor is not None:
        return c.c.der_id.in_(_vendor_devices(viewer.vendor))
    if viewer.holder is not None:
        return c.c.wallet == viewer.holder
    return false()


def mints(viewer: Viewer, column: Any) -> ColumnElement[bool]:
    """Rows in the viewer's own tokens (utilities) or none (anyone else but the operator)."""
    if viewer.everything:
        return true()
    if viewer.utility is not None:
        return column.in_(utility_mints(viewer.utility))  # type: ignore[no-any-return]
    return false()


def wallet(viewer: Viewer, column: Any, wallet_column: Any) -> ColumnElement[bool]:
    """Rows in one account: the viewer's tokens (utility), its devices' own
    addresses (vendor) or its own address (a prosumer's wallet)."""
    if viewer.everything:
        return true()
    if viewer.utility is not None:
        return column.in_(utility_mints(viewer.utility))  # type: ignore[no-any-return]
    if viewer.vendor is not None:
        return wallet_column.in_(_vendor_devices(viewer.vendor))  # type: ignore[no-any-return]
    if viewer.holder is not None:
        return wallet_column == viewer.holder  # type: ignore[no-any-return]
    return false()
