"""Signing in: a wallet's signature over the exact challenge, once; a staff
code, once, as its certificate; sessions end on sign-out and revocation."""

from __future__ import annotations

import base64
from pathlib import Path

from solders.keypair import Keypair

from openvpp.integration import ca
from openvpp.v1 import integration_pb2, integration_pb2_grpc
from tests.integration.mtls import Fabric
from tests.web.world import client, login_code, web_app


async def test_wallet_sign_in_needs_the_wallets_signature_over_the_challenge_once(fabric: Fabric) -> None:
    wallet, other = Keypair(), Keypair()
    address = str(wallet.pubkey())
    async with web_app(fabric) as site, client(fabric, site) as c:
        status, answer = await c.call("GET", "/api/me")
        assert (status, answer["error"]["reason"]) == (401, "NO_SESSION")
        challenge = await c.post("/api/auth/wallet/challenge", {"address": address})
        message = challenge["message"]
        assert message.startswith(f"localhost:{site.port} wants you to sign in with your Solana account:\n{address}\n")
        assert f"Nonce: {challenge['nonce']}" in message
        assert f"URI: https://localhost:{site.port}" in message
        forged = base64.b64encode(bytes(other.sign_message(message.encode()))).decode()
        status, answer = await c.call(
            "POST", "/api/auth/wallet/verify", {"address": address, "nonce": challenge["nonce"], "signature": forged}
        )
        assert (status, answer["error"]["reason"]) == (401, "BAD_SIGNATURE")
        # The forger's try used the nonce up: the real signature needs a new challenge.
        real = base64.b64encode(bytes(wallet.sign_message(message.encode()))).decode()
        status, answer = await c.call(
            "POST", "/api/auth/wallet/verify", {"address": address, "nonce": challenge["nonce"], "signature": real}
        )
        assert (status, answer["error"]["reason"]) == (401, "CHALLENGE_UNKNOWN")
        assert await c.sign_in_wallet(wallet) == {"kind": "wallet", "wallet": address}
        assert await c.get("/api/me") == {"kind": "wallet", "wallet": address}
        status, answer = await c.call("GET", "/api/staff/programs")
        assert (status, answer["error"]["reason"]) == (403, "NOT_A_STAFF_SESSION")
        await c.post("/api/auth/logout", {})
        assert (await c.call("GET", "/api/me"))[0] == 401


async def test_bad_sign_in_requests_are_precise(fabric: Fabric) -> None:
    async with web_app(fabric) as site, client(fabric, site) as c:
        status, answer = await c.call("POST", "/api/auth/wallet/challenge", {"address": "not-base58!"})
        assert (status, answer["error"]["reason"]) == (400, "INVALID_ADDRESS")
        assert answer["error"]["fieldViolations"][0]["field"] == "address"
        status, answer = await c.call("POST", "/api/auth/wallet/verify", {"address": str(Keypair().pubkey())})
        assert status == 400
        assert answer["error"]["fieldViolations"][0]["field"] == "nonce"
        async with c.http.post(c.base + "/api/auth/staff", data=b"{not json") as response:
            assert response.status == 400
            assert (await response.json())["error"]["reason"] == "INVALID_JSON"
        async with c.http.post(
            c.base + "/api/auth/staff", json={"code": "x"}, headers={"Origin": "https://evil.example"}
        ) as response:
            assert response.status == 403
            assert (await response.json())["error"]["reason"] == "CROSS_ORIGIN"
        status, answer = await c.call("GET", "/api/nothing/here")
        assert (status, answer["error"]["reason"]) == (404, "NO_SUCH_ENDPOINT")


async def test_staff_code_signs_in_once_as_its_certificate_until_revoked(fabric: Fabric, tmp_path: Path) -> None:
    utility = await fabric.onboard(ca.Role.UTILITY, "pge")
    async with web_app(fabric) as site, client(fabric, site) as c, client(fabric, site) as again:
        code = await login_code(fabric, utility)
        assert await c.post("/api/auth/staff", {"code": code}) == {
            "kind": "staff",
            "role": "utility",
            "namespace": "pge",
        }
        assert await c.get("/api/staff/me") == {"role": "utility", "namespace": "pge"}
        status, answer = await again.call("POST", "/api/auth/staff", {"code": code})
        assert (status, answer["error"]["reason"]) == (401, "CODE_UNKNOWN")
        status, answer = await c.call("GET", "/api/prosumer/overview")
        assert (status, answer["error"]["reason"]) == (403, "NOT_A_WALLET_SESSION")
        async with fabric.channel(utility) as channel:
            stub = integration_pb2_grpc.IntegrationServiceStub(channel)
            (cert,) = (
                await stub.ListCertificates(integration_pb2.ListCertificatesRequest(namespace="pge"))
            ).certificates
        async with fabric.operator() as channel:
            await integration_pb2_grpc.IntegrationServiceStub(channel).RevokeCertificate(
                integration_pb2.RevokeCertificateRequest(
                    serial=cert.serial, reason=integration_pb2.REVOCATION_REASON_KEY_COMPROMISE
                )
            )
        status, answer = await c.call("GET", "/api/staff/me")
        assert (status, answer["error"]["reason"]) == (401, "CERT_REVOKED")
