"""`openvpp endpoint …`: declare a partner endpoint, see its probe, probe it again."""

from __future__ import annotations

from pathlib import Path

import click
import grpc

from openvpp.cli.common import console, err_console, print_message, run_call, target_option
from openvpp.v1 import integration_pb2 as pb
from openvpp.v1 import integration_pb2_grpc

PROTOCOLS = {
    "grpc": pb.ENDPOINT_PROTOCOL_OPENVPP_GRPC,
    "ocpp2.0.1": pb.ENDPOINT_PROTOCOL_OCPP_201,
    "ocpp1.6": pb.ENDPOINT_PROTOCOL_OCPP_16,
    "openadr3": pb.ENDPOINT_PROTOCOL_OPENADR_3,
    "https": pb.ENDPOINT_PROTOCOL_HTTPS,
}
AUTH_MODES = {
    n.removeprefix("ENDPOINT_AUTH_MODE_").lower().replace("_", "-"): v for n, v in pb.EndpointAuthMode.items() if v
}
STATES = {"validated": pb.ENDPOINT_STATE_VALIDATED, "failed": pb.ENDPOINT_STATE_FAILED}


def _stub(channel: grpc.aio.Channel) -> integration_pb2_grpc.IntegrationServiceAsyncStub:
    return integration_pb2_grpc.IntegrationServiceStub(channel)


def _report(endpoint: pb.Endpoint) -> None:
    """The probe as a checklist, then the whole record as JSON."""
    probe = endpoint.last_probe
    for step in probe.steps:
        mark = "[green]ok[/green]" if step.passed else "[red]FAILED[/red]"
        err_console.print(f"  {step.name:<9} {mark} {step.detail} ({step.duration_ms} ms)")
    verdict = "[green]validated[/green]" if probe.passed else f"[red]failed: {probe.failure_reason}[/red]"
    err_console.print(f"{endpoint.endpoint_id}: {verdict}")
    print_message(endpoint)


@click.group()
def endpoint() -> None:
    """Register partner endpoints; each is probed and routable only while its probe passes."""


@endpoint.command("register")
@target_option
@click.option("--name", required=True, help="Lower-case label, unique in the namespace.")
@click.option("--url", required=True, help="https:// (gRPC, OpenADR 3, HTTPS) or wss:// (OCPP).")
@click.option("--protocol", required=True, type=click.Choice(sorted(PROTOCOLS)))
@click.option("--program", "programs", multiple=True, help="Program code served; repeatable.")
@click.option("--namespace", default="", help="Owner [default: the caller's own; operator only otherwise].")
@click.option("--server-name", "tls_server_name", default="", help="TLS server name [default: the URL host].")
@click.option("--auth-mode", type=click.Choice(sorted(AUTH_MODES)), default="server-tls", show_default=True)
@click.option("--health-path", default="", help="HTTPS only: path that must answer 2xx [default: /].")
@click.option(
    "--trust-anchors",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="PEM CA certificates the endpoint chains to [default: system trust store].",
)
@click.option("--pin", "pins", multiple=True, help="Expected SPKI pin sha256/<base64>; repeatable.")
def endpoint_register(
    target: str,
    bundle: Path,
    insecure: bool,
    protocol: str,
    auth_mode: str,
    trust_anchors: Path | None,
    pins: tuple[str, ...],
    programs: tuple[str, ...],
    **fields: str,
) -> None:
    """Declare an endpoint; it is probed at once and the result printed."""
    request = pb.RegisterEndpointRequest(
        protocol=PROTOCOLS[protocol],
        auth_mode=AUTH_MODES[auth_mode],
        trust_anchors_pem=trust_anchors.read_text() if trust_anchors else "",
        expected_spki_pins=pins,
        programs=programs,
        **fields,
    )
    _report(run_call(target, lambda ch: _stub(ch).RegisterEndpoint(request)).endpoint)


@endpoint.command("validate")
@target_option
@click.argument("endpoint_id")
def endpoint_validate(target: str, bundle: Path, insecure: bool, endpoint_id: str) -> None:
    """Probe an endpoint again and store the result."""
    request = pb.ValidateEndpointRequest(endpoint_id=endpoint_id)
    reply = run_call(target, lambda ch: _stub(ch).ValidateEndpoint(request))
    _report(reply.endpoint)
    if reply.endpoint.state != pb.ENDPOINT_STATE_VALIDATED:
        raise SystemExit(2)


@endpoint.command("get")
@target_option
@click.argument("endpoint_id")
def endpoint_get(target: str, bundle: Path, insecure: bool, endpoint_id: str) -> None:
    """An endpoint with its last probe."""
    request = pb.GetEndpointRequest(endpoint_id=endpoint_id)
    _report(run_call(target, lambda ch: _stub(ch).GetEndpoint(request)).endpoint)


@endpoint.command("list")
@target_option
@click.option("--namespace", default="")
@click.option("--program", default="")
@click.option("--state", type=click.Choice(sorted(STATES)))
@click.option("--page-size", type=click.IntRange(1, 1000), default=100, show_default=True)
@click.option("--page-token", default="")
def endpoint_list(target: str, bundle: Path, insecure: bool, state: str | None, **filters: str | int) -> None:
    """List endpoints (the caller's own; every partner's for the operator)."""
    request = pb.ListEndpointsRequest(state=STATES[state] if state else 0, **filters)  # type: ignore[arg-type]
    print_message(run_call(target, lambda ch: _stub(ch).ListEndpoints(request)))


@endpoint.command("remove")
@target_option
@click.argument("endpoint_id")
def endpoint_remove(target: str, bundle: Path, insecure: bool, endpoint_id: str) -> None:
    """Remove an endpoint; it disappears from every route."""
    request = pb.RemoveEndpointRequest(endpoint_id=endpoint_id)
    run_call(target, lambda ch: _stub(ch).RemoveEndpoint(request))
    console.print(f"removed {endpoint_id}")
