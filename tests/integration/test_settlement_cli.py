"""The on-chain commands as a user runs them: `openvpp init` makes the test
stablecoin, `openvpp chain serve` shares the embedded chain over JSON-RPC,
`openvpp serve --chain-rpc-url` settles through it, and `reserve verify` /
`registry verify` check the results from chain data."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from solders.keypair import Keypair

from tests.integration.test_cli_serve import _free_port, openvpp


def _wait_http(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        try:
            if httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "getHealth"}).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError("chain serve did not come up")


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    if process.stderr is not None:
        process.stderr.close()


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[Path, str, str]]:
    """init, chain serve, and an OpenVPP server settling through the chain's RPC."""
    data = tmp_path / "data"
    made = openvpp("init", "--data-dir", str(data))
    assert made.returncode == 0, made.stderr
    assert "stablecoin" in made.stdout
    rpc_port, grpc_port = _free_port(), _free_port()
    chain = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "openvpp",
            "chain",
            "serve",
            "--data-dir",
            str(data),
            "--listen",
            f"127.0.0.1:{rpc_port}",
        ],
        stderr=subprocess.PIPE,
    )
    rpc = f"http://127.0.0.1:{rpc_port}"
    _wait_http(rpc, chain)
    env = {**os.environ, "OPENVPP_CHAIN_RPC_URL": rpc}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "openvpp",
            "serve",
            "--data-dir",
            str(data),
            "--listen",
            f"127.0.0.1:{grpc_port}",
            "--health-listen",
            f"127.0.0.1:{_free_port()}",
            "--probe-private-addresses",
        ],
        env=env,
        stderr=subprocess.PIPE,
    )
    try:
        target = f"127.0.0.1:{grpc_port}"
        deadline = time.monotonic() + 30
        bundle = str(data / "operator")
        while openvpp("device", "list", "--target", target, "--bundle", bundle).returncode != 0:
            assert server.poll() is None, server.stderr.read() if server.stderr else ""
            assert time.monotonic() < deadline, "server did not come up"
            time.sleep(0.2)
        yield data, target, rpc
    finally:
        _stop(server)
        _stop(chain)


def test_a_token_created_through_the_rpc_backend_verifies_from_chain_data(stack: tuple[Path, str, str]) -> None:
    data, target, rpc = stack
    op = ["--target", target, "--bundle", str(data / "operator")]
    assert (
        openvpp(
            "partner",
            "onboard",
            "--kind",
            "utility",
            "--namespace",
            "pge",
            "--name",
            "PG&E",
            "--out",
            str(data / "pge"),
            *op,
        ).returncode
        == 0
    )
    pge = ["--target", target, "--bundle", str(data / "pge")]
    created = openvpp(
        "program", "create", "--code", "nem", "--name", "Net metering", "--kind", "net-energy-metering", *pge
    )
    assert created.returncode == 0, created.stderr
    token = openvpp(
        "token",
        "create",
        "--program",
        "pge/nem",
        "--name",
        "PG&E Solar",
        "--symbol",
        "SOLAR",
        "--unit",
        "kwh",
        "--redemption-value",
        "150000",
        *pge,
    )
    assert token.returncode == 0, token.stderr
    mint = next(line.split('"')[3] for line in token.stdout.splitlines() if '"mint"' in line)
    funded = openvpp("reserve", "fund", mint, "3000000", *pge)
    assert funded.returncode == 0, funded.stderr
    verified = openvpp("reserve", "verify", "--rpc", rpc, "--mint", mint)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "covered" in verified.stdout
    assert "3,000,000" in verified.stdout

    device = Keypair()
    key = data / "device.json"
    key.write_text(device.to_json())
    assert (
        openvpp(
            "partner",
            "onboard",
            "--kind",
            "device-vendor",
            "--namespace",
            "solarco",
            "--name",
            "SolarCo",
            "--out",
            str(data / "solarco"),
            *op,
        ).returncode
        == 0
    )
    vendor = ["--target", target, "--bundle", str(data / "solarco")]
    registered = openvpp(
        "device",
        "register",
        "--key",
        str(key),
        "--label",
        "inv-1",
        "--namespace",
        "solarco",
        "--kind",
        "solar-inverter",
        "--territory",
        "pge",
        *vendor,
    )
    assert registered.returncode == 0, registered.stderr
    not_yet = openvpp("registry", "verify", str(device.pubkey()), "--rpc", rpc, *op)
    assert not_yet.returncode != 0
    assert openvpp("registry", "anchor", *op).returncode == 0
    proved = openvpp("registry", "verify", str(device.pubkey()), "--rpc", rpc, *op)
    assert proved.returncode == 0, proved.stdout + proved.stderr
    assert "memo matches the root" in proved.stdout
