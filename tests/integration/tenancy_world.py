"""Two tenants side by side, each a utility with a NEM and a DR program, a
token per program, a tariff and a price feed, and a vendor whose devices
are enrolled, have sent readings and been paid; plus an aggregator that
owns nothing. Everything is made through the API over mTLS."""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from google.protobuf.timestamp_pb2 import Timestamp
from solders.keypair import Keypair

from openvpp.integration import ca
from openvpp.v1 import (
    billing_pb2,
    billing_pb2_grpc,
    common_pb2,
    integration_pb2,
    integration_pb2_grpc,
    registry_pb2,
    registry_pb2_grpc,
    routing_pb2,
    routing_pb2_grpc,
    settlement_pb2,
    settlement_pb2_grpc,
)
from tests import factories
from tests.integration.mtls import Fabric
from tests.integration.routing_world import consent_for
from tests.integration.settlement_world import ORACLE, aligned_now, flat_tariff, reading

STEP = 900


@dataclass
class Tenant:
    utility: str
    vendor: str
    utility_bundle: Path
    vendor_bundle: Path
    nem_mint: str = ""
    dr_mint: str = ""
    devices: list[Keypair] = field(default_factory=list)
    # Used by the RPCs that change or end something, so the others keep theirs.
    spare: Keypair = field(default_factory=Keypair)
    settlement_id: str = ""
    dr_event_id: str = ""
    redemption_id: str = ""
    spare_serial: str = ""
    first_reading_end: int = 0
    # The next reading seq of devices[1] (two were sent when the tenant was made).
    next_seq: int = 3

    @property
    def nem(self) -> str:
        return f"{self.utility}/nem"

    @property
    def dr(self) -> str:
        return f"{self.utility}/dr"

    @property
    def device(self) -> Keypair:
        return self.devices[0]

    @property
    def der_id(self) -> str:
        return str(self.device.pubkey())


def device_certificate(device: Keypair) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, str(device.pubkey()))])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.DER)


def billing_plan(program_id: str) -> billing_pb2.BillingPlan:
    """Imports only: the program already pays exports as tokens."""
    flat = [[0] * 24 for _ in range(12)]
    tariff = {
        "name": "flat",
        "energyratestructure": [[{"rate": 0.2}]],
        "energyweekdayschedule": flat,
        "energyweekendschedule": flat,
    }
    return billing_pb2.BillingPlan(
        program_id=program_id,
        regime=billing_pb2.BILLING_REGIME_IMPORTS_ONLY,
        urdb_json=json.dumps(tariff),
        time_zone="UTC",
        cycle_day=1,
        true_up_month=12,
    )


async def build_tenant(fabric: Fabric, utility: str, vendor: str) -> Tenant:
    t = Tenant(
        utility,
        vendor,
        await fabric.onboard(ca.Role.UTILITY, utility),
        await fabric.onboard(ca.Role.DEVICE_VENDOR, vendor),
    )
    async with fabric.channel(t.utility_bundle) as channel:
        integration = integration_pb2_grpc.IntegrationServiceStub(channel)
        for name in ("vtn", "spare"):
            await integration.RegisterEndpoint(
                integration_pb2.RegisterEndpointRequest(
                    name=name,
                    url="https://127.0.0.1:1",
                    protocol=integration_pb2.ENDPOINT_PROTOCOL_OPENVPP_GRPC,
                    programs=["nem"],
                    auth_mode=integration_pb2.ENDPOINT_AUTH_MODE_MUTUAL_TLS,
                )
            )
        issued = await integration.IssueCertificate(
            integration_pb2.IssueCertificateRequest(
                namespace=utility, csr_pem=ca.make_csr(ca.new_key(), utility).decode()
            )
        )
        t.spare_serial = issued.certificate.serial
        routing = routing_pb2_grpc.RoutingServiceStub(channel)
        for code, kind in (
            ("nem", routing_pb2.PROGRAM_KIND_NET_ENERGY_METERING),
            ("dr", routing_pb2.PROGRAM_KIND_DEMAND_RESPONSE),
        ):
            await routing.CreateProgram(routing_pb2.CreateProgramRequest(code=code, name=code.upper(), kind=kind))
        stub = settlement_pb2_grpc.SettlementServiceStub(channel)
        await stub.PublishTariff(
            settlement_pb2.PublishTariffRequest(
                code="tou",
                time_zone="America/Los_Angeles",
                effective_from="2026-01-01",
                periods=flat_tariff(incentive=500_000),
            )
        )
        await stub.RegisterPriceFeed(
            settlement_pb2.RegisterPriceFeedRequest(code="spot", oracle_key=str(ORACLE.pubkey()), max_age_seconds=1800)
        )
        for program, credit_kind in (
            (t.nem, settlement_pb2.CREDIT_KIND_NEM_EXPORT),
            (t.dr, settlement_pb2.CREDIT_KIND_DR_PERFORMANCE),
        ):
            token = (
                await stub.CreateUseCaseToken(
                    settlement_pb2.CreateUseCaseTokenRequest(
                        program_id=program,
                        name=f"{utility} {program}",
                        symbol="TK",
                        unit=settlement_pb2.TOKEN_UNIT_USD,
                        decimals=6,
                        redemption_value_base_units=1_000_000,
                    )
                )
            ).token
            await stub.FundReserve(settlement_pb2.FundReserveRequest(mint=token.mint, amount_base_units=1_000_000_000))
            await stub.ConfigureProgramSettlement(
                settlement_pb2.ConfigureProgramSettlementRequest(
                    program_id=program, kind=credit_kind, mint=token.mint, tariff_id=f"{utility}/tou"
                )
            )
            if program == t.nem:
                t.nem_mint = token.mint
            else:
                t.dr_mint = token.mint
        start = (int(time.time()) // STEP - 8) * STEP
        event = await stub.CreateDrEvent(
            settlement_pb2.CreateDrEventRequest(
                program_id=t.dr,
                start=Timestamp(seconds=start),
                end=Timestamp(seconds=start + STEP),
                incentive_micro_per_kwh=400_000,
            )
        )
        t.dr_event_id = event.event.event_id
        await billing_pb2_grpc.BillingServiceStub(channel).ConfigureBilling(
            billing_pb2.ConfigureBillingRequest(plan=billing_plan(t.nem))
        )
    async with fabric.channel(t.vendor_bundle) as channel:
        registry = registry_pb2_grpc.RegistryServiceStub(channel)
        routing = routing_pb2_grpc.RoutingServiceStub(channel)
        for i, device in enumerate([Keypair(), Keypair(), t.spare]):
            await registry.RegisterDevice(
                registry_pb2.RegisterDeviceRequest(
                    signed_record=factories.signed(device, f"d{i}", namespace=vendor, territory=utility)
                )
            )
            await routing.EnrollDevice(
                routing_pb2.EnrollDeviceRequest(
                    program_id=t.nem,
                    device=common_pb2.DeviceIdentifier(der_id=str(device.pubkey())),
                    account_ref=f"ACCT-{i}",
                    consent=consent_for(device, t.nem, account=f"ACCT-{i}"),
                )
            )
            if device is not t.spare:
                t.devices.append(device)
        stub = settlement_pb2_grpc.SettlementServiceStub(channel)
        t.first_reading_end = aligned_now() - 20 * STEP
        readings = [reading(d, 1, t.first_reading_end, 0, 0) for d in t.devices]
        readings += [reading(d, 2, t.first_reading_end + STEP, 0, 1_000) for d in t.devices]

        async def batches() -> object:
            yield settlement_pb2.SubmitReadingsRequest(
                batch_id="b1", payloads=b"".join(p for p, _ in readings), signatures=b"".join(s for _, s in readings)
            )

        async for reply in stub.SubmitReadings(batches()):  # type: ignore[arg-type]
            assert reply.accepted == len(readings), reply
    async with fabric.channel(t.utility_bundle) as channel:
        stub = settlement_pb2_grpc.SettlementServiceStub(channel)
        settled = await stub.Settle(settlement_pb2.SettleRequest(program_ids=[t.nem]))
        t.settlement_id = settled.settlements[0].settlement_id
        prepared = await stub.PrepareRedemption(
            settlement_pb2.PrepareRedemptionRequest(mint=t.nem_mint, holder=t.der_id, amount_base_units=1)
        )
        t.redemption_id = prepared.redemption_id
    return t
