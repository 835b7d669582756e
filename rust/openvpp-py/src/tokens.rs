//! Use-case mint bindings: small, one mint per call, so no GIL release.

use openvpp_core::tokens::{self, UseCaseMint};
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use solana_pubkey::Pubkey;

use crate::{to_py, InvalidArgument};

type PyMeta<'py> = (Bound<'py, PyBytes>, bool, bool);
type PyInstruction<'py> = (Bound<'py, PyBytes>, Vec<PyMeta<'py>>, Bound<'py, PyBytes>);
type PyMetadata<'py> =
    (Option<Bound<'py, PyBytes>>, Bound<'py, PyBytes>, String, String, String, Vec<(String, String)>);
type PyMintView<'py> = (
    u64,
    u8,
    Option<Bound<'py, PyBytes>>,
    Option<Bound<'py, PyBytes>>,
    Vec<u16>,
    Option<PyMetadata<'py>>,
    Option<i16>,
);

fn key(what: &str, b: &[u8]) -> PyResult<Pubkey> {
    let a: [u8; 32] = b
        .try_into()
        .map_err(|_| InvalidArgument::new_err((format!("{what} must be 32 bytes"), "INVALID_LENGTH")))?;
    Ok(Pubkey::new_from_array(a))
}

fn bytes_of<'py>(py: Python<'py>, k: &Pubkey) -> Bound<'py, PyBytes> {
    PyBytes::new(py, k.as_ref())
}

/// Sizes and Token-2022 instructions for a use-case mint whose account the
/// caller creates first: (space, total length to fund, instructions as
/// (program, [(account, signer, writable)], data)).
#[pyfunction]
#[allow(clippy::too_many_arguments, reason = "a flat, typed signature is the clearest FFI surface")]
#[pyo3(signature = (mint, mint_authority, metadata_authority, decimals, name, symbol, uri, fields, interest_rate_bps=None))]
pub fn use_case_mint<'py>(
    py: Python<'py>,
    mint: &[u8],
    mint_authority: &[u8],
    metadata_authority: &[u8],
    decimals: u8,
    name: String,
    symbol: String,
    uri: String,
    fields: Vec<(String, String)>,
    interest_rate_bps: Option<i16>,
) -> PyResult<(usize, usize, Vec<PyInstruction<'py>>)> {
    let spec = UseCaseMint {
        mint: key("mint", mint)?,
        mint_authority: key("mint_authority", mint_authority)?,
        metadata_authority: key("metadata_authority", metadata_authority)?,
        decimals,
        name,
        symbol,
        uri,
        fields,
        interest_rate_bps,
    };
    let sizes = tokens::mint_sizes(&spec).map_err(to_py)?;
    let instructions = tokens::use_case_mint_instructions(&spec).map_err(to_py)?;
    let converted = instructions
        .iter()
        .map(|ix| {
            let metas =
                ix.accounts.iter().map(|m| (bytes_of(py, &m.pubkey), m.is_signer, m.is_writable)).collect();
            (bytes_of(py, &ix.program_id), metas, PyBytes::new(py, &ix.data))
        })
        .collect();
    Ok((sizes.space, sizes.total, converted))
}

/// A mint's base state, extension codes, metadata and interest rate.
#[pyfunction]
pub fn inspect_mint<'py>(py: Python<'py>, data: &[u8]) -> PyResult<PyMintView<'py>> {
    let view = tokens::inspect_mint(data).map_err(to_py)?;
    let metadata = view.metadata.map(|m| {
        (
            m.update_authority.map(|k| bytes_of(py, &k)),
            bytes_of(py, &m.mint),
            m.name,
            m.symbol,
            m.uri,
            m.fields,
        )
    });
    Ok((
        view.supply,
        view.decimals,
        view.mint_authority.map(|k| bytes_of(py, &k)),
        view.freeze_authority.map(|k| bytes_of(py, &k)),
        view.extensions,
        metadata,
        view.interest_rate_bps,
    ))
}
