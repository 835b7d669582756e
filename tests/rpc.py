"""Assertions on failed calls: the code, the ErrorInfo reason, the BadRequest field."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

import grpc
import pytest

from openvpp.client.errors import CallError, describe


async def expect_error(
    call: Awaitable[Any], code: grpc.StatusCode, reason: str | None = None, field: str | None = None
) -> CallError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    error = describe(caught.value)
    assert caught.value.code() == code, error
    if reason is not None:
        assert error.reason == reason, error
    if field is not None:
        assert field in [f for f, _ in error.fields], error
    return error
