"""A deterministic, realistic fleet of devices for two vendors."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

from solders.keypair import Keypair

from openvpp.registry.identifiers import sfdi_check_digit
from openvpp.registry.signing import sign_record
from openvpp.v1 import common_pb2, registry_pb2

# (kind, share of the fleet, label prefix, import W, export W, storage Wh, protocols)
PROFILES = [
    (common_pb2.DEVICE_KIND_SOLAR_INVERTER, 0.40, "inverter", 0, 7_600, 0, [common_pb2.PROTOCOL_IEEE_2030_5]),
    (common_pb2.DEVICE_KIND_BATTERY, 0.20, "battery", 5_000, 5_000, 13_500, [common_pb2.PROTOCOL_OPENADR_3]),
    (common_pb2.DEVICE_KIND_EV_CHARGER, 0.15, "evse", 11_500, 0, 0, [common_pb2.PROTOCOL_OCPP_2_0_1]),
    (common_pb2.DEVICE_KIND_METER, 0.20, "meter", 48_000, 48_000, 0, [common_pb2.PROTOCOL_IEEE_2030_5]),
    (common_pb2.DEVICE_KIND_HEAT_PUMP, 0.05, "heatpump", 4_500, 0, 0, [common_pb2.PROTOCOL_OPENADR_3]),
]
VENDORS = ("solarco", "voltbox")
TERRITORIES = ("pge", "sce", "sdge")


@dataclass(frozen=True)
class FleetDevice:
    keypair: Keypair
    record: registry_pb2.DeviceRecord
    signed: registry_pb2.SignedDeviceRecord

    @property
    def der_id(self) -> str:
        return str(self.keypair.pubkey())


def _aliases(kind: int, key: bytes, index: int, territory: str) -> list[common_pb2.Alias]:
    if kind in (common_pb2.DEVICE_KIND_SOLAR_INVERTER, common_pb2.DEVICE_KIND_METER):
        # 2030.5 identifiers come from the device certificate; its stand-in here is the key.
        lfdi = hashlib.sha256(key).digest()[:20].hex().upper()
        sfdi = int(lfdi[:9], 16)
        aliases = [
            common_pb2.Alias(kind=common_pb2.ALIAS_KIND_LFDI, value=lfdi),
            common_pb2.Alias(kind=common_pb2.ALIAS_KIND_SFDI, value=f"{sfdi}{sfdi_check_digit(sfdi)}"),
        ]
        if kind == common_pb2.DEVICE_KIND_METER:
            aliases.append(
                common_pb2.Alias(kind=common_pb2.ALIAS_KIND_METER_NUMBER, value=f"{territory.upper()}-M{index:08d}")
            )
        return aliases
    if kind == common_pb2.DEVICE_KIND_EV_CHARGER:
        return [common_pb2.Alias(kind=common_pb2.ALIAS_KIND_OCPP_CHARGE_POINT_ID, value=f"CP-{index:06d}")]
    return [common_pb2.Alias(kind=common_pb2.ALIAS_KIND_OPENADR_VEN_NAME, value=f"ven-{key.hex()[:12]}")]


def build(count: int, seed: int) -> list[FleetDevice]:
    """`count` devices; the same seed always gives the same keys and records."""
    rng = random.Random(seed)
    weights = [p[1] for p in PROFILES]
    fleet = []
    for index in range(count):
        kind, _, prefix, imp, exp, storage, protocols = rng.choices(PROFILES, weights)[0]
        keypair = Keypair.from_seed(rng.randbytes(32))
        key = bytes(keypair.pubkey())
        vendor = VENDORS[index % len(VENDORS)]
        territory = rng.choice(TERRITORIES)
        record = registry_pb2.DeviceRecord(
            public_key=key,
            name=f"{prefix}-{key.hex()[:8]}.{vendor}",
            vendor_namespace=vendor,
            kind=kind,
            capabilities=common_pb2.Capabilities(
                max_import_w=imp, max_export_w=exp, storage_wh=storage, protocols=protocols
            ),
            location=common_pb2.Location(
                utility_territory=territory,
                postal_code=f"9{rng.randrange(4000, 6200):04d}",
                grid_node=f"feeder-{rng.randrange(1, 40):02d}",
            ),
            aliases=_aliases(kind, key, index, territory),
            version=1,
            model=f"{vendor.upper()}-{prefix.upper()}-{rng.choice(('A', 'B', 'C'))}",
            serial_number=f"{vendor[:2].upper()}{index:07d}",
        )
        fleet.append(FleetDevice(keypair, record, sign_record(keypair, record)))
    return fleet
