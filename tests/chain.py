"""A LiteSVM chain with the real token programs, for tests that execute transactions."""

from __future__ import annotations

from dataclasses import dataclass, field

from solders.hash import Hash
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.message import Message, MessageV0
from solders.pubkey import Pubkey
from solders.system_program import (
    CreateAccountParams,
    CreateLookupTableParams,
    ExtendLookupTableParams,
    create_account,
    create_lookup_table,
    extend_lookup_table,
)
from solders.transaction import Transaction, VersionedTransaction
from solders.transaction_metadata import FailedTransactionMetadata, TransactionMetadata
from spl.token import instructions as spl
from spl.token import models
from spl.token.constants import TOKEN_2022_PROGRAM_ID, TOKEN_PROGRAM_ID

MINT_SIZE = 82
LAMPORTS_PER_SOL = 1_000_000_000


@dataclass
class Chain:
    svm: LiteSVM = field(default_factory=LiteSVM)
    payer: Keypair = field(default_factory=Keypair)

    def __post_init__(self) -> None:
        self.svm.airdrop(self.payer.pubkey(), 1_000 * LAMPORTS_PER_SOL)

    @property
    def blockhash(self) -> Hash:
        return self.svm.latest_blockhash()

    def send(self, *instructions: Instruction, signers: tuple[Keypair, ...] = ()) -> TransactionMetadata:
        message = Message.new_with_blockhash(list(instructions), self.payer.pubkey(), self.blockhash)
        tx = Transaction([self.payer, *signers], message, self.blockhash)
        return self.ok(self.svm.send_transaction(tx))

    def send_raw(self, raw: bytes) -> TransactionMetadata:
        return self.ok(self.svm.send_transaction(VersionedTransaction.from_bytes(raw)))

    @staticmethod
    def ok(result: TransactionMetadata | FailedTransactionMetadata) -> TransactionMetadata:
        if isinstance(result, FailedTransactionMetadata):
            raise AssertionError(f"transaction failed: {result.err()}\n" + "\n".join(result.meta().logs()))
        return result

    def create_mint(self, authority: Pubkey, decimals: int, program: Pubkey = TOKEN_PROGRAM_ID) -> Pubkey:
        mint = Keypair()
        rent = self.svm.minimum_balance_for_rent_exemption(MINT_SIZE)
        self.send(
            create_account(
                CreateAccountParams(
                    from_pubkey=self.payer.pubkey(),
                    to_pubkey=mint.pubkey(),
                    lamports=rent,
                    space=MINT_SIZE,
                    owner=program,
                )
            ),
            spl.initialize_mint(
                models.InitializeMintParams(
                    decimals=decimals, program_id=program, mint=mint.pubkey(), mint_authority=authority
                )
            ),
            signers=(mint,),
        )
        return mint.pubkey()

    def create_ata(self, owner: Pubkey, mint: Pubkey, program: Pubkey = TOKEN_PROGRAM_ID) -> Pubkey:
        self.send(spl.create_idempotent_associated_token_account(self.payer.pubkey(), owner, mint, program))
        return spl.get_associated_token_address(owner, mint, program)

    def mint_to(
        self, mint: Pubkey, dest: Pubkey, authority: Keypair, amount: int, program: Pubkey = TOKEN_PROGRAM_ID
    ) -> None:
        self.send(
            spl.mint_to(
                models.MintToParams(
                    program_id=program, mint=mint, dest=dest, mint_authority=authority.pubkey(), amount=amount
                )
            ),
            signers=(authority,),
        )

    def token_balance(self, owner: Pubkey, mint: Pubkey, program: Pubkey = TOKEN_PROGRAM_ID) -> int:
        account = self.svm.get_account(spl.get_associated_token_address(owner, mint, program))
        return 0 if account is None else int.from_bytes(bytes(account.data)[64:72], "little")

    def lookup_table(self, addresses: list[Pubkey]) -> Pubkey:
        """Creates and fills an address lookup table, then advances a slot so it is usable."""
        slot = self.svm.get_clock().slot
        instruction, table = create_lookup_table(
            CreateLookupTableParams(
                authority_address=self.payer.pubkey(), payer_address=self.payer.pubkey(), recent_slot=slot
            )
        )
        self.send(instruction)
        for i in range(0, len(addresses), 20):
            self.send(
                extend_lookup_table(
                    ExtendLookupTableParams(
                        payer_address=self.payer.pubkey(),
                        lookup_table_address=table,
                        authority_address=self.payer.pubkey(),
                        new_addresses=addresses[i : i + 20],
                    )
                )
            )
        self.svm.warp_to_slot(slot + 2)
        return table


__all__ = ["TOKEN_2022_PROGRAM_ID", "TOKEN_PROGRAM_ID", "Chain", "MessageV0"]
