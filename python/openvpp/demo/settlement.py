"""The money side of the demo, as the utility and the vendors would run it:
a time-of-use tariff, the NEM and DR programs' settlement, a DR event in the
evening peak, the utility backend following StreamSettlements live, some
prosumers redeeming, and the closing checks."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from google.protobuf.timestamp_pb2 import Timestamp
from solders.keypair import Keypair
from solders.transaction import Transaction

from openvpp.client.channel import channel_to
from openvpp.demo.fleet import FleetDevice
from openvpp.demo.profiles import Window
from openvpp.demo.routing import DR_PROGRAM, PROGRAM, UTILITY
from openvpp.v1 import settlement_pb2 as pb
from openvpp.v1 import settlement_pb2_grpc

ZONE = ZoneInfo("America/Los_Angeles")
TARIFF = f"{UTILITY}/tou"
EVENT = Window(17.0, 20.0)
DR_INCENTIVE = 1_000_000  # micro-units per kWh reduced: one dollar
DR_FUNDING = 50_000 * 10**6
ALL_DAYS = 0b111_1111
# (name, start hour, end hour, import, export) in micro-units of the stablecoin per kWh.
PERIODS = [
    ("off-peak", 0, 15, 280_000, 40_000),
    ("partial-peak", 15, 16, 360_000, 90_000),
    ("peak", 16, 21, 520_000, 240_000),
    ("partial-peak", 21, 24, 360_000, 90_000),
]


def export_rate(hour: float) -> int:
    return next(p[4] for p in PERIODS if p[1] <= hour < p[2])


def stub(channel: Any) -> Any:
    return settlement_pb2_grpc.SettlementServiceStub(channel)


@dataclass
class Programs:
    solar_mint: str
    dr_mint: str
    event: pb.DrEvent | None = None


async def configure(target: str, utility: Path, solar_mint: str, first_day: dt.date) -> Programs:
    """Tariff, both programs' settlement and the DR token; all as the utility."""
    async with channel_to(target, utility) as channel:
        s = stub(channel)
        await s.PublishTariff(
            pb.PublishTariffRequest(
                code="tou",
                time_zone=ZONE.key,
                effective_from=first_day.isoformat(),
                periods=[
                    pb.TariffPeriod(
                        name=n,
                        days_mask=ALL_DAYS,
                        start_minute=a * 60,
                        end_minute=b * 60,
                        import_price_micro_per_kwh=i,
                        export_price_micro_per_kwh=e,
                    )
                    for n, a, b, i, e in PERIODS
                ],
            )
        )
        # Export credits: 95 % to the owner, 5 % to the installer who keeps the system running.
        split = [
            pb.SplitShare(party=pb.PARTY_OWNER, bps=9_500),
            pb.SplitShare(party=pb.PARTY_INSTALLER, wallet=str(INSTALLER.pubkey()), bps=500),
        ]
        await s.ConfigureProgramSettlement(
            pb.ConfigureProgramSettlementRequest(
                program_id=PROGRAM, kind=pb.CREDIT_KIND_NEM_EXPORT, mint=solar_mint, tariff_id=TARIFF, split=split
            )
        )
        dr = (
            await s.CreateUseCaseToken(
                pb.CreateUseCaseTokenRequest(
                    program_id=DR_PROGRAM,
                    name="Pacific Peak Saver",
                    symbol="DR",
                    unit=pb.TOKEN_UNIT_USD,
                    decimals=6,
                    uri="https://pacific.example/tokens/dr.json",
                    redemption_value_base_units=1_000_000,
                )
            )
        ).token
        await s.FundReserve(pb.FundReserveRequest(mint=dr.mint, amount_base_units=DR_FUNDING))
        await s.ConfigureProgramSettlement(
            pb.ConfigureProgramSettlementRequest(
                program_id=DR_PROGRAM, kind=pb.CREDIT_KIND_DR_PERFORMANCE, mint=dr.mint, tariff_id=TARIFF
            )
        )
    return Programs(solar_mint, dr.mint)


INSTALLER = Keypair.from_seed(bytes(range(32)))


async def schedule_event(target: str, utility: Path, programs: Programs, day: dt.date) -> pb.DrEvent:
    start = dt.datetime.combine(day, dt.time(int(EVENT.start_hour)), ZONE)
    end = dt.datetime.combine(day, dt.time(int(EVENT.end_hour)), ZONE)
    async with channel_to(target, utility) as channel:
        event = (
            await stub(channel).CreateDrEvent(
                pb.CreateDrEventRequest(
                    program_id=DR_PROGRAM,
                    start=Timestamp(seconds=int(start.timestamp())),
                    end=Timestamp(seconds=int(end.timestamp())),
                    incentive_micro_per_kwh=DR_INCENTIVE,
                )
            )
        ).event
    programs.event = event
    return programs.event


@dataclass
class Followed:
    """What the utility backend saw on StreamSettlements."""

    events: Counter[str] = field(default_factory=Counter)
    credited: Counter[str] = field(default_factory=Counter)  # per mint
    paid: list[tuple[float, str, int]] = field(default_factory=list)  # (seconds since start, mint, amount)
    signatures: dict[str, tuple[str, int, int]] = field(default_factory=dict)  # signature -> (mint, payouts, amount)
    rejected: Counter[str] = field(default_factory=Counter)
    last_cursor: int = 0
    gaps: int = 0
    target: int = 2**63  # set when stopping: the head to catch up with
    reached: asyncio.Event = field(default_factory=asyncio.Event)


async def follow(target: str, utility: Path, started: float, seen: Followed, stop: asyncio.Event) -> None:
    """Follows live from the beginning until told to stop and caught up; checks the cursor has no gap."""
    async with channel_to(target, utility) as channel:
        call = stub(channel).StreamSettlements(pb.StreamSettlementsRequest(after_cursor=0))
        reader = asyncio.ensure_future(_read(call, started, seen))
        await stop.wait()
        # Drain: everything up to the head as of now, then hang up.
        async with channel_to(target, utility) as again:
            head = 0
            async for reply in stub(again).StreamSettlements(
                pb.StreamSettlementsRequest(after_cursor=0, until_caught_up=True)
            ):
                head = max(head, reply.head)
        seen.target = head
        if seen.last_cursor >= head:
            seen.reached.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(seen.reached.wait(), 30)
        call.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader


async def _read(call: Any, started: float, seen: Followed) -> None:
    async for reply in call:
        for e in reply.events:
            if e.cursor != seen.last_cursor + 1:
                seen.gaps += 1
            seen.last_cursor = e.cursor
            kind = e.WhichOneof("event") or ""
            seen.events[kind] += 1
            if kind == "credit":
                seen.credited[e.credit.mint] += e.credit.amount_base_units
            elif kind == "payout_confirmed":
                p = e.payout_confirmed
                seen.paid.append((time.perf_counter() - started, p.mint, p.amount_base_units))
                mint, count, amount = seen.signatures.get(p.signature, (p.mint, 0, 0))
                seen.signatures[p.signature] = (mint, count + 1, amount + p.amount_base_units)
            elif kind == "readings":
                for reason, count in e.readings.rejected_by_reason.items():
                    seen.rejected[reason] += count
        if seen.last_cursor >= seen.target:
            seen.reached.set()


@dataclass
class Redeemed:
    count: int = 0
    burned: int = 0
    paid_out: int = 0
    signatures: list[str] = field(default_factory=list)


async def redeem(target: str, bundles: dict[str, Path], fleet: list[FleetDevice], mint: str, how_many: int) -> Redeemed:
    """A few prosumers cash half of their SOLAR for the stablecoin, signing with their own keys."""
    out = Redeemed()
    for device in fleet:
        if out.count >= how_many:
            break
        wallet = device.der_id
        async with channel_to(target, bundles[device.record.vendor_namespace]) as channel:
            s = stub(channel)
            balance = await s.GetBalance(pb.GetBalanceRequest(wallet=wallet))
            held = next((b.on_chain_base_units for b in balance.balances if b.mint == mint), 0)
            if held < 2:
                continue
            prepared = await s.PrepareRedemption(
                pb.PrepareRedemptionRequest(mint=mint, holder=wallet, amount_base_units=held // 2)
            )
            tx = Transaction.from_bytes(prepared.transaction)
            tx.partial_sign([device.keypair], tx.message.recent_blockhash)
            done = (
                await s.SubmitRedemption(
                    pb.SubmitRedemptionRequest(redemption_id=prepared.redemption_id, transaction=bytes(tx))
                )
            ).redemption
        if done.state == pb.REDEMPTION_STATE_COMPLETED:
            out.count += 1
            out.burned += done.amount_base_units
            out.paid_out += done.payout_base_units
            out.signatures.append(done.signature)
    return out


@dataclass
class Closing:
    ledger: pb.CheckLedgerResponse
    reserves: dict[str, pb.Reserve]
    dr: pb.GetDrEventResponse
    settlements: int


async def settle_now(target: str, utility: Path) -> int:
    """Credits and pays whatever the cadence has not yet; returns the settlements made."""
    async with channel_to(target, utility) as channel:
        settled = await stub(channel).Settle(pb.SettleRequest(program_ids=[PROGRAM, DR_PROGRAM]), timeout=600)
    return len(settled.settlements)


async def close_out(target: str, utility: Path, programs: Programs, settlements: int) -> Closing:
    """The DR results, the ledger check and both reserves, as the utility sees them."""
    async with channel_to(target, utility) as channel:
        s = stub(channel)
        assert programs.event is not None
        dr = await s.GetDrEvent(pb.GetDrEventRequest(event_id=programs.event.event_id))
        ledger = await s.CheckLedger(pb.CheckLedgerRequest())
        reserves = {
            m: (await s.GetReserve(pb.GetReserveRequest(mint=m))).reserve
            for m in (programs.solar_mint, programs.dr_mint)
        }
    return Closing(ledger, reserves, dr, settlements)


def dr_curves(result: pb.GetDrEventResponse) -> tuple[list[int], list[int]]:
    """Fleet baseline and actual net load per 15 minutes of the event."""
    baseline: dict[int, int] = defaultdict(int)
    actual: dict[int, int] = defaultdict(int)
    for d in result.devices:
        for i, wh in enumerate(d.baseline_intervals_wh):
            baseline[i] += wh
        for i, wh in enumerate(d.actual_intervals_wh):
            actual[i] += wh
    n = max(len(baseline), len(actual))
    return [baseline[i] for i in range(n)], [actual[i] for i in range(n)]
