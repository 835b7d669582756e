from __future__ import annotations

from solders.keypair import Keypair

from openvpp.v1 import common_pb2, registry_pb2, registry_pb2_grpc
from tests import factories


async def test_register_then_get_by_der_id(registry: registry_pb2_grpc.RegistryServiceAsyncStub) -> None:
    kp = Keypair()
    response = await registry.RegisterDevice(
        registry_pb2.RegisterDeviceRequest(signed_record=factories.signed(kp, "inv-1"))
    )
    assert response.device.der_id == str(kp.pubkey())
    got = await registry.GetDevice(
        registry_pb2.GetDeviceRequest(identifier=common_pb2.DeviceIdentifier(der_id=str(kp.pubkey())))
    )
    assert got.device.record.name == "inv-1.solarco"
