"""`openvpp serve` as a real process, driven by the `openvpp` command line."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
from solders.keypair import Keypair

from openvpp.v1 import registry_pb2, registry_pb2_grpc
from tests.integration.endpoint_servers import PartnerPki, https_server


def openvpp(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "openvpp", *args], capture_output=True, text=True, timeout=60, env=env, check=False
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(tmp_path: Path, database_url: str) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = _free_port()
    target = f"127.0.0.1:{port}"
    env = {**os.environ, "OPENVPP_DATABASE_URL": database_url}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "openvpp",
            "serve",
            "--data-dir",
            str(tmp_path / "data"),
            "--listen",
            target,
            "--insecure",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    with grpc.insecure_channel(target) as channel:
        health: Any = health_pb2_grpc.HealthStub(channel)
        deadline = time.monotonic() + 60
        while True:
            try:
                reply = health.Check(health_pb2.HealthCheckRequest(service="openvpp.v1.RegistryService"), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    break
            except grpc.RpcError:
                if time.monotonic() > deadline or process.poll() is not None:
                    process.kill()
                    pytest.fail(f"server did not start: {process.stderr.read().decode() if process.stderr else ''}")
                time.sleep(0.1)
    try:
        yield process, target
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()


def test_keygen_writes_a_private_solana_cli_keypair(tmp_path: Path) -> None:
    path = tmp_path / "device.json"
    result = openvpp("keygen", str(path))
    assert result.returncode == 0, result.stderr
    data = json.loads(path.read_text())
    keypair = Keypair.from_bytes(bytes(data))
    assert result.stdout.strip() == str(keypair.pubkey())
    assert path.stat().st_mode & 0o777 == 0o600
    refused = openvpp("keygen", str(path))
    assert refused.returncode != 0
    assert "exists" in refused.stderr


def test_device_commands_against_a_served_registry(server: tuple[subprocess.Popen[bytes], str], tmp_path: Path) -> None:
    _, target = server
    key = tmp_path / "evse.json"
    der_id = openvpp("keygen", str(key)).stdout.strip()
    registered = openvpp(
        "device",
        "register",
        "--insecure",
        "--target",
        target,
        "--key",
        str(key),
        "--label",
        "evse-9",
        "--namespace",
        "voltbox",
        "--kind",
        "ev-charger",
        "--alias",
        "ocpp-charge-point-id=CP-9",
        "--protocol",
        "ocpp-2-0-1",
        "--max-import-w",
        "11500",
        "--territory",
        "sce",
    )
    assert registered.returncode == 0, registered.stderr
    assert json.loads(registered.stdout)["device"]["der_id"] == der_id
    got = openvpp("device", "get", "--insecure", "--target", target, "CP-9")
    assert json.loads(got.stdout)["device"]["record"]["name"] == "evse-9.voltbox"
    listed = openvpp("device", "list", "--insecure", "--target", target, "--kind", "ev-charger")
    assert [d["der_id"] for d in json.loads(listed.stdout)["devices"]] == [der_id]
    suspended = openvpp(
        "device", "status", "--insecure", "--target", target, der_id, "suspended", "--reason", "meter tamper"
    )
    assert json.loads(suspended.stdout)["device"]["status"] == "DEVICE_STATUS_SUSPENDED"
    watched = openvpp("device", "watch", "--insecure", "--target", target, "--no-follow")
    kinds = [json.loads(line)["kind"] for line in watched.stdout.splitlines()]
    assert kinds == ["LOG_ENTRY_KIND_REGISTERED", "LOG_ENTRY_KIND_STATUS_CHANGED"]
    missing = openvpp("device", "get", "--insecure", "--target", target, "CP-unknown")
    assert missing.returncode == 1
    assert "NOT_FOUND" in missing.stderr
    bad = openvpp("device", "status", "--insecure", "--target", target, "0OIl", "revoked", "--reason", "x")
    assert "INVALID_ARGUMENT" in bad.stderr
    assert "der_id" in bad.stderr


def test_reflection_client_lists_the_registry_and_health_is_serving(
    server: tuple[subprocess.Popen[bytes], str],
) -> None:
    _, target = server
    with grpc.insecure_channel(target) as channel:
        services = list(ProtoReflectionDescriptorDatabase(channel).get_services())
        health: Any = health_pb2_grpc.HealthStub(channel)
        status = health.Check(health_pb2.HealthCheckRequest(service="openvpp.v1.RegistryService")).status
    assert "openvpp.v1.RegistryService" in services
    assert status == health_pb2.HealthCheckResponse.SERVING


def test_sigterm_ends_follow_streams_and_exits_cleanly(server: tuple[subprocess.Popen[bytes], str]) -> None:
    process, target = server
    with grpc.insecure_channel(target) as channel:
        stub = registry_pb2_grpc.RegistryServiceStub(channel)
        follow = stub.WatchRegistry(registry_pb2.WatchRegistryRequest(follow=True))
        assert next(follow).HasField("caught_up")
        process.send_signal(signal.SIGTERM)
        # The stream in flight is closed normally, not cut.
        assert list(follow) == []
    assert process.wait(timeout=30) == 0


def test_init_serve_and_onboard_over_mtls_from_the_command_line(tmp_path: Path, database_url: str) -> None:
    data = tmp_path / "data"
    env = {**os.environ, "OPENVPP_DATABASE_URL": database_url}
    assert openvpp("init", "--data-dir", str(data), env=env).returncode == 0
    port, health = _free_port(), _free_port()
    target = f"localhost:{port}"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "openvpp",
            "serve",
            "--data-dir",
            str(data),
            "--listen",
            f"127.0.0.1:{port}",
            "--health-listen",
            f"127.0.0.1:{health}",
            "--probe-private-addresses",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with grpc.insecure_channel(f"127.0.0.1:{health}") as channel:
            grpc.channel_ready_future(channel).result(timeout=60)
        operator = str(data / "operator")
        onboarded = openvpp(
            "partner",
            "onboard",
            "--target",
            target,
            "--bundle",
            operator,
            "--kind",
            "device-vendor",
            "--name",
            "SolarCo Ltd.",
            "--namespace",
            "solarco",
            "--out",
            str(tmp_path / "solarco"),
        )
        assert onboarded.returncode == 0, onboarded.stderr
        key = tmp_path / "inv.json"
        openvpp("keygen", str(key))
        registered = openvpp(
            "device",
            "register",
            "--target",
            target,
            "--bundle",
            str(tmp_path / "solarco"),
            "--key",
            str(key),
            "--label",
            "inv-1",
            "--namespace",
            "solarco",
            "--kind",
            "solar-inverter",
        )
        assert registered.returncode == 0, registered.stderr
        foreign = openvpp(
            "device",
            "register",
            "--target",
            target,
            "--bundle",
            str(tmp_path / "solarco"),
            "--key",
            str(key),
            "--label",
            "inv-1",
            "--namespace",
            "voltbox",
            "--kind",
            "solar-inverter",
        )
        assert "PERMISSION_DENIED" in foreign.stderr
        got = openvpp("device", "get", "--target", target, "--bundle", operator, "inv-1.solarco")
        assert json.loads(got.stdout)["device"]["record"]["vendor_namespace"] == "solarco"
        plaintext = openvpp("device", "get", "--target", target, "--insecure", "inv-1.solarco")
        assert plaintext.returncode != 0
        _endpoint_and_certificate_commands(tmp_path, target, operator)
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0


def _endpoint_and_certificate_commands(tmp_path: Path, target: str, operator: str) -> None:
    utility = str(tmp_path / "pge")
    onboarded = openvpp(
        "partner",
        "onboard",
        "--target",
        target,
        "--bundle",
        operator,
        "--kind",
        "utility",
        "--name",
        "PG&E",
        "--namespace",
        "pge",
        "--out",
        utility,
    )
    assert onboarded.returncode == 0, onboarded.stderr
    pki = PartnerPki(tmp_path / "pge-ca")
    anchors = tmp_path / "anchors.pem"
    anchors.write_text(pki.anchors_pem)
    routes = {"/healthz": (200, b"ok")}
    with https_server(pki.server(), tmp_path, routes) as port:
        registered = openvpp(
            "endpoint",
            "register",
            "--target",
            target,
            "--bundle",
            utility,
            "--name",
            "billing",
            "--url",
            f"https://localhost:{port}",
            "--protocol",
            "https",
            "--health-path",
            "/healthz",
            "--trust-anchors",
            str(anchors),
            "--program",
            "nem",
        )
        assert registered.returncode == 0, registered.stderr
        assert json.loads(registered.stdout)["state"] == "ENDPOINT_STATE_VALIDATED"
        assert "validated" in registered.stderr
        _routing_commands(tmp_path, target, operator, utility)
        routes["/healthz"] = (500, b"")
        revalidated = openvpp("endpoint", "validate", "--target", target, "--bundle", utility, "pge/billing")
        assert revalidated.returncode == 2
        assert "HTTP_STATUS" in revalidated.stderr
    listed = openvpp("endpoint", "list", "--target", target, "--bundle", operator, "--state", "failed")
    assert [e["endpoint_id"] for e in json.loads(listed.stdout)["endpoints"]] == ["pge/billing"]
    bad = openvpp(
        "endpoint",
        "register",
        "--target",
        target,
        "--bundle",
        utility,
        "--name",
        "x",
        "--url",
        "http://localhost:1",
        "--protocol",
        "https",
    )
    assert bad.returncode == 1
    assert "INSECURE_OR_WRONG_SCHEME" in bad.stderr

    before = (Path(utility) / "cert.pem").read_bytes()
    skipped = openvpp("cert", "renew", "--target", target, "--bundle", utility, "--within-days", "7")
    assert "not renewed" in skipped.stdout
    assert (Path(utility) / "cert.pem").read_bytes() == before
    renewed = openvpp("cert", "renew", "--target", target, "--bundle", utility)
    assert renewed.returncode == 0, renewed.stderr
    assert (Path(utility) / "cert.pem").read_bytes() != before
    after = openvpp("endpoint", "get", "--target", target, "--bundle", utility, "pge/billing")
    assert after.returncode == 0, after.stderr
    certs = json.loads(openvpp("cert", "list", "--target", target, "--bundle", utility, "--namespace", "pge").stdout)
    assert len(certs["certificates"]) == 2
    crl = tmp_path / "crl.der"
    assert openvpp("cert", "crl", "--target", target, "--bundle", utility, "--out", str(crl)).returncode == 0
    assert crl.read_bytes()[:1] == b"\x30"


def _routing_commands(tmp_path: Path, target: str, operator: str, utility: str) -> None:
    vendor = str(tmp_path / "solarco")  # onboarded by the caller
    assert (
        openvpp(
            "program",
            "create",
            "--target",
            target,
            "--bundle",
            utility,
            "--code",
            "nem",
            "--name",
            "Net metering",
            "--kind",
            "net-energy-metering",
        ).returncode
        == 0
    )
    attached = openvpp("program", "attach", "--target", target, "--bundle", utility, "pge/nem", "pge/billing")
    assert attached.returncode == 0, attached.stderr
    key = tmp_path / "meter.json"
    openvpp("keygen", str(key))
    assert (
        openvpp(
            "device",
            "register",
            "--target",
            target,
            "--bundle",
            vendor,
            "--key",
            str(key),
            "--label",
            "meter-1",
            "--namespace",
            "solarco",
            "--kind",
            "meter",
        ).returncode
        == 0
    )
    not_yet = openvpp("route", "diagnose", "--target", target, "--bundle", vendor, "meter-1.solarco")
    assert not_yet.returncode == 2
    assert "enrolled" in not_yet.stdout
    enrolled = openvpp(
        "route",
        "enroll",
        "--target",
        target,
        "--bundle",
        vendor,
        "--key",
        str(key),
        "--program",
        "pge/nem",
        "--account",
        "PGE-77",
    )
    assert enrolled.returncode == 0, enrolled.stderr
    resolved = openvpp("route", "resolve", "--target", target, "--bundle", utility, "meter-1.solarco")
    assert resolved.returncode == 0, resolved.stderr
    assert "signature verified" in resolved.stderr
    assert json.loads(resolved.stdout)["routes"][0]["endpoint_id"] == "pge/billing"
    assert openvpp("route", "diagnose", "--target", target, "--bundle", vendor, "meter-1.solarco").returncode == 0
    watched = openvpp("route", "watch", "--target", target, "--bundle", vendor, "--no-follow")
    kinds = [json.loads(line)["kind"] for line in watched.stdout.splitlines()]
    assert kinds == ["ROUTE_EVENT_KIND_ENDPOINT_ATTACHED", "ROUTE_EVENT_KIND_ENROLLED"]


def test_serve_refuses_to_start_without_the_keys_init_made(tmp_path: Path) -> None:
    """A replica given the CA but not the keys must not make its own."""
    data = tmp_path / "data"
    assert openvpp("init", "--data-dir", str(data)).returncode == 0
    (data / "keys" / "fee-payer.json").unlink()
    done = openvpp("serve", "--data-dir", str(data), "--listen", f"127.0.0.1:{_free_port()}", "--health-listen", "")
    assert done.returncode == 2, done.stderr
    assert "settlement keys missing" in done.stderr
    assert str(data / "keys" / "fee-payer.json") in done.stderr
    assert not (data / "keys" / "fee-payer.json").exists()
    other = tmp_path / "other"
    assert openvpp("init", "--data-dir", str(other)).returncode == 0
    (other / "keys" / "routing.json").unlink()
    done = openvpp("serve", "--data-dir", str(other), "--listen", f"127.0.0.1:{_free_port()}", "--health-listen", "")
    assert done.returncode == 2
    assert "no routing key" in done.stderr
    assert not (other / "keys" / "routing.json").exists()
