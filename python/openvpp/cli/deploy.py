"""`openvpp deploy`: what a deployment needs from an initialised data directory."""

from __future__ import annotations

import base64
import sys
from pathlib import Path

import click
import yaml

from openvpp.chain import keyring
from openvpp.cli.common import settings_from
from openvpp.integration import bootstrap, ca

# Secret name -> (key in the Secret, file under the data directory), as
# deploy/kubernetes/openvpp.yaml mounts them. The root CA key is left out on
# purpose: a replica issues with the intermediate; the root stays offline.
SECRETS: dict[str, list[tuple[str, Path]]] = {
    "openvpp-pki": [
        ("root.pem", Path(bootstrap.CA_DIR) / ca.CertificateAuthority.ROOT),
        ("intermediate.pem", Path(bootstrap.CA_DIR) / ca.CertificateAuthority.INTERMEDIATE),
        ("intermediate.key", Path(bootstrap.CA_DIR) / ca.CertificateAuthority.INTERMEDIATE_KEY),
        ("server-key.pem", Path(bootstrap.SERVER_DIR) / "key.pem"),
        ("server-cert.pem", Path(bootstrap.SERVER_DIR) / "cert.pem"),
        ("server-ca.pem", Path(bootstrap.SERVER_DIR) / "ca.pem"),
    ],
    "openvpp-keys": [
        (name, Path(keyring.KEYS_DIR) / name)
        for name in (
            bootstrap.ROUTING_KEY.name,
            keyring.SETTLEMENT_AUTHORITY,
            keyring.RESERVE_AUTHORITY,
            keyring.FEE_PAYER,
        )
    ],
}


def kubernetes_secrets(data_dir: Path, namespace: str | None) -> str:
    """The Secrets as one multi-document manifest (base64 data, as the API stores them)."""
    documents = []
    for name, files in SECRETS.items():
        missing = [str(data_dir / path) for _, path in files if not (data_dir / path).is_file()]
        if missing:
            raise click.UsageError(
                f"not an initialised data directory (run `openvpp init`): missing {', '.join(missing)}"
            )
        metadata: dict[str, str | dict[str, str]] = {"name": name, "labels": {"app.kubernetes.io/name": "openvpp"}}
        if namespace:
            metadata["namespace"] = namespace
        documents.append(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "type": "Opaque",
                "metadata": metadata,
                "data": {key: base64.b64encode((data_dir / path).read_bytes()).decode() for key, path in files},
            }
        )
    return yaml.safe_dump_all(documents, sort_keys=False)


@click.group()
def deploy() -> None:
    """What a deployment needs from `openvpp init`'s output."""


@deploy.command("kubernetes-secrets")
@click.option("--data-dir", type=click.Path(path_type=Path), help="Data directory [default: ./.openvpp].")
@click.option("--namespace", help="Namespace to put in the manifests.")
def kubernetes_secrets_command(data_dir: Path | None, namespace: str | None) -> None:
    """Print the openvpp-pki and openvpp-keys Secrets (pipe to `kubectl apply -f -`)."""
    settings = settings_from(data_dir=data_dir)
    sys.stdout.write(kubernetes_secrets(settings.data_dir, namespace))
