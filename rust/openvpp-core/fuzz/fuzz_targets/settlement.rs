//! Arbitrary intents and mint tables: building never panics, and every
//! transaction it returns fits the size limit and decodes again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use openvpp_core::settlement::{build, Config, INTENT_LEN, MAX_TRANSACTION_SIZE, MINT_LEN};
use solana_hash::Hash;
use solana_keypair::Keypair;
use solana_transaction::versioned::VersionedTransaction;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let mints = usize::from(data[0] % 3) * MINT_LEN;
    let rest = &data[1..];
    if rest.len() < mints {
        return;
    }
    let (mint_bytes, intent_bytes) = rest.split_at(mints);
    let whole = intent_bytes.len() / INTENT_LEN * INTENT_LEN;
    let config = Config {
        payer: Keypair::new_from_array([7; 32]),
        authority: Keypair::new_from_array([9; 32]),
        blockhash: Hash::new_from_array([1; 32]),
        compute_unit_price: 1,
        compute_units_per_transfer: 10_000,
        compute_units_per_ata: 30_000,
        max_account_locks: 64,
        lookup_table: None,
        memo: None,
        memo_index_base: 0,
        batch_payments: data[0] & 0x80 != 0,
    };
    if let Ok(batch) = build(&intent_bytes[..whole], mint_bytes, &config) {
        assert_eq!(batch.verdicts.len(), whole / INTENT_LEN);
        for raw in &batch.transactions {
            assert!(raw.len() <= MAX_TRANSACTION_SIZE);
            let tx: VersionedTransaction = wincode::deserialize(raw).expect("decodes");
            assert!(!tx.signatures.is_empty());
        }
    }
});
