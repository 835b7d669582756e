//! The simulator's batch signer agrees with the verifier and names a missing seed.

use ed25519_dalek::{Signer, SigningKey};
use openvpp_core::readings::{sign, verify_signatures, verify_signatures_on, DOMAIN, READING_LEN};
use openvpp_core::signature::Spread;

fn payload(key: &SigningKey, seq: u64) -> Vec<u8> {
    let mut p = key.verifying_key().to_bytes().to_vec();
    p.extend_from_slice(&seq.to_le_bytes());
    p.resize(READING_LEN, 7);
    p
}

#[test]
fn each_reading_is_signed_by_its_own_device() {
    let keys: Vec<SigningKey> = (1..=3u8).map(|i| SigningKey::from_bytes(&[i; 32])).collect();
    let seeds: Vec<u8> = keys.iter().flat_map(|k| k.to_bytes()).collect();
    let payloads: Vec<u8> = (0..9u64).flat_map(|i| payload(&keys[(i % 3) as usize], i)).collect();
    let signatures = sign(&seeds, &payloads).unwrap();
    assert_eq!(signatures.len(), 9 * 64);
    assert!(verify_signatures(&payloads, &signatures).unwrap().iter().all(|ok| *ok));
    let message = [DOMAIN, &payloads[..READING_LEN]].concat();
    assert_eq!(&signatures[..64], &keys[0].sign(&message).to_bytes());
}

#[test]
fn a_reading_without_a_seed_is_refused() {
    let known = SigningKey::from_bytes(&[1; 32]);
    let stranger = SigningKey::from_bytes(&[2; 32]);
    let payloads = [payload(&known, 1), payload(&stranger, 1)].concat();
    let err = sign(&known.to_bytes(), &payloads).unwrap_err();
    assert!(err.to_string().contains("reading 1"), "{err}");
}

#[test]
fn verifying_on_the_calling_thread_gives_the_pool_s_verdicts() {
    let keys: Vec<SigningKey> = (1..=5u8).map(|i| SigningKey::from_bytes(&[i; 32])).collect();
    let seeds: Vec<u8> = keys.iter().flat_map(|k| k.to_bytes()).collect();
    // Enough readings for several chunks, with a forged one in a later chunk.
    let payloads: Vec<u8> = (0..2_000u64).flat_map(|i| payload(&keys[(i % 5) as usize], i)).collect();
    let mut signatures = sign(&seeds, &payloads).unwrap();
    signatures[1_500 * 64] ^= 1;
    let pooled = verify_signatures_on(&payloads, &signatures, Spread::Pool).unwrap();
    let here = verify_signatures_on(&payloads, &signatures, Spread::Caller).unwrap();
    assert_eq!(pooled, here);
    assert_eq!(here.iter().filter(|ok| !**ok).count(), 1);
    assert!(!here[1_500]);
}
