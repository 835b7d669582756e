//! Bindings only: extract owned buffers, run openvpp-core with the GIL
//! released, convert back. Errors become the Python classes of
//! `openvpp.errors`, in one place.

use openvpp_core::signature::{self, Messages, PackedMessages};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

pyo3::import_exception!(openvpp.errors, InvalidArgument);
pyo3::import_exception!(openvpp.errors, Unavailable);

struct CoreError(openvpp_core::Error);

impl From<CoreError> for PyErr {
    fn from(err: CoreError) -> PyErr {
        match err.0 {
            openvpp_core::Error::MalformedBatch(why) => InvalidArgument::new_err((why, "MALFORMED_BATCH")),
            openvpp_core::Error::Unavailable(why) => Unavailable::new_err((why, "NATIVE_UNAVAILABLE")),
        }
    }
}

/// Strict ed25519 verification of a packed batch; one verdict code per item.
///
/// Message `i` is `messages[offsets[i]:offsets[i+1]]`, verified as
/// `domain || message`.
#[pyfunction]
#[pyo3(signature = (domain, public_keys, signatures, messages, offsets))]
fn verify_ed25519_batch<'py>(
    py: Python<'py>,
    domain: Vec<u8>,
    public_keys: Vec<u8>,
    signatures: Vec<u8>,
    messages: Vec<u8>,
    offsets: Vec<u32>,
) -> PyResult<Bound<'py, PyBytes>> {
    let verdicts = py
        .detach(|| {
            signature::verify_batch(
                &domain,
                &public_keys,
                &signatures,
                Messages::Packed(PackedMessages { data: &messages, offsets: &offsets }),
            )
        })
        .map_err(CoreError)?;
    let codes: Vec<u8> = verdicts.into_iter().map(|v| v.code()).collect();
    Ok(PyBytes::new(py, &codes))
}

#[pymodule]
fn _rust(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(verify_ed25519_batch, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
