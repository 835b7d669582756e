"""`openvpp partner …`: onboard partners and manage their certificates."""

from __future__ import annotations

from pathlib import Path

import click

from openvpp.cli.common import console, print_message, run_call, target_option
from openvpp.v1 import integration_pb2, integration_pb2_grpc

PARTNER_KINDS = {"utility": 2, "device-vendor": 3, "aggregator": 4}


@click.group()
def partner() -> None:
    """Onboard and manage partners (operator bundle required), and sign in to the web console."""


@partner.command("onboard")
@target_option
@click.option("--kind", required=True, type=click.Choice(sorted(PARTNER_KINDS)))
@click.option("--name", "legal_name", required=True, help="Legal name of the partner.")
@click.option("--namespace", required=True, help="Unique namespace, e.g. solarco (lower-case DNS labels).")
@click.option("--email", default="", help="Contact email.")
@click.option("--days", type=click.IntRange(1, 397), default=None, help="Certificate validity [default: 30].")
@click.option(
    "--out", type=click.Path(file_okay=False, path_type=Path), help="Bundle directory [default: ./<namespace>]."
)
def partner_onboard(
    target: str,
    bundle: Path,
    insecure: bool,
    kind: str,
    legal_name: str,
    namespace: str,
    email: str,
    days: int | None,
    out: Path | None,
) -> None:
    """Onboard a partner and write its key, certificate chain and CA bundle.

    The private key is generated here and never leaves this machine: only a
    CSR is sent.
    """
    from openvpp.integration import bootstrap, ca

    key = ca.new_key()
    request = integration_pb2.OnboardPartnerRequest(
        kind=PARTNER_KINDS[kind],  # type: ignore[arg-type]
        legal_name=legal_name,
        namespace=namespace,
        contacts=[integration_pb2.Contact(email=email)] if email else [],
        csr_pem=ca.make_csr(key, namespace).decode(),
        validity_days=days or 0,
    )
    reply = run_call(target, lambda ch: integration_pb2_grpc.IntegrationServiceStub(ch).OnboardPartner(request))
    destination = bootstrap.Bundle(out or Path(namespace))
    root = reply.chain_pem.encode().split(b"-----END CERTIFICATE-----\n", 1)[1]
    destination.write(ca.private_pem(key), (reply.certificate.certificate_pem + reply.chain_pem).encode(), root)
    console.print(f"onboarded {namespace} ({kind}); bundle written to {destination.directory}")


REVOCATION_REASONS = {
    n.removeprefix("REVOCATION_REASON_").lower().replace("_", "-"): v
    for n, v in integration_pb2.RevocationReason.items()
    if v
}


@partner.command("login")
@target_option
def partner_login(target: str, bundle: Path, insecure: bool) -> None:
    """A one-time code (and link) that signs this bundle's partner in to the
    web console. Good once, for ten minutes; the console sees what this
    certificate sees over gRPC (any partner's bundle)."""
    reply = run_call(
        target,
        lambda ch: integration_pb2_grpc.IntegrationServiceStub(ch).CreateWebLogin(
            integration_pb2.CreateWebLoginRequest()
        ),
    )
    console.print(f"login code: {reply.code} (expires {reply.expires_at.ToDatetime():%H:%M:%S} UTC)")
    if reply.login_url:
        console.print(f"open: {reply.login_url}", soft_wrap=True)
    else:
        console.print("this server does not serve the web app (start it with `openvpp serve --web-listen`)")


@click.group("cert")
def certificate() -> None:
    """Renew, revoke and list client certificates; fetch the CRL."""


@certificate.command("renew")
@target_option
@click.option(
    "--within-days",
    type=click.IntRange(0, 397),
    default=None,
    help="Only renew when the bundle's certificate expires within this many days (for cron).",
)
@click.option("--days", type=click.IntRange(1, 397), default=None, help="New validity [default: the server's].")
def certificate_renew(target: str, bundle: Path, insecure: bool, within_days: int | None, days: int | None) -> None:
    """Renew the bundle's certificate with a fresh key, before it expires, and rewrite the bundle.

    The call is made with the current certificate; the new key never leaves
    this machine. The old certificate stays valid until it expires or is revoked.
    """
    import datetime as dt

    from cryptography import x509

    from openvpp.integration import bootstrap, ca

    current = bootstrap.Bundle(bundle)
    cert = x509.load_pem_x509_certificate(current.cert.read_bytes())
    left = cert.not_valid_after_utc - dt.datetime.now(dt.UTC)
    if within_days is not None and left > dt.timedelta(days=within_days):
        console.print(f"{cert.serial_number:x} is valid for {left.days} more days; not renewed")
        return
    identity = ca.identity_of(cert)
    key = ca.new_key()
    request = integration_pb2.RenewCertificateRequest(
        serial=f"{cert.serial_number:x}", csr_pem=ca.make_csr(key, identity.namespace).decode(), validity_days=days or 0
    )
    reply = run_call(target, lambda ch: integration_pb2_grpc.IntegrationServiceStub(ch).RenewCertificate(request))
    current.write(
        ca.private_pem(key), (reply.certificate.certificate_pem + reply.chain_pem).encode(), current.ca.read_bytes()
    )
    console.print(
        f"renewed {identity.namespace}: new serial {reply.certificate.serial}, "
        f"valid until {reply.certificate.not_after.ToDatetime(dt.UTC):%Y-%m-%d %H:%M} UTC; bundle {bundle} rewritten"
    )


@certificate.command("revoke")
@target_option
@click.argument("serial")
@click.option("--reason", required=True, type=click.Choice(sorted(REVOCATION_REASONS)))
def certificate_revoke(target: str, bundle: Path, insecure: bool, serial: str, reason: str) -> None:
    """Revoke a certificate; it is refused from the next call on and listed in the CRL."""

    request = integration_pb2.RevokeCertificateRequest(serial=serial, reason=REVOCATION_REASONS[reason])
    print_message(
        run_call(target, lambda ch: integration_pb2_grpc.IntegrationServiceStub(ch).RevokeCertificate(request))
    )


@certificate.command("list")
@target_option
@click.option("--namespace", required=True)
def certificate_list(target: str, bundle: Path, insecure: bool, namespace: str) -> None:
    """A partner's certificates with their status."""

    request = integration_pb2.ListCertificatesRequest(namespace=namespace)
    print_message(
        run_call(target, lambda ch: integration_pb2_grpc.IntegrationServiceStub(ch).ListCertificates(request))
    )


@certificate.command("crl")
@target_option
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="Where to write the DER CRL."
)
def certificate_crl(target: str, bundle: Path, insecure: bool, out: Path) -> None:
    """Fetch the current certificate revocation list (DER)."""

    reply = run_call(
        target, lambda ch: integration_pb2_grpc.IntegrationServiceStub(ch).GetCrl(integration_pb2.GetCrlRequest())
    )
    out.write_bytes(reply.crl_der)
    console.print(f"CRL ({len(reply.crl_der)} bytes) written to {out}")
