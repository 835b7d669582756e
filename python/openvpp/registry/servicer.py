"""gRPC front of the Registry: proto in, domain call, proto out. Nothing else."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc

from openvpp import errors
from openvpp.kernel.timestamps import from_micros
from openvpp.registry.anchor import Anchor, Anchorer
from openvpp.registry.service import CaughtUp, DeviceState, Registry
from openvpp.server.auth import caller
from openvpp.server.errors import OK_STATUS, to_rpc_status
from openvpp.store.registry_repo import ListFilter
from openvpp.v1 import registry_pb2, registry_pb2_grpc

Context = grpc.aio.ServicerContext[Any, Any]


def anchor_message(anchor: Anchor) -> registry_pb2.RegistryAnchor:
    return registry_pb2.RegistryAnchor(
        tree_size=anchor.tree_size,
        root_hash=anchor.root_hash,
        signature=anchor.signature,
        slot=anchor.slot,
        authority=anchor.authority,
        memo=anchor.memo,
    )


def device_message(state: DeviceState) -> registry_pb2.Device:
    record = registry_pb2.DeviceRecord()
    record.ParseFromString(state.record_bytes)
    return registry_pb2.Device(
        der_id=state.der_id,
        record=record,
        signed_record=registry_pb2.SignedDeviceRecord(record=state.record_bytes, signature=state.signature),
        status=state.status,  # type: ignore[arg-type]
        status_reason=state.status_reason,
        version=state.version,
        registered_at=from_micros(state.registered_at_us),
        updated_at=from_micros(state.updated_at_us),
        log_seq=state.log_seq,
    )


class RegistryServicer(registry_pb2_grpc.RegistryServiceServicer):
    def __init__(self, registry: Registry, max_bulk_chunk: int, anchorer: Anchorer | None = None) -> None:
        self.registry = registry
        self.max_bulk_chunk = max_bulk_chunk
        self.anchorer = anchorer

    async def RegisterDevice(
        self, request: registry_pb2.RegisterDeviceRequest, context: Context
    ) -> registry_pb2.RegisterDeviceResponse:
        outcome = (await self.registry.register(caller(), [request.signed_record]))[0]
        if outcome.error is not None:
            raise outcome.error
        device = await self.registry.get_by_id(outcome.der_id)
        return registry_pb2.RegisterDeviceResponse(device=device_message(device), log_seq=outcome.log_seq)

    async def BulkRegisterDevices(
        self, request_iterator: AsyncIterator[registry_pb2.BulkRegisterDevicesRequest], context: Context
    ) -> registry_pb2.BulkRegisterDevicesResponse:
        response = registry_pb2.BulkRegisterDevicesResponse()
        identity = caller()
        async for chunk in request_iterator:
            if len(chunk.signed_records) > self.max_bulk_chunk:
                raise errors.ResourceExhausted(
                    f"a chunk holds {len(chunk.signed_records)} records; the limit is {self.max_bulk_chunk}",
                    "CHUNK_TOO_LARGE",
                    metadata={"limit": str(self.max_bulk_chunk), "accepted_so_far": str(response.accepted)},
                )
            outcomes = await self.registry.register(identity, chunk.signed_records, prefix="signed_records[{i}]")
            for outcome in outcomes:
                verdict = response.verdicts.add(
                    index=len(response.verdicts), der_id=outcome.der_id, log_seq=outcome.log_seq
                )
                if outcome.error is None:
                    verdict.status.CopyFrom(OK_STATUS)
                    response.accepted += 1
                else:
                    verdict.status.CopyFrom(to_rpc_status(outcome.error))
                    response.rejected += 1
        return response

    async def GetDevice(
        self, request: registry_pb2.GetDeviceRequest, context: Context
    ) -> registry_pb2.GetDeviceResponse:
        return registry_pb2.GetDeviceResponse(device=device_message(await self.registry.get(request.identifier)))

    async def ListDevices(
        self, request: registry_pb2.ListDevicesRequest, context: Context
    ) -> registry_pb2.ListDevicesResponse:
        where = ListFilter(
            vendor_namespace=request.vendor_namespace,
            kind=request.kind,
            status=request.status,
            utility_territory=request.utility_territory,
        )
        states, token = await self.registry.list(where, request.page_size, request.page_token)
        return registry_pb2.ListDevicesResponse(devices=[device_message(s) for s in states], next_page_token=token)

    async def UpdateDevice(
        self, request: registry_pb2.UpdateDeviceRequest, context: Context
    ) -> registry_pb2.UpdateDeviceResponse:
        state, log_seq = await self.registry.update(caller(), request.signed_record)
        return registry_pb2.UpdateDeviceResponse(device=device_message(state), log_seq=log_seq)

    async def SetDeviceStatus(
        self, request: registry_pb2.SetDeviceStatusRequest, context: Context
    ) -> registry_pb2.SetDeviceStatusResponse:
        state, log_seq = await self.registry.set_status(caller(), request.der_id, request.status, request.reason)
        return registry_pb2.SetDeviceStatusResponse(device=device_message(state), log_seq=log_seq)

    async def WatchRegistry(
        self, request: registry_pb2.WatchRegistryRequest, context: Context
    ) -> AsyncIterator[registry_pb2.WatchRegistryResponse]:
        async for event in self.registry.watch(request.after_seq, request.follow):
            if isinstance(event, CaughtUp):
                yield registry_pb2.WatchRegistryResponse(caught_up=registry_pb2.CaughtUp(head_seq=event.head_seq))
                continue
            entry = registry_pb2.LogEntry()
            entry.ParseFromString(event.entry_bytes)
            yield registry_pb2.WatchRegistryResponse(
                entry=registry_pb2.LogEntryEvent(
                    seq=event.seq, entry_bytes=event.entry_bytes, leaf_hash=event.leaf_hash, entry=entry
                )
            )

    async def GetRegistryHead(
        self, request: registry_pb2.GetRegistryHeadRequest, context: Context
    ) -> registry_pb2.GetRegistryHeadResponse:
        size, root, head_hash = await self.registry.head()
        return registry_pb2.GetRegistryHeadResponse(tree_size=size, root_hash=root, head_hash=head_hash)

    async def GetInclusionProof(
        self, request: registry_pb2.GetInclusionProofRequest, context: Context
    ) -> registry_pb2.GetInclusionProofResponse:
        if self.anchorer is None and not request.anchored:
            proof = await self.registry.inclusion_proof(request.seq, request.der_id, request.version, request.tree_size)
            anchor = None
        else:
            proof, anchor = await self._anchorer().proof(
                request.seq, request.der_id, request.version, request.tree_size, request.anchored
            )
        return registry_pb2.GetInclusionProofResponse(
            leaf_index=proof.leaf_index,
            tree_size=proof.tree_size,
            root_hash=proof.root_hash,
            audit_path=proof.audit_path,
            entry_bytes=proof.entry_bytes,
            leaf_hash=proof.leaf_hash,
            anchor=None if anchor is None else anchor_message(anchor),
        )

    async def AnchorRegistry(
        self, request: registry_pb2.AnchorRegistryRequest, context: Context
    ) -> registry_pb2.AnchorRegistryResponse:
        return registry_pb2.AnchorRegistryResponse(anchor=anchor_message(await self._anchorer().anchor_now()))

    def _anchorer(self) -> Anchorer:
        if self.anchorer is None:
            raise errors.FailedPrecondition("this server has no chain to anchor on", "NO_CHAIN")
        return self.anchorer

    async def RegisterDeviceCertificate(
        self, request: registry_pb2.RegisterDeviceCertificateRequest, context: Context
    ) -> registry_pb2.RegisterDeviceCertificateResponse:
        lfdi, sfdi = await self.registry.register_certificate(caller(), request.der_id, request.certificate_der)
        return registry_pb2.RegisterDeviceCertificateResponse(lfdi=lfdi, sfdi=sfdi)
