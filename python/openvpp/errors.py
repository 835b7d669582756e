"""Domain exceptions. Domain code and the Rust extension raise these; the one
table in `openvpp.server.errors` turns each class into a gRPC status.

Each error carries a machine-readable `reason` (UPPER_SNAKE, stable, used as
`google.rpc.ErrorInfo.reason`) and, for bad requests, the offending fields.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """One bad field: a dotted path into the request and why it is bad."""

    field: str
    description: str


class OpenVPPError(Exception):
    """Base of every error a client may see. Never raised directly."""

    def __init__(
        self,
        message: str,
        reason: str,
        *,
        violations: Sequence[FieldViolation] = (),
        metadata: Mapping[str, str] | None = None,
        retry_after_seconds: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason
        self.violations = tuple(violations)
        self.metadata = dict(metadata or {})
        # Sent as google.rpc.RetryInfo: when a retry may succeed.
        self.retry_after_seconds = retry_after_seconds


class InvalidArgument(OpenVPPError):
    """The request itself is wrong, whatever the state of the system."""

    @classmethod
    def field(cls, path: str, description: str, reason: str = "INVALID_FIELD") -> InvalidArgument:
        return cls(f"{path}: {description}", reason, violations=[FieldViolation(path, description)])


class NotFound(OpenVPPError):
    """The named object does not exist."""


class AlreadyExists(OpenVPPError):
    """Creating the object would collide with an existing one."""


class FailedPrecondition(OpenVPPError):
    """The request is well-formed but the system is not in a state to accept it."""


class ResourceExhausted(OpenVPPError):
    """A size or count limit was exceeded."""


class Unauthenticated(OpenVPPError):
    """The caller could not be identified."""


class PermissionDenied(OpenVPPError):
    """The caller is known but may not do this."""


class Aborted(OpenVPPError):
    """A concurrent change won a race the server retried and still lost; retry the call."""


class Unavailable(OpenVPPError):
    """A dependency is temporarily unreachable; the call may be retried."""


class Internal(OpenVPPError):
    """A bug on the server's side (an invariant of the native core failed): never the client's fault."""
