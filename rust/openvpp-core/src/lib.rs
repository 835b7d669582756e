//! Pure-Rust hot path of OpenVPP. Nothing here knows about Python: the
//! `openvpp-py` crate converts, releases the GIL and maps errors.

pub mod events;
pub mod layout;
pub mod pb;
pub mod pricing;
pub mod readings;
pub mod settlement;
pub mod signature;
pub mod tokens;
pub mod wire;

/// A call whose inputs cannot be read as a batch at all. Per-item problems
/// are verdicts, never errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// Packed buffers disagree with each other or with the fixed item sizes.
    MalformedBatch(String),
    /// A resource the computation needs (the OS random source) failed.
    Unavailable(String),
    /// Checked arithmetic would have overflowed: the inputs are out of range.
    Overflow(String),
    /// An invariant of this crate failed (a bug, not bad input): callers
    /// report it as an internal error, never as the client's fault.
    Internal(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::MalformedBatch(why) => write!(f, "malformed batch: {why}"),
            Error::Unavailable(why) => write!(f, "unavailable: {why}"),
            Error::Overflow(what) => write!(f, "arithmetic overflow in {what}"),
            Error::Internal(why) => write!(f, "internal error: {why}"),
        }
    }
}

impl std::error::Error for Error {}
