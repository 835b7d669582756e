"""BillingService over mTLS: a utility bills its program's accounts from
the readings its customers' devices send, in real time, then issues each
period once."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

import grpc
import pytest
from solders.keypair import Keypair

from openvpp.billing.bills import Bills
from openvpp.billing.plans import BillingPlans
from openvpp.integration import ca
from openvpp.v1 import billing_pb2 as pb
from openvpp.v1 import billing_pb2_grpc, common_pb2, routing_pb2, routing_pb2_grpc, settlement_pb2
from tests.integration.mtls import Fabric
from tests.integration.routing_world import PROGRAM, World, consent_for, world
from tests.integration.settlement_world import STEP, aligned_now, reading
from tests.rpc import expect_error

RATE = 0.25  # $/kWh
SELL = 0.05
FIXED = 10.0  # $/month


def urdb(**extra: Any) -> str:
    flat = [[0] * 24 for _ in range(12)]
    rate = {
        "label": "test-flat",
        "name": "Flat residential",
        "energyratestructure": [[{"rate": RATE, "sell": SELL}]],
        "energyweekdayschedule": flat,
        "energyweekendschedule": flat,
        "fixedchargefirstmeter": FIXED,
        "fixedchargeunits": "$/month",
        **extra,
    }
    return json.dumps(rate)


def cycle_day() -> int:
    """A cycle day whose current period began at least three days ago, so the
    test's readings (the last hours) are in it whenever the test runs."""
    return min((datetime.now(UTC) - timedelta(days=3)).day, 28)


def plan(regime: int = pb.BILLING_REGIME_NET_METERING, **fields: Any) -> pb.BillingPlan:
    values: dict[str, Any] = {
        "program_id": fields.pop("program_id", PROGRAM),
        "regime": regime,
        "urdb_json": urdb(),
        "time_zone": "UTC",
        "cycle_day": cycle_day(),
        "true_up_month": 12,
        **fields,
    }
    return pb.BillingPlan(**values)


class Billing:
    def __init__(self, w: World) -> None:
        self.w = w
        self.devices: dict[str, list[Keypair]] = {}
        self.channels: list[grpc.aio.Channel] = []
        self.start = 0  # where the fixture's readings begin

    def stub(self, bundle: Path | None = None) -> Any:
        channel = self.w.channel(bundle or self.w.utility)
        self.channels.append(channel)
        return billing_pb2_grpc.BillingServiceStub(channel)

    async def enroll(self, account: str, label: str) -> Keypair:
        device = await self.w.register(self.w.solarco, "solarco", label)
        async with self.w.channel(self.w.solarco) as channel:
            await routing_pb2_grpc.RoutingServiceStub(channel).EnrollDevice(
                routing_pb2.EnrollDeviceRequest(
                    program_id=PROGRAM,
                    device=common_pb2.DeviceIdentifier(der_id=str(device.pubkey())),
                    account_ref=account,
                    consent=consent_for(device, PROGRAM, account=account),
                )
            )
        self.devices.setdefault(account, []).append(device)
        return device

    async def submit(self, readings: list[tuple[bytes, bytes]]) -> None:
        from openvpp.v1 import settlement_pb2_grpc

        async with self.w.channel(self.w.solarco) as channel:

            async def one() -> AsyncIterator[settlement_pb2.SubmitReadingsRequest]:
                yield settlement_pb2.SubmitReadingsRequest(
                    batch_id="b", payloads=b"".join(p for p, _ in readings), signatures=b"".join(s for _, s in readings)
                )

            replies = [r async for r in settlement_pb2_grpc.SettlementServiceStub(channel).SubmitReadings(one())]
        assert replies[0].accepted == len(readings), replies


@pytest.fixture
async def billing(fabric: Fabric, tmp_path: Path) -> AsyncIterator[Billing]:
    async with world(fabric, tmp_path) as w:
        b = Billing(w)
        meter = await b.enroll("ACCT-1", "meter")
        battery = await b.enroll("ACCT-1", "battery")
        other = await b.enroll("ACCT-2", "neighbour")
        start = aligned_now() - 8 * STEP
        # Cumulative registers: each device's first reading is its baseline.
        await b.submit(
            [
                reading(meter, 1, start, 10_000, 4_000),
                reading(meter, 2, start + STEP, 11_500, 4_000),
                reading(meter, 3, start + 2 * STEP, 12_000, 4_500),
                reading(battery, 1, start, 0, 0),
                reading(battery, 2, start + STEP, 1_000, 0),
                reading(other, 1, start, 0, 0),
                reading(other, 2, start + STEP, 1_000, 0),
            ]
        )
        try:
            yield b
        finally:
            for channel in b.channels:
                await channel.close()


def amount(rational: settlement_pb2.Rational) -> Fraction:
    return Fraction(int(rational.numerator), int(rational.denominator))


async def test_the_open_bill_nets_the_accounts_devices_and_shows_the_readings_behind_it(billing: Billing) -> None:
    stub = billing.stub()
    configured = (await stub.ConfigureBilling(pb.ConfigureBillingRequest(plan=plan()))).plan
    assert (configured.version, configured.tariff_name) == (1, "Flat residential")
    bill = (await stub.GetBill(pb.GetBillRequest(program_id=PROGRAM, account_ref="ACCT-1"))).bill
    assert bill.state == pb.BILL_STATE_OPEN
    meter, battery = billing.devices["ACCT-1"]
    assert sorted(bill.der_ids) == sorted([str(meter.pubkey()), str(battery.pubkey())])
    # 2,000 Wh in and 500 Wh out at the meter, 1,000 Wh into the battery: 2,500 Wh net at 0.25 $/kWh.
    energy = [line for line in bill.lines if line.kind == pb.BILL_LINE_KIND_ENERGY]
    (line,) = energy
    assert amount(line.quantity) == 2_500
    assert amount(line.amount_micro) == 625_000
    assert {r.der_id: (r.first_seq, r.last_seq) for r in line.readings} == {
        str(meter.pubkey()): (2, 3),
        str(battery.pubkey()): (2, 2),
    }
    assert amount(bill.total_micro) == 625_000 + 10_000_000
    assert bill.amount_due_base_units == 10_625_000
    assert (bill.imported_wh, bill.exported_wh) == (3_000, 500)
    neighbour = (await stub.GetBill(pb.GetBillRequest(program_id=PROGRAM, account_ref="ACCT-2"))).bill
    assert neighbour.amount_due_base_units == 250_000 + 10_000_000


async def test_net_billing_prices_imports_and_credits_exports_under_a_new_version(billing: Billing) -> None:
    stub = billing.stub()
    await stub.ConfigureBilling(pb.ConfigureBillingRequest(plan=plan()))
    second = (await stub.ConfigureBilling(pb.ConfigureBillingRequest(plan=plan(pb.BILLING_REGIME_NET_BILLING)))).plan
    assert second.version == 2
    bill = (await stub.GetBill(pb.GetBillRequest(program_id=PROGRAM, account_ref="ACCT-1"))).bill
    assert bill.plan_version == 2
    kinds = {line.kind: amount(line.amount_micro) for line in bill.lines}
    assert kinds[pb.BILL_LINE_KIND_ENERGY] == 750_000
    assert kinds[pb.BILL_LINE_KIND_EXPORT_CREDIT] == -25_000
    assert bill.amount_due_base_units == 10_725_000
    got = (await stub.GetBillingPlan(pb.GetBillingPlanRequest(program_id=PROGRAM))).plan
    assert got.regime == pb.BILLING_REGIME_NET_BILLING


async def test_ended_periods_are_issued_once_and_carry_into_the_next(billing: Billing, fabric: Fabric) -> None:
    stub = billing.stub()
    await stub.ConfigureBilling(pb.ConfigureBillingRequest(plan=plan(pb.BILLING_REGIME_NET_BILLING)))
    open_bill = (await stub.GetBill(pb.GetBillRequest(program_id=PROGRAM, account_ref="ACCT-1"))).bill
    later = datetime.fromisoformat(open_bill.period_end).replace(tzinfo=UTC) + timedelta(hours=2)
    plans = BillingPlans(fabric.app.db)
    bills = Bills(fabric.app.db, plans, clock_us=lambda: int(later.timestamp() * 1e6), close_delay_s=3600)
    assert await bills.close_ended() == 2
    assert await bills.close_ended() == 0  # issued once, whoever asks again
    issued = (
        await stub.GetBill(pb.GetBillRequest(program_id=PROGRAM, account_ref="ACCT-1", period=open_bill.period_start))
    ).bill
    assert issued.state == pb.BILL_STATE_ISSUED
    assert issued.amount_due_base_units == open_bill.amount_due_base_units
    assert [(x.kind, x.amount_micro) for x in issued.lines] == [(x.kind, x.amount_micro) for x in open_bill.lines]
    listed = (await stub.ListBills(pb.ListBillsRequest(program_id=PROGRAM))).bills
    assert sorted(b.account_ref for b in listed) == ["ACCT-1", "ACCT-2"]
    assert all(not b.lines for b in listed)


async def test_bad_plans_are_refused_with_the_field(billing: Billing) -> None:
    stub = billing.stub()
    error = await expect_error(
        stub.ConfigureBilling(
            pb.ConfigureBillingRequest(plan=plan(urdb_json=urdb(demandratchetpercentage=[0.8] * 12)))
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "URDB_UNSUPPORTED",
        "plan.urdb_json.demandratchetpercentage",
    )
    assert "ratchet" in error.message
    await expect_error(
        stub.ConfigureBilling(pb.ConfigureBillingRequest(plan=plan(time_zone="Mars/Olympus"))),
        grpc.StatusCode.INVALID_ARGUMENT,
        field="plan.time_zone",
    )
    await expect_error(
        stub.ConfigureBilling(pb.ConfigureBillingRequest(plan=plan(cycle_day=31))),
        grpc.StatusCode.INVALID_ARGUMENT,
        field="plan.cycle_day",
    )
    await expect_error(
        stub.ConfigureBilling(pb.ConfigureBillingRequest(plan=plan(urdb_json="{"))),
        grpc.StatusCode.INVALID_ARGUMENT,
        field="plan.urdb_json",
    )
    await expect_error(
        stub.ConfigureBilling(pb.ConfigureBillingRequest(plan=plan(payment_retries=11))),
        grpc.StatusCode.INVALID_ARGUMENT,
        field="plan.payment_retries",
    )
    await expect_error(
        stub.ConfigureBilling(pb.ConfigureBillingRequest(plan=plan(retry_interval_seconds=59))),
        grpc.StatusCode.INVALID_ARGUMENT,
        field="plan.retry_interval_seconds",
    )
    # Nothing was half-applied: the program still does not bill.
    await expect_error(
        stub.GetBillingPlan(pb.GetBillingPlanRequest(program_id=PROGRAM)),
        grpc.StatusCode.NOT_FOUND,
        "BILLING_NOT_CONFIGURED",
    )


async def test_a_program_paying_exports_as_tokens_cannot_also_net_them(billing: Billing) -> None:
    stub = billing.stub()
    await stub.ConfigureBilling(pb.ConfigureBillingRequest(plan=plan()))
    from openvpp.v1 import settlement_pb2_grpc

    async with billing.w.channel(billing.w.utility) as channel:
        settlement = settlement_pb2_grpc.SettlementServiceStub(channel)
        token = (
            await settlement.CreateUseCaseToken(
                settlement_pb2.CreateUseCaseTokenRequest(
                    program_id=PROGRAM,
                    name="Solar",
                    symbol="SOLAR",
                    unit=settlement_pb2.TOKEN_UNIT_USD,
                    decimals=6,
                    redemption_value_base_units=1_000_000,
                )
            )
        ).token
        await settlement.PublishTariff(
            settlement_pb2.PublishTariffRequest(
                code="tou", time_zone="UTC", effective_from="2026-01-01", periods=_flat_export()
            )
        )
        await expect_error(
            settlement.ConfigureProgramSettlement(
                settlement_pb2.ConfigureProgramSettlementRequest(
                    program_id=PROGRAM, kind=settlement_pb2.CREDIT_KIND_NEM_EXPORT, mint=token.mint, tariff_id="pge/tou"
                )
            ),
            grpc.StatusCode.FAILED_PRECONDITION,
            "EXPORTS_PAID_TWICE",
        )
        await stub.ConfigureBilling(pb.ConfigureBillingRequest(plan=plan(pb.BILLING_REGIME_IMPORTS_ONLY)))
        await settlement.ConfigureProgramSettlement(
            settlement_pb2.ConfigureProgramSettlementRequest(
                program_id=PROGRAM, kind=settlement_pb2.CREDIT_KIND_NEM_EXPORT, mint=token.mint, tariff_id="pge/tou"
            )
        )
    await expect_error(
        stub.ConfigureBilling(pb.ConfigureBillingRequest(plan=plan(pb.BILLING_REGIME_NET_BILLING))),
        grpc.StatusCode.FAILED_PRECONDITION,
        "EXPORTS_PAID_TWICE",
        "plan.regime",
    )
    bill = (await stub.GetBill(pb.GetBillRequest(program_id=PROGRAM, account_ref="ACCT-1"))).bill
    assert all(line.kind != pb.BILL_LINE_KIND_EXPORT_CREDIT for line in bill.lines)
    assert bill.amount_due_base_units == 750_000 + 10_000_000

    # Nor across programs: a device whose exports pge/nem pays as tokens is
    # never also netted on another program's bill.
    home = "pge/home"
    async with billing.w.channel(billing.w.utility) as channel:
        await routing_pb2_grpc.RoutingServiceStub(channel).CreateProgram(
            routing_pb2.CreateProgramRequest(
                code="home", name="Residential service", kind=routing_pb2.PROGRAM_KIND_NET_ENERGY_METERING
            )
        )
    await stub.ConfigureBilling(pb.ConfigureBillingRequest(plan=plan(program_id=home)))
    meter = billing.devices["ACCT-1"][0]
    async with billing.w.channel(billing.w.solarco) as channel:
        routing = routing_pb2_grpc.RoutingServiceStub(channel)
        request = routing_pb2.EnrollDeviceRequest(
            program_id=home,
            device=common_pb2.DeviceIdentifier(der_id=str(meter.pubkey())),
            account_ref="ACCT-1",
            consent=consent_for(meter, home, account="ACCT-1"),
        )
        await expect_error(routing.EnrollDevice(request), grpc.StatusCode.FAILED_PRECONDITION, "EXPORTS_PAID_TWICE")
        await stub.ConfigureBilling(
            pb.ConfigureBillingRequest(plan=plan(pb.BILLING_REGIME_IMPORTS_ONLY, program_id=home))
        )
        await routing.EnrollDevice(request)
    error = await expect_error(
        stub.ConfigureBilling(pb.ConfigureBillingRequest(plan=plan(pb.BILLING_REGIME_NET_METERING, program_id=home))),
        grpc.StatusCode.FAILED_PRECONDITION,
        "EXPORTS_PAID_TWICE",
    )
    assert str(meter.pubkey()) in error.message


def _flat_export() -> list[settlement_pb2.TariffPeriod]:
    from tests.integration.settlement_world import flat_tariff

    return flat_tariff()


async def test_bills_are_the_utilitys_and_the_operators_only(billing: Billing, fabric: Fabric) -> None:
    stub = billing.stub()
    await stub.ConfigureBilling(pb.ConfigureBillingRequest(plan=plan()))
    other = await fabric.onboard(ca.Role.UTILITY, "sce")
    request = pb.GetBillRequest(program_id=PROGRAM, account_ref="ACCT-1")
    await expect_error(billing.stub(other).GetBill(request), grpc.StatusCode.NOT_FOUND, "BILLING_NOT_CONFIGURED")
    await expect_error(
        billing.stub(other).ListBills(pb.ListBillsRequest(program_id=PROGRAM)), grpc.StatusCode.NOT_FOUND
    )
    await expect_error(
        billing.stub(other).ConfigureBilling(pb.ConfigureBillingRequest(plan=plan())),
        grpc.StatusCode.PERMISSION_DENIED,
        "CROSS_TENANT",
    )
    # The customer's device vendor does not see the customer's bill either.
    await expect_error(billing.stub(billing.w.solarco).GetBill(request), grpc.StatusCode.PERMISSION_DENIED)
    async with fabric.operator() as channel:
        seen = await billing_pb2_grpc.BillingServiceStub(channel).GetBill(request)
    assert seen.bill.amount_due_base_units == 10_625_000
    await expect_error(
        stub.GetBill(pb.GetBillRequest(program_id=PROGRAM, account_ref="NOBODY")),
        grpc.StatusCode.NOT_FOUND,
        "ACCOUNT_NOT_FOUND",
    )


async def test_only_readings_the_customers_consent_covers_are_billed(billing: Billing) -> None:
    """Personal data: energy before the consent's not_before is not billed,
    and a reading that straddles it counts in proportion to time."""
    start = aligned_now() - 8 * STEP
    device = await billing.w.register(billing.w.solarco, "solarco", "heat-pump")
    not_before = datetime.fromtimestamp(start + STEP // 2, UTC)
    async with billing.w.channel(billing.w.solarco) as channel:
        await routing_pb2_grpc.RoutingServiceStub(channel).EnrollDevice(
            routing_pb2.EnrollDeviceRequest(
                program_id=PROGRAM,
                device=common_pb2.DeviceIdentifier(der_id=str(device.pubkey())),
                account_ref="ACCT-3",
                consent=consent_for(device, PROGRAM, account="ACCT-3", not_before=not_before),
            )
        )
    await billing.submit([reading(device, 1, start, 0, 0), reading(device, 2, start + STEP, 1_000, 0)])
    stub = billing.stub()
    await stub.ConfigureBilling(pb.ConfigureBillingRequest(plan=plan()))
    bill = (await stub.GetBill(pb.GetBillRequest(program_id=PROGRAM, account_ref="ACCT-3"))).bill
    (energy,) = [line for line in bill.lines if line.kind == pb.BILL_LINE_KIND_ENERGY]
    assert amount(energy.quantity) == 500
    assert bill.amount_due_base_units == 125_000 + 10_000_000


async def test_billing_can_start_from_an_earlier_date_which_then_stays_fixed(billing: Billing, fabric: Fabric) -> None:
    stub = billing.stub()
    start = (datetime.now(UTC) - timedelta(days=40)).date()
    configured = (
        await stub.ConfigureBilling(pb.ConfigureBillingRequest(plan=plan(cycle_day=1, bills_from=start.isoformat())))
    ).plan
    assert configured.bills_from == start.isoformat()
    first = (
        await stub.GetBill(pb.GetBillRequest(program_id=PROGRAM, account_ref="ACCT-2", period=start.isoformat()))
    ).bill
    assert first.period_start == start.replace(day=1).isoformat()
    assert first.amount_due_base_units == 10_000_000  # the fixed charge; the readings are from today
    await expect_error(
        stub.GetBill(
            pb.GetBillRequest(program_id=PROGRAM, account_ref="ACCT-2", period=(start - timedelta(days=40)).isoformat())
        ),
        grpc.StatusCode.NOT_FOUND,
        "BILL_NOT_FOUND",
    )
    await expect_error(
        stub.ConfigureBilling(
            pb.ConfigureBillingRequest(plan=plan(cycle_day=1, bills_from=(start + timedelta(days=1)).isoformat()))
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
        "BILLS_FROM_FIXED",
    )
    # The periods that have ended since are issued by the next close pass, each once.
    bills = Bills(fabric.app.db, BillingPlans(fabric.app.db))
    issued = await bills.close_ended()
    assert issued >= 2  # two accounts, at least one ended period each
    assert await bills.close_ended() == 0
