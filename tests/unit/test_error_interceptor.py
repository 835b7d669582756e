"""The error interceptor: a Rust panic (PyO3's PanicException, a
BaseException) becomes INTERNAL with a trace id, never a dead server."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from openvpp.server.interceptors import CallInterceptor, is_panic


class PanicException(BaseException):
    """The shape of pyo3_runtime.PanicException: a BaseException by that name."""


class _Context:
    def __init__(self) -> None:
        self.aborted: tuple[Any, str] | None = None

    async def abort(self, code: grpc.StatusCode, details: str = "", trailing_metadata: Any = ()) -> None:
        self.aborted = (code, details)
        raise grpc.aio.AbortError()


async def _handler(behavior: Any) -> Any:
    async def continuation(_details: Any) -> Any:
        return grpc.unary_unary_rpc_method_handler(behavior)

    class Details:
        method = "/openvpp.v1.RegistryService/GetRegistryHead"
        invocation_metadata = ()

    return await CallInterceptor(None, None).intercept_service(continuation, Details())  # type: ignore[arg-type]


async def test_a_panic_is_internal_with_a_trace_id() -> None:
    async def panics(request: Any, context: Any) -> Any:
        raise PanicException("index out of bounds")

    handler = await _handler(panics)
    context = _Context()
    with pytest.raises(grpc.aio.AbortError):
        await handler.unary_unary(b"", context)
    assert context.aborted is not None
    code, details = context.aborted
    assert code == grpc.StatusCode.INTERNAL
    assert "trace" in details
    assert "index out of bounds" not in details


async def test_cancellation_and_exit_are_not_swallowed() -> None:
    assert is_panic(PanicException())
    assert not is_panic(KeyboardInterrupt())

    async def interrupted(request: Any, context: Any) -> Any:
        raise KeyboardInterrupt

    handler = await _handler(interrupted)
    with pytest.raises(KeyboardInterrupt):
        await handler.unary_unary(b"", _Context())
