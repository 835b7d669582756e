"""The web API on the gRPC API's tenant rules, per endpoint.

Two tenants (each a utility with NEM and DR programs, tokens, a billing
plan, a vendor with paid devices) and an aggregator. Every prosumer
endpoint is read by four wallets and must hold nothing of any other
wallet; every console RPC is called through the web by every partner and
must answer exactly what the same certificate gets over gRPC; every
console view made only for the web holds nothing of another tenant."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import json_format

from openvpp.client.errors import describe
from openvpp.integration import ca
from openvpp.v1 import (
    billing_pb2,
    common_pb2,
    integration_pb2,
    registry_pb2,
    routing_pb2,
    settlement_pb2,
    settlement_pb2_grpc,
)
from openvpp.web.console import CONSOLE_RPCS
from tests.integration.mtls import Fabric
from tests.integration.tenancy_world import Tenant, build_tenant
from tests.web.world import Client, client, web_app

PROSUMER_VIEWS = (
    "/api/prosumer/overview",
    "/api/prosumer/energy?hours=48",
    "/api/prosumer/balances",
    "/api/prosumer/payouts",
    "/api/prosumer/bills",
)
STAFF_VIEWS = ("/api/staff/programs", "/api/staff/dr-events", "/api/staff/reserves")


def _markers(t: Tenant) -> set[str]:
    return {t.nem_mint, t.dr_mint, *(str(d.pubkey()) for d in (*t.devices, t.spare)), f"{t.utility}/"}


def _requests(t: Tenant) -> dict[str, Any]:
    der = common_pb2.DeviceIdentifier(der_id=t.der_id)
    return {
        "RegistryService/GetDevice": registry_pb2.GetDeviceRequest(identifier=der),
        "RegistryService/ListDevices": registry_pb2.ListDevicesRequest(vendor_namespace=t.vendor),
        "IntegrationService/GetPartner": integration_pb2.GetPartnerRequest(namespace=t.utility),
        "RoutingService/ListPrograms": routing_pb2.ListProgramsRequest(utility_namespace=t.utility),
        "RoutingService/GetProgram": routing_pb2.GetProgramRequest(program_id=t.nem),
        "RoutingService/Diagnose": routing_pb2.DiagnoseRequest(device=der, program_id=t.nem),
        "SettlementService/GetChainInfo": settlement_pb2.GetChainInfoRequest(),
        "SettlementService/GetProgramSettlement": settlement_pb2.GetProgramSettlementRequest(program_id=t.nem),
        "SettlementService/ListUseCaseTokens": settlement_pb2.ListUseCaseTokensRequest(utility_id=t.utility),
        "SettlementService/GetReserve": settlement_pb2.GetReserveRequest(mint=t.nem_mint),
        "SettlementService/GetDrEvent": settlement_pb2.GetDrEventRequest(event_id=t.dr_event_id),
        "SettlementService/GetSettlement": settlement_pb2.GetSettlementRequest(settlement_id=t.settlement_id),
        "SettlementService/ListPayouts": settlement_pb2.ListPayoutsRequest(mint=t.nem_mint),
        "SettlementService/CheckLedger": settlement_pb2.CheckLedgerRequest(),
        "BillingService/GetBillingPlan": billing_pb2.GetBillingPlanRequest(program_id=t.nem),
        "BillingService/GetBill": billing_pb2.GetBillRequest(program_id=t.nem, account_ref="ACCT-0"),
        "BillingService/ListBills": billing_pb2.ListBillsRequest(program_id=t.nem),
    }


_VOLATILE = {"slot", "blockHeight", "chainSlot", "chainSlotFrom"}


def _stable(value: Any) -> Any:
    """An answer without the fields that move between two reads (chain slots)."""
    if isinstance(value, dict):
        return {k: _stable(v) for k, v in value.items() if k not in _VOLATILE}
    if isinstance(value, (list, tuple)):
        return [_stable(v) for v in value]
    return value


async def _grpc(channel: grpc.aio.Channel, path: str, request: Any) -> tuple[str, str, Any]:
    service, method = path.split("/")
    response_type = type(request).__name__.removesuffix("Request") + "Response"
    module = __import__(type(request).__module__, fromlist=["x"])
    call: Any = channel.unary_unary(
        f"/openvpp.v1.{service}/{method}",
        request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=getattr(module, response_type).FromString,
    )
    try:
        answer = await call(request, timeout=30)
    except grpc.aio.AioRpcError as exc:
        return exc.code().name, describe(exc).reason, None
    return "OK", "", json_format.MessageToDict(answer, always_print_fields_with_no_presence=True)


async def _web(c: Client, path: str, request: Any) -> tuple[str, str, Any]:
    status, answer = await c.call("POST", f"/api/staff/rpc/{path}", json_format.MessageToDict(request))
    if status != 200:
        return answer["error"]["code"], answer["error"]["reason"], None
    return "OK", "", answer


async def _stream(c: Client, path: str, seconds: float = 1.0) -> list[dict[str, Any]]:
    """The events a server-sent stream delivers within `seconds`."""
    events: list[dict[str, Any]] = []
    async with c.http.get(c.base + path) as response:
        assert response.status == 200, await response.text()
        assert response.headers["Content-Type"].startswith("text/event-stream")

        async def read() -> None:
            async for line in response.content:
                if line.startswith(b"data: "):
                    events.append(json.loads(line[6:]))

        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(read(), seconds)
    return events


@pytest.mark.timeout(600)
async def test_every_web_endpoint_keeps_to_the_callers_tenant(fabric: Fabric) -> None:
    tenants = [await build_tenant(fabric, "pge", "solarco"), await build_tenant(fabric, "atlantic", "voltbox")]
    aggregator = await fabric.onboard(ca.Role.AGGREGATOR, "gridagg")
    everyone = set().union(*(_markers(t) for t in tenants))
    checked = 0
    async with web_app(fabric) as site:
        # -- prosumers: only their own wallet, whatever they ask for ---------
        for t in tenants:
            for device in t.devices:
                own = str(device.pubkey())
                foreign = everyone - {own} - _markers(t) | (set().union(*(_markers(o) for o in tenants if o is not t)))
                foreign -= {own}
                async with client(fabric, site) as c:
                    await c.sign_in_wallet(device)
                    for view in PROSUMER_VIEWS:
                        for path in (view, f"{view}{'&' if '?' in view else '?'}wallet={_other(tenants, own)}"):
                            text = json.dumps(await c.get(path))
                            checked += 1
                            leaked = [m for m in foreign if m in text and m != f"{t.utility}/"]
                            assert not leaked, f"{path} as {own} shows {leaked}"
                    overview = await c.get("/api/prosumer/overview")
                    assert [d["derId"] for d in overview["devices"]] == [own]
                    assert {b["mint"] for b in (await c.get("/api/prosumer/balances"))["balances"]} <= {
                        t.nem_mint,
                        t.dr_mint,
                    }
                    payouts = (await c.get("/api/prosumer/payouts"))["payouts"]
                    assert payouts
                    assert {p["wallet"] for p in payouts} == {own}
                    for event in await _stream(c, "/api/prosumer/events?after=0"):
                        checked += 1
                        assert own in json.dumps(event), event
                    # Another wallet's redemption does not exist for this one.
                    other = next(o for o in tenants for d in o.devices if str(d.pubkey()) != own and o.redemption_id)
                    if other.der_id != own:
                        status, answer = await c.call(
                            "POST", f"/api/prosumer/redemptions/{other.redemption_id}/submit", {"transaction": "AA=="}
                        )
                        assert status == 404, answer
                    # A redemption is always the session's own wallet's.
                    prepared = await c.post(
                        "/api/prosumer/redemptions", {"mint": t.nem_mint, "amount": "1", "holder": _other(tenants, own)}
                    )
                    async with fabric.channel(t.utility_bundle) as channel:
                        held = await settlement_pb2_grpc.SettlementServiceStub(channel).GetRedemption(
                            settlement_pb2.GetRedemptionRequest(redemption_id=prepared["redemptionId"])
                        )
                    assert held.redemption.holder == own
        # -- staff: the web console answers what gRPC answers ---------------
        callers: list[tuple[str, Path, Tenant | None]] = [("operator", fabric.data_dir / "operator", None)]
        for t in tenants:
            callers += [(t.utility, t.utility_bundle, t), (t.vendor, t.vendor_bundle, t)]
        callers.append(("gridagg", aggregator, None))
        wrong: list[str] = []
        for label, bundle, home in callers:
            async with client(fabric, site) as c, fabric.channel(bundle) as channel:
                await c.sign_in_staff(fabric, bundle)
                for target in tenants:
                    requests = _requests(target)
                    assert set(requests) == CONSOLE_RPCS
                    for path, request in requests.items():
                        over_grpc = await _grpc(channel, path, request)
                        over_web = await _web(c, path, request)
                        checked += 1
                        if _stable(over_web) != _stable(over_grpc):
                            wrong.append(f"{path} by {label} on {target.utility}: web {over_web} grpc {over_grpc}")
                foreign = everyone - (_markers(home) if home else set()) if label != "operator" else set()
                for view in STAFF_VIEWS:
                    text = json.dumps(await c.get(view))
                    checked += 1
                    leaked = [m for m in foreign if m in text]
                    if leaked:
                        wrong.append(f"{view} by {label} shows {leaked}")
                for t in tenants:
                    status, answer = await c.call("GET", f"/api/staff/programs/{t.nem}/series?hours=48")
                    checked += 1
                    owner = label in ("operator", t.utility)
                    expected = 200 if owner else 403
                    if status != expected:
                        wrong.append(f"series of {t.nem} by {label}: {status} {answer}")
                if label in ("operator", "pge", "atlantic"):
                    for event in await _stream(c, "/api/staff/events?after=0"):
                        checked += 1
                        leaked = [m for m in foreign if m in json.dumps(event)]
                        if leaked:
                            wrong.append(f"stream by {label} shows {leaked}")
                else:
                    status, _ = await c.call("GET", "/api/staff/events?after=0")
                    if status != 403:
                        wrong.append(f"stream by {label}: {status}")
    print(f"\nweb tenancy: {checked} answers checked")
    assert not wrong, "\n".join(wrong)


def _other(tenants: list[Tenant], own: str) -> str:
    return next(str(d.pubkey()) for t in tenants for d in t.devices if str(d.pubkey()) != own)
