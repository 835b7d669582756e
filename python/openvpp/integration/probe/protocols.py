"""The protocol step of a probe: does the endpoint speak what its owner claims?

Each check connects to the already vetted address (never re-resolving the
name), sends the declared TLS server name, and returns the capabilities it
found or raises ProbeFailure with a stable reason.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import httpx
import pydantic
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from ocpp import v16, v201
from ocpp.charge_point import ChargePoint
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import InvalidHandshake, InvalidStatus, WebSocketException

from openvpp.integration.probe.model import ProbeFailure, Target
from openvpp.integration.probe.openadr import Program
from openvpp.integration.probe.transport import client_context
from openvpp.v1 import integration_pb2 as pb

# The identity the probe uses when it plays a charging station.
PROBE_STATION_ID = "openvpp-probe"
MAX_LISTED = 20

Check = Callable[[Target, str, float], Awaitable[list[str]]]


def _authority(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


async def openvpp_grpc(target: Target, address: str, seconds: float) -> list[str]:
    credentials = grpc.ssl_channel_credentials(root_certificates=target.trust_anchors_pem.encode() or None)
    options = [("grpc.ssl_target_name_override", target.server_name), ("grpc.default_authority", target.server_name)]
    async with grpc.aio.secure_channel(_authority(address, target.port), credentials, options=options) as channel:
        health_stub: Any = health_pb2_grpc.HealthStub(channel)
        try:
            health = await health_stub.Check(health_pb2.HealthCheckRequest(), timeout=seconds)
        except grpc.aio.AioRpcError as exc:
            raise ProbeFailure("GRPC_HEALTH_FAILED", f"health check: {exc.code().name} {exc.details()}") from None
        if health.status != health_pb2.HealthCheckResponse.SERVING:
            status = health_pb2.HealthCheckResponse.ServingStatus.Name(health.status)
            raise ProbeFailure("GRPC_NOT_SERVING", f"health check answered {status}")
        stub: Any = reflection_pb2_grpc.ServerReflectionStub(channel)  # type: ignore[arg-type]
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        try:
            async for answer in stub.ServerReflectionInfo(iter([request]), timeout=seconds):
                services = sorted(s.name for s in answer.list_services_response.service)
                break
            else:
                services = []
        except grpc.aio.AioRpcError as exc:
            raise ProbeFailure("GRPC_REFLECTION_FAILED", f"reflection: {exc.code().name} {exc.details()}") from None
    if not services:
        raise ProbeFailure("GRPC_REFLECTION_FAILED", "reflection listed no services")
    return ["grpc.health:SERVING", *(f"grpc.service:{name}" for name in services)]


def _boot_for(subprotocol: str) -> tuple[type[ChargePoint], object]:
    if subprotocol == "ocpp2.0.1":
        return v201.ChargePoint, v201.call.BootNotification(
            charging_station={"model": "OpenVPP probe", "vendor_name": "OpenVPP"}, reason="PowerUp"
        )
    return v16.ChargePoint, v16.call.BootNotification(charge_point_model="OpenVPP probe", charge_point_vendor="OpenVPP")


async def ocpp(target: Target, address: str, seconds: float) -> list[str]:
    """Plays a charging station: subprotocol negotiation, then BootNotification.
    Any schema-valid answer (Accepted, Pending or Rejected for our unknown
    station) proves the endpoint is a working CSMS."""
    subprotocol = "ocpp2.0.1" if target.protocol == pb.ENDPOINT_PROTOCOL_OCPP_201 else "ocpp1.6"
    url = f"{target.url.rstrip('/')}/{PROBE_STATION_ID}"
    station_class, boot = _boot_for(subprotocol)
    try:
        async with ws_connect(
            url,
            subprotocols=[subprotocol],  # type: ignore[list-item]
            ssl=client_context(target),
            server_hostname=target.server_name,
            host=address,
            port=target.port,
            proxy=None,
            open_timeout=seconds,
        ) as socket:
            if socket.subprotocol != subprotocol:
                raise ProbeFailure("OCPP_SUBPROTOCOL_REFUSED", f"the server did not accept subprotocol {subprotocol}")
            station = station_class(PROBE_STATION_ID, socket, response_timeout=seconds)
            listener = asyncio.create_task(station.start())
            try:
                answer = await station.call(boot, suppress=False)
            except TimeoutError:
                raise ProbeFailure("OCPP_BOOT_FAILED", "no BootNotification answer in time") from None
            except Exception as exc:  # the library raises its own error types for CallError and schema errors
                raise ProbeFailure("OCPP_BOOT_FAILED", f"BootNotification: {type(exc).__name__} {exc}") from None
            finally:
                listener.cancel()
    except InvalidStatus as exc:
        said = exc.response.body.decode(errors="replace").strip()[:200] if exc.response.body else ""
        raise ProbeFailure("OCPP_HANDSHAKE_FAILED", f"HTTP {exc.response.status_code} to the upgrade: {said}") from None
    except InvalidHandshake as exc:
        raise ProbeFailure("OCPP_SUBPROTOCOL_REFUSED", str(exc)) from None
    except (WebSocketException, OSError) as exc:
        raise ProbeFailure("OCPP_HANDSHAKE_FAILED", f"{type(exc).__name__}: {exc}") from None
    return [f"ocpp.subprotocol:{subprotocol}", f"ocpp.boot:{answer.status}", f"ocpp.heartbeat_s:{answer.interval}"]


def _http_client(target: Target, seconds: float) -> httpx.AsyncClient:
    return httpx.AsyncClient(verify=client_context(target), timeout=seconds, trust_env=False, follow_redirects=False)


async def _get(target: Target, address: str, path: str, seconds: float) -> httpx.Response:
    """GET over the vetted address with the declared Host and SNI."""
    url = httpx.URL(target.url.rstrip("/") + path)
    host_header = url.netloc.decode()
    try:
        async with _http_client(target, seconds) as client:
            return await client.get(
                url.copy_with(host=address),
                headers={"Host": host_header, "Accept": "application/json"},
                extensions={"sni_hostname": target.server_name},
            )
    except httpx.HTTPError as exc:
        raise ProbeFailure("HTTP_REQUEST_FAILED", f"GET {path}: {type(exc).__name__} {exc}") from None


async def openadr3(target: Target, address: str, seconds: float) -> list[str]:
    response = await _get(target, address, "/programs", seconds)
    if response.status_code in (401, 403):
        raise ProbeFailure("OPENADR_AUTH_REQUIRED", f"GET /programs answered {response.status_code}")
    if response.status_code != 200:
        raise ProbeFailure("HTTP_STATUS", f"GET /programs answered {response.status_code}")
    try:
        programs = pydantic.TypeAdapter(list[Program]).validate_json(response.content)
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ProbeFailure("OPENADR_SCHEMA", f"GET /programs: {where}: {first['msg']}") from None
    names = [p.program_name for p in programs[:MAX_LISTED]]
    return [f"openadr3.programs:{len(programs)}", *(f"openadr3.program:{n}" for n in names)]


async def https(target: Target, address: str, seconds: float) -> list[str]:
    path = target.health_path or "/"
    response = await _get(target, address, path, seconds)
    if not 200 <= response.status_code < 300:
        raise ProbeFailure("HTTP_STATUS", f"GET {path} answered {response.status_code}")
    return [f"https.status:{response.status_code}"]


CHECKS: dict[int, Check] = {
    pb.ENDPOINT_PROTOCOL_OPENVPP_GRPC: openvpp_grpc,
    pb.ENDPOINT_PROTOCOL_OCPP_201: ocpp,
    pb.ENDPOINT_PROTOCOL_OCPP_16: ocpp,
    pb.ENDPOINT_PROTOCOL_OPENADR_3: openadr3,
    pb.ENDPOINT_PROTOCOL_HTTPS: https,
}
STEP_NAMES: dict[int, str] = {
    pb.ENDPOINT_PROTOCOL_OPENVPP_GRPC: "grpc",
    pb.ENDPOINT_PROTOCOL_OCPP_201: "ocpp",
    pb.ENDPOINT_PROTOCOL_OCPP_16: "ocpp",
    pb.ENDPOINT_PROTOCOL_OPENADR_3: "openadr3",
    pb.ENDPOINT_PROTOCOL_HTTPS: "https",
}
