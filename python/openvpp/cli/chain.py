"""`openvpp chain …`, `token …`, `reserve …` and `registry …`: the on-chain side."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path
from typing import Any

import click
import grpc
from rich.table import Table
from solders.pubkey import Pubkey

from openvpp.chain.base import Chain
from openvpp.chain.embedded import EmbeddedChain, PersistedChain
from openvpp.chain.rpc import RpcChain
from openvpp.cli.common import console, err_console, print_message, run_call, settings_from, target_option
from openvpp.store.database import Database
from openvpp.v1 import registry_pb2, registry_pb2_grpc, settlement_pb2_grpc
from openvpp.v1 import settlement_pb2 as pb

UNITS = {"usd": pb.TOKEN_UNIT_USD, "kwh": pb.TOKEN_UNIT_KWH, "kg-co2": pb.TOKEN_UNIT_KG_CO2}


def _stub(channel: grpc.aio.Channel) -> settlement_pb2_grpc.SettlementServiceAsyncStub:
    return settlement_pb2_grpc.SettlementServiceStub(channel)


@click.group()
def chain() -> None:
    """The embedded Solana chain."""


@chain.command("serve")
@click.option("--data-dir", type=click.Path(path_type=Path), help="Data directory [default: ./.openvpp].")
@click.option("--database-url", help="SQLAlchemy URL [default: SQLite in the data dir].")
@click.option(
    "--listen",
    default="127.0.0.1:8899",
    show_default=True,
    help="host:port for JSON-RPC over HTTP; the PubSub WebSocket is on it and on the next port.",
)
def chain_serve(data_dir: Path | None, database_url: str | None, listen: str) -> None:
    """Serve the data directory's embedded chain as a Solana JSON-RPC and PubSub endpoint.

    Run the OpenVPP server with --chain-rpc-url pointing here to share it.
    """
    from openvpp.chain import rpc_server
    from openvpp.server.compose import ChainBusyError, _lock
    from openvpp.store import migrate

    settings = settings_from(data_dir=data_dir, database_url=database_url)
    host, _, port = listen.rpartition(":")

    async def go() -> None:
        url = settings.resolved_database_url()
        await asyncio.to_thread(migrate.upgrade, url)
        fd = _lock(settings.data_dir)
        db = Database(url)
        try:
            embedded = await EmbeddedChain.open(db, slot_seconds=settings.chain_slot_seconds, history=True)
            served = await rpc_server.serve(embedded, host or "127.0.0.1", int(port))
            where = host or "127.0.0.1"
            ws = f"ws://{where}:{served.port}" + (
                "" if served.ws_port is None else f" and ws://{where}:{served.ws_port}"
            )
            console.print(
                f"Solana JSON-RPC on http://{where}:{served.port}, PubSub on {ws} "
                f"(embedded chain of {settings.data_dir})"
            )
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop.set)
            await stop.wait()
            await served.cleanup()
        finally:
            await db.close()
            import os

            os.close(fd)

    try:
        asyncio.run(go())
    except ChainBusyError as exc:
        raise click.UsageError(str(exc)) from None


@click.group()
def token() -> None:
    """Use-case tokens (Token-2022) backed by stablecoin reserves."""


@token.command("create")
@target_option
@click.option("--program", "program_id", required=True, help="<utility>/<code>")
@click.option("--name", required=True)
@click.option("--symbol", required=True, help="2-10 upper-case letters or digits, e.g. SOLAR.")
@click.option("--uri", default="", help="https:// URL of off-chain metadata.")
@click.option("--unit", type=click.Choice(sorted(UNITS)), required=True)
@click.option("--decimals", type=click.IntRange(0, 9), default=3, show_default=True)
@click.option("--redemption-value", type=click.IntRange(1), required=True, help="Stablecoin base units per token.")
@click.option("--apy-bps", type=click.IntRange(-10_000, 10_000), default=0, show_default=True)
def token_create(target: str, bundle: Path, insecure: bool, **fields: Any) -> None:
    """Create a use-case token and its reserve for one of the caller's programs."""
    request = pb.CreateUseCaseTokenRequest(
        program_id=fields["program_id"],
        name=fields["name"],
        symbol=fields["symbol"],
        uri=fields["uri"],
        unit=UNITS[fields["unit"]],
        decimals=fields["decimals"],
        redemption_value_base_units=fields["redemption_value"],
        interest_rate_bps=fields["apy_bps"],
    )
    print_message(run_call(target, lambda ch: _stub(ch).CreateUseCaseToken(request)))


@token.command("get")
@target_option
@click.argument("mint")
def token_get(target: str, bundle: Path, insecure: bool, mint: str) -> None:
    print_message(run_call(target, lambda ch: _stub(ch).GetUseCaseToken(pb.GetUseCaseTokenRequest(mint=mint))))


@token.command("list")
@target_option
@click.option("--utility", default="")
@click.option("--program", "program_id", default="")
def token_list(target: str, bundle: Path, insecure: bool, utility: str, program_id: str) -> None:
    request = pb.ListUseCaseTokensRequest(utility_id=utility, program_id=program_id)
    print_message(run_call(target, lambda ch: _stub(ch).ListUseCaseTokens(request)))


@click.group()
def reserve() -> None:
    """Stablecoin reserves behind use-case tokens."""


@reserve.command("fund")
@target_option
@click.argument("mint")
@click.argument("amount", type=click.IntRange(1))
def reserve_fund(target: str, bundle: Path, insecure: bool, mint: str, amount: int) -> None:
    """Move AMOUNT stablecoin base units from the utility's treasury into MINT's reserve."""
    request = pb.FundReserveRequest(mint=mint, amount_base_units=amount)
    print_message(run_call(target, lambda ch: _stub(ch).FundReserve(request)))


@reserve.command("get")
@target_option
@click.argument("mint")
def reserve_get(target: str, bundle: Path, insecure: bool, mint: str) -> None:
    print_message(run_call(target, lambda ch: _stub(ch).GetReserve(pb.GetReserveRequest(mint=mint))))


def _chain_reader(rpc: str | None, data_dir: Path | None) -> tuple[Chain, Database | None]:
    """An RPC endpoint, or the data directory's embedded chain read from its database."""
    if rpc:
        return RpcChain(rpc), None
    db = Database(settings_from(data_dir=data_dir).resolved_database_url())
    # Reads only: accounts and transactions are served from the persisted state.
    return PersistedChain(db), db


@reserve.command("verify")
@click.option("--rpc", help="Solana JSON-RPC URL [default: the data directory's embedded chain].")
@click.option("--data-dir", type=click.Path(path_type=Path))
@click.option("--mint", required=True)
def reserve_verify(rpc: str | None, data_dir: Path | None, mint: str) -> None:
    """Prove a token's reserve coverage from chain data alone; exit 1 when it does not hold."""
    from openvpp.settlement.tokens.verify import verify_reserve

    async def go() -> Any:
        reader, db = _chain_reader(rpc, data_dir)
        try:
            return await verify_reserve(reader, mint)
        finally:
            await reader.close()
            if db is not None:
                await db.close()

    try:
        proof = asyncio.run(go())
    except ValueError as exc:
        err_console.print(f"[red]{exc}[/red]")
        sys.exit(1)
    table = Table(title=f"{proof.symbol} reserve, from chain data", show_header=False)
    for name, value in [
        ("mint", proof.mint),
        ("supply (base units)", f"{proof.supply:,} (decimals {proof.decimals})"),
        ("redemption value", f"{proof.redemption_value:,} stablecoin base units per token"),
        ("liability", f"{proof.liability:,}"),
        ("reserve account", proof.reserve_account),
        ("reserve owner", proof.reserve_owner),
        ("stablecoin", proof.stablecoin_mint),
        ("reserve balance", f"{proof.reserve_balance:,}"),
        ("extensions", ", ".join(proof.extensions)),
    ]:
        table.add_row(name, value)
    console.print(table)
    for problem in proof.problems:
        err_console.print(f"[red]{problem}[/red]")
    console.print("[green]covered[/green]" if proof.covered else "[red]NOT covered[/red]")
    sys.exit(0 if proof.covered else 1)


@click.group("registry")
def registry_group() -> None:
    """The registry's on-chain anchors."""


@registry_group.command("anchor")
@target_option
def registry_anchor(target: str, bundle: Path, insecure: bool) -> None:
    """Operator: write the current Merkle root on chain now."""
    stub = registry_pb2_grpc.RegistryServiceStub
    print_message(run_call(target, lambda ch: stub(ch).AnchorRegistry(registry_pb2.AnchorRegistryRequest())))


@registry_group.command("verify")
@target_option
@click.argument("der_id")
@click.option("--rpc", help="Solana JSON-RPC URL [default: the data directory's embedded chain].")
@click.option("--data-dir", type=click.Path(path_type=Path))
@click.option("--authority", help="The anchoring key to expect [default: the one the server reports].")
def registry_verify(
    target: str,
    bundle: Path,
    insecure: bool,
    der_id: str,
    rpc: str | None,
    data_dir: Path | None,
    authority: str | None,
) -> None:
    """Check DER_ID's newest record against the root anchored on chain."""
    from openvpp.registry.verify import verify_anchored

    request = registry_pb2.GetInclusionProofRequest(der_id=der_id, anchored=True)
    proof = run_call(target, lambda ch: registry_pb2_grpc.RegistryServiceStub(ch).GetInclusionProof(request))

    async def go() -> Any:
        reader, db = _chain_reader(rpc, data_dir)
        try:
            return await verify_anchored(proof, reader, Pubkey.from_string(authority) if authority else None)
        finally:
            await reader.close()
            if db is not None:
                await db.close()

    result = asyncio.run(go())
    for name, ok, detail in result.checks:
        console.print(f"{'[green]✓[/green]' if ok else '[red]✗[/red]'} {name}: {detail}")
    sys.exit(0 if result.ok else 1)
