"""Who a caller is: a partner's role and namespace, as its certificate proves them.

Every domain takes the caller's identity from here; the certificate
authority (`integration.ca`) issues and reads the certificates that carry it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

URI_PREFIX = "openvpp://partner/"


class Role(enum.Enum):
    OPERATOR = "operator"
    UTILITY = "utility"
    DEVICE_VENDOR = "device-vendor"
    AGGREGATOR = "aggregator"


@dataclass(frozen=True, slots=True)
class Identity:
    """Who is calling, as proven by a client certificate."""

    role: Role
    namespace: str
    serial: int

    def acts_for(self, *namespaces: str) -> bool:
        """The operator acts for every tenant; a partner only for its own namespace."""
        return self.role is Role.OPERATOR or self.namespace in namespaces

    @property
    def uri(self) -> str:
        return identity_uri(self.role, self.namespace)


def identity_uri(role: Role, namespace: str) -> str:
    return f"{URI_PREFIX}{role.value}/{namespace}"
