"""Authentication from the TLS auth context and the one authorization table (role x RPC).

Identity comes only from the verified client certificate, never from
metadata or request fields. The table says which roles may call each RPC
and whose data it touches (`kernel.tenancy.Scope`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any, NamedTuple

import grpc
from cryptography import x509

from openvpp import errors
from openvpp.integration import ca
from openvpp.integration.partners import Partners
from openvpp.kernel.identity import Identity, Role
from openvpp.kernel.tenancy import Scope

Role = Role
ANY_ROLE = frozenset(Role)
OPERATOR = frozenset({Role.OPERATOR})
VENDORS = frozenset({Role.OPERATOR, Role.DEVICE_VENDOR})
# The operator and the two parties a route connects.
PARTIES = frozenset({Role.OPERATOR, Role.UTILITY, Role.DEVICE_VENDOR})
UTILITIES = frozenset({Role.OPERATOR, Role.UTILITY})

_REGISTRY = "/openvpp.v1.RegistryService/"
_INTEGRATION = "/openvpp.v1.IntegrationService/"
_ROUTING = "/openvpp.v1.RoutingService/"
_SETTLEMENT = "/openvpp.v1.SettlementService/"
_BILLING = "/openvpp.v1.BillingService/"


class Rule(NamedTuple):
    """Who may call an RPC: the roles, and whose data it touches (the tenant scope)."""

    roles: frozenset[Role]
    scope: Scope


PUBLIC_DATA, OWNED, PRIVATE, FILTERED = Scope.PUBLIC, Scope.OWNED, Scope.PRIVATE, Scope.FILTERED
OPERATOR_ONLY, SIGNED = Scope.OPERATOR, Scope.SIGNED

# Role x RPC x tenant. Health needs no identity; anything else absent is
# refused. The scope is applied by the domain (`kernel.tenancy`), which
# receives the caller's identity; the descriptor-driven tenant test checks
# every RPC against it.
TABLE: dict[str, Rule] = {
    _REGISTRY + "RegisterDevice": Rule(VENDORS, OWNED),
    _REGISTRY + "BulkRegisterDevices": Rule(VENDORS, FILTERED),
    _REGISTRY + "UpdateDevice": Rule(VENDORS, OWNED),
    _REGISTRY + "SetDeviceStatus": Rule(VENDORS, OWNED),
    _REGISTRY + "RegisterDeviceCertificate": Rule(VENDORS, OWNED),
    _REGISTRY + "GetDevice": Rule(ANY_ROLE, PUBLIC_DATA),
    _REGISTRY + "ListDevices": Rule(ANY_ROLE, PUBLIC_DATA),
    _REGISTRY + "WatchRegistry": Rule(ANY_ROLE, PUBLIC_DATA),
    _REGISTRY + "GetRegistryHead": Rule(ANY_ROLE, PUBLIC_DATA),
    _REGISTRY + "GetInclusionProof": Rule(ANY_ROLE, PUBLIC_DATA),
    _REGISTRY + "AnchorRegistry": Rule(OPERATOR, OPERATOR_ONLY),
    _INTEGRATION + "OnboardPartner": Rule(OPERATOR, OPERATOR_ONLY),
    _INTEGRATION + "ListPartners": Rule(OPERATOR, OPERATOR_ONLY),
    _INTEGRATION + "SuspendPartner": Rule(OPERATOR, OPERATOR_ONLY),
    _INTEGRATION + "ReinstatePartner": Rule(OPERATOR, OPERATOR_ONLY),
    _INTEGRATION + "GetPartner": Rule(ANY_ROLE, OWNED),
    _INTEGRATION + "IssueCertificate": Rule(ANY_ROLE, OWNED),
    _INTEGRATION + "RenewCertificate": Rule(ANY_ROLE, OWNED),
    _INTEGRATION + "RevokeCertificate": Rule(ANY_ROLE, OWNED),
    _INTEGRATION + "ListCertificates": Rule(ANY_ROLE, OWNED),
    _INTEGRATION + "GetCrl": Rule(ANY_ROLE, PUBLIC_DATA),
    # The code signs in as the caller's own identity, nobody else's.
    _INTEGRATION + "CreateWebLogin": Rule(ANY_ROLE, OWNED),
    _INTEGRATION + "RegisterEndpoint": Rule(PARTIES, OWNED),
    _INTEGRATION + "ValidateEndpoint": Rule(PARTIES, OWNED),
    _INTEGRATION + "GetEndpoint": Rule(PARTIES, OWNED),
    _INTEGRATION + "ListEndpoints": Rule(PARTIES, OWNED),
    _INTEGRATION + "RemoveEndpoint": Rule(PARTIES, OWNED),
    _ROUTING + "CreateProgram": Rule(UTILITIES, OWNED),
    _ROUTING + "AttachEndpoint": Rule(UTILITIES, OWNED),
    _ROUTING + "DetachEndpoint": Rule(UTILITIES, OWNED),
    _ROUTING + "GetProgram": Rule(ANY_ROLE, PUBLIC_DATA),
    _ROUTING + "ListPrograms": Rule(ANY_ROLE, PUBLIC_DATA),
    _ROUTING + "EnrollDevice": Rule(PARTIES, OWNED),
    _ROUTING + "UnenrollDevice": Rule(PARTIES, OWNED),
    _ROUTING + "ListEnrollments": Rule(PARTIES, FILTERED),
    _ROUTING + "Resolve": Rule(PARTIES, OWNED),
    _ROUTING + "ResolveBatch": Rule(PARTIES, FILTERED),
    _ROUTING + "WatchRoutes": Rule(PARTIES, FILTERED),
    _ROUTING + "Diagnose": Rule(PARTIES, OWNED),
    _ROUTING + "GetRoutingKey": Rule(ANY_ROLE, PUBLIC_DATA),
    _SETTLEMENT + "GetChainInfo": Rule(ANY_ROLE, PUBLIC_DATA),
    _SETTLEMENT + "CreateUseCaseToken": Rule(UTILITIES, OWNED),
    _SETTLEMENT + "GetUseCaseToken": Rule(ANY_ROLE, PUBLIC_DATA),
    _SETTLEMENT + "ListUseCaseTokens": Rule(ANY_ROLE, PUBLIC_DATA),
    _SETTLEMENT + "FundReserve": Rule(UTILITIES, OWNED),
    _SETTLEMENT + "FundTestWallet": Rule(OPERATOR, OPERATOR_ONLY),
    _SETTLEMENT + "GetReserve": Rule(ANY_ROLE, PUBLIC_DATA),
    # The holder's signature on the transaction is what authorises a
    # redemption; any partner may relay one for its customers.
    _SETTLEMENT + "PrepareRedemption": Rule(ANY_ROLE, OWNED),
    _SETTLEMENT + "SubmitRedemption": Rule(ANY_ROLE, PRIVATE),
    _SETTLEMENT + "GetRedemption": Rule(ANY_ROLE, PRIVATE),
    _SETTLEMENT + "SubmitReadings": Rule(VENDORS, FILTERED),
    _SETTLEMENT + "PublishTariff": Rule(UTILITIES, OWNED),
    _SETTLEMENT + "GetTariff": Rule(ANY_ROLE, PUBLIC_DATA),
    _SETTLEMENT + "RegisterPriceFeed": Rule(UTILITIES, OWNED),
    # The oracle key's signature over the points is what authorises them.
    _SETTLEMENT + "PublishPriceFeed": Rule(ANY_ROLE, SIGNED),
    _SETTLEMENT + "ConfigureProgramSettlement": Rule(UTILITIES, OWNED),
    _SETTLEMENT + "GetProgramSettlement": Rule(ANY_ROLE, OWNED),
    _SETTLEMENT + "CreateDrEvent": Rule(UTILITIES, OWNED),
    _SETTLEMENT + "GetDrEvent": Rule(UTILITIES, PRIVATE),
    _SETTLEMENT + "Settle": Rule(UTILITIES, OWNED),
    _SETTLEMENT + "GetSettlement": Rule(ANY_ROLE, PRIVATE),
    _SETTLEMENT + "GetBalance": Rule(ANY_ROLE, FILTERED),
    _SETTLEMENT + "ListPayouts": Rule(ANY_ROLE, FILTERED),
    _SETTLEMENT + "CheckLedger": Rule(UTILITIES, FILTERED),
    _SETTLEMENT + "GetStatement": Rule(ANY_ROLE, OWNED),
    _SETTLEMENT + "StreamSettlements": Rule(UTILITIES, FILTERED),
    # Customers' bills are personal data: the program's utility and the operator only.
    _BILLING + "ConfigureBilling": Rule(UTILITIES, OWNED),
    _BILLING + "GetBillingPlan": Rule(UTILITIES, PRIVATE),
    _BILLING + "GetBill": Rule(UTILITIES, PRIVATE),
    _BILLING + "ListBills": Rule(UTILITIES, PRIVATE),
    # The holder's signature on the Approve is what authorises autopay; the
    # program's utility relays it for its customer.
    _BILLING + "PrepareAutopay": Rule(UTILITIES, OWNED),
    _BILLING + "SubmitAutopay": Rule(UTILITIES, OWNED),
    _BILLING + "GetAutopay": Rule(UTILITIES, PRIVATE),
    _BILLING + "RequestBillPayment": Rule(UTILITIES, OWNED),
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": Rule(ANY_ROLE, PUBLIC_DATA),
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo": Rule(ANY_ROLE, PUBLIC_DATA),
}
PUBLIC = frozenset({"/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Watch"})

_CALLER: ContextVar[Identity | None] = ContextVar("openvpp_caller", default=None)

# `serve --insecure` (loopback only, development): every call acts as the operator.
INSECURE_IDENTITY = Identity(Role.OPERATOR, "operator", 0)


@contextlib.contextmanager
def acting_as(identity: Identity) -> Iterator[None]:
    """Runs servicer code as `identity`, the way an admitted call does: the
    web console's calls, whose identity a login code bound to a certificate."""
    token = _CALLER.set(identity)
    try:
        yield
    finally:
        _CALLER.reset(token)


def caller() -> Identity:
    """The authenticated identity of the current RPC."""
    identity = _CALLER.get()
    if identity is None:
        raise errors.Unauthenticated("this call carries no verified client certificate", "NO_CLIENT_CERT")
    return identity


@functools.lru_cache(maxsize=4096)
def _certificate_identity(pem: bytes) -> Identity:
    """The identity a certificate names. Parsing is pure, so it is cached by
    the certificate's bytes; revocation and suspension are checked per call."""
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError:
        raise errors.Unauthenticated("the client certificate cannot be read", "CERT_UNREADABLE") from None
    return ca.identity_of(cert)


class PartnerLimits:
    """Fair shares between partners on this replica.

    The event loop serves whatever is runnable in arrival order, so a partner
    with hundreds of calls in flight would make everyone else's call wait
    behind all of them. Each partner's unary calls therefore run at most
    `active` at a time; its further calls wait in its own queue (off the
    loop's run queue), and past `calls` in flight they are refused. Open
    streams are capped at `streams`. Counted in-process: each replica
    enforces its own shares."""

    def __init__(self, calls: int, streams: int, active: int = 8) -> None:
        self.limits = {False: calls, True: streams}
        self.active = active
        self.held: dict[bool, dict[str, int]] = {False: {}, True: {}}
        self._gates: dict[str, asyncio.Semaphore] = {}

    def enter(self, namespace: str, streaming: bool) -> asyncio.Semaphore | None:
        """Counts the call in (refusing it past the limit) and returns the
        partner's gate a unary call must pass; `leave` counts it out."""
        held = self.held[streaming]
        count = held.get(namespace, 0)
        if count >= self.limits[streaming]:
            kind = "open streams" if streaming else "calls in flight"
            raise errors.ResourceExhausted(
                f"{namespace} already has {self.limits[streaming]} {kind} on this server; retry shortly",
                "PARTNER_STREAM_LIMIT" if streaming else "PARTNER_CALL_LIMIT",
                metadata={"limit": str(self.limits[streaming])},
                retry_after_seconds=1.0 if streaming else 0.05,
            )
        held[namespace] = count + 1
        if streaming:
            return None
        gate = self._gates.get(namespace)
        if gate is None:
            gate = self._gates[namespace] = asyncio.Semaphore(self.active)
        return gate

    def leave(self, namespace: str, streaming: bool) -> None:
        held = self.held[streaming]
        held[namespace] -= 1
        if not held[namespace]:
            del held[namespace]
            if not streaming:
                self._gates.pop(namespace, None)


class Authenticator:
    """Who is calling and whether they may: the certificate's claim against
    the table, then revocation and suspension, then the partner's limits."""

    def __init__(self, partners: Partners, insecure: bool, limits: PartnerLimits) -> None:
        self.partners = partners
        self.insecure = insecure
        self.limits = limits

    def claim(self, method: str, context: grpc.aio.ServicerContext[Any, Any]) -> Identity:
        """Who the verified certificate says the caller is, and whether that
        role may call `method`; no database work, so refusing is cheap."""
        rule = TABLE.get(method)
        if rule is None:
            raise errors.PermissionDenied(f"{method} is not exposed", "UNKNOWN_METHOD")
        if self.insecure:
            return INSECURE_IDENTITY
        pems = context.auth_context().get("x509_pem_cert")
        if not pems:
            raise errors.Unauthenticated("a client certificate is required", "NO_CLIENT_CERT")
        identity = _certificate_identity(next(iter(pems)))
        if identity.role not in rule.roles:
            raise errors.PermissionDenied(
                f"role {identity.role.value} may not call {method.rsplit('/', 1)[-1]}", "ROLE_NOT_ALLOWED"
            )
        return identity

    async def admit(self, claimed: Identity) -> None:
        """Checks the claim against revocation and suspension, now, and makes
        it the call's identity (`caller()`)."""
        _CALLER.set(claimed if self.insecure else await self.partners.authenticate(claimed))
