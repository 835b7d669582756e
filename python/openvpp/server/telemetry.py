"""OpenTelemetry tracing set-up from the standard OTEL_* settings."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

from openvpp.config import TelemetrySettings


def tracer_provider(settings: TelemetrySettings) -> TracerProvider:
    """A provider exporting as configured (OTLP, console, or nowhere)."""
    provider = TracerProvider(resource=Resource.create({"service.name": settings.service_name}))
    exporter: SpanExporter | None = None
    choice = settings.exporter()
    if choice == "otlp":
        # The exporter reads OTEL_EXPORTER_OTLP_* itself (endpoint, headers, TLS).
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
    elif choice == "console":
        exporter = ConsoleSpanExporter()
    if exporter is not None:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def install(settings: TelemetrySettings) -> TracerProvider:
    """Makes the configured provider global (once per process) and returns it."""
    provider = tracer_provider(settings)
    trace.set_tracer_provider(provider)
    return provider
