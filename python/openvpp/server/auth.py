"""Authentication from the TLS auth context and the one authorization table (role x RPC).

Identity comes only from the verified client certificate, never from
metadata or request fields. The table says which roles may call each RPC;
tenant rules (a vendor acts only in its own namespace) live in the domain,
which receives the caller's identity.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextvars import ContextVar
from typing import Any

import grpc
from cryptography import x509

from openvpp import errors
from openvpp.integration import ca
from openvpp.integration.partners import Partners
from openvpp.server.interceptors import rewrap

Role = ca.Role
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

# Roles allowed per RPC. Health needs no identity; anything else absent is refused.
TABLE: dict[str, frozenset[Role]] = {
    _REGISTRY + "RegisterDevice": VENDORS,
    _REGISTRY + "BulkRegisterDevices": VENDORS,
    _REGISTRY + "UpdateDevice": VENDORS,
    _REGISTRY + "SetDeviceStatus": VENDORS,
    _REGISTRY + "RegisterDeviceCertificate": VENDORS,
    _REGISTRY + "GetDevice": ANY_ROLE,
    _REGISTRY + "ListDevices": ANY_ROLE,
    _REGISTRY + "WatchRegistry": ANY_ROLE,
    _REGISTRY + "GetRegistryHead": ANY_ROLE,
    _REGISTRY + "GetInclusionProof": ANY_ROLE,
    _REGISTRY + "AnchorRegistry": OPERATOR,
    _INTEGRATION + "OnboardPartner": OPERATOR,
    _INTEGRATION + "ListPartners": OPERATOR,
    _INTEGRATION + "SuspendPartner": OPERATOR,
    _INTEGRATION + "ReinstatePartner": OPERATOR,
    _INTEGRATION + "GetPartner": ANY_ROLE,
    _INTEGRATION + "IssueCertificate": ANY_ROLE,
    _INTEGRATION + "RenewCertificate": ANY_ROLE,
    _INTEGRATION + "RevokeCertificate": ANY_ROLE,
    _INTEGRATION + "ListCertificates": ANY_ROLE,
    _INTEGRATION + "GetCrl": ANY_ROLE,
    _INTEGRATION + "RegisterEndpoint": PARTIES,
    _INTEGRATION + "ValidateEndpoint": PARTIES,
    _INTEGRATION + "GetEndpoint": PARTIES,
    _INTEGRATION + "ListEndpoints": PARTIES,
    _INTEGRATION + "RemoveEndpoint": PARTIES,
    _ROUTING + "CreateProgram": UTILITIES,
    _ROUTING + "AttachEndpoint": UTILITIES,
    _ROUTING + "DetachEndpoint": UTILITIES,
    _ROUTING + "GetProgram": ANY_ROLE,
    _ROUTING + "ListPrograms": ANY_ROLE,
    _ROUTING + "EnrollDevice": PARTIES,
    _ROUTING + "UnenrollDevice": PARTIES,
    _ROUTING + "ListEnrollments": PARTIES,
    _ROUTING + "Resolve": PARTIES,
    _ROUTING + "ResolveBatch": PARTIES,
    _ROUTING + "WatchRoutes": PARTIES,
    _ROUTING + "Diagnose": PARTIES,
    _ROUTING + "GetRoutingKey": ANY_ROLE,
    _SETTLEMENT + "GetChainInfo": ANY_ROLE,
    _SETTLEMENT + "CreateUseCaseToken": UTILITIES,
    _SETTLEMENT + "GetUseCaseToken": ANY_ROLE,
    _SETTLEMENT + "ListUseCaseTokens": ANY_ROLE,
    _SETTLEMENT + "FundReserve": UTILITIES,
    _SETTLEMENT + "GetReserve": ANY_ROLE,
    # The holder's signature on the transaction is what authorises a
    # redemption; any partner may relay one for its customers.
    _SETTLEMENT + "PrepareRedemption": ANY_ROLE,
    _SETTLEMENT + "SubmitRedemption": ANY_ROLE,
    _SETTLEMENT + "GetRedemption": ANY_ROLE,
    _SETTLEMENT + "SubmitReadings": VENDORS,
    _SETTLEMENT + "PublishTariff": UTILITIES,
    _SETTLEMENT + "GetTariff": ANY_ROLE,
    _SETTLEMENT + "RegisterPriceFeed": UTILITIES,
    # The oracle key's signature over the points is what authorises them.
    _SETTLEMENT + "PublishPriceFeed": ANY_ROLE,
    _SETTLEMENT + "ConfigureProgramSettlement": UTILITIES,
    _SETTLEMENT + "GetProgramSettlement": ANY_ROLE,
    _SETTLEMENT + "CreateDrEvent": UTILITIES,
    _SETTLEMENT + "GetDrEvent": UTILITIES,
    _SETTLEMENT + "Settle": UTILITIES,
    _SETTLEMENT + "GetSettlement": ANY_ROLE,
    _SETTLEMENT + "GetBalance": ANY_ROLE,
    _SETTLEMENT + "ListPayouts": ANY_ROLE,
    _SETTLEMENT + "CheckLedger": UTILITIES,
    _SETTLEMENT + "GetStatement": ANY_ROLE,
    _SETTLEMENT + "StreamSettlements": UTILITIES,
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": ANY_ROLE,
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo": ANY_ROLE,
}
PUBLIC = frozenset({"/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Watch"})

_CALLER: ContextVar[ca.Identity | None] = ContextVar("openvpp_caller", default=None)

# `serve --insecure` (loopback only, development): every call acts as the operator.
INSECURE_IDENTITY = ca.Identity(Role.OPERATOR, "operator", 0)


def caller() -> ca.Identity:
    """The authenticated identity of the current RPC."""
    identity = _CALLER.get()
    if identity is None:
        raise errors.Unauthenticated("this call carries no verified client certificate", "NO_CLIENT_CERT")
    return identity


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """Authenticates every RPC in the table and checks the caller's role."""

    def __init__(self, partners: Partners, insecure: bool) -> None:
        self.partners = partners
        self.insecure = insecure

    async def _identify(self, method: str, context: grpc.aio.ServicerContext[Any, Any]) -> ca.Identity:
        if method not in TABLE:
            raise errors.PermissionDenied(f"{method} is not exposed", "UNKNOWN_METHOD")
        if self.insecure:
            return INSECURE_IDENTITY
        pems = context.auth_context().get("x509_pem_cert")
        if not pems:
            raise errors.Unauthenticated("a client certificate is required", "NO_CLIENT_CERT")
        try:
            cert = x509.load_pem_x509_certificate(next(iter(pems)))
        except ValueError:
            raise errors.Unauthenticated("the client certificate cannot be read", "CERT_UNREADABLE") from None
        identity = await self.partners.authenticate(ca.identity_of(cert))
        if identity.role not in TABLE[method]:
            raise errors.PermissionDenied(
                f"role {identity.role.value} may not call {method.rsplit('/', 1)[-1]}", "ROLE_NOT_ALLOWED"
            )
        return identity

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or method in PUBLIC:
            return handler

        def unary(behavior: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
            async def wrapped(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
                _CALLER.set(await self._identify(method, context))
                return await behavior(request, context)

            return wrapped

        def streaming(behavior: Any) -> Callable[..., AsyncIterator[Any]]:
            async def wrapped(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
                _CALLER.set(await self._identify(method, context))
                async for response in behavior(request, context):
                    yield response

            return wrapped

        return rewrap(handler, unary, streaming)
