"""Reading the rich error details a server attached to a failed call."""

from __future__ import annotations

from dataclasses import dataclass, field

import grpc
from google.rpc import error_details_pb2, status_pb2

_DETAILS_KEY = "grpc-status-details-bin"


@dataclass(frozen=True)
class CallError:
    code: str
    message: str
    reason: str = ""
    fields: list[tuple[str, str]] = field(default_factory=list)

    def __str__(self) -> str:
        text = f"{self.code}: {self.message}"
        if self.reason:
            text += f" [{self.reason}]"
        return text


def describe_status(status: status_pb2.Status) -> CallError:
    """Turns a google.rpc.Status (from trailers or a batch verdict) into plain fields."""
    reason, fields = "", list[tuple[str, str]]()
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        bad = error_details_pb2.BadRequest()
        if detail.Unpack(info):
            reason = info.reason
        elif detail.Unpack(bad):
            fields.extend((v.field, v.description) for v in bad.field_violations)
    code = grpc.StatusCode.OK
    for candidate in grpc.StatusCode:
        if candidate.value[0] == status.code:
            code = candidate
    return CallError(code.name, status.message, reason, fields)


def describe(error: grpc.aio.AioRpcError) -> CallError:
    """Plain fields of a failed call, including ErrorInfo and BadRequest details."""
    for key, value in error.trailing_metadata() or ():
        if key == _DETAILS_KEY and isinstance(value, bytes):
            return describe_status(status_pb2.Status.FromString(value))
    return CallError(error.code().name, error.details() or "")
