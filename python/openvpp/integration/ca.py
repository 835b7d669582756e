"""The OpenVPP certificate authority: a root, an issuing intermediate, and the
policy for what a partner's certificate may say. All X.509 work is done by
`cryptography`.

A partner's identity and role travel in one SAN URI,
``openvpp://partner/<role>/<namespace>``, with the client-auth EKU only.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Callable, Iterable, Sequence
from ipaddress import ip_address
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from openvpp.errors import FieldViolation, InvalidArgument, Unauthenticated
from openvpp.kernel.identity import URI_PREFIX as URI_PREFIX
from openvpp.kernel.identity import Identity as Identity
from openvpp.kernel.identity import Role as Role
from openvpp.kernel.identity import identity_uri as identity_uri

_URI_RE = re.compile(r"^openvpp://partner/(operator|utility|device-vendor|aggregator)/([a-z0-9.-]{1,253})$")
CLOCK_SKEW = dt.timedelta(minutes=5)
MAX_VALIDITY_DAYS = 397


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(path, 0o600)


def private_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def make_csr(key: ec.EllipticCurvePrivateKey, common_name: str) -> bytes:
    """A plain CSR (subject CN only), as `openvpp partner onboard` sends it."""
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM)


def _refuse(field: str, why: str, reason: str) -> InvalidArgument:
    return InvalidArgument(f"{field}: {why}", reason, violations=[FieldViolation(field, why)])


def check_csr(csr_pem: bytes, role: Role, namespace: str, field: str = "csr_pem") -> x509.CertificateSigningRequest:
    """Parses a CSR and refuses it when it asks for more than the partner may have."""
    try:
        csr = x509.load_pem_x509_csr(csr_pem)
    except ValueError:
        raise _refuse(field, "is not a PEM certificate signing request", "CSR_UNPARSEABLE") from None
    if not csr.is_signature_valid:
        raise _refuse(field, "is not signed by the key it carries", "CSR_BAD_SIGNATURE")
    key = csr.public_key()
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < 2048:
        raise _refuse(field, "RSA keys must be at least 2048 bits", "CSR_WEAK_KEY")
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name not in ("secp256r1", "secp384r1"):
        raise _refuse(field, "EC keys must be on P-256 or P-384", "CSR_WEAK_KEY")
    if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey):
        raise _refuse(field, "the key type is not accepted", "CSR_WEAK_KEY")
    expected_uri = identity_uri(role, namespace)
    for extension in csr.extensions:
        value = extension.value
        if isinstance(value, x509.SubjectAlternativeName):
            names = list(value)
            if names != [x509.UniformResourceIdentifier(expected_uri)]:
                raise _refuse(field, f"may name only {expected_uri} as its subject alternative name", "CSR_EXTRA_SANS")
        elif isinstance(value, x509.BasicConstraints):
            if value.ca:
                raise _refuse(field, "asks to be a certificate authority", "CSR_CA_REQUESTED")
        elif isinstance(value, x509.KeyUsage):
            if value.key_cert_sign or value.crl_sign or value.data_encipherment or value.key_agreement:
                raise _refuse(field, "asks for key usages a client certificate may not have", "CSR_KEY_USAGE")
        elif isinstance(value, x509.ExtendedKeyUsage):
            if list(value) != [ExtendedKeyUsageOID.CLIENT_AUTH]:
                raise _refuse(field, "may ask only for the client-authentication EKU", "CSR_KEY_USAGE")
        else:
            raise _refuse(
                field, f"asks for an extension the CA does not grant ({extension.oid.dotted_string})", "CSR_EXTENSION"
            )
    return csr


class CertificateAuthority:
    """A root and an issuing intermediate, loaded from (or created in) a directory."""

    ROOT = "root.pem"
    ROOT_KEY = "root.key"
    INTERMEDIATE = "intermediate.pem"
    INTERMEDIATE_KEY = "intermediate.key"

    def __init__(
        self,
        root: x509.Certificate,
        intermediate: x509.Certificate,
        intermediate_key: ec.EllipticCurvePrivateKey,
        clock: Callable[[], dt.datetime] = _now,
    ) -> None:
        self.root = root
        self.intermediate = intermediate
        self._key = intermediate_key
        self.clock = clock

    @classmethod
    def create(cls, directory: Path, organisation: str = "OpenVPP") -> CertificateAuthority:
        """A new root (10 years) and intermediate (5 years); keys written 0600."""
        now = _now()
        root_key, issuing_key = new_key(), new_key()
        root_name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
                x509.NameAttribute(NameOID.COMMON_NAME, f"{organisation} Root CA"),
            ]
        )
        root = (
            x509.CertificateBuilder()
            .subject_name(root_name)
            .issuer_name(root_name)
            .public_key(root_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - CLOCK_SKEW)
            .not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
            .add_extension(_ca_usage(), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), critical=False)
            .sign(root_key, hashes.SHA256())
        )
        issuing_name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
                x509.NameAttribute(NameOID.COMMON_NAME, f"{organisation} Issuing CA"),
            ]
        )
        intermediate = (
            x509.CertificateBuilder()
            .subject_name(issuing_name)
            .issuer_name(root_name)
            .public_key(issuing_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - CLOCK_SKEW)
            .not_valid_after(now + dt.timedelta(days=1825))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_ca_usage(), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(issuing_key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), critical=False)
            .sign(root_key, hashes.SHA256())
        )
        directory.mkdir(parents=True, exist_ok=True)
        write_private(directory / cls.ROOT_KEY, private_pem(root_key))
        write_private(directory / cls.INTERMEDIATE_KEY, private_pem(issuing_key))
        (directory / cls.ROOT).write_bytes(cert_pem(root))
        (directory / cls.INTERMEDIATE).write_bytes(cert_pem(intermediate))
        return cls(root, intermediate, issuing_key)

    @classmethod
    def load(cls, directory: Path) -> CertificateAuthority:
        key = serialization.load_pem_private_key((directory / cls.INTERMEDIATE_KEY).read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError("the issuing key must be an EC key")
        return cls(
            x509.load_pem_x509_certificate((directory / cls.ROOT).read_bytes()),
            x509.load_pem_x509_certificate((directory / cls.INTERMEDIATE).read_bytes()),
            key,
        )

    def chain_pem(self) -> bytes:
        """Intermediate then root: what a partner installs to trust OpenVPP."""
        return cert_pem(self.intermediate) + cert_pem(self.root)

    def _builder(self, subject: x509.Name, public_key: object, days: int) -> x509.CertificateBuilder:
        now = self.clock()
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.intermediate.subject)
            .public_key(public_key)  # type: ignore[arg-type]
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - CLOCK_SKEW)
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()), critical=False)
        )

    def issue_client(
        self, csr: x509.CertificateSigningRequest, role: Role, namespace: str, days: int
    ) -> x509.Certificate:
        """A client certificate for a checked CSR: identity URI, client-auth EKU only."""
        if not 1 <= days <= MAX_VALIDITY_DAYS:
            raise _refuse("validity_days", f"must be between 1 and {MAX_VALIDITY_DAYS}", "OUT_OF_RANGE")
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, role.value),
                x509.NameAttribute(NameOID.COMMON_NAME, namespace),
            ]
        )
        return (
            self._builder(subject, csr.public_key(), days)
            .add_extension(
                x509.SubjectAlternativeName([x509.UniformResourceIdentifier(identity_uri(role, namespace))]),
                critical=False,
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(_leaf_usage(), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(csr.public_key()), critical=False)
            .sign(self._key, hashes.SHA256())
        )

    def issue_server(
        self, key: ec.EllipticCurvePrivateKey, dns_names: Sequence[str], addresses: Iterable[str], days: int = 397
    ) -> x509.Certificate:
        names: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
        names += [x509.IPAddress(ip_address(a)) for a in addresses]
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns_names[0] if dns_names else "openvpp")])
        return (
            self._builder(subject, key.public_key(), days)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(_leaf_usage(), critical=True)
            .sign(self._key, hashes.SHA256())
        )

    def crl(self, revoked: Iterable[tuple[int, dt.datetime, x509.ReasonFlags]], next_update_hours: int = 24) -> bytes:
        """The DER CRL signed by the issuing CA."""
        now = self.clock()
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.intermediate.subject)
            .last_update(now)
            .next_update(now + dt.timedelta(hours=next_update_hours))
        )
        for serial, when, reason in revoked:
            entry = (
                x509.RevokedCertificateBuilder()
                .serial_number(serial)
                .revocation_date(when)
                .add_extension(x509.CRLReason(reason), critical=False)
                .build()
            )
            builder = builder.add_revoked_certificate(entry)
        return builder.sign(self._key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def _ca_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )


def _leaf_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def identity_of(cert: x509.Certificate) -> Identity:
    """The caller's identity from a verified client certificate, or UNAUTHENTICATED."""
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        raise Unauthenticated("the client certificate has no extended key usage", "CERT_WRONG_EKU") from None
    if ExtendedKeyUsageOID.CLIENT_AUTH not in eku:
        raise Unauthenticated("the client certificate is not for client authentication", "CERT_WRONG_EKU")
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        raise Unauthenticated("the client certificate names no partner", "CERT_NO_IDENTITY") from None
    uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    matches = [m for m in (_URI_RE.match(u) for u in uris) if m]
    if len(matches) != 1:
        raise Unauthenticated("the client certificate must name exactly one partner", "CERT_NO_IDENTITY")
    return Identity(Role(matches[0].group(1)), matches[0].group(2), cert.serial_number)
