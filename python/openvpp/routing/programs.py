"""Utility programs and the validated endpoints that serve them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Row

from openvpp import errors
from openvpp.kernel import clock
from openvpp.kernel.clock import Clock
from openvpp.kernel.identity import Identity
from openvpp.kernel.programs import denied, program_not_found
from openvpp.store import endpoint_repo, partner_repo, route_log
from openvpp.store import routing_repo as repo
from openvpp.store.database import Database
from openvpp.v1 import integration_pb2
from openvpp.v1 import routing_pb2 as pb

_CODE_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_KINDS = frozenset(pb.ProgramKind.values()) - {pb.PROGRAM_KIND_UNSPECIFIED}
DEFAULT_TTL = 300
MAX_TTL = 86_400
MAX_SRV = 65_535


@dataclass(frozen=True, slots=True)
class Attachment:
    endpoint_id: str
    priority: int
    weight: int


@dataclass(frozen=True, slots=True)
class ProgramState:
    program_id: str
    utility_namespace: str
    code: str
    name: str
    kind: int
    route_ttl_seconds: int
    created_at_us: int
    endpoints: tuple[Attachment, ...]

    @classmethod
    def from_rows(cls, row: Row[Any], attached: list[Row[Any]]) -> ProgramState:
        return cls(
            row.program_id,
            row.utility_namespace,
            row.code,
            row.name,
            row.kind,
            row.route_ttl_seconds,
            row.created_at_us,
            tuple(Attachment(a.endpoint_id, a.priority, a.weight) for a in attached),
        )


class Programs:
    def __init__(self, db: Database, clock_us: Clock = clock.system) -> None:
        self.db = db
        self.clock_us = clock_us

    async def create(self, caller: Identity, utility: str, code: str, name: str, kind: int, ttl: int) -> ProgramState:
        utility = utility or caller.namespace
        if not caller.acts_for(utility):
            raise denied("create programs of its own")
        if not _CODE_RE.match(code):
            raise errors.InvalidArgument.field("code", "must be a lower-case label (a-z, 0-9, '-')", "INVALID_NAME")
        if not name.strip() or len(name) > 256:
            raise errors.InvalidArgument.field("name", "must be 1-256 characters", "INVALID_TEXT")
        if kind not in _KINDS:
            raise errors.InvalidArgument.field("kind", "must be a known program kind", "INVALID_ENUM")
        if ttl and not 10 <= ttl <= MAX_TTL:
            raise errors.InvalidArgument.field("route_ttl_seconds", f"must be 10-{MAX_TTL}", "OUT_OF_RANGE")
        program_id = f"{utility}/{code}"
        async with self.db.write() as conn:
            partner = await partner_repo.partner(conn, utility)
            if partner is None:
                raise errors.NotFound(f"no partner {utility}", "PARTNER_NOT_FOUND")
            if partner.kind != integration_pb2.PARTNER_KIND_UTILITY:
                raise errors.FailedPrecondition("programs belong to utilities", "NOT_A_UTILITY")
            if await repo.program(conn, program_id) is not None:
                raise errors.AlreadyExists(
                    f"program {program_id} exists",
                    "PROGRAM_EXISTS",
                    violations=[errors.FieldViolation("code", "already used by this utility")],
                )
            await repo.insert_program(
                conn,
                {
                    "program_id": program_id,
                    "utility_namespace": utility,
                    "code": code,
                    "name": name,
                    "kind": kind,
                    "route_ttl_seconds": ttl or DEFAULT_TTL,
                    "created_at_us": self.clock_us(),
                },
            )
            return await self._load(conn, program_id)

    async def get(self, program_id: str) -> ProgramState:
        async with self.db.read() as conn:
            return await self._load(conn, program_id)

    async def list_programs(self, utility: str, page_size: int, token: str) -> tuple[list[ProgramState], str]:
        if page_size > 1000:
            raise errors.InvalidArgument.field("page_size", "must be at most 1000", "OUT_OF_RANGE")
        limit = page_size or 100
        async with self.db.read() as conn:
            rows = list(await repo.list_programs(conn, utility, token, limit + 1))
            attached = await repo.attachments(conn, [r.program_id for r in rows[:limit]])
        found = [ProgramState.from_rows(r, [a for a in attached if a.program_id == r.program_id]) for r in rows[:limit]]
        return found, (found[-1].program_id if len(rows) > limit else "")

    async def attach(
        self, caller: Identity, program_id: str, endpoint_id: str, priority: int, weight: int
    ) -> ProgramState:
        if priority > MAX_SRV or weight > MAX_SRV:
            raise errors.InvalidArgument.field(
                "priority" if priority > MAX_SRV else "weight", f"must be at most {MAX_SRV}", "OUT_OF_RANGE"
            )
        async with self.db.write() as conn:
            program = await self._owned(conn, caller, program_id)
            endpoint = await endpoint_repo.endpoint(conn, endpoint_id)
            if endpoint is None:
                raise errors.NotFound(f"no endpoint {endpoint_id}", "ENDPOINT_NOT_FOUND")
            if endpoint.namespace != program.utility_namespace:
                raise errors.FailedPrecondition(
                    "a program is served by its own utility's endpoints", "ENDPOINT_OF_ANOTHER_PARTNER"
                )
            if endpoint.state != integration_pb2.ENDPOINT_STATE_VALIDATED:
                raise errors.FailedPrecondition(
                    f"endpoint {endpoint_id} has not passed its probe; run ValidateEndpoint", "ENDPOINT_NOT_VALIDATED"
                )
            now = self.clock_us()
            values = {
                "program_id": program_id,
                "endpoint_id": endpoint_id,
                "priority": priority,
                "weight": weight or 1,
                "attached_at_us": now,
            }
            await repo.attach(conn, values)
            change = route_log.RouteChange(
                pb.ROUTE_EVENT_KIND_ENDPOINT_ATTACHED,
                utility_namespace=program.utility_namespace,
                program_id=program_id,
                endpoint_id=endpoint_id,
                detail=f"priority {priority} weight {weight or 1}",
            )
            await route_log.append(conn, [change], now)
            return await self._load(conn, program_id)

    async def detach(self, caller: Identity, program_id: str, endpoint_id: str) -> ProgramState:
        async with self.db.write() as conn:
            program = await self._owned(conn, caller, program_id)
            if not await repo.detach(conn, program_id, endpoint_id):
                raise errors.NotFound(f"{endpoint_id} is not attached to {program_id}", "ENDPOINT_NOT_ATTACHED")
            change = route_log.RouteChange(
                pb.ROUTE_EVENT_KIND_ENDPOINT_DETACHED,
                utility_namespace=program.utility_namespace,
                program_id=program_id,
                endpoint_id=endpoint_id,
            )
            await route_log.append(conn, [change], self.clock_us())
            return await self._load(conn, program_id)

    async def _owned(self, conn: Any, caller: Identity, program_id: str) -> Row[Any]:
        program = await repo.program(conn, program_id)
        if program is None:
            raise program_not_found(program_id)
        if not caller.acts_for(program.utility_namespace):
            raise denied("manage its own programs")
        return program

    @staticmethod
    async def _load(conn: Any, program_id: str) -> ProgramState:
        row = await repo.program(conn, program_id)
        if row is None:
            raise program_not_found(program_id)
        return ProgramState.from_rows(row, list(await repo.attachments(conn, [program_id])))
