"""The yardstick for per-call overhead: a bare `grpc.aio` server, nothing of
ours in it, serving one echo method over the same mutual TLS as `openvpp
serve` (the data directory's server certificate, client certificates
required). Like any gRPC service it decodes its request and encodes its
answer with protobuf (a `ResolveRequest`, echoed), so the client does the
same work per call on both sides of the comparison. Run as its own
process, like the server it is compared with.

    python -m tests.bench.echo_server DATA_DIR PORT
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import grpc

from openvpp.integration import bootstrap
from openvpp.v1 import routing_pb2

METHOD = "/bench.Echo/Echo"
MESSAGE = routing_pb2.ResolveRequest


def echo_method(channel: grpc.aio.Channel) -> grpc.aio.UnaryUnaryMultiCallable[MESSAGE, MESSAGE]:
    """The echo as a typed client calls it."""
    return channel.unary_unary(
        METHOD, request_serializer=MESSAGE.SerializeToString, response_deserializer=MESSAGE.FromString
    )


async def _echo(request: MESSAGE, _context: grpc.aio.ServicerContext[MESSAGE, MESSAGE]) -> MESSAGE:
    return request


async def serve(data_dir: Path, port: int) -> None:
    bundle = bootstrap.Bundle(data_dir / bootstrap.SERVER_DIR)
    credentials = grpc.ssl_server_credentials(
        [(bundle.key.read_bytes(), bundle.cert.read_bytes())],
        root_certificates=bundle.ca.read_bytes(),
        require_client_auth=True,
    )
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    handler = grpc.method_handlers_generic_handler(
        "bench.Echo",
        {
            "Echo": grpc.unary_unary_rpc_method_handler(
                _echo, request_deserializer=MESSAGE.FromString, response_serializer=MESSAGE.SerializeToString
            )
        },
    )
    server.add_generic_rpc_handlers((handler,))
    server.add_secure_port(f"127.0.0.1:{port}", credentials)
    await server.start()
    print("ready", flush=True)
    await server.wait_for_termination()


if __name__ == "__main__":
    asyncio.run(serve(Path(sys.argv[1]), int(sys.argv[2])))
