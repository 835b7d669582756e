//! Payout events of the settlement log, encoded here because a settlement
//! writes one per payout three times over (sent, then confirmed or failed):
//! tens of thousands of messages a second that the Python protobuf runtime
//! builds at a tenth of a settlement's time.
//!
//! The structs mirror `openvpp.v1.Payout` and the payout arms of
//! `openvpp.v1.SettlementEvent` field for field (same numbers, same types);
//! the Python tests parse what this writes with the generated classes and
//! compare it with messages built there. Cursor and time are not part of a
//! stored body: the log sets them as it is read.

use prost::Message;

#[derive(Clone, PartialEq, Message)]
pub struct Timestamp {
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

#[derive(Clone, PartialEq, Message)]
pub struct Payout {
    #[prost(uint64, tag = "1")]
    pub payout_id: u64,
    #[prost(string, tag = "2")]
    pub settlement_id: String,
    #[prost(string, tag = "3")]
    pub wallet: String,
    #[prost(string, tag = "4")]
    pub mint: String,
    #[prost(uint64, tag = "5")]
    pub amount_base_units: u64,
    #[prost(int32, tag = "6")]
    pub state: i32,
    #[prost(string, tag = "7")]
    pub signature: String,
    #[prost(uint32, tag = "8")]
    pub credits: u32,
    #[prost(message, optional, tag = "9")]
    pub created_at: Option<Timestamp>,
    #[prost(uint64, repeated, tag = "10")]
    pub credit_ids: Vec<u64>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum PayoutArm {
    #[prost(message, tag = "6")]
    Sent(Payout),
    #[prost(message, tag = "7")]
    Confirmed(Payout),
    #[prost(message, tag = "8")]
    Failed(Payout),
}

#[derive(Clone, PartialEq, Message)]
pub struct PayoutEvent {
    #[prost(string, tag = "3")]
    pub program_id: String,
    #[prost(oneof = "PayoutArm", tags = "6, 7, 8")]
    pub event: Option<PayoutArm>,
}

/// `openvpp.v1.PayoutState`: the state also names the event's arm.
pub const SENT: i32 = 1;
pub const CONFIRMED: i32 = 2;
pub const FAILED: i32 = 3;

/// One payout as the log describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayoutRow {
    pub payout_id: u64,
    pub program_id: String,
    pub wallet: String,
    pub mint: String,
    pub amount: u64,
    pub credits: u32,
    pub state: i32,
    pub signature: String,
    pub created_at_us: i64,
    /// The credits this payout pays (named only when it is sent).
    pub credit_ids: Vec<u64>,
}

fn timestamp(micros: i64) -> Timestamp {
    let seconds = micros.div_euclid(1_000_000);
    // rem_euclid of 1e6 is below 1e6, so it and its nanoseconds fit an i32.
    let nanos = i32::try_from(micros.rem_euclid(1_000_000).saturating_mul(1000)).unwrap_or(0);
    Timestamp { seconds, nanos }
}

/// Serialised `SettlementEvent`s, one per row, in order; a state that is
/// not SENT, CONFIRMED or FAILED is an error naming the row.
pub fn encode_payout_events(settlement_id: &str, rows: Vec<PayoutRow>) -> Result<Vec<Vec<u8>>, crate::Error> {
    rows.into_iter()
        .enumerate()
        .map(|(i, row)| {
            let payout = Payout {
                payout_id: row.payout_id,
                settlement_id: settlement_id.to_owned(),
                wallet: row.wallet,
                mint: row.mint,
                amount_base_units: row.amount,
                state: row.state,
                signature: row.signature,
                credits: row.credits,
                created_at: Some(timestamp(row.created_at_us)),
                credit_ids: row.credit_ids,
            };
            let arm = match row.state {
                SENT => PayoutArm::Sent(payout),
                CONFIRMED => PayoutArm::Confirmed(payout),
                FAILED => PayoutArm::Failed(payout),
                other => {
                    return Err(crate::Error::MalformedBatch(format!(
                        "payout row {i}: state {other} has no event"
                    )))
                }
            };
            Ok(PayoutEvent { program_id: row.program_id, event: Some(arm) }.encode_to_vec())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(state: i32, signature: &str) -> PayoutRow {
        PayoutRow {
            payout_id: 7,
            program_id: "nem".into(),
            wallet: "W".into(),
            mint: "M".into(),
            amount: 1_500,
            credits: 2,
            state,
            signature: signature.into(),
            created_at_us: 1_700_000_000_123_456,
            credit_ids: vec![3, 9],
        }
    }

    #[test]
    fn each_state_takes_its_own_arm_and_round_trips() {
        let out = encode_payout_events("s-1", vec![row(SENT, ""), row(CONFIRMED, "sig"), row(FAILED, "sig")])
            .expect("valid states");
        let decoded: Vec<PayoutEvent> =
            out.iter().map(|b| PayoutEvent::decode(b.as_slice()).expect("decodes")).collect();
        assert!(matches!(decoded[0].event, Some(PayoutArm::Sent(_))));
        assert!(matches!(decoded[1].event, Some(PayoutArm::Confirmed(_))));
        let Some(PayoutArm::Failed(p)) = &decoded[2].event else { panic!("failed arm") };
        assert_eq!(p.settlement_id, "s-1");
        assert_eq!(p.signature, "sig");
        assert_eq!(p.created_at, Some(Timestamp { seconds: 1_700_000_000, nanos: 123_456_000 }));
        assert_eq!(p.credit_ids, vec![3, 9]);
    }

    #[test]
    fn a_state_without_an_event_is_refused() {
        let err = encode_payout_events("s", vec![row(SENT, ""), row(0, "")]).expect_err("state 0");
        assert_eq!(err, crate::Error::MalformedBatch("payout row 1: state 0 has no event".into()));
    }

    #[test]
    fn times_before_the_epoch_keep_non_negative_nanos() {
        assert_eq!(timestamp(-1), Timestamp { seconds: -1, nanos: 999_999_000 });
    }
}
