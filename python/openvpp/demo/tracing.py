"""Tracing for the demo's own calls: its spans are parents of the server's,
so one trace runs from a vendor's reading batch to the payout that paid it."""

from __future__ import annotations

import os

from opentelemetry.instrumentation.grpc import GrpcAioInstrumentorClient, filters
from opentelemetry.sdk.trace import TracerProvider

from openvpp.config import TelemetrySettings
from openvpp.server import telemetry


def client_settings() -> TelemetrySettings:
    """The OTEL_* settings, named OTEL_SERVICE_NAME when given and the
    client's own name (not the server's) otherwise."""
    settings = TelemetrySettings()
    if "service_name" not in settings.model_fields_set:
        settings = settings.model_copy(update={"service_name": "openvpp-demo"})
    return settings


def install(console: bool) -> TracerProvider | None:
    """Exports as OTEL_* says (or to the console); None when tracing is off.

    Called at the CLI edge before the server starts: the server process
    inherits the same environment, so both ends export to one place."""
    if console:
        os.environ["OTEL_TRACES_EXPORTER"] = "console"
    settings = client_settings()
    if settings.exporter() == "none":
        return None
    provider = telemetry.install(settings)
    # The start-up polling of the server's health is not part of any trace.
    GrpcAioInstrumentorClient(filter_=filters.negate(filters.health_check())).instrument()  # type: ignore[no-untyped-call]
    return provider
