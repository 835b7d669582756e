"""gRPC front of billing: proto in, domain call, proto out."""

from __future__ import annotations

from typing import Any

import grpc

from openvpp.billing import bills as bill_views
from openvpp.kernel.tenancy import Viewer
from openvpp.server.auth import caller
from openvpp.v1 import billing_pb2 as pb
from openvpp.v1 import billing_pb2_grpc

Context = grpc.aio.ServicerContext[Any, Any]


class BillingServicer(billing_pb2_grpc.BillingServiceServicer):
    def __init__(self, billing: Any) -> None:
        # The composition root's BillingRuntime (plans, bills, autopay).
        self.plans = billing.plans
        self.bills = billing.bills
        self.autopay = billing.autopay
        self.requests = billing.requests

    async def ConfigureBilling(
        self, request: pb.ConfigureBillingRequest, context: Context
    ) -> pb.ConfigureBillingResponse:
        plan = await self.plans.configure(caller(), request.plan)
        return pb.ConfigureBillingResponse(plan=plan.message())

    async def GetBillingPlan(self, request: pb.GetBillingPlanRequest, context: Context) -> pb.GetBillingPlanResponse:
        plan = await self.plans.visible(Viewer.of(caller()), request.program_id)
        return pb.GetBillingPlanResponse(plan=plan.message())

    async def GetBill(self, request: pb.GetBillRequest, context: Context) -> pb.GetBillResponse:
        bill = await self.bills.bill(Viewer.of(caller()), request.program_id, request.account_ref, request.period)
        return pb.GetBillResponse(bill=bill_views.message(bill))

    async def ListBills(self, request: pb.ListBillsRequest, context: Context) -> pb.ListBillsResponse:
        found, token = await self.bills.list_bills(
            Viewer.of(caller()), request.program_id, request.account_ref, request.page_size, request.page_token
        )
        return pb.ListBillsResponse(
            bills=[bill_views.message(b, with_lines=False) for b in found], next_page_token=token
        )

    async def PrepareAutopay(self, request: pb.PrepareAutopayRequest, context: Context) -> pb.PrepareAutopayResponse:
        view, raw, last_valid = await self.autopay.prepare(
            caller(), request.program_id, request.account_ref, request.holder, request.allowance_base_units
        )
        return pb.PrepareAutopayResponse(autopay=view.message(), transaction=raw, last_valid_block_height=last_valid)

    async def SubmitAutopay(self, request: pb.SubmitAutopayRequest, context: Context) -> pb.SubmitAutopayResponse:
        view = await self.autopay.submit(caller(), request.program_id, request.account_ref, request.transaction)
        return pb.SubmitAutopayResponse(autopay=view.message())

    async def GetAutopay(self, request: pb.GetAutopayRequest, context: Context) -> pb.GetAutopayResponse:
        view = await self.autopay.get(Viewer.of(caller()), request.program_id, request.account_ref)
        return pb.GetAutopayResponse(autopay=view.message())

    async def RequestBillPayment(
        self, request: pb.RequestBillPaymentRequest, context: Context
    ) -> pb.RequestBillPaymentResponse:
        made = await self.requests.request(caller(), request.program_id, request.account_ref, request.period)
        return pb.RequestBillPaymentResponse(request=made)
