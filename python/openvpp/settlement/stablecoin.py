"""The base stablecoin: configured (USDC on a real cluster) or, on the
embedded chain, a local test mint created once and remembered."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.system_program import CreateAccountParams, create_account
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from openvpp import errors, keys, native
from openvpp.chain import spl
from openvpp.chain.base import Chain, RecentBlockhash
from openvpp.chain.keyring import Keyring
from openvpp.chain.outbox import Handler, Outbox, OutboxState, Outcome
from openvpp.settlement import extensions
from openvpp.store import schema
from openvpp.store.database import Database

log = logging.getLogger(__name__)

TEST_DECIMALS = 6
TEST_MINT_KEY = "stablecoin-mint.json"
MINT_LEN = 82
# Enough SOL for fees and rent for a long development run.
FEE_PAYER_FLOOR_LAMPORTS = 100 * 1_000_000_000
# A development utility's treasury starts with this much test stablecoin (1,000,000.00).
DEV_TREASURY_BASE_UNITS = 1_000_000 * 10**TEST_DECIMALS


@dataclass(frozen=True)
class Stablecoin:
    mint: Pubkey
    decimals: int
    program: Pubkey
    # Development: the key that can mint the test stablecoin; None for USDC.
    faucet: Keypair | None


async def _load_configured(db: Database) -> tuple[str, int, str] | None:
    async with db.read() as conn:
        row = (await conn.execute(select(schema.settlement_config))).first()
    return None if row is None else (row.stablecoin_mint, row.stablecoin_decimals, row.stablecoin_program)


async def _remember(db: Database, mint: Pubkey, decimals: int, program: Pubkey) -> None:
    async with db.write() as conn:
        if (await conn.execute(select(schema.settlement_config))).first() is None:
            await conn.execute(
                insert(schema.settlement_config).values(
                    id=1, stablecoin_mint=str(mint), stablecoin_decimals=decimals, stablecoin_program=str(program)
                )
            )


async def read_mint(chain: Chain, mint: Pubkey) -> tuple[native.MintView, Pubkey]:
    (account,) = await chain.accounts([mint])
    if account is None:
        raise errors.FailedPrecondition(f"mint {mint} does not exist on chain", "MINT_NOT_FOUND")
    if account.owner not in (spl.TOKEN_PROGRAM_ID, spl.TOKEN_2022_PROGRAM_ID):
        raise errors.FailedPrecondition(f"{mint} is not owned by a token program", "NOT_A_MINT")
    return native.inspect_mint(bytes(account.data)), account.owner


async def ensure_fee_payer(chain: Chain, keyring: Keyring) -> None:
    """Development chains: keeps the fee payer funded from the faucet."""
    if not chain.development:
        return
    (account,) = await chain.accounts([keyring.fee_payer.pubkey()])
    if account is None or account.lamports < FEE_PAYER_FLOOR_LAMPORTS // 2:
        await chain.airdrop(keyring.fee_payer.pubkey(), FEE_PAYER_FLOOR_LAMPORTS)


async def open_stablecoin(
    db: Database,
    chain: Chain,
    outbox: Outbox,
    keyring: Keyring,
    configured_mint: str | None,
    extra_allowed: frozenset[int],
) -> Stablecoin:
    """The configured mint, checked on chain; else the test mint, created on first use."""
    if configured_mint:
        mint = Pubkey.from_string(configured_mint)
        view, program = await read_mint(chain, mint)
        extensions.check(str(mint), view.extensions, extra_allowed)
        await _remember(db, mint, view.decimals, program)
        return Stablecoin(mint, view.decimals, program, keyring.stablecoin_authority(create=False))
    remembered = await _load_configured(db)
    if remembered is not None:
        address, decimals, program_id = remembered
        return Stablecoin(
            Pubkey.from_string(address),
            decimals,
            Pubkey.from_string(program_id),
            keyring.stablecoin_authority(create=False),
        )
    if not chain.development:
        raise errors.FailedPrecondition(
            "no stablecoin mint configured: set stablecoin_mint (the cluster's USDC mint)", "NO_STABLECOIN"
        )
    return await _create_test_mint(db, chain, outbox, keyring)


async def _create_test_mint(db: Database, chain: Chain, outbox: Outbox, keyring: Keyring) -> Stablecoin:
    path = keyring.directory / TEST_MINT_KEY
    if not path.exists():
        keys.write(path, keys.generate())
    mint_key = keys.read(path)
    authority = keyring.stablecoin_authority(create=True)
    assert authority is not None
    rent = await chain.minimum_balance(MINT_LEN)
    payer = keyring.fee_payer

    async def build(_ref: str, recent: RecentBlockhash) -> bytes:
        return spl.signed(
            [
                create_account(
                    CreateAccountParams(
                        from_pubkey=payer.pubkey(),
                        to_pubkey=mint_key.pubkey(),
                        lamports=rent,
                        space=MINT_LEN,
                        owner=spl.TOKEN_PROGRAM_ID,
                    )
                ),
                spl.initialize_mint(spl.TOKEN_PROGRAM_ID, mint_key.pubkey(), authority.pubkey(), TEST_DECIMALS),
            ],
            payer,
            [mint_key],
            recent.blockhash,
        )

    async def record(_conn: AsyncConnection, _ref: str, _outcome: Outcome) -> None:
        return None

    outbox.register("stablecoin_test_mint", Handler(record, build))
    outcome = await outbox.submit("stablecoin_test_mint", str(mint_key.pubkey()), lambda recent: build("", recent))
    if outcome.state != OutboxState.CONFIRMED:
        raise errors.Unavailable(f"creating the test stablecoin failed: {outcome.error}", "CHAIN_FAILED")
    await _remember(db, mint_key.pubkey(), TEST_DECIMALS, spl.TOKEN_PROGRAM_ID)
    log.info("created the test stablecoin %s on the embedded chain", mint_key.pubkey())
    return Stablecoin(mint_key.pubkey(), TEST_DECIMALS, spl.TOKEN_PROGRAM_ID, authority)
