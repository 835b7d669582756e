"""`openvpp chain serve`: the Solana JSON-RPC over HTTP and the PubSub over
WebSocket in front of the embedded chain, so solana-py, web3.js, wallets
and the Solana CLI can use it.

aiohttp serves both; the dispatch is written here because no library
serves JSON-RPC for a Solana VM. The WebSocket is on the HTTP port (an
upgrade of `GET /`) and, like a validator, on the port after it, which is
where web3.js and the Solana CLI look for it.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from openvpp.chain.embedded import EmbeddedChain
from openvpp.chain.pubsub import PubSub
from openvpp.chain.rpc_errors import INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND, PARSE_ERROR, RpcError
from openvpp.chain.rpc_methods import ChainRpc

MAX_BATCH = 100


def _error(request_id: Any, code: int, message: str, data: Any = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return {"jsonrpc": "2.0", "error": error, "id": request_id}


async def dispatch(rpc: ChainRpc, call: Any) -> dict[str, Any]:
    if not isinstance(call, dict) or not isinstance(call.get("method"), str):
        return _error(None, INVALID_REQUEST, "Invalid request")
    request_id = call.get("id")
    handler = rpc.methods.get(call["method"])
    if handler is None:
        return _error(request_id, METHOD_NOT_FOUND, "Method not found")
    params = call.get("params") or []
    if not isinstance(params, list):
        return _error(request_id, INVALID_PARAMS, "params must be an array")
    try:
        return {"jsonrpc": "2.0", "result": await handler(params), "id": request_id}
    except RpcError as exc:
        return _error(request_id, exc.code, str(exc), exc.data)
    except (IndexError, KeyError, TypeError, ValueError) as exc:
        return _error(request_id, INVALID_PARAMS, f"Invalid params: {exc}")


def make_app(chain: EmbeddedChain) -> web.Application:
    rpc = ChainRpc(chain)
    pubsub = PubSub(rpc)

    async def handle(request: web.Request) -> web.StreamResponse:
        if request.method == "GET":
            if request.headers.get("Upgrade", "").lower() == "websocket":
                return await pubsub.handle(request)
            raise web.HTTPMethodNotAllowed("GET", ["POST"])
        try:
            body = await request.json(loads=json.loads)
        except ValueError:
            return web.json_response(_error(None, PARSE_ERROR, "Parse error"))
        if isinstance(body, list):
            if not body or len(body) > MAX_BATCH:
                return web.json_response(_error(None, INVALID_REQUEST, f"a batch holds 1..{MAX_BATCH} calls"))
            return web.json_response([await dispatch(rpc, call) for call in body])
        return web.json_response(await dispatch(rpc, body))

    async def lifecycle(_app: web.Application) -> Any:
        pubsub.start()
        yield
        await pubsub.stop()

    app = web.Application(client_max_size=4 * 1024 * 1024)
    app.router.add_route("*", "/", handle)
    app.cleanup_ctx.append(lifecycle)
    return app


@dataclass
class Served:
    runner: web.AppRunner
    port: int
    # None when the port after the HTTP one was taken: the WebSocket is then
    # only on the HTTP port.
    ws_port: int | None

    async def cleanup(self) -> None:
        await self.runner.cleanup()


async def serve(chain: EmbeddedChain, host: str, port: int) -> Served:
    """Starts serving: JSON-RPC and WebSocket on `port`, WebSocket also on
    `port + 1` when that is free (always tried, also for a port of 0)."""
    runner = web.AppRunner(make_app(chain), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    bound = int(runner.addresses[0][1])
    ws_port: int | None = bound + 1
    try:
        await web.TCPSite(runner, host, bound + 1).start()
    except OSError:
        if port:
            with contextlib.suppress(Exception):
                await runner.cleanup()
            raise
        ws_port = None
    return Served(runner, bound, ws_port)


__all__ = ["Served", "dispatch", "make_app", "serve"]
