"""The error-mapping interceptor: domain exceptions become rich gRPC statuses."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from grpc_status import rpc_status
from opentelemetry import trace

from openvpp import errors
from openvpp.server.errors import to_rpc_status

log = logging.getLogger(__name__)


def is_panic(exc: BaseException) -> bool:
    """A Rust panic surfaces as PyO3's PanicException, a BaseException: it
    must become INTERNAL for that call, never take the server down."""
    return type(exc).__name__ == "PanicException"


async def _abort(context: grpc.aio.ServicerContext[Any, Any], exc: BaseException, method: str) -> None:
    if isinstance(exc, errors.OpenVPPError):
        status = rpc_status.to_status(to_rpc_status(exc))
        await context.abort(status.code, status.details, status.trailing_metadata)
    # Unmapped: log it with the trace id, tell the client nothing internal.
    trace_id = trace.get_current_span().get_span_context().trace_id
    log.exception("unhandled error in %s (trace %032x)", method, trace_id)
    await context.abort(grpc.StatusCode.INTERNAL, f"internal error (trace {trace_id:032x})")


class ErrorInterceptor(grpc.aio.ServerInterceptor):
    """Catches what a handler raises and answers with the one status table."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        return self._memo.get(handler_call_details.method, handler, self._wrap)

    def __init__(self) -> None:
        self._memo = HandlerMemo()

    @staticmethod
    def _wrap(method: str, handler: grpc.RpcMethodHandler[Any, Any]) -> grpc.RpcMethodHandler[Any, Any]:
        def unary(behavior: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
            async def wrapped(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
                try:
                    return await behavior(request, context)
                except (grpc.aio.AbortError, grpc.aio.UsageError):
                    raise
                except Exception as exc:
                    await _abort(context, exc, method)
                except BaseException as exc:
                    if not is_panic(exc):
                        raise
                    await _abort(context, exc, method)

            return wrapped

        def streaming(behavior: Any) -> Callable[..., AsyncIterator[Any]]:
            async def wrapped(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
                try:
                    async for response in behavior(request, context):
                        yield response
                except (grpc.aio.AbortError, grpc.aio.UsageError):
                    raise
                except Exception as exc:
                    await _abort(context, exc, method)
                except BaseException as exc:
                    if not is_panic(exc):
                        raise
                    await _abort(context, exc, method)

            return wrapped

        return rewrap(handler, unary, streaming)


class HandlerMemo:
    """Each interceptor's wrapped handler, built once per method instead of
    on every call: grpc.aio asks every interceptor for a handler per call,
    and building one (closures and a new RpcMethodHandler) was a visible
    share of a cheap RPC's cost. A method's handler below is the same object
    from call to call (the layers under this one memoize too), so a stored
    wrapper is reused only while it wraps that same object."""

    def __init__(self) -> None:
        self._by_method: dict[str, tuple[grpc.RpcMethodHandler[Any, Any], grpc.RpcMethodHandler[Any, Any]]] = {}

    def get(
        self,
        method: str,
        handler: grpc.RpcMethodHandler[Any, Any],
        build: Callable[[str, grpc.RpcMethodHandler[Any, Any]], grpc.RpcMethodHandler[Any, Any]],
    ) -> grpc.RpcMethodHandler[Any, Any]:
        held = self._by_method.get(method)
        if held is not None and held[0] is handler:
            return held[1]
        wrapped = build(method, handler)
        self._by_method[method] = (handler, wrapped)
        return wrapped


def rewrap(
    handler: grpc.RpcMethodHandler[Any, Any],
    unary: Callable[[Callable[..., Awaitable[Any]]], Callable[..., Awaitable[Any]]],
    streaming: Callable[[Any], Callable[..., AsyncIterator[Any]]],
    request_deserializer: Callable[[bytes], Any] | None = None,
) -> grpc.RpcMethodHandler[Any, Any]:
    """The same handler with its behaviour wrapped, whatever its streaming
    shape; `request_deserializer` replaces how its requests are decoded."""
    common = {
        "request_deserializer": request_deserializer or handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(unary(handler.unary_unary), **common)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(unary(handler.stream_unary), **common)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(streaming(handler.unary_stream), **common)
    return grpc.stream_stream_rpc_method_handler(streaming(handler.stream_stream), **common)
