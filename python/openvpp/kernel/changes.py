"""The port through which a domain announces a change that other domains
derive something from: a device's status or identifiers (the registry), a
partner's status (integration), an endpoint's health or removal
(integration). The announcing domain states the fact in the transaction that
made it; the listener (routing, wired in by the composition root) decides
what the fact means for its own tables, in that same transaction. So no
domain writes another's tables and the lower domains never import routing."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncConnection


class Fact(enum.Enum):
    DEVICE_STATUS = "device_status"
    DEVICE_IDENTIFIERS = "device_identifiers"
    PARTNER_SUSPENDED = "partner_suspended"
    PARTNER_REINSTATED = "partner_reinstated"
    ENDPOINT_FAILED = "endpoint_failed"
    ENDPOINT_RESTORED = "endpoint_restored"
    ENDPOINT_REMOVED = "endpoint_removed"


@dataclass(frozen=True, slots=True)
class Change:
    fact: Fact
    der_id: str = ""
    # The device's vendor, or the partner when it is a vendor.
    vendor: str = ""
    # The partner when it is a utility, or the endpoint's owner.
    utility: str = ""
    # The partner whose status changed.
    partner: str = ""
    endpoint: str = ""
    detail: str = ""


class Listener(Protocol):
    async def changed(self, conn: AsyncConnection, changes: Sequence[Change], at_us: int) -> None:
        """Called inside the announcing transaction; raising rolls it back."""
        ...
