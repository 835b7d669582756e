# Exact stub of the native extension built from rust/openvpp-py; checked by
# mypy.stubtest in `make lint`. Import through openvpp.native, never directly.

from collections.abc import Sequence
from typing import Any

__version__: str

_Columns = tuple[bytes, bytes, bytes, bytes, bytes, bytes, bytes, bytes]

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
) -> _Columns: ...
def apply_reading_rules(
    payloads: bytes,
    signature_ok: bytes,
    devices: bytes,
    stored: bytes,
    now: int,
    max_future_skew_s: int,
    max_age_s: int,
) -> _Columns: ...
def price_energy(items: bytes, segments: bytes, carries: bytes, divisor: int) -> tuple[bytes, bytes, bytes, bytes]: ...
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
) -> tuple[list[bytes], bytes, bytes, bytes, bytes, bytes]: ...
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
    results: _Columns,
    before: bytes,
    heads: bytes,
    stored: list[int],
    existed: bytes,
    der_ids: list[str],
    numbers: list[int],
    batch_id: int,
    now_us: int,
) -> tuple[
    list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[int, bytes, bytes, int]]
]: ...

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
