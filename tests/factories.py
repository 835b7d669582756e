"""Builders for realistic device records, shared by tests."""

from __future__ import annotations

import hashlib

from solders.keypair import Keypair

from openvpp.registry.identifiers import sfdi_check_digit
from openvpp.registry.signing import sign_record
from openvpp.v1 import common_pb2, registry_pb2


def lfdi_sfdi(seed: bytes) -> tuple[str, str]:
    """An IEEE 2030.5-style LFDI and matching SFDI derived from some bytes."""
    digest = hashlib.sha256(seed).digest()
    lfdi = digest[:20].hex().upper()
    sfdi_value = int(lfdi[:9], 16)
    return lfdi, f"{sfdi_value}{sfdi_check_digit(sfdi_value)}"


def record(
    keypair: Keypair,
    label: str,
    namespace: str = "solarco",
    kind: int = common_pb2.DEVICE_KIND_SOLAR_INVERTER,
    version: int = 1,
    aliases: list[common_pb2.Alias] | None = None,
    territory: str = "pge",
) -> registry_pb2.DeviceRecord:
    lfdi, sfdi = lfdi_sfdi(bytes(keypair.pubkey()))
    if aliases is None:
        aliases = [
            common_pb2.Alias(kind=common_pb2.ALIAS_KIND_LFDI, value=lfdi),
            common_pb2.Alias(kind=common_pb2.ALIAS_KIND_SFDI, value=sfdi),
        ]
    return registry_pb2.DeviceRecord(
        public_key=bytes(keypair.pubkey()),
        name=f"{label}.{namespace}",
        vendor_namespace=namespace,
        kind=kind,  # type: ignore[arg-type]
        capabilities=common_pb2.Capabilities(
            max_import_w=7600, max_export_w=7600, protocols=[common_pb2.PROTOCOL_IEEE_2030_5]
        ),
        location=common_pb2.Location(utility_territory=territory, postal_code="94110", grid_node="feeder-12"),
        aliases=aliases,
        version=version,
        model="SC-7600",
        serial_number=f"SN-{label}",
    )


def signed(keypair: Keypair, label: str, **kwargs: object) -> registry_pb2.SignedDeviceRecord:
    return sign_record(keypair, record(keypair, label, **kwargs))  # type: ignore[arg-type]
