"""GetDevice by der_id is answered from memory, and a change still shows:
at once through the replica that made it, and through another replica
sharing the database once its recheck interval has passed."""

from __future__ import annotations

from solders.keypair import Keypair

from openvpp.integration import ca
from openvpp.kernel.clock import FakeClock
from openvpp.registry.service import Registry
from openvpp.routing.changes import RouteChanges
from openvpp.v1 import common_pb2, registry_pb2
from tests import factories
from tests.integration.mtls import Fabric, registry

RECHECK = 0.25


async def test_another_replica_serves_a_status_change_within_its_recheck_interval(fabric: Fabric) -> None:
    vendor = await fabric.onboard(ca.Role.DEVICE_VENDOR, "solarco")
    device = Keypair()
    der_id = str(device.pubkey())
    clock = FakeClock.at(1_800_000_000)
    other = Registry(
        fabric.app.db,
        max_record_bytes=65_536,
        watch_poll_seconds=1,
        changes=RouteChanges(),
        clock_us=clock,
        recheck_seconds=RECHECK,
    )
    identifier = common_pb2.DeviceIdentifier(der_id=der_id)
    async with fabric.channel(vendor) as channel:
        stub = registry(channel)
        await stub.RegisterDevice(registry_pb2.RegisterDeviceRequest(signed_record=factories.signed(device, "inv-1")))
        assert (await stub.GetDevice(registry_pb2.GetDeviceRequest(identifier=identifier))).device.status == (
            common_pb2.DEVICE_STATUS_ACTIVE
        )
        assert (await other.get(identifier)).status == common_pb2.DEVICE_STATUS_ACTIVE
        assert len(other.reads) == 1
        await stub.SetDeviceStatus(
            registry_pb2.SetDeviceStatusRequest(
                der_id=der_id, status=common_pb2.DEVICE_STATUS_SUSPENDED, reason="tampering"
            )
        )
        # The replica that made the change answers with it on the next call.
        answer = await stub.GetDevice(registry_pb2.GetDeviceRequest(identifier=identifier))
        assert answer.device.status == common_pb2.DEVICE_STATUS_SUSPENDED
    # The other replica, within its interval, still answers from memory.
    assert (await other.get(identifier)).status == common_pb2.DEVICE_STATUS_ACTIVE
    clock.advance(RECHECK)
    assert (await other.get(identifier)).status == common_pb2.DEVICE_STATUS_SUSPENDED
