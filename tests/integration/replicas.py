"""The production topology as processes: one PostgreSQL database, one
`openvpp chain serve`, a one-time `openvpp init`, and N `openvpp serve`
replicas (each with its own name, ports and the same data directory's CA
and keys). Used by the multi-replica test and the scale-out bench."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import grpc


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, process: subprocess.Popen[bytes], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before listening on {port}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listening on {port} after {seconds}s")


@dataclass
class Replica:
    name: str
    port: int
    health: int
    process: subprocess.Popen[bytes]

    @property
    def target(self) -> str:
        return f"localhost:{self.port}"


@dataclass
class Topology:
    data: Path
    database_url: str
    chain_url: str
    env: dict[str, str]
    replicas: list[Replica] = field(default_factory=list)
    logs: list[IO[bytes]] = field(default_factory=list)

    def start_replica(self, name: str, *flags: str) -> Replica:
        port, health = free_port(), free_port()
        command = [sys.executable, "-m", "openvpp", "serve", "--data-dir", str(self.data)]
        command += ["--listen", f"127.0.0.1:{port}", "--health-listen", f"127.0.0.1:{health}", *flags]
        log = (self.data.parent / f"{name}.log").open("ab")
        self.logs.append(log)
        env = self.env if "PYTHONPATH" in self.env else {**self.env, "OPENVPP_REPLICA_NAME": name}
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        with grpc.insecure_channel(f"127.0.0.1:{health}") as channel:
            try:
                grpc.channel_ready_future(channel).result(timeout=90)
            except grpc.FutureTimeoutError:
                process.kill()
                raise RuntimeError(f"replica {name} did not start; see {log.name}") from None
        replica = Replica(name, port, health, process)
        self.replicas.append(replica)
        return replica

    def kill(self, replica: Replica) -> None:
        """kill -9: no drain, no clean-up, whatever was in flight stays so."""
        replica.process.send_signal(signal.SIGKILL)
        replica.process.wait(timeout=30)


@contextmanager
def topology(
    tmp: Path,
    database_url: str,
    replicas: int,
    *flags: str,
    lease_seconds: float = 2,
    server_path: Path | None = None,
) -> Iterator[Topology]:
    """`server_path` runs init and the replicas from another checkout's
    python/ (before/after figures); settings it may not know are left out."""
    chain_port = free_port()
    chain_dir = tmp / "chain"
    env = {
        **os.environ,
        "OTEL_SDK_DISABLED": "true",
        "OPENVPP_DATABASE_URL": database_url,
        "OPENVPP_CHAIN_RPC_URL": f"http://127.0.0.1:{chain_port}",
        "OPENVPP_PROBE_PRIVATE_ADDRESSES": "true",
    }
    if server_path is None:
        env["OPENVPP_OUTBOX_LEASE_SECONDS"] = str(lease_seconds)
    else:
        env["PYTHONPATH"] = str(server_path.resolve() / "python")
    chain_listen = f"127.0.0.1:{chain_port}"
    chain_log = (tmp / "chain.log").open("ab")
    chain = subprocess.Popen(
        [sys.executable, "-m", "openvpp", "chain", "serve", "--data-dir", str(chain_dir), "--listen", chain_listen],
        env={k: v for k, v in env.items() if k not in ("OPENVPP_DATABASE_URL", "PYTHONPATH")},
        stdout=chain_log,
        stderr=subprocess.STDOUT,
    )
    started: Topology | None = None
    try:
        _wait_port(chain_port, chain)
        data = tmp / "data"
        init = subprocess.run(
            [sys.executable, "-m", "openvpp", "init", "--data-dir", str(data)],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert init.returncode == 0, init.stderr
        started = Topology(data, database_url, env["OPENVPP_CHAIN_RPC_URL"], env)
        for i in range(replicas):
            started.start_replica(f"replica-{i}", *flags)
        yield started
    finally:
        for replica in started.replicas if started else []:
            if replica.process.poll() is None:
                replica.process.send_signal(signal.SIGTERM)
        for replica in started.replicas if started else []:
            try:
                replica.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                replica.process.kill()
        chain.send_signal(signal.SIGTERM)
        try:
            chain.wait(timeout=30)
        except subprocess.TimeoutExpired:
            chain.kill()
        chain_log.close()
        for log in started.logs if started else []:
            log.close()
