//! The shared readings file, also read by tests/unit/test_readings.py.

use openvpp_core::readings::{stage, verify, OutcomeColumns, Params, Verdict, DEVICE_STATE_LEN};
use serde::Deserialize;
use sha2::{Digest, Sha256};

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

fn load() -> (Vectors, Vec<u8>, Vec<u8>, Params) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/vectors/readings.json");
    let v: Vectors = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let payloads: Vec<u8> = v.readings.iter().flat_map(|r| hex::decode(&r.payload).unwrap()).collect();
    let signatures: Vec<u8> = v.readings.iter().flat_map(|r| hex::decode(&r.signature).unwrap()).collect();
    let params = Params {
        now: v.params.now,
        max_future_skew_s: v.params.max_future_skew_s,
        max_age_s: v.params.max_age_s,
    };
    (v, payloads, signatures, params)
}

#[test]
fn the_batch_gets_every_expected_outcome_and_device_state() {
    let (v, payloads, signatures, params) = load();
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

#[test]
fn staging_chains_exactly_the_accepted_readings_of_each_device() {
    let (v, payloads, signatures, params) = load();
    let table = join(&v.devices);
    let (outcomes, _) = verify(&payloads, &signatures, &table, &join(&v.stored), params).unwrap();
    let devices = table.len() / DEVICE_STATE_LEN;
    // Each device starts from a head of its own, so a link taken from the wrong chain shows.
    let heads: Vec<u8> = (0..devices).flat_map(|d| [u8::try_from(d).unwrap() + 1; 32]).collect();
    let staged = stage(&payloads, &signatures, &outcomes, &heads).unwrap();
    let mut expect: Vec<[u8; 32]> = heads.chunks_exact(32).map(|h| h.try_into().unwrap()).collect();
    let mut gained = vec![0u64; devices];
    let mut kept = Vec::new();
    for (i, o) in outcomes.iter().enumerate() {
        if !o.verdict.is_accepted() {
            continue;
        }
        let d = o.device as usize;
        let payload = &payloads[i * 72..(i + 1) * 72];
        let link: [u8; 32] = Sha256::new()
            .chain_update(expect[d])
            .chain_update(payload)
            .chain_update(&signatures[i * 64..(i + 1) * 64])
            .finalize()
            .into();
        assert_eq!(staged.links[kept.len()], link, "reading {i}");
        expect[d] = link;
        gained[d] += 1;
        kept.push(i);
    }
    assert!(
        !kept.is_empty() && kept.len() < outcomes.len(),
        "the vectors accept some readings and reject others"
    );
    assert_eq!((staged.kept, staged.heads, staged.gained), (kept, expect, gained));
    // Too few heads for the devices the outcomes name is an error, not a panic.
    assert!(stage(&payloads, &signatures, &outcomes, &heads[..32]).is_err());
}

#[test]
fn outcome_columns_decode_to_the_outcomes_they_carry() {
    let (v, payloads, signatures, params) = load();
    let (outcomes, _) = verify(&payloads, &signatures, &join(&v.devices), &join(&v.stored), params).unwrap();
    let column = |f: &dyn Fn(&openvpp_core::readings::Outcome) -> Vec<u8>| -> Vec<u8> {
        outcomes.iter().flat_map(f).collect()
    };
    let (verdicts, flags) = (column(&|o| vec![o.verdict as u8]), column(&|o| vec![o.flags]));
    let device = column(&|o| o.device.to_le_bytes().to_vec());
    let import = column(&|o| o.import_wh.to_le_bytes().to_vec());
    let export = column(&|o| o.export_wh.to_le_bytes().to_vec());
    let covered = column(&|o| o.covered_from.to_le_bytes().to_vec());
    let missing = column(&|o| o.missing.to_le_bytes().to_vec());
    let mut columns = OutcomeColumns {
        verdicts: &verdicts,
        flags: &flags,
        device: &device,
        import_wh: &import,
        export_wh: &export,
        covered_from: &covered,
        missing: &missing,
    };
    assert_eq!(columns.decode().unwrap(), outcomes);
    columns.missing = &missing[8..];
    assert!(columns.decode().is_err(), "a short column");
    let unknown = vec![13u8; verdicts.len()];
    columns.missing = &missing;
    columns.verdicts = &unknown;
    assert!(columns.decode().is_err(), "an unknown verdict code");
}
