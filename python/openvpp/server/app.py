"""Server assembly: services, health, reflection, interceptors, lifecycle."""

from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from grpc_reflection.v1alpha import reflection
from opentelemetry.instrumentation.grpc import aio_server_interceptor, filters
from opentelemetry.sdk.trace import TracerProvider

from openvpp.config import Settings
from openvpp.registry.service import Registry
from openvpp.registry.servicer import RegistryServicer
from openvpp.server.interceptors import ErrorInterceptor
from openvpp.store import migrate
from openvpp.store.database import Database
from openvpp.v1 import registry_pb2, registry_pb2_grpc

log = logging.getLogger(__name__)

SERVICE_NAMES = (registry_pb2.DESCRIPTOR.services_by_name["RegistryService"].full_name,)


@dataclass
class App:
    """A running OpenVPP server and the parts it owns."""

    settings: Settings
    server: grpc.aio.Server
    port: int
    db: Database
    registry: Registry
    health: health_aio.HealthServicer
    tracer_provider: TracerProvider | None = None
    _stopped: asyncio.Event = field(default_factory=asyncio.Event)

    async def stop(self, grace: float | None = None) -> None:
        """Stops taking calls, lets in-flight ones finish within the grace period, closes storage."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        await self.health.enter_graceful_shutdown()
        self.registry.notifier.close()
        await self.server.stop(self.settings.shutdown_grace_seconds if grace is None else grace)
        await self.db.close()
        if self.tracer_provider is not None:
            self.tracer_provider.force_flush()

    async def wait_for_termination(self) -> None:
        await self.server.wait_for_termination()


async def start(settings: Settings, tracer_provider: TracerProvider | None = None) -> App:
    """Migrates storage if allowed, builds the server and starts serving."""
    url = settings.resolved_database_url()
    if settings.auto_migrate:
        await asyncio.to_thread(migrate.upgrade, url)
    db = Database(url)
    registry = Registry(db, max_record_bytes=settings.max_record_bytes, watch_poll_seconds=settings.watch_poll_seconds)
    # Tracing first so the span covers the error mapping; health stays untraced.
    interceptors = [
        aio_server_interceptor(  # type: ignore[no-untyped-call]
            tracer_provider=tracer_provider, filter_=filters.negate(filters.health_check())
        ),
        ErrorInterceptor(),
    ]
    server = grpc.aio.server(
        interceptors=interceptors,
        options=[
            ("grpc.max_receive_message_length", settings.max_message_bytes),
            ("grpc.max_send_message_length", settings.max_message_bytes),
            ("grpc.so_reuseport", 0),
        ],
    )
    registry_pb2_grpc.add_RegistryServiceServicer_to_server(RegistryServicer(registry, settings.max_bulk_chunk), server)
    health = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    reflection.enable_server_reflection(
        (*SERVICE_NAMES, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
        server,
    )
    port = server.add_insecure_port(settings.listen)
    if port == 0:
        await db.close()
        raise OSError(f"cannot listen on {settings.listen}")
    await server.start()
    for name in ("", *SERVICE_NAMES):
        await health.set(name, health_pb2.HealthCheckResponse.SERVING)
    log.info("serving %s on port %d (database %s)", ", ".join(SERVICE_NAMES), port, db.engine.url.get_backend_name())
    return App(settings, server, port, db, registry, health, tracer_provider)


async def serve(settings: Settings, tracer_provider: TracerProvider | None = None) -> None:
    """Runs until SIGTERM or SIGINT, then drains in-flight calls and exits."""
    app = await start(settings, tracer_provider)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("draining (grace %.1fs)", settings.shutdown_grace_seconds)
    await app.stop()
