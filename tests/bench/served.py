"""A real `openvpp serve` process for the benchmarks: a fresh data directory
(initialised as `openvpp init` does, SQLite), free ports, ready when its
health port answers, stopped with SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc

from openvpp.integration import bootstrap


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Served:
    target: str
    data: Path
    pid: int


@contextmanager
def openvpp_serve(tmp: Path, *flags: str, server_path: Path | None = None) -> Iterator[Served]:
    """`flags` are extra `openvpp serve` options; `server_path` runs another
    checkout's python/ (before/after figures with the same client)."""
    data = tmp / "data"
    url = f"sqlite:///{data / 'openvpp.db'}"
    port, health = free_port(), free_port()
    env = {**os.environ, "OTEL_SDK_DISABLED": "true"}
    if server_path:
        # The other checkout initialises its own data directory: its schema
        # (migrations) and key files are its own.
        env["PYTHONPATH"] = str(server_path.resolve() / "python")
        init = f"from openvpp.integration import bootstrap; bootstrap.initialise({str(data)!r}, ['localhost'], ['127.0.0.1'], {url!r})"
        subprocess.run([sys.executable, "-c", init], env=env, check=True)
    else:
        bootstrap.initialise(data, ["localhost"], ["127.0.0.1"], url)
    command = [sys.executable, "-m", "openvpp", "serve", "--data-dir", str(data)]
    command += ["--listen", f"127.0.0.1:{port}", "--health-listen", f"127.0.0.1:{health}", *flags]
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{health}") as channel:
            grpc.channel_ready_future(channel).result(timeout=60)
        yield Served(f"localhost:{port}", data, server.pid)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
