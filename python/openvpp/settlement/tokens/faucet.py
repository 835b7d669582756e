"""Development chains only: everything that creates money from nothing.

The fee payer's SOL top-up, the test stablecoin mint and the seeding of a
utility's treasury with it live here, built by the composition root only
when the chain says it is a development chain, so no code path on a real
cluster can reach them.
"""

from __future__ import annotations

import logging
import secrets

from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.system_program import CreateAccountParams, TransferParams, create_account, transfer
from sqlalchemy.ext.asyncio import AsyncConnection

from openvpp import errors, keys
from openvpp.chain import spl
from openvpp.chain.base import Chain, RecentBlockhash
from openvpp.chain.keyring import Keyring
from openvpp.chain.outbox import Handler, Outbox, OutboxState, Outcome

log = logging.getLogger(__name__)

TEST_MINT_KEY = "stablecoin-mint.json"
MINT_LEN = 82
# Enough SOL for fees and rent for a long development run.
FEE_PAYER_FLOOR_LAMPORTS = 100 * 1_000_000_000
# A development treasury wallet's own SOL (0.01: above the rent-exempt minimum).
TREASURY_LAMPORTS = 10_000_000


async def _record_nothing(_conn: AsyncConnection, _ref: str, _outcome: Outcome) -> None:
    """The chain itself is the record (balances); nothing else to write."""


class DevelopmentFaucet:
    TEST_DECIMALS = 6
    # A development utility's treasury starts with this much test stablecoin (1,000,000.00).
    TREASURY_BASE_UNITS = 1_000_000 * 10**TEST_DECIMALS
    # The most one call gives a test wallet (10,000.00).
    WALLET_MAX_BASE_UNITS = 10_000 * 10**TEST_DECIMALS

    def __init__(self, chain: Chain, outbox: Outbox, keyring: Keyring) -> None:
        if not chain.development:
            raise ValueError("the faucet exists on development chains only")
        self.chain = chain
        self.outbox = outbox
        self.keyring = keyring
        # Set once the stablecoin is known and is the faucet's own test mint.
        self._coin: tuple[Pubkey, Pubkey, int, Keypair] | None = None
        outbox.register("treasury_seed", Handler(_record_nothing, self._build_treasury_seed))
        outbox.register("faucet_wallet", Handler(_record_nothing, self._build_wallet))

    async def fund_fee_payer(self) -> None:
        """Keeps the fee payer's SOL above half the floor."""
        (account,) = await self.chain.accounts([self.keyring.fee_payer.pubkey()])
        if account is None or account.lamports < FEE_PAYER_FLOOR_LAMPORTS // 2:
            await self.chain.airdrop(self.keyring.fee_payer.pubkey(), FEE_PAYER_FLOOR_LAMPORTS)

    def mints(self, mint: Pubkey, program: Pubkey, decimals: int, authority: Keypair | None) -> None:
        """The stablecoin in use; only a mint whose authority the keyring holds can seed treasuries."""
        self._coin = None if authority is None else (mint, program, decimals, authority)

    async def create_test_mint(self) -> tuple[Pubkey, Keypair]:
        """Creates the test stablecoin (SPL Token, 6 decimals) and returns it with its mint authority."""
        path = self.keyring.directory / TEST_MINT_KEY
        if not path.exists():
            keys.write(path, keys.generate())
        mint_key = keys.read(path)
        authority = self.keyring.stablecoin_authority(create=True)
        assert authority is not None
        rent = await self.chain.minimum_balance(MINT_LEN)
        payer = self.keyring.fee_payer

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
                    spl.initialize_mint(
                        spl.TOKEN_PROGRAM_ID, mint_key.pubkey(), authority.pubkey(), self.TEST_DECIMALS
                    ),
                ],
                payer,
                [mint_key],
                recent.blockhash,
            )

        self.outbox.register("stablecoin_test_mint", Handler(_record_nothing, build))
        outcome = await self.outbox.submit(
            "stablecoin_test_mint", str(mint_key.pubkey()), lambda recent: build("", recent)
        )
        if outcome.state != OutboxState.CONFIRMED:
            raise errors.Unavailable(f"creating the test stablecoin failed: {outcome.error}", "CHAIN_FAILED")
        log.info("created the test stablecoin %s on the development chain", mint_key.pubkey())
        return mint_key.pubkey(), authority

    async def seed_treasury(self, utility: str) -> Pubkey | None:
        """A new treasury wallet for `utility`, seeded with test stablecoin
        once; None when the stablecoin is not the faucet's to mint."""
        if self._coin is None:
            return None
        key = self.keyring.treasury(utility, create=True)
        assert key is not None
        outcome = await self.outbox.submit(
            "treasury_seed", utility, lambda recent: self._build_treasury_seed(utility, recent)
        )
        if outcome.state is not OutboxState.CONFIRMED:
            raise errors.Unavailable(f"seeding the treasury failed: {outcome.error}", "CHAIN_FAILED")
        return key.pubkey()

    async def fund_wallet(self, wallet: Pubkey, amount: int) -> str:
        """Mints `amount` of test stablecoin into a wallet's account (a test
        customer's, say); the signature of the transfer."""
        if self._coin is None:
            raise errors.FailedPrecondition(
                "the stablecoin in use is not the development faucet's test mint", "NOT_TEST_STABLECOIN"
            )
        # The ref carries what a rebuild needs, so a restart can re-sign it.
        ref = f"{wallet}:{amount}:{secrets.token_hex(8)}"
        outcome = await self.outbox.submit("faucet_wallet", ref, lambda recent: self._build_wallet(ref, recent))
        if outcome.state is not OutboxState.CONFIRMED:
            raise errors.Unavailable(f"funding {wallet} failed: {outcome.error}", "CHAIN_FAILED")
        return outcome.signature

    async def _build_wallet(self, ref: str, recent: RecentBlockhash) -> bytes:
        assert self._coin is not None
        wallet_text, amount_text, _ = ref.split(":")
        mint, program, decimals, authority = self._coin
        payer, wallet = self.keyring.fee_payer, Pubkey.from_string(wallet_text)
        instructions = [
            spl.create_ata(payer.pubkey(), wallet, mint, program),
            spl.mint_to(program, mint, spl.ata(wallet, mint, program), authority.pubkey(), int(amount_text), decimals),
        ]
        return spl.signed(instructions, payer, [authority], recent.blockhash)

    async def _build_treasury_seed(self, utility: str, recent: RecentBlockhash) -> bytes:
        assert self._coin is not None
        mint, program, decimals, authority = self._coin
        payer = self.keyring.fee_payer
        key = self.keyring.treasury(utility, create=False)
        assert key is not None
        account = spl.ata(key.pubkey(), mint, program)
        instructions = [
            # The wallet itself exists too, as a real treasury does: Solana
            # Pay wallets refuse to pay a recipient that has no account.
            transfer(TransferParams(from_pubkey=payer.pubkey(), to_pubkey=key.pubkey(), lamports=TREASURY_LAMPORTS)),
            spl.create_ata(payer.pubkey(), key.pubkey(), mint, program),
            spl.mint_to(program, mint, account, authority.pubkey(), self.TREASURY_BASE_UNITS, decimals),
        ]
        return spl.signed(instructions, payer, [authority], recent.blockhash)
