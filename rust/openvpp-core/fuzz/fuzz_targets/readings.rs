//! Arbitrary bytes as a reading batch: decoding and the rules never panic,
//! every reading gets one verdict, and the device table keeps its shape.
#![no_main]

use libfuzzer_sys::fuzz_target;
use openvpp_core::readings::{apply_rules, Params, Reading, DEVICE_STATE_LEN, READING_LEN, STORED_LEN};

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let n = usize::from(data[0] % 16);
    let m = usize::from(data[1] % 4);
    let k = usize::from(data[2] % 4);
    let rest = &data[3..];
    let need = n * READING_LEN + m * DEVICE_STATE_LEN + k * STORED_LEN;
    if rest.len() < need {
        return;
    }
    let (payloads, rest) = rest.split_at(n * READING_LEN);
    let (devices, rest) = rest.split_at(m * DEVICE_STATE_LEN);
    let (stored, rest) = rest.split_at(k * STORED_LEN);
    for chunk in payloads.chunks_exact(READING_LEN) {
        let payload: [u8; READING_LEN] = chunk.try_into().unwrap();
        assert_eq!(Reading::decode(&payload).encode(), payload);
    }
    let ok: Vec<bool> = (0..n).map(|i| rest.get(i).is_some_and(|b| b & 1 == 1)).collect();
    let now = i64::from_le_bytes(rest.get(..8).and_then(|b| b.try_into().ok()).unwrap_or([0; 8]));
    let params = Params { now, max_future_skew_s: 300, max_age_s: 604_800 };
    if let Ok((outcomes, updated)) = apply_rules(payloads, &ok, devices, stored, params) {
        assert_eq!(outcomes.len(), n);
        assert_eq!(updated.len(), devices.len());
    }
});
