//! The shared known-answer file, also read by tests/unit/test_signature_vectors.py.

use openvpp_core::signature::{verify_batch, verify_one, Messages, PackedMessages, Verdict};
use serde::Deserialize;

#[derive(Deserialize)]
struct Case {
    name: String,
    domain: String,
    public_key: String,
    message: String,
    signature: String,
    expected: String,
}

#[derive(Deserialize)]
struct Malformed {
    name: String,
    public_keys: String,
    signatures: String,
    messages: Vec<String>,
}

#[derive(Deserialize)]
struct Vectors {
    cases: Vec<Case>,
    malformed_calls: Vec<Malformed>,
}

fn load() -> Vectors {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/vectors/ed25519.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("vectors file")).expect("vectors json")
}

fn verdict_name(v: Verdict) -> &'static str {
    match v {
        Verdict::Valid => "valid",
        Verdict::BadSignature => "bad_signature",
        Verdict::MalformedPublicKey => "malformed_public_key",
        Verdict::WeakPublicKey => "weak_public_key",
        Verdict::NonCanonicalSignature => "non_canonical_signature",
    }
}

fn pack(messages: &[Vec<u8>]) -> (Vec<u8>, Vec<u32>) {
    let mut data = Vec::new();
    let mut offsets = vec![0u32];
    for m in messages {
        data.extend_from_slice(m);
        offsets.push(u32::try_from(data.len()).unwrap());
    }
    (data, offsets)
}

#[test]
fn every_case_alone() {
    for case in load().cases {
        let (data, offsets) = pack(&[hex::decode(&case.message).unwrap()]);
        let got = verify_batch(
            &hex::decode(&case.domain).unwrap(),
            &hex::decode(&case.public_key).unwrap(),
            &hex::decode(&case.signature).unwrap(),
            Messages::Packed(PackedMessages { data: &data, offsets: &offsets }),
        )
        .unwrap();
        assert_eq!(verdict_name(got[0]), case.expected, "case {}", case.name);
        let alone = verify_one(
            &hex::decode(&case.domain).unwrap(),
            &hex::decode(&case.public_key).unwrap().try_into().unwrap(),
            &hex::decode(&case.message).unwrap(),
            &hex::decode(&case.signature).unwrap().try_into().unwrap(),
        );
        assert_eq!(verdict_name(alone), case.expected, "case {} alone", case.name);
    }
}

#[test]
fn all_cases_in_one_large_batch_keep_their_verdicts() {
    // Repeated past the parallel threshold so the rayon path is exercised too.
    let cases: Vec<Case> = load().cases.into_iter().filter(|c| c.domain.is_empty()).collect();
    let mut keys = Vec::new();
    let mut sigs = Vec::new();
    let mut messages = Vec::new();
    let mut expected = Vec::new();
    for _ in 0..10 {
        for case in &cases {
            keys.extend(hex::decode(&case.public_key).unwrap());
            sigs.extend(hex::decode(&case.signature).unwrap());
            messages.push(hex::decode(&case.message).unwrap());
            expected.push(case.expected.clone());
        }
    }
    let (data, offsets) = pack(&messages);
    let got =
        verify_batch(b"", &keys, &sigs, Messages::Packed(PackedMessages { data: &data, offsets: &offsets }))
            .unwrap();
    let got: Vec<&str> = got.into_iter().map(verdict_name).collect();
    assert_eq!(got, expected);
}

#[test]
fn malformed_calls_are_errors() {
    for call in load().malformed_calls {
        let messages: Vec<Vec<u8>> = call.messages.iter().map(|m| hex::decode(m).unwrap()).collect();
        let (data, offsets) = pack(&messages);
        let result = verify_batch(
            b"",
            &hex::decode(&call.public_keys).unwrap(),
            &hex::decode(&call.signatures).unwrap(),
            Messages::Packed(PackedMessages { data: &data, offsets: &offsets }),
        );
        assert!(result.is_err(), "call {} must be refused", call.name);
    }
}
