"""Both chain backends over one embedded chain: in process, and behind
`openvpp chain serve` through solana-py's real HTTP client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.system_program import CreateAccountParams, TransferParams, create_account, transfer

from openvpp.chain import rpc_server, spl
from openvpp.chain.base import Chain
from openvpp.chain.embedded import LAMPORTS_PER_SOL, EmbeddedChain
from openvpp.chain.rpc import RpcChain
from openvpp.store import migrate
from openvpp.store.database import Database

MINT_LEN = 82


@dataclass
class Backend:
    chain: Chain
    # The chain underneath both backends: tests move its blocks on.
    embedded: EmbeddedChain
    db: Database
    payer: Keypair

    async def signed(self, instructions: list, signers: tuple[Keypair, ...] = ()) -> bytes:  # type: ignore[type-arg]
        recent = await self.chain.latest_blockhash()
        return spl.signed(instructions, self.payer, list(signers), recent.blockhash)

    async def pay_lamports(self, to: Pubkey, lamports: int) -> bytes:
        return await self.signed(
            [transfer(TransferParams(from_pubkey=self.payer.pubkey(), to_pubkey=to, lamports=lamports))]
        )

    async def lamports(self, address: Pubkey) -> int:
        (account,) = await self.chain.accounts([address])
        return 0 if account is None else account.lamports

    async def create_mint(self, authority: Pubkey, decimals: int = 6) -> Pubkey:
        mint = Keypair()
        rent = await self.chain.minimum_balance(MINT_LEN)
        raw = await self.signed(
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
            (mint,),
        )
        (result,) = await self.chain.send([raw])
        assert result.error is None, result
        return mint.pubkey()

    async def token_balance(self, owner: Pubkey, mint: Pubkey, program: Pubkey = spl.TOKEN_PROGRAM_ID) -> int:
        (account,) = await self.chain.accounts([spl.ata(owner, mint, program)])
        return 0 if account is None else spl.token_amount(bytes(account.data))


async def migrated(url: str) -> Database:
    import asyncio

    await asyncio.to_thread(migrate.upgrade, url)
    return Database(url)


@asynccontextmanager
async def backend(kind: str, url: str) -> AsyncIterator[Backend]:
    db = await migrated(url)
    embedded = await EmbeddedChain.open(db, slot_seconds=None, history=kind == "rpc")
    payer = Keypair()
    await embedded.airdrop(payer.pubkey(), 100 * LAMPORTS_PER_SOL)
    if kind == "embedded":
        try:
            yield Backend(embedded, embedded, db, payer)
        finally:
            await db.close()
        return
    served = await rpc_server.serve(embedded, "127.0.0.1", 0)
    client = RpcChain(f"http://127.0.0.1:{served.port}", development=True)
    try:
        yield Backend(client, embedded, db, payer)
    finally:
        await client.close()
        await served.cleanup()
        await db.close()
