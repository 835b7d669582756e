"""The request edge: every request is decoded and bounded before any domain code runs.

Undecodable bytes, an oversize string or bytes field, a NUL character in a
string, an enum value the schema does not define, too many repeated items,
an integer the store cannot hold and a timestamp outside the representable
years are refused here with INVALID_ARGUMENT naming the
field, on every RPC kind, streaming included. The checks are one linear
walk over the fields that are set; nothing is parsed (base58, PEM, DER,
URLs) before they pass, so no request can make parsing expensive.

The maxima are part of the contract; the README lists them. Hand-written
because it is a property of our own schema: protobuf validation libraries
need annotations compiled into the protos and a second runtime.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import DecodeError, Message

from openvpp import errors
from openvpp.kernel.pagination import MAX_STORED

KIB, MIB = 1024, 1024 * 1024
# Identifiers (der_ids, namespaces, `<utility>/<code>` ids, mints, wallets)
# fit in 320 characters; any string field without its own entry below is
# bounded by this.
MAX_STRING = 320
MAX_BYTES = 4 * KIB
MAX_REPEATED = 1000
# google.protobuf.Timestamp's range: 0001-01-01 to 9999-12-31.
MIN_SECONDS, MAX_SECONDS = -62_135_596_800, 253_402_300_799

# (message, field) -> maximum length in characters (strings) or bytes.
LENGTHS: dict[tuple[str, str], int] = {
    ("openvpp.v1.SignedDeviceRecord", "record"): 64 * KIB,
    ("openvpp.v1.SignedDeviceRecord", "signature"): 128,
    ("openvpp.v1.RegisterDeviceCertificateRequest", "certificate_der"): 16 * KIB,
    ("openvpp.v1.SetDeviceStatusRequest", "reason"): 1 * KIB,
    ("openvpp.v1.UnenrollDeviceRequest", "reason"): 1 * KIB,
    ("openvpp.v1.SuspendPartnerRequest", "reason"): 1 * KIB,
    ("openvpp.v1.ReinstatePartnerRequest", "reason"): 1 * KIB,
    ("openvpp.v1.SignedConsent", "payload"): 4 * KIB,
    ("openvpp.v1.SignedConsent", "signature"): 128,
    ("openvpp.v1.OnboardPartnerRequest", "csr_pem"): 16 * KIB,
    ("openvpp.v1.IssueCertificateRequest", "csr_pem"): 16 * KIB,
    ("openvpp.v1.RenewCertificateRequest", "csr_pem"): 16 * KIB,
    ("openvpp.v1.RegisterEndpointRequest", "url"): 2 * KIB,
    ("openvpp.v1.RegisterEndpointRequest", "trust_anchors_pem"): 64 * KIB,
    ("openvpp.v1.CreateUseCaseTokenRequest", "uri"): 2 * KIB,
    # The largest Solana transaction (one 1,232-byte packet).
    ("openvpp.v1.SubmitRedemptionRequest", "transaction"): 1232,
    # Reading batches and price points are bounded by the message size and
    # by the per-batch counts the domain checks.
    ("openvpp.v1.SubmitReadingsRequest", "payloads"): 64 * MIB,
    ("openvpp.v1.SubmitReadingsRequest", "signatures"): 64 * MIB,
    ("openvpp.v1.PublishPriceFeedRequest", "points"): 64 * MIB,
    ("openvpp.v1.PublishPriceFeedRequest", "signature"): 128,
    ("openvpp.v1.ListDevicesRequest", "page_token"): 128,
    ("openvpp.v1.ListProgramsRequest", "page_token"): 1 * KIB,
    ("openvpp.v1.ListEnrollmentsRequest", "page_token"): 1 * KIB,
    ("openvpp.v1.ListPartnersRequest", "page_token"): 1 * KIB,
    ("openvpp.v1.ListEndpointsRequest", "page_token"): 1 * KIB,
    ("openvpp.v1.ListPayoutsRequest", "page_token"): 128,
    # A URDB tariff document (BillingPlans checks it again, as JSON).
    ("openvpp.v1.BillingPlan", "urdb_json"): 1 * MIB,
    ("openvpp.v1.ListBillsRequest", "page_token"): 128,
    ("openvpp.v1.SubmitAutopayRequest", "transaction"): 1232,
}
# (message, field) -> most items in a repeated field.
COUNTS: dict[tuple[str, str], int] = {
    # The per-call batch the resolver enforces (max_resolve_batch) is the real bound.
    ("openvpp.v1.ResolveBatchRequest", "identifiers"): 200_000,
}

_TEXT = (FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_BYTES)
# Unsigned fields bounded by the signed column the store keeps them in.
_UNSIGNED = {
    FieldDescriptor.TYPE_UINT64: MAX_STORED,
    FieldDescriptor.TYPE_FIXED64: MAX_STORED,
    FieldDescriptor.TYPE_UINT32: 2**31 - 1,
    FieldDescriptor.TYPE_FIXED32: 2**31 - 1,
}


def _long(path: str, limit: int, unit: str) -> errors.InvalidArgument:
    return errors.InvalidArgument.field(path, f"is longer than {limit:,} {unit}", "FIELD_TOO_LONG")


def check(message: Message, path: str = "") -> None:
    """Refuses the first field outside its bounds (InvalidArgument naming it)."""
    name = message.DESCRIPTOR.full_name
    if name == "google.protobuf.Timestamp":
        seconds = message.seconds  # type: ignore[attr-defined]
        if not MIN_SECONDS <= seconds <= MAX_SECONDS:
            raise errors.InvalidArgument.field(f"{path}seconds", "is outside years 1 to 9999", "OUT_OF_RANGE")
        return
    for field, value in message.ListFields():
        where = f"{path}{field.name}"
        key = (name, field.name)
        items = value if field.is_repeated else (value,)
        if field.is_repeated and len(items) > COUNTS.get(key, MAX_REPEATED):
            raise errors.InvalidArgument.field(
                where, f"has more than {COUNTS.get(key, MAX_REPEATED):,} items", "TOO_MANY_ITEMS"
            )
        if field.type in _TEXT:
            limit = LENGTHS.get(key, MAX_STRING if field.type == FieldDescriptor.TYPE_STRING else MAX_BYTES)
            unit = "characters" if field.type == FieldDescriptor.TYPE_STRING else "bytes"
            for i, item in enumerate(items):
                at = f"{where}[{i}]" if field.is_repeated else where
                if len(item) > limit:
                    raise _long(at, limit, unit)
                # PostgreSQL text cannot hold U+0000, and no identifier or name needs it.
                if field.type == FieldDescriptor.TYPE_STRING and "\x00" in item:
                    raise errors.InvalidArgument.field(at, "must not contain NUL characters", "INVALID_CHARACTERS")
        elif field.type in _UNSIGNED:
            bound = _UNSIGNED[field.type]
            for i, item in enumerate(items):
                if item > bound:
                    raise errors.InvalidArgument.field(
                        f"{where}[{i}]" if field.is_repeated else where, f"must be at most {bound}", "OUT_OF_RANGE"
                    )
        elif field.type == FieldDescriptor.TYPE_ENUM:
            known = field.enum_type.values_by_number  # type: ignore[union-attr]
            for i, item in enumerate(items):
                if item not in known:
                    raise errors.InvalidArgument.field(
                        f"{where}[{i}]" if field.is_repeated else where,
                        f"{item} is not a value of {field.enum_type.full_name}",  # type: ignore[union-attr]
                        "INVALID_ENUM",
                    )
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            for i, item in enumerate(items):
                check(item, f"{where}[{i}]." if field.is_repeated else f"{where}.")


class Refused:
    """What the decoder hands on in place of a request it refused."""

    __slots__ = ("error",)

    def __init__(self, error: errors.OpenVPPError) -> None:
        self.error = error


def decoder(parse: Callable[[bytes], Message], type_name: str) -> Callable[[bytes], Message | Refused]:
    def decode(raw: bytes) -> Message | Refused:
        try:
            message = parse(raw)
        except (DecodeError, RuntimeError, ValueError):
            return Refused(
                errors.InvalidArgument(f"the request is not a valid {type_name} message", "MALFORMED_REQUEST")
            )
        try:
            check(message)
        except errors.InvalidArgument as error:
            return Refused(error)
        return message

    return decode


async def _refusing(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
    async for request in requests:
        if isinstance(request, Refused):
            raise request.error
        yield request


def checked_decoder(method: str, handler: grpc.RpcMethodHandler[Any, Any]) -> Callable[[bytes], Any] | None:
    """The decoder with the checks above for one of our methods; None for
    health and reflection, the libraries' own, which decode their own requests."""
    parse = handler.request_deserializer
    if parse is None or not method.startswith("/openvpp."):
        return None
    message_type = getattr(getattr(parse, "__self__", None), "DESCRIPTOR", None)
    return decoder(parse, message_type.full_name if message_type is not None else "request")


def admitted(request: Any) -> Any:
    """A decoded request, with a refusal raised (inside the handler, where
    the error table turns it into a status)."""
    if isinstance(request, Refused):
        raise request.error
    return request


def admitted_stream(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
    """A client stream's messages, each refusal raised as it is reached."""
    return _refusing(requests)
