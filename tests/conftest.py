"""Shared fixtures: both storage backends, a real server on port 0, clients."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import psycopg
import pytest
from hypothesis import HealthCheck, settings
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from openvpp.config import Settings
from openvpp.integration import bootstrap
from openvpp.server import app as server_app
from openvpp.v1 import registry_pb2_grpc
from tests import pg
from tests.integration.mtls import Fabric

settings.register_profile("ci", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=50, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

VECTORS = Path(__file__).parent / "vectors"

# Every test runs traced, into memory, so tracing is exercised everywhere and
# tests can assert on spans. The global provider can be set once per process.
SPANS = InMemorySpanExporter()
_provider = TracerProvider()
_provider.add_span_processor(SimpleSpanProcessor(SPANS))
trace.set_tracer_provider(_provider)


@pytest.fixture
def spans() -> InMemorySpanExporter:
    SPANS.clear()
    return SPANS


@pytest.fixture(scope="session")
def postgres_base_url() -> Iterator[str]:
    bindir = pg.find_bindir()
    if bindir is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL server binaries are required in CI (.ci/run installs them)")
        pytest.skip("PostgreSQL server binaries not installed (apt-get install postgresql)")
    with pg.throwaway_server(bindir) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'openvpp.db'}"
    base: str = request.getfixturevalue("postgres_base_url")
    name = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(base.replace("postgresql+psycopg", "postgresql") + "/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{base}/{name}"


@pytest.fixture
def server_settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        listen="127.0.0.1:0",
        insecure=True,
        health_listen=None,
        watch_poll_seconds=0.2,
        shutdown_grace_seconds=2,
        max_message_bytes=1024 * 1024,
        max_bulk_chunk=500,
        probe_private_addresses=True,
        probe_timeout_seconds=5,
        settle_interval_seconds=0,
        billing_close_interval_seconds=0,
    )


@pytest.fixture
async def app(server_settings: Settings) -> AsyncIterator[server_app.App]:
    running = await server_app.start(server_settings)
    try:
        yield running
    finally:
        await running.stop(grace=1)


@pytest.fixture
async def fabric(request: pytest.FixtureRequest, tmp_path: Path, database_url: str) -> AsyncIterator[Fabric]:
    """A server requiring client certificates, set up exactly as `openvpp init` does;
    a test's `settings` marker overrides settings."""
    marker = request.node.get_closest_marker("settings")
    data_dir = tmp_path / "fabric"
    await asyncio.to_thread(bootstrap.initialise, data_dir, ["localhost"], ["127.0.0.1"], database_url)
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "database_url": database_url,
        "listen": "127.0.0.1:0",
        "health_listen": "127.0.0.1:0",
        "watch_poll_seconds": 0.2,
        "shutdown_grace_seconds": 2,
        "probe_private_addresses": True,
        "probe_timeout_seconds": 5,
        "settle_interval_seconds": 0,
        # Tests issue and collect bills when they choose.
        "billing_close_interval_seconds": 0,
    }
    settings = Settings(**{**values, **(marker.kwargs if marker else {})})
    running = await server_app.start(settings)
    try:
        yield Fabric(running, data_dir)
    finally:
        await running.stop(grace=1)


@pytest.fixture
async def channel(app: server_app.App) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as chan:
        yield chan


@pytest.fixture
def registry(channel: grpc.aio.Channel) -> registry_pb2_grpc.RegistryServiceAsyncStub:
    return registry_pb2_grpc.RegistryServiceStub(channel)
