"""`openvpp demo`: a virtual power plant's day, end to end, against a real
`openvpp serve` process, every step over gRPC with mutual TLS as the
partners themselves would make it.

The operator onboards a utility and two device vendors; the utility
validates its endpoint, publishes a time-of-use tariff and runs a NEM and a
DR program with tokens of their own; the vendors register and enroll a
fleet with signed consent and stream its signed readings; settlement pays
on the embedded chain while the utility follows the event stream; some
prosumers redeem; the ledger and the reserves are checked.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import os
import shutil
import signal
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from opentelemetry import trace
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from openvpp.client.channel import channel_to
from openvpp.client.errors import describe_status
from openvpp.demo import billing, readings, registry, report, settlement
from openvpp.demo.fleet import VENDORS, build
from openvpp.demo.profiles import Fleet
from openvpp.demo.routing import NETTED_PROGRAM, UTILITY, run_routing
from openvpp.demo.tokens import reserve_table, run_tokens
from openvpp.integration import bootstrap
from openvpp.v1 import billing_pb2, common_pb2, registry_pb2_grpc

_tracer = trace.get_tracer("openvpp.demo")
DR_KINDS = (
    common_pb2.DEVICE_KIND_BATTERY,
    common_pb2.DEVICE_KIND_EV_CHARGER,
    common_pb2.DEVICE_KIND_HEAT_PUMP,
    common_pb2.DEVICE_KIND_METER,
)


@dataclass
class DemoResult:
    exit_code: int
    checks: dict[str, bool]
    ledger_ok: bool
    reserves_covered: dict[str, bool]
    readings_accepted: int
    verdicts: dict[str, int]
    payouts: int
    dr_performance_wh: int
    seconds: float


def last_weekday(today: dt.date) -> dt.date:
    """The demo's last day: the latest complete weekday, so its DR baseline has like days."""
    day = today - dt.timedelta(days=1)
    while day.weekday() >= 5:
        day -= dt.timedelta(days=1)
    return day


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    )


def _coins(base_units: int) -> str:
    return f"{base_units / 1e6:,.2f}"


async def run(
    devices: int, seed: int, out: Path, console: Console, days: int = 1, today: dt.date | None = None
) -> DemoResult:
    with _tracer.start_as_current_span("openvpp.demo") as span:
        span.set_attribute("openvpp.devices", devices)
        return await _run(devices, seed, out, console, days, today or dt.datetime.now(settlement.ZONE).date())


async def _run(devices: int, seed: int, out: Path, console: Console, days: int, today: dt.date) -> DemoResult:
    started = time.perf_counter()
    data_dir = out / "data"
    # A fresh data directory every run, so the demo always tells the same story.
    await asyncio.to_thread(shutil.rmtree, data_dir, True)
    await asyncio.to_thread(out.mkdir, parents=True, exist_ok=True)
    port, health_port = registry.free_port(), registry.free_port()
    target = f"localhost:{port}"
    console.rule("[bold]OpenVPP demo: a virtual power plant's day")
    await asyncio.to_thread(
        bootstrap.initialise, data_dir, ["localhost"], ["127.0.0.1"], f"sqlite:///{(data_dir / 'openvpp.db').resolve()}"
    )
    console.print(f"openvpp init: CA, operator bundle, embedded chain and test stablecoin in {data_dir}")
    last_day = last_weekday(today)
    first_day = last_day - dt.timedelta(days=days - 1)
    history_from = first_day - dt.timedelta(days=readings.HISTORY_DAYS)
    env = {
        **os.environ,
        "OPENVPP_READING_MAX_AGE_SECONDS": str(((today - history_from).days + 2) * 86_400),
        # Continuous autopay collects within a second of a bill accruing.
        "OPENVPP_BILLING_CLOSE_INTERVAL_SECONDS": "1",
    }
    server = await registry.start_server(data_dir, port, health_port, out / "server.log", env)
    console.print(f"serving mTLS on {target} · SQLite (WAL) · settling every second · log in {out / 'server.log'}")
    try:
        return await _scenario(target, data_dir, out, console, devices, seed, days, last_day, started, server)
    finally:
        if server.returncode is None:
            server.send_signal(signal.SIGTERM)
            await asyncio.wait_for(server.wait(), 60)


async def _scenario(
    target: str,
    data_dir: Path,
    out: Path,
    console: Console,
    devices: int,
    seed: int,
    days: int,
    last_day: dt.date,
    started: float,
    server: Any,
) -> DemoResult:
    partners = await registry.onboard(target, data_dir)
    utility = partners.pop(UTILITY)
    bundles = partners
    console.print(f"operator onboarded utility {UTILITY} and vendors {', '.join(bundles)} (certificates from CSRs)")
    with _progress(console) as progress:
        task = progress.add_task("generating device keys and signing records", total=1)
        fleet = await asyncio.to_thread(build, devices, seed)
        progress.update(task, completed=1)
        responses, bulk_seconds = await registry.register(target, bundles, fleet, progress)
    async with (
        channel_to(target, data_dir / "operator") as channel,
        channel_to(target, bundles[fleet[4 % len(fleet)].record.vendor_namespace]) as vendor_channel,
    ):
        stub: Any = registry_pb2_grpc.RegistryServiceStub(channel)
        vendor: Any = registry_pb2_grpc.RegistryServiceStub(vendor_channel)
        console.print(await registry.resolve(stub, fleet))
        entries, head, chain_ok, live = await registry.watch_and_follow(stub, vendor, fleet)
        console.print(f"registry watch: {entries} log entries (head {head}), hash chain intact: {chain_ok}")
        included, signature_ok, root, size = await registry.prove(stub, fleet[7])
    suspended = {fleet[4].der_id}
    dr = {d.der_id for d in fleet if d.record.kind in DR_KINDS and d.der_id not in suspended}
    model = Fleet(
        [d.record.kind for d in fleet],
        [(d.record.capabilities.max_import_w, d.record.capabilities.max_export_w) for d in fleet],
        seed,
    )
    # One household meter with panels of its own is on classic net metering.
    household = next(
        d
        for i, d in enumerate(fleet)
        if d.record.kind == common_pb2.DEVICE_KIND_METER and model.pv_w[i] > 0 and d.der_id not in suspended
    )
    with _progress(console) as progress:
        routed = await run_routing(
            target, out, utility, bundles, fleet, suspended, dr, progress, frozenset({household.der_id})
        )
    console.print(
        f"utility endpoint pacific/vtn (OpenADR 3): {routed.endpoint_state}; programs "
        + ", ".join(
            c.removeprefix("openadr3.program:") for c in routed.capabilities if c.startswith("openadr3.program:")
        )
        + f"; {routed.resolved} signed routes resolved, {routed.verified} verified with the published key"
    )
    minted = await run_tokens(target, data_dir, utility, fleet[7].der_id)
    programs = await settlement.configure(target, utility, minted.token.mint, last_day - dt.timedelta(days=40))
    event = await settlement.schedule_event(target, utility, programs, last_day)
    console.print(
        f"utility: tariff {settlement.TARIFF} (TOU, {settlement.ZONE.key}); SOLAR and DR tokens on Token-2022, "
        f"reserves funded; DR event {event.event_id[:8]}… on {last_day:%a %d %b} "
        f"{settlement.EVENT.start_hour:02.0f}:00-{settlement.EVENT.end_hour:02.0f}:00"
    )

    # The day streams in while settlement runs and the utility backend follows.
    active = [i for i, d in enumerate(fleet) if d.der_id not in suspended]
    dr_mask = np.array([d.der_id in dr for d in fleet])
    timeline = await asyncio.to_thread(
        readings.build_timeline, model, dr_mask, last_day, days, settlement.ZONE, settlement.EVENT, np.array(active)
    )
    seen = settlement.Followed()
    stop = asyncio.Event()
    follower = asyncio.ensure_future(settlement.follow(target, utility, started, seen, stop))
    with _progress(console) as progress:
        task = progress.add_task(
            f"vendors streaming signed readings ({readings.HISTORY_DAYS}-day DR history, then the day)",
            total=timeline.readings + 3 * len(bundles),
        )
        with _tracer.start_as_current_span("demo.stream_readings"):
            streamed = await readings.stream(target, bundles, fleet, timeline, lambda n: progress.advance(task, n))
    settlements = await settlement.settle_now(target, utility)
    redeemed = await settlement.redeem(
        target,
        bundles,
        [fleet[i] for i in active if fleet[i].record.kind == common_pb2.DEVICE_KIND_SOLAR_INVERTER],
        programs.solar_mint,
        5,
    )
    accounts = routed.accounts
    billing_started = time.perf_counter()
    with _tracer.start_as_current_span("demo.bill_accounts"):
        billed = await billing.bill_accounts(target, utility, accounts, last_day, out)
    billing_seconds = time.perf_counter() - billing_started
    with _tracer.start_as_current_span("demo.bill_netted"):
        netted = await billing.bill_netted(
            target, data_dir / "operator", utility, household, routed.netted_accounts[0], last_day, out
        )
    closing = await settlement.close_out(target, utility, programs, settlements)
    stop.set()
    await follower
    server.send_signal(signal.SIGTERM)
    exit_code = await asyncio.wait_for(server.wait(), 60)
    elapsed = time.perf_counter() - started

    accepted = sum(r.accepted for r in responses)
    refused = Counter(describe_status(v.status).reason for r in responses for v in r.verdicts if v.status.code != 0)
    symbols = {programs.solar_mint: "SOLAR", programs.dr_mint: "DR"}
    paid = Counter[str]()
    for _, mint, amount in seen.paid:
        paid[mint] += amount
    exported = int(timeline.day_exports.sum())
    imported = int(timeline.day_imports.sum())
    summary = [
        (
            "devices",
            f"{accepted:,} registered by {len(bundles)} vendors ({bulk_seconds:.1f} s); "
            f"refused {sum(refused.values())}: " + ", ".join(f"{k} x{v}" for k, v in sorted(refused.items())),
        ),
        ("enrolled", f"{routed.enrolled:,} in NEM, {routed.enrolled_dr:,} in DR, each with consent signed by its key"),
        (
            "readings",
            f"{streamed.verdicts.get('ACCEPTED', 0):,} accepted of {streamed.submitted:,} "
            f"({streamed.submitted / streamed.seconds:,.0f}/s over mTLS)",
        ),
        ("readings refused", ", ".join(f"{k} x{v}" for k, v in sorted(streamed.verdicts.items()) if k != "ACCEPTED")),
        ("energy (demo days)", f"{imported / 1000:,.0f} kWh imported, {exported / 1000:,.0f} kWh exported"),
        *[(f"credited {symbols.get(m, m)}", _coins(v)) for m, v in sorted(seen.credited.items())],
        *[(f"paid {symbols.get(m, m)}", f"{_coins(v)} on chain") for m, v in sorted(paid.items())],
        (
            "payouts",
            f"{len(seen.paid):,} payouts in {len(seen.signatures):,} transactions, "
            f"{seen.events['payout_failed']} failed",
        ),
        (
            "redemptions",
            f"{redeemed.count} prosumers burned {_coins(redeemed.burned)} SOLAR for "
            f"{_coins(redeemed.paid_out)} stablecoin",
        ),
        *[
            (
                f"reserve {symbols[m]}",
                f"{_coins(r.reserve_balance_base_units)} stablecoin for {_coins(r.supply_base_units)} "
                f"supply: coverage {r.coverage_bps / 100:,.1f} %, covered: {'yes' if r.covered else 'NO'}",
            )
            for m, r in closing.reserves.items()
        ],
        (
            "DR performance",
            f"{closing.dr.event.performance_wh / 1000:,.1f} kWh by {closing.dr.event.devices_settled:,} "
            f"devices, {_coins(closing.dr.event.credited_base_units)} DR credited "
            f"({closing.dr.event.baseline_method})",
        ),
        (
            "bills",
            f"{billed.accounts:,} accounts billed for {last_day:%a %d %b} (imports only: exports are paid as "
            f"SOLAR): {_coins(billed.due_base_units)} stablecoin due for {billed.imported_wh / 1000:,.0f} kWh; "
            f"read in {billing_seconds:.1f} s; largest in bill.html",
        ),
        (
            "net-metered bill",
            f"{netted.account} ({NETTED_PROGRAM}): {netted.bill.imported_wh / 1000:,.1f} kWh imported, "
            f"{netted.bill.exported_wh / 1000:,.1f} kWh exported, netted per TOU period: "
            f"{_coins(sum(p.amount_base_units for p in netted.bill.payments) + netted.bill.amount_due_base_units)} "
            f"stablecoin, {_coins(sum(p.amount_base_units for p in netted.bill.payments))} collected by autopay "
            f"in {len(netted.bill.payments)} transfer(s) within {netted.collected_in_s:.1f} s; bill-netted.html",
        ),
        ("settlement stream", f"{seen.last_cursor:,} events followed live, gaps: {seen.gaps}"),
        (
            "ledger check",
            f"{'passed' if closing.ledger.ok else 'FAILED'}: {closing.ledger.entries:,} journal entries; "
            + ", ".join(
                f"{b.program_id} billed {_coins(b.billed_base_units)}, collected {_coins(b.collected_base_units)}"
                f" ({b.payments} on chain)"
                for b in closing.ledger.billing
            ),
        ),
        ("time taken", f"{elapsed:.1f} s"),
    ]
    table = Table(title="Summary", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    for k, v in summary:
        table.add_row(k, v)
    console.print(reserve_table(minted))
    console.print(table)
    _write_report(out, timeline, seen, symbols, closing, streamed, summary, redeemed)
    console.print(f"report: {out / 'report.html'} (charts also in {out / 'report.png'})")

    checks = {
        "registered": accepted == len(fleet),
        "registry refusals": set(refused)
        == {"DEVICE_EXISTS", "BAD_SIGNATURE", "NAME_OUTSIDE_NAMESPACE", "CROSS_TENANT"},
        "registry log": chain_ok and len(live) == 2 and included and signature_ok and size > 0 and bool(root),
        "endpoint validated": routed.endpoint_state == "validated",
        "routes verified": routed.resolved == routed.verified > 0,
        "bad readings refused": all(
            streamed.verdicts.get(k) for k in ("DUPLICATE", "BAD_SIGNATURE", "COUNTER_DECREASED")
        ),
        "readings accepted": streamed.verdicts.get("ACCEPTED", 0) == timeline.readings,
        "nothing failed on chain": seen.events["payout_failed"] == 0 and bool(seen.paid),
        "stream gapless": seen.gaps == 0,
        "ledger": closing.ledger.ok,
        "accounts billed": billed.accounts == len(accounts) and billed.due_base_units > 0,
        "net-metered bill collected": bool(netted.bill.payments)
        and netted.bill.amount_due_base_units == 0
        and netted.bill.exported_wh > 0
        and netted.autopay.state == billing_pb2.AUTOPAY_STATE_ACTIVE,
        "reserves covered": all(r.covered for r in closing.reserves.values()),
        "server drained": exit_code == 0,
    }
    for name, ok in checks.items():
        if not ok:
            console.print(f"[red]check failed: {name}")
    result = DemoResult(
        0 if all(checks.values()) else 1,
        checks,
        closing.ledger.ok,
        {symbols[m]: r.covered for m, r in closing.reserves.items()},
        streamed.verdicts.get("ACCEPTED", 0),
        dict(streamed.verdicts),
        len(seen.paid),
        closing.dr.event.performance_wh,
        elapsed,
    )
    # For scripts and CI: the same results, machine-readable.
    (out / "summary.json").write_text(json.dumps(dataclasses.asdict(result), indent=2))
    return result


def _write_report(
    out: Path,
    timeline: readings.Timeline,
    seen: settlement.Followed,
    symbols: dict[str, str],
    closing: settlement.Closing,
    streamed: readings.Outcome,
    summary: list[tuple[str, str]],
    redeemed: settlement.Redeemed,
) -> None:
    zone = timeline.zone
    ends = [dt.datetime.fromtimestamp(int(e), zone) for day in timeline.days for e in day.ends]
    hours = [h for day in timeline.days for h in day.hours]
    baseline, actual = settlement.dr_curves(closing.dr)
    event_start = closing.dr.event.start.seconds
    event_ends = [dt.datetime.fromtimestamp(event_start + 900 * (i + 1), zone) for i in range(len(baseline))]
    payouts: dict[str, list[tuple[float, float]]] = {s: [] for s in symbols.values()}
    for t, mint, amount in seen.paid:
        payouts[symbols.get(mint, mint)].append((t, amount / 1e6))
    txs = [
        (f"{symbols.get(mint, mint)} payout", f"{count} payouts", _coins(amount), sig)
        for sig, (mint, count, amount) in list(seen.signatures.items())[:8]
    ]
    txs += [("SOLAR redemption", "burn + stablecoin payout, one transaction", "", s) for s in redeemed.signatures[:3]]
    data = report.ReportData(
        title=f"OpenVPP demo: {len(timeline.blocks[-1].devices):,} devices, "
        f"{timeline.days[0].date:%a %d %b %Y}"
        + (f" to {timeline.days[-1].date:%a %d %b}" if len(timeline.days) > 1 else ""),
        interval_ends=ends,
        net_export_kwh=list((timeline.day_exports - timeline.day_imports) / 1000),
        export_rate=[settlement.export_rate(h) / 1e6 for h in hours],
        payouts=payouts,
        event_ends=event_ends,
        baseline_kwh=[b / 1000 for b in baseline],
        actual_kwh=[a / 1000 for a in actual],
        verdicts=dict(streamed.verdicts),
        summary=summary,
        transactions=txs,
        notes=[
            "Net export is what the fleet's meters and inverters report; the export rate is the utility's published TOU tariff.",
            f"DR baseline: {closing.dr.event.baseline_method}, computed by the server from stored readings.",
        ],
    )
    report.write_html(data, out / "report.html")
    report.write_png(data, out / "report.png")


__all__ = ["VENDORS", "DemoResult", "run"]
