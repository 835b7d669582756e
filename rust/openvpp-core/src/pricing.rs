//! Exact integer pricing of interval energy against a UTC price schedule.
//!
//! The Python side expands tariffs (time zones, DST, effective dates) into
//! UTC segments; this module only multiplies and divides, exactly:
//!
//!   amount = energy_wh × Σ(overlap_s × rate) / (duration_s × 1000 × divisor)
//!
//! where `rate` is per kWh (micro-units of the stablecoin for money, or any
//! unit for kWh and carbon rewards) and `divisor` converts the result into
//! token base units. Each item is rounded down and the remainder is carried
//! per account, so an account's credits always add up to the exact value of
//! all its energy, to the base unit. Every product is checked: an item that
//! would overflow is refused, never wrapped.

use crate::Error;

pub const ITEM_LEN: usize = 32;
pub const SEGMENT_LEN: usize = 24;
pub const CARRY_LEN: usize = 16;
pub const DAY_S: i64 = 86_400;
const WH_PER_KWH: u128 = 1_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Verdict {
    Priced = 0,
    /// Part of the interval has no price: the item waits for one.
    NoPrice = 1,
    /// Empty or reversed interval, a duration that does not divide the day,
    /// or an account outside the carry table.
    InvalidItem = 2,
    /// The exact value does not fit the integer types: refused, not wrapped.
    Overflow = 3,
}

/// Energy to price: packed as account u32, 4 zero bytes, from i64, to i64,
/// energy_wh u64 (little-endian).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Item {
    pub account: u32,
    pub from: i64,
    pub to: i64,
    pub energy_wh: u64,
}

/// A price valid on [start, end): packed as start i64, end i64, rate u64.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub start: i64,
    pub end: i64,
    pub rate: u64,
}

fn le8(b: &[u8]) -> [u8; 8] {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    a
}

impl Item {
    pub fn decode(b: &[u8]) -> Item {
        let mut account = [0u8; 4];
        account.copy_from_slice(&b[..4]);
        Item {
            account: u32::from_le_bytes(account),
            from: i64::from_le_bytes(le8(&b[8..])),
            to: i64::from_le_bytes(le8(&b[16..])),
            energy_wh: u64::from_le_bytes(le8(&b[24..])),
        }
    }
}

impl Segment {
    pub fn decode(b: &[u8]) -> Segment {
        Segment {
            start: i64::from_le_bytes(le8(b)),
            end: i64::from_le_bytes(le8(&b[8..])),
            rate: u64::from_le_bytes(le8(&b[16..])),
        }
    }
}

/// The result: one verdict, amount and exact value per item, and the carries after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Priced {
    pub verdicts: Vec<Verdict>,
    pub amounts: Vec<u64>,
    /// Each item's exact value in units of 1 / `denominator` (0 unless priced),
    /// so a statement can show what a credit was worth before rounding.
    pub values: Vec<u128>,
    /// Remainders per account, in units of 1 / `denominator`.
    pub carries: Vec<u128>,
    pub denominator: u128,
}

fn decode_all<T>(what: &str, buf: &[u8], len: usize, f: fn(&[u8]) -> T) -> Result<Vec<T>, Error> {
    if !buf.len().is_multiple_of(len) {
        return Err(Error::MalformedBatch(format!("{what}: {} bytes is not a multiple of {len}", buf.len())));
    }
    Ok(buf.chunks_exact(len).map(f).collect())
}

/// Prices packed items against packed, sorted, non-overlapping segments.
///
/// `carries` holds one u128 (16 bytes LE) per account: the remainders left
/// by earlier calls with the same `divisor`. The common denominator is
/// 86 400 × 1000 × divisor, which is why durations must divide the day.
pub fn price(items: &[u8], segments: &[u8], carries: &[u8], divisor: u64) -> Result<Priced, Error> {
    if divisor == 0 {
        return Err(Error::MalformedBatch("divisor must be positive".into()));
    }
    let items = decode_all("items", items, ITEM_LEN, Item::decode)?;
    let segments = decode_all("segments", segments, SEGMENT_LEN, Segment::decode)?;
    let mut carries = decode_all("carries", carries, CARRY_LEN, |b| {
        let mut a = [0u8; 16];
        a.copy_from_slice(b);
        u128::from_le_bytes(a)
    })?;
    if segments.iter().any(|s| s.start >= s.end) || segments.windows(2).any(|w| w[0].end > w[1].start) {
        return Err(Error::MalformedBatch("segments must be non-empty, sorted and non-overlapping".into()));
    }
    let denominator = 86_400u128
        .checked_mul(WH_PER_KWH)
        .and_then(|d| d.checked_mul(u128::from(divisor)))
        .ok_or_else(|| Error::Overflow("denominator".into()))?;
    if carries.iter().any(|c| *c >= denominator) {
        return Err(Error::MalformedBatch("a carry is not below the denominator".into()));
    }
    let mut verdicts = Vec::with_capacity(items.len());
    let mut amounts = Vec::with_capacity(items.len());
    let mut values = Vec::with_capacity(items.len());
    for item in &items {
        let mut value = 0;
        let (verdict, amount) = match price_one(item, &segments, carries.len()) {
            Ok(numerator) => {
                let slot = &mut carries[item.account as usize];
                let split = slot.checked_add(numerator).and_then(|total| {
                    Some((total.checked_div(denominator)?, total.checked_rem(denominator)?))
                });
                match split {
                    Some((whole, rest)) => match u64::try_from(whole) {
                        Ok(amount) => {
                            *slot = rest;
                            value = numerator;
                            (Verdict::Priced, amount)
                        }
                        Err(_) => (Verdict::Overflow, 0),
                    },
                    None => (Verdict::Overflow, 0),
                }
            }
            Err(verdict) => (verdict, 0),
        };
        verdicts.push(verdict);
        amounts.push(amount);
        values.push(value);
    }
    Ok(Priced { verdicts, amounts, values, carries, denominator })
}

/// energy × Σ(overlap × rate) × (86 400 / duration): the item's exact value
/// in units of 1 / denominator.
fn price_one(item: &Item, segments: &[Segment], accounts: usize) -> Result<u128, Verdict> {
    if item.account as usize >= accounts || item.from >= item.to {
        return Err(Verdict::InvalidItem);
    }
    let duration = item.to.checked_sub(item.from).ok_or(Verdict::InvalidItem)?;
    if duration > DAY_S || DAY_S.checked_rem(duration) != Some(0) {
        return Err(Verdict::InvalidItem);
    }
    let first = segments.partition_point(|s| s.end <= item.from);
    let mut covered = item.from;
    let mut weighted: u128 = 0;
    for segment in &segments[first..] {
        if segment.start >= item.to {
            break;
        }
        if segment.start > covered {
            return Err(Verdict::NoPrice);
        }
        let until = segment.end.min(item.to);
        let overlap = until.checked_sub(covered).ok_or(Verdict::Overflow)?;
        let overlap = u128::try_from(overlap).map_err(|_| Verdict::Overflow)?;
        let part = overlap.checked_mul(u128::from(segment.rate)).ok_or(Verdict::Overflow)?;
        weighted = weighted.checked_add(part).ok_or(Verdict::Overflow)?;
        covered = until;
    }
    if covered < item.to {
        return Err(Verdict::NoPrice);
    }
    let scale = u128::try_from(DAY_S.checked_div(duration).ok_or(Verdict::InvalidItem)?)
        .map_err(|_| Verdict::InvalidItem)?;
    weighted
        .checked_mul(u128::from(item.energy_wh))
        .and_then(|v| v.checked_mul(scale))
        .ok_or(Verdict::Overflow)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(account: u32, from: i64, to: i64, wh: u64) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&account.to_le_bytes());
        b.extend_from_slice(&[0; 4]);
        b.extend_from_slice(&from.to_le_bytes());
        b.extend_from_slice(&to.to_le_bytes());
        b.extend_from_slice(&wh.to_le_bytes());
        b
    }

    fn segment(start: i64, end: i64, rate: u64) -> Vec<u8> {
        [start.to_le_bytes(), end.to_le_bytes(), rate.to_le_bytes()].concat()
    }

    #[test]
    fn thirds_of_a_base_unit_add_up_exactly() {
        // 1 Wh at 1000 micro/kWh is 1 micro; with divisor 3 each item is 1/3.
        let items: Vec<u8> = (0..3).flat_map(|_| item(0, 0, 900, 1)).collect();
        let out = price(&items, &segment(0, 900, 1000), &[0; 16], 3).unwrap();
        assert_eq!(out.amounts, vec![0, 0, 1]);
        assert_eq!(out.carries, vec![0]);
        // Each third is worth 1/3 of a base unit: 86 400 × 1000 × 3 / 3 units of 1 / denominator.
        assert_eq!(out.values, vec![86_400_000; 3]);
        assert_eq!(out.denominator, 259_200_000);
    }

    #[test]
    fn an_interval_across_a_tariff_boundary_is_split_by_time() {
        let segments = [segment(0, 450, 100_000), segment(450, 3600, 300_000)].concat();
        let out = price(&item(0, 0, 900, 2_000), &segments, &[0; 16], 1).unwrap();
        // 1 kWh at 0.10 and 1 kWh at 0.30 (micro-units): 400 000.
        assert_eq!(out.amounts, vec![400_000]);
    }

    #[test]
    fn gaps_reversed_items_and_overflow_are_verdicts() {
        let segments = [segment(0, 300, 1), segment(600, 900, 1)].concat();
        let items = [item(0, 0, 900, 1), item(0, 900, 0, 1), item(1, 0, 300, 1), item(0, 0, 700, 1)].concat();
        let out = price(&items, &segments, &[0; 16], 1).unwrap();
        assert_eq!(
            out.verdicts,
            vec![Verdict::NoPrice, Verdict::InvalidItem, Verdict::InvalidItem, Verdict::InvalidItem]
        );
        let huge = price(&item(0, 0, 60, u64::MAX), &segment(0, 60, u64::MAX), &[0; 16], 1).unwrap();
        assert_eq!(huge.verdicts, vec![Verdict::Overflow]);
        assert_eq!(huge.carries, vec![0]);
    }

    #[test]
    fn overlapping_segments_are_a_malformed_call() {
        let segments = [segment(0, 600, 1), segment(300, 900, 1)].concat();
        assert!(price(&item(0, 0, 900, 1), &segments, &[0; 16], 1).is_err());
    }
}
