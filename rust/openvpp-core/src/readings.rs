//! Measurement verification of signed meter readings (the v1 72-byte layout).
//!
//! One call takes a whole batch — readings of many devices, interleaved, each
//! device's readings in seq order — plus the state the caller holds for those
//! devices, and returns one verdict per reading, the interval energy of the
//! accepted ones, and the devices' updated state. Nothing here does I/O.
//!
//! The VEE (validation, estimation, editing) rules are applied in this order;
//! the first that fails decides the verdict:
//!  1. the device must be known (its key is the signer);
//!  2. the signature over `openvpp/reading/v1 || payload` must verify;
//!  3. a (device, seq) accepted before (in this batch or stored) is a
//!     duplicate when the payload is the same bytes, else a conflict —
//!     resubmitting is always safe;
//!  4. the device must be active;
//!  5. reserved flag bits must be zero;
//!  6. the interval must be valid and aligned;
//!  7. the interval must end inside the skew window around `now`;
//!  8. seq and time must move forward; a seq jump is accepted and flagged;
//!  9. cumulative counters must not decrease;
//! 10. the energy must be possible for the device's declared capability.

use std::collections::HashMap;

use foldhash::fast::RandomState;

use sha2::{Digest, Sha256};

use crate::signature::{self, Messages};
use crate::Error;

pub const READING_LEN: usize = 72;
pub const SIGNATURE_LEN: usize = 64;
pub const DEVICE_STATE_LEN: usize = 88;
pub const STORED_LEN: usize = 72;
pub const DOMAIN: &[u8] = b"openvpp/reading/v1";

/// Bit 0 of the payload flags: the device estimated this reading.
pub const FLAG_ESTIMATED: u32 = 1;
const KNOWN_FLAGS: u32 = FLAG_ESTIMATED;

/// Output flags of an accepted reading.
pub const OUT_ESTIMATED: u8 = 1;
/// First accepted reading of a device: it sets the counters' baseline, and
/// its interval energy is unknown (reported as zero).
pub const OUT_BASELINE: u8 = 2;
/// Readings are missing before this one; its energy covers the gap too.
pub const OUT_GAP: u8 = 4;

/// Shortest interval accepted: one minute. Shorter intervals are not used
/// by any settlement program and would multiply storage for nothing.
pub const MIN_INTERVAL_S: u32 = 60;
/// Longest interval: one day, the coarsest a daily-read meter reports.
pub const MAX_INTERVAL_S: u32 = 86_400;
/// Capability tolerance: meters of accuracy class 1 and 2 may read up to 2 %
/// high, and counters are whole Wh, so allow 2 % plus 1 Wh before calling an
/// interval's energy impossible.
const TOLERANCE_PERCENT: u128 = 102;
const TOLERANCE_WH: u128 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Verdict {
    Accepted = 0,
    Duplicate = 1,
    Conflict = 2,
    BadSignature = 3,
    UnknownDevice = 4,
    DeviceNotActive = 5,
    /// Accepted, with readings missing before it.
    SeqGap = 6,
    OutOfOrder = 7,
    CounterDecreased = 8,
    BeyondCapability = 9,
    OutsideSkew = 10,
    InvalidInterval = 11,
    ReservedFlags = 12,
}

impl Verdict {
    pub fn is_accepted(self) -> bool {
        matches!(self, Verdict::Accepted | Verdict::SeqGap)
    }

    pub fn from_code(code: u8) -> Option<Verdict> {
        const ALL: [Verdict; 13] = [
            Verdict::Accepted,
            Verdict::Duplicate,
            Verdict::Conflict,
            Verdict::BadSignature,
            Verdict::UnknownDevice,
            Verdict::DeviceNotActive,
            Verdict::SeqGap,
            Verdict::OutOfOrder,
            Verdict::CounterDecreased,
            Verdict::BeyondCapability,
            Verdict::OutsideSkew,
            Verdict::InvalidInterval,
            Verdict::ReservedFlags,
        ];
        ALL.get(usize::from(code)).copied()
    }
}

/// One decoded 72-byte payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reading {
    pub key: [u8; 32],
    pub seq: u64,
    pub interval_end: i64,
    pub interval_len: u32,
    pub import_wh: u64,
    pub export_wh: u64,
    pub flags: u32,
}

fn le_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

fn le_i64(b: &[u8]) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    i64::from_le_bytes(a)
}

fn le_u32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_le_bytes(a)
}

impl Reading {
    pub fn decode(p: &[u8; READING_LEN]) -> Reading {
        let mut key = [0u8; 32];
        key.copy_from_slice(&p[..32]);
        Reading {
            key,
            seq: le_u64(&p[32..]),
            interval_end: le_i64(&p[40..]),
            interval_len: le_u32(&p[48..]),
            import_wh: le_u64(&p[52..]),
            export_wh: le_u64(&p[60..]),
            flags: le_u32(&p[68..]),
        }
    }

    pub fn encode(&self) -> [u8; READING_LEN] {
        let mut p = [0u8; READING_LEN];
        p[..32].copy_from_slice(&self.key);
        p[32..40].copy_from_slice(&self.seq.to_le_bytes());
        p[40..48].copy_from_slice(&self.interval_end.to_le_bytes());
        p[48..52].copy_from_slice(&self.interval_len.to_le_bytes());
        p[52..60].copy_from_slice(&self.import_wh.to_le_bytes());
        p[60..68].copy_from_slice(&self.export_wh.to_le_bytes());
        p[68..72].copy_from_slice(&self.flags.to_le_bytes());
        p
    }
}

/// What the caller knows about a device. Packed as 88 bytes: key[32],
/// active u8, has_baseline u8, 6 zero bytes, then little-endian last_seq u64,
/// last_interval_end i64, import_wh u64, export_wh u64, max_import_w u64,
/// max_export_w u64.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceState {
    pub key: [u8; 32],
    pub active: bool,
    pub has_baseline: bool,
    pub last_seq: u64,
    pub last_interval_end: i64,
    pub import_wh: u64,
    pub export_wh: u64,
    pub max_import_w: u64,
    pub max_export_w: u64,
}

impl DeviceState {
    pub fn decode(b: &[u8]) -> DeviceState {
        let mut key = [0u8; 32];
        key.copy_from_slice(&b[..32]);
        DeviceState {
            key,
            active: b[32] != 0,
            has_baseline: b[33] != 0,
            last_seq: le_u64(&b[40..]),
            last_interval_end: le_i64(&b[48..]),
            import_wh: le_u64(&b[56..]),
            export_wh: le_u64(&b[64..]),
            max_import_w: le_u64(&b[72..]),
            max_export_w: le_u64(&b[80..]),
        }
    }

    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.key);
        out.push(u8::from(self.active));
        out.push(u8::from(self.has_baseline));
        out.extend_from_slice(&[0u8; 6]);
        out.extend_from_slice(&self.last_seq.to_le_bytes());
        out.extend_from_slice(&self.last_interval_end.to_le_bytes());
        for v in [self.import_wh, self.export_wh, self.max_import_w, self.max_export_w] {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Params {
    /// Unix seconds, UTC.
    pub now: i64,
    /// How far in the future an interval may end (device clock ahead).
    pub max_future_skew_s: i64,
    /// How old a reading may be and still settle (store-and-forward after an
    /// outage); older energy is for the monthly bill, not real-time payment.
    pub max_age_s: i64,
}

/// Per-reading result. Energy fields are zero unless accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub verdict: Verdict,
    pub flags: u8,
    /// Index into the device table, or u32::MAX for an unknown device.
    pub device: u32,
    pub import_wh: u64,
    pub export_wh: u64,
    /// Start of the time the energy covers (the previous reading's end, so a
    /// gap's energy is included); equals interval_end − interval_len on a baseline.
    pub covered_from: i64,
    /// Readings missing before this one (0 without a gap).
    pub missing: u64,
}

/// A batch's outcomes as the columns they travel in between calls: verdict
/// codes, flags, device index (u32 LE), import Wh, export Wh (u64 LE),
/// covered-from (i64 LE), missing (u64 LE).
pub struct OutcomeColumns<'a> {
    pub verdicts: &'a [u8],
    pub flags: &'a [u8],
    pub device: &'a [u8],
    pub import_wh: &'a [u8],
    pub export_wh: &'a [u8],
    pub covered_from: &'a [u8],
    pub missing: &'a [u8],
}

impl OutcomeColumns<'_> {
    pub fn decode(&self) -> Result<Vec<Outcome>, Error> {
        let n = self.verdicts.len();
        let sizes = [
            (self.flags, 1),
            (self.device, 4),
            (self.import_wh, 8),
            (self.export_wh, 8),
            (self.covered_from, 8),
            (self.missing, 8),
        ];
        if sizes.iter().any(|(column, size)| column.len() != n.saturating_mul(*size)) {
            return Err(Error::MalformedBatch(format!("outcome columns do not all hold {n} items")));
        }
        let columns = self
            .verdicts
            .iter()
            .zip(self.flags)
            .zip(self.device.chunks_exact(4))
            .zip(self.import_wh.chunks_exact(8))
            .zip(self.export_wh.chunks_exact(8))
            .zip(self.covered_from.chunks_exact(8))
            .zip(self.missing.chunks_exact(8));
        columns
            .enumerate()
            .map(|(i, ((((((code, flags), device), import), export), covered), missing))| {
                let verdict = Verdict::from_code(*code)
                    .ok_or_else(|| Error::MalformedBatch(format!("outcome {i}: unknown verdict code")))?;
                Ok(Outcome {
                    verdict,
                    flags: *flags,
                    device: u32::from_le_bytes(device.try_into().unwrap_or_default()),
                    import_wh: le_u64(import),
                    export_wh: le_u64(export),
                    covered_from: le_i64(covered),
                    missing: le_u64(missing),
                })
            })
            .collect()
    }
}

impl Outcome {
    fn rejected(verdict: Verdict, device: u32) -> Outcome {
        Outcome { verdict, flags: 0, device, import_wh: 0, export_wh: 0, covered_from: 0, missing: 0 }
    }
}

/// A reading already stored: (device key, seq) and SHA-256 of its payload.
/// Packed as 72 bytes: key[32], seq u64 LE, digest[32].
#[derive(Debug, Clone, Copy)]
pub struct Stored {
    pub key: [u8; 32],
    pub seq: u64,
    pub digest: [u8; 32],
}

impl Stored {
    pub fn decode(b: &[u8]) -> Stored {
        let mut key = [0u8; 32];
        key.copy_from_slice(&b[..32]);
        let mut digest = [0u8; 32];
        digest.copy_from_slice(&b[40..72]);
        Stored { key, seq: le_u64(&b[32..]), digest }
    }
}

pub fn payload_digest(payload: &[u8]) -> [u8; 32] {
    Sha256::digest(payload).into()
}

/// The distinct device keys of a batch, in first-seen order, each with the
/// lowest seq it carries: what the caller must load state and stored
/// digests for before `verify`.
pub fn distinct_keys(payloads: &[u8]) -> Result<Vec<([u8; 32], u64)>, Error> {
    check_len("payloads", payloads, READING_LEN)?;
    let mut index: HashMap<[u8; 32], usize, RandomState> = HashMap::with_hasher(RandomState::default());
    let mut out: Vec<([u8; 32], u64)> = Vec::new();
    for p in payloads.chunks_exact(READING_LEN) {
        let payload: &[u8; READING_LEN] =
            p.try_into().map_err(|_| Error::MalformedBatch("payload".into()))?;
        let r = Reading::decode(payload);
        match index.get(&r.key) {
            Some(&i) => out[i].1 = out[i].1.min(r.seq),
            None => {
                index.insert(r.key, out.len());
                out.push((r.key, r.seq));
            }
        }
    }
    Ok(out)
}

/// What storing a batch writes, derived from its outcomes.
pub struct Staged {
    /// Index of each stored reading (accepted, with or without a gap), in batch order.
    pub kept: Vec<usize>,
    /// chain_hash of each stored reading.
    pub links: Vec<[u8; 32]>,
    /// Per device of the table, its chain head after the batch.
    pub heads: Vec<[u8; 32]>,
    /// Per device of the table, how many readings it gained.
    pub gained: Vec<u64>,
}

/// Extends each device's hash chain over the readings of a batch that its
/// outcomes accept, in batch order: link = SHA-256(previous link || payload
/// || signature). `heads` holds the chain head (32 bytes) of every device of
/// the table the outcomes index into, in table order.
pub fn stage(
    payloads: &[u8],
    signatures: &[u8],
    outcomes: &[Outcome],
    heads: &[u8],
) -> Result<Staged, Error> {
    let n = check_len("payloads", payloads, READING_LEN)?;
    if signatures.len() != n.saturating_mul(SIGNATURE_LEN) || outcomes.len() != n {
        return Err(Error::MalformedBatch(format!("{n} readings need {n} signatures and {n} outcomes")));
    }
    check_len("heads", heads, 32)?;
    let mut after: Vec<[u8; 32]> =
        heads.chunks_exact(32).map(|h| h.try_into().unwrap_or([0u8; 32])).collect();
    let mut gained = vec![0u64; after.len()];
    let kept_count = outcomes.iter().filter(|o| o.verdict.is_accepted()).count();
    let mut staged = Staged {
        kept: Vec::with_capacity(kept_count),
        links: Vec::with_capacity(kept_count),
        heads: Vec::new(),
        gained: Vec::new(),
    };
    let readings = payloads.chunks_exact(READING_LEN).zip(signatures.chunks_exact(SIGNATURE_LEN));
    for (i, ((payload, signature), outcome)) in readings.zip(outcomes).enumerate() {
        if !outcome.verdict.is_accepted() {
            continue;
        }
        let d = outcome.device as usize;
        let (Some(head), Some(count)) = (after.get_mut(d), gained.get_mut(d)) else {
            return Err(Error::MalformedBatch(format!(
                "reading {i} belongs to device {d}, which has no head"
            )));
        };
        let mut hash = Sha256::new();
        hash.update(*head);
        hash.update(payload);
        hash.update(signature);
        *head = hash.finalize().into();
        *count = count.saturating_add(1);
        staged.kept.push(i);
        staged.links.push(*head);
    }
    staged.heads = after;
    staged.gained = gained;
    Ok(staged)
}

fn check_len(what: &str, buf: &[u8], item: usize) -> Result<usize, Error> {
    match buf.len().checked_div(item) {
        Some(count) if buf.len().is_multiple_of(item) => Ok(count),
        _ => Err(Error::MalformedBatch(format!("{what}: {} bytes is not a multiple of {item}", buf.len()))),
    }
}

/// Rule 2 alone for a whole batch: whether each reading's signature verifies
/// (its key is the payload's first 32 bytes). Needs no device state, so a
/// caller can run it before taking the lock the rules need.
pub fn verify_signatures(payloads: &[u8], signatures: &[u8]) -> Result<Vec<bool>, Error> {
    verify_signatures_on(payloads, signatures, signature::Spread::Pool)
}

/// `verify_signatures`, with the caller choosing where the work runs.
pub fn verify_signatures_on(
    payloads: &[u8],
    signatures: &[u8],
    spread: signature::Spread,
) -> Result<Vec<bool>, Error> {
    let n = check_len("payloads", payloads, READING_LEN)?;
    if signatures.len() != n.saturating_mul(SIGNATURE_LEN) {
        return Err(Error::MalformedBatch(format!(
            "{n} readings but a {}-byte signatures buffer",
            signatures.len()
        )));
    }
    let mut keys = Vec::with_capacity(n.saturating_mul(32));
    for p in payloads.chunks_exact(READING_LEN) {
        keys.extend_from_slice(&p[..32]);
    }
    let verdicts = signature::verify_batch_on(
        DOMAIN,
        &keys,
        signatures,
        Messages::Fixed { data: payloads, len: READING_LEN },
        spread,
    )?;
    Ok(verdicts.iter().map(|v| *v == signature::Verdict::Valid).collect())
}

/// Signs readings as their devices would: each payload by the seed whose
/// public key is the payload's first 32 bytes. For simulators and test
/// rigs that stand in for a fleet; a real device signs its own.
pub fn sign(seeds: &[u8], payloads: &[u8]) -> Result<Vec<u8>, Error> {
    use ed25519_dalek::{Signer, SigningKey};
    use rayon::prelude::*;

    check_len("seeds", seeds, 32)?;
    check_len("payloads", payloads, READING_LEN)?;
    let keys: HashMap<[u8; 32], SigningKey, RandomState> = seeds
        .par_chunks_exact(32)
        .map(|seed| {
            let seed: &[u8; 32] = seed.try_into().map_err(|_| Error::Internal("seed chunk".into()))?;
            let key = SigningKey::from_bytes(seed);
            Ok((key.verifying_key().to_bytes(), key))
        })
        .collect::<Result<_, Error>>()?;
    let signed: Vec<[u8; SIGNATURE_LEN]> = payloads
        .par_chunks_exact(READING_LEN)
        .enumerate()
        .map(|(i, payload)| {
            let public: [u8; 32] =
                payload[..32].try_into().map_err(|_| Error::Internal("payload chunk".into()))?;
            let key = keys
                .get(&public)
                .ok_or_else(|| Error::MalformedBatch(format!("reading {i}: no seed for its device key")))?;
            let mut message = Vec::with_capacity(DOMAIN.len().saturating_add(READING_LEN));
            message.extend_from_slice(DOMAIN);
            message.extend_from_slice(payload);
            Ok(key.sign(&message).to_bytes())
        })
        .collect::<Result<_, Error>>()?;
    Ok(signed.concat())
}

/// Verifies signatures, then applies the rules. See the module docs.
pub fn verify(
    payloads: &[u8],
    signatures: &[u8],
    devices: &[u8],
    stored: &[u8],
    params: Params,
) -> Result<(Vec<Outcome>, Vec<u8>), Error> {
    let n = check_len("payloads", payloads, READING_LEN)?;
    if signatures.len() != n.saturating_mul(SIGNATURE_LEN) {
        return Err(Error::MalformedBatch(format!(
            "{n} readings but a {}-byte signatures buffer",
            signatures.len()
        )));
    }
    let mut keys = Vec::with_capacity(n.saturating_mul(32));
    for p in payloads.chunks_exact(READING_LEN) {
        keys.extend_from_slice(&p[..32]);
    }
    let verdicts = signature::verify_batch(
        DOMAIN,
        &keys,
        signatures,
        Messages::Fixed { data: payloads, len: READING_LEN },
    )?;
    let ok: Vec<bool> = verdicts.iter().map(|v| *v == signature::Verdict::Valid).collect();
    apply_rules(payloads, &ok, devices, stored, params)
}

/// The rules after signature checking; `signature_ok[i]` says whether
/// reading i's signature verified. Returns outcomes and the updated device
/// table (same order and layout as `devices`).
///
/// `stored` must only hold readings the device table already accounts for
/// (seq ≤ the device's last_seq): a reading can only repeat one of those.
pub fn apply_rules(
    payloads: &[u8],
    signature_ok: &[bool],
    devices: &[u8],
    stored: &[u8],
    params: Params,
) -> Result<(Vec<Outcome>, Vec<u8>), Error> {
    let n = check_len("payloads", payloads, READING_LEN)?;
    if signature_ok.len() != n {
        return Err(Error::MalformedBatch(format!(
            "{n} readings but {} signature verdicts",
            signature_ok.len()
        )));
    }
    let m = check_len("devices", devices, DEVICE_STATE_LEN)?;
    check_len("stored", stored, STORED_LEN)?;
    let mut table: Vec<DeviceState> =
        devices.chunks_exact(DEVICE_STATE_LEN).map(DeviceState::decode).collect();
    // Keys are attacker-chosen, so the map is seeded per process (no
    // precomputable collisions) yet far cheaper than SipHash on 32 bytes.
    let mut index: HashMap<[u8; 32], u32, RandomState> =
        HashMap::with_capacity_and_hasher(m, RandomState::default());
    for (i, d) in table.iter().enumerate() {
        let i = u32::try_from(i).map_err(|_| Error::MalformedBatch("more than 2^32 devices".into()))?;
        if index.insert(d.key, i).is_some() {
            return Err(Error::MalformedBatch("a device appears twice in the device table".into()));
        }
    }
    let stored: HashMap<([u8; 32], u64), [u8; 32], RandomState> =
        stored.chunks_exact(STORED_LEN).map(Stored::decode).map(|s| ((s.key, s.seq), s.digest)).collect();
    // Readings accepted in this batch, chained per device (newest first), so a
    // repeat is found without hashing every reading.
    let mut newest: Vec<u32> = vec![u32::MAX; m];
    let mut previous: Vec<u32> = vec![u32::MAX; n];
    let mut out = Vec::with_capacity(n);
    for (i, chunk) in payloads.chunks_exact(READING_LEN).enumerate() {
        let payload: &[u8; READING_LEN] =
            chunk.try_into().map_err(|_| Error::MalformedBatch("payload".into()))?;
        let reading = Reading::decode(payload);
        let Some(&device) = index.get(&reading.key) else {
            out.push(Outcome::rejected(Verdict::UnknownDevice, u32::MAX));
            continue;
        };
        if !signature_ok[i] {
            out.push(Outcome::rejected(Verdict::BadSignature, device));
            continue;
        }
        let d = device as usize;
        let state = &mut table[d];
        if state.has_baseline && reading.seq <= state.last_seq {
            if let Some(verdict) = repeat_of(&reading, payload, payloads, newest[d], &previous, &stored) {
                out.push(Outcome::rejected(verdict, device));
                continue;
            }
        }
        let outcome = judge(&reading, state, params, device)?;
        if outcome.verdict.is_accepted() {
            state.has_baseline = true;
            state.last_seq = reading.seq;
            state.last_interval_end = reading.interval_end;
            state.import_wh = reading.import_wh;
            state.export_wh = reading.export_wh;
            previous[i] = newest[d];
            newest[d] =
                u32::try_from(i).map_err(|_| Error::MalformedBatch("more than 2^32 readings".into()))?;
        }
        out.push(outcome);
    }
    let mut updated = Vec::with_capacity(devices.len());
    for d in &table {
        d.encode_into(&mut updated);
    }
    Ok((out, updated))
}

/// Duplicate or conflict, when this (device, seq) was accepted before —
/// earlier in this batch or in a stored reading.
fn repeat_of(
    reading: &Reading,
    payload: &[u8; READING_LEN],
    payloads: &[u8],
    mut cursor: u32,
    previous: &[u32],
    stored: &HashMap<([u8; 32], u64), [u8; 32], RandomState>,
) -> Option<Verdict> {
    while cursor != u32::MAX {
        let at = (cursor as usize).saturating_mul(READING_LEN);
        let earlier = &payloads[at..at.saturating_add(READING_LEN)];
        if Reading::decode(earlier.try_into().ok()?).seq == reading.seq {
            return Some(if earlier == payload { Verdict::Duplicate } else { Verdict::Conflict });
        }
        cursor = previous[cursor as usize];
    }
    let digest = stored.get(&(reading.key, reading.seq))?;
    Some(if *digest == payload_digest(payload) { Verdict::Duplicate } else { Verdict::Conflict })
}

/// Rules 4 to 10 for one reading of a known device with a valid signature.
fn judge(r: &Reading, state: &DeviceState, params: Params, device: u32) -> Result<Outcome, Error> {
    let reject = |v| Ok(Outcome::rejected(v, device));
    if !state.active {
        return reject(Verdict::DeviceNotActive);
    }
    if r.flags & !KNOWN_FLAGS != 0 {
        return reject(Verdict::ReservedFlags);
    }
    // Intervals tile the UTC day, so they line up with tariff periods and
    // with the DR baseline's days: the length divides 86 400 and the end
    // falls on a multiple of the length.
    let len = i64::from(r.interval_len);
    if !(MIN_INTERVAL_S..=MAX_INTERVAL_S).contains(&r.interval_len)
        || !MAX_INTERVAL_S.is_multiple_of(r.interval_len)
        || r.interval_end.rem_euclid(len) != 0
    {
        return reject(Verdict::InvalidInterval);
    }
    let start = r.interval_end.checked_sub(len).ok_or_else(|| overflow("interval start"))?;
    let latest = params.now.saturating_add(params.max_future_skew_s);
    let earliest = params.now.saturating_sub(params.max_age_s);
    if r.interval_end > latest || r.interval_end < earliest {
        return reject(Verdict::OutsideSkew);
    }
    let flags = if r.flags & FLAG_ESTIMATED != 0 { OUT_ESTIMATED } else { 0 };
    if !state.has_baseline {
        return Ok(Outcome {
            verdict: Verdict::Accepted,
            flags: flags | OUT_BASELINE,
            device,
            import_wh: 0,
            export_wh: 0,
            covered_from: start,
            missing: 0,
        });
    }
    if r.seq <= state.last_seq || r.interval_end <= state.last_interval_end {
        return reject(Verdict::OutOfOrder);
    }
    // The new interval may not overlap the last accepted one.
    if start < state.last_interval_end {
        return reject(Verdict::InvalidInterval);
    }
    if r.import_wh < state.import_wh || r.export_wh < state.export_wh {
        return reject(Verdict::CounterDecreased);
    }
    let import = r.import_wh.checked_sub(state.import_wh).ok_or_else(|| overflow("import delta"))?;
    let export = r.export_wh.checked_sub(state.export_wh).ok_or_else(|| overflow("export delta"))?;
    let elapsed = r.interval_end.checked_sub(state.last_interval_end).ok_or_else(|| overflow("elapsed"))?;
    let elapsed = u128::try_from(elapsed).map_err(|_| overflow("elapsed"))?;
    if beyond(import, state.max_import_w, elapsed) || beyond(export, state.max_export_w, elapsed) {
        return reject(Verdict::BeyondCapability);
    }
    let missing = r.seq.saturating_sub(state.last_seq).saturating_sub(1);
    Ok(Outcome {
        verdict: if missing > 0 { Verdict::SeqGap } else { Verdict::Accepted },
        flags: flags | if missing > 0 { OUT_GAP } else { 0 },
        device,
        import_wh: import,
        export_wh: export,
        covered_from: state.last_interval_end,
        missing,
    })
}

/// energy_wh > max_w × seconds / 3600 × 102 % + 1 Wh, in exact integers.
fn beyond(energy_wh: u64, max_w: u64, seconds: u128) -> bool {
    // u64 × u128 products fit easily: max_w < 2^64, seconds < 2^64, × 102 < 2^7.
    let limit_x_3600_x_100 = u128::from(max_w).saturating_mul(seconds).saturating_mul(TOLERANCE_PERCENT);
    let energy_x_3600_x_100 = u128::from(energy_wh).saturating_sub(TOLERANCE_WH).saturating_mul(360_000);
    energy_x_3600_x_100 > limit_x_3600_x_100
}

fn overflow(what: &str) -> Error {
    Error::Overflow(what.to_string())
}
