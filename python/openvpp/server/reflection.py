"""gRPC server reflection under both names clients ask for: v1 and v1alpha.

grpcio-reflection serves only `grpc.reflection.v1alpha.ServerReflection`;
newer tools try `grpc.reflection.v1.ServerReflection` first. v1 is v1alpha
renamed (the same messages, the same field numbers), so its requests and
answers are the same bytes, and the v1 method is the library's servicer
under a second name. Hand-written because the library has no v1 yet."""

from __future__ import annotations

from collections.abc import Sequence

import grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc

V1 = "grpc.reflection.v1.ServerReflection"


def enable(service_names: Sequence[str], server: grpc.aio.Server) -> None:
    servicer = reflection.aio.ReflectionServicer((*service_names, reflection.SERVICE_NAME, V1))
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
    v1 = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(V1, {"ServerReflectionInfo": v1}),))
