"""What a served embedded chain records about each landed transaction, in
the JSON-RPC's own shapes: lamport and token balances before and after,
inner instructions, loaded addresses and return data (`meta` of
getTransaction), and what subscribers are told when it lands.

LiteSVM's metadata has logs, fee, compute units and inner instructions but
no balances; those come from reading the transaction's accounts around its
execution, which only a chain serving JSON-RPC pays for.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import base58
from solders.account import Account
from solders.address_lookup_table_account import AddressLookupTable
from solders.litesvm import LiteSVM
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction
from solders.transaction_metadata import FailedTransactionMetadata, TransactionMetadata

from openvpp.chain.spl import TOKEN_2022_PROGRAM_ID, TOKEN_PROGRAM_ID

TOKEN_PROGRAMS = (TOKEN_PROGRAM_ID, TOKEN_2022_PROGRAM_ID)
TOKEN_ACCOUNT_LEN = 165
MINT_LEN = 82
# Token-2022 marks extended accounts with this byte right after the base layout.
ACCOUNT_TYPE_OFFSET = 165
ACCOUNT_TYPE_MINT = 1
ACCOUNT_TYPE_ACCOUNT = 2
COMPUTE_BUDGET_PROGRAM_ID = Pubkey.from_string("ComputeBudget111111111111111111111111111111")
DEFAULT_UNITS_PER_INSTRUCTION = 200_000
MAX_COMPUTE_UNITS = 1_400_000
LAMPORTS_PER_SIGNATURE = 5000


@dataclass(frozen=True, slots=True)
class Landed:
    """One landed transaction as subscribers see it."""

    signature: str
    slot: int
    error: str | None
    logs: list[str]
    keys: list[Pubkey]
    writable: list[Pubkey]
    # Micro-lamports per compute unit it bid (getRecentPrioritizationFees).
    unit_price: int = 0


def compute_budget(tx: VersionedTransaction) -> tuple[int, int]:
    """The compute-unit limit and price (micro-lamports) a transaction asks for."""
    message = tx.message
    keys = message.account_keys
    limit, price, others = None, 0, 0
    for ix in message.instructions:
        data = bytes(ix.data)
        if keys[ix.program_id_index] != COMPUTE_BUDGET_PROGRAM_ID:
            others += 1
        elif data[:1] == b"\x02" and len(data) >= 5:
            limit = int.from_bytes(data[1:5], "little")
        elif data[:1] == b"\x03" and len(data) >= 9:
            price = int.from_bytes(data[1:9], "little")
    if limit is None:
        limit = others * DEFAULT_UNITS_PER_INSTRUCTION
    return min(limit, MAX_COMPUTE_UNITS), price


def fee(tx: VersionedTransaction) -> int:
    """What landing `tx` costs: a base fee per signature plus its priority bid."""
    limit, price = compute_budget(tx)
    return LAMPORTS_PER_SIGNATURE * tx.message.header.num_required_signatures + -(-limit * price // 1_000_000)


def loaded_addresses(svm: LiteSVM, tx: VersionedTransaction) -> tuple[list[Pubkey], list[Pubkey]]:
    """The writable and read-only addresses a v0 transaction loads from lookup tables."""
    message = tx.message
    writable: list[Pubkey] = []
    readonly: list[Pubkey] = []
    if isinstance(message, MessageV0):
        for lookup in message.address_table_lookups:
            table = svm.get_account(lookup.account_key)
            if table is None:
                continue
            addresses = AddressLookupTable.deserialize(bytes(table.data)).addresses
            writable.extend(addresses[i] for i in lookup.writable_indexes if i < len(addresses))
            readonly.extend(addresses[i] for i in lookup.readonly_indexes if i < len(addresses))
    return writable, readonly


def account_keys(svm: LiteSVM, tx: VersionedTransaction) -> list[Pubkey]:
    """Every account in the order the RPC indexes them: static keys, then
    loaded writable, then loaded read-only."""
    writable, readonly = loaded_addresses(svm, tx)
    return [*tx.message.account_keys, *writable, *readonly]


def is_token_account(account: Account | None) -> bool:
    if account is None or account.owner not in TOKEN_PROGRAMS or len(account.data) < TOKEN_ACCOUNT_LEN:
        return False
    data = bytes(account.data)
    return len(data) == TOKEN_ACCOUNT_LEN or data[ACCOUNT_TYPE_OFFSET] == ACCOUNT_TYPE_ACCOUNT


def is_mint(account: Account | None) -> bool:
    if account is None or account.owner not in TOKEN_PROGRAMS or len(account.data) < MINT_LEN:
        return False
    data = bytes(account.data)
    return len(data) == MINT_LEN or (len(data) > ACCOUNT_TYPE_OFFSET and data[ACCOUNT_TYPE_OFFSET] == ACCOUNT_TYPE_MINT)


def ui_token_amount(amount: int, decimals: int) -> dict[str, Any]:
    """The RPC's `uiTokenAmount`: the exact integer as a string, and its decimal reading."""
    if decimals:
        digits = str(amount).rjust(decimals + 1, "0")
        text = f"{digits[:-decimals]}.{digits[-decimals:]}".rstrip("0").rstrip(".")
    else:
        text = str(amount)
    return {"amount": str(amount), "decimals": decimals, "uiAmount": amount / 10**decimals, "uiAmountString": text}


def mint_decimals(svm: LiteSVM, mint: Pubkey) -> int:
    account = svm.get_account(mint)
    return bytes(account.data)[44] if account is not None and len(account.data) >= MINT_LEN else 0


def token_balances(svm: LiteSVM, keys: Sequence[Pubkey], accounts: Sequence[Account | None]) -> list[dict[str, Any]]:
    out = []
    for index, account in enumerate(accounts):
        if account is None or not is_token_account(account):
            continue
        data = bytes(account.data)
        mint = Pubkey(data[:32])
        out.append(
            {
                "accountIndex": index,
                "mint": str(mint),
                "owner": str(Pubkey(data[32:64])),
                "programId": str(account.owner),
                "uiTokenAmount": ui_token_amount(int.from_bytes(data[64:72], "little"), mint_decimals(svm, mint)),
            }
        )
    return out


def details(
    svm: LiteSVM,
    tx: VersionedTransaction,
    keys: Sequence[Pubkey],
    before: Sequence[Account | None],
    outcome: TransactionMetadata | FailedTransactionMetadata,
) -> dict[str, Any]:
    """The parts of getTransaction's `meta` that are not in LiteSVM's metadata."""
    after = [svm.get_account(k) for k in keys]
    meta = outcome.meta() if isinstance(outcome, FailedTransactionMetadata) else outcome
    writable, readonly = loaded_addresses(svm, tx)
    inner = [
        {
            "index": index,
            "instructions": [
                {
                    "programIdIndex": compiled.program_id_index,
                    "accounts": list(compiled.accounts),
                    "data": base58.b58encode(bytes(compiled.data)).decode(),
                    "stackHeight": ix.stack_height(),
                }
                for ix in group
                for compiled in (ix.instruction(),)
            ],
        }
        for index, group in enumerate(meta.inner_instructions())
        if group
    ]
    returned = meta.return_data()
    return {
        "preBalances": [0 if a is None else a.lamports for a in before],
        "postBalances": [0 if a is None else a.lamports for a in after],
        "preTokenBalances": token_balances(svm, keys, before),
        "postTokenBalances": token_balances(svm, keys, after),
        "innerInstructions": inner,
        "loadedAddresses": {"writable": [str(k) for k in writable], "readonly": [str(k) for k in readonly]},
        "returnData": None
        if returned is None or not bytes(returned.data)
        else {
            "programId": str(returned.program_id),
            "data": [base64.b64encode(bytes(returned.data)).decode(), "base64"],
        },
    }


__all__ = [
    "Landed",
    "account_keys",
    "compute_budget",
    "details",
    "fee",
    "is_mint",
    "is_token_account",
    "loaded_addresses",
    "token_balances",
    "ui_token_amount",
]
