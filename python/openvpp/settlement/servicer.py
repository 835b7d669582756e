"""gRPC front of settlement's on-chain part: proto in, domain call, proto out."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc

from openvpp import errors
from openvpp.kernel.identity import Identity, Role
from openvpp.kernel.tenancy import Viewer
from openvpp.kernel.timestamps import from_micros, to_micros
from openvpp.server.auth import caller
from openvpp.server.errors import to_rpc_status
from openvpp.settlement.ingest.ingestor import PROTO_VERDICTS, BatchOutcome, Ingestor
from openvpp.settlement.ledger import journal
from openvpp.settlement.payouts import payer
from openvpp.settlement.pricing import dr
from openvpp.settlement.pricing.oracles import TariffVersion
from openvpp.settlement.programs import ProgramConfig
from openvpp.settlement.services import SettlementServices
from openvpp.settlement.tokens.redemption import Redemption
from openvpp.settlement.tokens.usecase import ReserveView, TokenSpec, UseCaseToken
from openvpp.v1 import settlement_pb2 as pb
from openvpp.v1 import settlement_pb2_grpc

Context = grpc.aio.ServicerContext[Any, Any]
# Batches of one SubmitReadings stream verifying or waiting to be stored at once.
READINGS_IN_FLIGHT = 3


def token_message(token: UseCaseToken) -> pb.UseCaseToken:
    return pb.UseCaseToken(
        mint=token.mint,
        utility_id=token.utility_namespace,
        program_id=token.program_id,
        name=token.name,
        symbol=token.symbol,
        uri=token.uri,
        unit=token.unit.value,  # type: ignore[arg-type]
        decimals=token.decimals,
        redemption_value_base_units=token.redemption_value,
        interest_rate_bps=token.interest_rate_bps,
        reserve_account=token.reserve_account,
        stablecoin_mint=token.stablecoin_mint,
        state=token.state.value,  # type: ignore[arg-type]
        created_at=from_micros(token.created_at_us),
        extensions=token.extensions,
    )


def reserve_message(view: ReserveView) -> pb.Reserve:
    return pb.Reserve(
        mint=view.mint,
        reserve_account=view.reserve_account,
        reserve_balance_base_units=view.balance,
        supply_base_units=view.supply,
        decimals=view.decimals,
        redemption_value_base_units=view.redemption_value,
        liability_base_units=view.liability,
        coverage_bps=view.coverage_bps,
        covered=view.covered,
        mintable_base_units=view.mintable,
        slot=view.slot,
    )


def redemption_message(r: Redemption) -> pb.Redemption:
    return r.message()


class SettlementServicer(settlement_pb2_grpc.SettlementServiceServicer):
    def __init__(self, settlement: SettlementServices, ingestor: Ingestor) -> None:
        self.s = settlement
        self.chain = settlement.chain
        self.keyring = settlement.keyring
        self.tokens = settlement.tokens
        self.redemptions = settlement.redemptions
        self.ingestor = ingestor

    async def SubmitReadings(
        self, request_iterator: AsyncIterator[pb.SubmitReadingsRequest], context: Context
    ) -> AsyncIterator[pb.SubmitReadingsResponse]:
        """Pipelined per stream: while one batch is being stored the next ones
        are already verifying. Responses keep the order of the requests, and
        at most READINGS_IN_FLIGHT batches are held, so a fast sender is paced
        by the stream's flow control rather than by server memory."""
        identity = caller()
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[asyncio.Task[pb.SubmitReadingsResponse] | None] = asyncio.Queue(READINGS_IN_FLIGHT)

        async def read() -> None:
            previous: asyncio.Future[None] | None = None
            try:
                async for request in request_iterator:
                    turn = loop.create_future()
                    await queue.put(asyncio.create_task(self._one_batch(identity, request, previous, turn)))
                    previous = turn
            finally:
                await queue.put(None)

        reader = asyncio.create_task(read())
        pending: list[asyncio.Task[pb.SubmitReadingsResponse]] = []
        try:
            while (task := await queue.get()) is not None:
                pending.append(task)
                yield await task
                pending.remove(task)
            await reader
        finally:
            reader.cancel()
            while not queue.empty():
                if (left := queue.get_nowait()) is not None:
                    left.cancel()
            for task in pending:
                task.cancel()

    async def _one_batch(
        self,
        identity: Identity,
        request: pb.SubmitReadingsRequest,
        previous: asyncio.Future[None] | None,
        turn: asyncio.Future[None],
    ) -> pb.SubmitReadingsResponse:
        """Verifies alongside the stream's other batches, but queues for
        storage only after the batch before it (`previous`), so a device's
        readings are stored in the order they were sent."""
        stored: asyncio.Future[BatchOutcome] | None = None
        verified = None
        try:
            try:
                verified = await self.ingestor.verify(request.payloads, request.signatures)
            except errors.OpenVPPError as error:
                return self._refused(request, error)
            finally:
                if previous is not None:
                    await previous
            stored = self.ingestor.enqueue(identity, verified, request.batch_id)
        finally:
            if not turn.done():
                turn.set_result(None)
            if stored is None and verified is not None:
                self.ingestor.release(verified)
        try:
            outcome = await asyncio.shield(stored)
        except errors.OpenVPPError as error:
            return self._refused(request, error)
        return pb.SubmitReadingsResponse(
            batch_id=request.batch_id,
            verdicts=outcome.verdicts.translate(PROTO_VERDICTS),
            flags=outcome.flags,
            accepted=outcome.accepted,
            rejected=outcome.rejected,
            backlog_readings=self.ingestor.backlog,
        )

    def _refused(self, request: pb.SubmitReadingsRequest, error: errors.OpenVPPError) -> pb.SubmitReadingsResponse:
        return pb.SubmitReadingsResponse(
            batch_id=request.batch_id, error=to_rpc_status(error), backlog_readings=self.ingestor.backlog
        )

    async def GetChainInfo(self, request: pb.GetChainInfoRequest, context: Context) -> pb.GetChainInfoResponse:
        coin = self.tokens.stablecoin
        return pb.GetChainInfoResponse(
            backend=self.chain.name,
            stablecoin_mint=str(coin.mint),
            stablecoin_decimals=coin.decimals,
            stablecoin_token_program=str(coin.program),
            fee_payer=str(self.keyring.fee_payer.pubkey()),
            settlement_authority=str(self.keyring.settlement_authority.pubkey()),
            reserve_authority=str(self.keyring.reserve_authority.pubkey()),
            slot=await self.chain.slot(),
            block_height=await self.chain.block_height(),
        )

    async def CreateUseCaseToken(
        self, request: pb.CreateUseCaseTokenRequest, context: Context
    ) -> pb.CreateUseCaseTokenResponse:
        spec = TokenSpec(
            program_id=request.program_id,
            name=request.name,
            symbol=request.symbol,
            uri=request.uri,
            unit=request.unit,
            decimals=request.decimals,
            redemption_value=request.redemption_value_base_units,
            interest_rate_bps=request.interest_rate_bps,
        )
        token, signatures = await self.tokens.create(caller(), spec)
        return pb.CreateUseCaseTokenResponse(token=token_message(token), signatures=signatures)

    async def GetUseCaseToken(self, request: pb.GetUseCaseTokenRequest, context: Context) -> pb.GetUseCaseTokenResponse:
        return pb.GetUseCaseTokenResponse(token=token_message(await self.tokens.get(request.mint)))

    async def ListUseCaseTokens(
        self, request: pb.ListUseCaseTokensRequest, context: Context
    ) -> pb.ListUseCaseTokensResponse:
        tokens = await self.tokens.list(request.utility_id, request.program_id)
        return pb.ListUseCaseTokensResponse(tokens=[token_message(t) for t in tokens])

    async def FundReserve(self, request: pb.FundReserveRequest, context: Context) -> pb.FundReserveResponse:
        signature, view = await self.tokens.fund(caller(), request.mint, request.amount_base_units)
        return pb.FundReserveResponse(signature=signature, reserve=reserve_message(view))

    async def FundTestWallet(self, request: pb.FundTestWalletRequest, context: Context) -> pb.FundTestWalletResponse:
        signature, balance = await self.tokens.fund_test_wallet(request.wallet, request.amount_base_units)
        return pb.FundTestWalletResponse(signature=signature, balance_base_units=balance)

    async def GetReserve(self, request: pb.GetReserveRequest, context: Context) -> pb.GetReserveResponse:
        return pb.GetReserveResponse(reserve=reserve_message(await self.tokens.reserve(request.mint)))

    async def PrepareRedemption(
        self, request: pb.PrepareRedemptionRequest, context: Context
    ) -> pb.PrepareRedemptionResponse:
        prepared = await self.redemptions.prepare(
            Viewer.of(caller()),
            request.mint,
            request.holder,
            request.amount_base_units,
            request.pay_bill if request.HasField("pay_bill") else None,
        )
        return pb.PrepareRedemptionResponse(
            redemption_id=prepared.redemption_id,
            transaction=prepared.transaction,
            payout_base_units=prepared.payout,
            last_valid_block_height=prepared.last_valid_block_height,
        )

    async def SubmitRedemption(
        self, request: pb.SubmitRedemptionRequest, context: Context
    ) -> pb.SubmitRedemptionResponse:
        redemption = await self.redemptions.submit(Viewer.of(caller()), request.redemption_id, request.transaction)
        return pb.SubmitRedemptionResponse(redemption=redemption_message(redemption))

    async def GetRedemption(self, request: pb.GetRedemptionRequest, context: Context) -> pb.GetRedemptionResponse:
        return pb.GetRedemptionResponse(
            redemption=redemption_message(await self.redemptions.get(Viewer.of(caller()), request.redemption_id))
        )

    # -- oracles --------------------------------------------------------------

    async def PublishTariff(self, request: pb.PublishTariffRequest, context: Context) -> pb.PublishTariffResponse:
        version = await self.s.oracles.publish_tariff(
            caller(), request.code, request.time_zone, request.effective_from, request.periods
        )
        return pb.PublishTariffResponse(tariff=_tariff(version))

    async def GetTariff(self, request: pb.GetTariffRequest, context: Context) -> pb.GetTariffResponse:
        return pb.GetTariffResponse(versions=[_tariff(v) for v in await self.s.oracles.tariff(request.tariff_id)])

    async def RegisterPriceFeed(
        self, request: pb.RegisterPriceFeedRequest, context: Context
    ) -> pb.RegisterPriceFeedResponse:
        feed = await self.s.oracles.register_feed(caller(), request.code, request.oracle_key, request.max_age_seconds)
        return pb.RegisterPriceFeedResponse(feed=feed.message())

    async def PublishPriceFeed(
        self, request: pb.PublishPriceFeedRequest, context: Context
    ) -> pb.PublishPriceFeedResponse:
        feed, accepted = await self.s.oracles.publish_points(request.feed_id, request.points, request.signature)
        return pb.PublishPriceFeedResponse(feed=feed.message(), accepted=accepted)

    # -- programs -------------------------------------------------------------

    async def ConfigureProgramSettlement(
        self, request: pb.ConfigureProgramSettlementRequest, context: Context
    ) -> pb.ConfigureProgramSettlementResponse:
        config = await self.s.programs.configure(caller(), request)
        return pb.ConfigureProgramSettlementResponse(settlement=await self._program(config))

    async def GetProgramSettlement(
        self, request: pb.GetProgramSettlementRequest, context: Context
    ) -> pb.GetProgramSettlementResponse:
        viewer = Viewer.of(caller())
        config = await self.s.programs.visible(viewer, request.program_id)
        return pb.GetProgramSettlementResponse(settlement=await self._program(config, viewer))

    async def _program(self, config: ProgramConfig, viewer: Viewer | None = None) -> pb.ProgramSettlement:
        pending, paid = await self.s.ledger.program_totals(config.program_id, viewer or Viewer(True))
        return pb.ProgramSettlement(
            program_id=config.program_id,
            kind=pb.CreditKind.ValueType(config.kind),
            mint=config.mint,
            tariff_id=config.tariff_id,
            price_feed_id=config.price_feed_id,
            split=[pb.SplitShare(party=pb.Party.ValueType(s.party), wallet=s.wallet, bps=s.bps) for s in config.split],
            version=config.version,
            hold_reason=config.hold_reason,
            pending_base_units=pending,
            paid_base_units=paid,
            dr_includes_exports=config.dr_includes_exports,
        )

    async def CreateDrEvent(self, request: pb.CreateDrEventRequest, context: Context) -> pb.CreateDrEventResponse:
        if not request.HasField("start") or not request.HasField("end"):
            raise errors.InvalidArgument.field("start" if not request.HasField("start") else "end", "is required")
        event = await self.s.dr.create(
            caller(), request.program_id, request.start.seconds, request.end.seconds, request.incentive_micro_per_kwh
        )
        return pb.CreateDrEventResponse(event=dr.event_message(event, []))

    async def GetDrEvent(self, request: pb.GetDrEventRequest, context: Context) -> pb.GetDrEventResponse:
        event, results = await self.s.dr.get(Viewer.of(caller()), request.event_id)
        return pb.GetDrEventResponse(
            event=dr.event_message(event, results), devices=[dr.result_message(r) for r in results]
        )

    # -- ledger and payouts -----------------------------------------------------

    async def Settle(self, request: pb.SettleRequest, context: Context) -> pb.SettleResponse:
        result = await self.s.pipeline.settle_now(caller(), request.program_ids)
        settled = [_settlement(result.settlement)] if result.settlement else []
        return pb.SettleResponse(settlements=settled, credits_posted=result.credits_posted)

    async def GetSettlement(self, request: pb.GetSettlementRequest, context: Context) -> pb.GetSettlementResponse:
        return pb.GetSettlementResponse(
            settlement=_settlement(await self.s.payouts.get(Viewer.of(caller()), request.settlement_id))
        )

    async def GetBalance(self, request: pb.GetBalanceRequest, context: Context) -> pb.GetBalanceResponse:
        balances = await self.s.ledger.balances(Viewer.of(caller()), request.wallet)
        return pb.GetBalanceResponse(
            wallet=request.wallet,
            balances=[
                pb.TokenBalance(
                    mint=b.mint,
                    credited_base_units=b.credited,
                    pending_base_units=b.pending,
                    paid_base_units=b.paid,
                    redeemed_base_units=b.redeemed,
                    on_chain_base_units=b.on_chain,
                )
                for b in balances
            ],
        )

    async def ListPayouts(self, request: pb.ListPayoutsRequest, context: Context) -> pb.ListPayoutsResponse:
        rows, token = await self.s.payouts.list(
            Viewer.of(caller()),
            request.wallet,
            request.mint,
            request.settlement_id,
            request.page_size,
            request.page_token,
        )
        return pb.ListPayoutsResponse(payouts=[payer.payout_message(r) for r in rows], next_page_token=token)

    async def CheckLedger(self, request: pb.CheckLedgerRequest, context: Context) -> pb.CheckLedgerResponse:
        return check_message(await self.s.ledger.check(Viewer.of(caller())))

    async def GetStatement(self, request: pb.GetStatementRequest, context: Context) -> pb.GetStatementResponse:
        return await self.s.statements.get(
            caller(),
            request.wallet,
            request.mint,
            to_micros(getattr(request, "from")) if request.HasField("from") else None,
            to_micros(request.to) if request.HasField("to") else None,
        )

    async def StreamSettlements(
        self, request: pb.StreamSettlementsRequest, context: Context
    ) -> AsyncIterator[pb.StreamSettlementsResponse]:
        identity = caller()
        viewer = None if identity.role is Role.OPERATOR else identity.namespace
        async for page, head in self.s.event_log.follow(
            viewer, request.after_cursor, until_caught_up=request.until_caught_up
        ):
            yield pb.StreamSettlementsResponse(events=page, head=head)


def _tariff(version: TariffVersion) -> pb.Tariff:
    message = version.message()
    message.published_at.CopyFrom(from_micros(version.published_at_us))
    return message


def _settlement(view: payer.SettlementView) -> pb.Settlement:
    return pb.Settlement(
        settlement_id=view.settlement_id,
        state=pb.SettlementState.ValueType(view.state.value),
        transactions=view.transactions,
        payouts=view.payouts,
        credits=view.credits,
        amount_base_units=view.amount,
        signatures=view.signatures,
        created_at=from_micros(view.created_at_us),
        digest=view.digest,
        completed_at=from_micros(view.completed_at_us) if view.completed_at_us else None,
    )


def check_message(check: journal.LedgerCheck) -> pb.CheckLedgerResponse:
    return pb.CheckLedgerResponse(
        ok=check.ok,
        entries=check.entries,
        unbalanced_entries=check.unbalanced,
        problems=check.problems,
        tokens=[
            pb.TokenCheck(
                mint=t.mint,
                credited_base_units=t.credited,
                paid_base_units=t.paid,
                pending_base_units=t.pending,
                redeemed_base_units=t.redeemed,
                redemptions=t.redemptions,
                supply_base_units=t.supply,
                holders=t.holders,
                holder_mismatches=t.mismatches[:100],
                ok=t.ok,
                in_flight_base_units=t.in_flight,
                problems=t.problems,
            )
            for t in check.tokens
        ],
        chain_slot_from=check.chain_slot_from,
        chain_slot=check.chain_slot,
        billing=[
            pb.BillingCheck(
                program_id=b.program_id,
                billed_base_units=b.billed,
                collected_base_units=b.collected,
                receivable_base_units=b.receivable,
                bills=b.bills,
                payments=b.payments,
                ok=b.ok,
                problems=b.problems[:100],
            )
            for b in check.billing
        ],
    )
