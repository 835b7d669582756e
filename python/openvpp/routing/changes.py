"""Routing's listener on the change port: what a registry, partner or
endpoint change means for routes, written to routing's own tables in the
announcing transaction (the route-change log, and the detachment of a
removed endpoint from its programs)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncConnection

from openvpp.kernel.changes import Change, Fact
from openvpp.store import route_log, routing_repo
from openvpp.v1 import routing_pb2 as pb

_KIND = {
    Fact.DEVICE_STATUS: pb.ROUTE_EVENT_KIND_DEVICE_STATUS,
    Fact.DEVICE_IDENTIFIERS: pb.ROUTE_EVENT_KIND_DEVICE_IDENTIFIERS,
    Fact.PARTNER_SUSPENDED: pb.ROUTE_EVENT_KIND_PARTNER_SUSPENDED,
    Fact.PARTNER_REINSTATED: pb.ROUTE_EVENT_KIND_PARTNER_REINSTATED,
    Fact.ENDPOINT_FAILED: pb.ROUTE_EVENT_KIND_ENDPOINT_FAILED,
    Fact.ENDPOINT_RESTORED: pb.ROUTE_EVENT_KIND_ENDPOINT_RESTORED,
    Fact.ENDPOINT_REMOVED: pb.ROUTE_EVENT_KIND_ENDPOINT_REMOVED,
}
_DEVICE = (Fact.DEVICE_STATUS, Fact.DEVICE_IDENTIFIERS)
_ENDPOINT = (Fact.ENDPOINT_FAILED, Fact.ENDPOINT_RESTORED, Fact.ENDPOINT_REMOVED)


class RouteChanges:
    async def changed(self, conn: AsyncConnection, changes: Sequence[Change], at_us: int) -> None:
        out: list[route_log.RouteChange] = []
        for c in changes:
            kind = _KIND[c.fact]
            if c.fact in _DEVICE:
                utility = await route_log.utility_of_device(conn, c.der_id)
                out.append(route_log.RouteChange(kind, c.der_id, c.vendor, utility, detail=c.detail))
            elif c.fact in _ENDPOINT:
                # One change per program the endpoint serves: its devices' routes changed.
                for program in await routing_repo.programs_of_endpoint(conn, c.endpoint):
                    out.append(
                        route_log.RouteChange(
                            kind,
                            utility_namespace=c.utility,
                            program_id=program,
                            endpoint_id=c.endpoint,
                            detail=c.detail,
                        )
                    )
                if c.fact is Fact.ENDPOINT_REMOVED:
                    await routing_repo.detach_endpoint_everywhere(conn, c.endpoint)
            else:
                out.append(
                    route_log.RouteChange(
                        kind,
                        vendor_namespace=c.vendor,
                        utility_namespace=c.utility,
                        namespace=c.partner,
                        detail=c.detail,
                    )
                )
        await route_log.append(conn, out, at_us)
