"""Device-side helpers: build a record and sign it the way the registry verifies it."""

from __future__ import annotations

from solders.keypair import Keypair

from openvpp.registry.records import RECORD_DOMAIN
from openvpp.v1 import registry_pb2


def sign_record(keypair: Keypair, record: registry_pb2.DeviceRecord) -> registry_pb2.SignedDeviceRecord:
    """Serialises `record` once and signs exactly those bytes with the device key."""
    record_bytes = record.SerializeToString(deterministic=True)
    signature = keypair.sign_message(RECORD_DOMAIN + record_bytes)
    return registry_pb2.SignedDeviceRecord(record=record_bytes, signature=bytes(signature))
