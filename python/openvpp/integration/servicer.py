"""gRPC front of the Integration service: proto in, domain call, proto out."""

from __future__ import annotations

from typing import Any

import grpc

from openvpp.integration.endpoints import Endpoints, EndpointSpec, EndpointState
from openvpp.integration.partners import CertificateState, Contact, Partners, PartnerState
from openvpp.integration.probe import Outcome
from openvpp.integration.signin import SignIn
from openvpp.kernel.timestamps import from_micros
from openvpp.server.auth import caller
from openvpp.v1 import integration_pb2 as pb
from openvpp.v1 import integration_pb2_grpc

Context = grpc.aio.ServicerContext[Any, Any]


def partner_message(p: PartnerState) -> pb.Partner:
    return pb.Partner(
        namespace=p.namespace,
        kind=p.kind,  # type: ignore[arg-type]
        legal_name=p.legal_name,
        contacts=[pb.Contact(name=c.name, email=c.email, phone=c.phone) for c in p.contacts],
        status=p.status,  # type: ignore[arg-type]
        status_reason=p.status_reason,
        onboarded_at=from_micros(p.onboarded_at_us),
    )


def certificate_message(c: CertificateState, now_us: int) -> pb.Certificate:
    if c.revoked_at_us is not None:
        status = pb.CERTIFICATE_STATUS_REVOKED
    elif c.not_after_us < now_us:
        status = pb.CERTIFICATE_STATUS_EXPIRED
    else:
        status = pb.CERTIFICATE_STATUS_VALID
    return pb.Certificate(
        serial=c.serial,
        namespace=c.namespace,
        kind=c.kind,  # type: ignore[arg-type]
        not_before=from_micros(c.not_before_us),
        not_after=from_micros(c.not_after_us),
        status=status,
        revocation_reason=c.revocation_reason,  # type: ignore[arg-type]
        revoked_at=from_micros(c.revoked_at_us) if c.revoked_at_us is not None else None,
        certificate_pem=c.certificate_pem,
    )


def probe_message(o: Outcome) -> pb.ProbeResult:
    return pb.ProbeResult(
        passed=o.passed,
        probed_at=from_micros(o.probed_at_us),
        spki_pins=o.spki_pins,
        capabilities=o.capabilities,
        steps=[pb.ProbeStep(name=s.name, passed=s.passed, detail=s.detail, duration_ms=s.duration_ms) for s in o.steps],
        failure_reason=o.failure_reason,
        failure_detail=o.failure_detail,
        tls_version=o.tls_version,
        peer_subject=o.peer_subject,
        peer_not_after=from_micros(o.peer_not_after_us) if o.peer_not_after_us else None,
    )


def endpoint_message(e: EndpointState) -> pb.Endpoint:
    s = e.spec
    return pb.Endpoint(
        endpoint_id=e.endpoint_id,
        namespace=s.namespace,
        name=s.name,
        url=s.url,
        protocol=s.protocol,  # type: ignore[arg-type]
        programs=s.programs,
        tls_server_name=s.tls_server_name,
        auth_mode=s.auth_mode,  # type: ignore[arg-type]
        health_path=s.health_path,
        trust_anchors_pem=s.trust_anchors_pem,
        expected_spki_pins=s.expected_spki_pins,
        state=e.state,  # type: ignore[arg-type]
        last_probe=probe_message(e.probe),
        registered_at=from_micros(e.registered_at_us),
        updated_at=from_micros(e.updated_at_us),
    )


class IntegrationServicer(integration_pb2_grpc.IntegrationServiceServicer):
    def __init__(self, partners: Partners, endpoints: Endpoints, signin: SignIn, web_url: str = "") -> None:
        self.partners = partners
        self.endpoints = endpoints
        self.signin = signin
        self.web_url = web_url

    def _cert(self, c: CertificateState) -> pb.Certificate:
        return certificate_message(c, self.partners.clock_us())

    def _chain(self) -> str:
        return self.partners.authority.chain_pem().decode()

    async def OnboardPartner(self, request: pb.OnboardPartnerRequest, context: Context) -> pb.OnboardPartnerResponse:
        partner, cert = await self.partners.onboard(
            caller(),
            request.kind,
            request.legal_name,
            request.namespace,
            [Contact(c.name, c.email, c.phone) for c in request.contacts],
            request.csr_pem,
            request.validity_days,
        )
        return pb.OnboardPartnerResponse(
            partner=partner_message(partner), certificate=self._cert(cert), chain_pem=self._chain()
        )

    async def GetPartner(self, request: pb.GetPartnerRequest, context: Context) -> pb.GetPartnerResponse:
        return pb.GetPartnerResponse(partner=partner_message(await self.partners.get(caller(), request.namespace)))

    async def ListPartners(self, request: pb.ListPartnersRequest, context: Context) -> pb.ListPartnersResponse:
        found, token = await self.partners.list_partners(
            request.kind, request.status, request.page_size, request.page_token
        )
        return pb.ListPartnersResponse(partners=[partner_message(p) for p in found], next_page_token=token)

    async def SuspendPartner(self, request: pb.SuspendPartnerRequest, context: Context) -> pb.SuspendPartnerResponse:
        state = await self.partners.set_status(caller(), request.namespace, pb.PARTNER_STATUS_SUSPENDED, request.reason)
        return pb.SuspendPartnerResponse(partner=partner_message(state))

    async def ReinstatePartner(
        self, request: pb.ReinstatePartnerRequest, context: Context
    ) -> pb.ReinstatePartnerResponse:
        state = await self.partners.set_status(caller(), request.namespace, pb.PARTNER_STATUS_ACTIVE, request.reason)
        return pb.ReinstatePartnerResponse(partner=partner_message(state))

    async def IssueCertificate(
        self, request: pb.IssueCertificateRequest, context: Context
    ) -> pb.IssueCertificateResponse:
        cert = await self.partners.issue(caller(), request.namespace, request.csr_pem, request.validity_days)
        return pb.IssueCertificateResponse(certificate=self._cert(cert), chain_pem=self._chain())

    async def RenewCertificate(
        self, request: pb.RenewCertificateRequest, context: Context
    ) -> pb.RenewCertificateResponse:
        cert = await self.partners.renew(caller(), request.serial, request.csr_pem, request.validity_days)
        return pb.RenewCertificateResponse(certificate=self._cert(cert), chain_pem=self._chain())

    async def RevokeCertificate(
        self, request: pb.RevokeCertificateRequest, context: Context
    ) -> pb.RevokeCertificateResponse:
        cert = await self.partners.revoke(caller(), request.serial, request.reason)
        return pb.RevokeCertificateResponse(certificate=self._cert(cert))

    async def ListCertificates(
        self, request: pb.ListCertificatesRequest, context: Context
    ) -> pb.ListCertificatesResponse:
        certs = await self.partners.certificates(caller(), request.namespace)
        return pb.ListCertificatesResponse(certificates=[self._cert(c) for c in certs])

    async def GetCrl(self, request: pb.GetCrlRequest, context: Context) -> pb.GetCrlResponse:
        return pb.GetCrlResponse(crl_der=await self.partners.crl(), this_update=from_micros(self.partners.clock_us()))

    async def CreateWebLogin(self, request: pb.CreateWebLoginRequest, context: Context) -> pb.CreateWebLoginResponse:
        code, expires_us = await self.signin.staff_code(caller())
        url = f"{self.web_url}/#/staff/login?code={code}" if self.web_url else ""
        return pb.CreateWebLoginResponse(code=code, expires_at=from_micros(expires_us), login_url=url)

    async def RegisterEndpoint(
        self, request: pb.RegisterEndpointRequest, context: Context
    ) -> pb.RegisterEndpointResponse:
        spec = EndpointSpec(
            request.namespace,
            request.name,
            request.url,
            request.protocol,
            tuple(request.programs),
            request.tls_server_name,
            request.auth_mode,
            request.health_path,
            request.trust_anchors_pem,
            tuple(request.expected_spki_pins),
        )
        return pb.RegisterEndpointResponse(endpoint=endpoint_message(await self.endpoints.register(caller(), spec)))

    async def ValidateEndpoint(
        self, request: pb.ValidateEndpointRequest, context: Context
    ) -> pb.ValidateEndpointResponse:
        state = await self.endpoints.validate(caller(), request.endpoint_id)
        return pb.ValidateEndpointResponse(endpoint=endpoint_message(state))

    async def GetEndpoint(self, request: pb.GetEndpointRequest, context: Context) -> pb.GetEndpointResponse:
        return pb.GetEndpointResponse(
            endpoint=endpoint_message(await self.endpoints.get(caller(), request.endpoint_id))
        )

    async def ListEndpoints(self, request: pb.ListEndpointsRequest, context: Context) -> pb.ListEndpointsResponse:
        found, token = await self.endpoints.list_endpoints(
            caller(),
            request.namespace,
            request.protocol,
            request.state,
            request.program,
            request.page_size,
            request.page_token,
        )
        return pb.ListEndpointsResponse(endpoints=[endpoint_message(e) for e in found], next_page_token=token)

    async def RemoveEndpoint(self, request: pb.RemoveEndpointRequest, context: Context) -> pb.RemoveEndpointResponse:
        await self.endpoints.remove(caller(), request.endpoint_id)
        return pb.RemoveEndpointResponse()
