"""The web app over a real mTLS server, and HTTPS clients that sign in the
way the front end does: a wallet signs the server's Sign-In-With-Solana
message; staff redeem a login code their bundle's gRPC call made."""

from __future__ import annotations

import base64
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
from solders.keypair import Keypair

from openvpp.integration import bootstrap
from openvpp.v1 import integration_pb2, integration_pb2_grpc
from openvpp.web import server as web_server
from tests.integration.mtls import Fabric


@asynccontextmanager
async def web_app(fabric: Fabric) -> AsyncIterator[web_server.WebServer]:
    site = await web_server.start(fabric.app, "localhost:0")
    try:
        yield site
    finally:
        await site.stop()


def tls(fabric: Fabric) -> ssl.SSLContext:
    """Trusts exactly the deployment's CA, as a browser with it installed would."""
    return ssl.create_default_context(cafile=bootstrap.Bundle(fabric.data_dir / bootstrap.SERVER_DIR).ca)


class Client:
    """One browser-like session (its own cookie jar) against the web API."""

    def __init__(self, fabric: Fabric, site: web_server.WebServer) -> None:
        self.base = f"https://localhost:{site.port}"
        self.http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=tls(fabric)), cookie_jar=aiohttp.CookieJar()
        )

    async def close(self) -> None:
        await self.http.close()

    async def call(self, method: str, path: str, json: Any = None) -> tuple[int, Any]:
        async with self.http.request(method, self.base + path, json=json) as response:
            return response.status, await response.json()

    async def get(self, path: str) -> Any:
        status, answer = await self.call("GET", path)
        assert status == 200, answer
        return answer

    async def post(self, path: str, json: Any) -> Any:
        status, answer = await self.call("POST", path, json)
        assert status == 200, answer
        return answer

    async def sign_in_wallet(self, keypair: Keypair) -> Any:
        address = str(keypair.pubkey())
        challenge = await self.post("/api/auth/wallet/challenge", {"address": address})
        signature = bytes(keypair.sign_message(challenge["message"].encode()))
        return await self.post(
            "/api/auth/wallet/verify",
            {"address": address, "nonce": challenge["nonce"], "signature": base64.b64encode(signature).decode()},
        )

    async def sign_in_staff(self, fabric: Fabric, bundle: Path) -> Any:
        return await self.post("/api/auth/staff", {"code": await login_code(fabric, bundle)})


async def login_code(fabric: Fabric, bundle: Path) -> str:
    async with fabric.channel(bundle) as channel:
        reply = await integration_pb2_grpc.IntegrationServiceStub(channel).CreateWebLogin(
            integration_pb2.CreateWebLoginRequest()
        )
    return reply.code


@asynccontextmanager
async def client(fabric: Fabric, site: web_server.WebServer) -> AsyncIterator[Client]:
    c = Client(fabric, site)
    try:
        yield c
    finally:
        await c.close()
