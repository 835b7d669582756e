"""An embedded chain behind `openvpp chain serve`'s server, for tests that
talk to it with real Solana clients (solana-py, web3.js)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.system_program import CreateAccountParams, create_account

from openvpp import native
from openvpp.chain import rpc_server, spl
from openvpp.chain.embedded import LAMPORTS_PER_SOL, EmbeddedChain
from openvpp.store.database import Database
from tests.integration.chain_world import MINT_LEN, migrated


@dataclass
class ServedChain:
    url: str
    # On the port after the HTTP one, where web3.js and the Solana CLI look.
    ws_url: str
    embedded: EmbeddedChain
    db: Database
    payer: Keypair

    async def send(self, instructions: Sequence[Instruction], signers: Sequence[Keypair] = ()) -> bytes:
        recent = await self.embedded.latest_blockhash()
        raw = spl.signed(list(instructions), self.payer, list(signers), recent.blockhash)
        (result,) = await self.embedded.send([raw])
        assert result.error is None, result
        return raw

    async def token_mint(self, authority: Pubkey, decimals: int = 6) -> Pubkey:
        mint = Keypair()
        rent = await self.embedded.minimum_balance(MINT_LEN)
        await self.send(
            [
                create_account(
                    CreateAccountParams(
                        from_pubkey=self.payer.pubkey(),
                        to_pubkey=mint.pubkey(),
                        lamports=rent,
                        space=MINT_LEN,
                        owner=spl.TOKEN_PROGRAM_ID,
                    )
                ),
                spl.initialize_mint(spl.TOKEN_PROGRAM_ID, mint.pubkey(), authority, decimals),
            ],
            [mint],
        )
        return mint.pubkey()

    async def token_2022_mint_with_metadata(self, authority: Keypair, fields: list[tuple[str, str]]) -> Pubkey:
        """A mint like OpenVPP's use-case tokens: metadata pointer, token
        metadata with extra fields, and an interest-bearing rate."""
        mint = Keypair()
        plan = native.use_case_mint(
            mint=bytes(mint.pubkey()),
            mint_authority=bytes(authority.pubkey()),
            metadata_authority=bytes(authority.pubkey()),
            decimals=3,
            name="Solar credit",
            symbol="SOLAR",
            uri="https://example.org/solar.json",
            fields=fields,
            interest_rate_bps=250,
        )
        rent = await self.embedded.minimum_balance(plan.total_len)
        create = create_account(
            CreateAccountParams(
                from_pubkey=self.payer.pubkey(),
                to_pubkey=mint.pubkey(),
                lamports=rent,
                space=plan.space,
                owner=spl.TOKEN_2022_PROGRAM_ID,
            )
        )
        await self.send([create, *(spl.from_raw(ix) for ix in plan.instructions)], [mint, authority])
        return mint.pubkey()


@asynccontextmanager
async def served_chain(url: str, slot_seconds: float | None = 0.4) -> AsyncIterator[ServedChain]:
    db = await migrated(url)
    embedded = await EmbeddedChain.open(db, slot_seconds=slot_seconds, history=True)
    payer = Keypair()
    await embedded.airdrop(payer.pubkey(), 100 * LAMPORTS_PER_SOL)
    # Port 0 picks the HTTP port; the WebSocket wants the one after it, which
    # is nearly always free; try again on the rare clash.
    for _ in range(5):
        served = await rpc_server.serve(embedded, "127.0.0.1", 0)
        if served.ws_port is not None:
            break
        await served.cleanup()
    assert served.ws_port is not None
    try:
        yield ServedChain(f"http://127.0.0.1:{served.port}", f"ws://127.0.0.1:{served.ws_port}", embedded, db, payer)
    finally:
        await served.cleanup()
        await db.close()
