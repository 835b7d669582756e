"""`openvpp program …` and `openvpp route …`: programs, enrollment, signed resolution, diagnosis."""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import Any

import click
import grpc
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from google.protobuf import json_format
from google.protobuf.timestamp_pb2 import Timestamp

from openvpp import keys
from openvpp.cli.common import console, err_console, print_message, run_call, target_option
from openvpp.routing.consent import sign as sign_consent
from openvpp.v1 import common_pb2, routing_pb2_grpc
from openvpp.v1 import routing_pb2 as pb

KINDS = {n.removeprefix("PROGRAM_KIND_").lower().replace("_", "-"): v for n, v in pb.ProgramKind.items() if v}
SCOPES = {n.removeprefix("CONSENT_SCOPE_").lower(): v for n, v in pb.ConsentScope.items() if v}
PROTOCOLS = {n.removeprefix("PROTOCOL_").lower().replace("_", "-"): v for n, v in common_pb2.Protocol.items() if v}


def _stub(channel: grpc.aio.Channel) -> routing_pb2_grpc.RoutingServiceAsyncStub:
    return routing_pb2_grpc.RoutingServiceStub(channel)


@click.group()
def program() -> None:
    """Utility programs and the endpoints that serve them."""


@program.command("create")
@target_option
@click.option("--code", required=True, help="Lower-case label; the program id is <utility>/<code>.")
@click.option("--name", required=True)
@click.option("--kind", required=True, type=click.Choice(sorted(KINDS)))
@click.option("--ttl", "route_ttl_seconds", type=click.IntRange(10, 86_400), default=300, show_default=True)
def program_create(
    target: str, bundle: Path, insecure: bool, code: str, name: str, kind: str, route_ttl_seconds: int
) -> None:
    """Create a program of the caller's utility."""
    request = pb.CreateProgramRequest(code=code, name=name, kind=KINDS[kind], route_ttl_seconds=route_ttl_seconds)
    print_message(run_call(target, lambda ch: _stub(ch).CreateProgram(request)))


@program.command("attach")
@target_option
@click.argument("program_id")
@click.argument("endpoint_id")
@click.option("--priority", type=click.IntRange(0, 65535), default=0, show_default=True)
@click.option("--weight", type=click.IntRange(1, 65535), default=1, show_default=True)
def program_attach(
    target: str, bundle: Path, insecure: bool, program_id: str, endpoint_id: str, priority: int, weight: int
) -> None:
    """Route the program's devices to a validated endpoint."""
    request = pb.AttachEndpointRequest(program_id=program_id, endpoint_id=endpoint_id, priority=priority, weight=weight)
    print_message(run_call(target, lambda ch: _stub(ch).AttachEndpoint(request)))


@click.group()
def route() -> None:
    """Enroll devices, resolve their signed routes, diagnose, watch."""


@route.command("enroll")
@target_option
@click.option(
    "--key",
    "key_path",
    required=True,
    type=click.Path(exists=True, path_type=Path),
    help="Device keypair: signs the consent.",
)
@click.option("--program", "program_id", required=True)
@click.option("--account", required=True, help="The customer's account reference at the utility.")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    type=click.Choice(sorted(SCOPES)),
    default=("telemetry", "settlement"),
    show_default=True,
)
@click.option("--days", type=click.IntRange(1, 400), default=365, show_default=True, help="Consent validity.")
def route_enroll(
    target: str,
    bundle: Path,
    insecure: bool,
    key_path: Path,
    program_id: str,
    account: str,
    scopes: tuple[str, ...],
    days: int,
) -> None:
    """Enroll a device with its owner's consent, signed here by the device key."""
    device = keys.read(key_path)
    expires = Timestamp()
    expires.FromMicroseconds(time.time_ns() // 1000 + days * 86_400_000_000)
    payload = pb.ConsentPayload(
        der_id=str(device.pubkey()),
        program_id=program_id,
        account_ref=account,
        scopes=[SCOPES[s] for s in scopes],
        expires_at=expires,
    )
    request = pb.EnrollDeviceRequest(
        program_id=program_id,
        device=common_pb2.DeviceIdentifier(der_id=str(device.pubkey())),
        account_ref=account,
        consent=sign_consent(device, payload),
    )
    print_message(run_call(target, lambda ch: _stub(ch).EnrollDevice(request)))


@route.command("resolve")
@target_option
@click.argument("identifier")
@click.option("--program", "program_id", default="")
@click.option("--protocol", type=click.Choice(sorted(PROTOCOLS)))
def route_resolve(
    target: str, bundle: Path, insecure: bool, identifier: str, program_id: str, protocol: str | None
) -> None:
    """Resolve any identifier; the answer's signature is checked against the published routing key."""

    async def call(channel: grpc.aio.Channel) -> tuple[Any, Any]:
        stub = _stub(channel)
        key = await stub.GetRoutingKey(pb.GetRoutingKeyRequest())
        reply = await stub.Resolve(
            pb.ResolveRequest(
                device=common_pb2.DeviceIdentifier(any=identifier),
                program_id=program_id,
                protocol=PROTOCOLS[protocol] if protocol else common_pb2.PROTOCOL_UNSPECIFIED,
            )
        )
        return key, reply.routes

    key, signed = run_call(target, call)
    try:
        Ed25519PublicKey.from_public_bytes(key.public_key).verify(
            signed.signature, key.signing_domain.encode() + signed.route_set
        )
    except InvalidSignature:
        err_console.print("[red]the answer's signature does not verify[/red]")
        raise SystemExit(3) from None
    err_console.print(f"[green]signature verified[/green] with routing key {key.key_id}")
    print_message(pb.RouteSet.FromString(signed.route_set))


@route.command("diagnose")
@target_option
@click.argument("identifier")
@click.option("--program", "program_id", default="")
def route_diagnose(target: str, bundle: Path, insecure: bool, identifier: str, program_id: str) -> None:
    """Why a device is or is not routable; exits 2 when it is not."""
    request = pb.DiagnoseRequest(device=common_pb2.DeviceIdentifier(any=identifier), program_id=program_id)
    found = run_call(target, lambda ch: _stub(ch).Diagnose(request))
    marks = {pb.CHECK_STATE_PASS: "[green]✓[/green]", pb.CHECK_STATE_FAIL: "[red]✗[/red]", pb.CHECK_STATE_SKIPPED: "·"}
    for check in found.checks:
        console.print(
            f"{marks[check.state]} {check.name:<27} {check.detail}"
            + (f"\n    → {check.remedy}" if check.remedy else "")
        )
    if not found.routable:
        raise SystemExit(2)


@route.command("watch")
@target_option
@click.option("--after", "after_seq", type=int, default=0, show_default=True)
@click.option("--follow/--no-follow", default=True, show_default=True)
def route_watch(target: str, bundle: Path, insecure: bool, after_seq: int, follow: bool) -> None:
    """Stream route changes for the caller's devices, one JSON line each; resume with --after."""

    async def call(channel: grpc.aio.Channel) -> None:
        async for item in _stub(channel).WatchRoutes(pb.WatchRoutesRequest(after_seq=after_seq, follow=follow)):
            if item.HasField("caught_up"):
                err_console.print(f"[dim]caught up at {item.caught_up.head_seq}[/dim]")
                continue
            click.echo(
                json.dumps(json_format.MessageToDict(item.change, preserving_proto_field_name=True), sort_keys=True)
            )

    with contextlib.suppress(KeyboardInterrupt):
        run_call(target, call)
