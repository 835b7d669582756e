//! Payout events of the settlement log, encoded here because a settlement
//! writes one per payout three times over (sent, then confirmed or failed):
//! tens of thousands of messages a second that the Python protobuf runtime
//! builds at a tenth of a settlement's time.
//!
//! The messages are the prost types generated from `proto/` (`crate::pb`);
//! the Python tests parse what this writes with the generated classes and
//! compare it with messages built there. Cursor and time are not part of a
//! stored body: the log sets them as it is read.

use prost::Message;
use prost_types::Timestamp;

use crate::pb::openvpp::v1::{settlement_event::Event, Payout, PayoutState, SettlementEvent};

/// `openvpp.v1.PayoutState`: the state also names the event's arm.
pub const SENT: i32 = PayoutState::Sent as i32;
pub const CONFIRMED: i32 = PayoutState::Confirmed as i32;
pub const FAILED: i32 = PayoutState::Failed as i32;

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
                SENT => Event::PayoutSent(payout),
                CONFIRMED => Event::PayoutConfirmed(payout),
                FAILED => Event::PayoutFailed(payout),
                other => {
                    return Err(crate::Error::MalformedBatch(format!(
                        "payout row {i}: state {other} has no event"
                    )))
                }
            };
            let event =
                SettlementEvent { program_id: row.program_id, event: Some(arm), ..Default::default() };
            Ok(event.encode_to_vec())
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
        let decoded: Vec<SettlementEvent> =
            out.iter().map(|b| SettlementEvent::decode(b.as_slice()).expect("decodes")).collect();
        assert!(matches!(decoded[0].event, Some(Event::PayoutSent(_))));
        assert!(matches!(decoded[1].event, Some(Event::PayoutConfirmed(_))));
        let Some(Event::PayoutFailed(p)) = &decoded[2].event else { panic!("failed arm") };
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
