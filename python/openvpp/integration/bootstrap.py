"""`openvpp init`: a data directory with a CA, the server's certificate and an
operator client bundle, ready for `openvpp serve` over mutual TLS."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from openvpp.integration import ca

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


def initialise(data_dir: Path, server_names: list[str], server_addresses: list[str]) -> ca.CertificateAuthority:
    """Creates the CA, the server certificate and the operator bundle.

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
    return authority
