"""A utility with a NEM program, its SOLAR token and tariff, and a vendor's
enrolled devices sending signed readings: all over mTLS, as partners would."""

from __future__ import annotations

import struct
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from solders.keypair import Keypair

from openvpp import native
from openvpp.v1 import settlement_pb2 as pb
from openvpp.v1 import settlement_pb2_grpc
from tests.integration.mtls import Fabric
from tests.integration.routing_world import World, world

STEP = 900
FLAT_EXPORT = 80_000  # micro-units per kWh: 80 base units per Wh at 6 decimals
ALL_DAYS = 0b111_1111


def flat_tariff(export: int = FLAT_EXPORT, incentive: int = 0) -> list[pb.TariffPeriod]:
    return [
        pb.TariffPeriod(
            name="flat",
            days_mask=ALL_DAYS,
            start_minute=0,
            end_minute=1440,
            import_price_micro_per_kwh=250_000,
            export_price_micro_per_kwh=export,
            incentive_micro_per_kwh=incentive,
        )
    ]


def reading(device: Keypair, seq: int, end: int, imported: int, exported: int, step: int = STEP) -> tuple[bytes, bytes]:
    payload = native.READING.pack(bytes(device.pubkey()), seq, end, step, imported, exported, 0)
    return payload, bytes(device.sign_message(native.READING_DOMAIN + payload))


def aligned_now(step: int = STEP) -> int:
    return int(time.time()) // step * step


@dataclass
class SettlementWorld:
    routing: World
    mint: str
    program_id: str = "pge/nem"
    devices: list[Keypair] = field(default_factory=list)

    @property
    def fabric(self) -> Fabric:
        return self.routing.fabric

    def stub(self, bundle: Path) -> Any:
        return settlement_pb2_grpc.SettlementServiceStub(self.fabric.channel(bundle))

    async def utility_call(self, method: str, request: Any) -> Any:
        async with self.fabric.channel(self.routing.utility) as channel:
            return await getattr(settlement_pb2_grpc.SettlementServiceStub(channel), method)(request)

    async def submit(self, readings: list[tuple[bytes, bytes]], batch_id: str = "b") -> pb.SubmitReadingsResponse:
        async with self.fabric.channel(self.routing.solarco) as channel:
            stub = settlement_pb2_grpc.SettlementServiceStub(channel)

            async def one() -> AsyncIterator[pb.SubmitReadingsRequest]:
                yield pb.SubmitReadingsRequest(
                    batch_id=batch_id,
                    payloads=b"".join(p for p, _ in readings),
                    signatures=b"".join(s for _, s in readings),
                )

            replies = [r async for r in stub.SubmitReadings(one())]
        (reply,) = replies
        return reply

    async def settle(self) -> pb.SettleResponse:
        reply: pb.SettleResponse = await self.utility_call("Settle", pb.SettleRequest(program_ids=[self.program_id]))
        return reply


@asynccontextmanager
async def settlement_world(
    fabric: Fabric,
    tmp_path: Path,
    *,
    devices: int = 3,
    fund: int = 1_000_000_000,
    split: list[pb.SplitShare] | None = None,
    tariff: list[pb.TariffPeriod] | None = None,
    price_feed_id: str = "",
    decimals: int = 6,
    redemption_value: int = 1_000_000,
    unit: int = pb.TOKEN_UNIT_USD,
) -> AsyncIterator[SettlementWorld]:
    async with world(fabric, tmp_path) as w:
        async with fabric.channel(w.utility) as channel:
            stub = settlement_pb2_grpc.SettlementServiceStub(channel)
            token = (
                await stub.CreateUseCaseToken(
                    pb.CreateUseCaseTokenRequest(
                        program_id="pge/nem",
                        name="PG&E Solar",
                        symbol="SOLAR",
                        unit=pb.TokenUnit.ValueType(unit),
                        decimals=decimals,
                        redemption_value_base_units=redemption_value,
                    )
                )
            ).token
            if fund:
                await stub.FundReserve(pb.FundReserveRequest(mint=token.mint, amount_base_units=fund))
            await stub.PublishTariff(
                pb.PublishTariffRequest(
                    code="tou",
                    time_zone="America/Los_Angeles",
                    effective_from="2026-01-01",
                    periods=tariff or flat_tariff(),
                )
            )
            if price_feed_id:
                await stub.RegisterPriceFeed(
                    pb.RegisterPriceFeedRequest(
                        code=price_feed_id.split("/")[1], oracle_key=str(ORACLE.pubkey()), max_age_seconds=1800
                    )
                )
            await stub.ConfigureProgramSettlement(
                pb.ConfigureProgramSettlementRequest(
                    program_id="pge/nem",
                    kind=pb.CREDIT_KIND_NEM_EXPORT,
                    mint=token.mint,
                    tariff_id="" if price_feed_id else "pge/tou",
                    price_feed_id=price_feed_id,
                    split=split or [],
                )
            )
        sw = SettlementWorld(w, token.mint)
        for i in range(devices):
            device = await w.register(w.solarco, "solarco", f"inv-{i}")
            await w.enroll(w.solarco, device)
            sw.devices.append(device)
        yield sw


ORACLE = Keypair()


def signed_points(feed_id: str, points: list[tuple[int, int, int]], key: Keypair = ORACLE) -> tuple[bytes, bytes]:
    packed = b"".join(struct.pack("<qQQ", *p) for p in points)
    return packed, bytes(key.sign_message(b"openvpp/price-feed/v1" + feed_id.encode() + b"\x00" + packed))
