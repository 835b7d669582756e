"""Server-level chain behaviour: registry anchoring, restarts that lose
nothing, and the Token-2022 extension allow-list."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.system_program import CreateAccountParams, create_account
from sqlalchemy import select

from openvpp import errors
from openvpp.chain import spl
from openvpp.chain.embedded import LAMPORTS_PER_SOL, EmbeddedChain
from openvpp.config import Settings
from openvpp.integration import ca
from openvpp.registry.verify import verify_anchored
from openvpp.server import app as server_app
from openvpp.server.compose import Runtime
from openvpp.settlement.services import SettlementServices
from openvpp.store import schema
from openvpp.v1 import (
    registry_pb2,
    registry_pb2_grpc,
    routing_pb2,
    routing_pb2_grpc,
    settlement_pb2_grpc,
)
from openvpp.v1 import settlement_pb2 as pb
from tests import factories
from tests.integration.chain_world import migrated
from tests.integration.mtls import Fabric
from tests.rpc import expect_error


def _settlement(app: server_app.App) -> SettlementServices:
    assert app.settlement is not None
    return app.settlement


def _runtime(app: server_app.App) -> Runtime:
    assert app.runtime is not None
    return app.runtime


async def test_the_registry_root_is_anchored_on_chain_and_proofs_verify_against_it(app: server_app.App) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        stub = registry_pb2_grpc.RegistryServiceStub(channel)
        first = Keypair()
        await stub.RegisterDevice(registry_pb2.RegisterDeviceRequest(signed_record=factories.signed(first, "inv-1")))
        ask = registry_pb2.GetInclusionProofRequest(der_id=str(first.pubkey()), anchored=True)
        await expect_error(stub.GetInclusionProof(ask), grpc.StatusCode.FAILED_PRECONDITION, "NOT_YET_ANCHORED")
        anchored = (await stub.AnchorRegistry(registry_pb2.AnchorRegistryRequest())).anchor
        assert anchored.tree_size == 1
        assert anchored.memo == f"openvpp/registry-root/v1 1 {anchored.root_hash.hex()}"
        again = (await stub.AnchorRegistry(registry_pb2.AnchorRegistryRequest())).anchor
        assert again.signature == anchored.signature, "an unchanged log is not anchored twice"
        proof = await stub.GetInclusionProof(ask)
        authority = _settlement(app).keyring.settlement_authority.pubkey()
        checked = await verify_anchored(proof, _settlement(app).chain, authority)
        assert checked.ok, checked.checks
        forged = await verify_anchored(proof, _settlement(app).chain, Keypair().pubkey())
        assert not forged.ok
        await expect_error(
            stub.GetInclusionProof(
                registry_pb2.GetInclusionProofRequest(der_id=str(first.pubkey()), anchored=True, tree_size=1)
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            field="tree_size",
        )
        # A later record is unanchored until the periodic anchorer runs.
        second = Keypair()
        await stub.RegisterDevice(registry_pb2.RegisterDeviceRequest(signed_record=factories.signed(second, "inv-2")))
        later = registry_pb2.GetInclusionProofRequest(der_id=str(second.pubkey()), anchored=True)
        await expect_error(stub.GetInclusionProof(later), grpc.StatusCode.FAILED_PRECONDITION, "NOT_YET_ANCHORED")
        stop = asyncio.Event()
        runner = asyncio.create_task(_runtime(app).anchorer.run(0.05, stop))
        for _ in range(100):
            latest = await _runtime(app).anchorer.latest()
            if latest is not None and latest.tree_size == 2:
                break
            await asyncio.sleep(0.05)
        stop.set()
        await runner
        proof = await stub.GetInclusionProof(later)
        assert proof.anchor.tree_size == 2
        assert (await verify_anchored(proof, _settlement(app).chain, authority)).ok
        # The first record also proves against the newer root.
        assert (await stub.GetInclusionProof(ask)).anchor.tree_size == 2


async def _pge_token(fabric: Fabric) -> tuple[pb.UseCaseToken, Path]:
    utility = await fabric.onboard(ca.Role.UTILITY, "pge")
    async with fabric.channel(utility) as channel:
        await routing_pb2_grpc.RoutingServiceStub(channel).CreateProgram(
            routing_pb2.CreateProgramRequest(
                code="dr", name="Demand response", kind=routing_pb2.PROGRAM_KIND_DEMAND_RESPONSE
            )
        )
        created = await settlement_pb2_grpc.SettlementServiceStub(channel).CreateUseCaseToken(
            pb.CreateUseCaseTokenRequest(
                program_id="pge/dr",
                name="PG&E DR",
                symbol="DR",
                unit=pb.TOKEN_UNIT_USD,
                decimals=6,
                redemption_value_base_units=1_000_000,
            )
        )
    return created.token, utility


async def test_a_restart_restores_the_chain_and_balances_match_the_records(fabric: Fabric) -> None:
    holders = [Keypair().pubkey() for _ in range(3)]
    token, utility = await _pge_token(fabric)
    async with fabric.channel(utility) as channel:
        stub = settlement_pb2_grpc.SettlementServiceStub(channel)
        for amount in (2_000_000, 3_000_000):
            await stub.FundReserve(pb.FundReserveRequest(mint=token.mint, amount_base_units=amount))
        for i, holder in enumerate(holders):
            await _settlement(fabric.app).tokens.issue(token.mint, str(holder), (i + 1) * 100_000)
        before = (await stub.GetReserve(pb.GetReserveRequest(mint=token.mint))).reserve
    settings = fabric.app.settings
    await fabric.app.stop(grace=0)
    fabric.app = await server_app.start(settings)
    try:
        async with fabric.channel(utility) as channel:
            stub = settlement_pb2_grpc.SettlementServiceStub(channel)
            after = (await stub.GetReserve(pb.GetReserveRequest(mint=token.mint))).reserve
            state = (await stub.GetUseCaseToken(pb.GetUseCaseTokenRequest(mint=token.mint))).token.state
        assert state == pb.USE_CASE_TOKEN_STATE_ACTIVE
        assert (after.reserve_balance_base_units, after.supply_base_units) == (5_000_000, 600_000)
        assert after.reserve_balance_base_units == before.reserve_balance_base_units
        mint = Pubkey.from_string(token.mint)
        chain = _settlement(fabric.app).chain
        for i, holder in enumerate(holders):
            (account,) = await chain.accounts([spl.ata(holder, mint, spl.TOKEN_2022_PROGRAM_ID)])
            assert account is not None
            assert spl.token_amount(bytes(account.data)) == (i + 1) * 100_000
        # What the records say was sent equals what the chain holds.
        async with fabric.app.db.read() as conn:
            outbox = schema.chain_outbox.c
            rows = (await conn.execute(select(outbox.kind, outbox.ref, outbox.state))).all()
        funded = sum(int(r.ref.split(":")[1]) for r in rows if r.kind == "reserve_fund" and r.state == 2)
        issued = sum(int(r.ref.split(":")[2]) for r in rows if r.kind == "token_issue" and r.state == 2)
        assert (funded, issued) == (after.reserve_balance_base_units, after.supply_base_units)
    finally:
        await fabric.app.stop(grace=0)


async def _delegated_mint(settings: Settings) -> Pubkey:
    """A Token-2022 mint whose permanent delegate could move anyone's tokens."""
    db = await migrated(settings.resolved_database_url())
    try:
        chain = await EmbeddedChain.open(db, slot_seconds=None)
        payer, mint, authority = Keypair(), Keypair(), Keypair()
        await chain.airdrop(payer.pubkey(), LAMPORTS_PER_SOL)
        space = 202  # base mint, padding, account type and one 32-byte extension
        create = create_account(
            CreateAccountParams(
                from_pubkey=payer.pubkey(),
                to_pubkey=mint.pubkey(),
                lamports=await chain.minimum_balance(space),
                space=space,
                owner=spl.TOKEN_2022_PROGRAM_ID,
            )
        )
        delegate = Instruction(
            spl.TOKEN_2022_PROGRAM_ID,
            bytes([35]) + bytes(Keypair().pubkey()),
            [AccountMeta(mint.pubkey(), False, True)],
        )
        init = spl.initialize_mint(spl.TOKEN_2022_PROGRAM_ID, mint.pubkey(), authority.pubkey(), 6)
        recent = await chain.latest_blockhash()
        (sent,) = await chain.send([spl.signed([create, delegate, init], payer, [mint], recent.blockhash)])
        (status,) = await chain.signature_statuses([sent.signature])
        assert status is not None
        assert status.error is None, status
        return mint.pubkey()
    finally:
        await db.close()


async def test_a_stablecoin_with_a_permanent_delegate_is_refused_unless_allowed(server_settings: Settings) -> None:
    mint = await _delegated_mint(server_settings)
    refusing = server_settings.model_copy(update={"stablecoin_mint": str(mint)})
    with pytest.raises(errors.FailedPrecondition) as refused:
        await server_app.start(refusing)
    assert refused.value.reason == "TOKEN_EXTENSION_NOT_ALLOWED"
    assert "PermanentDelegate" in refused.value.message
    allowing = refusing.model_copy(update={"allowed_token_extensions": ["PermanentDelegate"]})
    running = await server_app.start(allowing)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            info = await settlement_pb2_grpc.SettlementServiceStub(channel).GetChainInfo(pb.GetChainInfoRequest())
        assert info.stablecoin_mint == str(mint)
        assert info.stablecoin_token_program == str(spl.TOKEN_2022_PROGRAM_ID)
    finally:
        await running.stop(grace=0)
