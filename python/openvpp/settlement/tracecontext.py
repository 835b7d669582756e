"""Carrying a trace across the asynchronous hops of settlement.

A reading batch is stored in one request, priced in a later pass and paid
in a later settlement still. Each hop stores the W3C traceparent of its
span next to what it wrote, and the next hop starts its span as a child of
the first such parent (and links the others), so one trace runs from the
batch to the payout transaction's signature.
"""

from __future__ import annotations

from collections.abc import Iterable

from opentelemetry import context, trace
from opentelemetry.trace import Link
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_PROPAGATOR = TraceContextTextMapPropagator()
MAX_LINKS = 32


def current() -> str:
    """The traceparent of the current span, or "" when not sampled/recording."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get("traceparent", "")


def _span_context(parent: str) -> trace.SpanContext | None:
    ctx = _PROPAGATOR.extract({"traceparent": parent})
    span_context = trace.get_current_span(ctx).get_span_context()
    return span_context if span_context.is_valid else None


def parented(parents: Iterable[str]) -> tuple[context.Context | None, list[Link]]:
    """A context whose parent is the first valid traceparent, and links to the rest."""
    seen: list[trace.SpanContext] = []
    for p in dict.fromkeys(p for p in parents if p):
        sc = _span_context(p)
        if sc is not None:
            seen.append(sc)
        if len(seen) > MAX_LINKS:
            break
    if not seen:
        return None, []
    parent = trace.set_span_in_context(trace.NonRecordingSpan(seen[0]))
    return parent, [Link(sc) for sc in seen[1:]]
