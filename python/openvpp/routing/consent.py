"""The owner's consent: a small protobuf the device key signs, checked and stored verbatim."""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf.message import DecodeError
from solders.keypair import Keypair

from openvpp import errors, native
from openvpp.registry import identifiers, records
from openvpp.v1 import routing_pb2 as pb

CONSENT_DOMAIN = b"openvpp/consent/v1"
MAX_CONSENT_BYTES = 2048
# Consent is renewed at least yearly, so a lost device's consent lapses on its own.
MAX_CONSENT_DAYS = 400
_SCOPES = frozenset(pb.ConsentScope.values()) - {pb.CONSENT_SCOPE_UNSPECIFIED}


@dataclass(frozen=True, slots=True)
class Consent:
    payload: bytes
    signature: bytes
    scopes: tuple[int, ...]
    account_ref: str
    not_before_us: int
    expires_at_us: int


def _bad(field: str, why: str, reason: str) -> errors.InvalidArgument:
    return errors.InvalidArgument.field(field, why, reason)


def check(signed: pb.SignedConsent, der_id: str, program_id: str, account_ref: str, now_us: int) -> Consent:
    """Parses the exact bytes, checks they bind this device, program and account, and verifies the signature."""
    if not signed.payload:
        raise _bad("consent.payload", "must not be empty", "EMPTY_FIELD")
    if len(signed.payload) > MAX_CONSENT_BYTES:
        raise _bad("consent.payload", f"must be at most {MAX_CONSENT_BYTES} bytes", "TOO_LONG")
    payload = pb.ConsentPayload()
    try:
        payload.ParseFromString(signed.payload)
    except DecodeError:
        raise _bad("consent.payload", "is not a ConsentPayload", "CONSENT_UNPARSEABLE") from None
    if records.has_unknown_fields(payload):
        raise _bad(
            "consent.payload", "has fields this server does not know; it will not vouch for them", "UNKNOWN_FIELDS"
        )
    if payload.der_id != der_id:
        raise _bad("consent.payload.der_id", "must be the enrolled device", "CONSENT_MISMATCH")
    if payload.program_id != program_id:
        raise _bad("consent.payload.program_id", "must be the program enrolled in", "CONSENT_MISMATCH")
    if payload.account_ref != account_ref:
        raise _bad("consent.payload.account_ref", "must equal the request's account_ref", "CONSENT_MISMATCH")
    if not payload.scopes or any(s not in _SCOPES for s in payload.scopes):
        raise _bad("consent.payload.scopes", "must list known scopes", "INVALID_ENUM")
    if len(set(payload.scopes)) != len(payload.scopes):
        raise _bad("consent.payload.scopes", "must not repeat a scope", "DUPLICATE")
    not_before = payload.not_before.ToMicroseconds()
    expires = payload.expires_at.ToMicroseconds()
    if not payload.HasField("expires_at") or expires <= now_us:
        raise errors.FailedPrecondition("the consent has expired or has no expiry", "CONSENT_EXPIRED")
    if expires - now_us > MAX_CONSENT_DAYS * 86_400_000_000:
        raise _bad("consent.payload.expires_at", f"must be within {MAX_CONSENT_DAYS} days", "CONSENT_TOO_LONG")
    if not_before > now_us:
        raise errors.FailedPrecondition("the consent is not valid yet", "CONSENT_NOT_YET_VALID")
    if len(signed.signature) != native.SIGNATURE_LEN:
        raise _bad("consent.signature", "must be 64 bytes", "INVALID_SIGNATURE_LENGTH")
    key = identifiers.decode_der_id(der_id, "device")
    [verdict] = native.verify_ed25519(CONSENT_DOMAIN, [native.SignedItem(key, signed.signature, signed.payload)])
    if verdict is not native.SignatureVerdict.VALID:
        raise _bad("consent.signature", f"does not verify under the device key ({verdict.name})", "BAD_SIGNATURE")
    return Consent(signed.payload, signed.signature, tuple(payload.scopes), payload.account_ref, not_before, expires)


def sign(keypair: Keypair, payload: pb.ConsentPayload) -> pb.SignedConsent:
    """Device side: serialise once, sign those bytes."""
    data = payload.SerializeToString(deterministic=True)
    return pb.SignedConsent(payload=data, signature=bytes(keypair.sign_message(CONSENT_DOMAIN + data)))
