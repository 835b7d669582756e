"""`openvpp ledger …`, `openvpp settle`, `openvpp balance`, `openvpp settlements follow`."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import grpc
from google.protobuf import json_format
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
            t.mint[:8] + "…", f"{t.credited_base_units:,}", f"{t.paid_base_units:,}", f"{t.pending_base_units:,}",
            f"{t.redeemed_base_units:,}", f"{t.supply_base_units:,}", f"{t.holders:,}",
            "[green]yes[/green]" if t.ok else f"[red]no[/red] ({len(t.holder_mismatches)} holders differ)",
        )  # fmt: skip
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
