"""Tracing for the demo's own calls: its spans are parents of the server's,
so one trace runs from a vendor's reading batch to the payout that paid it."""

from __future__ import annotations

import os

from opentelemetry.instrumentation.grpc import GrpcAioInstrumentorClient
from opentelemetry.sdk.trace import TracerProvider

from openvpp.config import TelemetrySettings
from openvpp.server import telemetry


def install(console: bool) -> TracerProvider | None:
    """Exports as OTEL_* says (or to the console); None when tracing is off.

    Called at the CLI edge before the server starts: the server process
    inherits the same environment, so both ends export to one place."""
    if console:
        os.environ["OTEL_TRACES_EXPORTER"] = "console"
    settings = TelemetrySettings(service_name="openvpp-demo")
    if settings.exporter() == "none":
        return None
    provider = telemetry.install(settings)
    GrpcAioInstrumentorClient().instrument()  # type: ignore[no-untyped-call]
    return provider
