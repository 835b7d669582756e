"""UpdateDevice versioning and SetDeviceStatus transitions."""

from __future__ import annotations

from typing import TYPE_CHECKING

import grpc
import pytest
from solders.keypair import Keypair

from openvpp.registry.signing import sign_record
from openvpp.v1 import common_pb2, registry_pb2
from tests import factories
from tests.rpc import expect_error

if TYPE_CHECKING:
    from openvpp.v1.registry_pb2_grpc import RegistryServiceAsyncStub as Stub

ACTIVE, SUSPENDED, REVOKED = (
    common_pb2.DEVICE_STATUS_ACTIVE,
    common_pb2.DEVICE_STATUS_SUSPENDED,
    common_pb2.DEVICE_STATUS_REVOKED,
)


async def update(stub: Stub, kp: Keypair, record: registry_pb2.DeviceRecord) -> registry_pb2.UpdateDeviceResponse:
    return await stub.UpdateDevice(registry_pb2.UpdateDeviceRequest(signed_record=sign_record(kp, record)))


async def registered(stub: Stub, label: str = "dev-1") -> tuple[Keypair, registry_pb2.DeviceRecord]:
    kp = Keypair()
    record = factories.record(kp, label)
    await stub.RegisterDevice(registry_pb2.RegisterDeviceRequest(signed_record=sign_record(kp, record)))
    return kp, record


async def fetch(stub: Stub, kp: Keypair) -> registry_pb2.Device:
    identifier = common_pb2.DeviceIdentifier(der_id=str(kp.pubkey()))
    return (await stub.GetDevice(registry_pb2.GetDeviceRequest(identifier=identifier))).device


async def test_update_replaces_name_and_aliases_and_keeps_registration(registry: Stub) -> None:
    kp, record = await registered(registry)
    before = await fetch(registry, kp)
    record.version = 2
    record.name = "dev-renamed.solarco"
    del record.aliases[1]
    response = await update(registry, kp, record)
    assert response.device.version == 2
    assert response.device.record.name == "dev-renamed.solarco"
    assert response.device.registered_at == before.registered_at
    assert response.device.log_seq == 2
    assert response.device.signed_record.record == sign_record(kp, record).record
    old_sfdi = factories.record(kp, "dev-1").aliases[1]
    await expect_error(
        registry.GetDevice(registry_pb2.GetDeviceRequest(identifier=common_pb2.DeviceIdentifier(alias=old_sfdi))),
        grpc.StatusCode.NOT_FOUND,
    )
    # The freed name and alias can now be claimed by another device.
    other = Keypair()
    await registry.RegisterDevice(
        registry_pb2.RegisterDeviceRequest(signed_record=factories.signed(other, "dev-1", aliases=[old_sfdi]))
    )


@pytest.mark.parametrize(("version", "reason"), [(1, "STALE_VERSION"), (3, "SKIPPED_VERSION")])
async def test_update_must_be_exactly_the_next_version(registry: Stub, version: int, reason: str) -> None:
    kp, record = await registered(registry)
    record.version = version
    error = await expect_error(
        update(registry, kp, record), grpc.StatusCode.FAILED_PRECONDITION, reason, "signed_record.record.version"
    )
    assert "next version of this device is 2" in error.message


async def test_update_conflicts_and_unknown_devices(registry: Stub) -> None:
    kp, record = await registered(registry)
    await registered(registry, "dev-2")
    record.version = 2
    record.name = "dev-2.solarco"
    await expect_error(update(registry, kp, record), grpc.StatusCode.ALREADY_EXISTS, "NAME_TAKEN")
    record.name = "dev-1.solarco"
    record.vendor_namespace = "voltbox"
    record.name = "dev-1.voltbox"
    await expect_error(update(registry, kp, record), grpc.StatusCode.INVALID_ARGUMENT, "IMMUTABLE_FIELD")
    stranger = Keypair()
    await expect_error(
        update(registry, stranger, factories.record(stranger, "x", version=2)), grpc.StatusCode.NOT_FOUND
    )
    head = await registry.GetRegistryHead(registry_pb2.GetRegistryHeadRequest())
    assert head.tree_size == 2


async def test_status_lifecycle_and_revocation_is_final(registry: Stub) -> None:
    kp, record = await registered(registry)
    der_id = str(kp.pubkey())

    async def set_status(status: int, reason: str = "ops ticket 42") -> registry_pb2.SetDeviceStatusResponse:
        return await registry.SetDeviceStatus(
            registry_pb2.SetDeviceStatusRequest(der_id=der_id, status=status, reason=reason)  # type: ignore[arg-type]
        )

    suspended = await set_status(SUSPENDED)
    assert (suspended.device.status, suspended.device.status_reason) == (SUSPENDED, "ops ticket 42")
    again = await set_status(SUSPENDED)
    assert again.log_seq == suspended.log_seq
    listed = await registry.ListDevices(registry_pb2.ListDevicesRequest(status=SUSPENDED))
    assert [d.der_id for d in listed.devices] == [der_id]
    assert (await set_status(ACTIVE)).device.status == ACTIVE
    assert (await set_status(REVOKED, "key compromised")).device.status == REVOKED
    await expect_error(set_status(ACTIVE), grpc.StatusCode.FAILED_PRECONDITION, "DEVICE_REVOKED")
    record.version = 2
    await expect_error(update(registry, kp, record), grpc.StatusCode.FAILED_PRECONDITION, "DEVICE_REVOKED")


@pytest.mark.parametrize(
    ("der_id", "status", "reason", "code", "error_reason", "field"),
    [
        ("", SUSPENDED, "x", grpc.StatusCode.INVALID_ARGUMENT, "EMPTY_FIELD", "der_id"),
        ("0OIl", SUSPENDED, "x", grpc.StatusCode.INVALID_ARGUMENT, "MALFORMED_BASE58", "der_id"),
        (None, 0, "x", grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ENUM", "status"),
        (None, 9, "x", grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ENUM", "status"),
        (None, SUSPENDED, " ", grpc.StatusCode.INVALID_ARGUMENT, "EMPTY_FIELD", "reason"),
        (None, SUSPENDED, "r" * 513, grpc.StatusCode.INVALID_ARGUMENT, "FIELD_TOO_LONG", "reason"),
        ("unknown", SUSPENDED, "x", grpc.StatusCode.NOT_FOUND, "DEVICE_NOT_FOUND", None),
    ],
)
async def test_bad_status_requests(
    registry: Stub,
    der_id: str | None,
    status: int,
    reason: str,
    code: grpc.StatusCode,
    error_reason: str,
    field: str | None,
) -> None:
    kp, _ = await registered(registry)
    target = {None: str(kp.pubkey()), "unknown": str(Keypair().pubkey())}.get(der_id, der_id)
    await expect_error(
        registry.SetDeviceStatus(
            registry_pb2.SetDeviceStatusRequest(der_id=target, status=status, reason=reason)  # type: ignore[arg-type]
        ),
        code,
        error_reason,
        field,
    )
    head = await registry.GetRegistryHead(registry_pb2.GetRegistryHeadRequest())
    assert head.tree_size == 1
