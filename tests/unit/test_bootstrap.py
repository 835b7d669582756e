from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509

from openvpp.integration import bootstrap, ca


def test_init_writes_a_ca_a_server_certificate_and_an_operator_bundle(tmp_path: Path) -> None:
    authority = bootstrap.initialise(tmp_path, ["localhost"], ["127.0.0.1"], f"sqlite:///{tmp_path / 'db.sqlite'}")
    operator = bootstrap.Bundle(tmp_path / "operator")
    chain = x509.load_pem_x509_certificates(operator.cert.read_bytes())
    chain[0].verify_directly_issued_by(authority.intermediate)
    assert ca.identity_of(chain[0]).role is ca.Role.OPERATOR
    assert operator.key.stat().st_mode & 0o777 == 0o600
    server = x509.load_pem_x509_certificates(bootstrap.Bundle(tmp_path / "server").cert.read_bytes())[0]
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    with pytest.raises(FileExistsError):
        bootstrap.initialise(tmp_path, ["localhost"], [], f"sqlite:///{tmp_path / 'db.sqlite'}")
