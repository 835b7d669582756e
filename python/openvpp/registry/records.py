"""Signed device records: parse and validate exactly the bytes the device signed."""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf import unknown_fields
from google.protobuf.message import DecodeError, Message

from openvpp.errors import InvalidArgument, ResourceExhausted
from openvpp.registry import identifiers
from openvpp.v1 import common_pb2, registry_pb2

# What the device signs is this tag followed by the record bytes, so a device
# key can never be tricked into signing a record with a reading or a consent.
RECORD_DOMAIN = b"openvpp/device-record/v1"
SIGNATURE_LEN = 64
MAX_ALIASES = 16
MAX_TEXT = 128
MAX_LOCATION_TEXT = 64
# Bounds that catch unit mistakes (kW sent as W) rather than physics: the
# largest DER class a distribution utility enrols individually is ~100 MW.
MAX_POWER_W = 100_000_000
MAX_STORAGE_WH = 1_000_000_000


@dataclass(frozen=True, slots=True)
class Alias:
    kind: int
    value: str


@dataclass(frozen=True, slots=True)
class ValidatedRecord:
    """A record that parsed and passed every stateless check; not yet verified."""

    der_id: str
    public_key: bytes
    record_bytes: bytes
    signature: bytes
    record: registry_pb2.DeviceRecord
    aliases: tuple[Alias, ...]

    @property
    def name(self) -> str:
        return self.record.name

    @property
    def version(self) -> int:
        return self.record.version


def has_unknown_fields(message: Message) -> bool:
    if len(unknown_fields.UnknownFieldSet(message)):
        return True
    for descriptor, value in message.ListFields():
        if descriptor.message_type is None:
            continue
        values = value if descriptor.is_repeated else [value]
        if any(has_unknown_fields(v) for v in values):
            return True
    return False


def _check_text(value: str, limit: int, field: str) -> None:
    if len(value) > limit:
        raise InvalidArgument.field(field, f"must be at most {limit} characters", "FIELD_TOO_LONG")
    if value != value.strip() or any(ord(c) < 0x20 for c in value):
        raise InvalidArgument.field(field, "must not have surrounding spaces or control characters", "INVALID_TEXT")


def validate(envelope: registry_pb2.SignedDeviceRecord, max_record_bytes: int, prefix: str) -> ValidatedRecord:
    """Every check that needs no state and no signature work, in field order."""
    rec = f"{prefix}.record"
    if not envelope.record:
        raise InvalidArgument.field(rec, "must not be empty", "EMPTY_FIELD")
    if len(envelope.record) > max_record_bytes:
        raise ResourceExhausted(
            f"{rec}: {len(envelope.record)} bytes exceeds the {max_record_bytes}-byte limit",
            "RECORD_TOO_LARGE",
            metadata={"limit_bytes": str(max_record_bytes)},
        )
    if len(envelope.signature) != SIGNATURE_LEN:
        raise InvalidArgument.field(
            f"{prefix}.signature",
            f"is {len(envelope.signature)} bytes; an ed25519 signature is 64",
            "WRONG_SIGNATURE_LENGTH",
        )
    record = registry_pb2.DeviceRecord()
    try:
        record.ParseFromString(envelope.record)
    except DecodeError:
        raise InvalidArgument.field(rec, "is not a serialised DeviceRecord", "RECORD_UNPARSEABLE") from None
    if has_unknown_fields(record):
        raise InvalidArgument.field(rec, "carries fields this registry does not know", "RECORD_UNKNOWN_FIELDS")
    if len(record.public_key) != identifiers.PUBLIC_KEY_LEN:
        raise InvalidArgument.field(
            f"{rec}.public_key",
            f"is {len(record.public_key)} bytes; an ed25519 public key is 32",
            "WRONG_KEY_LENGTH",
        )
    der_id = identifiers.encode_der_id(record.public_key)
    if envelope.signer and identifiers.decode_der_id(envelope.signer, f"{prefix}.signer") != record.public_key:
        raise InvalidArgument.field(
            f"{prefix}.signer", "is not the record's public key (no proof of possession)", "SIGNER_MISMATCH"
        )
    identifiers.check_namespace(record.vendor_namespace, f"{rec}.vendor_namespace")
    identifiers.check_device_name(record.name, record.vendor_namespace, f"{rec}.name")
    if record.kind not in common_pb2.DeviceKind.values() or record.kind == common_pb2.DEVICE_KIND_UNSPECIFIED:
        raise InvalidArgument.field(f"{rec}.kind", "must be a known device kind", "INVALID_ENUM")
    if record.version < 1:
        raise InvalidArgument.field(f"{rec}.version", "must be at least 1", "INVALID_VERSION")
    _check_capabilities(record.capabilities, f"{rec}.capabilities")
    for name, value in (
        ("utility_territory", record.location.utility_territory),
        ("postal_code", record.location.postal_code),
        ("grid_node", record.location.grid_node),
    ):
        _check_text(value, MAX_LOCATION_TEXT, f"{rec}.location.{name}")
    _check_text(record.model, MAX_TEXT, f"{rec}.model")
    _check_text(record.serial_number, MAX_TEXT, f"{rec}.serial_number")
    return ValidatedRecord(
        der_id=der_id,
        public_key=bytes(record.public_key),
        record_bytes=bytes(envelope.record),
        signature=bytes(envelope.signature),
        record=record,
        aliases=_check_aliases(record, rec),
    )


def _check_capabilities(caps: common_pb2.Capabilities, field: str) -> None:
    for name, value, limit in (
        ("max_import_w", caps.max_import_w, MAX_POWER_W),
        ("max_export_w", caps.max_export_w, MAX_POWER_W),
        ("storage_wh", caps.storage_wh, MAX_STORAGE_WH),
    ):
        if value > limit:
            raise InvalidArgument.field(f"{field}.{name}", f"must be at most {limit}", "OUT_OF_RANGE")
    seen: set[int] = set()
    for i, protocol in enumerate(caps.protocols):
        if protocol not in common_pb2.Protocol.values() or protocol == common_pb2.PROTOCOL_UNSPECIFIED:
            raise InvalidArgument.field(f"{field}.protocols[{i}]", "must be a known protocol", "INVALID_ENUM")
        if protocol in seen:
            raise InvalidArgument.field(f"{field}.protocols[{i}]", "is listed twice", "DUPLICATE_VALUE")
        seen.add(protocol)


def _check_aliases(record: registry_pb2.DeviceRecord, rec: str) -> tuple[Alias, ...]:
    if len(record.aliases) > MAX_ALIASES:
        raise InvalidArgument.field(f"{rec}.aliases", f"at most {MAX_ALIASES} aliases", "TOO_MANY_ALIASES")
    aliases: list[Alias] = []
    for i, alias in enumerate(record.aliases):
        value = identifiers.canonical_alias(alias.kind, alias.value, f"{rec}.aliases[{i}].value")
        if Alias(alias.kind, value) in aliases:
            raise InvalidArgument.field(f"{rec}.aliases[{i}]", "is listed twice", "DUPLICATE_VALUE")
        aliases.append(Alias(alias.kind, value))
    return tuple(aliases)
