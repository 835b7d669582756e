"""Server assembly: health, reflection, tracing, and the one error table."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import grpc
import pytest
from google.protobuf import descriptor_pool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from solders.keypair import Keypair

from openvpp import errors
from openvpp.server import app as server_app
from openvpp.server.interceptors import CallInterceptor
from openvpp.v1 import registry_pb2
from tests import factories
from tests.rpc import expect_error

if TYPE_CHECKING:
    from openvpp.v1.registry_pb2_grpc import RegistryServiceAsyncStub as Stub


def _reflect(port: int) -> tuple[list[str], list[str]]:
    """A plain reflection client, as grpcurl would use: no generated OpenVPP code."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        database = ProtoReflectionDescriptorDatabase(channel)
        services = list(database.get_services())
        pool = descriptor_pool.DescriptorPool(database)
        methods = [m.name for m in pool.FindServiceByName("openvpp.v1.RegistryService").methods]
    return services, methods


async def test_reflection_lists_the_registry_and_its_methods(app: server_app.App) -> None:
    services, methods = await asyncio.to_thread(_reflect, app.port)
    assert "openvpp.v1.RegistryService" in services
    assert "grpc.health.v1.Health" in services
    assert {"RegisterDevice", "BulkRegisterDevices", "WatchRegistry", "GetInclusionProof"} <= set(methods)


async def test_health_is_serving_per_service_and_unknown_services_are_not_found(channel: grpc.aio.Channel) -> None:
    health: Any = health_pb2_grpc.HealthStub(channel)
    for service in ("", "openvpp.v1.RegistryService"):
        reply = await health.Check(health_pb2.HealthCheckRequest(service=service))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await health.Check(health_pb2.HealthCheckRequest(service="openvpp.v1.Nope"))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_one_span_per_rpc_with_a_native_child_and_no_health_spans(
    registry: Stub, channel: grpc.aio.Channel, spans: InMemorySpanExporter
) -> None:
    health: Any = health_pb2_grpc.HealthStub(channel)
    await health.Check(health_pb2.HealthCheckRequest(service=""))
    await registry.RegisterDevice(registry_pb2.RegisterDeviceRequest(signed_record=factories.signed(Keypair(), "d")))
    finished = spans.get_finished_spans()
    names = [s.name for s in finished]
    assert "/openvpp.v1.RegistryService/RegisterDevice" in names
    assert not any("Health" in n for n in names)
    rpc = next(s for s in finished if s.name == "/openvpp.v1.RegistryService/RegisterDevice")
    native = next(s for s in finished if s.name == "native.verify_ed25519")
    assert native.parent is not None
    assert native.parent.span_id == rpc.context.span_id
    assert native.attributes is not None
    assert native.attributes["openvpp.batch.size"] == 1
    assert native.attributes["openvpp.batch.rejected"] == 0


async def test_error_table_maps_domain_errors_and_hides_everything_else() -> None:
    async def not_found(request: bytes, context: Any) -> bytes:
        raise errors.NotFound("no such thing", "THING_NOT_FOUND", metadata={"thing": "x"})

    async def crash(request: bytes, context: Any) -> bytes:
        raise RuntimeError("database password is hunter2")

    async def stream_then_fail(request: bytes, context: Any) -> Any:
        yield b"one"
        raise errors.FailedPrecondition("stopped", "STOPPED")

    handler = grpc.method_handlers_generic_handler(
        "test.Svc",
        {
            "NotFound": grpc.unary_unary_rpc_method_handler(not_found),
            "Crash": grpc.unary_unary_rpc_method_handler(crash),
            "Stream": grpc.unary_stream_rpc_method_handler(stream_then_fail),
        },
    )
    server = grpc.aio.server(interceptors=[CallInterceptor(None, None)])
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as typed_channel:
            channel: Any = typed_channel
            error = await expect_error(
                channel.unary_unary("/test.Svc/NotFound")(b""), grpc.StatusCode.NOT_FOUND, "THING_NOT_FOUND"
            )
            assert error.message == "no such thing"
            crashed = await expect_error(channel.unary_unary("/test.Svc/Crash")(b""), grpc.StatusCode.INTERNAL)
            assert "hunter2" not in crashed.message
            call = channel.unary_stream("/test.Svc/Stream")(b"")
            assert await call.read() == b"one"
            await expect_error(call.read(), grpc.StatusCode.FAILED_PRECONDITION, "STOPPED")
    finally:
        await server.stop(None)


def _reflect_v1(port: int) -> tuple[list[str], bytes]:
    """A v1 reflection client (the name newer tools ask for first)."""
    from grpc_reflection.v1alpha import reflection_pb2

    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.stream_stream(
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
            response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
        )
        listed, found = call(
            iter(
                [
                    reflection_pb2.ServerReflectionRequest(list_services=""),
                    reflection_pb2.ServerReflectionRequest(file_containing_symbol="openvpp.v1.RegistryService"),
                ]
            )
        )
    names = [s.name for s in listed.list_services_response.service]
    return names, found.file_descriptor_response.file_descriptor_proto[0]


async def test_reflection_v1_answers_like_v1alpha(app: server_app.App) -> None:
    names, descriptor = await asyncio.to_thread(_reflect_v1, app.port)
    assert {"openvpp.v1.RegistryService", "grpc.reflection.v1.ServerReflection"} <= set(names)
    assert "grpc.reflection.v1alpha.ServerReflection" in names
    assert b"openvpp/v1/registry.proto" in descriptor
