"""Server assembly: services, health, reflection, interceptors, lifecycle."""

from __future__ import annotations

import asyncio
import gc
import logging
from dataclasses import dataclass, field
from ipaddress import ip_address
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from openvpp import keys
from openvpp.billing.servicer import BillingServicer
from openvpp.chain.keyring import MissingKeys
from openvpp.config import Settings
from openvpp.integration import bootstrap, ca
from openvpp.integration.endpoints import Endpoints
from openvpp.integration.partners import Partners
from openvpp.integration.probe import Prober
from openvpp.integration.servicer import IntegrationServicer
from openvpp.integration.signin import SignIn
from openvpp.kernel import clock
from openvpp.kernel.clock import Clock
from openvpp.registry.service import Registry
from openvpp.registry.servicer import RegistryServicer
from openvpp.routing.changes import RouteChanges
from openvpp.routing.diagnose import Diagnoser
from openvpp.routing.enrollment import Enrollments
from openvpp.routing.programs import Programs
from openvpp.routing.resolver import Resolver
from openvpp.routing.routes import RouteBuilder, RoutingKey
from openvpp.routing.servicer import RoutingServicer
from openvpp.routing.watch import RouteWatch
from openvpp.server import reflection
from openvpp.server.auth import Authenticator, PartnerLimits
from openvpp.server.compose import Runtime, open_settlement
from openvpp.server.errors import to_rpc_status
from openvpp.server.interceptors import CallInterceptor
from openvpp.server.tracing import ServerSpans
from openvpp.settlement.ingest.ingestor import Ingestor
from openvpp.settlement.servicer import SettlementServicer
from openvpp.settlement.services import SettlementServices
from openvpp.store import migrate
from openvpp.store.database import Database
from openvpp.v1 import (
    billing_pb2,
    billing_pb2_grpc,
    integration_pb2,
    integration_pb2_grpc,
    registry_pb2,
    registry_pb2_grpc,
    routing_pb2,
    routing_pb2_grpc,
    settlement_pb2,
    settlement_pb2_grpc,
)

log = logging.getLogger(__name__)

# (young, middle, old) generation thresholds; CPython's defaults are (700, 10, 10).
GC_THRESHOLDS = (50_000, 50, 1_000)

SERVICE_NAMES = (
    registry_pb2.DESCRIPTOR.services_by_name["RegistryService"].full_name,
    integration_pb2.DESCRIPTOR.services_by_name["IntegrationService"].full_name,
    routing_pb2.DESCRIPTOR.services_by_name["RoutingService"].full_name,
    settlement_pb2.DESCRIPTOR.services_by_name["SettlementService"].full_name,
    billing_pb2.DESCRIPTOR.services_by_name["BillingService"].full_name,
)


class ConfigurationError(Exception):
    """The settings cannot produce a server (missing CA, unsafe plaintext)."""


def _is_loopback(listen: str) -> bool:
    host = listen.rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


def _routing_key(settings: Settings) -> RoutingKey:
    """The key `openvpp init` made. Made here only when told to (development):
    replicas that each made their own would sign routes with different keys."""
    path = settings.data_dir / bootstrap.ROUTING_KEY
    if not path.exists():
        if not settings.creates_missing_keys:
            raise ConfigurationError(
                f"no routing key at {path}: run `openvpp init` once and give every replica the same key "
                "(a mounted secret), or start with --create-missing-keys (development)"
            )
        log.warning("no routing key at %s; creating one", path)
        keys.write(path, keys.generate())
    return RoutingKey(keys.read(path))


def _routing(
    settings: Settings, db: Database, registry: Registry, clock_us: Clock
) -> tuple[RoutingServicer, RouteWatch]:
    programs = Programs(db, clock_us)
    builder = RouteBuilder(_routing_key(settings), settings.route_signature_validity_seconds)
    resolver = Resolver(
        db,
        builder,
        lambda error: to_rpc_status(error).SerializeToString(),
        poll_seconds=settings.watch_poll_seconds,
        max_batch=settings.max_resolve_batch,
        clock_us=clock_us,
    )
    watch = RouteWatch(db, settings.watch_poll_seconds)
    servicer = RoutingServicer(
        programs,
        Enrollments(db, registry, clock_us),
        resolver,
        watch,
        Diagnoser(db, registry, clock_us),
        builder.key,
    )
    return servicer, watch


def _tls_credentials(settings: Settings) -> grpc.ServerCredentials:
    server = bootstrap.Bundle(settings.data_dir / bootstrap.SERVER_DIR)
    return grpc.ssl_server_credentials(
        [(server.key.read_bytes(), server.cert.read_bytes())],
        root_certificates=server.ca.read_bytes(),
        require_client_auth=True,
    )


@dataclass
class App:
    """A running OpenVPP server and the parts it owns."""

    settings: Settings
    server: grpc.aio.Server
    port: int
    db: Database
    registry: Registry
    health: health_aio.HealthServicer
    health_server: grpc.aio.Server | None = None
    health_port: int = 0
    tracer_provider: TracerProvider | None = None
    route_watch: RouteWatch | None = None
    runtime: Runtime | None = None
    settlement: SettlementServices | None = None
    partners: Partners | None = None
    ingestor: Ingestor | None = None
    signin: SignIn | None = None
    # Service name -> servicer, for the web console's calls through the same code.
    servicers: dict[str, Any] = field(default_factory=dict)
    _stopped: asyncio.Event = field(default_factory=asyncio.Event)

    async def stop(self, grace: float | None = None) -> None:
        """Stops taking calls, lets in-flight ones finish within the grace period, closes storage."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        await self.health.enter_graceful_shutdown()
        self.registry.notifier.close()
        if self.route_watch is not None:
            self.route_watch.notifier.close()
        await self.server.stop(self.settings.shutdown_grace_seconds if grace is None else grace)
        if self.health_server is not None:
            await self.health_server.stop(0)
        if self.runtime is not None:
            await self.runtime.close()
        await self.db.close()
        if self.tracer_provider is not None:
            self.tracer_provider.force_flush()

    async def wait_for_termination(self) -> None:
        await self.server.wait_for_termination()


async def start(settings: Settings, tracer_provider: TracerProvider | None = None) -> App:
    """Migrates storage if allowed, builds the servers and starts serving.

    By default every call needs a client certificate from the data
    directory's CA; `insecure` serves plaintext on loopback only.
    """
    ca_dir = settings.data_dir / bootstrap.CA_DIR
    authority = (
        ca.CertificateAuthority.load(ca_dir) if (ca_dir / ca.CertificateAuthority.INTERMEDIATE_KEY).exists() else None
    )
    if settings.insecure and not _is_loopback(settings.listen):
        raise ConfigurationError(f"--insecure serves plaintext and is allowed on loopback only, not {settings.listen}")
    if not settings.insecure and authority is None:
        raise ConfigurationError(f"no certificate authority in {ca_dir}: run `openvpp init` (or serve --insecure)")
    url = settings.resolved_database_url()
    if settings.auto_migrate:
        await asyncio.to_thread(migrate.upgrade, url)
    db = Database(url)
    clock_us = clock.system
    # Registry and integration announce changes; routing derives routes from them.
    changes = RouteChanges()
    registry = Registry(
        db,
        max_record_bytes=settings.max_record_bytes,
        watch_poll_seconds=settings.watch_poll_seconds,
        changes=changes,
        clock_us=clock_us,
        recheck_seconds=settings.cache_recheck_seconds,
    )
    partners = Partners(
        db,
        authority,
        default_days=settings.client_cert_days,
        crl_path=settings.resolved_crl_path,
        changes=changes,
        clock_us=clock_us,
        recheck_seconds=settings.cache_recheck_seconds,
    )
    prober = Prober(
        timeout_seconds=settings.probe_timeout_seconds, allow_private_addresses=settings.probe_private_addresses
    )
    endpoints = Endpoints(db, prober, changes, clock_us)
    authenticator = Authenticator(
        partners,
        insecure=settings.insecure,
        limits=PartnerLimits(
            settings.max_calls_per_partner, settings.max_streams_per_partner, settings.active_calls_per_partner
        ),
    )
    spans = ServerSpans(trace.get_tracer("openvpp.server", tracer_provider=tracer_provider))
    interceptors = [CallInterceptor(spans, authenticator)]
    options = [
        ("grpc.max_receive_message_length", settings.max_message_bytes),
        ("grpc.max_send_message_length", settings.max_message_bytes),
        ("grpc.so_reuseport", 0),
        ("grpc.max_concurrent_streams", settings.max_streams_per_connection),
        ("grpc.max_connection_idle_ms", int(settings.connection_idle_seconds * 1000)),
        ("grpc.keepalive_time_ms", int(settings.keepalive_seconds * 1000)),
        ("grpc.keepalive_timeout_ms", 20_000),
        # Clients may ping idle connections, but not more often than every 10 s.
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    ]
    server = grpc.aio.server(interceptors=interceptors, options=options)
    try:
        runtime = await open_settlement(settings, db, registry, clock_us)
    except MissingKeys as exc:
        await db.close()
        raise ConfigurationError(str(exc)) from None
    except BaseException:
        await db.close()
        raise
    settlement = runtime.services
    registry_servicer = RegistryServicer(registry, settings.max_bulk_chunk, runtime.anchorer)
    registry_pb2_grpc.add_RegistryServiceServicer_to_server(registry_servicer, server)
    ingestor = Ingestor(
        db,
        max_batch=settings.max_reading_batch,
        max_future_skew_s=settings.reading_max_future_skew_seconds,
        max_age_s=settings.reading_max_age_seconds,
        notify=settlement.event_log.notify,
        verify_threads=settings.reading_verify_threads,
        clock_us=clock_us,
        max_backlog=settings.max_ingest_backlog_readings,
    )
    signin = SignIn(
        db, partners, chain_id=f"solana:{settlement.chain.name}", session_seconds=settings.web_session_seconds
    )
    servicers: dict[str, Any] = {
        "RegistryService": registry_servicer,
        "SettlementService": SettlementServicer(settlement, ingestor),
        "BillingService": BillingServicer(runtime.billing),
        "IntegrationService": IntegrationServicer(partners, endpoints, signin),
    }
    routing_servicer, route_watch = _routing(settings, db, registry, clock_us)
    servicers["RoutingService"] = routing_servicer
    settlement_pb2_grpc.add_SettlementServiceServicer_to_server(servicers["SettlementService"], server)
    billing_pb2_grpc.add_BillingServiceServicer_to_server(servicers["BillingService"], server)
    integration_pb2_grpc.add_IntegrationServiceServicer_to_server(servicers["IntegrationService"], server)
    routing_pb2_grpc.add_RoutingServiceServicer_to_server(routing_servicer, server)
    health = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    reflection.enable((*SERVICE_NAMES, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name), server)
    if settings.insecure:
        port = server.add_insecure_port(settings.listen)
    else:
        port = server.add_secure_port(settings.listen, _tls_credentials(settings))
    if port == 0:
        await runtime.close()
        await db.close()
        raise OSError(f"cannot listen on {settings.listen}")
    health_server, health_port = None, 0
    if settings.health_listen and not settings.insecure:
        health_server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
        health_pb2_grpc.add_HealthServicer_to_server(health, health_server)
        health_port = health_server.add_insecure_port(settings.health_listen)
        await health_server.start()
    await server.start()
    runtime.start_background(
        settings.anchor_interval_seconds, settings.settle_interval_seconds, settings.billing_close_interval_seconds
    )
    for name in ("", *SERVICE_NAMES):
        await health.set(name, health_pb2.HealthCheckResponse.SERVING)
    log.info("serving %s on port %d (%s)", ", ".join(SERVICE_NAMES), port, "plaintext" if settings.insecure else "mTLS")
    return App(
        settings,
        server,
        port,
        db,
        registry,
        health,
        health_server,
        health_port,
        tracer_provider,
        route_watch,
        runtime,
        settlement,
        partners,
        ingestor,
        signin,
        servicers,
    )


def tune_garbage_collector() -> None:
    """The server keeps large long-lived caches (device states, registry
    facts) and allocates tens of thousands of short-lived objects per batch.
    With CPython's default thresholds the collector runs every 700
    allocations and keeps walking the caches; freezing what start-up built
    and collecting less often took about a third off payout time and a tenth
    off ingestion time in `make bench`. Cycles are still collected."""
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
