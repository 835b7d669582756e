"""`openvpp init`: a data directory with a CA, the server's certificate and an
operator client bundle, ready for `openvpp serve` over mutual TLS."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, select

from openvpp import keys
from openvpp.chain.keyring import Keyring
from openvpp.integration import ca
from openvpp.integration.partners import certificate_row, partner_row
from openvpp.kernel import clock
from openvpp.store import migrate
from openvpp.store.database import sync_url
from openvpp.store.schema import certificates, partners
from openvpp.v1 import integration_pb2 as pb

CA_DIR = "ca"
SERVER_DIR = "server"
OPERATOR_NAMESPACE = "operator"
DEFAULT_CLIENT_DAYS = 30


@dataclass(frozen=True, slots=True)
class Bundle:
    """A partner's credentials on disk: key, certificate chain, CA root."""

    directory: Path

    @property
    def key(self) -> Path:
        return self.directory / "key.pem"

    @property
    def cert(self) -> Path:
        return self.directory / "cert.pem"

    @property
    def ca(self) -> Path:
        return self.directory / "ca.pem"

    def write(self, key_pem: bytes, chain_pem: bytes, root_pem: bytes) -> None:
        ca.write_private(self.key, key_pem)
        self.cert.write_bytes(chain_pem)
        self.ca.write_bytes(root_pem)


# The ed25519 key route answers are signed with (Solana-CLI keypair file).
ROUTING_KEY = Path("keys") / "routing.json"


def initialise(
    data_dir: Path, server_names: list[str], server_addresses: list[str], database_url: str
) -> ca.CertificateAuthority:
    """Creates the CA, the server certificate and the operator bundle, and
    records the operator and its certificate in the (migrated) database.

    Refuses to overwrite an existing CA: re-keying a running deployment is
    a deliberate operation, not a side effect of running init twice.
    """
    ca_dir = data_dir / CA_DIR
    if (ca_dir / ca.CertificateAuthority.INTERMEDIATE_KEY).exists():
        raise FileExistsError(f"{ca_dir} already holds a certificate authority")
    authority = ca.CertificateAuthority.create(ca_dir)
    server_key = ca.new_key()
    server_cert = authority.issue_server(server_key, server_names, server_addresses)
    Bundle(data_dir / SERVER_DIR).write(
        ca.private_pem(server_key),
        ca.cert_pem(server_cert) + ca.cert_pem(authority.intermediate),
        ca.cert_pem(authority.root),
    )
    operator_key = ca.new_key()
    csr = ca.check_csr(ca.make_csr(operator_key, OPERATOR_NAMESPACE), ca.Role.OPERATOR, OPERATOR_NAMESPACE)
    operator_cert = authority.issue_client(csr, ca.Role.OPERATOR, OPERATOR_NAMESPACE, DEFAULT_CLIENT_DAYS)
    Bundle(data_dir / OPERATOR_NAMESPACE).write(
        ca.private_pem(operator_key),
        ca.cert_pem(operator_cert) + ca.cert_pem(authority.intermediate),
        ca.cert_pem(authority.root),
    )
    keys.write(data_dir / ROUTING_KEY, keys.generate(), overwrite=True)
    Keyring.load(data_dir, create=True)
    migrate.upgrade(database_url)
    engine = create_engine(sync_url(database_url))
    try:
        with engine.begin() as conn:
            if (
                conn.execute(select(partners.c.namespace).where(partners.c.namespace == OPERATOR_NAMESPACE)).first()
                is None
            ):
                conn.execute(
                    partners.insert().values(
                        **partner_row(
                            OPERATOR_NAMESPACE, pb.PARTNER_KIND_OPERATOR, "OpenVPP operator", [], clock.system()
                        )
                    )
                )
            conn.execute(
                certificates.insert().values(
                    **certificate_row(operator_cert, OPERATOR_NAMESPACE, pb.PARTNER_KIND_OPERATOR)
                )
            )
    finally:
        engine.dispose()
    return authority
