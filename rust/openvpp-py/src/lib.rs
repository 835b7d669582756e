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

pub(crate) struct CoreError(pub(crate) openvpp_core::Error);

impl From<CoreError> for PyErr {
    fn from(err: CoreError) -> PyErr {
        match err.0 {
            openvpp_core::Error::MalformedBatch(why) => InvalidArgument::new_err((why, "MALFORMED_BATCH")),
            openvpp_core::Error::Overflow(why) => InvalidArgument::new_err((why, "ARITHMETIC_OVERFLOW")),
            openvpp_core::Error::Unavailable(why) => Unavailable::new_err((why, "NATIVE_UNAVAILABLE")),
        }
    }
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
    let run = || {
        signature::verify_batch(
            &domain,
            &public_keys,
            &signatures,
            Messages::Packed(PackedMessages { data: &messages, offsets: &offsets }),
        )
    };
    let verdicts = py
        .detach(|| {
            if threads == 0 {
                return run();
            }
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .map_err(|e| openvpp_core::Error::Unavailable(format!("thread pool: {e}")))?
                .install(run)
        })
        .map_err(CoreError)?;
    let codes: Vec<u8> = verdicts.into_iter().map(|v| v.code()).collect();
    Ok(PyBytes::new(py, &codes))
}

/// Column-wise outcomes: verdict codes, flags, device index (u32 LE),
/// import Wh, export Wh (u64 LE), covered-from (i64 LE), missing (u64 LE),
/// then the updated device table.
type Columns<'py> = (
    Bound<'py, PyBytes>,
    Bound<'py, PyBytes>,
    Bound<'py, PyBytes>,
    Bound<'py, PyBytes>,
    Bound<'py, PyBytes>,
    Bound<'py, PyBytes>,
    Bound<'py, PyBytes>,
    Bound<'py, PyBytes>,
);

fn columns<'py>(py: Python<'py>, outcomes: &[Outcome], devices: &[u8]) -> Columns<'py> {
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
    (
        PyBytes::new(py, &verdicts),
        PyBytes::new(py, &flags),
        PyBytes::new(py, &device),
        PyBytes::new(py, &import),
        PyBytes::new(py, &export),
        PyBytes::new(py, &covered),
        PyBytes::new(py, &missing),
        PyBytes::new(py, devices),
    )
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
) -> PyResult<Columns<'py>> {
    let params = Params { now, max_future_skew_s, max_age_s };
    let (outcomes, updated) = py
        .detach(|| readings::verify(&payloads, &signatures, &devices, &stored, params))
        .map_err(CoreError)?;
    Ok(columns(py, &outcomes, &updated))
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
    let ok =
        py.detach(|| readings::verify_signatures_on(&payloads, &signatures, spread)).map_err(CoreError)?;
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
    let ok = py
        .detach(|| {
            let raws: Vec<&[u8]> = transactions.iter().map(|t| &t[..]).collect();
            wire::verify_transactions(&raws)
        })
        .map_err(CoreError)?;
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
    let signed = py.detach(|| readings::sign(&seeds, &payloads)).map_err(CoreError)?;
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
) -> PyResult<Columns<'py>> {
    let params = Params { now, max_future_skew_s, max_age_s };
    let (outcomes, updated) = py
        .detach(|| {
            let ok: Vec<bool> = signature_ok.iter().map(|b| *b != 0).collect();
            readings::apply_rules(&payloads, &ok, &devices, &stored, params)
        })
        .map_err(CoreError)?;
    Ok(columns(py, &outcomes, &updated))
}

/// The distinct device keys of a batch (32 bytes each, first-seen order) and
/// the lowest seq of each (u64 LE).
#[pyfunction]
fn reading_keys<'py>(
    py: Python<'py>,
    payloads: PyBackedBytes,
) -> PyResult<(Bound<'py, PyBytes>, Bound<'py, PyBytes>)> {
    let found = py.detach(|| readings::distinct_keys(&payloads)).map_err(CoreError)?;
    let keys: Vec<u8> = found.iter().flat_map(|(k, _)| k.iter().copied()).collect();
    let seqs: Vec<u8> = found.iter().flat_map(|(_, s)| s.to_le_bytes()).collect();
    Ok((PyBytes::new(py, &keys), PyBytes::new(py, &seqs)))
}

type PricedTuple<'py> = (Bound<'py, PyBytes>, Bound<'py, PyBytes>, Bound<'py, PyBytes>, Bound<'py, PyBytes>);

/// Prices packed energy items against packed UTC segments; returns verdict
/// codes, amounts (u64 LE), exact values (u128 LE per item) and the carries
/// after (u128 LE per account).
#[pyfunction]
#[pyo3(signature = (items, segments, carries, divisor))]
fn price_energy<'py>(
    py: Python<'py>,
    items: PyBackedBytes,
    segments: PyBackedBytes,
    carries: PyBackedBytes,
    divisor: u64,
) -> PyResult<PricedTuple<'py>> {
    let priced = py.detach(|| pricing::price(&items, &segments, &carries, divisor)).map_err(CoreError)?;
    let verdicts: Vec<u8> = priced.verdicts.iter().map(|v| *v as u8).collect();
    let amounts: Vec<u8> = priced.amounts.iter().flat_map(|a| a.to_le_bytes()).collect();
    let values: Vec<u8> = priced.values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let carries: Vec<u8> = priced.carries.iter().flat_map(|c| c.to_le_bytes()).collect();
    Ok((
        PyBytes::new(py, &verdicts),
        PyBytes::new(py, &amounts),
        PyBytes::new(py, &values),
        PyBytes::new(py, &carries),
    ))
}

/// Nets packed intents, packs them into v0 transactions and signs them.
/// Returns (transactions, signatures n×64, netted records, verdict codes,
/// netted index per intent u32 LE, batch digest).
#[pyfunction]
#[pyo3(signature = (
    intents, mints, payer, authority, blockhash, compute_unit_price, compute_units_per_transfer,
    compute_units_per_ata, max_account_locks, lookup_table=None, lookup_addresses=None, memo=None,
    memo_index_base=0, batch_payments=true,
))]
#[allow(clippy::too_many_arguments, reason = "a flat, typed signature is the clearest FFI surface")]
fn build_settlement<'py>(
    py: Python<'py>,
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
) -> PyResult<SettlementColumns<'py>> {
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
    let batch = py.detach(|| settlement::build(&intents, &mints, &config)).map_err(CoreError)?;
    let transactions = PyList::new(py, batch.transactions.iter().map(|t| PyBytes::new(py, t)))?;
    let signatures: Vec<u8> = batch.signatures.concat();
    let mut netted = Vec::with_capacity(batch.netted.len().saturating_mul(settlement::INTENT_LEN));
    for n in &batch.netted {
        netted.extend_from_slice(n.recipient.as_ref());
        netted.extend_from_slice(n.mint.as_ref());
        netted.extend_from_slice(&n.amount.to_le_bytes());
        netted.push(u8::from(n.create_ata));
        netted.extend_from_slice(&[0u8; 3]);
        netted.extend_from_slice(&n.transaction.to_le_bytes());
    }
    let verdicts: Vec<u8> = batch.verdicts.iter().map(|(v, _)| *v as u8).collect();
    let members: Vec<u8> = batch.verdicts.iter().flat_map(|(_, i)| i.to_le_bytes()).collect();
    Ok((
        transactions,
        PyBytes::new(py, &signatures),
        PyBytes::new(py, &netted),
        PyBytes::new(py, &verdicts),
        PyBytes::new(py, &members),
        PyBytes::new(py, &batch.digest),
    ))
}

type SettlementColumns<'py> = (
    Bound<'py, PyList>,
    Bound<'py, PyBytes>,
    Bound<'py, PyBytes>,
    Bound<'py, PyBytes>,
    Bound<'py, PyBytes>,
    Bound<'py, PyBytes>,
);

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
    let bodies = py.detach(|| events::encode_payout_events(settlement_id, rows)).map_err(CoreError)?;
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
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
