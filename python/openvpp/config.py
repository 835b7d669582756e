"""Typed settings, loaded once at the edge (the CLI) and injected from there.

Sources, highest first: explicit keyword arguments (CLI flags), `OPENVPP_*`
environment variables, defaults. Telemetry follows the standard `OTEL_*`
variables so any OpenTelemetry deployment configures it the usual way.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MIB = 1024 * 1024


def _cpus() -> int:
    """CPUs this process may run on (a container's share, not the host's)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class TelemetrySettings(BaseSettings):
    """The subset of the OpenTelemetry SDK environment OpenVPP honours."""

    model_config = SettingsConfigDict(env_prefix="OTEL_", extra="ignore")

    service_name: str = "openvpp"
    sdk_disabled: bool = False
    traces_exporter: Literal["otlp", "console", "none"] | None = None
    exporter_otlp_endpoint: str | None = None
    exporter_otlp_traces_endpoint: str | None = None

    @field_validator("traces_exporter", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    def exporter(self) -> Literal["otlp", "console", "none"]:
        """Which span exporter to install: explicit choice, else OTLP when an endpoint is set."""
        if self.sdk_disabled:
            return "none"
        if self.traces_exporter is not None:
            return self.traces_exporter
        if self.exporter_otlp_endpoint or self.exporter_otlp_traces_endpoint:
            return "otlp"
        return "none"


class Settings(BaseSettings):
    """Everything a running OpenVPP process needs to know."""

    model_config = SettingsConfigDict(env_prefix="OPENVPP_", extra="forbid")

    data_dir: Path = Path(".openvpp")
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; default a SQLite file in the data directory. "
        "PostgreSQL: postgresql+psycopg://user:pass@host/db",
    )
    listen: str = "127.0.0.1:50051"
    # Plaintext gRPC health only, so probes and load balancers need no client
    # certificate (grpcio cannot make client certificates optional on one port).
    health_listen: str | None = "127.0.0.1:50052"
    # The web app (HTTPS, the server's certificate): prosumers and staff.
    web_listen: str | None = Field(default=None, description="HTTPS address of the web app; off when unset")
    web_public_url: str = Field(
        default="", description="The app's address as browsers reach it (login links); default https://<web_listen>"
    )
    web_session_seconds: int = Field(default=12 * 3600, ge=300, le=30 * 86400)
    insecure: bool = Field(default=False, description="plaintext, every caller the operator; loopback only")
    client_cert_days: int = Field(default=30, ge=1, le=397)
    auto_migrate: bool = True
    max_message_bytes: int = Field(default=4 * MIB, ge=64 * 1024, le=64 * MIB)
    max_record_bytes: int = Field(default=16 * 1024, ge=512, le=MIB)
    max_bulk_chunk: int = Field(default=2000, ge=1, le=100_000)
    watch_poll_seconds: float = Field(default=1.0, gt=0, le=60)
    shutdown_grace_seconds: float = Field(default=10.0, ge=0, le=600)
    probe_timeout_seconds: float = Field(default=10.0, gt=0, le=120, description="per endpoint-probe step")
    probe_private_addresses: bool = Field(
        default=False,
        description="let endpoint probes reach loopback and private networks (development and tests only)",
    )
    route_signature_validity_seconds: int = Field(
        default=3600, ge=60, le=7 * 86_400, description="how long a signed route answer stays valid"
    )
    max_resolve_batch: int = Field(default=20_000, ge=1, le=200_000)
    # Fairness between partners, per replica: past these a partner's next call
    # is RESOURCE_EXHAUSTED with RetryInfo, and other partners are unaffected.
    max_calls_per_partner: int = Field(
        default=128, ge=1, le=100_000, description="unary calls one partner may have in flight on this replica"
    )
    active_calls_per_partner: int = Field(
        default=8, ge=1, le=10_000, description="a partner's unary calls running at once; more wait their turn"
    )
    max_ingest_backlog_readings: int = Field(
        default=100_000,
        ge=1,
        le=10_000_000,
        description="readings waiting to be stored past which SubmitReadings refuses batches with RetryInfo",
    )
    cache_recheck_seconds: float = Field(
        default=0.25,
        gt=0,
        le=60,
        description="how soon a change made through another replica (revocation, suspension, device record) shows here",
    )
    max_streams_per_partner: int = Field(
        default=32, ge=1, le=100_000, description="streaming calls one partner may have open on this replica"
    )
    max_streams_per_connection: int = Field(default=256, ge=1, le=100_000, description="HTTP/2 concurrent streams")
    connection_idle_seconds: float = Field(
        default=900.0, gt=0, le=86_400, description="a connection with no calls for this long is closed"
    )
    keepalive_seconds: float = Field(
        default=60.0, ge=10, le=86_400, description="server pings idle connections this often to find dead peers"
    )
    chain_rpc_url: str | None = Field(
        default=None, description="Solana JSON-RPC endpoint; unset runs the embedded chain in process"
    )
    chain_commitment: Literal["processed", "confirmed", "finalized"] = "confirmed"
    chain_slot_seconds: float = Field(default=0.4, gt=0, le=10, description="embedded chain block time")
    stablecoin_mint: str | None = Field(
        default=None,
        description="the base stablecoin's mint (USDC on a real cluster); unset on the embedded chain "
        "uses the local test mint `openvpp init` creates",
    )
    allowed_token_extensions: list[str] = Field(
        default_factory=list,
        description="Token-2022 extensions accepted beyond the built-in allow-list, e.g. TransferHook",
    )
    anchor_interval_seconds: float = Field(
        default=600.0, ge=0, description="how often the registry root is anchored on chain; 0 only on demand"
    )
    max_reading_batch: int = Field(default=20_000, ge=1, le=200_000, description="readings per SubmitReadings batch")
    reading_verify_threads: int = Field(
        default_factory=lambda: max(1, _cpus() - 1),
        ge=1,
        le=1024,
        description="threads verifying reading signatures; default one fewer than the CPUs, so storing keeps one",
    )
    reading_max_future_skew_seconds: int = Field(default=300, ge=0, le=86_400)
    reading_max_age_seconds: int = Field(default=7 * 86_400, ge=60, le=400 * 86_400)
    outbox_poll_seconds: float = Field(default=0.2, gt=0, le=30)
    crl_path: Path | None = Field(
        default=None,
        description="where the revocation list is published as a file [default: crl.der in the data directory]",
    )
    create_missing_keys: bool = Field(
        default=False,
        description="make the routing and settlement keys when missing (development; `serve --insecure` always does)",
    )
    outbox_lease_seconds: float = Field(
        default=30.0,
        ge=1,
        le=3600,
        description="how long a replica's claim on in-flight chain work lasts unrenewed before another may take it",
    )
    replica_name: str = Field(
        default_factory=socket.gethostname,
        min_length=1,
        max_length=100,
        description="this replica's name, stable across its restarts and unique among replicas (default: host name)",
    )
    billing_close_delay_seconds: int = Field(
        default=3600,
        ge=0,
        le=7 * 86_400,
        description="how long after a billing period ends its bills are issued (late readings still count)",
    )
    billing_close_interval_seconds: float = Field(
        default=60.0, ge=0, description="how often ended billing periods are looked for; 0 only on demand"
    )
    settle_interval_seconds: float = Field(
        default=2.0, ge=0, description="how often pending readings are credited and credits paid; 0 only on demand"
    )
    payout_batch_instructions: bool = Field(
        default=True,
        description="pay through the token programs' Batch instruction (one invocation per transaction); "
        "turn off on a cluster whose token programs predate it",
    )
    telemetry: TelemetrySettings = Field(default_factory=TelemetrySettings)

    @property
    def resolved_crl_path(self) -> Path:
        return self.crl_path or self.data_dir / "crl.der"

    @property
    def creates_missing_keys(self) -> bool:
        """Missing keys are made only when asked to or on a loopback development server."""
        return self.create_missing_keys or self.insecure

    def resolved_database_url(self) -> str:
        """The configured URL, or the embedded SQLite file under the data directory."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'openvpp.db').resolve()}"
