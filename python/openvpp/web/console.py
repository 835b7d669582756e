"""The staff console's API. A staff session acts as the partner certificate
that issued its login code, and every read is the gRPC API's own:

- `POST /api/staff/rpc/<Service>/<Method>` calls that RPC's servicer with
  the session's identity as the caller, after the authorization table's
  role check, so the answer (or refusal) is exactly what the same
  certificate gets over gRPC. Only the read RPCs the console uses are open
  here; the body is the request in proto3 JSON, the answer the response.
- the views gRPC has no RPC for (programs with enrolment, energy and
  credits over time, DR events with totals, reserves of the caller's
  tokens, the settlement stream as server-sent events) go through the
  domain services with the identity's `Viewer`.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from google.protobuf import json_format

from openvpp import errors
from openvpp.kernel.identity import Identity, Role
from openvpp.kernel.tenancy import Viewer
from openvpp.server.auth import TABLE, acting_as
from openvpp.settlement.servicer import reserve_message, token_message
from openvpp.v1 import billing_pb2, integration_pb2, registry_pb2, routing_pb2, settlement_pb2
from openvpp.web.http import body, cursor, message, money, series_json, staff, stream_events, window
from openvpp.web.prosumer import DOMAINS

routes = web.RouteTableDef()
SERVICERS: web.AppKey[dict[str, Any]] = web.AppKey("servicers", dict)

_MODULES = {
    "RegistryService": registry_pb2,
    "IntegrationService": integration_pb2,
    "RoutingService": routing_pb2,
    "SettlementService": settlement_pb2,
    "BillingService": billing_pb2,
}
# The read RPCs the console calls; writes stay with the CLI and the API.
CONSOLE_RPCS = frozenset(
    {
        "RegistryService/GetDevice",
        "RegistryService/ListDevices",
        "IntegrationService/GetPartner",
        "RoutingService/ListPrograms",
        "RoutingService/GetProgram",
        "RoutingService/Diagnose",
        "SettlementService/GetChainInfo",
        "SettlementService/GetProgramSettlement",
        "SettlementService/ListUseCaseTokens",
        "SettlementService/GetReserve",
        "SettlementService/GetDrEvent",
        "SettlementService/GetSettlement",
        "SettlementService/ListPayouts",
        "SettlementService/CheckLedger",
        "BillingService/GetBillingPlan",
        "BillingService/GetBill",
        "BillingService/ListBills",
    }
)


def _authorized(identity: Identity, service: str, method: str) -> None:
    rule = TABLE[f"/openvpp.v1.{service}/{method}"]
    if identity.role not in rule.roles:
        raise errors.PermissionDenied(f"role {identity.role.value} may not call {method}", "ROLE_NOT_ALLOWED")


async def call(request: web.Request, identity: Identity, service: str, method: str, rpc_request: Any) -> Any:
    """One RPC through its servicer as `identity`, as the interceptor would run it."""
    _authorized(identity, service, method)
    with acting_as(identity):
        return await getattr(request.app[SERVICERS][service], method)(rpc_request, None)


@routes.post("/api/staff/rpc/{service}/{method}")
async def rpc(request: web.Request) -> web.Response:
    identity = await staff(request)
    service, method = request.match_info["service"], request.match_info["method"]
    if f"{service}/{method}" not in CONSOLE_RPCS:
        raise errors.NotFound(f"the console does not call {service}/{method}", "UNKNOWN_METHOD")
    module = _MODULES[service]
    request_type = getattr(module, f"{method}Request")
    try:
        parsed = json_format.ParseDict(await body(request), request_type())
    except json_format.ParseError as exc:
        raise errors.InvalidArgument(f"the request is not a {method}Request: {exc}", "INVALID_REQUEST") from None
    return web.json_response(message(await call(request, identity, service, method, parsed)))


@routes.get("/api/staff/me")
async def whoami(request: web.Request) -> web.Response:
    identity = await staff(request)
    return web.json_response({"role": identity.role.value, "namespace": identity.namespace})


@routes.get("/api/staff/programs")
async def programs(request: web.Request) -> web.Response:
    """The caller's programs with enrolment by status and, where settlement
    is configured and the caller may see it, its pending and paid totals."""
    identity = await staff(request)
    d = request.app[DOMAINS]
    out = []
    for summary in await d.insights.programs(Viewer.of(identity)):
        settlement: dict[str, Any] | None = None
        if identity.role in (Role.OPERATOR, Role.UTILITY):
            try:
                answer = await call(
                    request,
                    identity,
                    "SettlementService",
                    "GetProgramSettlement",
                    settlement_pb2.GetProgramSettlementRequest(program_id=summary.program_id),
                )
                settlement = message(answer.settlement)
            except errors.NotFound:
                settlement = None
        out.append(
            {
                "programId": summary.program_id,
                "utility": summary.utility,
                "name": summary.name,
                "kind": routing_pb2.ProgramKind.Name(summary.kind),  # type: ignore[arg-type]
                "enrolled": {
                    routing_pb2.EnrollmentStatus.Name(s): n  # type: ignore[arg-type]
                    for s, n in sorted(summary.enrolled.items())
                },
                "settlement": settlement,
            }
        )
    return web.json_response({"programs": out})


@routes.get("/api/staff/programs/{program_id:.+}/series")
async def program_series(request: web.Request) -> web.Response:
    identity = await staff(request)
    start, end = window(request)
    series = await request.app[DOMAINS].insights.program_series(
        Viewer.of(identity), request.match_info["program_id"], start, end
    )
    return web.json_response({"start": start, "end": end, **series_json(series)})


@routes.get("/api/staff/dr-events")
async def dr_events(request: web.Request) -> web.Response:
    identity = await staff(request)
    rows = await request.app[DOMAINS].insights.dr_events(Viewer.of(identity))
    return web.json_response(
        {
            "events": [
                {
                    "eventId": r.event_id,
                    "programId": r.program_id,
                    "start": r.start_s,
                    "end": r.end_s,
                    "incentiveMicroPerKwh": money(r.incentive),
                    "devicesSettled": r.devices or 0,
                    "baselineWh": r.baseline_wh or 0,
                    "actualWh": r.actual_wh or 0,
                    "performanceWh": r.performance_wh or 0,
                    "credited": money(r.credited or 0),
                }
                for r in rows
            ]
        }
    )


@routes.get("/api/staff/reserves")
async def reserves(request: web.Request) -> web.Response:
    """The caller's use-case tokens and each reserve's coverage, read from
    the chain now (GetReserve)."""
    identity = await staff(request)
    if identity.role not in (Role.OPERATOR, Role.UTILITY):
        return web.json_response({"reserves": []})
    tokens = await request.app[DOMAINS].settlement.tokens.list(
        "" if identity.role is Role.OPERATOR else identity.namespace
    )
    out = []
    for token in tokens:
        reserve = await request.app[DOMAINS].settlement.tokens.reserve(token.mint)
        out.append({"token": message(token_message(token)), "reserve": message(reserve_message(reserve))})
    return web.json_response({"reserves": out})


@routes.get("/api/staff/events")
async def events(request: web.Request) -> web.StreamResponse:
    """The settlement stream (StreamSettlements) as server-sent events, from
    `Last-Event-ID` (or `after`), by default the newest 50."""
    identity = await staff(request)
    _authorized(identity, "SettlementService", "StreamSettlements")
    log = request.app[DOMAINS].settlement.event_log
    viewer = None if identity.role is Role.OPERATOR else identity.namespace
    after = cursor(request.headers.get("Last-Event-ID") or request.query.get("after", ""))
    if after is None:
        after = max(0, await log.head() - 50)
    return await stream_events(request, log.follow(viewer, after), lambda event: True)
