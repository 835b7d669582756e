"""gRPC front of settlement's on-chain part: proto in, domain call, proto out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
from google.protobuf import timestamp_pb2

from openvpp import errors
from openvpp.chain.base import Chain
from openvpp.chain.keyring import Keyring
from openvpp.server.auth import caller
from openvpp.server.errors import to_rpc_status
from openvpp.settlement.ingest import Ingestor
from openvpp.settlement.redemption import Redemption, Redemptions
from openvpp.settlement.tokens import ReserveView, TokenSpec, UseCaseToken, UseCaseTokens
from openvpp.v1 import settlement_pb2 as pb
from openvpp.v1 import settlement_pb2_grpc

Context = grpc.aio.ServicerContext[Any, Any]


def _timestamp(micros: int) -> timestamp_pb2.Timestamp:
    seconds, rest = divmod(micros, 1_000_000)
    return timestamp_pb2.Timestamp(seconds=seconds, nanos=rest * 1000)


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
        created_at=_timestamp(token.created_at_us),
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
    return pb.Redemption(
        redemption_id=r.redemption_id,
        mint=r.mint,
        holder=r.holder,
        amount_base_units=r.amount,
        payout_base_units=r.payout,
        state=r.state.value,  # type: ignore[arg-type]
        signature=r.signature,
        error=r.error,
    )


# Rust verdict codes start at 0 (accepted); the proto enum keeps 0 for UNSPECIFIED.
_TO_PROTO_VERDICT = bytes((code + 1) % 256 for code in range(256))


class SettlementServicer(settlement_pb2_grpc.SettlementServiceServicer):
    def __init__(
        self, chain: Chain, keyring: Keyring, tokens: UseCaseTokens, redemptions: Redemptions, ingestor: Ingestor
    ) -> None:
        self.chain = chain
        self.keyring = keyring
        self.tokens = tokens
        self.redemptions = redemptions
        self.ingestor = ingestor

    async def SubmitReadings(
        self, request_iterator: AsyncIterator[pb.SubmitReadingsRequest], context: Context
    ) -> AsyncIterator[pb.SubmitReadingsResponse]:
        identity = caller()
        async for request in request_iterator:
            try:
                outcome = await self.ingestor.submit(identity, request.payloads, request.signatures)
            except errors.OpenVPPError as error:
                yield pb.SubmitReadingsResponse(batch_id=request.batch_id, error=to_rpc_status(error))
                continue
            yield pb.SubmitReadingsResponse(
                batch_id=request.batch_id,
                verdicts=outcome.verdicts.translate(_TO_PROTO_VERDICT),
                flags=outcome.flags,
                accepted=outcome.accepted,
                rejected=outcome.rejected,
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

    async def GetReserve(self, request: pb.GetReserveRequest, context: Context) -> pb.GetReserveResponse:
        return pb.GetReserveResponse(reserve=reserve_message(await self.tokens.reserve(request.mint)))

    async def PrepareRedemption(
        self, request: pb.PrepareRedemptionRequest, context: Context
    ) -> pb.PrepareRedemptionResponse:
        prepared = await self.redemptions.prepare(request.mint, request.holder, request.amount_base_units)
        return pb.PrepareRedemptionResponse(
            redemption_id=prepared.redemption_id,
            transaction=prepared.transaction,
            payout_base_units=prepared.payout,
            last_valid_block_height=prepared.last_valid_block_height,
        )

    async def SubmitRedemption(
        self, request: pb.SubmitRedemptionRequest, context: Context
    ) -> pb.SubmitRedemptionResponse:
        redemption = await self.redemptions.submit(request.redemption_id, request.transaction)
        return pb.SubmitRedemptionResponse(redemption=redemption_message(redemption))

    async def GetRedemption(self, request: pb.GetRedemptionRequest, context: Context) -> pb.GetRedemptionResponse:
        return pb.GetRedemptionResponse(
            redemption=redemption_message(await self.redemptions.get(request.redemption_id))
        )
