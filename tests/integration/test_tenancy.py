"""Role x RPC x tenant, generated from the service descriptors.

Every RPC of the services is called by the operator, by each
tenant's utility and vendor, and by an aggregator, against one tenant's
objects and then the other's, and the outcome is checked against the
scope in the authorization table: the owner and the operator are served,
another tenant is refused the way the scope says (CROSS_TENANT for public
objects, NOT_FOUND for private records, an answer without the other's rows
for shared data), and a refused call writes nothing. An RPC added to a
proto without a table entry and a request here fails the test."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from solders.keypair import Keypair

from openvpp.client.errors import describe
from openvpp.integration import ca
from openvpp.kernel.tenancy import Scope
from openvpp.server.auth import TABLE
from openvpp.v1 import billing_pb2, common_pb2, integration_pb2, registry_pb2, routing_pb2, settlement_pb2
from tests import factories
from tests.integration import api_fuzz
from tests.integration.mtls import Fabric
from tests.integration.routing_world import consent_for
from tests.integration.settlement_world import reading, signed_points
from tests.integration.tenancy_world import STEP, Tenant, billing_plan, build_tenant, device_certificate
from tests.integration.test_api_fuzz import _snapshot

UTILITY, VENDOR = "utility", "vendor"
BOTH = frozenset({UTILITY, VENDOR})
Build = Callable[[Tenant], Any]
Items = Callable[[Tenant, list[Any]], list[Any]]


@dataclass(frozen=True)
class Spec:
    """How to aim an RPC at one tenant, and which of its partners own the target."""

    build: Build
    owners: frozenset[str] = frozenset()
    # What of the target tenant a FILTERED answer holds (empty for anyone else).
    items: Items | None = None
    # The request names no tenant: every caller acts on its own.
    implicit: bool = False


def _der(t: Tenant, i: int = 0) -> common_pb2.DeviceIdentifier:
    return common_pb2.DeviceIdentifier(der_id=str(t.devices[i].pubkey()) if i >= 0 else str(t.spare.pubkey()))


def _csr(namespace: str) -> str:
    return ca.make_csr(ca.new_key(), namespace).decode()


def _readings(t: Tenant) -> list[settlement_pb2.SubmitReadingsRequest]:
    seq = t.next_seq
    t.next_seq += 1
    payload, signature = reading(t.devices[1], seq, t.first_reading_end + (seq - 1) * STEP, 0, 1_000 + 100 * seq)
    return [settlement_pb2.SubmitReadingsRequest(batch_id="t", payloads=payload, signatures=signature)]


def _future_event(t: Tenant) -> settlement_pb2.CreateDrEventRequest:
    start = (int(time.time()) // STEP + 8) * STEP
    return settlement_pb2.CreateDrEventRequest(
        program_id=t.dr,
        start=Timestamp(seconds=start),
        end=Timestamp(seconds=start + STEP),
        incentive_micro_per_kwh=1,
    )


def _feed(t: Tenant) -> settlement_pb2.PublishPriceFeedRequest:
    at = int(time.time()) // 60 * 60
    points, signature = signed_points(f"{t.utility}/spot", [(at, 90_000, 200)])
    return settlement_pb2.PublishPriceFeedRequest(feed_id=f"{t.utility}/spot", points=points, signature=signature)


def _ders(t: Tenant) -> set[str]:
    return {str(d.pubkey()) for d in (*t.devices, t.spare)}


def _marked(t: Tenant, messages: list[Any]) -> list[Any]:
    markers = [t.nem_mint.encode(), t.dr_mint.encode(), *(d.encode() for d in _ders(t))]
    return [m for m in messages if any(k in m.SerializeToString() for k in markers)]


R, N, G, S = registry_pb2, integration_pb2, routing_pb2, settlement_pb2
SPECS: dict[str, Spec] = {
    "RegisterDevice": Spec(
        lambda t: R.RegisterDeviceRequest(
            signed_record=factories.signed(Keypair(), f"n{uuid.uuid4().hex[:8]}", namespace=t.vendor)
        ),
        frozenset({VENDOR}),
    ),
    "BulkRegisterDevices": Spec(
        lambda t: [
            R.BulkRegisterDevicesRequest(
                signed_records=[factories.signed(Keypair(), f"b{uuid.uuid4().hex[:8]}", namespace=t.vendor)]
            )
        ],
        frozenset({VENDOR}),
        items=lambda t, rs: [v for r in rs for v in r.verdicts if v.status.code == 0],
    ),
    "UpdateDevice": Spec(
        lambda t: R.UpdateDeviceRequest(
            signed_record=factories.signed(t.devices[1], "d1", namespace=t.vendor, territory=t.utility, version=2)
        ),
        frozenset({VENDOR}),
    ),
    "SetDeviceStatus": Spec(
        lambda t: R.SetDeviceStatusRequest(
            der_id=str(t.spare.pubkey()), status=common_pb2.DEVICE_STATUS_SUSPENDED, reason="x"
        ),
        frozenset({VENDOR}),
    ),
    "RegisterDeviceCertificate": Spec(
        lambda t: R.RegisterDeviceCertificateRequest(
            der_id=str(t.devices[1].pubkey()), certificate_der=device_certificate(t.devices[1])
        ),
        frozenset({VENDOR}),
    ),
    "GetDevice": Spec(lambda t: R.GetDeviceRequest(identifier=_der(t))),
    "ListDevices": Spec(lambda t: R.ListDevicesRequest(vendor_namespace=t.vendor)),
    "WatchRegistry": Spec(lambda t: R.WatchRegistryRequest()),
    "GetRegistryHead": Spec(lambda t: R.GetRegistryHeadRequest()),
    "GetInclusionProof": Spec(lambda t: R.GetInclusionProofRequest(der_id=str(t.device.pubkey()), version=1)),
    "AnchorRegistry": Spec(lambda t: R.AnchorRegistryRequest()),
    "OnboardPartner": Spec(
        lambda t: (
            (ns := f"p{uuid.uuid4().hex[:10]}")
            and N.OnboardPartnerRequest(kind=N.PARTNER_KIND_AGGREGATOR, legal_name="x", namespace=ns, csr_pem=_csr(ns))
        ),
    ),
    "GetPartner": Spec(lambda t: N.GetPartnerRequest(namespace=t.utility), frozenset({UTILITY})),
    "ListPartners": Spec(lambda t: N.ListPartnersRequest()),
    "SuspendPartner": Spec(lambda t: N.SuspendPartnerRequest(namespace=f"{t.utility}-spare", reason="x")),
    "ReinstatePartner": Spec(lambda t: N.ReinstatePartnerRequest(namespace=f"{t.utility}-spare", reason="x")),
    "IssueCertificate": Spec(
        lambda t: N.IssueCertificateRequest(namespace=t.utility, csr_pem=_csr(t.utility)), frozenset({UTILITY})
    ),
    "RenewCertificate": Spec(
        lambda t: N.RenewCertificateRequest(serial=t.spare_serial, csr_pem=_csr(t.utility)), frozenset({UTILITY})
    ),
    "RevokeCertificate": Spec(
        lambda t: N.RevokeCertificateRequest(serial=t.spare_serial, reason=N.REVOCATION_REASON_KEY_COMPROMISE),
        frozenset({UTILITY}),
    ),
    "ListCertificates": Spec(lambda t: N.ListCertificatesRequest(namespace=t.utility), frozenset({UTILITY})),
    "GetCrl": Spec(lambda t: N.GetCrlRequest()),
    "CreateWebLogin": Spec(lambda t: N.CreateWebLoginRequest(), implicit=True),
    "RegisterEndpoint": Spec(
        lambda t: N.RegisterEndpointRequest(
            namespace=t.utility,
            name=f"e{uuid.uuid4().hex[:8]}",
            url="https://127.0.0.1:1",
            protocol=N.ENDPOINT_PROTOCOL_OPENVPP_GRPC,
            auth_mode=N.ENDPOINT_AUTH_MODE_MUTUAL_TLS,
        ),
        frozenset({UTILITY}),
    ),
    "ValidateEndpoint": Spec(lambda t: N.ValidateEndpointRequest(endpoint_id=f"{t.utility}/vtn"), frozenset({UTILITY})),
    "GetEndpoint": Spec(lambda t: N.GetEndpointRequest(endpoint_id=f"{t.utility}/vtn"), frozenset({UTILITY})),
    "ListEndpoints": Spec(
        lambda t: N.ListEndpointsRequest(namespace=t.utility),
        frozenset({UTILITY}),
        items=lambda t, rs: [e for r in rs for e in r.endpoints if e.namespace == t.utility],
    ),
    "RemoveEndpoint": Spec(lambda t: N.RemoveEndpointRequest(endpoint_id=f"{t.utility}/spare"), frozenset({UTILITY})),
    "CreateProgram": Spec(
        lambda t: G.CreateProgramRequest(
            utility_namespace=t.utility,
            code=f"c{uuid.uuid4().hex[:8]}",
            name="x",
            kind=G.PROGRAM_KIND_NET_ENERGY_METERING,
        ),
        frozenset({UTILITY}),
    ),
    "GetProgram": Spec(lambda t: G.GetProgramRequest(program_id=t.nem)),
    "ListPrograms": Spec(lambda t: G.ListProgramsRequest(utility_namespace=t.utility)),
    "AttachEndpoint": Spec(
        lambda t: G.AttachEndpointRequest(program_id=t.nem, endpoint_id=f"{t.utility}/vtn", priority=1, weight=1),
        frozenset({UTILITY}),
    ),
    "DetachEndpoint": Spec(
        lambda t: G.DetachEndpointRequest(program_id=t.nem, endpoint_id=f"{t.utility}/vtn"), frozenset({UTILITY})
    ),
    "EnrollDevice": Spec(
        lambda t: G.EnrollDeviceRequest(
            program_id=t.nem, device=_der(t, 1), account_ref="ACCT-1", consent=consent_for(t.devices[1], t.nem)
        ),
        BOTH,
    ),
    "UnenrollDevice": Spec(lambda t: G.UnenrollDeviceRequest(program_id=t.nem, device=_der(t, -1), reason="x"), BOTH),
    "ListEnrollments": Spec(
        lambda t: G.ListEnrollmentsRequest(program_id=t.nem),
        BOTH,
        items=lambda t, rs: [e for r in rs for e in r.enrollments if e.der_id in _ders(t)],
    ),
    "Resolve": Spec(lambda t: G.ResolveRequest(device=_der(t), program_id=t.nem), BOTH),
    "ResolveBatch": Spec(
        lambda t: G.ResolveBatchRequest(identifiers=[str(t.device.pubkey())], program_id=t.nem),
        BOTH,
        items=lambda t, rs: [a for r in rs for a in r.answers if a.HasField("routes")],
    ),
    "WatchRoutes": Spec(
        lambda t: G.WatchRoutesRequest(),
        BOTH,
        items=lambda t, rs: [r for r in rs if r.HasField("change") and r.change.der_id in _ders(t)],
    ),
    "Diagnose": Spec(lambda t: G.DiagnoseRequest(device=_der(t), program_id=t.nem), BOTH),
    "GetRoutingKey": Spec(lambda t: G.GetRoutingKeyRequest()),
    "GetChainInfo": Spec(lambda t: S.GetChainInfoRequest()),
    "CreateUseCaseToken": Spec(
        lambda t: S.CreateUseCaseTokenRequest(
            program_id=t.nem,
            name="x",
            symbol="TKX",
            unit=S.TOKEN_UNIT_USD,
            decimals=6,
            redemption_value_base_units=1_000_000,
        ),
        frozenset({UTILITY}),
    ),
    "GetUseCaseToken": Spec(lambda t: S.GetUseCaseTokenRequest(mint=t.nem_mint)),
    "ListUseCaseTokens": Spec(lambda t: S.ListUseCaseTokensRequest(utility_id=t.utility)),
    "FundReserve": Spec(lambda t: S.FundReserveRequest(mint=t.nem_mint, amount_base_units=1000), frozenset({UTILITY})),
    "FundTestWallet": Spec(lambda t: S.FundTestWalletRequest(wallet=str(t.device.pubkey()), amount_base_units=1)),
    "GetReserve": Spec(lambda t: S.GetReserveRequest(mint=t.nem_mint)),
    "PrepareRedemption": Spec(
        lambda t: S.PrepareRedemptionRequest(mint=t.nem_mint, holder=str(t.device.pubkey()), amount_base_units=1), BOTH
    ),
    "SubmitRedemption": Spec(
        lambda t: S.SubmitRedemptionRequest(redemption_id=t.redemption_id, transaction=b"\x01" + bytes(200)), BOTH
    ),
    "GetRedemption": Spec(lambda t: S.GetRedemptionRequest(redemption_id=t.redemption_id), BOTH),
    "SubmitReadings": Spec(
        _readings, frozenset({VENDOR}), items=lambda t, rs: [1 for r in rs for _ in range(r.accepted)]
    ),
    "PublishTariff": Spec(
        lambda t: S.PublishTariffRequest(
            code=f"t{uuid.uuid4().hex[:6]}",
            time_zone="UTC",
            effective_from="2026-01-01",
            periods=[S.TariffPeriod(name="flat", days_mask=127, start_minute=0, end_minute=1440)],
        ),
        implicit=True,
    ),
    "GetTariff": Spec(lambda t: S.GetTariffRequest(tariff_id=f"{t.utility}/tou")),
    "RegisterPriceFeed": Spec(
        lambda t: S.RegisterPriceFeedRequest(
            code=f"f{uuid.uuid4().hex[:6]}", oracle_key=str(Keypair().pubkey()), max_age_seconds=60
        ),
        implicit=True,
    ),
    "PublishPriceFeed": Spec(_feed),
    "ConfigureProgramSettlement": Spec(
        lambda t: S.ConfigureProgramSettlementRequest(
            program_id=t.nem, kind=S.CREDIT_KIND_NEM_EXPORT, mint=t.nem_mint, tariff_id=f"{t.utility}/tou"
        ),
        frozenset({UTILITY}),
    ),
    "GetProgramSettlement": Spec(lambda t: S.GetProgramSettlementRequest(program_id=t.nem), BOTH),
    "CreateDrEvent": Spec(_future_event, frozenset({UTILITY})),
    "GetDrEvent": Spec(lambda t: S.GetDrEventRequest(event_id=t.dr_event_id), frozenset({UTILITY})),
    "Settle": Spec(lambda t: S.SettleRequest(program_ids=[t.nem]), frozenset({UTILITY})),
    "GetSettlement": Spec(lambda t: S.GetSettlementRequest(settlement_id=t.settlement_id), BOTH),
    "GetBalance": Spec(
        lambda t: S.GetBalanceRequest(wallet=str(t.device.pubkey())),
        BOTH,
        items=lambda t, rs: [b for r in rs for b in r.balances],
    ),
    "ListPayouts": Spec(
        lambda t: S.ListPayoutsRequest(settlement_id=t.settlement_id),
        BOTH,
        items=lambda t, rs: [p for r in rs for p in r.payouts],
    ),
    "CheckLedger": Spec(
        lambda t: S.CheckLedgerRequest(),
        frozenset({UTILITY}),
        items=lambda t, rs: [k for r in rs for k in r.tokens if k.mint in (t.nem_mint, t.dr_mint)],
    ),
    "GetStatement": Spec(lambda t: S.GetStatementRequest(wallet=str(t.device.pubkey()), mint=t.nem_mint), BOTH),
    "StreamSettlements": Spec(
        lambda t: S.StreamSettlementsRequest(until_caught_up=True),
        frozenset({UTILITY}),
        items=lambda t, rs: _marked(t, [e for r in rs for e in r.events]),
    ),
    "ConfigureBilling": Spec(
        lambda t: billing_pb2.ConfigureBillingRequest(plan=billing_plan(t.nem)), frozenset({UTILITY})
    ),
    "GetBillingPlan": Spec(lambda t: billing_pb2.GetBillingPlanRequest(program_id=t.nem), frozenset({UTILITY})),
    "GetBill": Spec(lambda t: billing_pb2.GetBillRequest(program_id=t.nem, account_ref="ACCT-0"), frozenset({UTILITY})),
    "ListBills": Spec(lambda t: billing_pb2.ListBillsRequest(program_id=t.nem), frozenset({UTILITY})),
    "PrepareAutopay": Spec(
        lambda t: billing_pb2.PrepareAutopayRequest(
            program_id=t.nem, account_ref="ACCT-0", holder=str(t.device.pubkey()), allowance_base_units=1_000
        ),
        frozenset({UTILITY}),
    ),
    "SubmitAutopay": Spec(
        lambda t: billing_pb2.SubmitAutopayRequest(program_id=t.nem, account_ref="ACCT-0", transaction=b"not one"),
        frozenset({UTILITY}),
    ),
    "GetAutopay": Spec(
        lambda t: billing_pb2.GetAutopayRequest(program_id=t.nem, account_ref="ACCT-0"), frozenset({UTILITY})
    ),
    "RequestBillPayment": Spec(
        lambda t: billing_pb2.RequestBillPaymentRequest(program_id=t.nem, account_ref="ACCT-0"), frozenset({UTILITY})
    ),
}


@dataclass
class Caller:
    label: str
    role: ca.Role
    bundle: Path
    tenant: Tenant | None


async def _call(channel: grpc.aio.Channel, method: Any, request: Any) -> tuple[grpc.StatusCode, str, list[Any]]:
    target = api_fuzz.path(method)
    out = api_fuzz.message_class(method.output_type).FromString
    serialize = type(request[0] if isinstance(request, list) else request).SerializeToString
    try:
        if method.client_streaming:

            async def requests() -> Any:
                for r in request:
                    yield r

            if method.server_streaming:
                responses = [r async for r in channel.stream_stream(target, serialize, out)(requests(), timeout=30)]
            else:
                responses = [await channel.stream_unary(target, serialize, out)(requests(), timeout=30)]
        elif method.server_streaming:
            responses = [r async for r in channel.unary_stream(target, serialize, out)(request, timeout=30)]
        else:
            responses = [await channel.unary_unary(target, serialize, out)(request, timeout=30)]
    except grpc.aio.AioRpcError as exc:
        return exc.code(), describe(exc).reason, []
    return grpc.StatusCode.OK, "", responses


def _owner(caller: Caller, target: Tenant, spec: Spec) -> bool:
    if caller.role is ca.Role.OPERATOR or spec.implicit:
        return True
    if caller.tenant is not target:
        return False
    return (UTILITY if caller.role is ca.Role.UTILITY else VENDOR) in spec.owners


async def test_every_rpc_as_every_role_against_own_and_other_tenants(fabric: Fabric, tmp_path: Path) -> None:
    tenants = [await build_tenant(fabric, "pge", "solarco"), await build_tenant(fabric, "atlantic", "voltbox")]
    for t in tenants:
        await fabric.onboard(ca.Role.UTILITY, f"{t.utility}-spare")
    aggregator = await fabric.onboard(ca.Role.AGGREGATOR, "gridagg")
    callers = [Caller("operator", ca.Role.OPERATOR, fabric.data_dir / "operator", None)]
    for t in tenants:
        callers.append(Caller(t.utility, ca.Role.UTILITY, t.utility_bundle, t))
        callers.append(Caller(t.vendor, ca.Role.DEVICE_VENDOR, t.vendor_bundle, t))
    callers.append(Caller("gridagg", ca.Role.AGGREGATOR, aggregator, None))
    methods = api_fuzz.methods()
    missing = [api_fuzz.path(m) for m in methods if api_fuzz.path(m) not in TABLE or m.name not in SPECS]
    assert not missing, f"RPCs without a table entry or a tenant request here: {missing}"
    channels = {c.label: fabric.channel(c.bundle) for c in callers}
    wrong: list[str] = []
    checked = 0
    try:
        for method in methods:
            rule, spec = TABLE[api_fuzz.path(method)], SPECS[method.name]
            for target in tenants:
                # Strangers first, so the owner's own change cannot make their refusal look right.
                ordered = sorted(callers, key=lambda c: (_owner(c, target, spec), c.role is ca.Role.OPERATOR))
                # A batch call that refused every item still logs the caller's own batch.
                skip = ("reading_batches",) if method.name == "SubmitReadings" else ()
                for caller in ordered:
                    before = await _snapshot(fabric, skip)
                    code, reason, responses = await _call(channels[caller.label], method, spec.build(target))
                    checked += 1
                    verdict = _judge(rule.roles, rule.scope, spec, caller, target, code, reason, responses)
                    refused = code is not grpc.StatusCode.OK or (
                        spec.items is not None and not _owner(caller, target, spec)
                    )
                    if (
                        verdict is None
                        and refused
                        and not _owner(caller, target, spec)
                        and await _snapshot(fabric, skip) != before
                    ):
                        verdict = "refused but wrote"
                    if verdict is not None:
                        wrong.append(
                            f"{method.name} by {caller.label} on {target.utility}: {verdict} ({code.name} {reason})"
                        )
    finally:
        await asyncio.gather(*(c.close() for c in channels.values()))
    print(f"\ntenancy: {len(methods)} RPCs x {len(callers)} callers x {len(tenants)} tenants = {checked} calls checked")
    assert checked == len(methods) * len(callers) * len(tenants) == 74 * 6 * 2
    assert not wrong, "\n".join(wrong)


def _judge(
    roles: frozenset[ca.Role],
    scope: Scope,
    spec: Spec,
    caller: Caller,
    target: Tenant,
    code: grpc.StatusCode,
    reason: str,
    responses: list[Any],
) -> str | None:
    """None when the outcome is what the table says, else what is wrong."""
    if caller.role not in roles:
        return None if reason == "ROLE_NOT_ALLOWED" else "should be refused by role"
    if code in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL, grpc.StatusCode.UNAUTHENTICATED):
        return "never"
    if spec.implicit and caller.role is ca.Role.OPERATOR and reason == "CROSS_TENANT":
        # The request names no tenant and the operator owns none: nothing to act on.
        return None
    if reason in ("ROLE_NOT_ALLOWED", "CROSS_TENANT") and (_owner(caller, target, spec) or scope is Scope.PUBLIC):
        return "the owner, the operator or a public read was refused"
    if _owner(caller, target, spec) or scope in (Scope.PUBLIC, Scope.SIGNED):
        if scope in (Scope.FILTERED, Scope.PUBLIC) and code is not grpc.StatusCode.OK:
            return "a read the caller may make failed"
        if scope is Scope.PRIVATE and code is grpc.StatusCode.NOT_FOUND:
            return "the owner's own record was not found"
        return None
    if scope is Scope.OWNED:
        return None if reason == "CROSS_TENANT" else "another tenant's object should be CROSS_TENANT"
    if scope is Scope.PRIVATE:
        return None if code is grpc.StatusCode.NOT_FOUND else "another tenant's record should be NOT_FOUND"
    if scope is Scope.FILTERED:
        assert spec.items is not None
        shown = spec.items(target, responses)
        return None if code is grpc.StatusCode.OK and not shown else f"shows {len(shown)} of another tenant's rows"
    return f"unexpected scope {scope}"
