//! Every packed record and code table that crosses the Python boundary,
//! declared once. `openvpp-codegen` writes `python/openvpp/_layout.py` from
//! these tables (checked in CI like the protobuf code), and the extension
//! exports `digest()` so Python refuses to run against a build whose layouts
//! differ from the generated module. The decoders of each module read the
//! offsets these tables describe; the tests below hold them to it.

use sha2::{Digest, Sha256};

use crate::{pricing, readings, settlement, signature};

/// One fixed-size field, little-endian.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Bytes(usize),
    Bool,
    U8,
    U32,
    I64,
    U64,
    /// Zero bytes, for alignment.
    Pad(usize),
}

impl Kind {
    pub const fn size(self) -> usize {
        match self {
            Kind::Bytes(n) | Kind::Pad(n) => n,
            Kind::Bool | Kind::U8 => 1,
            Kind::U32 => 4,
            Kind::I64 | Kind::U64 => 8,
        }
    }

    /// The Python `struct` code of the field.
    pub fn struct_code(self) -> String {
        match self {
            Kind::Bytes(n) => format!("{n}s"),
            Kind::Pad(n) => format!("{n}x"),
            Kind::Bool => "?".into(),
            Kind::U8 => "B".into(),
            Kind::U32 => "I".into(),
            Kind::I64 => "q".into(),
            Kind::U64 => "Q".into(),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Field {
    pub name: &'static str,
    pub kind: Kind,
}

const fn field(name: &'static str, kind: Kind) -> Field {
    Field { name, kind }
}

/// A packed record: its fields back to back, no implicit padding.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    pub name: &'static str,
    pub fields: &'static [Field],
}

impl Layout {
    #[allow(
        clippy::arithmetic_side_effects,
        reason = "evaluated at compile time, where overflow fails the build"
    )]
    pub const fn size(&self) -> usize {
        let mut total = 0;
        let mut i = 0;
        while i < self.fields.len() {
            total += self.fields[i].kind.size();
            i += 1;
        }
        total
    }

    /// Byte offset of a named field; None when the layout has no such field.
    pub fn offset(&self, name: &str) -> Option<usize> {
        let mut at = 0;
        for f in self.fields {
            if f.name == name {
                return Some(at);
            }
            at = at.saturating_add(f.kind.size());
        }
        None
    }

    /// The Python `struct` format (little-endian, no alignment).
    pub fn struct_format(&self) -> String {
        let codes: String = self.fields.iter().map(|f| f.kind.struct_code()).collect();
        format!("<{codes}")
    }

    /// Named fields in order (padding left out): what unpacking yields.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.fields.iter().filter(|f| !matches!(f.kind, Kind::Pad(_))).map(|f| f.name)
    }
}

/// The signed v1 reading payload (the public wire format of `DESIGN.md`).
pub const READING: Layout = Layout {
    name: "READING",
    fields: &[
        field("key", Kind::Bytes(32)),
        field("seq", Kind::U64),
        field("interval_end", Kind::I64),
        field("interval_len", Kind::U32),
        field("import_wh", Kind::U64),
        field("export_wh", Kind::U64),
        field("flags", Kind::U32),
    ],
};

/// What the settlement service holds per device between batches.
pub const DEVICE_STATE: Layout = Layout {
    name: "DEVICE_STATE",
    fields: &[
        field("key", Kind::Bytes(32)),
        field("active", Kind::Bool),
        field("has_baseline", Kind::Bool),
        field("", Kind::Pad(6)),
        field("last_seq", Kind::U64),
        field("last_interval_end", Kind::I64),
        field("import_wh", Kind::U64),
        field("export_wh", Kind::U64),
        field("max_import_w", Kind::U64),
        field("max_export_w", Kind::U64),
    ],
};

/// A reading already kept: (device key, seq) and SHA-256 of its payload.
pub const STORED: Layout = Layout {
    name: "STORED",
    fields: &[field("key", Kind::Bytes(32)), field("seq", Kind::U64), field("digest", Kind::Bytes(32))],
};

pub const PRICE_ITEM: Layout = Layout {
    name: "PRICE_ITEM",
    fields: &[
        field("account", Kind::U32),
        field("", Kind::Pad(4)),
        field("start", Kind::I64),
        field("end", Kind::I64),
        field("energy_wh", Kind::U64),
    ],
};

pub const PRICE_SEGMENT: Layout = Layout {
    name: "PRICE_SEGMENT",
    fields: &[field("start", Kind::I64), field("end", Kind::I64), field("rate", Kind::U64)],
};

pub const INTENT: Layout = Layout {
    name: "INTENT",
    fields: &[
        field("recipient", Kind::Bytes(32)),
        field("mint", Kind::Bytes(32)),
        field("amount", Kind::U64),
        field("create_ata", Kind::Bool),
        field("", Kind::Pad(7)),
    ],
};

pub const MINT_INFO: Layout = Layout {
    name: "MINT_INFO",
    fields: &[
        field("mint", Kind::Bytes(32)),
        field("program", Kind::U8),
        field("decimals", Kind::U8),
        field("mode", Kind::U8),
        field("", Kind::Pad(5)),
        field("source", Kind::Bytes(32)),
    ],
};

/// One netted payment of a built settlement.
pub const NETTED: Layout = Layout {
    name: "NETTED",
    fields: &[
        field("recipient", Kind::Bytes(32)),
        field("mint", Kind::Bytes(32)),
        field("amount", Kind::U64),
        field("create_ata", Kind::Bool),
        field("", Kind::Pad(3)),
        field("transaction", Kind::U32),
    ],
};

pub const LAYOUTS: &[Layout] =
    &[READING, DEVICE_STATE, STORED, PRICE_ITEM, PRICE_SEGMENT, INTENT, MINT_INFO, NETTED];

const _: () = assert!(READING.size() == readings::READING_LEN);
const _: () = assert!(DEVICE_STATE.size() == readings::DEVICE_STATE_LEN);
const _: () = assert!(STORED.size() == readings::STORED_LEN);
const _: () = assert!(PRICE_ITEM.size() == pricing::ITEM_LEN);
const _: () = assert!(PRICE_SEGMENT.size() == pricing::SEGMENT_LEN);
const _: () = assert!(INTENT.size() == settlement::INTENT_LEN);
const _: () = assert!(MINT_INFO.size() == settlement::MINT_LEN);
const _: () = assert!(NETTED.size() == settlement::INTENT_LEN);

/// A code table: an enum or a set of flag bits, by name.
#[derive(Debug, Clone, Copy)]
pub struct Codes {
    pub name: &'static str,
    /// `IntFlag` when the codes are bits that combine.
    pub flags: bool,
    /// (CamelCase name, code); generated code spells the name SCREAMING_SNAKE.
    pub members: &'static [(&'static str, u8)],
}

macro_rules! codes_of {
    ($name:literal, $ty:ident, [$($v:ident),* $(,)?]) => {
        Codes { name: $name, flags: false, members: &[$((stringify!($v), $ty::$v as u8)),*] }
    };
}

use pricing::Verdict as PriceVerdict;
use readings::Verdict as ReadingVerdict;
use settlement::Verdict as SettlementVerdict;
use signature::Verdict as SignatureVerdict;

pub const SIGNATURE_VERDICTS: Codes = codes_of!(
    "SignatureVerdict",
    SignatureVerdict,
    [Valid, BadSignature, MalformedPublicKey, WeakPublicKey, NonCanonicalSignature]
);

pub const READING_VERDICTS: Codes = codes_of!(
    "ReadingVerdict",
    ReadingVerdict,
    [
        Accepted,
        Duplicate,
        Conflict,
        BadSignature,
        UnknownDevice,
        DeviceNotActive,
        SeqGap,
        OutOfOrder,
        CounterDecreased,
        BeyondCapability,
        OutsideSkew,
        InvalidInterval,
        ReservedFlags,
    ]
);

/// The flags of an accepted reading's outcome (`SubmitReadingsResponse.flags`).
pub const READING_FLAGS: Codes = Codes {
    name: "ReadingFlag",
    flags: true,
    members: &[
        ("Estimated", readings::OUT_ESTIMATED),
        ("Baseline", readings::OUT_BASELINE),
        ("Gap", readings::OUT_GAP),
    ],
};

pub const PRICE_VERDICTS: Codes =
    codes_of!("PriceVerdict", PriceVerdict, [Priced, NoPrice, InvalidItem, Overflow]);

pub const SETTLEMENT_VERDICTS: Codes = codes_of!(
    "SettlementVerdict",
    SettlementVerdict,
    [Included, UnknownMint, NothingToPay, Overflow, TooLarge]
);

/// `MINT_INFO.program`.
pub const TOKEN_PROGRAMS: Codes = Codes {
    name: "TokenProgram",
    flags: false,
    members: &[("Token", settlement::PROGRAM_TOKEN), ("Token2022", settlement::PROGRAM_TOKEN_2022)],
};

/// `MINT_INFO.mode`: pay from a reserve account, or mint as mint authority.
pub const PAYMENT_MODES: Codes = Codes {
    name: "PaymentMode",
    flags: false,
    members: &[("Transfer", settlement::MODE_TRANSFER), ("MintTo", settlement::MODE_MINT_TO)],
};

pub const CODES: &[Codes] = &[
    SIGNATURE_VERDICTS,
    READING_VERDICTS,
    READING_FLAGS,
    PRICE_VERDICTS,
    SETTLEMENT_VERDICTS,
    TOKEN_PROGRAMS,
    PAYMENT_MODES,
];

/// Storage rows the binding builds for an ingested batch, column by column
/// in tuple order: `readings` rows, then the state values of a device row
/// (an update adds der_id and the stored count it was read with; an insert
/// puts der_id first).
pub const READING_ROW: &[&str] = &[
    "device",
    "seq",
    "interval_end",
    "covered_from",
    "import_wh",
    "export_wh",
    "flags",
    "missing",
    "payload",
    "signature",
    "chain_hash",
    "received_at_us",
    "batch_id",
];

pub const STATE_ROW: &[&str] = &[
    "has_baseline",
    "last_seq",
    "last_interval_end",
    "import_wh",
    "export_wh",
    "head_hash",
    "stored",
    "updated_at_us",
];

pub const COLUMNS: &[(&str, &[&str])] = &[("READING_ROW", READING_ROW), ("STATE_ROW", STATE_ROW)];

/// `Accepted` → `ACCEPTED`, `Token2022` → `TOKEN_2022`.
pub fn screaming(camel: &str) -> String {
    let mut out = String::new();
    let mut previous: Option<char> = None;
    for c in camel.chars() {
        let boundary = match previous {
            Some(p) => (c.is_uppercase() && !p.is_uppercase()) || (c.is_ascii_digit() && !p.is_ascii_digit()),
            None => false,
        };
        if boundary {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
        previous = Some(c);
    }
    out
}

/// Every table above as canonical text: what the digest covers.
pub fn describe() -> String {
    let mut out = String::new();
    for l in LAYOUTS {
        out.push_str(&format!("layout {} {}", l.name, l.struct_format()));
        for f in l.fields {
            out.push_str(&format!(" {}", f.name));
        }
        out.push('\n');
    }
    for c in CODES {
        out.push_str(&format!("codes {} {}", c.name, c.flags));
        for (name, code) in c.members {
            out.push_str(&format!(" {name}={code}"));
        }
        out.push('\n');
    }
    for (name, columns) in COLUMNS {
        out.push_str(&format!("columns {name} {}\n", columns.join(" ")));
    }
    out
}

/// SHA-256 of `describe()`, hex: the generated module carries the same value.
pub fn digest() -> String {
    Sha256::digest(describe().as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record whose every field holds a distinct value, packed by the table.
    fn sentinel(layout: &Layout) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, f) in layout.fields.iter().enumerate() {
            let v = u8::try_from(i.saturating_add(1)).unwrap();
            match f.kind {
                Kind::Pad(n) => out.extend(std::iter::repeat_n(0, n)),
                Kind::Bool => out.push(1),
                kind => out.extend(std::iter::repeat_n(v, kind.size())),
            }
        }
        out
    }

    fn at(layout: &Layout, name: &str) -> usize {
        layout.offset(name).unwrap()
    }

    #[test]
    fn decoders_read_the_declared_offsets() {
        let b = sentinel(&READING);
        let r = readings::Reading::decode(b[..].try_into().unwrap());
        assert_eq!(r.seq.to_le_bytes()[0], b[at(&READING, "seq")]);
        assert_eq!(r.interval_end.to_le_bytes()[0], b[at(&READING, "interval_end")]);
        assert_eq!(r.interval_len.to_le_bytes()[0], b[at(&READING, "interval_len")]);
        assert_eq!(r.import_wh.to_le_bytes()[0], b[at(&READING, "import_wh")]);
        assert_eq!(r.export_wh.to_le_bytes()[0], b[at(&READING, "export_wh")]);
        assert_eq!(r.flags.to_le_bytes()[0], b[at(&READING, "flags")]);
        assert_eq!(r.encode().to_vec(), b);

        let b = sentinel(&DEVICE_STATE);
        let s = readings::DeviceState::decode(&b);
        assert!(s.active && s.has_baseline);
        assert_eq!(s.last_seq.to_le_bytes()[0], b[at(&DEVICE_STATE, "last_seq")]);
        assert_eq!(s.last_interval_end.to_le_bytes()[0], b[at(&DEVICE_STATE, "last_interval_end")]);
        assert_eq!(s.import_wh.to_le_bytes()[0], b[at(&DEVICE_STATE, "import_wh")]);
        assert_eq!(s.export_wh.to_le_bytes()[0], b[at(&DEVICE_STATE, "export_wh")]);
        assert_eq!(s.max_import_w.to_le_bytes()[0], b[at(&DEVICE_STATE, "max_import_w")]);
        assert_eq!(s.max_export_w.to_le_bytes()[0], b[at(&DEVICE_STATE, "max_export_w")]);
        let mut again = Vec::new();
        s.encode_into(&mut again);
        assert_eq!(again, b);

        let b = sentinel(&STORED);
        let s = readings::Stored::decode(&b);
        assert_eq!(s.seq.to_le_bytes()[0], b[at(&STORED, "seq")]);
        assert_eq!(s.digest[0], b[at(&STORED, "digest")]);

        let b = sentinel(&PRICE_ITEM);
        let item = pricing::Item::decode(&b);
        assert_eq!(item.account.to_le_bytes()[0], b[at(&PRICE_ITEM, "account")]);
        assert_eq!(item.from.to_le_bytes()[0], b[at(&PRICE_ITEM, "start")]);
        assert_eq!(item.to.to_le_bytes()[0], b[at(&PRICE_ITEM, "end")]);
        assert_eq!(item.energy_wh.to_le_bytes()[0], b[at(&PRICE_ITEM, "energy_wh")]);

        let b = sentinel(&PRICE_SEGMENT);
        let seg = pricing::Segment::decode(&b);
        assert_eq!(seg.start.to_le_bytes()[0], b[at(&PRICE_SEGMENT, "start")]);
        assert_eq!(seg.end.to_le_bytes()[0], b[at(&PRICE_SEGMENT, "end")]);
        assert_eq!(seg.rate.to_le_bytes()[0], b[at(&PRICE_SEGMENT, "rate")]);

        let b = sentinel(&INTENT);
        let intent = settlement::Intent::decode(&b);
        assert_eq!(intent.mint.as_ref()[0], b[at(&INTENT, "mint")]);
        assert_eq!(intent.amount.to_le_bytes()[0], b[at(&INTENT, "amount")]);
        assert!(intent.create_ata);

        let mut b = sentinel(&MINT_INFO);
        b[at(&MINT_INFO, "program")] = settlement::PROGRAM_TOKEN_2022;
        b[at(&MINT_INFO, "mode")] = settlement::MODE_TRANSFER;
        let info = settlement::MintInfo::decode(&b).unwrap();
        assert_eq!(info.token_program, spl_token_2022_interface::id());
        assert_eq!(info.decimals, b[at(&MINT_INFO, "decimals")]);
        let settlement::Mode::Transfer { source } = info.mode else { panic!("transfer") };
        assert_eq!(source.as_ref()[0], b[at(&MINT_INFO, "source")]);
    }

    #[test]
    fn netted_records_follow_the_table() {
        let n = settlement::Netted {
            recipient: solana_pubkey::Pubkey::new_from_array([1; 32]),
            mint: solana_pubkey::Pubkey::new_from_array([2; 32]),
            amount: 0x0303_0303_0303_0303,
            create_ata: true,
            transaction: 0x0505_0505,
        };
        let b = settlement::encode_netted(&[n]);
        assert_eq!(b.len(), NETTED.size());
        assert_eq!(b[at(&NETTED, "mint")], 2);
        assert_eq!(b[at(&NETTED, "amount")], 3);
        assert_eq!(b[at(&NETTED, "create_ata")], 1);
        assert_eq!(b[at(&NETTED, "transaction")], 5);
    }

    #[test]
    fn code_tables_name_every_variant_as_the_enums_do() {
        for code in 0..=255u8 {
            let named = READING_VERDICTS.members.iter().find(|(_, c)| *c == code);
            match readings::Verdict::from_code(code) {
                Some(v) => assert_eq!(named.map(|(n, _)| *n), Some(format!("{v:?}").as_str())),
                None => assert!(named.is_none()),
            }
        }
        let debug = |table: &Codes, all: Vec<(String, u8)>| {
            let names: Vec<(String, u8)> =
                table.members.iter().map(|(n, c)| ((*n).to_string(), *c)).collect();
            assert_eq!(names, all, "{}", table.name);
        };
        use signature::Verdict as S;
        debug(
            &SIGNATURE_VERDICTS,
            [S::Valid, S::BadSignature, S::MalformedPublicKey, S::WeakPublicKey, S::NonCanonicalSignature]
                .map(|v| (format!("{v:?}"), v.code()))
                .to_vec(),
        );
        use pricing::Verdict as P;
        debug(
            &PRICE_VERDICTS,
            [P::Priced, P::NoPrice, P::InvalidItem, P::Overflow]
                .map(|v| (format!("{v:?}"), v as u8))
                .to_vec(),
        );
        use settlement::Verdict as T;
        debug(
            &SETTLEMENT_VERDICTS,
            [T::Included, T::UnknownMint, T::NothingToPay, T::Overflow, T::TooLarge]
                .map(|v| (format!("{v:?}"), v as u8))
                .to_vec(),
        );
    }

    #[test]
    fn names_become_python_constants() {
        assert_eq!(screaming("Accepted"), "ACCEPTED");
        assert_eq!(screaming("NonCanonicalSignature"), "NON_CANONICAL_SIGNATURE");
        assert_eq!(screaming("Token2022"), "TOKEN_2022");
        assert_eq!(screaming("MintTo"), "MINT_TO");
    }

    #[test]
    fn formats_match_the_sizes() {
        assert_eq!(DEVICE_STATE.struct_format(), "<32s??6xQqQQQQ");
        assert_eq!(READING.struct_format(), "<32sQqIQQI");
        assert_eq!(DEVICE_STATE.offset("last_seq"), Some(40));
        assert_eq!(digest().len(), 64);
    }
}
