"""gRPC front of the Integration service: proto in, domain call, proto out."""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf import timestamp_pb2

from openvpp.integration.partners import CertificateState, Contact, Partners, PartnerState
from openvpp.server.auth import caller
from openvpp.v1 import integration_pb2 as pb
from openvpp.v1 import integration_pb2_grpc

Context = grpc.aio.ServicerContext[Any, Any]


def _ts(micros: int) -> timestamp_pb2.Timestamp:
    seconds, rest = divmod(micros, 1_000_000)
    return timestamp_pb2.Timestamp(seconds=seconds, nanos=rest * 1000)


def partner_message(p: PartnerState) -> pb.Partner:
    return pb.Partner(
        namespace=p.namespace,
        kind=p.kind,  # type: ignore[arg-type]
        legal_name=p.legal_name,
        contacts=[pb.Contact(name=c.name, email=c.email, phone=c.phone) for c in p.contacts],
        status=p.status,  # type: ignore[arg-type]
        status_reason=p.status_reason,
        onboarded_at=_ts(p.onboarded_at_us),
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
        not_before=_ts(c.not_before_us),
        not_after=_ts(c.not_after_us),
        status=status,
        revocation_reason=c.revocation_reason,  # type: ignore[arg-type]
        revoked_at=_ts(c.revoked_at_us) if c.revoked_at_us is not None else None,
        certificate_pem=c.certificate_pem,
    )


class IntegrationServicer(integration_pb2_grpc.IntegrationServiceServicer):
    def __init__(self, partners: Partners) -> None:
        self.partners = partners

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
        return pb.GetCrlResponse(crl_der=await self.partners.crl(), this_update=_ts(self.partners.clock_us()))
