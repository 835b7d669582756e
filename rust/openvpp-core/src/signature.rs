//! Strict ed25519 verification of whole batches.
//!
//! "Strict" is RFC 8032 section 5.1.7 plus the rules that stop signature
//! malleability and key substitution: S must be canonical (S < L), the public
//! key must be a canonical encoding of a point that is not of small order,
//! and R must not be of small order. A device key is also a Solana address,
//! so a key that many secret keys could sign for must never be accepted.

use curve25519_dalek::edwards::CompressedEdwardsY;
use curve25519_dalek::scalar::Scalar;
use ed25519_dalek::{Signature, VerifyingKey};
use rayon::prelude::*;

use crate::Error;

pub const PUBLIC_KEY_LEN: usize = 32;
pub const SIGNATURE_LEN: usize = 64;

/// Below this many items the thread hand-off costs more than it saves.
const PARALLEL_THRESHOLD: usize = 64;

/// Outcome for one item of a batch. The discriminants are part of the Python
/// API (`openvpp.native.SignatureVerdict`) and must not change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Verdict {
    Valid = 0,
    /// Well-formed inputs, but the equation does not hold for this message.
    BadSignature = 1,
    /// Not a canonical encoding of a curve point.
    MalformedPublicKey = 2,
    /// A point of small order: signatures under it prove nothing.
    WeakPublicKey = 3,
    /// S is not reduced modulo L (a malleated copy of some signature).
    NonCanonicalSignature = 4,
}

impl Verdict {
    pub fn code(self) -> u8 {
        self as u8
    }
}

/// Messages packed back to back; `offsets` has one more entry than there are
/// messages, so message `i` is `data[offsets[i]..offsets[i + 1]]`.
#[derive(Debug, Clone, Copy)]
pub struct PackedMessages<'a> {
    pub data: &'a [u8],
    pub offsets: &'a [u32],
}

impl<'a> PackedMessages<'a> {
    fn get(&self, i: usize) -> &'a [u8] {
        // Bounds were checked once in `check_shape`.
        let start = self.offsets[i] as usize;
        let end = self.offsets[i.saturating_add(1)] as usize;
        &self.data[start..end]
    }
}

fn check_shape(public_keys: &[u8], signatures: &[u8], messages: &PackedMessages) -> Result<usize, Error> {
    if !public_keys.len().is_multiple_of(PUBLIC_KEY_LEN) {
        return Err(Error::MalformedBatch(format!(
            "public keys buffer is {} bytes, not a multiple of {PUBLIC_KEY_LEN}",
            public_keys.len()
        )));
    }
    let n = public_keys.len() / PUBLIC_KEY_LEN;
    if signatures.len() != n.saturating_mul(SIGNATURE_LEN) {
        return Err(Error::MalformedBatch(format!(
            "{n} public keys but a {}-byte signatures buffer (expected {})",
            signatures.len(),
            n.saturating_mul(SIGNATURE_LEN)
        )));
    }
    if messages.offsets.len() != n.saturating_add(1) {
        return Err(Error::MalformedBatch(format!(
            "{n} public keys but {} message offsets (expected {})",
            messages.offsets.len(),
            n.saturating_add(1)
        )));
    }
    if messages.offsets.first().copied().unwrap_or(0) != 0 {
        return Err(Error::MalformedBatch("message offsets must start at 0".into()));
    }
    if messages.offsets.windows(2).any(|w| w[0] > w[1]) {
        return Err(Error::MalformedBatch("message offsets must not decrease".into()));
    }
    let last = messages.offsets.last().copied().unwrap_or(0) as usize;
    if last != messages.data.len() {
        return Err(Error::MalformedBatch(format!(
            "message offsets end at {last} but the buffer holds {} bytes",
            messages.data.len()
        )));
    }
    Ok(n)
}

fn parse_public_key(bytes: &[u8; PUBLIC_KEY_LEN]) -> Result<VerifyingKey, Verdict> {
    let compressed = CompressedEdwardsY(*bytes);
    let point = compressed.decompress().ok_or(Verdict::MalformedPublicKey)?;
    // Decompression accepts y >= p; only the canonical encoding is the key.
    if point.compress() != compressed {
        return Err(Verdict::MalformedPublicKey);
    }
    if point.is_small_order() {
        return Err(Verdict::WeakPublicKey);
    }
    VerifyingKey::from_bytes(bytes).map_err(|_| Verdict::MalformedPublicKey)
}

/// Verifies one signature over `domain || message` with the strict rules.
pub fn verify_one(
    domain: &[u8],
    public_key: &[u8; PUBLIC_KEY_LEN],
    message: &[u8],
    signature: &[u8; SIGNATURE_LEN],
) -> Verdict {
    let key = match parse_public_key(public_key) {
        Ok(key) => key,
        Err(verdict) => return verdict,
    };
    let mut s_bytes = [0u8; 32];
    s_bytes.copy_from_slice(&signature[32..]);
    if Option::<Scalar>::from(Scalar::from_canonical_bytes(s_bytes)).is_none() {
        return Verdict::NonCanonicalSignature;
    }
    let sig = Signature::from_bytes(signature);
    let verified = if domain.is_empty() {
        key.verify_strict(message, &sig)
    } else {
        let mut signed = Vec::with_capacity(domain.len().saturating_add(message.len()));
        signed.extend_from_slice(domain);
        signed.extend_from_slice(message);
        key.verify_strict(&signed, &sig)
    };
    match verified {
        Ok(()) => Verdict::Valid,
        Err(_) => Verdict::BadSignature,
    }
}

/// Verifies every item of a packed batch and returns one verdict per item.
///
/// `domain` is prefixed to every message (domain separation between the
/// kinds of signed objects); pass an empty slice for raw RFC 8032 messages.
pub fn verify_batch(
    domain: &[u8],
    public_keys: &[u8],
    signatures: &[u8],
    messages: PackedMessages<'_>,
) -> Result<Vec<Verdict>, Error> {
    let n = check_shape(public_keys, signatures, &messages)?;
    let item = |i: usize| {
        let key_start = i.saturating_mul(PUBLIC_KEY_LEN);
        let sig_start = i.saturating_mul(SIGNATURE_LEN);
        let mut key = [0u8; PUBLIC_KEY_LEN];
        key.copy_from_slice(&public_keys[key_start..key_start.saturating_add(PUBLIC_KEY_LEN)]);
        let mut sig = [0u8; SIGNATURE_LEN];
        sig.copy_from_slice(&signatures[sig_start..sig_start.saturating_add(SIGNATURE_LEN)]);
        verify_one(domain, &key, messages.get(i), &sig)
    };
    if n < PARALLEL_THRESHOLD {
        Ok((0..n).map(item).collect())
    } else {
        Ok((0..n).into_par_iter().map(item).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_batch_is_empty() {
        let out = verify_batch(b"", &[], &[], PackedMessages { data: &[], offsets: &[0] }).unwrap();
        assert!(out.is_empty());
    }

    #[test]
    fn shape_errors_are_errors_not_verdicts() {
        let msgs = PackedMessages { data: &[], offsets: &[0, 0] };
        assert!(verify_batch(b"", &[0u8; 31], &[0u8; 64], msgs).is_err());
        assert!(verify_batch(b"", &[0u8; 32], &[0u8; 63], msgs).is_err());
        let bad_offsets = PackedMessages { data: &[1, 2], offsets: &[0, 3] };
        assert!(verify_batch(b"", &[0u8; 32], &[0u8; 64], bad_offsets).is_err());
        let decreasing = PackedMessages { data: &[1, 2], offsets: &[0, 2, 1] };
        assert!(verify_batch(b"", &[0u8; 64], &[0u8; 128], decreasing).is_err());
    }
}
