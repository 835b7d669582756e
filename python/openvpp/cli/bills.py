"""`openvpp bill show|list|export`: an account's bills, as a table, CSV or
an HTML bill a customer would recognise."""

from __future__ import annotations

import csv
import html
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any

import click
import grpc
from rich.table import Table

from openvpp.cli.common import console, run_call, target_option
from openvpp.v1 import billing_pb2 as pb
from openvpp.v1 import billing_pb2_grpc

COLUMNS = ["kind", "period", "tier", "quantity", "rate", "amount_micro", "readings"]
KIND_NAMES = {
    pb.BILL_LINE_KIND_ENERGY: "Energy",
    pb.BILL_LINE_KIND_EXPORT_CREDIT: "Export credit",
    pb.BILL_LINE_KIND_DEMAND_TOU: "Demand (time of use)",
    pb.BILL_LINE_KIND_DEMAND_FLAT: "Demand (monthly)",
    pb.BILL_LINE_KIND_FIXED_MONTHLY: "Fixed charge",
    pb.BILL_LINE_KIND_FIXED_DAILY: "Daily charge",
    pb.BILL_LINE_KIND_MINIMUM: "Minimum bill",
    pb.BILL_LINE_KIND_TAX: "Taxes",
    pb.BILL_LINE_KIND_TRUE_UP: "Annual true-up credit",
    pb.BILL_LINE_KIND_CREDIT_CARRIED: "Credit carried forward",
}
UNITS = {
    pb.BILL_LINE_KIND_ENERGY: "Wh",
    pb.BILL_LINE_KIND_EXPORT_CREDIT: "Wh",
    pb.BILL_LINE_KIND_DEMAND_TOU: "W",
    pb.BILL_LINE_KIND_DEMAND_FLAT: "W",
    pb.BILL_LINE_KIND_FIXED_DAILY: "days",
    pb.BILL_LINE_KIND_TRUE_UP: "Wh",
}


def _stub(channel: grpc.aio.Channel) -> billing_pb2_grpc.BillingServiceAsyncStub:
    return billing_pb2_grpc.BillingServiceStub(channel)


def _exact(value: Any) -> Fraction:
    return Fraction(int(value.numerator or 0), int(value.denominator or 1))


def _ratio(value: Any) -> str:
    return value.numerator if value.denominator in ("", "1") else f"{value.numerator}/{value.denominator}"


def money(micro: Fraction) -> str:
    """Micro-units as dollars and cents for people (the exact amount is in the lines)."""
    cents = round(micro / 10_000)
    sign = "-" if cents < 0 else ""
    return f"{sign}${abs(cents) // 100:,}.{abs(cents) % 100:02d}"


def line_rows(bill: pb.Bill) -> list[dict[str, str]]:
    rows = []
    for line in bill.lines:
        rows.append(
            {
                "kind": pb.BillLineKind.Name(line.kind).removeprefix("BILL_LINE_KIND_").lower(),
                "period": str(line.period) if line.HasField("period") else "",
                "tier": str(line.tier) if line.HasField("tier") else "",
                "quantity": _ratio(line.quantity),
                "rate": str(line.rate),
                "amount_micro": _ratio(line.amount_micro),
                "readings": " ".join(f"{r.der_id}:{r.first_seq}-{r.last_seq}" for r in line.readings),
            }
        )
    return rows


@click.group("bill")
def bill() -> None:
    """Accounts' bills (BillingService)."""


@bill.command("show")
@target_option
@click.argument("program_id")
@click.argument("account_ref")
@click.option("--period", default="", help="A local date inside the period [default: the current one].")
@click.option("--html", "html_path", type=click.Path(path_type=Path), help="Also write the bill as an HTML page.")
def bill_show(
    target: str, bundle: Path, insecure: bool, program_id: str, account_ref: str, period: str, html_path: Path | None
) -> None:
    """One account's bill: the lines, the exact total and what is due."""
    request = pb.GetBillRequest(program_id=program_id, account_ref=account_ref, period=period)
    found = run_call(target, lambda ch: _stub(ch).GetBill(request)).bill
    table = Table(title=f"{program_id} · {account_ref} · {found.period_start} to {found.period_end}")
    for column in ("line", "period", "tier", "quantity", "rate", "amount"):
        table.add_column(column)
    for line in found.lines:
        table.add_row(
            KIND_NAMES.get(line.kind, str(line.kind)),
            str(line.period) if line.HasField("period") else "",
            str(line.tier) if line.HasField("tier") else "",
            f"{float(_exact(line.quantity)):,.1f} {UNITS.get(line.kind, '')}".strip(),
            str(line.rate),
            money(_exact(line.amount_micro)),
        )
    console.print(table)
    state = pb.BillState.Name(found.state).removeprefix("BILL_STATE_").lower().replace("_", " ")
    console.print(
        f"total {money(_exact(found.total_micro))} · due {found.amount_due_base_units:,} base units · {state}"
    )
    if found.payment_signature:
        console.print(f"paid by {found.payment_signature}")
    if found.past_due_reason:
        console.print(f"[red]past due: {found.past_due_reason}[/red]")
    if html_path is not None:
        html_path.write_text(render_html(found))
        console.print(f"wrote {html_path}")


@bill.command("list")
@target_option
@click.argument("program_id")
@click.option("--account", "account_ref", default="", help="One account [default: every account].")
def bill_list(target: str, bundle: Path, insecure: bool, program_id: str, account_ref: str) -> None:
    """Issued bills, newest first."""
    request = pb.ListBillsRequest(program_id=program_id, account_ref=account_ref, page_size=500)
    bills = run_call(target, lambda ch: _stub(ch).ListBills(request)).bills
    table = Table(title=f"Bills of {program_id}")
    for column in ("account", "period", "state", "total", "due (base units)", "payment"):
        table.add_column(column)
    for b in bills:
        table.add_row(
            b.account_ref,
            f"{b.period_start} to {b.period_end}",
            pb.BillState.Name(b.state).removeprefix("BILL_STATE_").lower(),
            money(_exact(b.total_micro)),
            f"{b.amount_due_base_units:,}",
            b.payment_signature[:16] or b.past_due_reason,
        )
    console.print(table)


@bill.command("export")
@target_option
@click.argument("program_id")
@click.argument("account_ref")
@click.option("--period", default="", help="A local date inside the period [default: the current one].")
@click.option("--csv", "as_csv", is_flag=True, required=True, help="Every line as CSV on stdout, amounts exact.")
def bill_export(
    target: str, bundle: Path, insecure: bool, program_id: str, account_ref: str, period: str, as_csv: bool
) -> None:
    """A bill's lines as CSV: exact quantities and amounts (n/d), the readings behind each."""
    request = pb.GetBillRequest(program_id=program_id, account_ref=account_ref, period=period)
    found = run_call(target, lambda ch: _stub(ch).GetBill(request)).bill
    writer = csv.DictWriter(sys.stdout, fieldnames=COLUMNS)
    writer.writeheader()
    writer.writerows(line_rows(found))


def _usage_chart(bill: pb.Bill) -> str:
    """Energy lines as horizontal bars, inline SVG (no script, nothing fetched)."""
    energy = [line for line in bill.lines if line.kind in (pb.BILL_LINE_KIND_ENERGY, pb.BILL_LINE_KIND_EXPORT_CREDIT)]
    if not energy:
        return ""
    top = max(float(_exact(line.quantity)) for line in energy) or 1.0
    rows = []
    for i, line in enumerate(energy):
        width = 300 * float(_exact(line.quantity)) / top
        label = f"{KIND_NAMES[line.kind]}, period {line.period}" + (
            f" tier {line.tier}" if line.HasField("tier") else ""
        )
        colour = "#2f6f4f" if line.kind == pb.BILL_LINE_KIND_EXPORT_CREDIT else "#1f4e8c"
        y = 24 * i
        rows.append(
            f'<text x="0" y="{y + 15}">{html.escape(label)}</text>'
            f'<rect x="230" y="{y + 3}" width="{width:.1f}" height="16" fill="{colour}"/>'
            f'<text x="{235 + width:.1f}" y="{y + 15}">{float(_exact(line.quantity)) / 1000:,.2f} kWh</text>'
        )
    height = 24 * len(energy)
    return (
        f'<svg role="img" aria-label="Energy by period" width="640" height="{height}" '
        f'viewBox="0 0 640 {height}" font-size="13">{"".join(rows)}</svg>'
    )


def render_html(bill: pb.Bill) -> str:
    """The bill as a self-contained page: period, usage chart, lines, credits, amount due, payment."""
    state = pb.BillState.Name(bill.state).removeprefix("BILL_STATE_").replace("_", " ").title()
    rows = "".join(
        "<tr><td>{}</td><td>{}</td><td class=n>{}</td><td class=n>{}</td></tr>".format(
            html.escape(KIND_NAMES.get(line.kind, "")),
            ""
            if not line.HasField("period")
            else f"period {line.period}" + ("" if not line.HasField("tier") else f", tier {line.tier}"),
            f"{float(_exact(line.quantity)):,.1f} {UNITS.get(line.kind, '')}",
            money(_exact(line.amount_micro)),
        )
        for line in bill.lines
    )
    payment = (
        f"<p>Paid in stablecoin, transaction <code>{html.escape(bill.payment_signature)}</code>.</p>"
        if bill.state == pb.BILL_STATE_PAID
        else f"<p class=due>Past due: {html.escape(bill.past_due_reason)}</p>"
        if bill.past_due_reason
        else ""
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Bill {html.escape(bill.account_ref)} {html.escape(bill.period_start)}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:720px;margin:2em auto;padding:0 1em;color:#111}}
table{{border-collapse:collapse;width:100%}}td,th{{border-bottom:1px solid #ccc;padding:.4em;text-align:left}}
.n{{text-align:right}}.total{{font-size:1.4em}}.due{{color:#8b0000}}svg{{max-width:100%}}</style></head>
<body><h1>Electricity bill</h1>
<p>Program {html.escape(bill.program_id)} · account <strong>{html.escape(bill.account_ref)}</strong><br>
Billing period {html.escape(bill.period_start)} to {html.escape(bill.period_end)} · {html.escape(state)}</p>
<p>Imported {bill.imported_wh / 1000:,.2f} kWh · exported {bill.exported_wh / 1000:,.2f} kWh</p>
<h2>Your usage</h2>{_usage_chart(bill)}
<h2>Charges and credits</h2>
<table><thead><tr><th scope=col>Item</th><th scope=col>Period</th><th scope=col class=n>Quantity</th>
<th scope=col class=n>Amount</th></tr></thead><tbody>{rows}</tbody></table>
<p class=total>Amount due: <strong>{bill.amount_due_base_units / 1_000_000:,.6f}</strong> stablecoin</p>
{payment}</body></html>
"""


__all__ = ["bill", "line_rows", "money", "render_html"]
