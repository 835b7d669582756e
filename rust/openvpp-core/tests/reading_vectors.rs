//! The shared readings file, also read by tests/unit/test_readings.py.

use openvpp_core::readings::{verify, Params, Verdict};
use serde::Deserialize;

#[derive(Deserialize)]
struct Expected {
    verdict: String,
    flags: u8,
    import_wh: u64,
    export_wh: u64,
    covered_from: i64,
    missing: u64,
}

#[derive(Deserialize)]
struct Item {
    name: String,
    payload: String,
    signature: String,
    expected: Expected,
}

#[derive(Deserialize)]
struct P {
    now: i64,
    max_future_skew_s: i64,
    max_age_s: i64,
}

#[derive(Deserialize)]
struct Vectors {
    params: P,
    devices: Vec<String>,
    stored: Vec<String>,
    readings: Vec<Item>,
    expected_devices: Vec<String>,
    verdicts: Vec<String>,
}

fn join(items: &[String]) -> Vec<u8> {
    items.iter().flat_map(|h| hex::decode(h).unwrap()).collect()
}

#[test]
fn the_batch_gets_every_expected_outcome_and_device_state() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/vectors/readings.json");
    let v: Vectors = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let payloads: Vec<u8> = v.readings.iter().flat_map(|r| hex::decode(&r.payload).unwrap()).collect();
    let signatures: Vec<u8> = v.readings.iter().flat_map(|r| hex::decode(&r.signature).unwrap()).collect();
    let params = Params {
        now: v.params.now,
        max_future_skew_s: v.params.max_future_skew_s,
        max_age_s: v.params.max_age_s,
    };
    let (outcomes, devices) =
        verify(&payloads, &signatures, &join(&v.devices), &join(&v.stored), params).unwrap();
    for (item, got) in v.readings.iter().zip(&outcomes) {
        assert_eq!(v.verdicts[got.verdict as usize], item.expected.verdict, "{}", item.name);
        assert_eq!(
            (got.flags, got.import_wh, got.export_wh, got.missing),
            (item.expected.flags, item.expected.import_wh, item.expected.export_wh, item.expected.missing),
            "{}",
            item.name
        );
        if got.verdict.is_accepted() {
            assert_eq!(got.covered_from, item.expected.covered_from, "{}", item.name);
        }
    }
    assert_eq!(hex::encode(devices), v.expected_devices.concat());
    assert_eq!(v.verdicts.len(), Verdict::ReservedFlags as usize + 1);
}
