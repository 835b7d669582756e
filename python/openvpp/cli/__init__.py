"""The `openvpp` command: server lifecycle here, client commands in their own modules."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path
from typing import Any

import click

from openvpp import keys
from openvpp.cli.bills import bill
from openvpp.cli.chain import chain, registry_group, reserve, token
from openvpp.cli.common import console, settings_from
from openvpp.cli.deploy import deploy
from openvpp.cli.devices import device
from openvpp.cli.endpoints import endpoint
from openvpp.cli.partners import certificate, partner
from openvpp.cli.routes import program, route
from openvpp.cli.settlement import balance, ledger, settle, settlements, statement


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="openvpp")
@click.option("-v", "--verbose", count=True, help="More logging (-vv for debug).")
def main(verbose: int) -> None:
    """OpenVPP: device registry, routing and real-time stablecoin settlement for DERs."""
    level = logging.WARNING - 10 * verbose
    logging.basicConfig(level=max(level, logging.DEBUG), format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@main.command()
@click.option("--data-dir", type=click.Path(path_type=Path), help="Data directory [default: ./.openvpp].")
@click.option(
    "--database-url", help="SQLAlchemy URL, e.g. postgresql+psycopg://u:p@host/db [default: SQLite in the data dir]."
)
@click.option("--listen", help="Address to serve on [default: 127.0.0.1:50051].")
@click.option("--grace", "shutdown_grace_seconds", type=float, help="Seconds to drain in-flight calls on SIGTERM.")
@click.option("--health-listen", help="Plaintext health-check address [default: 127.0.0.1:50052].")
@click.option(
    "--insecure",
    is_flag=True,
    default=None,
    help="Plaintext, no client certificates, every caller the operator. Loopback only; development only.",
)
@click.option(
    "--probe-private-addresses",
    is_flag=True,
    default=None,
    help="Let endpoint probes reach loopback and private networks (development only).",
)
@click.option(
    "--create-missing-keys",
    is_flag=True,
    default=None,
    help="Make the routing and settlement keys when missing instead of refusing to start (development only).",
)
@click.option("--chain-rpc-url", help="Solana JSON-RPC endpoint [default: the embedded chain in process].")
@click.option("--stablecoin-mint", help="The stablecoin mint (USDC on a real cluster) [default: the local test mint].")
@click.option("--anchor-interval", "anchor_interval_seconds", type=float, help="Seconds between registry anchors.")
@click.option(
    "--settle-interval", "settle_interval_seconds", type=float, help="Seconds between settlement cycles; 0: on demand."
)
@click.option("--web-listen", help="Serve the web app over HTTPS on this address, e.g. 127.0.0.1:8443 [default: off].")
@click.option("--web-public-url", help="The web app's address as browsers reach it, for login links.")
def serve(**flags: Any) -> None:
    """Run the gRPC server (and, with --web-listen, the web app) until SIGTERM or SIGINT."""
    from openvpp.server import app, telemetry
    from openvpp.web import server as web_server

    logging.getLogger("openvpp").setLevel(min(logging.getLogger().level, logging.INFO))
    settings = settings_from(**flags)
    provider = telemetry.install(settings.telemetry)
    try:
        asyncio.run(web_server.serve(settings, provider))
    except app.ConfigurationError as exc:
        raise click.UsageError(str(exc)) from None


@main.command()
@click.option("--database-url", help="SQLAlchemy URL [default: SQLite in the data dir].")
@click.option("--data-dir", type=click.Path(path_type=Path), help="Data directory [default: ./.openvpp].")
@click.option(
    "--server-name",
    "server_names",
    multiple=True,
    default=["localhost"],
    show_default=True,
    help="DNS name in the server certificate (repeatable).",
)
@click.option(
    "--server-address",
    "server_addresses",
    multiple=True,
    default=["127.0.0.1"],
    show_default=True,
    help="IP address in the server certificate (repeatable).",
)
@click.option(
    "--exist-ok",
    is_flag=True,
    help="Do nothing (exit 0) when the data directory already holds a CA: a deployment's one-time init step.",
)
def init(
    data_dir: Path | None,
    database_url: str | None,
    server_names: tuple[str, ...],
    server_addresses: tuple[str, ...],
    exist_ok: bool,
) -> None:
    """Create the data directory: a CA, the server certificate and an operator bundle."""
    from openvpp.integration import bootstrap

    settings = settings_from(data_dir=data_dir, database_url=database_url)
    try:
        bootstrap.initialise(
            settings.data_dir, list(server_names), list(server_addresses), settings.resolved_database_url()
        )
    except FileExistsError as exc:
        if exist_ok:
            console.print(f"{settings.data_dir} is already initialised; nothing to do")
            return
        raise click.UsageError(str(exc)) from None
    console.print(f"certificate authority, server certificate and operator bundle written to {settings.data_dir}")
    from openvpp.server.compose import initialise_chain

    stablecoin = asyncio.run(initialise_chain(settings))
    console.print(
        f"settlement keys in {settings.data_dir / 'keys'}; test stablecoin {stablecoin} on the embedded chain"
    )


@main.group()
def db() -> None:
    """Database maintenance."""


@db.command("upgrade")
@click.option("--data-dir", type=click.Path(path_type=Path))
@click.option("--database-url")
def db_upgrade(**flags: Any) -> None:
    """Apply all migrations (serve does this itself unless OPENVPP_AUTO_MIGRATE=false)."""
    from openvpp.store import migrate

    migrate.upgrade(settings_from(**flags).resolved_database_url())
    console.print("database is at the latest schema")


@main.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
def keygen(path: Path, force: bool) -> None:
    """Write a new ed25519 keypair as a Solana-CLI JSON file and print its der_id."""
    keypair = keys.generate()
    try:
        keys.write(path, keypair, overwrite=force)
    except FileExistsError:
        raise click.UsageError(f"{path} exists; pass --force to overwrite") from None
    console.print(str(keypair.pubkey()))


@main.command()
@click.option("--devices", type=click.IntRange(8, 200_000), default=1000, show_default=True, help="Fleet size.")
@click.option("--days", type=click.IntRange(1, 14), default=1, show_default=True, help="Days of 15-minute readings.")
@click.option("--seed", type=int, default=7, show_default=True, help="Same seed, same fleet, weather and day.")
@click.option("--out", type=click.Path(path_type=Path), default=Path("demo-out"), show_default=True)
@click.option("--trace-console", is_flag=True, help="Print spans (the server's go to its log in --out).")
def demo(devices: int, days: int, seed: int, out: Path, trace_console: bool) -> None:
    """Run a virtual power plant's day end to end against a real server, with a report."""
    from openvpp.demo import run
    from openvpp.demo.tracing import install

    provider = install(trace_console)
    try:
        result = asyncio.run(run(devices=devices, seed=seed, out=out, console=console, days=days))
    finally:
        if provider is not None:
            provider.shutdown()
    sys.exit(result.exit_code)


for group in (
    partner,
    certificate,
    endpoint,
    device,
    program,
    route,
    chain,
    token,
    reserve,
    registry_group,
    ledger,
    settle,
    balance,
    settlements,
    statement,
    bill,
    deploy,
):
    main.add_command(group)
