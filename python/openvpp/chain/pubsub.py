"""Solana's PubSub over WebSocket for the served embedded chain:
account, program, signature, logs, slot and root subscriptions.

The chain tells `PubSub` about every durable commit (`EmbeddedChain.observers`);
notifications are queued per connection and written by that connection's
own task, so a slow or stalled client never holds up the chain.
aiohttp does the WebSocket framing; the subscription semantics follow the
Solana RPC (ids are integers, signature subscriptions end after their one
notification, an already landed signature is notified at once).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web
from solders.account import Account
from solders.pubkey import Pubkey
from solders.signature import Signature

from openvpp.chain.embedded import Committed
from openvpp.chain.rpc_errors import INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND, PARSE_ERROR, RpcError
from openvpp.chain.rpc_methods import ChainRpc, config_at, matches_filters, pubkey

SYSTEM_PROGRAM = Pubkey.from_string("11111111111111111111111111111111")
# A client that stops reading loses its connection rather than the server's memory.
MAX_QUEUED = 10_000
SLOT_POLL_SECONDS = 0.1
KINDS = ("account", "program", "signature", "logs", "slot", "root")


@dataclass(eq=False)
class Connection:
    ws: web.WebSocketResponse
    queue: asyncio.Queue[str | None] = field(default_factory=lambda: asyncio.Queue(MAX_QUEUED))
    subscriptions: set[int] = field(default_factory=set)

    def push(self, message: dict[str, Any]) -> None:
        try:
            self.queue.put_nowait(json.dumps(message))
        except asyncio.QueueFull:
            self.queue = asyncio.Queue(1)
            self.queue.put_nowait(None)  # the writer closes the connection


@dataclass(eq=False)
class Subscription:
    id: int
    kind: str
    conn: Connection
    config: dict[str, Any]
    key: Pubkey | None = None  # account, program, logs "mentions", signature's key
    signature: str | None = None
    filters: list[Any] = field(default_factory=list)
    done: bool = False

    def notify(self, result: Any) -> None:
        self.conn.push(
            {
                "jsonrpc": "2.0",
                "method": f"{self.kind}Notification",
                "params": {"result": result, "subscription": self.id},
            }
        )


def _deleted() -> Account:
    """How a closed account is shown to its subscribers, as on a node."""
    return Account(lamports=0, data=b"", owner=SYSTEM_PROGRAM)


class PubSub:
    def __init__(self, rpc: ChainRpc) -> None:
        self.rpc = rpc
        self.chain = rpc.chain
        self._ids = itertools.count(1)
        self._subs: dict[int, Subscription] = {}
        self._by_signature: dict[str, list[Subscription]] = {}
        self._last_slot = 0
        self._ticker: asyncio.Task[None] | None = None
        self.chain.observers.append(self._on_commit)
        self.handlers: dict[str, Callable[[Connection, list[Any]], Any]] = {
            **{f"{kind}Subscribe": self._subscriber(kind) for kind in KINDS},
            **{f"{kind}Unsubscribe": self._unsubscribe for kind in KINDS},
        }

    def start(self) -> None:
        self._ticker = asyncio.get_running_loop().create_task(self._tick())

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker

    # -- the socket --------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=30)
        await ws.prepare(request)
        conn = Connection(ws)
        writer = asyncio.get_running_loop().create_task(self._write(conn))
        try:
            async for message in ws:
                if message.type != WSMsgType.TEXT:
                    continue
                await self._receive(conn, message.data)
        finally:
            for sub_id in list(conn.subscriptions):
                self._drop(sub_id)
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
        return ws

    async def _write(self, conn: Connection) -> None:
        while True:
            text = await conn.queue.get()
            if text is None:
                await conn.ws.close(message=b"too many undelivered notifications")
                return
            await conn.ws.send_str(text)

    async def _receive(self, conn: Connection, text: str) -> None:
        try:
            call = json.loads(text)
        except ValueError:
            conn.push({"jsonrpc": "2.0", "error": {"code": PARSE_ERROR, "message": "Parse error"}, "id": None})
            return
        calls = call if isinstance(call, list) else [call]
        for one in calls:
            if not isinstance(one, dict) or not isinstance(one.get("method"), str):
                conn.push(
                    {"jsonrpc": "2.0", "error": {"code": INVALID_REQUEST, "message": "Invalid request"}, "id": None}
                )
                continue
            request_id = one.get("id")
            handler = self.handlers.get(one["method"])
            params = one.get("params") or []
            try:
                if handler is None:
                    raise RpcError(METHOD_NOT_FOUND, "Method not found")
                if not isinstance(params, list):
                    raise RpcError(INVALID_PARAMS, "params must be an array")
                result = await handler(conn, params)
            except RpcError as exc:
                conn.push({"jsonrpc": "2.0", "error": {"code": exc.code, "message": str(exc)}, "id": request_id})
                continue
            except (IndexError, KeyError, TypeError, ValueError) as exc:
                error = {"code": INVALID_PARAMS, "message": f"Invalid params: {exc}"}
                conn.push({"jsonrpc": "2.0", "error": error, "id": request_id})
                continue
            conn.push(
                {
                    "jsonrpc": "2.0",
                    "result": result.id if isinstance(result, Subscription) else result,
                    "id": request_id,
                }
            )
            if isinstance(result, Subscription) and result.kind == "signature":
                await self._signature_landed_before(result)

    # -- subscribing -------------------------------------------------------------
    def _subscriber(self, kind: str) -> Callable[[Connection, list[Any]], Any]:
        async def subscribe(conn: Connection, params: list[Any]) -> Subscription:
            sub = Subscription(next(self._ids), kind, conn, {})
            if kind in ("account", "program"):
                sub.key = pubkey(params[0])
                sub.config = config_at(params, 1)
                sub.filters = list(sub.config.get("filters") or [])
                self.rpc.encode(_deleted(), sub.config)  # refuses a bad encoding now, not at the first change
            elif kind == "signature":
                sub.signature = str(Signature.from_string(params[0]))
                sub.config = config_at(params, 1)
                self._by_signature.setdefault(sub.signature, []).append(sub)
            elif kind == "logs":
                sub.config = config_at(params, 1)
                sub.key = self._logs_filter(params[0] if params else None)
            self._subs[sub.id] = sub
            conn.subscriptions.add(sub.id)
            return sub

        return subscribe

    @staticmethod
    def _logs_filter(spec: Any) -> Pubkey | None:
        if spec in ("all", "allWithVotes"):
            return None
        if isinstance(spec, dict) and isinstance(spec.get("mentions"), list) and len(spec["mentions"]) == 1:
            return pubkey(spec["mentions"][0])
        raise RpcError(
            INVALID_PARAMS, 'Invalid params: logs filter must be "all", "allWithVotes" or {"mentions": [one key]}'
        )

    async def _unsubscribe(self, conn: Connection, params: list[Any]) -> bool:
        sub_id = params[0]
        if not isinstance(sub_id, int) or sub_id not in conn.subscriptions:
            raise RpcError(INVALID_PARAMS, "Invalid subscription id.")
        self._drop(sub_id)
        return True

    def _drop(self, sub_id: int) -> None:
        sub = self._subs.pop(sub_id, None)
        if sub is None:
            return
        sub.conn.subscriptions.discard(sub_id)
        if sub.signature is not None:
            waiting = self._by_signature.get(sub.signature, [])
            if sub in waiting:
                waiting.remove(sub)
            if not waiting:
                self._by_signature.pop(sub.signature, None)

    async def _signature_landed_before(self, sub: Subscription) -> None:
        (status,) = await self.chain.signature_statuses([Signature.from_string(sub.signature or "")])
        if status is not None and not sub.done:
            self._signature_done(sub, status.slot, None if status.error is None else json.loads(status.error))

    def _signature_done(self, sub: Subscription, slot: int, err: Any) -> None:
        sub.done = True
        if sub.config.get("enableReceivedNotification"):
            sub.notify({"context": {"slot": slot}, "value": "receivedSignature"})
        sub.notify({"context": {"slot": slot}, "value": {"err": err}})
        self._drop(sub.id)

    # -- notifying ---------------------------------------------------------------
    def _on_commit(self, committed: Committed) -> None:
        if not self._subs:
            return
        for landed in committed.transactions:
            for sub in list(self._by_signature.get(landed.signature, [])):
                self._signature_done(sub, committed.slot, None if landed.error is None else json.loads(landed.error))
        context = {"slot": committed.slot}
        for sub in list(self._subs.values()):
            if sub.kind == "account" and sub.key in committed.accounts:
                account = committed.accounts[sub.key] or _deleted()
                sub.notify({"context": context, "value": self.rpc.encode(account, sub.config)})
            elif sub.kind == "program":
                for address, maybe in committed.accounts.items():
                    if maybe is not None and maybe.owner == sub.key and matches_filters(maybe, sub.filters):
                        value = {"pubkey": str(address), "account": self.rpc.encode(maybe, sub.config)}
                        sub.notify({"context": context, "value": value})
            elif sub.kind == "logs":
                for landed in committed.transactions:
                    if landed.logs and (sub.key is None or sub.key in landed.keys):
                        err = None if landed.error is None else json.loads(landed.error)
                        sub.notify(
                            {
                                "context": context,
                                "value": {"signature": landed.signature, "err": err, "logs": landed.logs},
                            }
                        )

    async def _tick(self) -> None:
        while True:
            slot = await self.chain.slot()
            if slot != self._last_slot:
                self._last_slot = slot
                for sub in list(self._subs.values()):
                    if sub.kind == "slot":
                        sub.notify({"parent": slot - 1, "root": slot, "slot": slot})
                    elif sub.kind == "root":
                        sub.notify(slot)
            await asyncio.sleep(SLOT_POLL_SECONDS)


__all__ = ["KINDS", "PubSub"]
