"""The base stablecoin: configured (USDC on a real cluster) or, on a
development chain, the faucet's test mint, created once and remembered."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from solders.keypair import Keypair
from solders.pubkey import Pubkey

from openvpp import errors, native
from openvpp.chain import spl
from openvpp.chain.base import Chain
from openvpp.chain.keyring import Keyring
from openvpp.settlement.tokens import extensions
from openvpp.settlement.tokens.faucet import DevelopmentFaucet
from openvpp.store import settlement_repo
from openvpp.store.database import Database

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stablecoin:
    mint: Pubkey
    decimals: int
    program: Pubkey
    # Development: the key that can mint the test stablecoin; None for USDC.
    mint_authority: Keypair | None


async def _load_configured(db: Database) -> tuple[str, int, str] | None:
    async with db.read() as conn:
        row = await settlement_repo.stablecoin(conn)
    return None if row is None else (row.stablecoin_mint, row.stablecoin_decimals, row.stablecoin_program)


async def remember(db: Database, mint: Pubkey, decimals: int, program: Pubkey) -> None:
    async with db.write() as conn:
        await settlement_repo.remember_stablecoin(conn, str(mint), decimals, str(program))


async def read_mint(chain: Chain, mint: Pubkey) -> tuple[native.MintView, Pubkey]:
    (account,) = await chain.accounts([mint])
    if account is None:
        raise errors.FailedPrecondition(f"mint {mint} does not exist on chain", "MINT_NOT_FOUND")
    if account.owner not in (spl.TOKEN_PROGRAM_ID, spl.TOKEN_2022_PROGRAM_ID):
        raise errors.FailedPrecondition(f"{mint} is not owned by a token program", "NOT_A_MINT")
    return native.inspect_mint(bytes(account.data)), account.owner


async def open_stablecoin(
    db: Database,
    chain: Chain,
    keyring: Keyring,
    configured_mint: str | None,
    extra_allowed: frozenset[int],
    faucet: DevelopmentFaucet | None,
) -> Stablecoin:
    """The configured mint, checked on chain; else (development chains, with
    the faucet) the test mint, created on first use."""
    coin = await _open(db, chain, keyring, configured_mint, extra_allowed, faucet)
    if faucet is not None:
        faucet.mints(coin.mint, coin.program, coin.decimals, coin.mint_authority)
    return coin


async def _open(
    db: Database,
    chain: Chain,
    keyring: Keyring,
    configured_mint: str | None,
    extra_allowed: frozenset[int],
    faucet: DevelopmentFaucet | None,
) -> Stablecoin:
    if configured_mint:
        mint = Pubkey.from_string(configured_mint)
        view, program = await read_mint(chain, mint)
        extensions.check(str(mint), view.extensions, extra_allowed)
        await remember(db, mint, view.decimals, program)
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
    if faucet is None:
        raise errors.FailedPrecondition(
            "no stablecoin mint configured: set stablecoin_mint (the cluster's USDC mint)", "NO_STABLECOIN"
        )
    mint, authority = await faucet.create_test_mint()
    await remember(db, mint, faucet.TEST_DECIMALS, spl.TOKEN_PROGRAM_ID)
    return Stablecoin(mint, faucet.TEST_DECIMALS, spl.TOKEN_PROGRAM_ID, authority)
