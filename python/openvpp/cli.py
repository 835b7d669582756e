"""The `openvpp` command."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click
import grpc
from google.protobuf import json_format
from rich.console import Console

from openvpp import keys
from openvpp.client.channel import channel_to
from openvpp.client.errors import describe
from openvpp.config import Settings
from openvpp.registry.signing import sign_record
from openvpp.v1 import common_pb2, registry_pb2, registry_pb2_grpc

console = Console()
err_console = Console(stderr=True)
T = TypeVar("T")

KINDS = {n.removeprefix("DEVICE_KIND_").lower().replace("_", "-"): v for n, v in common_pb2.DeviceKind.items() if v}
STATUSES = {n.removeprefix("DEVICE_STATUS_").lower(): v for n, v in common_pb2.DeviceStatus.items() if v}
ALIAS_KINDS = {n.removeprefix("ALIAS_KIND_").lower().replace("_", "-"): v for n, v in common_pb2.AliasKind.items() if v}
PROTOCOLS = {n.removeprefix("PROTOCOL_").lower().replace("_", "-"): v for n, v in common_pb2.Protocol.items() if v}


def _settings(**flags: Any) -> Settings:
    """Flags given on the command line win over OPENVPP_* variables."""
    try:
        return Settings(**{k: v for k, v in flags.items() if v is not None})
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None


def _run_call(target: str, call: Callable[[grpc.aio.Channel], Awaitable[T]]) -> T:
    ctx = click.get_current_context()
    bundle: Path | None = ctx.params.get("bundle")
    insecure: bool = bool(ctx.params.get("insecure"))

    async def go() -> T:
        async with channel_to(target, bundle, insecure) as channel:
            return await call(channel)

    try:
        return asyncio.run(go())
    except grpc.aio.AioRpcError as exc:
        error = describe(exc)
        err_console.print(f"[red]{error}[/red]")
        for field, why in error.fields:
            err_console.print(f"  {field}: {why}")
        sys.exit(1)


def _print(message: Any) -> None:
    console.print_json(json_format.MessageToJson(message, preserving_proto_field_name=True))


def _connection(f: Callable[..., Any]) -> Callable[..., Any]:
    """--target, --bundle and --insecure, for every command that calls a server."""
    f = click.option("--insecure", is_flag=True, help="Plaintext, for a server run with --insecure.")(f)
    f = click.option(
        "--bundle",
        type=click.Path(file_okay=False, path_type=Path),
        default=Path(".openvpp/operator"),
        show_default=True,
        envvar="OPENVPP_BUNDLE",
        help="Directory with key.pem, cert.pem and ca.pem (from `openvpp init` or `partner onboard`).",
    )(f)
    return click.option(
        "--target",
        default="127.0.0.1:50051",
        show_default=True,
        envvar="OPENVPP_TARGET",
        help="Server address host:port.",
    )(f)


target_option = _connection


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
def serve(**flags: Any) -> None:
    """Run the gRPC server until SIGTERM or SIGINT."""
    from openvpp.server import app, telemetry

    logging.getLogger("openvpp").setLevel(min(logging.getLogger().level, logging.INFO))
    settings = _settings(**flags)
    provider = telemetry.install(settings.telemetry)
    try:
        asyncio.run(app.serve(settings, provider))
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
def init(
    data_dir: Path | None, database_url: str | None, server_names: tuple[str, ...], server_addresses: tuple[str, ...]
) -> None:
    """Create the data directory: a CA, the server certificate and an operator bundle."""
    from openvpp.integration import bootstrap

    settings = _settings(data_dir=data_dir, database_url=database_url)
    try:
        bootstrap.initialise(
            settings.data_dir, list(server_names), list(server_addresses), settings.resolved_database_url()
        )
    except FileExistsError as exc:
        raise click.UsageError(str(exc)) from None
    console.print(f"certificate authority, server certificate and operator bundle written to {settings.data_dir}")


@main.group()
def db() -> None:
    """Database maintenance."""


@db.command("upgrade")
@click.option("--data-dir", type=click.Path(path_type=Path))
@click.option("--database-url")
def db_upgrade(**flags: Any) -> None:
    """Apply all migrations (serve does this itself unless OPENVPP_AUTO_MIGRATE=false)."""
    from openvpp.store import migrate

    migrate.upgrade(_settings(**flags).resolved_database_url())
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


PARTNER_KINDS = {"utility": 2, "device-vendor": 3, "aggregator": 4}


@main.group()
def partner() -> None:
    """Onboard and manage partners (operator bundle required)."""


@partner.command("onboard")
@target_option
@click.option("--kind", required=True, type=click.Choice(sorted(PARTNER_KINDS)))
@click.option("--name", "legal_name", required=True, help="Legal name of the partner.")
@click.option("--namespace", required=True, help="Unique namespace, e.g. solarco (lower-case DNS labels).")
@click.option("--email", default="", help="Contact email.")
@click.option("--days", type=click.IntRange(1, 397), default=None, help="Certificate validity [default: 30].")
@click.option(
    "--out", type=click.Path(file_okay=False, path_type=Path), help="Bundle directory [default: ./<namespace>]."
)
def partner_onboard(
    target: str, bundle: Path, insecure: bool, kind: str, legal_name: str, namespace: str,
    email: str, days: int | None, out: Path | None,
) -> None:  # fmt: skip
    """Onboard a partner and write its key, certificate chain and CA bundle.

    The private key is generated here and never leaves this machine: only a
    CSR is sent.
    """
    from openvpp.integration import bootstrap, ca
    from openvpp.v1 import integration_pb2, integration_pb2_grpc

    key = ca.new_key()
    request = integration_pb2.OnboardPartnerRequest(
        kind=PARTNER_KINDS[kind],  # type: ignore[arg-type]
        legal_name=legal_name,
        namespace=namespace,
        contacts=[integration_pb2.Contact(email=email)] if email else [],
        csr_pem=ca.make_csr(key, namespace).decode(),
        validity_days=days or 0,
    )
    reply = _run_call(target, lambda ch: integration_pb2_grpc.IntegrationServiceStub(ch).OnboardPartner(request))
    destination = bootstrap.Bundle(out or Path(namespace))
    root = reply.chain_pem.encode().split(b"-----END CERTIFICATE-----\n", 1)[1]
    destination.write(ca.private_pem(key), (reply.certificate.certificate_pem + reply.chain_pem).encode(), root)
    console.print(f"onboarded {namespace} ({kind}); bundle written to {destination.directory}")


@main.group()
def device() -> None:
    """Register, find, list and watch devices."""


@device.command("register")
@target_option
@click.option(
    "--key", "key_path", required=True, type=click.Path(exists=True, path_type=Path), help="Device keypair file."
)
@click.option("--label", required=True, help="Device label; the name is <label>.<namespace>.")
@click.option("--namespace", required=True, help="Vendor namespace, e.g. solarco.")
@click.option("--kind", required=True, type=click.Choice(sorted(KINDS)))
@click.option(
    "--alias",
    "aliases",
    multiple=True,
    metavar="KIND=VALUE",
    help=f"Repeatable; KIND is one of {', '.join(sorted(ALIAS_KINDS))}.",
)
@click.option("--protocol", "protocols", multiple=True, type=click.Choice(sorted(PROTOCOLS)))
@click.option("--max-import-w", type=int, default=0)
@click.option("--max-export-w", type=int, default=0)
@click.option("--storage-wh", type=int, default=0)
@click.option("--territory", default="", help="Utility territory.")
@click.option("--postal-code", default="")
@click.option("--grid-node", default="")
@click.option("--model", default="")
@click.option("--serial", default="")
@click.option(
    "--version", "version", type=int, default=1, show_default=True, help="Record version; >1 publishes an update."
)
def device_register(
    target: str, bundle: Path, insecure: bool, key_path: Path, aliases: tuple[str, ...], version: int, **fields: Any
) -> None:
    """Sign a device record with the device key and register (or update) it."""
    keypair = keys.read(key_path)
    parsed = []
    for text in aliases:
        kind, sep, value = text.partition("=")
        if not sep or kind not in ALIAS_KINDS:
            raise click.BadParameter(
                f"{text!r}: expected KIND=VALUE with KIND in {sorted(ALIAS_KINDS)}", param_hint="--alias"
            )
        parsed.append(common_pb2.Alias(kind=ALIAS_KINDS[kind], value=value))
    record = registry_pb2.DeviceRecord(
        public_key=bytes(keypair.pubkey()),
        name=f"{fields['label']}.{fields['namespace']}",
        vendor_namespace=fields["namespace"],
        kind=KINDS[fields["kind"]],
        capabilities=common_pb2.Capabilities(
            max_import_w=fields["max_import_w"],
            max_export_w=fields["max_export_w"],
            storage_wh=fields["storage_wh"],
            protocols=[PROTOCOLS[p] for p in fields["protocols"]],
        ),
        location=common_pb2.Location(
            utility_territory=fields["territory"], postal_code=fields["postal_code"], grid_node=fields["grid_node"]
        ),
        aliases=parsed,
        version=version,
        model=fields["model"],
        serial_number=fields["serial"],
    )
    signed = sign_record(keypair, record)

    async def call(channel: grpc.aio.Channel) -> Any:
        stub = registry_pb2_grpc.RegistryServiceStub(channel)
        if version > 1:
            return await stub.UpdateDevice(registry_pb2.UpdateDeviceRequest(signed_record=signed))
        return await stub.RegisterDevice(registry_pb2.RegisterDeviceRequest(signed_record=signed))

    _print(_run_call(target, call))


@device.command("get")
@target_option
@click.argument("identifier")
def device_get(target: str, bundle: Path, insecure: bool, identifier: str) -> None:
    """Look a device up by der_id, name, LFDI, SFDI, OCPP id, VEN name or meter number."""
    request = registry_pb2.GetDeviceRequest(identifier=common_pb2.DeviceIdentifier(any=identifier))
    _print(_run_call(target, lambda ch: registry_pb2_grpc.RegistryServiceStub(ch).GetDevice(request)))


@device.command("list")
@target_option
@click.option("--vendor", "vendor_namespace", default="")
@click.option("--kind", type=click.Choice(sorted(KINDS)))
@click.option("--status", type=click.Choice(sorted(STATUSES)))
@click.option("--territory", "utility_territory", default="")
@click.option("--page-size", type=click.IntRange(1, 1000), default=100, show_default=True)
@click.option("--page-token", default="")
def device_list(
    target: str, bundle: Path, insecure: bool, kind: str | None, status: str | None, **filters: Any
) -> None:
    """List devices, filtered, one page at a time."""
    request = registry_pb2.ListDevicesRequest(
        kind=KINDS[kind] if kind else 0,  # type: ignore[arg-type]
        status=STATUSES[status] if status else 0,  # type: ignore[arg-type]
        **filters,
    )
    _print(_run_call(target, lambda ch: registry_pb2_grpc.RegistryServiceStub(ch).ListDevices(request)))


@device.command("status")
@target_option
@click.argument("der_id")
@click.argument("status", type=click.Choice(sorted(STATUSES)))
@click.option("--reason", required=True, help="Why; kept in the registry log.")
def device_status(target: str, bundle: Path, insecure: bool, der_id: str, status: str, reason: str) -> None:
    """Suspend, revoke or reactivate a device."""
    request = registry_pb2.SetDeviceStatusRequest(der_id=der_id, status=STATUSES[status], reason=reason)
    _print(_run_call(target, lambda ch: registry_pb2_grpc.RegistryServiceStub(ch).SetDeviceStatus(request)))


@device.command("watch")
@target_option
@click.option("--after", "after_seq", type=int, default=0, show_default=True, help="Log position to resume after.")
@click.option("--follow/--no-follow", default=True, show_default=True, help="Keep streaming new entries.")
def device_watch(target: str, bundle: Path, insecure: bool, after_seq: int, follow: bool) -> None:
    """Stream registry log entries, one JSON line each; resume with --after."""

    async def call(channel: grpc.aio.Channel) -> None:
        stub = registry_pb2_grpc.RegistryServiceStub(channel)
        async for event in stub.WatchRegistry(registry_pb2.WatchRegistryRequest(after_seq=after_seq, follow=follow)):
            if event.HasField("caught_up"):
                err_console.print(f"[dim]caught up at {event.caught_up.head_seq}[/dim]")
                continue
            entry = json_format.MessageToDict(event.entry.entry, preserving_proto_field_name=True)
            entry.pop("signed_record", None)
            click.echo(json.dumps(entry, sort_keys=True))

    with contextlib.suppress(KeyboardInterrupt):
        _run_call(target, call)


@main.command()
@click.option("--devices", type=click.IntRange(1, 200_000), default=1000, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=Path("demo-out"), show_default=True)
def demo(devices: int, seed: int, out: Path) -> None:
    """Run the registry scenario end to end against a real server."""
    from openvpp.demo import run

    sys.exit(asyncio.run(run(devices=devices, seed=seed, out=out, console=console)))
