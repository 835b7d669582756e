"""Plain-Python settlement building (netting, greedy packing, signing) with
instructions built directly with solders: the reference the Rust builder must
match byte for byte, and the fastest Python path in the benchmark.
"""

from __future__ import annotations

import functools
import hashlib
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from solders.address_lookup_table_account import AddressLookupTableAccount
from solders.compute_budget import set_compute_unit_limit, set_compute_unit_price
from solders.hash import Hash
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.message import MessageV0, to_bytes_versioned
from solders.pubkey import Pubkey
from solders.system_program import ID as SYSTEM_PROGRAM_ID
from solders.transaction import VersionedTransaction
from spl.token.constants import ASSOCIATED_TOKEN_PROGRAM_ID, TOKEN_2022_PROGRAM_ID, TOKEN_PROGRAM_ID

TOKEN = TOKEN_PROGRAM_ID
TOKEN_2022 = TOKEN_2022_PROGRAM_ID
ATA_PROGRAM = ASSOCIATED_TOKEN_PROGRAM_ID
SYSTEM = SYSTEM_PROGRAM_ID
U64 = 2**64
DIGEST_DOMAIN = b"openvpp/settlement-batch/v1"


@dataclass(frozen=True)
class Mint:
    mint: Pubkey
    program: Pubkey
    decimals: int
    mint_to: bool
    source: Pubkey


@dataclass(frozen=True)
class Params:
    payer: Keypair
    authority: Keypair
    blockhash: Hash
    compute_unit_price: int = 0
    units_per_transfer: int = 10_000
    units_per_ata: int = 30_000
    max_locks: int = 64
    table: AddressLookupTableAccount | None = None
    batch: bool = True


@functools.cache
def ata(owner: Pubkey, mint: Pubkey, program: Pubkey) -> Pubkey:
    """The associated token account (memoised: derivation is the costly part)."""
    return Pubkey.find_program_address([bytes(owner), bytes(program), bytes(mint)], ATA_PROGRAM)[0]


def instructions(
    recipient: Pubkey, amount: int, create: bool, m: Mint, payer: Pubkey, authority: Pubkey
) -> list[Instruction]:
    dest = ata(recipient, m.mint, m.program)
    out = []
    if create:
        out.append(
            Instruction(
                ATA_PROGRAM,
                b"\x01",
                [
                    AccountMeta(payer, True, True),
                    AccountMeta(dest, False, True),
                    AccountMeta(recipient, False, False),
                    AccountMeta(m.mint, False, False),
                    AccountMeta(SYSTEM, False, False),
                    AccountMeta(m.program, False, False),
                ],
            )
        )
    if m.mint_to:
        data = struct.pack("<BQB", 14, amount, m.decimals)
        metas = [AccountMeta(m.mint, False, True), AccountMeta(dest, False, True), AccountMeta(authority, True, False)]
    else:
        data = struct.pack("<BQB", 12, amount, m.decimals)
        metas = [
            AccountMeta(m.source, False, True),
            AccountMeta(m.mint, False, False),
            AccountMeta(dest, False, True),
            AccountMeta(authority, True, False),
        ]
    out.append(Instruction(m.program, data, metas))
    return out


def batched(body: list[Instruction]) -> list[Instruction]:
    """Each token program's payments as one `Batch` (tag 255, then per inner
    instruction its account count, data length and data), after every other
    instruction; a program with one payment keeps it plain."""
    tokens = (TOKEN, TOKEN_2022)
    out = [ix for ix in body if ix.program_id not in tokens]
    for program in dict.fromkeys(ix.program_id for ix in body if ix.program_id in tokens):
        payments = [ix for ix in body if ix.program_id == program]
        if len(payments) == 1:
            out.extend(payments)
            continue
        data = b"\xff" + b"".join(bytes([len(ix.accounts), len(ix.data)]) + ix.data for ix in payments)
        out.append(Instruction(program, data, [meta for ix in payments for meta in ix.accounts]))
    return out


Netted = tuple[Pubkey, Pubkey, int, bool]


def net(
    intents: Sequence[tuple[Pubkey, Pubkey, int, bool]], mints: dict[Pubkey, Mint]
) -> tuple[list[Netted], list[tuple[str, int]]]:
    """Returns (netted [(recipient, mint, amount, create)], verdicts [(name, netted index)])."""
    verdicts: list[tuple[str, int]] = [("nothing_to_pay", -1)] * len(intents)
    groups: dict[tuple[bytes, bytes], list[int]] = {}
    for i, (recipient, mint, amount, _) in enumerate(intents):
        if mint not in mints:
            verdicts[i] = ("unknown_mint", -1)
        elif amount:
            groups.setdefault((bytes(mint), bytes(recipient)), []).append(i)
    netted: list[Netted] = []
    for (mint_bytes, recipient_bytes), members in sorted(groups.items()):
        total = sum(intents[i][2] for i in members)
        if total >= U64:
            for i in members:
                verdicts[i] = ("overflow", -1)
            continue
        for i in members:
            verdicts[i] = ("included", len(netted))
        netted.append((Pubkey(recipient_bytes), Pubkey(mint_bytes), total, any(intents[i][3] for i in members)))
    return netted, verdicts


def digest(netted: Sequence[tuple[Pubkey, Pubkey, int, bool]]) -> bytes:
    h = hashlib.sha256(DIGEST_DOMAIN + struct.pack("<Q", len(netted)))
    for recipient, mint, amount, create in netted:
        h.update(bytes(recipient) + bytes(mint) + struct.pack("<Q?", amount, create))
    return h.digest()


def sign_with_solders(message: MessageV0, signers: list[Keypair]) -> bytes:
    return bytes(VersionedTransaction(message, signers))


InstructionMaker = Callable[[Pubkey, int, bool, Mint, Pubkey, Pubkey], list[Instruction]]


def build(
    intents: Sequence[tuple[Pubkey, Pubkey, int, bool]],
    mints: dict[Pubkey, Mint],
    p: Params,
    sign: Callable[[MessageV0, list[Keypair]], bytes] = sign_with_solders,
    make_instructions: InstructionMaker = instructions,
) -> tuple[list[bytes], list[tuple[Pubkey, Pubkey, int, bool, int]], list[tuple[str, int]], bytes]:
    netted, verdicts = net(intents, mints)
    # Keypair.pubkey() re-derives the key on every call: derive it once.
    payer, authority = p.payer.pubkey(), p.authority.pubkey()
    signers = [p.payer] if payer == authority else [p.payer, p.authority]
    tables = [p.table] if p.table else []

    def compile_fitting(body: list[Instruction], transfers: int, atas: int) -> MessageV0 | None:
        budget = [set_compute_unit_limit(transfers * p.units_per_transfer + atas * p.units_per_ata)]
        if p.compute_unit_price:
            budget.append(set_compute_unit_price(p.compute_unit_price))
        message = MessageV0.try_compile(payer, budget + (batched(body) if p.batch else body), tables, p.blockhash)
        locks = len(message.account_keys) + sum(
            len(t.writable_indexes) + len(t.readonly_indexes) for t in message.address_table_lookups
        )
        size = 1 + 64 * len(signers) + len(to_bytes_versioned(message))
        return message if size <= 1232 and locks <= p.max_locks else None

    txs: list[bytes] = []
    placed = [-1] * len(netted)
    body: list[Instruction] = []
    members: list[int] = []
    best: MessageV0 | None = None
    transfers = atas = 0
    too_large = set()

    def flush(message: MessageV0) -> None:
        for m in members:
            placed[m] = len(txs)
        members.clear()
        txs.append(sign(message, signers))

    for i, (recipient, mint, amount, create) in enumerate(netted):
        group = make_instructions(recipient, amount, create, mints[mint], payer, authority)
        message = compile_fitting(body + group, transfers + 1, atas + create)
        if message is not None:
            body, best = body + group, message
            members.append(i)
            transfers, atas = transfers + 1, atas + create
            continue
        if best is not None:
            flush(best)
            best = None
        message = compile_fitting(group, 1, int(create))
        if message is not None:
            body, best, transfers, atas = group, message, 1, int(create)
            members.append(i)
        else:
            too_large.add(i)
            body, transfers, atas = [], 0, 0
    if best is not None:
        flush(best)
    verdicts = [("too_large", j) if v == "included" and j in too_large else (v, j) for v, j in verdicts]
    out = [(r, m, a, c, placed[i]) for i, (r, m, a, c) in enumerate(netted)]
    return txs, out, verdicts, digest(netted)
