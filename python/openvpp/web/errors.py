"""Errors as the web API answers them: the gRPC status the one table
(`server.errors`) gives, as its HTTP equivalent, with the same reason and
field violations in a JSON body."""

from __future__ import annotations

import json

import grpc
from aiohttp import web

from openvpp import errors
from openvpp.server.errors import status_code_for

# The HTTP mapping of the canonical codes (google.rpc.Code's documented equivalents).
HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.INTERNAL: 500,
}


def body(error: errors.OpenVPPError) -> dict[str, object]:
    code = status_code_for(error)
    return {
        "error": {
            "code": code.name,
            "reason": error.reason,
            "message": error.message,
            "fieldViolations": [{"field": v.field, "description": v.description} for v in error.violations],
            "metadata": error.metadata,
        }
    }


def response(error: errors.OpenVPPError) -> web.Response:
    return web.json_response(body(error), status=HTTP_STATUS.get(status_code_for(error), 500), dumps=json.dumps)
