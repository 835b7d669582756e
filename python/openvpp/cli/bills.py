"""`openvpp bill show|list|export`: an account's bills, as a table, CSV or
an HTML bill a customer would recognise."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import click
import grpc
from rich.table import Table

from openvpp.billing.html import KIND_NAMES, UNITS, exact, line_rows, money, render_html
from openvpp.cli.common import console, run_call, target_option
from openvpp.v1 import billing_pb2 as pb
from openvpp.v1 import billing_pb2_grpc

COLUMNS = ["kind", "period", "tier", "quantity", "rate", "amount_micro", "readings"]


def _stub(channel: grpc.aio.Channel) -> billing_pb2_grpc.BillingServiceAsyncStub:
    return billing_pb2_grpc.BillingServiceStub(channel)


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
            f"{float(exact(line.quantity)):,.1f} {UNITS.get(line.kind, '')}".strip(),
            str(line.rate),
            money(exact(line.amount_micro)),
        )
    console.print(table)
    state = pb.BillState.Name(found.state).removeprefix("BILL_STATE_").lower().replace("_", " ")
    console.print(f"total {money(exact(found.total_micro))} · due {found.amount_due_base_units:,} base units · {state}")
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
            money(exact(b.total_micro)),
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


__all__ = ["bill"]
