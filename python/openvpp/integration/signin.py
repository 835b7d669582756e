"""Signing in to the web app: prosumers with their Solana wallet, staff with
a one-time code bound to their partner certificate.

A wallet signs a Sign-In-With-Solana message the server wrote (domain,
address, nonce, issue and expiry times); the server verifies the Ed25519
signature over exactly the message it stored and opens a session for that
address. Staff run `openvpp partner login` with their bundle: the mTLS call
proves the certificate, and the code it returns opens a session acting as
that certificate's identity, re-checked for revocation and suspension on
every request. Challenges are good once and for minutes; sessions expire.
Only SHA-256 hashes of nonces, codes and session tokens are stored.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from solders.pubkey import Pubkey
from sqlalchemy.ext.asyncio import AsyncConnection

from openvpp import errors
from openvpp.integration.partners import Partners, serial_hex
from openvpp.kernel import clock
from openvpp.kernel.clock import Clock
from openvpp.kernel.identity import URI_PREFIX, Identity, Role
from openvpp.store import web_repo
from openvpp.store.database import Database

WALLET, STAFF = "wallet", "staff"
STATEMENT = "Sign in to OpenVPP to see your devices, earnings and bills."


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a web session acts for: a wallet, or a partner identity."""

    kind: str
    wallet: str = ""
    identity: Identity | None = None


@dataclass(frozen=True, slots=True)
class Challenge:
    message: str
    nonce: str
    expires_at_us: int


@dataclass(frozen=True, slots=True)
class NewSession:
    token: str
    principal: Principal
    expires_at_us: int


def _hash(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def _iso(us: int) -> str:
    return datetime.fromtimestamp(us / 1e6, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def siws_message(
    domain: str, address: str, uri: str, chain_id: str, nonce: str, issued_us: int, expires_us: int
) -> str:
    """The Sign-In-With-Solana text (the EIP-4361 layout wallets display)."""
    return (
        f"{domain} wants you to sign in with your Solana account:\n{address}\n\n{STATEMENT}\n\n"
        f"URI: {uri}\nVersion: 1\nChain ID: {chain_id}\nNonce: {nonce}\n"
        f"Issued At: {_iso(issued_us)}\nExpiration Time: {_iso(expires_us)}"
    )


def _address(text: str) -> str:
    try:
        return str(Pubkey.from_string(text))
    except ValueError:
        raise errors.InvalidArgument.field("address", "not a base58 Solana address", "INVALID_ADDRESS") from None


def _identity(subject: str, serial: str) -> Identity:
    role, _, namespace = subject.removeprefix(URI_PREFIX).partition("/")
    return Identity(Role(role), namespace, int(serial, 16))


class SignIn:
    def __init__(
        self,
        db: Database,
        partners: Partners,
        *,
        chain_id: str,
        session_seconds: int = 12 * 3600,
        challenge_seconds: int = 600,
        clock_us: Clock = clock.system,
    ) -> None:
        self.db = db
        self.partners = partners
        self.chain_id = chain_id
        self.session_us = session_seconds * 1_000_000
        self.challenge_us = challenge_seconds * 1_000_000
        self.clock_us = clock_us

    # -- wallets ----------------------------------------------------------------

    async def wallet_challenge(self, address: str, domain: str, uri: str) -> Challenge:
        address = _address(address)
        now = self.clock_us()
        nonce = secrets.token_urlsafe(16)
        expires = now + self.challenge_us
        message = siws_message(domain, address, uri, self.chain_id, nonce, now, expires)
        async with self.db.write() as conn:
            await web_repo.purge(conn, now)
            await web_repo.insert_challenge(
                conn,
                {
                    "secret_hash": _hash(nonce),
                    "kind": WALLET,
                    "subject": address,
                    "serial": "",
                    "message": message,
                    "expires_at_us": expires,
                },
            )
        return Challenge(message, nonce, expires)

    async def wallet_session(self, address: str, nonce: str, signature: bytes) -> NewSession:
        address = _address(address)
        if len(signature) != 64:
            raise errors.InvalidArgument.field("signature", "an Ed25519 signature is 64 bytes")
        now = self.clock_us()
        # Used up in its own transaction first: a forged answer spends the
        # nonce too, so a forger gets one try per challenge.
        async with self.db.write() as conn:
            row = await web_repo.use_challenge(conn, _hash(nonce), WALLET, now)
        if row is None or row.subject != address:
            raise errors.Unauthenticated(
                "no open sign-in for that nonce and address (used, expired or never issued)", "CHALLENGE_UNKNOWN"
            )
        try:
            Ed25519PublicKey.from_public_bytes(bytes(Pubkey.from_string(address))).verify(
                signature, row.message.encode()
            )
        except (InvalidSignature, ValueError):
            raise errors.Unauthenticated(
                "the signature is not the address's over the sign-in message", "BAD_SIGNATURE"
            ) from None
        async with self.db.write() as conn:
            return await self._open(conn, Principal(WALLET, wallet=address), address, "", now)

    # -- staff ------------------------------------------------------------------

    async def staff_code(self, caller: Identity) -> tuple[str, int]:
        """A one-time code that opens a console session as `caller`."""
        now = self.clock_us()
        code = secrets.token_urlsafe(18)
        expires = now + self.challenge_us
        async with self.db.write() as conn:
            await web_repo.purge(conn, now)
            await web_repo.insert_challenge(
                conn,
                {
                    "secret_hash": _hash(code),
                    "kind": STAFF,
                    "subject": caller.uri,
                    "serial": serial_hex(caller.serial),
                    "message": "",
                    "expires_at_us": expires,
                },
            )
        return code, expires

    async def staff_session(self, code: str) -> NewSession:
        now = self.clock_us()
        async with self.db.write() as conn:
            row = await web_repo.use_challenge(conn, _hash(code), STAFF, now)
            if row is None:
                raise errors.Unauthenticated("that login code is used, expired or unknown", "CODE_UNKNOWN")
            identity = _identity(row.subject, row.serial)
        await self.partners.authenticate(identity)
        async with self.db.write() as conn:
            return await self._open(conn, Principal(STAFF, identity=identity), row.subject, row.serial, now)

    # -- sessions ---------------------------------------------------------------

    async def _open(
        self, conn: AsyncConnection, principal: Principal, subject: str, serial: str, now: int
    ) -> NewSession:
        token = secrets.token_urlsafe(32)
        expires = now + self.session_us
        await web_repo.insert_session(
            conn,
            {
                "token_hash": _hash(token),
                "kind": principal.kind,
                "subject": subject,
                "serial": serial,
                "created_at_us": now,
                "expires_at_us": expires,
            },
        )
        return NewSession(token, principal, expires)

    async def principal(self, token: str) -> Principal:
        """The session's principal; a staff identity is checked against
        revocation and suspension now, as an mTLS call would be."""
        async with self.db.read() as conn:
            row = await web_repo.session(conn, _hash(token), self.clock_us())
        if row is None:
            raise errors.Unauthenticated("sign in first (no session, or it ended)", "NO_SESSION")
        if row.kind == WALLET:
            return Principal(WALLET, wallet=row.subject)
        return Principal(STAFF, identity=await self.partners.authenticate(_identity(row.subject, row.serial)))

    async def end(self, token: str) -> None:
        async with self.db.write() as conn:
            await web_repo.end_session(conn, _hash(token), self.clock_us())
