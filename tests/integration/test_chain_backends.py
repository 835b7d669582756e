"""One suite, both backends: the embedded chain in process, and the RPC
backend over real HTTP against `openvpp chain serve`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from solana.rpc.async_api import AsyncClient
from solders.keypair import Keypair
from solders.signature import Signature
from solders.system_program import CreateAccountParams, TransferParams, create_account, transfer
from solders.transaction import VersionedTransaction
from sqlalchemy.ext.asyncio import AsyncConnection

from openvpp import native
from openvpp.chain import spl
from openvpp.chain.base import MAX_BLOCKHASH_AGE, Commitment, RecentBlockhash
from openvpp.chain.outbox import Handler, Outbox, OutboxState, Outcome
from openvpp.chain.rpc import RpcChain
from openvpp.settlement.tokens import extensions
from tests.integration.chain_world import Backend, backend


@pytest.fixture(params=["embedded", "rpc"])
async def chain(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    async with backend(request.param, f"sqlite:///{tmp_path / 'chain.db'}") as world:
        yield world


def signature_of(raw: bytes) -> Signature:
    return VersionedTransaction.from_bytes(raw).signatures[0]


async def test_a_transfer_lands_once_and_its_status_and_transaction_are_found(chain: Backend) -> None:
    to = Keypair().pubkey()
    raw = await chain.pay_lamports(to, 5_000_000)
    (sent,) = await chain.chain.send([raw])
    assert sent.error is None
    assert sent.signature == signature_of(raw)
    (status,) = await chain.chain.signature_statuses([sent.signature])
    assert status is not None
    assert status.error is None
    assert status.commitment >= Commitment.CONFIRMED
    record = await chain.chain.transaction(sent.signature)
    assert record is not None
    assert record.raw == raw
    assert record.fee == 5000
    assert record.error is None
    assert await chain.lamports(to) == 5_000_000


async def test_the_same_transaction_twice_is_refused_as_already_processed(chain: Backend) -> None:
    to = Keypair().pubkey()
    raw = await chain.pay_lamports(to, 5_000_000)
    await chain.chain.send([raw])
    (again,) = await chain.chain.send([raw])
    assert again.already_processed
    assert await chain.lamports(to) == 5_000_000


async def test_a_blockhash_is_accepted_for_its_age_then_refused(chain: Backend) -> None:
    recent = await chain.chain.latest_blockhash()
    assert recent.last_valid_block_height == await chain.chain.block_height() + MAX_BLOCKHASH_AGE
    first = await chain.pay_lamports(Keypair().pubkey(), 1_000_000)
    chain.embedded.produce_blocks(MAX_BLOCKHASH_AGE)
    (ok,) = await chain.chain.send([first])
    assert ok.error is None
    chain.embedded.produce_blocks(1)
    assert await chain.chain.block_height() > recent.last_valid_block_height
    late = spl.signed(
        [spl.create_ata(chain.payer.pubkey(), Keypair().pubkey(), Keypair().pubkey(), spl.TOKEN_PROGRAM_ID)],
        chain.payer,
        [],
        recent.blockhash,
    )
    (refused,) = await chain.chain.send([late])
    assert refused.error is not None
    assert "BlockhashNotFound" in refused.error
    assert (await chain.chain.signature_statuses([signature_of(late)]))[0] is None


async def test_a_failing_transfer_lands_failed_in_process_and_is_refused_by_preflight_over_rpc(
    chain: Backend,
) -> None:
    broke = Keypair()
    await chain.chain.send([await chain.pay_lamports(broke.pubkey(), 1_000_000)])
    raw = spl.signed(
        [
            spl.transfer(
                spl.TOKEN_PROGRAM_ID, Keypair().pubkey(), Keypair().pubkey(), Keypair().pubkey(), broke.pubkey(), 1, 6
            )
        ],
        broke,
        [],
        (await chain.chain.latest_blockhash()).blockhash,
    )
    (sent,) = await chain.chain.send([raw])
    unknown = Keypair().sign_message(b"never sent")
    landed, missing = await chain.chain.signature_statuses([signature_of(raw), unknown])
    assert missing is None
    if isinstance(chain.chain, RpcChain):
        # The node simulated it first: refused, never landed, no fee charged.
        assert sent.error is not None
        assert "simulation failed" in sent.error
        assert landed is None
        assert await chain.lamports(broke.pubkey()) == 1_000_000
    else:
        assert sent.error is None
        assert landed is not None
        assert landed.error is not None


async def test_a_forged_signature_is_refused_before_execution_and_nothing_lands(chain: Backend) -> None:
    to = Keypair().pubkey()
    raw = await chain.pay_lamports(to, 5_000_000)
    # The last byte is the transfer's amount: the payer's signature no longer covers the message.
    altered = raw[:-1] + bytes([raw[-1] ^ 1])
    payer, second = Keypair(), Keypair()
    await chain.chain.send([await chain.pay_lamports(payer.pubkey(), 1_000_000_000)])
    two_signers = spl.signed(
        [
            create_account(
                CreateAccountParams(
                    from_pubkey=payer.pubkey(),
                    to_pubkey=second.pubkey(),
                    lamports=1_000_000,
                    space=0,
                    owner=spl.TOKEN_PROGRAM_ID,
                )
            )
        ],
        payer,
        [second],
        (await chain.chain.latest_blockhash()).blockhash,
    )
    # The second signer's signature: bytes 65..129, after the count and the payer's.
    forged_second = two_signers[:70] + bytes([two_signers[70] ^ 0x40]) + two_signers[71:]
    refused = await chain.chain.send([altered, forged_second])
    for sent in refused:
        assert sent.error is not None
        # The embedded chain's verdict, or a node's preflight check of it.
        assert "SignatureFailure" in sent.error or "SignatureVerificationFailure" in sent.error
        assert not sent.already_processed
    assert await chain.chain.signature_statuses([signature_of(altered), signature_of(forged_second)]) == [None, None]
    assert await chain.lamports(to) == 0
    assert await chain.lamports(second.pubkey()) == 0
    # Refusing them recorded nothing: the genuine transactions still land.
    assert [s.error for s in await chain.chain.send([raw, two_signers])] == [None, None]
    assert await chain.lamports(to) == 5_000_000
    assert await chain.lamports(second.pubkey()) == 1_000_000


async def test_spl_token_mint_and_transfer_run_in_the_real_program(chain: Backend) -> None:
    authority, alice, bob = Keypair(), Keypair().pubkey(), Keypair().pubkey()
    mint = await chain.create_mint(authority.pubkey())
    program = spl.TOKEN_PROGRAM_ID
    raw = await chain.signed(
        [
            spl.create_ata(chain.payer.pubkey(), alice, mint, program),
            spl.create_ata(chain.payer.pubkey(), bob, mint, program),
            spl.mint_to(program, mint, spl.ata(alice, mint, program), authority.pubkey(), 1_000, 6),
        ],
        (authority,),
    )
    assert (await chain.chain.send([raw]))[0].error is None
    assert (await chain.token_balance(alice, mint), await chain.token_balance(bob, mint)) == (1_000, 0)
    (mint_account,) = await chain.chain.accounts([mint])
    assert mint_account is not None
    assert native.inspect_mint(bytes(mint_account.data)).supply == 1_000


async def test_a_use_case_mint_carries_metadata_and_interest_on_token_2022(chain: Backend) -> None:
    mint, authority = Keypair(), Keypair()
    fields = [("unit", "kWh"), ("redemption_value", "150000")]
    plan = native.use_case_mint(
        mint=bytes(mint.pubkey()),
        mint_authority=bytes(authority.pubkey()),
        metadata_authority=bytes(authority.pubkey()),
        decimals=3,
        name="Solar export",
        symbol="SOLAR",
        uri="https://pge.example/solar.json",
        fields=fields,
        interest_rate_bps=250,
    )
    create = create_account(
        CreateAccountParams(
            from_pubkey=chain.payer.pubkey(),
            to_pubkey=mint.pubkey(),
            lamports=await chain.chain.minimum_balance(plan.total_len),
            space=plan.space,
            owner=spl.TOKEN_2022_PROGRAM_ID,
        )
    )
    raw = await chain.signed([create, *(spl.from_raw(ix) for ix in plan.instructions)], (mint, authority))
    (sent,) = await chain.chain.send([raw])
    assert sent.error is None
    (status,) = await chain.chain.signature_statuses([sent.signature])
    assert status is not None
    assert status.error is None, status
    (account,) = await chain.chain.accounts([mint.pubkey()])
    assert account is not None
    assert account.owner == spl.TOKEN_2022_PROGRAM_ID
    view = native.inspect_mint(bytes(account.data))
    assert view.decimals == 3
    assert view.supply == 0
    assert view.interest_rate_bps == 250
    assert view.metadata is not None
    assert (view.metadata.name, view.metadata.symbol, view.metadata.fields) == ("Solar export", "SOLAR", fields)
    names = {extensions.name(c) for c in view.extensions}
    assert {"MetadataPointer", "TokenMetadata", "InterestBearingConfig"} <= names


async def test_the_outbox_resends_the_same_bytes_while_valid_and_re_signs_only_after_expiry(chain: Backend) -> None:
    to = Keypair().pubkey()
    signed: list[bytes] = []
    dropped = {"n": 0}

    async def build(_ref: str, recent: RecentBlockhash) -> bytes:
        pay = transfer(TransferParams(from_pubkey=chain.payer.pubkey(), to_pubkey=to, lamports=7_000_000))
        raw = spl.signed([pay], chain.payer, [], recent.blockhash)
        signed.append(raw)
        return raw

    def fault(step: str) -> None:
        # The first three sends are "lost on the way" and the chain moves past the blockhash.
        if step == "persisted" and dropped["n"] < 3:
            dropped["n"] += 1
            raise ConnectionError("lost")

    async def record(_conn: AsyncConnection, _ref: str, _outcome: Outcome) -> None:
        return None

    outbox = Outbox(chain.db, chain.chain, poll_seconds=0.01, fault=fault)
    outbox.register("pay", Handler(record, build))

    async def attempt() -> None:
        existing = await outbox.find("pay", "one")
        if existing is None:
            await outbox.submit("pay", "one", lambda recent: build("one", recent))
        else:
            await outbox.drive(existing)

    for _ in range(3):
        with pytest.raises(ConnectionError):
            await attempt()
    assert len(signed) == 1, "never re-signed while the first blockhash was valid"
    chain.embedded.produce_blocks(MAX_BLOCKHASH_AGE + 1)
    outbox_id = await outbox.find("pay", "one")
    assert outbox_id is not None
    outcome = await outbox.drive(outbox_id)
    assert outcome.state is OutboxState.CONFIRMED
    assert len(signed) == 2
    assert outcome.signature == str(signature_of(signed[1]))
    assert await chain.lamports(to) == 7_000_000


async def test_chain_serve_answers_the_methods_common_tools_call(tmp_path: Path) -> None:

    async with backend("rpc", f"sqlite:///{tmp_path / 'chain.db'}") as world:
        assert isinstance(world.chain, RpcChain)
        authority, owner = Keypair(), Keypair().pubkey()
        mint = await world.create_mint(authority.pubkey(), decimals=2)
        program = spl.TOKEN_PROGRAM_ID
        raw = await world.signed(
            [
                spl.create_ata(world.payer.pubkey(), owner, mint, program),
                spl.mint_to(program, mint, spl.ata(owner, mint, program), authority.pubkey(), 12_345, 2),
            ],
            (authority,),
        )
        client = AsyncClient(world.chain.url)
        try:
            simulated = await client.simulate_transaction(VersionedTransaction.from_bytes(raw))
            assert simulated.value.err is None
            assert simulated.value.logs
            await world.chain.send([raw])
            balance = (await client.get_token_account_balance(spl.ata(owner, mint, program))).value
            assert (balance.amount, balance.decimals, balance.ui_amount_string) == ("12345", 2, "123.45")
            assert (await client.get_token_supply(mint)).value.amount == "12345"
            assert (await client.get_balance(world.payer.pubkey())).value > 0
            info = (await client.get_account_info(mint)).value
            assert info is not None
            assert info.owner == program
            assert (await client.get_account_info(Keypair().pubkey())).value is None
            assert (await client.is_connected()) is True
        finally:
            await client.close()
