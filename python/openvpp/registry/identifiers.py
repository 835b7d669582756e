"""Parsing and canonical forms of every identifier a device can be known by."""

from __future__ import annotations

import hashlib
import re

import base58

from openvpp.errors import InvalidArgument
from openvpp.v1 import common_pb2

PUBLIC_KEY_LEN = 32
MAX_DER_ID_LEN = 44
MAX_NAME_LEN = 253
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_NAMESPACE_RE = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*$")
_LFDI_RE = re.compile(r"^[0-9A-Fa-f]{40}$")
_SFDI_RE = re.compile(r"^[0-9]{1,13}$")
_OCPP_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:+*@|-]{0,47}$")
_VEN_NAME_RE = re.compile(r"^[\x21-\x7e](?:[\x20-\x7e]{0,126}[\x21-\x7e])?$")
_METER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}$")
SFDI_MAX = 2**36 - 1


def decode_der_id(der_id: str, field: str) -> bytes:
    """The 32 key bytes of a base58 der_id, or INVALID_ARGUMENT naming `field`."""
    if not der_id:
        raise InvalidArgument.field(field, "must not be empty", "EMPTY_FIELD")
    # Base58 decoding is quadratic in the input: bound it before decoding.
    if len(der_id) > MAX_DER_ID_LEN:
        raise InvalidArgument.field(
            field, f"is longer than {MAX_DER_ID_LEN} characters, the base58 form of a 32-byte key", "WRONG_KEY_LENGTH"
        )
    try:
        raw: bytes = base58.b58decode(der_id.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        raise InvalidArgument.field(field, "is not valid base58", "MALFORMED_BASE58") from None
    if len(raw) != PUBLIC_KEY_LEN:
        raise InvalidArgument.field(
            field, f"decodes to {len(raw)} bytes; an ed25519 public key is 32", "WRONG_KEY_LENGTH"
        )
    # b58decode tolerates some non-canonical spellings; only the canonical one names the device.
    if encode_der_id(raw) != der_id:
        raise InvalidArgument.field(field, "is not the canonical base58 encoding", "MALFORMED_BASE58")
    return raw


def encode_der_id(public_key: bytes) -> str:
    return str(base58.b58encode(public_key).decode("ascii"))


def check_namespace(namespace: str, field: str) -> str:
    if not namespace:
        raise InvalidArgument.field(field, "must not be empty", "EMPTY_FIELD")
    if len(namespace) > MAX_NAME_LEN or not _NAMESPACE_RE.match(namespace):
        raise InvalidArgument.field(field, "must be lower-case DNS labels separated by dots", "INVALID_NAME")
    return namespace


def check_device_name(name: str, namespace: str, field: str) -> str:
    """A name is one more label in front of the vendor namespace."""
    if not name:
        raise InvalidArgument.field(field, "must not be empty", "EMPTY_FIELD")
    if len(name) > MAX_NAME_LEN or not _NAMESPACE_RE.match(name):
        raise InvalidArgument.field(field, "must be lower-case DNS labels separated by dots", "INVALID_NAME")
    label, _, rest = name.partition(".")
    if rest != namespace or not label:
        raise InvalidArgument.field(
            field,
            f"must be <label>.{namespace} (one label under the vendor namespace)",
            "NAME_OUTSIDE_NAMESPACE",
        )
    return name


def sfdi_check_digit(value: int) -> int:
    """IEEE 2030.5 check digit: makes the sum of all decimal digits a multiple of 10."""
    return (10 - sum(int(d) for d in str(value)) % 10) % 10


def canonical_alias(kind: int, value: str, field: str) -> str:
    """The stored form of an alias, or INVALID_ARGUMENT naming `field`."""
    if kind == common_pb2.ALIAS_KIND_LFDI:
        if not _LFDI_RE.match(value):
            raise InvalidArgument.field(field, "an LFDI is exactly 40 hex digits", "INVALID_LFDI")
        return value.upper()
    if kind == common_pb2.ALIAS_KIND_SFDI:
        if not _SFDI_RE.match(value) or len(value) < 2 or value.startswith("0"):
            raise InvalidArgument.field(field, "an SFDI is 2 to 13 decimal digits, no leading zero", "INVALID_SFDI")
        number, check = divmod(int(value), 10)
        if number > SFDI_MAX:
            raise InvalidArgument.field(field, "an SFDI holds at most 36 bits before its check digit", "INVALID_SFDI")
        if sfdi_check_digit(number) != check:
            raise InvalidArgument.field(field, "the SFDI check digit does not match", "SFDI_CHECK_DIGIT")
        return value
    patterns: dict[int, tuple[re.Pattern[str], str]] = {
        common_pb2.ALIAS_KIND_OCPP_CHARGE_POINT_ID: (_OCPP_ID_RE, "1-48 characters of [A-Za-z0-9._:+*@|-]"),
        common_pb2.ALIAS_KIND_OPENADR_VEN_NAME: (_VEN_NAME_RE, "1-128 printable ASCII characters, trimmed"),
        common_pb2.ALIAS_KIND_METER_NUMBER: (_METER_RE, "1-64 characters of [A-Za-z0-9._:/-]"),
    }
    if kind not in patterns:
        raise InvalidArgument.field(field.rsplit(".", 1)[0] + ".kind", "must be a known alias kind", "INVALID_ENUM")
    pattern, rule = patterns[kind]
    if not pattern.match(value):
        raise InvalidArgument.field(field, f"must be {rule}", "INVALID_ALIAS")
    return value


def alias_candidates(text: str) -> list[tuple[int, str]]:
    """Every (kind, canonical value) that free text could be, for lookups by `any`."""
    candidates: list[tuple[int, str]] = []
    for kind in common_pb2.AliasKind.values():
        if kind == common_pb2.ALIAS_KIND_UNSPECIFIED:
            continue
        try:
            candidates.append((kind, canonical_alias(kind, text, "identifier")))
        except InvalidArgument:
            continue
    return candidates


def lfdi_from_fingerprint(fingerprint: bytes) -> str:
    """IEEE 2030.5 §6.3.4: the certificate fingerprint truncated to its first 160 bits, in hex."""
    return fingerprint[:20].hex().upper()


def lfdi_from_certificate(certificate_der: bytes) -> str:
    """The LFDI of a certificate: its fingerprint is SHA-256 over the DER bytes (§6.3.2)."""
    return lfdi_from_fingerprint(hashlib.sha256(certificate_der).digest())


def sfdi_from_lfdi(lfdi: str) -> str:
    """IEEE 2030.5 §6.3.3: the LFDI's first 36 bits as a decimal number, then the check digit."""
    value = int(lfdi[:9], 16)
    return f"{value}{sfdi_check_digit(value)}"
