"""RegisterDevice: the happy path and every kind of bad input, with nothing half-written."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import grpc
import pytest
from solders.keypair import Keypair

from openvpp.registry.records import RECORD_DOMAIN
from openvpp.registry.signing import sign_record
from openvpp.v1 import common_pb2, registry_pb2
from tests import factories
from tests.rpc import expect_error

if TYPE_CHECKING:
    from openvpp.v1.registry_pb2_grpc import RegistryServiceAsyncStub as Stub
INVALID = grpc.StatusCode.INVALID_ARGUMENT


async def register(stub: Stub, signed: registry_pb2.SignedDeviceRecord) -> registry_pb2.RegisterDeviceResponse:
    return await stub.RegisterDevice(registry_pb2.RegisterDeviceRequest(signed_record=signed))


async def head(stub: Stub) -> registry_pb2.GetRegistryHeadResponse:
    return await stub.GetRegistryHead(registry_pb2.GetRegistryHeadRequest())


async def test_registered_record_is_stored_verbatim_and_found_by_every_identifier(registry: Stub) -> None:
    kp = Keypair()
    signed = factories.signed(kp, "inverter-7f3a")
    response = await register(registry, signed)
    device = response.device
    assert device.der_id == str(kp.pubkey())
    assert device.signed_record.record == signed.record
    assert device.signed_record.signature == signed.signature
    assert device.status == common_pb2.DEVICE_STATUS_ACTIVE
    assert device.version == 1
    assert response.log_seq == 1
    lfdi, sfdi = (a.value for a in device.record.aliases)
    identifiers = [
        common_pb2.DeviceIdentifier(der_id=device.der_id),
        common_pb2.DeviceIdentifier(name="inverter-7f3a.solarco"),
        common_pb2.DeviceIdentifier(alias=common_pb2.Alias(kind=common_pb2.ALIAS_KIND_LFDI, value=lfdi.lower())),
        common_pb2.DeviceIdentifier(alias=common_pb2.Alias(kind=common_pb2.ALIAS_KIND_SFDI, value=sfdi)),
        common_pb2.DeviceIdentifier(any=device.der_id),
        common_pb2.DeviceIdentifier(any="inverter-7f3a.solarco"),
        common_pb2.DeviceIdentifier(any=lfdi),
        common_pb2.DeviceIdentifier(any=sfdi),
    ]
    for identifier in identifiers:
        got = await registry.GetDevice(registry_pb2.GetDeviceRequest(identifier=identifier))
        assert got.device.der_id == device.der_id, identifier


def _mutate(
    change: Callable[[registry_pb2.DeviceRecord], None],
) -> Callable[[Keypair], registry_pb2.SignedDeviceRecord]:
    def build(kp: Keypair) -> registry_pb2.SignedDeviceRecord:
        record = factories.record(kp, "dev-1")
        change(record)
        return sign_record(kp, record)

    return build


def _raw(record_bytes: bytes, kp: Keypair) -> registry_pb2.SignedDeviceRecord:
    return registry_pb2.SignedDeviceRecord(
        record=record_bytes, signature=bytes(kp.sign_message(RECORD_DOMAIN + record_bytes))
    )


BAD_RECORDS: list[
    tuple[str, Callable[[Keypair], registry_pb2.SignedDeviceRecord], grpc.StatusCode, str, str | None]
] = [
    (
        "empty record",
        lambda kp: registry_pb2.SignedDeviceRecord(signature=bytes(64)),
        INVALID,
        "EMPTY_FIELD",
        "signed_record.record",
    ),
    ("garbage bytes", lambda kp: _raw(b"\xff\xff\xff", kp), INVALID, "RECORD_UNPARSEABLE", "signed_record.record"),
    (
        "unknown field",
        lambda kp: _raw(factories.record(kp, "dev-1").SerializeToString() + b"\xa8\x06\x01", kp),
        INVALID,
        "RECORD_UNKNOWN_FIELDS",
        "signed_record.record",
    ),
    (
        "short signature",
        lambda kp: registry_pb2.SignedDeviceRecord(record=factories.signed(kp, "dev-1").record, signature=bytes(63)),
        INVALID,
        "WRONG_SIGNATURE_LENGTH",
        "signed_record.signature",
    ),
    (
        "short key",
        _mutate(lambda r: setattr(r, "public_key", r.public_key[:31])),
        INVALID,
        "WRONG_KEY_LENGTH",
        "signed_record.record.public_key",
    ),
    ("empty name", _mutate(lambda r: setattr(r, "name", "")), INVALID, "EMPTY_FIELD", "signed_record.record.name"),
    (
        "name outside namespace",
        _mutate(lambda r: setattr(r, "name", "dev-1.other")),
        INVALID,
        "NAME_OUTSIDE_NAMESPACE",
        "signed_record.record.name",
    ),
    (
        "upper-case namespace",
        _mutate(lambda r: setattr(r, "vendor_namespace", "SolarCo")),
        INVALID,
        "INVALID_NAME",
        "signed_record.record.vendor_namespace",
    ),
    ("no kind", _mutate(lambda r: setattr(r, "kind", 0)), INVALID, "INVALID_ENUM", "signed_record.record.kind"),
    ("unknown kind", _mutate(lambda r: setattr(r, "kind", 42)), INVALID, "INVALID_ENUM", "signed_record.record.kind"),
    (
        "version zero",
        _mutate(lambda r: setattr(r, "version", 0)),
        INVALID,
        "INVALID_VERSION",
        "signed_record.record.version",
    ),
    (
        "version two first",
        _mutate(lambda r: setattr(r, "version", 2)),
        grpc.StatusCode.FAILED_PRECONDITION,
        "SKIPPED_VERSION",
        "signed_record.record.version",
    ),
    (
        "export in kW by mistake",
        _mutate(lambda r: setattr(r.capabilities, "max_export_w", 10**12)),
        INVALID,
        "OUT_OF_RANGE",
        "signed_record.record.capabilities.max_export_w",
    ),
    (
        "protocol twice",
        _mutate(lambda r: r.capabilities.protocols.append(common_pb2.PROTOCOL_IEEE_2030_5)),
        INVALID,
        "DUPLICATE_VALUE",
        "signed_record.record.capabilities.protocols[1]",
    ),
    (
        "bad lfdi",
        _mutate(lambda r: setattr(r.aliases[0], "value", "XYZ")),
        INVALID,
        "INVALID_LFDI",
        "signed_record.record.aliases[0].value",
    ),
    (
        "bad sfdi check digit",
        _mutate(
            lambda r: setattr(
                r.aliases[1], "value", r.aliases[1].value[:-1] + str((int(r.aliases[1].value[-1]) + 1) % 10)
            )
        ),
        INVALID,
        "SFDI_CHECK_DIGIT",
        "signed_record.record.aliases[1].value",
    ),
    (
        "alias twice",
        _mutate(lambda r: r.aliases.append(r.aliases[0])),
        INVALID,
        "DUPLICATE_VALUE",
        "signed_record.record.aliases[2]",
    ),
    (
        "alias kind missing",
        _mutate(lambda r: r.aliases.append(common_pb2.Alias(value="x"))),
        INVALID,
        "INVALID_ENUM",
        "signed_record.record.aliases[2].kind",
    ),
    (
        "postal code with spaces",
        _mutate(lambda r: setattr(r.location, "postal_code", " 94110")),
        INVALID,
        "INVALID_TEXT",
        "signed_record.record.location.postal_code",
    ),
    (
        "malformed signer base58",
        lambda kp: registry_pb2.SignedDeviceRecord(
            record=factories.signed(kp, "dev-1").record,
            signature=factories.signed(kp, "dev-1").signature,
            signer="0OIl",
        ),
        INVALID,
        "MALFORMED_BASE58",
        "signed_record.signer",
    ),
    (
        "signer is not the record key",
        lambda kp: registry_pb2.SignedDeviceRecord(
            record=factories.signed(kp, "dev-1").record,
            signature=factories.signed(kp, "dev-1").signature,
            signer=str(Keypair().pubkey()),
        ),
        INVALID,
        "SIGNER_MISMATCH",
        "signed_record.signer",
    ),
    (
        "signature by another key",
        lambda kp: _resign(kp, Keypair()),
        INVALID,
        "BAD_SIGNATURE",
        "signed_record.signature",
    ),
    (
        "signature without the domain tag",
        lambda kp: registry_pb2.SignedDeviceRecord(
            record=(b := factories.record(kp, "dev-1").SerializeToString()), signature=bytes(kp.sign_message(b))
        ),
        INVALID,
        "BAD_SIGNATURE",
        "signed_record.signature",
    ),
    (
        "small-order key",
        _mutate(lambda r: setattr(r, "public_key", bytes([1]) + bytes(31))),
        INVALID,
        "WEAK_PUBLIC_KEY",
        "signed_record.record.public_key",
    ),
]


def _resign(kp: Keypair, other: Keypair) -> registry_pb2.SignedDeviceRecord:
    record = factories.record(kp, "dev-1").SerializeToString()
    return registry_pb2.SignedDeviceRecord(record=record, signature=bytes(other.sign_message(RECORD_DOMAIN + record)))


@pytest.mark.parametrize(("case", "build", "code", "reason", "field"), BAD_RECORDS, ids=[c[0] for c in BAD_RECORDS])
async def test_bad_record_is_refused_precisely_and_nothing_is_written(
    registry: Stub,
    case: str,
    build: Callable[[Keypair], registry_pb2.SignedDeviceRecord],
    code: grpc.StatusCode,
    reason: str,
    field: str | None,
) -> None:
    before = await head(registry)
    kp = Keypair()
    await expect_error(register(registry, build(kp)), code, reason, field)
    assert await head(registry) == before
    await expect_error(
        registry.GetDevice(registry_pb2.GetDeviceRequest(identifier=common_pb2.DeviceIdentifier(name="dev-1.solarco"))),
        grpc.StatusCode.NOT_FOUND,
        "DEVICE_NOT_FOUND",
    )


async def test_second_registration_of_a_key_name_or_alias_is_already_exists(registry: Stub) -> None:
    kp = Keypair()
    first = await register(registry, factories.signed(kp, "dev-1"))
    await expect_error(
        register(registry, factories.signed(kp, "dev-1")), grpc.StatusCode.ALREADY_EXISTS, "DEVICE_EXISTS"
    )
    other = Keypair()
    await expect_error(
        register(registry, factories.signed(other, "dev-1")),
        grpc.StatusCode.ALREADY_EXISTS,
        "NAME_TAKEN",
        "signed_record.record.name",
    )
    stolen = [common_pb2.Alias(kind=common_pb2.ALIAS_KIND_SFDI, value=first.device.record.aliases[1].value)]
    await expect_error(
        register(registry, factories.signed(other, "dev-2", aliases=stolen)),
        grpc.StatusCode.ALREADY_EXISTS,
        "ALIAS_TAKEN",
        "signed_record.record.aliases[0].value",
    )
    assert (await head(registry)).tree_size == 1


async def test_oversized_message_is_resource_exhausted(registry: Stub) -> None:
    kp = Keypair()
    huge = registry_pb2.SignedDeviceRecord(record=b"\x00" * (2 * 1024 * 1024), signature=bytes(64))
    await expect_error(register(registry, huge), grpc.StatusCode.RESOURCE_EXHAUSTED)
    big_record = factories.record(kp, "dev-1")
    big_record.model = "m" * 100
    padded = big_record.SerializeToString() * 200
    await expect_error(
        register(registry, registry_pb2.SignedDeviceRecord(record=padded, signature=bytes(64))),
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "RECORD_TOO_LARGE",
    )
    # The server keeps serving after refusing.
    assert (await register(registry, factories.signed(kp, "dev-1"))).log_seq == 1
