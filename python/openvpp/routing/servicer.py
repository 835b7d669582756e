"""gRPC front of the Routing service: proto in, domain call, proto out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc

from openvpp.kernel.timestamps import from_micros
from openvpp.routing.diagnose import Diagnoser
from openvpp.routing.enrollment import Enrollments, EnrollmentState
from openvpp.routing.programs import Programs, ProgramState
from openvpp.routing.resolver import Resolver
from openvpp.routing.routes import SIGNING_DOMAIN, RoutingKey
from openvpp.routing.watch import CaughtUp, RouteWatch
from openvpp.server.auth import caller
from openvpp.v1 import registry_pb2, routing_pb2_grpc
from openvpp.v1 import routing_pb2 as pb

Context = grpc.aio.ServicerContext[Any, Any]


def program_message(p: ProgramState) -> pb.Program:
    return pb.Program(
        program_id=p.program_id,
        utility_namespace=p.utility_namespace,
        code=p.code,
        name=p.name,
        kind=p.kind,  # type: ignore[arg-type]
        endpoints=[
            pb.ProgramEndpoint(endpoint_id=a.endpoint_id, priority=a.priority, weight=a.weight) for a in p.endpoints
        ],
        route_ttl_seconds=p.route_ttl_seconds,
        created_at=from_micros(p.created_at_us),
    )


def enrollment_message(e: EnrollmentState) -> pb.Enrollment:
    return pb.Enrollment(
        program_id=e.program_id,
        der_id=e.der_id,
        vendor_namespace=e.vendor_namespace,
        account_ref=e.account_ref,
        consent=pb.SignedConsent(payload=e.consent_payload, signature=e.consent_signature),
        scopes=e.scopes,  # type: ignore[arg-type]
        status=e.status,  # type: ignore[arg-type]
        status_reason=e.status_reason,
        consent_expires_at=from_micros(e.consent_expires_at_us),
        enrolled_at=from_micros(e.enrolled_at_us),
        updated_at=from_micros(e.updated_at_us),
    )


class RoutingServicer(routing_pb2_grpc.RoutingServiceServicer):
    def __init__(
        self,
        programs: Programs,
        enrollments: Enrollments,
        resolver: Resolver,
        watch: RouteWatch,
        diagnoser: Diagnoser,
        key: RoutingKey,
    ) -> None:
        self.programs = programs
        self.enrollments = enrollments
        self.resolver = resolver
        self.watch = watch
        self.diagnoser = diagnoser
        self.key_response = pb.GetRoutingKeyResponse(
            public_key=key.public_key, key_id=key.key_id, algorithm="ed25519", signing_domain=SIGNING_DOMAIN.decode()
        )

    async def CreateProgram(self, request: pb.CreateProgramRequest, context: Context) -> pb.CreateProgramResponse:
        program = await self.programs.create(
            caller(), request.utility_namespace, request.code, request.name, request.kind, request.route_ttl_seconds
        )
        return pb.CreateProgramResponse(program=program_message(program))

    async def GetProgram(self, request: pb.GetProgramRequest, context: Context) -> pb.GetProgramResponse:
        return pb.GetProgramResponse(program=program_message(await self.programs.get(request.program_id)))

    async def ListPrograms(self, request: pb.ListProgramsRequest, context: Context) -> pb.ListProgramsResponse:
        found, token = await self.programs.list_programs(
            request.utility_namespace, request.page_size, request.page_token
        )
        return pb.ListProgramsResponse(programs=[program_message(p) for p in found], next_page_token=token)

    async def AttachEndpoint(self, request: pb.AttachEndpointRequest, context: Context) -> pb.AttachEndpointResponse:
        program = await self.programs.attach(
            caller(), request.program_id, request.endpoint_id, request.priority, request.weight
        )
        return pb.AttachEndpointResponse(program=program_message(program))

    async def DetachEndpoint(self, request: pb.DetachEndpointRequest, context: Context) -> pb.DetachEndpointResponse:
        program = await self.programs.detach(caller(), request.program_id, request.endpoint_id)
        return pb.DetachEndpointResponse(program=program_message(program))

    async def EnrollDevice(self, request: pb.EnrollDeviceRequest, context: Context) -> pb.EnrollDeviceResponse:
        state = await self.enrollments.enroll(
            caller(), request.program_id, request.device, request.account_ref, request.consent
        )
        return pb.EnrollDeviceResponse(enrollment=enrollment_message(state))

    async def UnenrollDevice(self, request: pb.UnenrollDeviceRequest, context: Context) -> pb.UnenrollDeviceResponse:
        state = await self.enrollments.unenroll(caller(), request.program_id, request.device, request.reason)
        return pb.UnenrollDeviceResponse(enrollment=enrollment_message(state))

    async def ListEnrollments(self, request: pb.ListEnrollmentsRequest, context: Context) -> pb.ListEnrollmentsResponse:
        found, token = await self.enrollments.list_enrollments(
            caller(),
            request.program_id,
            request.device if request.HasField("device") else None,
            request.include_unenrolled,
            request.page_size,
            request.page_token,
        )
        return pb.ListEnrollmentsResponse(enrollments=[enrollment_message(e) for e in found], next_page_token=token)

    async def Resolve(self, request: pb.ResolveRequest, context: Context) -> pb.ResolveResponse:
        signed = await self.resolver.resolve(caller(), request.device, request.program_id, request.protocol)
        return pb.ResolveResponse(routes=signed)

    async def ResolveBatch(self, request: pb.ResolveBatchRequest, context: Context) -> pb.ResolveBatchResponse:
        encoded = await self.resolver.resolve_batch(
            caller(), list(request.identifiers), request.program_id, request.protocol
        )
        return pb.ResolveBatchResponse.FromString(encoded)

    async def GetRoutingKey(self, request: pb.GetRoutingKeyRequest, context: Context) -> pb.GetRoutingKeyResponse:
        return self.key_response

    async def WatchRoutes(
        self, request: pb.WatchRoutesRequest, context: Context
    ) -> AsyncIterator[pb.WatchRoutesResponse]:
        async for item in self.watch.watch(caller(), request.after_seq, request.follow):
            if isinstance(item, CaughtUp):
                yield pb.WatchRoutesResponse(caught_up=registry_pb2.CaughtUp(head_seq=item.head_seq))
                continue
            yield pb.WatchRoutesResponse(
                change=pb.RouteEvent(
                    seq=item.seq,
                    kind=item.kind,
                    der_id=item.der_id,
                    program_id=item.program_id,
                    endpoint_id=item.endpoint_id,
                    namespace=item.namespace,
                    detail=item.detail,
                    at=from_micros(item.at_us),
                )
            )

    async def Diagnose(self, request: pb.DiagnoseRequest, context: Context) -> pb.DiagnoseResponse:
        found = await self.diagnoser.diagnose(caller(), request.device, request.program_id)
        return pb.DiagnoseResponse(
            der_id=found.der_id,
            routable=found.routable,
            checks=[
                pb.DiagnosisCheck(name=c.name, state=c.state, detail=c.detail, remedy=c.remedy)  # type: ignore[arg-type]
                for c in found.checks
            ],
        )
