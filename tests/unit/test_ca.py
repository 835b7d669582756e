"""The certificate authority: what it issues, and every CSR it must refuse."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from openvpp.errors import InvalidArgument, Unauthenticated
from openvpp.integration import ca


@pytest.fixture(scope="module")
def authority(tmp_path_factory: pytest.TempPathFactory) -> ca.CertificateAuthority:
    return ca.CertificateAuthority.create(tmp_path_factory.mktemp("ca"))


def test_keys_are_private_and_the_chain_verifies(tmp_path: Path) -> None:
    authority = ca.CertificateAuthority.create(tmp_path / "ca")
    for name in (ca.CertificateAuthority.ROOT_KEY, ca.CertificateAuthority.INTERMEDIATE_KEY):
        assert (tmp_path / "ca" / name).stat().st_mode & 0o777 == 0o600
    key = ca.new_key()
    cert = authority.issue_client(
        ca.check_csr(ca.make_csr(key, "pge"), ca.Role.UTILITY, "pge"), ca.Role.UTILITY, "pge", 30
    )
    cert.verify_directly_issued_by(authority.intermediate)
    authority.intermediate.verify_directly_issued_by(authority.root)
    assert ca.identity_of(cert) == ca.Identity(ca.Role.UTILITY, "pge", cert.serial_number)
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == dt.timedelta(days=30) + ca.CLOCK_SKEW
    assert ca.CertificateAuthority.load(tmp_path / "ca").intermediate == authority.intermediate


def test_crl_lists_revoked_serials_with_reasons(authority: ca.CertificateAuthority) -> None:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    crl = x509.load_der_x509_crl(authority.crl([(42, now, x509.ReasonFlags.key_compromise)]))
    assert crl.is_signature_valid(authority.intermediate.public_key())  # type: ignore[arg-type]
    entry = crl.get_revoked_certificate_by_serial_number(42)
    assert entry is not None
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason is x509.ReasonFlags.key_compromise


def _csr(key: object, extensions: list[tuple[x509.ExtensionType, bool]], cn: str = "pge") -> bytes:
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    )
    for ext, critical in extensions:
        builder = builder.add_extension(ext, critical=critical)
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(key, algorithm).public_bytes(serialization.Encoding.PEM)  # type: ignore[arg-type]


OWN_SAN = x509.SubjectAlternativeName([x509.UniformResourceIdentifier("openvpp://partner/utility/pge")])
BAD_EXTENSIONS: dict[str, tuple[x509.ExtensionType, str]] = {
    "another partner": (
        x509.SubjectAlternativeName([x509.UniformResourceIdentifier("openvpp://partner/operator/ops")]),
        "CSR_EXTRA_SANS",
    ),
    "a dns name": (x509.SubjectAlternativeName([x509.DNSName("evil.example")]), "CSR_EXTRA_SANS"),
    "own uri plus an email": (
        x509.SubjectAlternativeName(
            [x509.UniformResourceIdentifier("openvpp://partner/utility/pge"), x509.RFC822Name("a@b.c")]
        ),
        "CSR_EXTRA_SANS",
    ),
    "ca flag": (x509.BasicConstraints(ca=True, path_length=None), "CSR_CA_REQUESTED"),
    "cert signing": (x509.KeyUsage(True, False, False, False, False, True, False, False, False), "CSR_KEY_USAGE"),
    "crl signing": (x509.KeyUsage(True, False, False, False, False, False, True, False, False), "CSR_KEY_USAGE"),
    "server auth": (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), "CSR_KEY_USAGE"),
    "code signing too": (
        x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.CODE_SIGNING]),
        "CSR_KEY_USAGE",
    ),
    "name constraints": (
        x509.NameConstraints(permitted_subtrees=[x509.DNSName("x.example")], excluded_subtrees=None),
        "CSR_EXTENSION",
    ),
}
ALLOWED_EXTENSIONS: list[x509.ExtensionType] = [
    OWN_SAN,
    x509.BasicConstraints(ca=False, path_length=None),
    x509.KeyUsage(True, False, False, False, False, False, False, False, False),
    x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]),
]


KEYS: dict[str, object] = {
    "p256": ec.generate_private_key(ec.SECP256R1()),
    "p384": ec.generate_private_key(ec.SECP384R1()),
    "ed25519": ed25519.Ed25519PrivateKey.generate(),
    "rsa2048": rsa.generate_private_key(65537, 2048),
}
WEAK = {"secp192r1": ec.generate_private_key(ec.SECP192R1()), "rsa1024": rsa.generate_private_key(65537, 1024)}


@settings(max_examples=120, deadline=None)
@given(
    st.sampled_from(sorted(KEYS)),
    st.lists(st.sampled_from(range(len(ALLOWED_EXTENSIONS))), unique=True),
    st.one_of(st.none(), st.sampled_from(sorted(BAD_EXTENSIONS))),
    st.booleans(),
)
def test_randomised_csrs_are_granted_exactly_when_they_ask_for_nothing_extra(
    authority: ca.CertificateAuthority, key_kind: str, allowed: list[int], bad: str | None, critical: bool
) -> None:
    extensions = [(ALLOWED_EXTENSIONS[i], critical) for i in allowed]
    if bad is not None:
        bad_ext, _ = BAD_EXTENSIONS[bad]
        extensions = [(e, c) for e, c in extensions if type(e) is not type(bad_ext)] + [(bad_ext, critical)]
    pem = _csr(KEYS[key_kind], extensions)
    if bad is None:
        cert = authority.issue_client(ca.check_csr(pem, ca.Role.UTILITY, "pge"), ca.Role.UTILITY, "pge", 7)
        assert ca.identity_of(cert).namespace == "pge"
        assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
        assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
            ExtendedKeyUsageOID.CLIENT_AUTH
        ]
    else:
        with pytest.raises(InvalidArgument) as caught:
            ca.check_csr(pem, ca.Role.UTILITY, "pge")
        assert caught.value.reason == BAD_EXTENSIONS[bad][1]
        assert caught.value.violations[0].field == "csr_pem"


@pytest.mark.parametrize("kind", sorted(WEAK))
def test_weak_keys_are_refused(kind: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        ca.check_csr(_csr(WEAK[kind], []), ca.Role.UTILITY, "pge")
    assert caught.value.reason == "CSR_WEAK_KEY"


def test_garbage_and_tampered_csrs_are_refused() -> None:
    with pytest.raises(InvalidArgument) as caught:
        ca.check_csr(b"not a csr", ca.Role.UTILITY, "pge")
    assert caught.value.reason == "CSR_UNPARSEABLE"
    der = bytearray(x509.load_pem_x509_csr(ca.make_csr(ca.new_key(), "pge")).public_bytes(serialization.Encoding.DER))
    der[-5] ^= 0x01  # inside the signature value
    tampered = x509.load_der_x509_csr(bytes(der)).public_bytes(serialization.Encoding.PEM)
    with pytest.raises(InvalidArgument) as caught:
        ca.check_csr(tampered, ca.Role.UTILITY, "pge")
    assert caught.value.reason == "CSR_BAD_SIGNATURE"


def test_validity_outside_policy_is_refused(authority: ca.CertificateAuthority) -> None:
    csr = ca.check_csr(ca.make_csr(ca.new_key(), "pge"), ca.Role.UTILITY, "pge")
    for days in (0, ca.MAX_VALIDITY_DAYS + 1):
        with pytest.raises(InvalidArgument):
            authority.issue_client(csr, ca.Role.UTILITY, "pge", days)


def test_identity_requires_client_auth_and_exactly_one_partner_uri(authority: ca.CertificateAuthority) -> None:
    server = authority.issue_server(ca.new_key(), ["localhost"], ["127.0.0.1"])
    with pytest.raises(Unauthenticated) as caught:
        ca.identity_of(server)
    assert caught.value.reason == "CERT_WRONG_EKU"
