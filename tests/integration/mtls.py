"""A real mTLS server from `openvpp init`, and partners with bundles of their own."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import grpc

from openvpp.client.channel import credentials
from openvpp.integration import bootstrap, ca
from openvpp.server import app as server_app
from openvpp.v1 import integration_pb2 as pb
from openvpp.v1 import integration_pb2_grpc, registry_pb2_grpc

KIND = {
    ca.Role.UTILITY: pb.PARTNER_KIND_UTILITY,
    ca.Role.DEVICE_VENDOR: pb.PARTNER_KIND_DEVICE_VENDOR,
    ca.Role.AGGREGATOR: pb.PARTNER_KIND_AGGREGATOR,
}


@dataclass
class Fabric:
    app: server_app.App
    data_dir: Path

    @property
    def target(self) -> str:
        return f"localhost:{self.app.port}"

    def channel(self, bundle: Path) -> grpc.aio.Channel:
        return grpc.aio.secure_channel(self.target, credentials(bundle))

    def operator(self) -> grpc.aio.Channel:
        return self.channel(self.data_dir / "operator")

    async def onboard(self, role: ca.Role, namespace: str) -> Path:
        """Onboards a partner through the API and writes its bundle."""
        key = ca.new_key()
        async with self.operator() as channel:
            response = await integration_pb2_grpc.IntegrationServiceStub(channel).OnboardPartner(
                pb.OnboardPartnerRequest(
                    kind=KIND[role],
                    legal_name=f"{namespace} Inc.",
                    namespace=namespace,
                    csr_pem=ca.make_csr(key, namespace).decode(),
                )
            )
        bundle = bootstrap.Bundle(self.data_dir / "partners" / namespace)
        bundle.write(
            ca.private_pem(key),
            (response.certificate.certificate_pem + response.chain_pem).encode(),
            ca.cert_pem(self.app_ca().root),
        )
        return bundle.directory

    def app_ca(self) -> ca.CertificateAuthority:
        return ca.CertificateAuthority.load(self.data_dir / bootstrap.CA_DIR)


def integration(channel: grpc.aio.Channel) -> integration_pb2_grpc.IntegrationServiceAsyncStub:
    return integration_pb2_grpc.IntegrationServiceStub(channel)


def registry(channel: grpc.aio.Channel) -> registry_pb2_grpc.RegistryServiceAsyncStub:
    return registry_pb2_grpc.RegistryServiceStub(channel)
