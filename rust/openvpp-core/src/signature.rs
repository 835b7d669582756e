//! Strict ed25519 verification of whole batches.
//!
//! Semantics (RFC 8032 §5.1.7 with the strictness rules of "Taming the many
//! EdDSAs", Chalkias et al. 2020):
//! - S must be canonical (S < L), so a signature cannot be malleated by adding L;
//! - the public key A and the commitment R must be canonical point encodings and
//!   not of small order: a key that every secret "matches" proves nothing, and
//!   a device key is also a Solana address;
//! - the group equation is checked **cofactored**, [8]([S]B − R − [k]A) = 0,
//!   which RFC 8032 allows. Only the cofactored equation makes single and
//!   batch verification agree on every input, so a reading's verdict never
//!   depends on which batch it arrived in.
//!
//! Batches use one random linear combination of all equations (a multiscalar
//! multiplication); when it fails, halves are retried until the failing items
//! are found, so every item still gets its own exact verdict.

use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{IsIdentity, VartimeMultiscalarMul};
use rayon::prelude::*;
use sha2::{Digest, Sha512};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{OnceLock, RwLock};

use foldhash::fast::RandomState;

use crate::Error;

pub const PUBLIC_KEY_LEN: usize = 32;
pub const SIGNATURE_LEN: usize = 64;

/// Below this many items a batch is checked one by one: the multiscalar
/// set-up costs more than it saves.
const MIN_BATCH: usize = 4;
/// A failed set this small is checked one by one rather than bisected: with
/// a failure in it already, more combinations rarely pay for themselves.
const BISECT_ABOVE: usize = 16;
/// Above this share of bad items, one-by-one checking beats combinations.
const DENSE_FAILURE_PERCENT: u64 = 4;
/// Items per random linear combination. Failures cost a bisection inside
/// one chunk only, and chunks are the unit of work spread across cores.
const CHUNK: usize = 256;

/// Outcome for one item of a batch. The discriminants are part of the Python
/// API (`openvpp.native.SignatureVerdict`) and must not change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Verdict {
    Valid = 0,
    /// Well-formed inputs, but the equation does not hold for this message
    /// (including an R that is not a canonical point of large order).
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

/// How messages are laid out in a batch.
#[derive(Debug, Clone, Copy)]
pub enum Messages<'a> {
    Packed(PackedMessages<'a>),
    /// Every message has the same length (e.g. 72-byte readings).
    Fixed {
        data: &'a [u8],
        len: usize,
    },
}

impl<'a> Messages<'a> {
    fn get(&self, i: usize) -> &'a [u8] {
        match self {
            Messages::Packed(p) => p.get(i),
            Messages::Fixed { data, len } => {
                let start = i.saturating_mul(*len);
                &data[start..start.saturating_add(*len)]
            }
        }
    }
}

fn check_shape(public_keys: &[u8], signatures: &[u8], messages: &Messages) -> Result<usize, Error> {
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
    match messages {
        Messages::Fixed { data, len } => {
            if data.len() != n.saturating_mul(*len) {
                return Err(Error::MalformedBatch(format!(
                    "{n} public keys but {} bytes of {len}-byte messages",
                    data.len()
                )));
            }
        }
        Messages::Packed(p) => {
            if p.offsets.len() != n.saturating_add(1) {
                return Err(Error::MalformedBatch(format!(
                    "{n} public keys but {} message offsets (expected {})",
                    p.offsets.len(),
                    n.saturating_add(1)
                )));
            }
            if p.offsets.first().copied().unwrap_or(0) != 0 {
                return Err(Error::MalformedBatch("message offsets must start at 0".into()));
            }
            if p.offsets.windows(2).any(|w| w[0] > w[1]) {
                return Err(Error::MalformedBatch("message offsets must not decrease".into()));
            }
            let last = p.offsets.last().copied().unwrap_or(0) as usize;
            if last != p.data.len() {
                return Err(Error::MalformedBatch(format!(
                    "message offsets end at {last} but the buffer holds {} bytes",
                    p.data.len()
                )));
            }
        }
    }
    Ok(n)
}

/// y = p − 1 (with the sign bit clear): the encoding of the order-two point (0, −1).
const Y_MINUS_ONE: [u8; 32] = [
    0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
];

/// Whether the 255-bit y of an encoding is below p = 2^255 − 19, checked on
/// the bytes: re-compressing the point to compare would cost a field
/// inversion per key and per R, a third of a verification.
fn y_is_reduced(bytes: &[u8; 32]) -> bool {
    let top = bytes[31] & 0x7f;
    !(top == 0x7f && bytes[1..31].iter().all(|b| *b == 0xff) && bytes[0] >= 0xed)
}

/// Decompresses a canonical encoding; `None` for off-curve or non-canonical ones.
fn canonical_point(bytes: &[u8; 32]) -> Option<EdwardsPoint> {
    if !y_is_reduced(bytes) {
        return None;
    }
    if bytes[31] & 0x80 != 0 {
        // x = 0 only for y = ±1; a set sign bit there names no other point.
        let mut y = *bytes;
        y[31] &= 0x7f;
        let mut one = [0u8; 32];
        one[0] = 1;
        if y == one || y == Y_MINUS_ONE {
            return None;
        }
    }
    CompressedEdwardsY(*bytes).decompress()
}

/// A public key that passed the strict checks, ready for equations.
#[derive(Clone, Copy)]
pub struct PublicKey {
    point: EdwardsPoint,
    bytes: [u8; 32],
}

impl PublicKey {
    pub fn parse(bytes: &[u8; PUBLIC_KEY_LEN]) -> Result<PublicKey, Verdict> {
        let point = canonical_point(bytes).ok_or(Verdict::MalformedPublicKey)?;
        if point.is_small_order() {
            return Err(Verdict::WeakPublicKey);
        }
        Ok(PublicKey { point, bytes: *bytes })
    }
}

/// Decompressed device keys, kept across batches: a device signs a reading
/// every interval, and decompressing its key is a fifth of a verification.
/// Only keys that passed the strict checks are kept; the cache is emptied
/// when it reaches its bound, which keeps it simple and its memory fixed.
struct KeyCache {
    keys: RwLock<HashMap<[u8; 32], PublicKey, RandomState>>,
}

const KEY_CACHE_ENTRIES: usize = 1 << 16;

static KEY_CACHE: OnceLock<KeyCache> = OnceLock::new();

fn key_cache() -> &'static KeyCache {
    KEY_CACHE.get_or_init(|| KeyCache { keys: RwLock::new(HashMap::with_hasher(RandomState::default())) })
}

/// A strictly checked public key, from the cache when seen before.
fn cached_key(bytes: &[u8; PUBLIC_KEY_LEN]) -> Result<PublicKey, Verdict> {
    let cache = key_cache();
    if let Some(key) = cache.keys.read().ok().and_then(|keys| keys.get(bytes).copied()) {
        return Ok(key);
    }
    let key = PublicKey::parse(bytes)?;
    if let Ok(mut keys) = cache.keys.write() {
        if keys.len() >= KEY_CACHE_ENTRIES {
            keys.clear();
        }
        keys.insert(*bytes, key);
    }
    Ok(key)
}

/// Forgets every cached key (for measurements that must start cold).
pub fn clear_key_cache() {
    if let Ok(mut keys) = key_cache().keys.write() {
        keys.clear();
    }
}

/// One signature, parsed and hashed: everything the group equation needs.
#[derive(Clone, Copy)]
struct Prepared {
    r: EdwardsPoint,
    s: Scalar,
    k: Scalar,
    a: EdwardsPoint,
}

fn prepare(
    domain: &[u8],
    key: &PublicKey,
    message: &[u8],
    signature: &[u8; SIGNATURE_LEN],
) -> Result<Prepared, Verdict> {
    let mut s_bytes = [0u8; 32];
    s_bytes.copy_from_slice(&signature[32..]);
    let s = Option::<Scalar>::from(Scalar::from_canonical_bytes(s_bytes))
        .ok_or(Verdict::NonCanonicalSignature)?;
    let mut r_bytes = [0u8; 32];
    r_bytes.copy_from_slice(&signature[..32]);
    let r = canonical_point(&r_bytes).ok_or(Verdict::BadSignature)?;
    if r.is_small_order() {
        return Err(Verdict::BadSignature);
    }
    let mut hash = Sha512::new();
    hash.update(r_bytes);
    hash.update(key.bytes);
    hash.update(domain);
    hash.update(message);
    let k = Scalar::from_bytes_mod_order_wide(&hash.finalize().into());
    Ok(Prepared { r, s, k, a: key.point })
}

#[allow(
    clippy::arithmetic_side_effects,
    reason = "group and scalar arithmetic is modular; it cannot overflow"
)]
fn verify_prepared(p: &Prepared) -> bool {
    // [S]B − [k]A − R, then clear the cofactor.
    let sb_minus_ka = EdwardsPoint::vartime_double_scalar_mul_basepoint(&p.k, &(-p.a), &p.s);
    (sb_minus_ka - p.r).mul_by_cofactor().is_identity()
}

/// One random linear combination of all equations: Σ zᵢ·8(Sᵢ·B − Rᵢ − kᵢ·Aᵢ) = 0.
#[allow(
    clippy::arithmetic_side_effects,
    reason = "group and scalar arithmetic is modular; it cannot overflow"
)]
fn combination_holds(items: &[Prepared], randomness: &[u8]) -> bool {
    let n = items.len();
    let mut scalars = Vec::with_capacity(n.saturating_mul(2).saturating_add(1));
    let mut points = Vec::with_capacity(n.saturating_mul(2).saturating_add(1));
    let mut b_coefficient = Scalar::ZERO;
    for (i, item) in items.iter().enumerate() {
        // 128-bit coefficients: a false accept needs a 2^-128 coincidence.
        let mut z_bytes = [0u8; 32];
        z_bytes[..16]
            .copy_from_slice(&randomness[i.saturating_mul(16)..i.saturating_mul(16).saturating_add(16)]);
        let z = Scalar::from_bytes_mod_order(z_bytes);
        b_coefficient += z * item.s;
        scalars.push(-z);
        points.push(item.r);
        scalars.push(-(z * item.k));
        points.push(item.a);
    }
    scalars.push(b_coefficient);
    points.push(ED25519_BASEPOINT_POINT);
    EdwardsPoint::vartime_multiscalar_mul(scalars, points).mul_by_cofactor().is_identity()
}

/// Fills `out[i]` for the prepared items of one chunk, bisecting on failure.
///
/// `known_bad` says the caller already saw this set's combination fail (its
/// sibling passed while their parent failed), so it is split at once.
fn settle(items: &[(usize, Prepared)], randomness: &[u8], out: &mut [Verdict], known_bad: bool) {
    if items.len() < MIN_BATCH || (known_bad && (items.len() <= BISECT_ABOVE || randomness.is_empty())) {
        for (index, item) in items {
            out[*index] = if verify_prepared(item) { Verdict::Valid } else { Verdict::BadSignature };
        }
        return;
    }
    if !known_bad {
        let prepared: Vec<Prepared> = items.iter().map(|(_, p)| *p).collect();
        if combination_holds(&prepared, randomness) {
            for (index, _) in items {
                out[*index] = Verdict::Valid;
            }
            return;
        }
    }
    let (left, right) = items.split_at(items.len() / 2);
    let (left_rand, right_rand) = randomness.split_at(left.len().saturating_mul(16));
    let left_prepared: Vec<Prepared> = left.iter().map(|(_, p)| *p).collect();
    if left.len() >= MIN_BATCH && combination_holds(&left_prepared, left_rand) {
        for (index, _) in left {
            out[*index] = Verdict::Valid;
        }
        settle(right, right_rand, out, true);
    } else {
        settle(left, left_rand, out, left.len() >= MIN_BATCH);
        settle(right, right_rand, out, false);
    }
}

/// Verdicts for one contiguous chunk `[start, start + len)` of the batch.
fn verify_chunk(
    domain: &[u8],
    public_keys: &[u8],
    signatures: &[u8],
    messages: &Messages,
    start: usize,
    len: usize,
    tally: &Tally,
) -> Result<Vec<Verdict>, Error> {
    let mut out = vec![Verdict::BadSignature; len];
    let mut prepared = Vec::with_capacity(len);
    for (slot, out_slot) in out.iter_mut().enumerate() {
        let i = start.saturating_add(slot);
        let key_at = i.saturating_mul(PUBLIC_KEY_LEN);
        let sig_at = i.saturating_mul(SIGNATURE_LEN);
        let mut key = [0u8; PUBLIC_KEY_LEN];
        key.copy_from_slice(&public_keys[key_at..key_at.saturating_add(PUBLIC_KEY_LEN)]);
        let mut sig = [0u8; SIGNATURE_LEN];
        sig.copy_from_slice(&signatures[sig_at..sig_at.saturating_add(SIGNATURE_LEN)]);
        match cached_key(&key).and_then(|k| prepare(domain, &k, messages.get(i), &sig)) {
            Ok(p) => prepared.push((slot, p)),
            Err(verdict) => *out_slot = verdict,
        }
    }
    // When earlier chunks of this batch were often bad, combinations would
    // mostly fail and be paid for twice: check one by one instead.
    let seen = tally.seen.load(Ordering::Relaxed);
    let bad = tally.bad.load(Ordering::Relaxed);
    if seen >= CHUNK as u64 && bad.saturating_mul(100) > seen.saturating_mul(DENSE_FAILURE_PERCENT) {
        settle(&prepared, &[], &mut out, true);
    } else {
        let mut randomness = vec![0u8; prepared.len().saturating_mul(16)];
        getrandom::getrandom(&mut randomness)
            .map_err(|e| Error::Unavailable(format!("operating system randomness: {e}")))?;
        settle(&prepared, &randomness, &mut out, false);
    }
    tally.seen.fetch_add(len as u64, Ordering::Relaxed);
    tally.bad.fetch_add(out.iter().filter(|v| **v != Verdict::Valid).count() as u64, Ordering::Relaxed);
    Ok(out)
}

/// Failures seen so far in one batch, shared by the threads checking it.
#[derive(Default)]
struct Tally {
    seen: AtomicU64,
    bad: AtomicU64,
}

/// Where the chunks of a batch run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Spread {
    /// Over the shared rayon pool, on every core.
    Pool,
    /// On the calling thread alone: for callers that budget cores
    /// themselves, such as ingestion keeping a core free for storage.
    Caller,
}

/// Verifies every item of a batch and returns one verdict per item.
///
/// `domain` is prefixed to every message (domain separation between the
/// kinds of signed objects); pass an empty slice for raw RFC 8032 messages.
/// Chunks are spread over the rayon pool; call from a thread without the GIL.
pub fn verify_batch(
    domain: &[u8],
    public_keys: &[u8],
    signatures: &[u8],
    messages: Messages<'_>,
) -> Result<Vec<Verdict>, Error> {
    verify_batch_on(domain, public_keys, signatures, messages, Spread::Pool)
}

/// `verify_batch`, with the caller choosing where the chunks run.
pub fn verify_batch_on(
    domain: &[u8],
    public_keys: &[u8],
    signatures: &[u8],
    messages: Messages<'_>,
    spread: Spread,
) -> Result<Vec<Verdict>, Error> {
    let n = check_shape(public_keys, signatures, &messages)?;
    let starts: Vec<usize> = (0..n).step_by(CHUNK).collect();
    let tally = Tally::default();
    let run = |start: &usize| {
        let len = CHUNK.min(n.saturating_sub(*start));
        verify_chunk(domain, public_keys, signatures, &messages, *start, len, &tally)
    };
    let chunks: Vec<Vec<Verdict>> = if starts.len() > 1 && spread == Spread::Pool {
        starts.par_iter().map(run).collect::<Result<_, _>>()?
    } else {
        starts.iter().map(run).collect::<Result<_, _>>()?
    };
    Ok(chunks.concat())
}

/// One item, verified alone (no random combination).
pub fn verify_one(domain: &[u8], public_key: &[u8; 32], message: &[u8], signature: &[u8; 64]) -> Verdict {
    match PublicKey::parse(public_key).and_then(|k| prepare(domain, &k, message, signature)) {
        Ok(p) if verify_prepared(&p) => Verdict::Valid,
        Ok(_) => Verdict::BadSignature,
        Err(verdict) => verdict,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};

    fn packed(messages: &[&[u8]]) -> (Vec<u8>, Vec<u32>) {
        let mut data = Vec::new();
        let mut offsets = vec![0u32];
        for m in messages {
            data.extend_from_slice(m);
            offsets.push(u32::try_from(data.len()).unwrap());
        }
        (data, offsets)
    }

    #[test]
    fn empty_batch_is_empty() {
        let msgs = Messages::Packed(PackedMessages { data: &[], offsets: &[0] });
        assert!(verify_batch(b"", &[], &[], msgs).unwrap().is_empty());
    }

    #[test]
    fn shape_errors_are_errors_not_verdicts() {
        let msgs = Messages::Packed(PackedMessages { data: &[], offsets: &[0, 0] });
        assert!(verify_batch(b"", &[0u8; 31], &[0u8; 64], msgs).is_err());
        assert!(verify_batch(b"", &[0u8; 32], &[0u8; 63], msgs).is_err());
        let bad_offsets = Messages::Packed(PackedMessages { data: &[1, 2], offsets: &[0, 3] });
        assert!(verify_batch(b"", &[0u8; 32], &[0u8; 64], bad_offsets).is_err());
        let decreasing = Messages::Packed(PackedMessages { data: &[1, 2], offsets: &[0, 2, 1] });
        assert!(verify_batch(b"", &[0u8; 64], &[0u8; 128], decreasing).is_err());
        let fixed = Messages::Fixed { data: &[0u8; 71], len: 72 };
        assert!(verify_batch(b"", &[0u8; 32], &[0u8; 64], fixed).is_err());
    }

    #[test]
    fn bisection_finds_exactly_the_bad_items_in_large_batches() {
        let n = 1000;
        let keys: Vec<SigningKey> =
            (0..n).map(|i| SigningKey::from_bytes(&[u8::try_from(i % 251).unwrap(); 32])).collect();
        let messages: Vec<Vec<u8>> = (0..n).map(|i| format!("reading {i}").into_bytes()).collect();
        let mut pks = Vec::new();
        let mut sigs = Vec::new();
        for (key, message) in keys.iter().zip(&messages) {
            pks.extend_from_slice(key.verifying_key().as_bytes());
            sigs.extend_from_slice(&key.sign(message).to_bytes());
        }
        let bad = [0usize, 1, 127, 128, 500, 501, 502, 999];
        for &i in &bad {
            sigs[i * 64 + 40] ^= 1;
        }
        let refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
        let (data, offsets) = packed(&refs);
        let verdicts = verify_batch(
            b"",
            &pks,
            &sigs,
            Messages::Packed(PackedMessages { data: &data, offsets: &offsets }),
        )
        .unwrap();
        for (i, verdict) in verdicts.iter().enumerate() {
            let expected = if bad.contains(&i) { Verdict::BadSignature } else { Verdict::Valid };
            assert_eq!(*verdict, expected, "item {i}");
        }
    }
}
