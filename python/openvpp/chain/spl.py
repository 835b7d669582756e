"""Token-account helpers over solana-py's SPL instruction builders."""

from __future__ import annotations

from collections.abc import Sequence

from solders.hash import Hash
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.message import Message
from solders.pubkey import Pubkey
from solders.transaction import Transaction
from spl.token import instructions as spl
from spl.token import models
from spl.token.constants import TOKEN_2022_PROGRAM_ID, TOKEN_PROGRAM_ID

from openvpp import native

TOKEN_ACCOUNT_LEN = 165
_AMOUNT = slice(64, 72)

__all__ = ["TOKEN_2022_PROGRAM_ID", "TOKEN_PROGRAM_ID"]


MEMO_PROGRAM_ID = Pubkey.from_string("MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr")


def memo(text: str) -> Instruction:
    """A signer-less memo. Besides labelling a transaction on chain, it makes two
    otherwise identical transfers under one blockhash different transactions."""
    return Instruction(MEMO_PROGRAM_ID, text.encode(), [])


def ata(owner: Pubkey, mint: Pubkey, program: Pubkey) -> Pubkey:
    return spl.get_associated_token_address(owner, mint, program)


def token_amount(data: bytes) -> int:
    """The amount field of a token account (the same offset in both token programs)."""
    return int.from_bytes(data[_AMOUNT], "little")


def mint_supply(data: bytes) -> int:
    """The supply field of a mint (the same offset in both token programs)."""
    return int.from_bytes(data[36:44], "little")


def token_mint(data: bytes) -> Pubkey:
    return Pubkey(data[:32])


def token_owner(data: bytes) -> Pubkey:
    return Pubkey(data[32:64])


def create_ata(payer: Pubkey, owner: Pubkey, mint: Pubkey, program: Pubkey) -> Instruction:
    return spl.create_idempotent_associated_token_account(payer, owner, mint, program)


def transfer(
    program: Pubkey, source: Pubkey, mint: Pubkey, dest: Pubkey, owner: Pubkey, amount: int, decimals: int
) -> Instruction:
    return spl.transfer_checked(
        models.TransferCheckedParams(
            program_id=program, source=source, mint=mint, dest=dest, owner=owner, amount=amount, decimals=decimals
        )
    )


def approve(
    program: Pubkey, source: Pubkey, mint: Pubkey, delegate: Pubkey, owner: Pubkey, amount: int, decimals: int
) -> Instruction:
    return spl.approve_checked(
        models.ApproveCheckedParams(
            program_id=program,
            source=source,
            mint=mint,
            delegate=delegate,
            owner=owner,
            amount=amount,
            decimals=decimals,
        )
    )


def mint_to(program: Pubkey, mint: Pubkey, dest: Pubkey, authority: Pubkey, amount: int, decimals: int) -> Instruction:
    return spl.mint_to_checked(
        models.MintToCheckedParams(
            program_id=program, mint=mint, dest=dest, mint_authority=authority, amount=amount, decimals=decimals
        )
    )


def burn(program: Pubkey, account: Pubkey, mint: Pubkey, owner: Pubkey, amount: int, decimals: int) -> Instruction:
    return spl.burn_checked(
        models.BurnCheckedParams(
            program_id=program, account=account, mint=mint, owner=owner, amount=amount, decimals=decimals
        )
    )


def initialize_mint(program: Pubkey, mint: Pubkey, authority: Pubkey, decimals: int) -> Instruction:
    return spl.initialize_mint2(
        models.InitializeMint2Params(program_id=program, mint=mint, mint_authority=authority, decimals=decimals)
    )


def initialize_account(program: Pubkey, account: Pubkey, mint: Pubkey, owner: Pubkey) -> Instruction:
    return spl.initialize_account3(
        models.InitializeAccount3Params(program_id=program, account=account, mint=mint, owner=owner)
    )


def from_raw(ix: native.RawInstruction) -> Instruction:
    return Instruction(
        Pubkey(ix.program), ix.data, [AccountMeta(Pubkey(k), signer, writable) for k, signer, writable in ix.accounts]
    )


def signed(instructions: Sequence[Instruction], payer: Keypair, signers: Sequence[Keypair], blockhash: Hash) -> bytes:
    """A legacy transaction signed by the payer and every other signer, as wire bytes."""
    message = Message.new_with_blockhash(list(instructions), payer.pubkey(), blockhash)
    unique = {s.pubkey(): s for s in (payer, *signers)}
    return bytes(Transaction(list(unique.values()), message, blockhash))
