//! Bindings only: borrow the input buffers, run openvpp-core with the GIL
//! released, convert back. Errors become the Python classes of
//! `openvpp.errors`, in one place.

use openvpp_core::events;
use openvpp_core::pricing;
use openvpp_core::readings::{self, Outcome, Params};
use openvpp_core::settlement;
use openvpp_core::signature::{self, Messages, PackedMessages};
use openvpp_core::wire;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;
use pyo3::types::{PyBytes, PyList};
use solana_hash::Hash;
use solana_keypair::Keypair;
use solana_message::AddressLookupTableAccount;
use solana_pubkey::Pubkey;

mod ingest;
mod tokens;

// Batches allocate megabytes per call; the system allocator returns those
// pages to the kernel each time and faults them back in on the next call.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pyo3::import_exception!(openvpp.errors, InvalidArgument);
pyo3::import_exception!(openvpp.errors, Unavailable);
pyo3::import_exception!(openvpp.errors, Internal);

/// The one mapping of core errors onto `openvpp.errors`.
pub(crate) fn to_py(err: openvpp_core::Error) -> PyErr {
    match err {
        openvpp_core::Error::MalformedBatch(why) => InvalidArgument::new_err((why, "MALFORMED_BATCH")),
        openvpp_core::Error::Overflow(why) => InvalidArgument::new_err((why, "ARITHMETIC_OVERFLOW")),
        openvpp_core::Error::Unavailable(why) => Unavailable::new_err((why, "NATIVE_UNAVAILABLE")),
        openvpp_core::Error::Internal(why) => Internal::new_err((why, "NATIVE_INVARIANT")),
    }
}

/// Core work with the GIL released and its error mapped: every batch binding
/// goes through here, so none can forget either.
pub(crate) fn run<T: Send>(
    py: Python<'_>,
    work: impl FnOnce() -> Result<T, openvpp_core::Error> + Send,
) -> PyResult<T> {
    py.detach(work).map_err(to_py)
}

/// Strict ed25519 verification of a packed batch; one verdict code per item.
///
/// Message `i` is `messages[offsets[i]:offsets[i+1]]`, verified as
/// `domain || message`.
///
/// `threads` > 0 runs the batch on a pool of exactly that many threads (for
/// measuring scaling); 0 uses the shared pool sized to the machine.
#[pyfunction]
#[pyo3(signature = (domain, public_keys, signatures, messages, offsets, threads=0))]
fn verify_ed25519_batch<'py>(
    py: Python<'py>,
    domain: PyBackedBytes,
    public_keys: PyBackedBytes,
    signatures: PyBackedBytes,
    messages: PyBackedBytes,
    offsets: Vec<u32>,
    threads: usize,
) -> PyResult<Bound<'py, PyBytes>> {
    let verify = || {
        signature::verify_batch(
            &domain,
            &public_keys,
            &signatures,
            Messages::Packed(PackedMessages { data: &messages, offsets: &offsets }),
        )
    };
    let verdicts = run(py, || {
        if threads == 0 {
            return verify();
        }
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .map_err(|e| openvpp_core::Error::Unavailable(format!("thread pool: {e}")))?
            .install(verify)
    })?;
    let codes: Vec<u8> = verdicts.into_iter().map(|v| v.code()).collect();
    Ok(PyBytes::new(py, &codes))
}

/// A batch's outcomes column by column: verdict codes, flags, device index
/// (u32 LE), import Wh, export Wh (u64 LE), covered-from (i64 LE), missing
/// (u64 LE), then the updated device table.
#[pyclass(frozen, get_all, module = "openvpp._rust")]
pub(crate) struct ReadingOutcomes {
    pub(crate) verdicts: Py<PyBytes>,
    pub(crate) flags: Py<PyBytes>,
    pub(crate) device: Py<PyBytes>,
    pub(crate) import_wh: Py<PyBytes>,
    pub(crate) export_wh: Py<PyBytes>,
    pub(crate) covered_from: Py<PyBytes>,
    pub(crate) missing: Py<PyBytes>,
    pub(crate) devices: Py<PyBytes>,
}

fn outcomes(py: Python<'_>, outcomes: &[Outcome], devices: &[u8]) -> ReadingOutcomes {
    let n = outcomes.len();
    let mut verdicts = Vec::with_capacity(n);
    let mut flags = Vec::with_capacity(n);
    let mut device = Vec::with_capacity(n.saturating_mul(4));
    let mut import = Vec::with_capacity(n.saturating_mul(8));
    let mut export = Vec::with_capacity(n.saturating_mul(8));
    let mut covered = Vec::with_capacity(n.saturating_mul(8));
    let mut missing = Vec::with_capacity(n.saturating_mul(8));
    for o in outcomes {
        verdicts.push(o.verdict as u8);
        flags.push(o.flags);
        device.extend_from_slice(&o.device.to_le_bytes());
        import.extend_from_slice(&o.import_wh.to_le_bytes());
        export.extend_from_slice(&o.export_wh.to_le_bytes());
        covered.extend_from_slice(&o.covered_from.to_le_bytes());
        missing.extend_from_slice(&o.missing.to_le_bytes());
    }
    let bytes = |b: &[u8]| PyBytes::new(py, b).unbind();
    ReadingOutcomes {
        verdicts: bytes(&verdicts),
        flags: bytes(&flags),
        device: bytes(&device),
        import_wh: bytes(&import),
        export_wh: bytes(&export),
        covered_from: bytes(&covered),
        missing: bytes(&missing),
        devices: bytes(devices),
    }
}

/// Verifies the signatures of a batch of v1 readings, then applies the
/// measurement rules (see openvpp-core `readings`).
#[pyfunction]
#[pyo3(signature = (payloads, signatures, devices, stored, now, max_future_skew_s, max_age_s))]
#[allow(clippy::too_many_arguments, reason = "a flat, typed signature is the clearest FFI surface")]
fn verify_readings<'py>(
    py: Python<'py>,
    payloads: PyBackedBytes,
    signatures: PyBackedBytes,
    devices: PyBackedBytes,
    stored: PyBackedBytes,
    now: i64,
    max_future_skew_s: i64,
    max_age_s: i64,
) -> PyResult<ReadingOutcomes> {
    let params = Params { now, max_future_skew_s, max_age_s };
    let (found, updated) = run(py, || readings::verify(&payloads, &signatures, &devices, &stored, params))?;
    Ok(outcomes(py, &found, &updated))
}

/// Rule 2 alone: one byte per reading, 1 when its signature verifies.
/// `parallel=False` keeps the work on the calling thread.
#[pyfunction]
#[pyo3(signature = (payloads, signatures, parallel=true))]
fn verify_reading_signatures<'py>(
    py: Python<'py>,
    payloads: PyBackedBytes,
    signatures: PyBackedBytes,
    parallel: bool,
) -> PyResult<Bound<'py, PyBytes>> {
    let spread = if parallel { signature::Spread::Pool } else { signature::Spread::Caller };
    let ok = run(py, || readings::verify_signatures_on(&payloads, &signatures, spread))?;
    let bytes: Vec<u8> = ok.iter().map(|b| u8::from(*b)).collect();
    Ok(PyBytes::new(py, &bytes))
}

/// One byte per wire transaction: 1 when its signatures verify (or its shape
/// is left to the chain to refuse), 0 when one of them does not.
#[pyfunction]
fn verify_transactions<'py>(
    py: Python<'py>,
    transactions: Vec<PyBackedBytes>,
) -> PyResult<Bound<'py, PyBytes>> {
    let ok = run(py, || {
        let raws: Vec<&[u8]> = transactions.iter().map(|t| &t[..]).collect();
        wire::verify_transactions(&raws)
    })?;
    let bytes: Vec<u8> = ok.iter().map(|b| u8::from(*b)).collect();
    Ok(PyBytes::new(py, &bytes))
}

/// Signs each reading with the seed of its device (simulators only).
#[pyfunction]
fn sign_readings<'py>(
    py: Python<'py>,
    seeds: PyBackedBytes,
    payloads: PyBackedBytes,
) -> PyResult<Bound<'py, PyBytes>> {
    let signed = run(py, || readings::sign(&seeds, &payloads))?;
    Ok(PyBytes::new(py, &signed))
}

/// The measurement rules alone, for readings whose signatures were checked
/// already: `signature_ok` holds one byte per reading, non-zero when valid.
#[pyfunction]
#[pyo3(signature = (payloads, signature_ok, devices, stored, now, max_future_skew_s, max_age_s))]
#[allow(clippy::too_many_arguments, reason = "a flat, typed signature is the clearest FFI surface")]
fn apply_reading_rules<'py>(
    py: Python<'py>,
    payloads: PyBackedBytes,
    signature_ok: PyBackedBytes,
    devices: PyBackedBytes,
    stored: PyBackedBytes,
    now: i64,
    max_future_skew_s: i64,
    max_age_s: i64,
) -> PyResult<ReadingOutcomes> {
    let params = Params { now, max_future_skew_s, max_age_s };
    let (found, updated) = run(py, || {
        let ok: Vec<bool> = signature_ok.iter().map(|b| *b != 0).collect();
        readings::apply_rules(&payloads, &ok, &devices, &stored, params)
    })?;
    Ok(outcomes(py, &found, &updated))
}

/// The distinct device keys of a batch (32 bytes each, first-seen order) and
/// the lowest seq of each (u64 LE).
#[pyfunction]
fn reading_keys<'py>(
    py: Python<'py>,
    payloads: PyBackedBytes,
) -> PyResult<(Bound<'py, PyBytes>, Bound<'py, PyBytes>)> {
    let found = run(py, || readings::distinct_keys(&payloads))?;
    let keys: Vec<u8> = found.iter().flat_map(|(k, _)| k.iter().copied()).collect();
    let seqs: Vec<u8> = found.iter().flat_map(|(_, s)| s.to_le_bytes()).collect();
    Ok((PyBytes::new(py, &keys), PyBytes::new(py, &seqs)))
}

/// A priced batch: verdict codes, amounts (u64 LE), exact values (u128 LE
/// per item) and the carries after (u128 LE per account).
#[pyclass(frozen, get_all, module = "openvpp._rust")]
struct PricedColumns {
    verdicts: Py<PyBytes>,
    amounts: Py<PyBytes>,
    values: Py<PyBytes>,
    carries: Py<PyBytes>,
}

/// Prices packed energy items against packed UTC segments.
#[pyfunction]
#[pyo3(signature = (items, segments, carries, divisor))]
fn price_energy(
    py: Python<'_>,
    items: PyBackedBytes,
    segments: PyBackedBytes,
    carries: PyBackedBytes,
    divisor: u64,
) -> PyResult<PricedColumns> {
    let priced = run(py, || pricing::price(&items, &segments, &carries, divisor))?;
    let verdicts: Vec<u8> = priced.verdicts.iter().map(|v| *v as u8).collect();
    let amounts: Vec<u8> = priced.amounts.iter().flat_map(|a| a.to_le_bytes()).collect();
    let values: Vec<u8> = priced.values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let carries: Vec<u8> = priced.carries.iter().flat_map(|c| c.to_le_bytes()).collect();
    Ok(PricedColumns {
        verdicts: PyBytes::new(py, &verdicts).unbind(),
        amounts: PyBytes::new(py, &amounts).unbind(),
        values: PyBytes::new(py, &values).unbind(),
        carries: PyBytes::new(py, &carries).unbind(),
    })
}

/// A built settlement: signed transactions, signatures n×64, netted records
/// (`NETTED`), verdict codes, netted index per intent (u32 LE), batch digest.
#[pyclass(frozen, get_all, module = "openvpp._rust")]
struct BuiltSettlement {
    transactions: Py<PyList>,
    signatures: Py<PyBytes>,
    netted: Py<PyBytes>,
    verdicts: Py<PyBytes>,
    netted_index: Py<PyBytes>,
    digest: Py<PyBytes>,
}

/// Nets packed intents, packs them into v0 transactions and signs them.
#[pyfunction]
#[pyo3(signature = (
    intents, mints, payer, authority, blockhash, compute_unit_price, compute_units_per_transfer,
    compute_units_per_ata, max_account_locks, lookup_table=None, lookup_addresses=None, memo=None,
    memo_index_base=0, batch_payments=true,
))]
#[allow(clippy::too_many_arguments, reason = "a flat, typed signature is the clearest FFI surface")]
fn build_settlement(
    py: Python<'_>,
    intents: PyBackedBytes,
    mints: PyBackedBytes,
    payer: PyBackedBytes,
    authority: PyBackedBytes,
    blockhash: PyBackedBytes,
    compute_unit_price: u64,
    compute_units_per_transfer: u32,
    compute_units_per_ata: u32,
    max_account_locks: usize,
    lookup_table: Option<PyBackedBytes>,
    lookup_addresses: Option<PyBackedBytes>,
    memo: Option<PyBackedBytes>,
    memo_index_base: u32,
    batch_payments: bool,
) -> PyResult<BuiltSettlement> {
    let keypair = |what: &str, b: &[u8]| {
        Keypair::try_from(b)
            .map_err(|e| InvalidArgument::new_err((format!("{what}: {e}"), "INVALID_KEYPAIR")))
    };
    let key32 = |what: &str, b: &[u8]| -> PyResult<[u8; 32]> {
        b.try_into()
            .map_err(|_| InvalidArgument::new_err((format!("{what} must be 32 bytes"), "INVALID_LENGTH")))
    };
    let table = match lookup_table {
        Some(key) => {
            let addresses = lookup_addresses.as_deref().unwrap_or_default();
            if !addresses.len().is_multiple_of(32) {
                return Err(InvalidArgument::new_err((
                    "lookup addresses must be 32-byte keys",
                    "INVALID_LENGTH",
                )));
            }
            Some(AddressLookupTableAccount {
                key: Pubkey::new_from_array(key32("lookup_table", &key)?),
                addresses: addresses
                    .chunks_exact(32)
                    .map(|c| key32("lookup address", c).map(Pubkey::new_from_array))
                    .collect::<PyResult<_>>()?,
            })
        }
        None => None,
    };
    let config = settlement::Config {
        payer: keypair("payer", &payer)?,
        authority: keypair("authority", &authority)?,
        blockhash: Hash::new_from_array(key32("blockhash", &blockhash)?),
        compute_unit_price,
        compute_units_per_transfer,
        compute_units_per_ata,
        max_account_locks,
        lookup_table: table,
        memo: memo.map(|m| m.to_vec()),
        memo_index_base,
        batch_payments,
    };
    let batch = run(py, || settlement::build(&intents, &mints, &config))?;
    let transactions = PyList::new(py, batch.transactions.iter().map(|t| PyBytes::new(py, t)))?;
    let signatures: Vec<u8> = batch.signatures.concat();
    let netted = settlement::encode_netted(&batch.netted);
    let verdicts: Vec<u8> = batch.verdicts.iter().map(|(v, _)| *v as u8).collect();
    let members: Vec<u8> = batch.verdicts.iter().flat_map(|(_, i)| i.to_le_bytes()).collect();
    Ok(BuiltSettlement {
        transactions: transactions.unbind(),
        signatures: PyBytes::new(py, &signatures).unbind(),
        netted: PyBytes::new(py, &netted).unbind(),
        verdicts: PyBytes::new(py, &verdicts).unbind(),
        netted_index: PyBytes::new(py, &members).unbind(),
        digest: PyBytes::new(py, &batch.digest).unbind(),
    })
}

/// (payout id, program, wallet, mint, amount, credits, state, signature,
/// created at in microseconds), as the payouts table holds it.
type PayoutTuple = (u64, String, String, String, u64, u32, i32, String, i64, Vec<u64>);

/// Serialised payout events of one settlement, one per row (see openvpp-core
/// `events`).
#[pyfunction]
fn encode_payout_events<'py>(
    py: Python<'py>,
    settlement_id: &str,
    rows: Vec<PayoutTuple>,
) -> PyResult<Bound<'py, PyList>> {
    let rows = rows
        .into_iter()
        .map(
            |(
                payout_id,
                program_id,
                wallet,
                mint,
                amount,
                credits,
                state,
                signature,
                created_at_us,
                credit_ids,
            )| {
                events::PayoutRow {
                    payout_id,
                    program_id,
                    wallet,
                    mint,
                    amount,
                    credits,
                    state,
                    signature,
                    created_at_us,
                    credit_ids,
                }
            },
        )
        .collect();
    let bodies = run(py, || events::encode_payout_events(settlement_id, rows))?;
    PyList::new(py, bodies.iter().map(|b| PyBytes::new(py, b)))
}

/// Forgets the decompressed public keys kept between batches.
#[pyfunction]
fn clear_key_cache() {
    signature::clear_key_cache();
}

#[pymodule]
fn _rust(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(verify_ed25519_batch, m)?)?;
    m.add_function(wrap_pyfunction!(verify_readings, m)?)?;
    m.add_function(wrap_pyfunction!(apply_reading_rules, m)?)?;
    m.add_function(wrap_pyfunction!(price_energy, m)?)?;
    m.add_function(wrap_pyfunction!(build_settlement, m)?)?;
    m.add_function(wrap_pyfunction!(ingest::stage_readings, m)?)?;
    m.add_function(wrap_pyfunction!(reading_keys, m)?)?;
    m.add_function(wrap_pyfunction!(verify_reading_signatures, m)?)?;
    m.add_function(wrap_pyfunction!(sign_readings, m)?)?;
    m.add_function(wrap_pyfunction!(clear_key_cache, m)?)?;
    m.add_function(wrap_pyfunction!(encode_payout_events, m)?)?;
    m.add_function(wrap_pyfunction!(verify_transactions, m)?)?;
    m.add_function(wrap_pyfunction!(tokens::use_case_mint, m)?)?;
    m.add_function(wrap_pyfunction!(tokens::inspect_mint, m)?)?;
    m.add_class::<ReadingOutcomes>()?;
    m.add_class::<PricedColumns>()?;
    m.add_class::<BuiltSettlement>()?;
    m.add_class::<ingest::StagedRows>()?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    // openvpp.native compares it with the generated `_layout.DIGEST`.
    m.add("LAYOUT_DIGEST", openvpp_core::layout::digest())?;
    Ok(())
}
