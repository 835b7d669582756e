"""Refusals about utility programs, worded the same by every domain that
takes a program id (routing owns programs; settlement, DR and oracles refer
to them)."""

from __future__ import annotations

from openvpp import errors
from openvpp.kernel.tenancy import cross_tenant


def denied(what: str) -> errors.PermissionDenied:
    """The caller does not own `what`: PERMISSION_DENIED / CROSS_TENANT."""
    return cross_tenant(what)


def program_not_found(program_id: str) -> errors.NotFound:
    return errors.NotFound(f"no program {program_id}", "PROGRAM_NOT_FOUND")
