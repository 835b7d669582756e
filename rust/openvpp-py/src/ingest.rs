//! Storage rows for an ingested batch, built here rather than in Python:
//! a batch writes one readings row per accepted reading and one state row per
//! device, and assembling those tuples was most of the Python time of
//! ingestion. Hashing runs with the GIL released; only object creation
//! holds it.

use openvpp_core::layout::{READING_ROW, STATE_ROW};
use openvpp_core::readings::{self, OutcomeColumns, Reading, DEVICE_STATE_LEN, READING_LEN, SIGNATURE_LEN};
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;
use pyo3::types::{PyBytes, PyList, PyTuple};

use crate::{run, to_py, ReadingOutcomes};

/// What storing a batch writes: `readings` rows (`READING_ROW` order), state
/// updates (`STATE_ROW` values, then der_id and the stored count they were
/// read with), state inserts (der_id, then `STATE_ROW` values), and each
/// changed device as (index in the table, packed state, chain head, stored).
#[pyclass(frozen, get_all, module = "openvpp._rust")]
pub(crate) struct StagedRows {
    readings: Py<PyList>,
    updates: Py<PyList>,
    inserts: Py<PyList>,
    changed: Py<PyList>,
}

fn column<'a>(py: Python<'_>, b: &'a Py<PyBytes>) -> &'a [u8] {
    b.as_bytes(py)
}

fn malformed(why: String) -> PyErr {
    to_py(openvpp_core::Error::MalformedBatch(why))
}

/// Rows for one batch, given the rules' outcomes (ending with the device
/// table after) and, per device of the table before, its packed state, chain
/// head, stored count, whether its state row exists, der_id (the key of its
/// state row) and registry number (the key of its readings).
#[pyfunction]
#[pyo3(signature = (payloads, signatures, results, before, heads, stored, existed, der_ids, numbers, batch_id, now_us))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn stage_readings<'py>(
    py: Python<'py>,
    payloads: PyBackedBytes,
    signatures: PyBackedBytes,
    results: Bound<'py, ReadingOutcomes>,
    before: PyBackedBytes,
    heads: PyBackedBytes,
    stored: Vec<u64>,
    existed: PyBackedBytes,
    der_ids: Vec<Bound<'py, PyAny>>,
    numbers: Vec<i64>,
    batch_id: i64,
    now_us: i64,
) -> PyResult<StagedRows> {
    let results = results.get();
    let (verdicts, flags, device) =
        (column(py, &results.verdicts), column(py, &results.flags), column(py, &results.device));
    let (import_wh, export_wh) = (column(py, &results.import_wh), column(py, &results.export_wh));
    let (covered_from, missing, after) =
        (column(py, &results.covered_from), column(py, &results.missing), column(py, &results.devices));
    let devices = der_ids.len();
    if devices.checked_mul(DEVICE_STATE_LEN) != Some(before.len())
        || after.len() != before.len()
        || devices.checked_mul(32) != Some(heads.len())
        || stored.len() != devices
        || existed.len() != devices
        || numbers.len() != devices
    {
        return Err(malformed(format!("the device columns do not all describe {devices} devices")));
    }
    let staged = run(py, || {
        let columns = OutcomeColumns { verdicts, flags, device, import_wh, export_wh, covered_from, missing };
        let outcomes = columns.decode()?;
        readings::stage(&payloads, &signatures, &outcomes, &heads).map(|s| (outcomes, s))
    })?;
    let (outcomes, staged) = staged;
    let batch_id = batch_id.into_pyobject(py)?.into_any();
    let now = now_us.into_pyobject(py)?.into_any();
    let payload_of: Vec<&[u8]> = payloads.chunks_exact(READING_LEN).collect();
    let signature_of: Vec<&[u8]> = signatures.chunks_exact(SIGNATURE_LEN).collect();
    let mut rows = Vec::with_capacity(staged.kept.len());
    for (k, &i) in staged.kept.iter().enumerate() {
        let payload = payload_of[i];
        let reading = Reading::decode(payload.try_into().map_err(|_| malformed(format!("payload {i}")))?);
        let o = &outcomes[i];
        let items: [Bound<'py, PyAny>; READING_ROW.len()] = [
            numbers[o.device as usize].into_pyobject(py)?.into_any(),
            reading.seq.into_pyobject(py)?.into_any(),
            reading.interval_end.into_pyobject(py)?.into_any(),
            o.covered_from.into_pyobject(py)?.into_any(),
            o.import_wh.into_pyobject(py)?.into_any(),
            o.export_wh.into_pyobject(py)?.into_any(),
            o.flags.into_pyobject(py)?.into_any(),
            o.missing.into_pyobject(py)?.into_any(),
            PyBytes::new(py, payload).into_any(),
            PyBytes::new(py, signature_of[i]).into_any(),
            PyBytes::new(py, &staged.links[k]).into_any(),
            now.clone(),
            batch_id.clone(),
        ];
        rows.push(PyTuple::new(py, items)?);
    }
    let (mut updates, mut inserts, mut changed) = (Vec::new(), Vec::new(), Vec::new());
    let states = before.chunks_exact(DEVICE_STATE_LEN).zip(after.chunks_exact(DEVICE_STATE_LEN));
    for (d, (was, now_packed)) in states.enumerate() {
        let gained = staged.gained[d];
        if was == now_packed && gained == 0 {
            continue;
        }
        let state = readings::DeviceState::decode(now_packed);
        let head = PyBytes::new(py, &staged.heads[d]);
        let count = stored[d].saturating_add(gained);
        let values: [Bound<'py, PyAny>; STATE_ROW.len()] = [
            u8::from(state.has_baseline).into_pyobject(py)?.into_any(),
            state.last_seq.into_pyobject(py)?.into_any(),
            state.last_interval_end.into_pyobject(py)?.into_any(),
            state.import_wh.into_pyobject(py)?.into_any(),
            state.export_wh.into_pyobject(py)?.into_any(),
            head.clone().into_any(),
            count.into_pyobject(py)?.into_any(),
            now.clone(),
        ];
        let der_id = der_ids[d].clone();
        if existed[d] != 0 {
            let [a, b, c, e, f, g, h, i] = values;
            let guard = stored[d].into_pyobject(py)?.into_any();
            updates.push(PyTuple::new(py, [a, b, c, e, f, g, h, i, der_id, guard])?);
        } else {
            let [a, b, c, e, f, g, h, i] = values;
            inserts.push(PyTuple::new(py, [der_id, a, b, c, e, f, g, h, i])?);
        }
        changed.push((d, PyBytes::new(py, now_packed), head, count));
    }
    Ok(StagedRows {
        readings: PyList::new(py, rows)?.unbind(),
        updates: PyList::new(py, updates)?.unbind(),
        inserts: PyList::new(py, inserts)?.unbind(),
        changed: PyList::new(py, changed)?.unbind(),
    })
}
