"""What every web handler shares: the signed-in principal, JSON bodies,
proto messages as proto3 JSON, and integers that are money as strings
(exact in a browser, where numbers are doubles)."""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web
from aiohttp_sse import sse_response
from google.protobuf import json_format
from google.protobuf.message import Message

from openvpp import errors
from openvpp.integration.signin import STAFF, WALLET, Principal, SignIn
from openvpp.kernel.identity import Identity
from openvpp.settlement.insights import Series

COOKIE = "openvpp_session"
SIGNIN: web.AppKey[SignIn] = web.AppKey("signin", SignIn)
MAX_BODY = 256 * 1024


def message(msg: Message) -> dict[str, Any]:
    """The proto3 JSON mapping (uint64 as strings), default values included."""
    return json_format.MessageToDict(msg, always_print_fields_with_no_presence=True)


async def body(request: web.Request) -> dict[str, Any]:
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise errors.InvalidArgument("the request body is too large", "BODY_TOO_LARGE")
    try:
        parsed = json.loads(await request.read() or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise errors.InvalidArgument("the body is not JSON", "INVALID_JSON") from None
    if not isinstance(parsed, dict):
        raise errors.InvalidArgument("the body must be a JSON object", "INVALID_JSON")
    return parsed


def text(data: dict[str, Any], name: str, *, required: bool = True) -> str:
    value = data.get(name, "")
    if not isinstance(value, str) or (required and not value):
        raise errors.InvalidArgument.field(name, "a non-empty string is required")
    return value


def amount(data: dict[str, Any], name: str) -> int:
    """A base-unit amount, given as a decimal string or an integer."""
    value = data.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).isdigit():
        raise errors.InvalidArgument.field(name, "a whole number of base units (a decimal string) is required")
    number = int(value)
    if not 0 < number < 2**64:
        raise errors.InvalidArgument.field(name, "must be between 1 and 2^64 - 1")
    return number


def b64(data: dict[str, Any], name: str) -> bytes:
    try:
        return base64.b64decode(text(data, name), validate=True)
    except (binascii.Error, ValueError):
        raise errors.InvalidArgument.field(name, "not base64") from None


async def principal(request: web.Request) -> Principal:
    token = request.cookies.get(COOKIE, "")
    if not token:
        raise errors.Unauthenticated("sign in first", "NO_SESSION")
    return await request.app[SIGNIN].principal(token)


async def wallet(request: web.Request) -> str:
    """The signed-in prosumer's wallet; staff sessions are refused."""
    who = await principal(request)
    if who.kind != WALLET:
        raise errors.PermissionDenied("this is the prosumer app: sign in with a wallet", "NOT_A_WALLET_SESSION")
    return who.wallet


async def staff(request: web.Request) -> Identity:
    who = await principal(request)
    if who.kind != STAFF or who.identity is None:
        raise errors.PermissionDenied("this is the staff console: sign in with a login code", "NOT_A_STAFF_SESSION")
    return who.identity


async def stream_events(
    request: web.Request, pages: AsyncIterator[tuple[list[Any], int]], keep: Callable[[Any], bool]
) -> web.StreamResponse:
    """Server-sent events of the settlement log's pages (`settlement` events,
    id = cursor, so EventSource resumes with Last-Event-ID). A browser that
    goes away ends the stream quietly."""
    async with sse_response(request) as stream:
        try:
            async for page, _head in pages:
                for event in page:
                    if keep(event):
                        await stream.send(json.dumps(message(event)), id=str(event.cursor), event="settlement")
        except ConnectionResetError:
            pass
    return stream


def money(value: int) -> str:
    return str(value)


def window(request: web.Request) -> tuple[int, int]:
    """The chart window: the last `hours` (1..744) hours up to now."""
    raw = request.query.get("hours", "24")
    if not raw.isdigit() or not 1 <= int(raw) <= 744:
        raise errors.InvalidArgument.field("hours", "a whole number of hours from 1 to 744")
    end = (int(time.time()) // 3600 + 1) * 3600
    return end - int(raw) * 3600, end


def cursor(raw: str) -> int | None:
    if not raw:
        return None
    if not raw.isdigit():
        raise errors.InvalidArgument.field("after", "a cursor (a whole number)")
    return int(raw)


def series_json(series: Series) -> dict[str, Any]:
    return {
        "energy": [{"hour": h, "importWh": i, "exportWh": e} for h, i, e in series.energy],
        "credits": [{"hour": h, "amount": money(a), "energyWh": w} for h, a, w in series.credits],
    }
