"""Typed façade over the Rust extension; the only module that imports it.

The packed layouts and code tables come from the core, through the generated
`openvpp._layout`; none is re-typed here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import accumulate

from opentelemetry import trace

from openvpp import _layout, _rust
from openvpp.errors import InvalidArgument

if _rust.LAYOUT_DIGEST != _layout.DIGEST:
    # A stale build would pack and unpack records at the wrong offsets.
    raise ImportError(
        "openvpp._rust was built from other layouts than openvpp._layout describes; rebuild it (make build)"
    )

# The core's code tables, re-exported: callers import them from here.
SignatureVerdict = _layout.SignatureVerdict
ReadingVerdict = _layout.ReadingVerdict
ReadingFlag = _layout.ReadingFlag
PriceVerdict = _layout.PriceVerdict
SettlementVerdict = _layout.SettlementVerdict
TokenProgram = _layout.TokenProgram
PaymentMode = _layout.PaymentMode

PUBLIC_KEY_LEN = 32
SIGNATURE_LEN = 64

_tracer = trace.get_tracer("openvpp.native")


def clear_key_cache() -> None:
    """Forgets the decompressed public keys the native verifier keeps between batches."""
    _rust.clear_key_cache()


@dataclass(frozen=True, slots=True)
class SignedItem:
    """One message to verify: 32-byte key, 64-byte signature, the exact bytes."""

    public_key: bytes
    signature: bytes
    message: bytes


def verify_ed25519(domain: bytes, items: Sequence[SignedItem], *, threads: int = 0) -> list[SignatureVerdict]:
    """Strictly verifies `domain || message` for every item, in one native call.

    Raises `openvpp.errors.InvalidArgument` when a key or signature has the
    wrong length (the call is malformed, not the item).
    """
    for index, item in enumerate(items):
        # Checked here because packing would let a short key and a long one cancel out.
        if len(item.public_key) != PUBLIC_KEY_LEN or len(item.signature) != SIGNATURE_LEN:
            raise InvalidArgument(
                f"item {index}: public key must be {PUBLIC_KEY_LEN} bytes and signature "
                f"{SIGNATURE_LEN} bytes, got {len(item.public_key)} and {len(item.signature)}",
                "MALFORMED_BATCH",
            )
    messages = [item.message for item in items]
    offsets = [0, *accumulate(len(m) for m in messages)]
    with _tracer.start_as_current_span("native.verify_ed25519") as span:
        codes = _rust.verify_ed25519_batch(
            domain,
            b"".join(item.public_key for item in items),
            b"".join(item.signature for item in items),
            b"".join(messages),
            offsets,
            threads,
        )
        verdicts = [SignatureVerdict(code) for code in codes]
        span.set_attribute("openvpp.batch.size", len(items))
        span.set_attribute("openvpp.batch.rejected", sum(1 for v in verdicts if v is not SignatureVerdict.VALID))
    return verdicts


# -- readings -------------------------------------------------------------------

READING = _layout.READING
READING_LEN = READING.size
DEVICE_STATE = _layout.DEVICE_STATE
DEVICE_STATE_LEN = DEVICE_STATE.size
DEVICE_STATE_OFFSETS = _layout.DEVICE_STATE_OFFSETS
READING_OFFSETS = _layout.READING_OFFSETS
STORED = _layout.STORED
STORED_READING_LEN = STORED.size
READING_DOMAIN = b"openvpp/reading/v1"


@dataclass(frozen=True, slots=True)
class DeviceState:
    """What the settlement service holds per device between batches."""

    key: bytes
    active: bool = True
    has_baseline: bool = False
    last_seq: int = 0
    last_interval_end: int = 0
    import_wh: int = 0
    export_wh: int = 0
    max_import_w: int = 0
    max_export_w: int = 0

    def pack(self) -> bytes:
        return DEVICE_STATE.pack(
            self.key,
            self.active,
            self.has_baseline,
            self.last_seq,
            self.last_interval_end,
            self.import_wh,
            self.export_wh,
            self.max_import_w,
            self.max_export_w,
        )

    @classmethod
    def unpack_all(cls, packed: bytes) -> list[DeviceState]:
        return [cls(*fields) for fields in DEVICE_STATE.iter_unpack(packed)]


@dataclass(frozen=True, slots=True)
class ReadingResults:
    """One batch's outcomes, column by column (index i is reading i)."""

    verdicts: bytes
    flags: bytes
    device: memoryview
    import_wh: memoryview
    export_wh: memoryview
    covered_from: memoryview
    missing: memoryview
    devices: bytes
    # As the Rust core returned them, for stage_readings.
    native: _rust.ReadingOutcomes

    @classmethod
    def of(cls, out: _rust.ReadingOutcomes) -> ReadingResults:
        return cls(
            out.verdicts,
            out.flags,
            memoryview(out.device).cast("I"),
            memoryview(out.import_wh).cast("Q"),
            memoryview(out.export_wh).cast("Q"),
            memoryview(out.covered_from).cast("q"),
            memoryview(out.missing).cast("Q"),
            out.devices,
            out,
        )

    def verdict(self, i: int) -> ReadingVerdict:
        return ReadingVerdict(self.verdicts[i])

    @property
    def accepted(self) -> int:
        return self.verdicts.count(ReadingVerdict.ACCEPTED) + self.verdicts.count(ReadingVerdict.SEQ_GAP)


def verify_transactions(transactions: Sequence[bytes]) -> list[bool]:
    """Whether each wire transaction carries a valid signature of every
    required signer over its message, checked as one batch with the GIL
    released. A transaction whose shape the check cannot read passes: the
    chain's own decoding and sanitising refuse it with the cluster's error."""
    return [ok == 1 for ok in _rust.verify_transactions(transactions)]


def verify_reading_signatures(payloads: bytes, signatures: bytes, *, parallel: bool = True) -> bytes:
    """One byte per reading, 1 when its signature verifies (GIL released: run
    it in a thread). `parallel=False` keeps the work on the calling thread
    instead of spreading it over every core."""
    with _tracer.start_as_current_span("native.verify_reading_signatures") as span:
        ok = _rust.verify_reading_signatures(payloads, signatures, parallel)
        span.set_attribute("openvpp.batch.size", len(ok))
        span.set_attribute("openvpp.batch.rejected", ok.count(0))
    return ok


def sign_readings(seeds: bytes, payloads: bytes) -> bytes:
    """n x 64 signatures: each payload signed by the seed (k x 32) of its device key, on all cores.

    For simulated fleets (the demo, benchmarks); a real device signs its own readings."""
    return _rust.sign_readings(seeds, payloads)


def reading_keys(payloads: bytes) -> dict[bytes, int]:
    """The batch's distinct device keys (first-seen order) and the lowest seq of each."""
    keys, seqs = _rust.reading_keys(payloads)
    low = memoryview(seqs).cast("Q")
    return {keys[i * 32 : i * 32 + 32]: low[i] for i in range(len(low))}


# What storing a batch writes: rows in `READING_ROW` order, state updates
# (`STATE_ROW` values, der_id, stored count read), inserts (der_id, values)
# and the changed devices (see `_rust.StagedRows`).
StagedBatch = _rust.StagedRows
READING_ROW = _layout.READING_ROW
STATE_ROW = _layout.STATE_ROW


def stage_readings(
    payloads: bytes,
    signatures: bytes,
    results: ReadingResults,
    table: DeviceTable,
    *,
    batch_id: int,
    now_us: int,
) -> StagedBatch:
    """Extends each device's hash chain over the batch's accepted readings
    (link = SHA-256(previous link || payload || signature)) and builds the
    rows that store them and the device states they change."""
    with _tracer.start_as_current_span("native.stage_readings") as span:
        staged = _rust.stage_readings(
            payloads,
            signatures,
            results.native,
            table.packed,
            table.heads,
            table.stored,
            table.existed,
            table.der_ids,
            table.numbers,
            batch_id,
            now_us,
        )
        span.set_attribute("openvpp.batch.size", len(results.verdicts))
    return staged


@dataclass(frozen=True, slots=True)
class DeviceTable:
    """The devices a batch may touch, column by column in one order: packed
    states (the rules' input), chain heads (32 bytes each), stored counts,
    whether a state row exists (one byte each), der_ids (keying state rows)
    and registry numbers (keying readings)."""

    packed: bytes
    heads: bytes
    stored: list[int]
    existed: bytes
    der_ids: list[str]
    numbers: list[int]


def verify_readings(
    payloads: bytes,
    signatures: bytes,
    devices: bytes,
    stored: bytes,
    *,
    now: int,
    max_future_skew_s: int,
    max_age_s: int,
) -> ReadingResults:
    """Verifies a packed batch of v1 readings (n x 72-byte payloads, n x 64-byte signatures).

    `devices` is the packed table of `DeviceState`s the readings may belong
    to; `stored` packs (key, seq, sha256(payload)) of readings already kept,
    so replays are answered as duplicates. Raises InvalidArgument when the
    buffers are malformed.
    """
    return _traced_readings(
        "native.verify_readings",
        lambda: _rust.verify_readings(payloads, signatures, devices, stored, now, max_future_skew_s, max_age_s),
    )


def apply_reading_rules(
    payloads: bytes,
    signature_ok: bytes,
    devices: bytes,
    stored: bytes,
    *,
    now: int,
    max_future_skew_s: int,
    max_age_s: int,
) -> ReadingResults:
    """The reading rules for a batch whose signatures were verified already."""
    return _traced_readings(
        "native.apply_reading_rules",
        lambda: _rust.apply_reading_rules(payloads, signature_ok, devices, stored, now, max_future_skew_s, max_age_s),
    )


def _traced_readings(span_name: str, call: Callable[[], _rust.ReadingOutcomes]) -> ReadingResults:
    with _tracer.start_as_current_span(span_name) as span:
        results = ReadingResults.of(call())
        span.set_attribute("openvpp.batch.size", len(results.verdicts))
        span.set_attribute("openvpp.batch.rejected", len(results.verdicts) - results.accepted)
    return results


# -- pricing --------------------------------------------------------------------

_PRICE_ITEM = _layout.PRICE_ITEM
_SEGMENT = _layout.PRICE_SEGMENT
DAY_SECONDS = 86_400


@dataclass(frozen=True, slots=True)
class PriceItem:
    """Energy of one account over [start, end) (UTC seconds; the length divides the day)."""

    account: int
    start: int
    end: int
    energy_wh: int

    def pack(self) -> bytes:
        return _PRICE_ITEM.pack(self.account, self.start, self.end, self.energy_wh)


@dataclass(frozen=True, slots=True)
class PriceSegment:
    """A rate per kWh valid on [start, end), UTC seconds."""

    start: int
    end: int
    rate: int

    def pack(self) -> bytes:
        return _SEGMENT.pack(self.start, self.end, self.rate)


@dataclass(frozen=True, slots=True)
class PricedBatch:
    verdicts: bytes
    amounts: memoryview
    # Each item's exact value in units of 1 / denominator (0 unless priced).
    values: list[int]
    carries: list[int]
    denominator: int

    def verdict(self, i: int) -> PriceVerdict:
        return PriceVerdict(self.verdicts[i])


def _u128s(packed: bytes) -> list[int]:
    return [int.from_bytes(packed[i : i + 16], "little") for i in range(0, len(packed), 16)]


def price_energy(items: bytes, segments: bytes, carries: Sequence[int], divisor: int) -> PricedBatch:
    """Exact credits for packed `PriceItem`s against packed sorted `PriceSegment`s.

    amount = energy_wh x sum(overlap_s x rate) / (duration_s x 1000 x divisor),
    rounded down, the remainder carried in `carries` (one per account, in
    units of 1 / (86 400 x 1000 x divisor)) so totals are exact.
    """
    packed_carries = b"".join(c.to_bytes(16, "little") for c in carries)
    with _tracer.start_as_current_span("native.price_energy") as span:
        out = _rust.price_energy(items, segments, packed_carries, divisor)
        span.set_attribute("openvpp.batch.size", len(out.verdicts))
        span.set_attribute("openvpp.batch.rejected", len(out.verdicts) - out.verdicts.count(PriceVerdict.PRICED))
    return PricedBatch(
        out.verdicts,
        memoryview(out.amounts).cast("Q"),
        _u128s(out.values),
        _u128s(out.carries),
        DAY_SECONDS * 1000 * divisor,
    )


# -- settlement building --------------------------------------------------------

_INTENT = _layout.INTENT
_MINT_INFO = _layout.MINT_INFO
_NETTED = _layout.NETTED
INTENT_LEN = _INTENT.size
MINT_INFO_LEN = _MINT_INFO.size
MAX_TRANSACTION_SIZE = 1232


@dataclass(frozen=True, slots=True)
class PaymentIntent:
    """Pay `amount` base units of `mint` to the wallet `recipient` (32-byte keys)."""

    recipient: bytes
    mint: bytes
    amount: int
    create_ata: bool = False

    def pack(self) -> bytes:
        return _INTENT.pack(self.recipient, self.mint, self.amount, self.create_ata)


def pack_intents(intents: Iterable[tuple[bytes, bytes, int, bool]]) -> bytes:
    """(recipient, mint, amount, create_ata) tuples packed as `PaymentIntent`s, without the objects."""
    pack = _INTENT.pack
    return b"".join(pack(*intent) for intent in intents)


@dataclass(frozen=True, slots=True)
class MintPayment:
    """How credits in `mint` are paid: from `source` (TRANSFER) or minted (MINT_TO)."""

    mint: bytes
    program: TokenProgram
    decimals: int
    mode: PaymentMode
    source: bytes = bytes(32)

    def pack(self) -> bytes:
        return _MINT_INFO.pack(self.mint, self.program, self.decimals, self.mode, self.source)


@dataclass(frozen=True, slots=True)
class NettedPayment:
    recipient: bytes
    mint: bytes
    amount: int
    create_ata: bool
    transaction: int


@dataclass(frozen=True, slots=True)
class SettlementBatch:
    """Signed transactions and the bookkeeping that maps intents onto them.

    `netted` and `signatures` decode on access, so callers that only send
    the transactions pay nothing for them.
    """

    transactions: list[bytes]
    signature_bytes: bytes
    netted_bytes: bytes
    verdicts: bytes
    netted_index: memoryview
    digest: bytes

    @property
    def signatures(self) -> list[bytes]:
        return [self.signature_bytes[i : i + 64] for i in range(0, len(self.signature_bytes), 64)]

    @property
    def netted(self) -> list[NettedPayment]:
        return [NettedPayment(*fields) for fields in self.netted_fields()]

    def netted_fields(self) -> list[tuple[bytes, bytes, int, bool, int]]:
        """`netted` as plain tuples in `NettedPayment`'s field order: cheaper by the ten thousand."""
        return list(_NETTED.iter_unpack(self.netted_bytes))

    def verdict(self, i: int) -> SettlementVerdict:
        return SettlementVerdict(self.verdicts[i])


@dataclass(frozen=True, slots=True)
class SettlementParams:
    payer: bytes
    authority: bytes
    blockhash: bytes
    compute_unit_price: int = 0
    compute_units_per_transfer: int = 10_000
    compute_units_per_ata: int = 30_000
    max_account_locks: int = 64
    lookup_table: bytes | None = None
    lookup_addresses: Sequence[bytes] = ()
    # Written into each transaction as `memo:NNNNNN` (index from memo_index_base).
    memo: bytes | None = None
    memo_index_base: int = 0
    # Each token program's payments in one `Batch` instruction per transaction.
    batch_payments: bool = True


def build_settlement(intents: bytes, mints: bytes, params: SettlementParams) -> SettlementBatch:
    """Nets packed `PaymentIntent`s per (recipient, mint), packs them into as few
    signed v0 transactions as fit 1,232 bytes and the account-lock limit.

    `payer` and `authority` are 64-byte Solana keypairs (secret || public).
    """
    with _tracer.start_as_current_span("native.build_settlement") as span:
        built = _rust.build_settlement(
            intents,
            mints,
            params.payer,
            params.authority,
            params.blockhash,
            params.compute_unit_price,
            params.compute_units_per_transfer,
            params.compute_units_per_ata,
            params.max_account_locks,
            params.lookup_table,
            b"".join(params.lookup_addresses) if params.lookup_table else None,
            params.memo,
            params.memo_index_base,
            params.batch_payments,
        )
        verdicts = built.verdicts
        span.set_attribute("openvpp.batch.size", len(verdicts))
        span.set_attribute("openvpp.batch.rejected", len(verdicts) - verdicts.count(SettlementVerdict.INCLUDED))
        span.set_attribute("openvpp.batch.transactions", len(built.transactions))
    return SettlementBatch(
        built.transactions,
        built.signatures,
        built.netted,
        verdicts,
        memoryview(built.netted_index).cast("I"),
        built.digest,
    )


# (payout id, program, wallet, mint, amount, credits, state, signature, created at µs)
PayoutEventRow = tuple[int, str, str, str, int, int, int, str, int, list[int]]


def encode_payout_events(settlement_id: str, rows: list[PayoutEventRow]) -> list[bytes]:
    """Serialised `SettlementEvent`s of one settlement's payouts, one per row;
    the state (SENT, CONFIRMED, FAILED) picks the event's arm. Without cursor
    and time, as the event log stores bodies."""
    return _rust.encode_payout_events(settlement_id, rows)


# -- use-case mints -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RawInstruction:
    """An instruction as (program, [(account, signer, writable)], data), 32-byte keys."""

    program: bytes
    accounts: list[tuple[bytes, bool, bool]]
    data: bytes


@dataclass(frozen=True, slots=True)
class UseCaseMintPlan:
    """`space` to allocate, `total_len` to fund for rent, then the Token-2022 instructions."""

    space: int
    total_len: int
    instructions: list[RawInstruction]


def use_case_mint(
    *,
    mint: bytes,
    mint_authority: bytes,
    metadata_authority: bytes,
    decimals: int,
    name: str,
    symbol: str,
    uri: str,
    fields: Sequence[tuple[str, str]],
    interest_rate_bps: int | None,
) -> UseCaseMintPlan:
    space, total, instructions = _rust.use_case_mint(
        mint, mint_authority, metadata_authority, decimals, name, symbol, uri, list(fields), interest_rate_bps
    )
    return UseCaseMintPlan(space, total, [RawInstruction(*ix) for ix in instructions])


@dataclass(frozen=True, slots=True)
class TokenMetadata:
    update_authority: bytes | None
    mint: bytes
    name: str
    symbol: str
    uri: str
    fields: list[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class MintView:
    """A mint read from its account data; `extensions` are Token-2022 extension type codes."""

    supply: int
    decimals: int
    mint_authority: bytes | None
    freeze_authority: bytes | None
    extensions: list[int]
    metadata: TokenMetadata | None
    interest_rate_bps: int | None


def inspect_mint(data: bytes) -> MintView:
    """Decodes a SPL Token or Token-2022 mint; InvalidArgument when `data` is not one."""
    supply, decimals, authority, freeze, extensions, metadata, rate = _rust.inspect_mint(data)
    return MintView(
        supply, decimals, authority, freeze, extensions, TokenMetadata(*metadata) if metadata else None, rate
    )
