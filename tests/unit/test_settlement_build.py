"""Settlement building: every transaction decodes with solders and executes in
LiteSVM against the real SPL Token and Token-2022 programs."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from solders.address_lookup_table_account import AddressLookupTableAccount
from solders.hash import Hash
from solders.keypair import Keypair
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction
from spl.token.instructions import get_associated_token_address

from openvpp import native
from tests.chain import TOKEN_2022_PROGRAM_ID, TOKEN_PROGRAM_ID, Chain
from tests.reference import settlement as ref

PROGRAMS = {native.TokenProgram.TOKEN: TOKEN_PROGRAM_ID, native.TokenProgram.TOKEN_2022: TOKEN_2022_PROGRAM_ID}


def params(chain: Chain, authority: Keypair, **kwargs: object) -> native.SettlementParams:
    return native.SettlementParams(
        payer=bytes(chain.payer),
        authority=bytes(authority),
        blockhash=bytes(chain.blockhash),
        **kwargs,  # type: ignore[arg-type]
    )


def accounts_locked(raw: bytes) -> int:
    message = VersionedTransaction.from_bytes(raw).message
    assert isinstance(message, MessageV0)
    loaded = sum(len(bytes(t.writable_indexes)) + len(bytes(t.readonly_indexes)) for t in message.address_table_lookups)
    return len(message.account_keys) + loaded


def token_invocations(raw: bytes) -> list[bytes]:
    """The data of each top-level token-program instruction of a transaction."""
    message = VersionedTransaction.from_bytes(raw).message
    tokens = {TOKEN_PROGRAM_ID, TOKEN_2022_PROGRAM_ID}
    return [ix.data for ix in message.instructions if message.account_keys[ix.program_id_index] in tokens]


@pytest.mark.parametrize("batched", [True, False], ids=["batch", "one-by-one"])
@pytest.mark.parametrize("program", list(native.TokenProgram))
def test_minted_credits_arrive_exactly_netted(program: native.TokenProgram, batched: bool) -> None:
    chain, authority = Chain(), Keypair()
    mint = chain.create_mint(authority.pubkey(), 6, PROGRAMS[program])
    stranger_mint = Keypair().pubkey()
    recipients = [Keypair().pubkey() for _ in range(45)]
    rng = random.Random(4)
    intents = [
        native.PaymentIntent(bytes(rng.choice(recipients)), bytes(mint), rng.randrange(0, 5_000), True)
        for _ in range(300)
    ]
    intents.append(native.PaymentIntent(bytes(recipients[0]), bytes(stranger_mint), 10, True))
    batch = native.build_settlement(
        b"".join(i.pack() for i in intents),
        native.MintPayment(bytes(mint), program, 6, native.PaymentMode.MINT_TO).pack(),
        params(chain, authority, compute_unit_price=1_000, batch_payments=batched),
    )
    expected: dict[bytes, int] = {}
    for i, intent in enumerate(intents[:-1]):
        if intent.amount:
            expected[intent.recipient] = expected.get(intent.recipient, 0) + intent.amount
            assert batch.verdict(i) is native.SettlementVerdict.INCLUDED
        else:
            assert batch.verdict(i) is native.SettlementVerdict.NOTHING_TO_PAY
    assert batch.verdict(len(intents) - 1) is native.SettlementVerdict.UNKNOWN_MINT
    assert {n.recipient: n.amount for n in batch.netted} == expected
    for t, (raw, signature) in enumerate(zip(batch.transactions, batch.signatures, strict=True)):
        assert len(raw) <= native.MAX_TRANSACTION_SIZE
        assert accounts_locked(raw) <= 64
        assert bytes(VersionedTransaction.from_bytes(raw).signatures[0]) == signature
        paid = sum(1 for n in batch.netted if n.transaction == t)
        invocations = token_invocations(raw)
        # Batched: one invocation of the token program (a Batch once it pays two or more).
        assert len(invocations) == (1 if batched else paid)
        assert (invocations[0][0] == 255) == (batched and paid > 1)
        chain.send_raw(raw)
    for recipient, amount in expected.items():
        assert chain.token_balance(Pubkey.from_bytes(recipient), mint, PROGRAMS[program]) == amount


@pytest.mark.parametrize("batched", [True, False], ids=["batch", "one-by-one"])
def test_transfers_from_a_reserve_with_existing_accounts_and_two_signers(batched: bool) -> None:
    chain, authority = Chain(), Keypair()
    usdc = chain.create_mint(authority.pubkey(), 6)
    reserve = chain.create_ata(authority.pubkey(), usdc)
    chain.mint_to(usdc, reserve, authority, 10_000_000)
    recipients = [Keypair().pubkey() for _ in range(30)]
    for r in recipients:
        chain.create_ata(r, usdc)
    intents = b"".join(native.PaymentIntent(bytes(r), bytes(usdc), 1_000 + i).pack() for i, r in enumerate(recipients))
    batch = native.build_settlement(
        intents,
        native.MintPayment(
            bytes(usdc), native.TokenProgram.TOKEN, 6, native.PaymentMode.TRANSFER, bytes(reserve)
        ).pack(),
        params(chain, authority, batch_payments=batched),
    )
    for raw in batch.transactions:
        assert len(VersionedTransaction.from_bytes(raw).signatures) == 2
        assert len(token_invocations(raw)) == 1 or not batched
        chain.send_raw(raw)
    assert [chain.token_balance(r, usdc) for r in recipients] == [1_000 + i for i in range(30)]
    assert chain.token_balance(authority.pubkey(), usdc) == 10_000_000 - sum(1_000 + i for i in range(30))


def test_a_lookup_table_packs_more_transfers_and_never_exceeds_the_lock_limit() -> None:
    chain, authority = Chain(), Keypair()
    mint = chain.create_mint(authority.pubkey(), 0)
    recipients = [Keypair().pubkey() for _ in range(200)]
    for r in recipients:
        chain.create_ata(r, mint)
    atas = [get_associated_token_address(r, mint) for r in recipients]
    table = chain.lookup_table([mint, TOKEN_PROGRAM_ID, authority.pubkey(), *atas])
    intents = b"".join(native.PaymentIntent(bytes(r), bytes(mint), 7).pack() for r in recipients)
    mints = native.MintPayment(bytes(mint), native.TokenProgram.TOKEN, 0, native.PaymentMode.MINT_TO).pack()
    plain = native.build_settlement(intents, mints, params(chain, authority))
    lookup = [bytes(a) for a in [mint, TOKEN_PROGRAM_ID, authority.pubkey(), *atas]]
    packed = native.build_settlement(
        intents, mints, params(chain, authority, lookup_table=bytes(table), lookup_addresses=lookup)
    )
    per_tx_plain = max(sum(1 for n in plain.netted if n.transaction == t) for t in range(len(plain.transactions)))
    per_tx_lookup = max(sum(1 for n in packed.netted if n.transaction == t) for t in range(len(packed.transactions)))
    assert per_tx_lookup > 2 * per_tx_plain
    assert max(accounts_locked(raw) for raw in packed.transactions) <= 64
    assert packed.digest == plain.digest
    for raw in packed.transactions:
        assert len(raw) <= native.MAX_TRANSACTION_SIZE
        chain.send_raw(raw)
    assert all(chain.token_balance(r, mint) == 7 for r in recipients)


def test_same_intents_in_any_order_give_the_same_digest_and_transactions() -> None:
    chain, authority = Chain(), Keypair()
    mint = Keypair().pubkey()
    intents = [native.PaymentIntent(bytes(Keypair().pubkey()), bytes(mint), i + 1, True) for i in range(40)]
    mints = native.MintPayment(bytes(mint), native.TokenProgram.TOKEN_2022, 2, native.PaymentMode.MINT_TO).pack()
    a = native.build_settlement(b"".join(i.pack() for i in intents), mints, params(chain, authority))
    b = native.build_settlement(b"".join(i.pack() for i in reversed(intents)), mints, params(chain, authority))
    assert a.digest == b.digest
    assert a.transactions == b.transactions
    other = native.build_settlement(b"".join(i.pack() for i in intents[1:]), mints, params(chain, authority))
    assert other.digest != a.digest


def test_overflowing_net_is_refused_for_that_recipient_only() -> None:
    chain, authority = Chain(), Keypair()
    mint, rich, poor = Keypair().pubkey(), Keypair().pubkey(), Keypair().pubkey()
    intents = [
        native.PaymentIntent(bytes(rich), bytes(mint), 2**64 - 1),
        native.PaymentIntent(bytes(rich), bytes(mint), 1),
        native.PaymentIntent(bytes(poor), bytes(mint), 5),
    ]
    batch = native.build_settlement(
        b"".join(i.pack() for i in intents),
        native.MintPayment(bytes(mint), native.TokenProgram.TOKEN, 0, native.PaymentMode.MINT_TO).pack(),
        params(chain, authority),
    )
    assert [batch.verdict(i) for i in range(3)] == [
        native.SettlementVerdict.OVERFLOW,
        native.SettlementVerdict.OVERFLOW,
        native.SettlementVerdict.INCLUDED,
    ]
    assert [(n.recipient, n.amount) for n in batch.netted] == [(bytes(poor), 5)]


@st.composite
def settlement_cases(
    draw: st.DrawFn,
) -> tuple[list[native.PaymentIntent], list[native.MintPayment], bool, list[Pubkey], bool]:
    mints = [
        native.MintPayment(
            bytes(Keypair().pubkey()),
            draw(st.sampled_from(list(native.TokenProgram))),
            draw(st.integers(0, 9)),
            mode := draw(st.sampled_from(list(native.PaymentMode))),
            bytes(Keypair().pubkey()) if mode is native.PaymentMode.TRANSFER else bytes(32),
        )
        for _ in range(draw(st.integers(1, 3)))
    ]
    known = [m.mint for m in mints]
    recipients = [bytes(Keypair().pubkey()) for _ in range(draw(st.integers(1, 40)))]
    intents = [
        native.PaymentIntent(
            draw(st.sampled_from(recipients)),
            draw(st.sampled_from([*known, bytes(Keypair().pubkey())]))
            if draw(st.integers(0, 15)) == 0
            else draw(st.sampled_from(known)),
            draw(st.sampled_from([0, 1, 999, 2**63, 2**64 - 1]))
            if draw(st.integers(0, 10)) == 0
            else draw(st.integers(1, 10**9)),
            draw(st.booleans()),
        )
        for _ in range(draw(st.integers(0, 120)))
    ]
    table: list[Pubkey] = []
    if draw(st.booleans()):
        programs = {native.TokenProgram.TOKEN: ref.TOKEN, native.TokenProgram.TOKEN_2022: ref.TOKEN_2022}
        for m in mints:
            table.append(Pubkey(m.mint))
            for r in recipients[: len(recipients) // 2]:
                table.append(ref.ata(Pubkey(r), Pubkey(m.mint), programs[m.program]))
        table += [ref.TOKEN, ref.SYSTEM, *(Pubkey(r) for r in recipients[::3])]
        table = table[:256]
    return intents, mints, draw(st.booleans()), table, draw(st.booleans())


@settings(max_examples=40, deadline=None)
@given(settlement_cases())
def test_rust_builds_exactly_what_the_python_reference_builds(
    case: tuple[list[native.PaymentIntent], list[native.MintPayment], bool, list[Pubkey], bool],
) -> None:
    intents, mints, two_signers, table, batched = case
    table_key = Pubkey(bytes([9] * 32))
    payer = Keypair.from_seed(bytes(32))
    authority = Keypair.from_seed(bytes([1] * 32)) if two_signers else payer
    blockhash = Hash.from_bytes(bytes(range(32)))
    batch = native.build_settlement(
        b"".join(i.pack() for i in intents),
        b"".join(m.pack() for m in mints),
        native.SettlementParams(
            bytes(payer),
            bytes(authority),
            bytes(blockhash),
            compute_unit_price=5,
            lookup_table=bytes(table_key) if table else None,
            lookup_addresses=[bytes(k) for k in table],
            batch_payments=batched,
        ),
    )
    programs = {native.TokenProgram.TOKEN: ref.TOKEN, native.TokenProgram.TOKEN_2022: ref.TOKEN_2022}
    ref_mints = {
        Pubkey(m.mint): ref.Mint(
            Pubkey(m.mint), programs[m.program], m.decimals, m.mode is native.PaymentMode.MINT_TO, Pubkey(m.source)
        )
        for m in mints
    }
    txs, netted, verdicts, digest = ref.build(
        [(Pubkey(i.recipient), Pubkey(i.mint), i.amount, i.create_ata) for i in intents],
        ref_mints,
        ref.Params(
            payer,
            authority,
            blockhash,
            compute_unit_price=5,
            table=AddressLookupTableAccount(table_key, table) if table else None,
            batch=batched,
        ),
    )
    assert batch.transactions == txs
    assert batch.digest == digest
    assert [(n.recipient, n.mint, n.amount, n.create_ata) for n in batch.netted] == [
        (bytes(r), bytes(m), a, c) for r, m, a, c, _ in netted
    ]
    assert [n.transaction if n.transaction != 2**32 - 1 else -1 for n in batch.netted] == [t for *_, t in netted]
    assert [batch.verdict(i).name.lower() for i in range(len(intents))] == [v for v, _ in verdicts]
    # Netting conserves value: what is paid is exactly what was owed.
    paid = sum(n.amount for n in batch.netted)
    owed = sum(i.amount for i, (v, _) in zip(intents, verdicts, strict=True) if v == "included")
    assert paid == owed
