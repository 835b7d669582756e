"""Sign-in routes: a wallet's Sign-In-With-Solana challenge and its signed
answer, a staff login code, sign-out, and who the session is."""

from __future__ import annotations

from aiohttp import web

from openvpp.integration.signin import NewSession, Principal
from openvpp.web.http import COOKIE, SIGNIN, b64, body, principal, text

routes = web.RouteTableDef()


def _described(who: Principal) -> dict[str, str]:
    if who.identity is not None:
        return {"kind": who.kind, "role": who.identity.role.value, "namespace": who.identity.namespace}
    return {"kind": who.kind, "wallet": who.wallet}


def _signed_in(session: NewSession, request: web.Request) -> web.Response:
    response = web.json_response(_described(session.principal))
    response.set_cookie(
        COOKIE,
        session.token,
        max_age=(session.expires_at_us - request.app[SIGNIN].clock_us()) // 1_000_000,
        path="/",
        secure=request.secure,
        httponly=True,
        samesite="Strict",
    )
    return response


@routes.post("/api/auth/wallet/challenge")
async def wallet_challenge(request: web.Request) -> web.Response:
    data = await body(request)
    origin = f"{request.scheme}://{request.host}"
    challenge = await request.app[SIGNIN].wallet_challenge(text(data, "address"), request.host, origin)
    return web.json_response(
        {"message": challenge.message, "nonce": challenge.nonce, "expiresAtUs": str(challenge.expires_at_us)}
    )


@routes.post("/api/auth/wallet/verify")
async def wallet_verify(request: web.Request) -> web.Response:
    data = await body(request)
    session = await request.app[SIGNIN].wallet_session(
        text(data, "address"), text(data, "nonce"), b64(data, "signature")
    )
    return _signed_in(session, request)


@routes.post("/api/auth/staff")
async def staff_login(request: web.Request) -> web.Response:
    data = await body(request)
    return _signed_in(await request.app[SIGNIN].staff_session(text(data, "code")), request)


@routes.post("/api/auth/logout")
async def logout(request: web.Request) -> web.Response:
    token = request.cookies.get(COOKIE, "")
    if token:
        await request.app[SIGNIN].end(token)
    response = web.json_response({})
    response.del_cookie(COOKIE, path="/")
    return response


@routes.get("/api/me")
async def me(request: web.Request) -> web.Response:
    return web.json_response(_described(await principal(request)))
