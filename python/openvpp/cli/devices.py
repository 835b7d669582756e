"""`openvpp device …`: register, find, list, watch devices in the registry."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import click
import grpc
from google.protobuf import json_format

from openvpp import keys
from openvpp.cli.common import err_console, print_message, run_call, target_option
from openvpp.registry.signing import sign_record
from openvpp.v1 import common_pb2, registry_pb2, registry_pb2_grpc

KINDS = {n.removeprefix("DEVICE_KIND_").lower().replace("_", "-"): v for n, v in common_pb2.DeviceKind.items() if v}
STATUSES = {n.removeprefix("DEVICE_STATUS_").lower(): v for n, v in common_pb2.DeviceStatus.items() if v}
ALIAS_KINDS = {n.removeprefix("ALIAS_KIND_").lower().replace("_", "-"): v for n, v in common_pb2.AliasKind.items() if v}
PROTOCOLS = {n.removeprefix("PROTOCOL_").lower().replace("_", "-"): v for n, v in common_pb2.Protocol.items() if v}


@click.group()
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

    print_message(run_call(target, call))


@device.command("get")
@target_option
@click.argument("identifier")
def device_get(target: str, bundle: Path, insecure: bool, identifier: str) -> None:
    """Look a device up by der_id, name, LFDI, SFDI, OCPP id, VEN name or meter number."""
    request = registry_pb2.GetDeviceRequest(identifier=common_pb2.DeviceIdentifier(any=identifier))
    print_message(run_call(target, lambda ch: registry_pb2_grpc.RegistryServiceStub(ch).GetDevice(request)))


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
    print_message(run_call(target, lambda ch: registry_pb2_grpc.RegistryServiceStub(ch).ListDevices(request)))


@device.command("status")
@target_option
@click.argument("der_id")
@click.argument("status", type=click.Choice(sorted(STATUSES)))
@click.option("--reason", required=True, help="Why; kept in the registry log.")
def device_status(target: str, bundle: Path, insecure: bool, der_id: str, status: str, reason: str) -> None:
    """Suspend, revoke or reactivate a device."""
    request = registry_pb2.SetDeviceStatusRequest(der_id=der_id, status=STATUSES[status], reason=reason)
    print_message(run_call(target, lambda ch: registry_pb2_grpc.RegistryServiceStub(ch).SetDeviceStatus(request)))


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
        run_call(target, call)
