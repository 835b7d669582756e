"""`openvpp ledger …`, `openvpp settle`, `openvpp balance`, `openvpp statement`, `openvpp settlements follow`."""

from __future__ import annotations

import csv
import datetime as dt
import sys
from pathlib import Path
from typing import Any

import click
import grpc
from google.protobuf import json_format
from google.protobuf.timestamp_pb2 import Timestamp
from rich.table import Table

from openvpp.cli.common import console, print_message, run_call, target_option
from openvpp.v1 import settlement_pb2 as pb
from openvpp.v1 import settlement_pb2_grpc


def _stub(channel: grpc.aio.Channel) -> settlement_pb2_grpc.SettlementServiceAsyncStub:
    return settlement_pb2_grpc.SettlementServiceStub(channel)


@click.group()
def ledger() -> None:
    """The double-entry settlement ledger."""


@ledger.command("check")
@target_option
def ledger_check(target: str, bundle: Path, insecure: bool) -> None:
    """Prove credited = paid + pending per token, balanced entries, and chain supply
    and holder balances equal to what was paid; exit 1 when anything differs."""
    result = run_call(target, lambda ch: _stub(ch).CheckLedger(pb.CheckLedgerRequest()))
    table = Table(title=f"Ledger check: {result.entries:,} journal entries")
    for column in ("token", "credited", "paid", "pending", "redeemed", "chain supply", "holders", "ok"):
        table.add_column(column, justify="left" if column == "token" else "right")
    for t in result.tokens:
        table.add_row(
            t.mint[:8] + "…",
            f"{t.credited_base_units:,}",
            f"{t.paid_base_units:,}",
            f"{t.pending_base_units:,}",
            f"{t.redeemed_base_units:,}",
            f"{t.supply_base_units:,}",
            f"{t.holders:,}",
            "[green]yes[/green]" if t.ok else f"[red]no[/red] ({len(t.holder_mismatches)} holders differ)",
        )
    console.print(table)
    for problem in [*result.problems, *(f"entry {e} does not balance" for e in result.unbalanced_entries)]:
        console.print(f"[red]{problem}[/red]")
    console.print("[green]ledger holds[/green]" if result.ok else "[red]ledger does not hold[/red]")
    sys.exit(0 if result.ok else 1)


@click.command("settle")
@target_option
@click.argument("program_ids", nargs=-1)
def settle(target: str, bundle: Path, insecure: bool, program_ids: tuple[str, ...]) -> None:
    """Credit what is priced and pay every pending credit of PROGRAM_IDS (default: all yours) now."""
    print_message(run_call(target, lambda ch: _stub(ch).Settle(pb.SettleRequest(program_ids=list(program_ids)))))


@click.command("balance")
@target_option
@click.argument("wallet")
def balance(target: str, bundle: Path, insecure: bool, wallet: str) -> None:
    """A wallet's credited, pending, paid, redeemed and on-chain amounts per token."""
    print_message(run_call(target, lambda ch: _stub(ch).GetBalance(pb.GetBalanceRequest(wallet=wallet))))


@click.group()
def settlements() -> None:
    """Settlement events, as utility backends receive them."""


@settlements.command("follow")
@target_option
@click.option("--after", type=click.IntRange(0), default=0, show_default=True, help="Last cursor already seen.")
@click.option("--until-caught-up", is_flag=True, help="Stop at the newest event instead of following live.")
def settlements_follow(target: str, bundle: Path, insecure: bool, after: int, until_caught_up: bool) -> None:
    """Print every event from a cursor as one JSON object per line (resume with --after)."""

    async def follow(channel: grpc.aio.Channel) -> None:
        request = pb.StreamSettlementsRequest(after_cursor=after, until_caught_up=until_caught_up)
        async for page in _stub(channel).StreamSettlements(request):
            for event in page.events:
                print(json_format.MessageToJson(event, preserving_proto_field_name=True, indent=None), flush=True)

    run_call(target, follow)


_STATEMENT_COLUMNS = (
    "at",
    "kind",
    "id",
    "der_id",
    "seq_first",
    "seq_last",
    "interval_start",
    "interval_end",
    "energy_wh",
    "value",
    "share_bps",
    "exact_share",
    "amount_base_units",
    "carry_after",
    "signature",
    "credit_ids",
    "payout_base_units",
)


def _iso(t: Any) -> str:
    return t.ToDatetime(tzinfo=dt.UTC).isoformat() if t.seconds or t.nanos else ""


def _ratio(r: pb.Rational) -> str:
    return r.numerator if r.denominator in ("", "1") else f"{r.numerator}/{r.denominator}"


def statement_rows(reply: pb.GetStatementResponse) -> list[dict[str, str]]:
    """One flat row per statement line, every amount exact (fractions as n/d)."""
    rows = []
    for line in reply.lines:
        row = dict.fromkeys(_STATEMENT_COLUMNS, "")
        row["at"], row["kind"] = _iso(line.at), line.WhichOneof("line") or ""
        if line.HasField("credit"):
            c = line.credit
            row.update(
                id=str(c.credit_id),
                der_id=c.der_id,
                seq_first=str(c.seq_first),
                seq_last=str(c.seq_last),
                interval_start=_iso(c.interval_start),
                interval_end=_iso(c.interval_end),
                energy_wh=str(c.energy_wh),
                value=_ratio(c.value),
                share_bps=str(c.share_bps),
                exact_share=_ratio(c.exact_share),
                amount_base_units=str(c.amount_base_units),
                carry_after=_ratio(c.carry_after),
            )
        elif line.HasField("payout"):
            p = line.payout
            row.update(
                id=str(p.payout_id),
                amount_base_units=str(p.amount_base_units),
                signature=p.signature,
                credit_ids=" ".join(map(str, p.credit_ids)),
            )
        else:
            r = line.redemption
            row.update(
                id=r.redemption_id,
                amount_base_units=str(r.amount_base_units),
                signature=r.signature,
                payout_base_units=str(r.payout_base_units),
            )
        rows.append(row)
    return rows


def _stamp(value: dt.datetime | None) -> Timestamp | None:
    if value is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(value if value.tzinfo else value.replace(tzinfo=dt.UTC))
    return stamp


@click.command("statement")
@target_option
@click.option("--wallet", required=True, help="The receiving account (an owner's device address or a party's wallet).")
@click.option("--mint", required=True, help="The use-case token.")
@click.option("--from", "from_", type=click.DateTime(), help="Start of the window (UTC unless an offset is given).")
@click.option("--to", type=click.DateTime(), help="End of the window, exclusive.")
@click.option("--csv", "as_csv", is_flag=True, help="Every line as CSV on stdout, for a spreadsheet or an auditor.")
def statement(
    target: str,
    bundle: Path,
    insecure: bool,
    wallet: str,
    mint: str,
    from_: dt.datetime | None,
    to: dt.datetime | None,
    as_csv: bool,
) -> None:
    """One account's statement in one token: credits with the readings, value, share and
    remainder behind each amount, payouts with their signatures, redemptions, balances."""
    request = pb.GetStatementRequest(wallet=wallet, mint=mint)
    if (start := _stamp(from_)) is not None:
        getattr(request, "from").CopyFrom(start)
    if (end := _stamp(to)) is not None:
        request.to.CopyFrom(end)
    reply = run_call(target, lambda ch: _stub(ch).GetStatement(request))
    rows = statement_rows(reply)
    if as_csv:
        writer = csv.DictWriter(sys.stdout, fieldnames=_STATEMENT_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
        return
    table = Table(title=f"Statement of {wallet} in {mint}")
    for column in ("at", "kind", "readings", "energy_wh", "exact share", "amount", "carry after", "signature"):
        table.add_column(column)
    for row in rows:
        readings = f"{row['der_id'][:8]}… {row['seq_first']}-{row['seq_last']}" if row["der_id"] else ""
        table.add_row(
            row["at"],
            row["kind"],
            readings,
            row["energy_wh"],
            row["exact_share"],
            row["amount_base_units"],
            row["carry_after"],
            row["signature"][:16],
        )
    console.print(table)
    for name, b in (("opening", reply.opening), ("closing", reply.closing)):
        console.print(
            f"{name}: credited {b.credited_base_units:,}, paid {b.paid_base_units:,}, redeemed "
            f"{b.redeemed_base_units:,}, pending {b.pending_base_units:,}, held {b.held_base_units:,}, "
            f"carry {_ratio(b.carry)}"
        )
