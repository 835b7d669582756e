"""GetDevice by every identifier, and ListDevices filters and pagination."""

from __future__ import annotations

from typing import TYPE_CHECKING

import grpc
import pytest
from solders.keypair import Keypair

from openvpp.v1 import common_pb2, registry_pb2
from tests import factories
from tests.rpc import expect_error

if TYPE_CHECKING:
    from openvpp.v1.registry_pb2_grpc import RegistryServiceAsyncStub as Stub

ALIASES = [
    common_pb2.Alias(kind=common_pb2.ALIAS_KIND_OCPP_CHARGE_POINT_ID, value="CP-000042"),
    common_pb2.Alias(kind=common_pb2.ALIAS_KIND_OPENADR_VEN_NAME, value="ven-north-7"),
    common_pb2.Alias(kind=common_pb2.ALIAS_KIND_METER_NUMBER, value="PGE-1234567"),
]


async def test_each_alias_kind_resolves_typed_and_untyped(registry: Stub) -> None:
    kp = Keypair()
    await registry.RegisterDevice(
        registry_pb2.RegisterDeviceRequest(
            signed_record=factories.signed(kp, "evse-1", kind=common_pb2.DEVICE_KIND_EV_CHARGER, aliases=ALIASES)
        )
    )
    for alias in ALIASES:
        for identifier in (common_pb2.DeviceIdentifier(alias=alias), common_pb2.DeviceIdentifier(any=alias.value)):
            got = await registry.GetDevice(registry_pb2.GetDeviceRequest(identifier=identifier))
            assert got.device.der_id == str(kp.pubkey())


@pytest.mark.parametrize(
    ("identifier", "code", "reason"),
    [
        (common_pb2.DeviceIdentifier(), grpc.StatusCode.INVALID_ARGUMENT, "EMPTY_FIELD"),
        (common_pb2.DeviceIdentifier(der_id="not-base58-0OIl"), grpc.StatusCode.INVALID_ARGUMENT, "MALFORMED_BASE58"),
        (common_pb2.DeviceIdentifier(der_id="3yZe7d"), grpc.StatusCode.INVALID_ARGUMENT, "WRONG_KEY_LENGTH"),
        (common_pb2.DeviceIdentifier(der_id=str(Keypair().pubkey())), grpc.StatusCode.NOT_FOUND, "DEVICE_NOT_FOUND"),
        (common_pb2.DeviceIdentifier(name="nobody.solarco"), grpc.StatusCode.NOT_FOUND, "DEVICE_NOT_FOUND"),
        (
            common_pb2.DeviceIdentifier(alias=common_pb2.Alias(kind=common_pb2.ALIAS_KIND_LFDI, value="12")),
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_LFDI",
        ),
        (common_pb2.DeviceIdentifier(any="   "), grpc.StatusCode.INVALID_ARGUMENT, "EMPTY_FIELD"),
        (common_pb2.DeviceIdentifier(any="CP-unknown"), grpc.StatusCode.NOT_FOUND, "DEVICE_NOT_FOUND"),
    ],
)
async def test_bad_or_unknown_identifiers(
    registry: Stub, identifier: common_pb2.DeviceIdentifier, code: grpc.StatusCode, reason: str
) -> None:
    await expect_error(registry.GetDevice(registry_pb2.GetDeviceRequest(identifier=identifier)), code, reason)


async def test_list_filters_and_pages_without_gaps_or_repeats(registry: Stub) -> None:
    records = []
    for i in range(23):
        kind = common_pb2.DEVICE_KIND_BATTERY if i % 3 == 0 else common_pb2.DEVICE_KIND_SOLAR_INVERTER
        namespace = "solarco" if i % 2 else "voltbox"
        records.append(
            factories.signed(Keypair(), f"d-{i}", kind=kind, namespace=namespace, territory="sce" if i < 5 else "pge")
        )
    await registry.BulkRegisterDevices(_one_chunk(records))
    seen: list[str] = []
    token = ""
    while True:
        page = await registry.ListDevices(registry_pb2.ListDevicesRequest(page_size=5, page_token=token))
        seen.extend(d.der_id for d in page.devices)
        token = page.next_page_token
        if not token:
            break
    assert len(seen) == len(set(seen)) == 23
    batteries = await registry.ListDevices(registry_pb2.ListDevicesRequest(kind=common_pb2.DEVICE_KIND_BATTERY))
    assert len(batteries.devices) == 8
    voltbox_sce = await registry.ListDevices(
        registry_pb2.ListDevicesRequest(vendor_namespace="voltbox", utility_territory="sce")
    )
    assert sorted(d.record.name for d in voltbox_sce.devices) == ["d-0.voltbox", "d-2.voltbox", "d-4.voltbox"]
    suspended = await registry.ListDevices(registry_pb2.ListDevicesRequest(status=common_pb2.DEVICE_STATUS_SUSPENDED))
    assert not suspended.devices


async def _one_chunk(records: list[registry_pb2.SignedDeviceRecord]):  # type: ignore[no-untyped-def]
    yield registry_pb2.BulkRegisterDevicesRequest(signed_records=records)


@pytest.mark.parametrize(
    ("request_", "field", "reason"),
    [
        (registry_pb2.ListDevicesRequest(page_size=1001), "page_size", "OUT_OF_RANGE"),
        (registry_pb2.ListDevicesRequest(page_token="garbage!"), "page_token", "INVALID_PAGE_TOKEN"),
        (registry_pb2.ListDevicesRequest(page_token="ZGV2aWNlczp4"), "page_token", "INVALID_PAGE_TOKEN"),
        (registry_pb2.ListDevicesRequest(kind=77), "kind", "INVALID_ENUM"),  # type: ignore[arg-type]
    ],
)
async def test_bad_list_requests(
    registry: Stub, request_: registry_pb2.ListDevicesRequest, field: str, reason: str
) -> None:
    await expect_error(registry.ListDevices(request_), grpc.StatusCode.INVALID_ARGUMENT, reason, field)
