"""The one server interceptor: a call's span, its identity and limits, its
checked request, and the error table, in a single wrapper per method.

One wrapper rather than a chain of interceptors because each link of a
grpc.aio chain is a coroutine and a handler per call; as four links (the
OpenTelemetry library's, errors, authentication, the request edge) they
held a cheap RPC to about half a bare server's rate over mTLS in `make
bench`. The order inside is the chain's was: the span covers everything,
refusals from authentication and the edge go through the error table, the
handler sees only a checked request and a verified caller.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeAlias

import grpc
from grpc_status import rpc_status
from opentelemetry import trace

from openvpp import errors
from openvpp.server import edge
from openvpp.server.auth import PUBLIC, Authenticator
from openvpp.server.errors import to_rpc_status
from openvpp.server.tracing import ServerSpans

log = logging.getLogger(__name__)

Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"
Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"
_OK, _CANCELLED, _UNKNOWN = grpc.StatusCode.OK, grpc.StatusCode.CANCELLED, grpc.StatusCode.UNKNOWN


def is_panic(exc: BaseException) -> bool:
    """A Rust panic surfaces as PyO3's PanicException, a BaseException: it
    must become INTERNAL for that call, never take the server down."""
    return type(exc).__name__ == "PanicException"


def answer(exc: BaseException, method: str) -> tuple[grpc.StatusCode, str, Any]:
    """The status for what a handler raised: the table's for our errors;
    for anything else INTERNAL with the trace id, logged, nothing internal told."""
    if isinstance(exc, errors.OpenVPPError):
        status = rpc_status.to_status(to_rpc_status(exc))
        return status.code, status.details, status.trailing_metadata
    trace_id = trace.get_current_span().get_span_context().trace_id
    log.error("unhandled error in %s (trace %032x)", method, trace_id, exc_info=exc)
    return grpc.StatusCode.INTERNAL, f"internal error (trace {trace_id:032x})", ()


class _Outcome:
    """How a call ended, for its span: the status code, its details, and
    the exception behind it when it was not one of ours."""

    __slots__ = ("code", "details", "error")

    def __init__(self) -> None:
        self.code = _OK
        self.details = ""
        self.error: BaseException | None = None

    async def refuse(self, exc: BaseException, method: str, context: Context) -> None:
        """Answers what a handler raised through the error table (the abort
        raises), or re-raises what must not be caught (exit, interrupts)."""
        if not isinstance(exc, Exception) and not is_panic(exc):
            self.code, self.error = _UNKNOWN, exc
            raise exc
        self.code, self.details, trailing = answer(exc, method)
        self.error = None if isinstance(exc, errors.OpenVPPError) else exc
        await context.abort(self.code, self.details, trailing)


def _same(request: Any) -> Any:
    return request


class CallInterceptor(grpc.aio.ServerInterceptor):
    """`spans` None: no tracing; `authenticator` None: no identity (tests of
    the error table alone). Health is passed through untouched."""

    def __init__(self, spans: ServerSpans | None, authenticator: Authenticator | None) -> None:
        self.spans = spans
        self.authenticator = authenticator
        # grpc.aio asks for a handler on every call; the one below is the same
        # object from call to call, so its wrapper is built once and reused
        # while it wraps that object.
        self._memo: dict[str, tuple[Handler, Handler]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        held = self._memo.get(method)
        if held is not None and held[0] is handler:
            return held[1]
        wrapped = handler if method in PUBLIC else self._wrap(method, handler)
        self._memo[method] = (handler, wrapped)
        return wrapped

    def _wrap(self, method: str, handler: Handler) -> Handler:
        decode = edge.checked_decoder(method, handler)
        client_streams = handler.stream_unary is not None or handler.stream_stream is not None
        check: Callable[[Any], Any] = _same
        if decode is not None:
            check = edge.admitted_stream if client_streams else edge.admitted
        common = {
            "request_deserializer": decode or handler.request_deserializer,
            "response_serializer": handler.response_serializer,
        }
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(self._unary(method, handler.unary_unary, check, False), **common)
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                self._unary(method, handler.stream_unary, check, True), **common
            )
        behavior = handler.unary_stream or handler.stream_stream
        wrapped = self._streaming(method, behavior, check)
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(wrapped, **common)
        return grpc.stream_stream_rpc_method_handler(wrapped, **common)

    def _unary(
        self, method: str, behavior: Callable[..., Awaitable[Any]], check: Callable[[Any], Any], streams: bool
    ) -> Callable[..., Awaitable[Any]]:
        spans, auth = self.spans, self.authenticator

        async def call(request: Any, context: Context) -> Any:
            span, token = spans.start(method, context) if spans is not None else (None, None)
            outcome = _Outcome()
            try:
                if auth is None:
                    return await behavior(check(request), context)
                claimed = auth.claim(method, context)
                gate = auth.limits.enter(claimed.namespace, streams)
                try:
                    if gate is None:
                        await auth.admit(claimed)
                        return await behavior(check(request), context)
                    async with gate:
                        await auth.admit(claimed)
                        return await behavior(check(request), context)
                finally:
                    auth.limits.leave(claimed.namespace, streams)
            except (grpc.aio.AbortError, grpc.aio.UsageError):
                raise
            except asyncio.CancelledError:
                outcome.code = _CANCELLED
                raise
            except BaseException as exc:
                await outcome.refuse(exc, method, context)
            finally:
                if span is not None:
                    spans.end(span, token, outcome.code, outcome.details, outcome.error)  # type: ignore[union-attr]

        return call

    def _streaming(self, method: str, behavior: Any, check: Callable[[Any], Any]) -> Callable[..., AsyncIterator[Any]]:
        spans, auth = self.spans, self.authenticator

        async def call(request: Any, context: Context) -> AsyncIterator[Any]:
            span, token = spans.start(method, context) if spans is not None else (None, None)
            outcome = _Outcome()
            try:
                if auth is None:
                    async for response in behavior(check(request), context):
                        yield response
                    return
                claimed = auth.claim(method, context)
                auth.limits.enter(claimed.namespace, True)
                try:
                    await auth.admit(claimed)
                    async for response in behavior(check(request), context):
                        yield response
                finally:
                    auth.limits.leave(claimed.namespace, True)
            except (grpc.aio.AbortError, grpc.aio.UsageError):
                raise
            except (asyncio.CancelledError, GeneratorExit):
                outcome.code = _CANCELLED
                raise
            except BaseException as exc:
                await outcome.refuse(exc, method, context)
            finally:
                if span is not None:
                    spans.end(span, token, outcome.code, outcome.details, outcome.error)  # type: ignore[union-attr]

        return call
