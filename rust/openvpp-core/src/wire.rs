//! Signature checks of Solana wire-format transactions, for the embedded chain.
//!
//! Only the signature list, the message header and the signer keys are read.
//! The signed message is the suffix of the wire bytes after the signatures,
//! so it is verified in place: decoding the transaction with the SDK would
//! rebuild the whole message only to encode it again for verification, which
//! for a settlement of thousands of transactions costs more than the checks.
//!
//! A transaction whose shape cannot be checked here (truncated, or with a
//! signature count that disagrees with its header) passes: the chain's own
//! decoding and sanitising refuse it with the cluster's error.

use crate::signature::{self, Messages, PackedMessages, Verdict};
use crate::Error;

const SIGNATURE_LEN: usize = 64;
const KEY_LEN: usize = 32;
const VERSION_PREFIX: u8 = 0x80;

/// The parts of one transaction a signature check needs.
struct Signed<'a> {
    signatures: &'a [u8],
    keys: &'a [u8],
    message: &'a [u8],
}

/// A compact-u16 ("short vec") length at `at`: (value, offset after it).
fn short_vec(bytes: &[u8], at: usize) -> Option<(usize, usize)> {
    let mut value = 0usize;
    for (i, shift) in [0u32, 7, 14].into_iter().enumerate() {
        let pos = at.checked_add(i)?;
        let byte = *bytes.get(pos)?;
        value |= usize::from(byte & 0x7f).checked_shl(shift)?;
        if byte & 0x80 == 0 {
            return Some((value, pos.checked_add(1)?));
        }
    }
    None
}

fn signed_parts(raw: &[u8]) -> Option<Signed<'_>> {
    let (count, at) = short_vec(raw, 0)?;
    let message_at = at.checked_add(count.checked_mul(SIGNATURE_LEN)?)?;
    let signatures = raw.get(at..message_at)?;
    let message = raw.get(message_at..)?;
    let header_at = usize::from(*message.first()? & VERSION_PREFIX != 0);
    let required = usize::from(*message.get(header_at)?);
    let keys_at = header_at.checked_add(3)?;
    let (key_count, first_key) = short_vec(message, keys_at)?;
    if required != count || key_count < count {
        return None;
    }
    let keys = message.get(first_key..first_key.checked_add(count.checked_mul(KEY_LEN)?)?)?;
    Some(Signed { signatures, keys, message })
}

/// One verdict per transaction: `true` when every required signature
/// verifies over its message (or the shape is left to the chain, see the
/// module docs), `false` when any of them does not.
pub fn verify_transactions(raws: &[&[u8]]) -> Result<Vec<bool>, Error> {
    let parts: Vec<Option<Signed>> = raws.iter().map(|raw| signed_parts(raw)).collect();
    let mut keys = Vec::new();
    let mut signatures = Vec::new();
    let mut messages = Vec::new();
    let mut offsets = vec![0u32];
    for p in parts.iter().flatten() {
        keys.extend_from_slice(p.keys);
        signatures.extend_from_slice(p.signatures);
        for _ in 0..p.signatures.len() / SIGNATURE_LEN {
            messages.extend_from_slice(p.message);
            let end = u32::try_from(messages.len())
                .map_err(|_| Error::MalformedBatch("more than 4 GiB of messages".into()))?;
            offsets.push(end);
        }
    }
    let packed = Messages::Packed(PackedMessages { data: &messages, offsets: &offsets });
    let verdicts = signature::verify_batch(b"", &keys, &signatures, packed)?;
    let mut next = verdicts.iter();
    Ok(parts
        .iter()
        .map(|p| match p {
            None => true,
            Some(p) => next.by_ref().take(p.signatures.len() / SIGNATURE_LEN).all(|v| *v == Verdict::Valid),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};

    /// A wire transaction with `signers` keys signing a v0 or legacy message.
    fn transaction(signers: &[SigningKey], versioned: bool) -> Vec<u8> {
        let count = u8::try_from(signers.len()).unwrap();
        let mut message = Vec::new();
        if versioned {
            message.push(VERSION_PREFIX);
        }
        message.extend([count, 0, 1]);
        message.push(count.checked_add(1).unwrap());
        for s in signers {
            message.extend(s.verifying_key().to_bytes());
        }
        message.extend([7u8; 32]);
        message.extend([9u8; 32]);
        message.push(0);
        let mut raw = vec![count];
        for s in signers {
            raw.extend(s.sign(&message).to_bytes());
        }
        raw.extend(message);
        raw
    }

    #[test]
    fn short_vec_reads_one_to_three_bytes() {
        assert_eq!(short_vec(&[0x05], 0), Some((5, 1)));
        assert_eq!(short_vec(&[0x80, 0x01], 0), Some((128, 2)));
        assert_eq!(short_vec(&[0xff, 0xff, 0x03], 0), Some((0xffff, 3)));
        assert_eq!(short_vec(&[0x80], 0), None);
    }

    #[test]
    fn signatures_are_checked_over_the_message_suffix() {
        let keys = [SigningKey::from_bytes(&[1; 32]), SigningKey::from_bytes(&[2; 32])];
        let good = transaction(&keys, true);
        let legacy = transaction(&keys[..1], false);
        let mut forged = good.clone();
        forged[70] ^= 1;
        let mut tampered = good.clone();
        let last = tampered.len() - 1;
        tampered[last] = 1;
        let raws: Vec<&[u8]> = vec![&good, &forged, &legacy, &tampered];
        assert_eq!(verify_transactions(&raws).unwrap(), vec![true, false, true, false]);
    }

    #[test]
    fn shapes_left_to_the_chain_pass() {
        let keys = [SigningKey::from_bytes(&[3; 32])];
        let good = transaction(&keys, true);
        let mut disagreeing = good.clone();
        disagreeing[0] = 2;
        let truncated = &good[..40];
        let raws: Vec<&[u8]> = vec![&disagreeing, truncated, &[], &good];
        assert_eq!(verify_transactions(&raws).unwrap(), vec![true, true, true, true]);
    }
}
