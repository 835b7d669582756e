"""The deploy files: the Secrets `openvpp deploy kubernetes-secrets` makes
from `openvpp init`'s output are valid and hold every file the Deployment
mounts, and the Deployment starts the way a replica must (probes on the
plaintext health port, hardened, keys only from Secrets)."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml

from openvpp.cli.deploy import SECRETS, kubernetes_secrets
from openvpp.integration import bootstrap

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def _manifests() -> dict[tuple[str, str], Any]:
    documents = yaml.safe_load_all((DEPLOY / "kubernetes" / "openvpp.yaml").read_text())
    return {(d["kind"], d["metadata"]["name"]): d for d in documents}


def test_secrets_from_init_are_valid_and_hold_what_the_deployment_mounts(tmp_path: Path) -> None:
    data = tmp_path / "data"
    bootstrap.initialise(data, ["openvpp"], ["127.0.0.1"], f"sqlite:///{data / 'openvpp.db'}")
    secrets = {d["metadata"]["name"]: d for d in yaml.safe_load_all(kubernetes_secrets(data, "energy"))}
    for secret in secrets.values():
        kubernetes_validate.validate(secret, "1.37.0", strict=True)
        assert secret["metadata"]["namespace"] == "energy"
    for name, files in SECRETS.items():
        for key, path in files:
            assert base64.b64decode(secrets[name]["data"][key]) == (data / path).read_bytes()
    # The root CA's key never leaves the machine init ran on.
    assert not any("root.key" in key for s in secrets.values() for key in s["data"])
    deployment = _manifests()[("Deployment", "openvpp")]
    mounted = {
        (volume["secret"]["secretName"], item["key"])
        for volume in deployment["spec"]["template"]["spec"]["volumes"]
        if "secret" in volume
        for item in volume["secret"].get("items", [{"key": k} for k in secrets[volume["secret"]["secretName"]]["data"]])
    }
    assert mounted == {(name, key) for name, s in secrets.items() for key in s["data"]}


def test_the_deployment_probes_the_health_port_and_runs_hardened() -> None:
    manifests = _manifests()
    deployment = manifests[("Deployment", "openvpp")]
    spec = deployment["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    config = manifests[("ConfigMap", "openvpp")]["data"]
    health_port = int(config["OPENVPP_HEALTH_LISTEN"].rsplit(":", 1)[1])
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"]["port"] == health_port
    assert {p["containerPort"] for p in container["ports"]} == {health_port, 50051}
    service_ports = {p["targetPort"] for p in manifests[("Service", "openvpp")]["spec"]["ports"]}
    assert service_ports == {"grpc"}
    assert deployment["spec"]["replicas"] == 3
    assert config["OPENVPP_CHAIN_RPC_URL"].startswith("http")
    assert not container["image"].endswith(":latest")
    hardened = container["securityContext"]
    assert hardened == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert ("PodDisruptionBudget", "openvpp") in manifests
    assert ("NetworkPolicy", "openvpp") in manifests


def test_the_command_line_prints_the_secrets(tmp_path: Path) -> None:
    data = tmp_path / "data"
    bootstrap.initialise(data, ["openvpp"], ["127.0.0.1"], f"sqlite:///{data / 'openvpp.db'}")
    done = subprocess.run(
        [sys.executable, "-m", "openvpp", "deploy", "kubernetes-secrets", "--data-dir", str(data)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert [d["metadata"]["name"] for d in yaml.safe_load_all(done.stdout)] == list(SECRETS)
    empty = subprocess.run(
        [sys.executable, "-m", "openvpp", "deploy", "kubernetes-secrets", "--data-dir", str(tmp_path / "none")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert empty.returncode == 2
    assert "not an initialised data directory" in empty.stderr
