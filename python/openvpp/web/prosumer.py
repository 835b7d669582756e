"""The prosumer app's API: everything is the signed-in wallet's own.

A prosumer is the holder of a device key: the device's address (its
der_id) is the wallet its owner share is paid to. Every read goes through
the domain services with `Viewer.wallet(address)`, whose rows are that
address's account, payouts, credits and redemptions, and the bills of the
accounts that device is enrolled in; nothing here names another wallet.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

from aiohttp import web

from openvpp import errors
from openvpp.billing import bills as bill_views
from openvpp.kernel.tenancy import Viewer
from openvpp.registry.service import Registry
from openvpp.registry.servicer import device_message
from openvpp.server.compose import BillingRuntime
from openvpp.settlement.insights import Insights
from openvpp.settlement.payouts import payer
from openvpp.settlement.services import SettlementServices
from openvpp.v1 import settlement_pb2 as pb
from openvpp.web.http import amount, b64, body, cursor, message, money, series_json, stream_events, text, wallet, window

routes = web.RouteTableDef()


@dataclass(frozen=True)
class Domains:
    registry: Registry
    settlement: SettlementServices
    billing: BillingRuntime
    insights: Insights


DOMAINS: web.AppKey[Domains] = web.AppKey("domains", Domains)


@routes.get("/api/prosumer/overview")
async def overview(request: web.Request) -> web.Response:
    address = await wallet(request)
    d = request.app[DOMAINS]
    try:
        devices = [message(device_message(await d.registry.get_by_id(address)))]
    except errors.NotFound:
        devices = []
    enrolled, reading = await d.insights.wallet_enrollments(Viewer.wallet(address), address)
    coin = d.settlement.tokens.stablecoin
    return web.json_response(
        {
            "wallet": address,
            "devices": devices,
            "enrollments": [
                {
                    "programId": e.program_id,
                    "programName": e.name,
                    "accountRef": e.account_ref,
                    "status": e.status,
                    "enrolledAtUs": str(e.enrolled_at_us),
                }
                for e in enrolled
            ],
            "lastReadingEnd": reading.last_interval_end if reading else 0,
            "stablecoin": {"mint": str(coin.mint), "decimals": coin.decimals},
        }
    )


@routes.get("/api/prosumer/energy")
async def energy(request: web.Request) -> web.Response:
    """Import and export per hour, credits per hour, and DR performance."""
    address = await wallet(request)
    start, end = window(request)
    d = request.app[DOMAINS]
    series, dr = await d.insights.wallet_series(Viewer.wallet(address), address, start, end)
    return web.json_response(
        {
            "start": start,
            "end": end,
            **series_json(series),
            "dr": [
                {
                    "eventId": r.event_id,
                    "programId": r.program_id,
                    "start": r.start_s,
                    "end": r.end_s,
                    "baselineWh": r.baseline_wh,
                    "actualWh": r.actual_wh,
                    "performanceWh": r.performance_wh,
                    "credited": money(r.credited),
                }
                for r in dr
            ],
        }
    )


@routes.get("/api/prosumer/balances")
async def balances(request: web.Request) -> web.Response:
    """Each token the wallet holds or was credited, with what its on-chain
    balance redeems for in the stablecoin (the reserve's fixed rate)."""
    address = await wallet(request)
    d = request.app[DOMAINS]
    out = []
    for b in await d.settlement.ledger.balances(Viewer.wallet(address), address):
        token = await d.settlement.tokens.get(b.mint)
        out.append(
            {
                "mint": b.mint,
                "symbol": token.symbol,
                "name": token.name,
                "decimals": token.decimals,
                "programId": token.program_id,
                "credited": money(b.credited),
                "pending": money(b.pending),
                "paid": money(b.paid),
                "redeemed": money(b.redeemed),
                "onChain": money(b.on_chain),
                "redemptionValue": money(token.redemption_value),
                "stablecoinValue": money(b.on_chain * token.redemption_value // 10**token.decimals),
            }
        )
    return web.json_response({"wallet": address, "balances": out})


@routes.get("/api/prosumer/payouts")
async def payouts(request: web.Request) -> web.Response:
    address = await wallet(request)
    d = request.app[DOMAINS]
    rows, token = await d.settlement.payouts.list(
        Viewer.wallet(address), address, "", "", 50, request.query.get("pageToken", "")
    )
    redeemed = await d.insights.wallet_redemptions(Viewer.wallet(address), address)
    return web.json_response(
        {
            "payouts": [message(payer.payout_message(r)) for r in rows],
            "nextPageToken": token,
            "redemptions": [
                {
                    "redemptionId": r.redemption_id,
                    "mint": r.mint,
                    "symbol": r.symbol,
                    "amount": money(r.amount),
                    "payout": money(r.payout),
                    "state": pb.RedemptionState.Name(r.state),
                    "signature": r.signature or "",
                    "createdAtUs": str(r.created_at_us),
                }
                for r in redeemed
            ],
        }
    )


@routes.get("/api/prosumer/bills")
async def current_bills(request: web.Request) -> web.Response:
    """The current bill of every billed account the wallet's device is in."""
    address = await wallet(request)
    d = request.app[DOMAINS]
    enrolled, _ = await d.insights.wallet_enrollments(Viewer.wallet(address), address)
    found = []
    for e in enrolled:
        try:
            bill = await d.billing.bills.bill(Viewer.wallet(address), e.program_id, e.account_ref)
        except errors.NotFound:
            continue  # the program does not bill
        found.append(message(bill_views.message(bill)))
    return web.json_response({"bills": found})


@routes.post("/api/prosumer/redemptions")
async def prepare_redemption(request: web.Request) -> web.Response:
    """A burn-and-pay transaction for the wallet to sign (it is the holder)."""
    address = await wallet(request)
    data = await body(request)
    prepared = await request.app[DOMAINS].settlement.redemptions.prepare(
        Viewer.wallet(address), text(data, "mint"), address, amount(data, "amount"), None
    )
    return web.json_response(
        {
            "redemptionId": prepared.redemption_id,
            "transaction": base64.b64encode(prepared.transaction).decode(),
            "payout": money(prepared.payout),
            "lastValidBlockHeight": str(prepared.last_valid_block_height),
        }
    )


@routes.post("/api/prosumer/redemptions/{redemption_id}/submit")
async def submit_redemption(request: web.Request) -> web.Response:
    address = await wallet(request)
    data = await body(request)
    redemption = await request.app[DOMAINS].settlement.redemptions.submit(
        Viewer.wallet(address), request.match_info["redemption_id"], b64(data, "transaction")
    )
    return web.json_response(message(redemption.message()))


def _concerns(event: pb.SettlementEvent, address: str) -> bool:
    kind = event.WhichOneof("event")
    if kind == "credit":
        return event.credit.wallet == address
    if kind in ("payout_sent", "payout_confirmed", "payout_failed"):
        return bool(getattr(event, kind).wallet == address)
    if kind == "redemption":
        return event.redemption.redemption.holder == address
    return False


@routes.get("/api/prosumer/events")
async def events(request: web.Request) -> web.StreamResponse:
    """Server-sent events: the wallet's credits, payouts and redemptions as
    the settlement log records them, from `Last-Event-ID` (or `after`), by
    default from now."""
    address = await wallet(request)
    log = request.app[DOMAINS].settlement.event_log
    after = cursor(request.headers.get("Last-Event-ID") or request.query.get("after", ""))
    if after is None:
        after = await log.head()
    return await stream_events(request, log.follow(None, after), lambda event: _concerns(event, address))
