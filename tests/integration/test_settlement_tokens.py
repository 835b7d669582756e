"""Use-case tokens, reserves and redemption over mTLS, on the embedded chain
running the real Token-2022, SPL Token and ATA programs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import Transaction

from openvpp import errors, native
from openvpp.chain import spl
from openvpp.chain.base import MAX_BLOCKHASH_AGE, SignatureStatus
from openvpp.chain.embedded import EmbeddedChain
from openvpp.integration import ca
from openvpp.v1 import settlement_pb2 as pb
from openvpp.v1 import settlement_pb2_grpc
from tests.integration.mtls import Fabric
from tests.integration.routing_world import PROGRAM, World, world
from tests.rpc import expect_error

VALUE = 150_000  # 0.15 stablecoin per whole SOLAR (3 decimals: per kWh)
DECIMALS = 3


def settlement(channel: grpc.aio.Channel) -> settlement_pb2_grpc.SettlementServiceAsyncStub:
    return settlement_pb2_grpc.SettlementServiceStub(channel)


def solar(**overrides: object) -> pb.CreateUseCaseTokenRequest:
    fields: dict[str, object] = {
        "program_id": PROGRAM,
        "name": "PG&E Solar Export",
        "symbol": "SOLAR",
        "uri": "https://pge.example/tokens/solar.json",
        "unit": pb.TOKEN_UNIT_KWH,
        "decimals": DECIMALS,
        "redemption_value_base_units": VALUE,
        "interest_rate_bps": 300,
    }
    fields.update(overrides)
    return pb.CreateUseCaseTokenRequest(**fields)  # type: ignore[arg-type]


@dataclass
class Tokens:
    world: World
    token: pb.UseCaseToken

    @property
    def fabric(self) -> Fabric:
        return self.world.fabric

    @property
    def chain(self) -> EmbeddedChain:
        settlement_state = self.fabric.app.settlement
        assert settlement_state is not None
        assert isinstance(settlement_state.chain, EmbeddedChain)
        return settlement_state.chain

    async def reserve(self) -> pb.Reserve:
        async with self.fabric.channel(self.world.utility) as channel:
            return (await settlement(channel).GetReserve(pb.GetReserveRequest(mint=self.token.mint))).reserve

    async def issue(self, holder: Pubkey, amount: int) -> None:
        settlement_state = self.fabric.app.settlement
        assert settlement_state is not None
        await settlement_state.tokens.issue(self.token.mint, str(holder), amount)

    async def balance(self, owner: Pubkey, mint: str, program: Pubkey) -> int:
        (account,) = await self.chain.accounts([spl.ata(owner, Pubkey.from_string(mint), program)])
        return 0 if account is None else spl.token_amount(bytes(account.data))


@pytest.fixture
async def tokens(fabric: Fabric, tmp_path: Path) -> AsyncIterator[Tokens]:
    async with world(fabric, tmp_path) as w, fabric.channel(w.utility) as channel:
        created = await settlement(channel).CreateUseCaseToken(solar())
        yield Tokens(w, created.token)


async def test_a_utility_creates_a_token_2022_mint_with_metadata_interest_and_a_reserve(tokens: Tokens) -> None:
    token = tokens.token
    assert token.state == pb.USE_CASE_TOKEN_STATE_ACTIVE
    assert (token.symbol, token.utility_id, token.decimals, token.interest_rate_bps) == ("SOLAR", "pge", 3, 300)
    assert {"MetadataPointer", "TokenMetadata", "InterestBearingConfig"} <= set(token.extensions)
    (mint_account,) = await tokens.chain.accounts([Pubkey.from_string(token.mint)])
    assert mint_account is not None
    assert mint_account.owner == spl.TOKEN_2022_PROGRAM_ID
    metadata = native.inspect_mint(bytes(mint_account.data)).metadata
    assert metadata is not None
    assert dict(metadata.fields) == {
        "unit": "kWh",
        "redemption_value": str(VALUE),
        "program": PROGRAM,
        "utility": "pge",
        "reserve": token.reserve_account,
        "stablecoin": token.stablecoin_mint,
    }
    reserve = await tokens.reserve()
    assert (reserve.reserve_balance_base_units, reserve.supply_base_units, reserve.covered) == (0, 0, True)
    async with tokens.fabric.channel(tokens.world.solarco) as channel:
        listed = await settlement(channel).ListUseCaseTokens(pb.ListUseCaseTokensRequest(utility_id="pge"))
        assert [t.mint for t in listed.tokens] == [token.mint]
        info = await settlement(channel).GetChainInfo(pb.GetChainInfoRequest())
        assert info.backend == "embedded"
        assert info.stablecoin_mint == token.stablecoin_mint


async def test_token_creation_refuses_bad_input_and_other_tenants(tokens: Tokens) -> None:
    fabric = tokens.fabric
    async with fabric.channel(tokens.world.utility) as channel:
        stub = settlement(channel)
        await expect_error(
            stub.CreateUseCaseToken(solar(symbol="so lar")), grpc.StatusCode.INVALID_ARGUMENT, field="symbol"
        )
        await expect_error(
            stub.CreateUseCaseToken(solar(uri="http://x")), grpc.StatusCode.INVALID_ARGUMENT, field="uri"
        )
        await expect_error(
            stub.CreateUseCaseToken(solar(decimals=12)), grpc.StatusCode.INVALID_ARGUMENT, field="decimals"
        )
        await expect_error(
            stub.CreateUseCaseToken(solar(redemption_value_base_units=0)), grpc.StatusCode.INVALID_ARGUMENT
        )
        await expect_error(stub.CreateUseCaseToken(solar(unit=0)), grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ENUM")
        await expect_error(stub.CreateUseCaseToken(solar(program_id="pge/none")), grpc.StatusCode.NOT_FOUND)
        await expect_error(stub.CreateUseCaseToken(solar()), grpc.StatusCode.ALREADY_EXISTS, "TOKEN_EXISTS")
    other = await fabric.onboard(ca.Role.UTILITY, "sce")
    async with fabric.channel(other) as channel:
        await expect_error(
            settlement(channel).CreateUseCaseToken(solar(symbol="NEM")),
            grpc.StatusCode.PERMISSION_DENIED,
            "CROSS_TENANT",
        )
        await expect_error(
            settlement(channel).FundReserve(pb.FundReserveRequest(mint=tokens.token.mint, amount_base_units=1)),
            grpc.StatusCode.PERMISSION_DENIED,
            "CROSS_TENANT",
        )
    async with fabric.channel(tokens.world.solarco) as channel:
        await expect_error(
            settlement(channel).CreateUseCaseToken(solar(symbol="DR")),
            grpc.StatusCode.PERMISSION_DENIED,
            "ROLE_NOT_ALLOWED",
        )
    async with fabric.channel(tokens.world.utility) as channel:
        listed = await settlement(channel).ListUseCaseTokens(pb.ListUseCaseTokensRequest())
    assert [t.symbol for t in listed.tokens] == ["SOLAR"]


async def test_a_token_is_created_when_the_chain_moves_to_a_new_block_as_its_mint_confirms(
    tokens: Tokens, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Recording the mint enqueues the reserve, signed against a blockhash the
    embedded chain must first record. With a fresh block at that moment, that
    used to wait for the write lock the recording transaction held: the call
    never returned."""
    chain = tokens.chain
    answer = chain.signature_statuses

    async def then_a_new_block(signatures: list[Signature]) -> list[SignatureStatus | None]:
        statuses = await answer(signatures)
        chain.produce_blocks(1)
        return statuses

    monkeypatch.setattr(chain, "signature_statuses", then_a_new_block)
    async with tokens.fabric.channel(tokens.world.utility) as channel:
        created = await settlement(channel).CreateUseCaseToken(solar(symbol="NEM"), timeout=30)
    assert created.token.state == pb.USE_CASE_TOKEN_STATE_ACTIVE
    (reserve,) = await chain.accounts([Pubkey.from_string(created.token.reserve_account)])
    assert reserve is not None


async def test_funding_the_reserve_moves_treasury_stablecoin_and_coverage_is_read_from_chain(tokens: Tokens) -> None:
    async with tokens.fabric.channel(tokens.world.utility) as channel:
        stub = settlement(channel)
        funded = await stub.FundReserve(pb.FundReserveRequest(mint=tokens.token.mint, amount_base_units=30_000_000))
        assert funded.signature
        assert funded.reserve.reserve_balance_base_units == 30_000_000
        await expect_error(
            stub.FundReserve(pb.FundReserveRequest(mint=tokens.token.mint, amount_base_units=0)),
            grpc.StatusCode.INVALID_ARGUMENT,
            field="amount_base_units",
        )
        await expect_error(
            stub.FundReserve(pb.FundReserveRequest(mint=tokens.token.mint, amount_base_units=10**15)),
            grpc.StatusCode.FAILED_PRECONDITION,
            "INSUFFICIENT_FUNDS",
        )
        await expect_error(stub.GetReserve(pb.GetReserveRequest(mint="nope")), grpc.StatusCode.INVALID_ARGUMENT)
        await expect_error(
            stub.GetReserve(pb.GetReserveRequest(mint=str(Keypair().pubkey()))), grpc.StatusCode.NOT_FOUND
        )
    # 30 stablecoin at 0.15 per token: exactly 200 tokens (200,000 base units) may exist.
    reserve = await tokens.reserve()
    assert reserve.mintable_base_units == 200_000
    holder = Keypair().pubkey()
    await tokens.issue(holder, 150_000)
    with pytest.raises(errors.FailedPrecondition) as short:
        await tokens.issue(holder, 50_001)
    assert short.value.reason == "RESERVE_SHORT"
    await tokens.issue(holder, 50_000)
    reserve = await tokens.reserve()
    assert (reserve.supply_base_units, reserve.liability_base_units, reserve.covered) == (200_000, 30_000_000, True)
    assert (reserve.coverage_bps, reserve.mintable_base_units) == (10_000, 0)
    assert await tokens.balance(holder, tokens.token.mint, spl.TOKEN_2022_PROGRAM_ID) == 200_000


async def _fund_and_issue(tokens: Tokens, holder: Pubkey, amount: int) -> None:
    async with tokens.fabric.channel(tokens.world.utility) as channel:
        await settlement(channel).FundReserve(
            pb.FundReserveRequest(mint=tokens.token.mint, amount_base_units=50_000_000)
        )
    await tokens.issue(holder, amount)


async def test_redemption_burns_and_pays_atomically_in_one_transaction(tokens: Tokens) -> None:
    holder = Keypair()
    await _fund_and_issue(tokens, holder.pubkey(), 10_000)
    coin = Pubkey.from_string(tokens.token.stablecoin_mint)
    async with tokens.fabric.channel(tokens.world.utility) as channel:
        stub = settlement(channel)
        prepared = await stub.PrepareRedemption(
            pb.PrepareRedemptionRequest(mint=tokens.token.mint, holder=str(holder.pubkey()), amount_base_units=4_000)
        )
        assert prepared.payout_base_units == 4_000 * VALUE // 10**DECIMALS == 600_000
        tx = Transaction.from_bytes(prepared.transaction)
        # Unsigned by the holder: refused, nothing sent.
        await expect_error(
            stub.SubmitRedemption(
                pb.SubmitRedemptionRequest(redemption_id=prepared.redemption_id, transaction=bytes(tx))
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "BAD_SIGNATURE",
        )
        tx.partial_sign([holder], tx.message.recent_blockhash)
        done = await stub.SubmitRedemption(
            pb.SubmitRedemptionRequest(redemption_id=prepared.redemption_id, transaction=bytes(tx))
        )
        assert done.redemption.state == pb.REDEMPTION_STATE_COMPLETED
        assert done.redemption.signature == str(tx.signatures[0])
        # Submitting again reports the outcome and pays nothing more.
        again = await stub.SubmitRedemption(
            pb.SubmitRedemptionRequest(redemption_id=prepared.redemption_id, transaction=bytes(tx))
        )
        assert again.redemption.state == pb.REDEMPTION_STATE_COMPLETED
    assert await tokens.balance(holder.pubkey(), str(coin), spl.TOKEN_PROGRAM_ID) == 600_000
    assert await tokens.balance(holder.pubkey(), tokens.token.mint, spl.TOKEN_2022_PROGRAM_ID) == 6_000
    reserve = await tokens.reserve()
    assert (reserve.reserve_balance_base_units, reserve.supply_base_units) == (50_000_000 - 600_000, 6_000)
    assert reserve.covered


async def test_a_redemption_whose_burn_fails_pays_nothing(tokens: Tokens) -> None:
    holder = Keypair()
    await _fund_and_issue(tokens, holder.pubkey(), 1_000)
    async with tokens.fabric.channel(tokens.world.utility) as channel:
        stub = settlement(channel)
        prepared = await stub.PrepareRedemption(
            pb.PrepareRedemptionRequest(mint=tokens.token.mint, holder=str(holder.pubkey()), amount_base_units=1_000)
        )
        # Before submitting, the holder burns half of its tokens elsewhere.
        mint = Pubkey.from_string(tokens.token.mint)
        program = spl.TOKEN_2022_PROGRAM_ID
        recent = await tokens.chain.latest_blockhash()
        settlement_state = tokens.fabric.app.settlement
        assert settlement_state is not None
        burn = spl.signed(
            [spl.burn(program, spl.ata(holder.pubkey(), mint, program), mint, holder.pubkey(), 500, DECIMALS)],
            settlement_state.keyring.fee_payer,
            [holder],
            recent.blockhash,
        )
        await tokens.chain.send([burn])
        before = await tokens.reserve()
        tx = Transaction.from_bytes(prepared.transaction)
        tx.partial_sign([holder], tx.message.recent_blockhash)
        done = await stub.SubmitRedemption(
            pb.SubmitRedemptionRequest(redemption_id=prepared.redemption_id, transaction=bytes(tx))
        )
    assert done.redemption.state == pb.REDEMPTION_STATE_FAILED
    after = await tokens.reserve()
    assert after.reserve_balance_base_units == before.reserve_balance_base_units
    assert after.supply_base_units == 500
    assert await tokens.balance(holder.pubkey(), tokens.token.stablecoin_mint, spl.TOKEN_PROGRAM_ID) == 0


async def test_redemption_refusals_and_expiry(tokens: Tokens) -> None:
    holder = Keypair()
    await _fund_and_issue(tokens, holder.pubkey(), 1_000)
    async with tokens.fabric.channel(tokens.world.utility) as channel:
        stub = settlement(channel)

        def ask(**fields: object) -> pb.PrepareRedemptionRequest:
            base: dict[str, object] = {
                "mint": tokens.token.mint,
                "holder": str(holder.pubkey()),
                "amount_base_units": 100,
            }
            base.update(fields)
            return pb.PrepareRedemptionRequest(**base)  # type: ignore[arg-type]

        await expect_error(
            stub.PrepareRedemption(ask(amount_base_units=5_000)),
            grpc.StatusCode.FAILED_PRECONDITION,
            "INSUFFICIENT_FUNDS",
        )
        await expect_error(stub.PrepareRedemption(ask(amount_base_units=0)), grpc.StatusCode.INVALID_ARGUMENT)
        await expect_error(stub.PrepareRedemption(ask(holder="x")), grpc.StatusCode.INVALID_ARGUMENT, field="holder")
        first = await stub.PrepareRedemption(ask())
        second = await stub.PrepareRedemption(ask(amount_base_units=200))
        swapped = Transaction.from_bytes(second.transaction)
        swapped.partial_sign([holder], swapped.message.recent_blockhash)
        await expect_error(
            stub.SubmitRedemption(
                pb.SubmitRedemptionRequest(redemption_id=first.redemption_id, transaction=bytes(swapped))
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "MESSAGE_CHANGED",
        )
        await expect_error(
            stub.SubmitRedemption(pb.SubmitRedemptionRequest(redemption_id="nope", transaction=bytes(swapped))),
            grpc.StatusCode.NOT_FOUND,
        )
        tokens.chain.produce_blocks(MAX_BLOCKHASH_AGE + 1)
        late = Transaction.from_bytes(first.transaction)
        late.partial_sign([holder], late.message.recent_blockhash)
        expired = await stub.SubmitRedemption(
            pb.SubmitRedemptionRequest(redemption_id=first.redemption_id, transaction=bytes(late))
        )
        assert expired.redemption.state == pb.REDEMPTION_STATE_EXPIRED
    assert await tokens.balance(holder.pubkey(), tokens.token.mint, spl.TOKEN_2022_PROGRAM_ID) == 1_000
