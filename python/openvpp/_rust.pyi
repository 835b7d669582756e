# Exact stub of the native extension built from rust/openvpp-py; checked by
# mypy.stubtest in `make lint`. Import through openvpp.native, never directly.

from collections.abc import Sequence
from typing import final

__version__: str
LAYOUT_DIGEST: str

@final
class ReadingOutcomes:
    """A batch's outcomes column by column; `devices` is the device table after."""

    @property
    def verdicts(self) -> bytes: ...
    @property
    def flags(self) -> bytes: ...
    @property
    def device(self) -> bytes: ...
    @property
    def import_wh(self) -> bytes: ...
    @property
    def export_wh(self) -> bytes: ...
    @property
    def covered_from(self) -> bytes: ...
    @property
    def missing(self) -> bytes: ...
    @property
    def devices(self) -> bytes: ...

# Storage rows in `_layout.READING_ROW` order: device, seq, interval_end,
# covered_from, import_wh, export_wh, flags, missing, payload, signature,
# chain_hash, received_at_us, batch_id.
ReadingRow = tuple[int, int, int, int, int, int, int, int, bytes, bytes, bytes, int, int]
# `_layout.STATE_ROW` values: has_baseline, last_seq, last_interval_end,
# import_wh, export_wh, head_hash, stored, updated_at_us.
_State = tuple[int, int, int, int, int, bytes, int, int]
# The values, then der_id and the stored count they were read with.
StateUpdate = tuple[int, int, int, int, int, bytes, int, int, str, int]
# der_id, then the values.
StateInsert = tuple[str, int, int, int, int, int, bytes, int, int]
# (index in the device table, packed state, chain head, stored count).
ChangedDevice = tuple[int, bytes, bytes, int]

@final
class StagedRows:
    @property
    def readings(self) -> list[ReadingRow]: ...
    @property
    def updates(self) -> list[StateUpdate]: ...
    @property
    def inserts(self) -> list[StateInsert]: ...
    @property
    def changed(self) -> list[ChangedDevice]: ...

@final
class PricedColumns:
    """Verdict codes, amounts (u64 LE), exact values (u128 LE), carries after (u128 LE)."""

    @property
    def verdicts(self) -> bytes: ...
    @property
    def amounts(self) -> bytes: ...
    @property
    def values(self) -> bytes: ...
    @property
    def carries(self) -> bytes: ...

@final
class BuiltSettlement:
    @property
    def transactions(self) -> list[bytes]: ...
    @property
    def signatures(self) -> bytes: ...
    @property
    def netted(self) -> bytes: ...
    @property
    def verdicts(self) -> bytes: ...
    @property
    def netted_index(self) -> bytes: ...
    @property
    def digest(self) -> bytes: ...

def verify_ed25519_batch(
    domain: bytes,
    public_keys: bytes,
    signatures: bytes,
    messages: bytes,
    offsets: list[int],
    threads: int = 0,
) -> bytes: ...
def verify_readings(
    payloads: bytes,
    signatures: bytes,
    devices: bytes,
    stored: bytes,
    now: int,
    max_future_skew_s: int,
    max_age_s: int,
) -> ReadingOutcomes: ...
def apply_reading_rules(
    payloads: bytes,
    signature_ok: bytes,
    devices: bytes,
    stored: bytes,
    now: int,
    max_future_skew_s: int,
    max_age_s: int,
) -> ReadingOutcomes: ...
def price_energy(items: bytes, segments: bytes, carries: bytes, divisor: int) -> PricedColumns: ...
def build_settlement(
    intents: bytes,
    mints: bytes,
    payer: bytes,
    authority: bytes,
    blockhash: bytes,
    compute_unit_price: int,
    compute_units_per_transfer: int,
    compute_units_per_ata: int,
    max_account_locks: int,
    lookup_table: bytes | None = None,
    lookup_addresses: bytes | None = None,
    memo: bytes | None = None,
    memo_index_base: int = 0,
    batch_payments: bool = True,
) -> BuiltSettlement: ...
def clear_key_cache() -> None: ...
def encode_payout_events(
    settlement_id: str, rows: list[tuple[int, str, str, str, int, int, int, str, int, list[int]]]
) -> list[bytes]: ...
def reading_keys(payloads: bytes) -> tuple[bytes, bytes]: ...
def verify_reading_signatures(payloads: bytes, signatures: bytes, parallel: bool = True) -> bytes: ...
def verify_transactions(transactions: Sequence[bytes]) -> bytes: ...
def sign_readings(seeds: bytes, payloads: bytes) -> bytes: ...
def stage_readings(
    payloads: bytes,
    signatures: bytes,
    results: ReadingOutcomes,
    before: bytes,
    heads: bytes,
    stored: list[int],
    existed: bytes,
    der_ids: list[str],
    numbers: list[int],
    batch_id: int,
    now_us: int,
) -> StagedRows: ...

_Instruction = tuple[bytes, list[tuple[bytes, bool, bool]], bytes]
_Metadata = tuple[bytes | None, bytes, str, str, str, list[tuple[str, str]]]

def use_case_mint(
    mint: bytes,
    mint_authority: bytes,
    metadata_authority: bytes,
    decimals: int,
    name: str,
    symbol: str,
    uri: str,
    fields: list[tuple[str, str]],
    interest_rate_bps: int | None = None,
) -> tuple[int, int, list[_Instruction]]: ...
def inspect_mint(
    data: bytes,
) -> tuple[int, int, bytes | None, bytes | None, list[int], _Metadata | None, int | None]: ...
