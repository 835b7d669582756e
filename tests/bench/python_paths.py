"""The best Python paths the Rust core is measured against, and their inputs."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

import nacl.signing
import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from solders.hash import Hash
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.message import MessageV0, to_bytes_versioned
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import VersionedTransaction
from spl.token import instructions as spl
from spl.token import models

from openvpp import native
from tests.reference import readings as ref_readings
from tests.reference import settlement as ref

# -- signatures -------------------------------------------------------------------


def signed_readings(n: int, seed: int, bad_percent: int) -> list[native.SignedItem]:
    rng = random.Random(seed)
    items = []
    for i in range(n):
        key = Ed25519PrivateKey.from_private_bytes(rng.randbytes(32))
        public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        payload = ref_readings.Reading(public, i + 1, 1_767_225_600, 900, i, i, 0).encode()
        items.append(native.SignedItem(public, key.sign(native.READING_DOMAIN + payload), payload))
    for i in rng.sample(range(n), n * bad_percent // 100):
        sig = bytearray(items[i].signature)
        sig[3] ^= 0x40
        items[i] = native.SignedItem(items[i].public_key, bytes(sig), items[i].message)
    return items


def as_solders(items: list[native.SignedItem]) -> list[tuple[Signature, Pubkey, bytes]]:
    return [
        (Signature.from_bytes(i.signature), Pubkey.from_bytes(i.public_key), native.READING_DOMAIN + i.message)
        for i in items
    ]


def verify_with_solders(items: list[tuple[Signature, Pubkey, bytes]]) -> list[bool]:
    return [sig.verify(key, message) for sig, key, message in items]


# -- readings ---------------------------------------------------------------------

READING = np.dtype(
    [("key", "S32"), ("seq", "<u8"), ("end", "<i8"), ("len", "<u4"), ("imp", "<u8"), ("exp", "<u8"), ("flags", "<u4")]
)
DEVICE = np.dtype(
    [
        ("key", "S32"),
        ("active", "u1"),
        ("base", "u1"),
        ("pad", "V6"),
        ("seq", "<u8"),
        ("end", "<i8"),
        ("imp", "<u8"),
        ("exp", "<u8"),
        ("max_imp", "<u8"),
        ("max_exp", "<u8"),
    ]
)
assert READING.itemsize == native.READING_LEN
assert DEVICE.itemsize == native.DEVICE_STATE_LEN


@dataclass(frozen=True)
class ReadingBatch:
    payloads: bytes
    devices: bytes
    params: dict[str, int]


def reading_batch(n: int, seed: int) -> ReadingBatch:
    """One reading per device, most good, some breaking each rule."""
    rng = random.Random(seed)
    t0, now = 1_767_225_600, 1_767_225_600 + 3600
    devices, payloads = [], []
    for i in range(n):
        key = hashlib.sha256(i.to_bytes(4, "little") + bytes([seed])).digest()
        base = rng.random() < 0.95
        state = ref_readings.Device(
            key, rng.random() < 0.99, base, 10 if base else 0, t0 if base else 0, 5_000, 20_000, 8_000, 8_000
        )
        devices.append(state)
        r = ref_readings.Reading(
            key, 11, t0 + 900, 900, 5_000 + rng.randrange(0, 2_000), 20_000 + rng.randrange(0, 2_100), 0
        )
        kind = rng.random()
        if kind < 0.02:
            r = ref_readings.Reading(r.key, 13, r.interval_end, 900, r.import_wh, r.export_wh, 1)
        elif kind < 0.03:
            r = ref_readings.Reading(r.key, r.seq, r.interval_end, 700, r.import_wh, r.export_wh, 0)
        elif kind < 0.04:
            r = ref_readings.Reading(r.key, r.seq, now + 3600, 900, r.import_wh, r.export_wh, 0)
        elif kind < 0.05:
            r = ref_readings.Reading(r.key, r.seq, r.interval_end, 900, 4_000, r.export_wh, 0)
        elif kind < 0.06:
            r = ref_readings.Reading(hashlib.sha256(b"stranger" + key).digest(), 1, r.interval_end, 900, 1, 1, 0)
        elif kind < 0.07:
            r = ref_readings.Reading(r.key, 9, r.interval_end, 900, r.import_wh, r.export_wh, 4)
        payloads.append(r.encode())
    return ReadingBatch(
        b"".join(payloads),
        b"".join(d.encode() for d in devices),
        {"now": now, "max_future_skew_s": 300, "max_age_s": 7 * 86_400},
    )


def numpy_rules(batch: ReadingBatch) -> tuple[bytes, bytes, bytes]:
    """The same rules, vectorised; valid for batches with one reading per device."""
    r = np.frombuffer(batch.payloads, READING)
    d = np.frombuffer(batch.devices, DEVICE)
    now, skew, age = batch.params["now"], batch.params["max_future_skew_s"], batch.params["max_age_s"]
    order = np.argsort(d["key"])
    sorted_keys = d["key"][order]
    pos = np.minimum(np.searchsorted(sorted_keys, r["key"]), len(d) - 1)
    found = sorted_keys[pos] == r["key"]
    s = d[order[pos]]
    length = r["len"].astype(np.int64)
    safe_len = np.where(length == 0, 1, length)
    end = r["end"]
    base = s["base"] != 0
    imp, exp = r["imp"].astype(np.int64), r["exp"].astype(np.int64)
    limp, lexp = s["imp"].astype(np.int64), s["exp"].astype(np.int64)
    elapsed = end - s["end"]
    di, de = imp - limp, exp - lexp
    cap = ((di - 1) * 360_000 > s["max_imp"].astype(np.int64) * elapsed * 102) | (
        (de - 1) * 360_000 > s["max_exp"].astype(np.int64) * elapsed * 102
    )
    missing = r["seq"].astype(np.int64) - s["seq"].astype(np.int64) - 1
    conditions = [
        ~found,
        s["active"] == 0,
        (r["flags"] & ~np.uint32(1)) != 0,
        (length < 60) | (length > 86_400) | (86_400 % safe_len != 0) | (end % safe_len != 0),
        (end > now + skew) | (end < now - age),
        ~base,
        (r["seq"] <= s["seq"]) | (end <= s["end"]),
        end - length < s["end"],
        (imp < limp) | (exp < lexp),
        cap,
        missing > 0,
    ]
    V = native.ReadingVerdict
    choices = [
        V.UNKNOWN_DEVICE,
        V.DEVICE_NOT_ACTIVE,
        V.RESERVED_FLAGS,
        V.INVALID_INTERVAL,
        V.OUTSIDE_SKEW,
        V.ACCEPTED,
        V.OUT_OF_ORDER,
        V.INVALID_INTERVAL,
        V.COUNTER_DECREASED,
        V.BEYOND_CAPABILITY,
        V.SEQ_GAP,
    ]
    verdicts = np.select(conditions, choices, default=V.ACCEPTED).astype(np.uint8)
    paid = ((verdicts == V.ACCEPTED) | (verdicts == V.SEQ_GAP)) & base & found
    return (
        verdicts.tobytes(),
        np.where(paid, di, 0).astype("<u8").tobytes(),
        np.where(paid, de, 0).astype("<u8").tobytes(),
    )


# -- settlement -------------------------------------------------------------------


@dataclass(frozen=True)
class SettlementCase:
    intents: list[tuple[Pubkey, Pubkey, int, bool]]
    mints: dict[Pubkey, ref.Mint]
    params: ref.Params
    intents_packed: bytes
    mints_packed: bytes
    native_params: native.SettlementParams


def settlement_case(n: int, seed: int) -> SettlementCase:
    rng = random.Random(seed)
    payer = Keypair.from_seed(rng.randbytes(32))
    mint = Keypair.from_seed(rng.randbytes(32)).pubkey()
    blockhash = Hash(rng.randbytes(32))
    # A settlement cycle: most prosumers were paid before, a tenth are new and
    # need their token account created.
    intents = [
        (Keypair.from_seed(rng.randbytes(32)).pubkey(), mint, rng.randrange(1, 10**7), rng.random() < 0.1)
        for _ in range(n)
    ]
    mints = {mint: ref.Mint(mint, ref.TOKEN, 6, True, Pubkey.default())}
    return SettlementCase(
        intents,
        mints,
        ref.Params(payer, payer, blockhash),
        b"".join(native.PaymentIntent(bytes(r), bytes(m), a, c).pack() for r, m, a, c in intents),
        native.MintPayment(bytes(mint), native.TokenProgram.TOKEN, 6, native.PaymentMode.MINT_TO).pack(),
        native.SettlementParams(bytes(payer), bytes(payer), bytes(blockhash)),
    )


def _sign_with_nacl(message: MessageV0, signers: list[Keypair]) -> bytes:
    data = to_bytes_versioned(message)
    signatures = [Signature.from_bytes(nacl.signing.SigningKey(bytes(k)[:32]).sign(data).signature) for k in signers]
    return bytes(VersionedTransaction.populate(message, signatures))


def build_with_solders_nacl(case: SettlementCase) -> list[bytes]:
    return ref.build(case.intents, case.mints, case.params, sign=_sign_with_nacl)[0]


def _spl_instructions(
    recipient: Pubkey, amount: int, create: bool, m: ref.Mint, payer: Pubkey, authority: Pubkey
) -> list[Instruction]:
    dest = spl.get_associated_token_address(recipient, m.mint, m.program)
    out = []
    if create:
        out.append(spl.create_idempotent_associated_token_account(payer, recipient, m.mint, m.program))
    out.append(
        spl.mint_to_checked(
            models.MintToCheckedParams(
                program_id=m.program,
                mint=m.mint,
                dest=dest,
                mint_authority=authority,
                amount=amount,
                decimals=m.decimals,
            )
        )
    )
    return out


def build_with_spl_helpers(case: SettlementCase) -> list[bytes]:
    return ref.build(case.intents, case.mints, case.params, make_instructions=_spl_instructions)[0]
