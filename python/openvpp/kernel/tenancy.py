"""The tenant policy: whose data an RPC may touch.

Every RPC in the authorization table carries one `Scope`. The domain applies
it with the helpers here, so the refusal for another tenant's object is the
same everywhere:

- an object whose existence is public (devices, programs, tokens, endpoints,
  partners) is refused with PERMISSION_DENIED / CROSS_TENANT;
- a private record (settlements, DR events, redemptions) named by another
  tenant is NOT_FOUND, the same answer as for an id that does not exist, so
  its existence is not revealed;
- an answer assembled from many tenants' rows (payouts, balances, ledger
  checks, event streams) is filtered to the caller's part.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from openvpp import errors
from openvpp.kernel.identity import Identity, Role


class Scope(enum.Enum):
    # Directory data: any role the table allows reads it for any tenant.
    PUBLIC = "public"
    # An object named in the request that belongs to one tenant: its owner
    # and the operator act on it; anyone else is refused (CROSS_TENANT).
    OWNED = "owned"
    # A private record named by id: its owner and the operator see it;
    # for anyone else it does not exist (NOT_FOUND).
    PRIVATE = "private"
    # An answer made of many tenants' rows: only the caller's part is in it.
    # For batches (readings, bulk registration, batch resolution) each item
    # of another tenant is refused in place and the rest proceed.
    FILTERED = "filtered"
    # Only the operator, whose role sees every tenant.
    OPERATOR = "operator"
    # Authorised by a signature carried in the request (a price oracle's key),
    # not by the caller's tenancy; the signer's object must exist.
    SIGNED = "signed"


def cross_tenant(what: str) -> errors.PermissionDenied:
    """The refusal for another tenant's public object."""
    return errors.PermissionDenied(f"a partner may only {what}", "CROSS_TENANT")


@dataclass(frozen=True, slots=True)
class Viewer:
    """Whose part of shared settlement data a caller sees: everything (the
    operator), one utility's programs and tokens, one vendor's devices, or
    one prosumer's wallet (a web session signed by that wallet's key: the
    wallet's own account, payouts and redemptions, and the bills of the
    accounts its device is enrolled in). An aggregator owns no programs or
    devices and sees nothing."""

    everything: bool
    utility: str | None = None
    vendor: str | None = None
    holder: str | None = None

    @classmethod
    def wallet(cls, address: str) -> Viewer:
        return cls(False, holder=address)

    @classmethod
    def of(cls, caller: Identity) -> Viewer:
        if caller.role is Role.OPERATOR:
            return cls(True)
        if caller.role is Role.UTILITY:
            return cls(False, utility=caller.namespace)
        if caller.role is Role.DEVICE_VENDOR:
            return cls(False, vendor=caller.namespace)
        return cls(False)
