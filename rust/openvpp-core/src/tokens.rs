//! Token-2022 use-case mints: the instructions that create one with on-chain
//! metadata (and optionally interest), and a reader for any mint's state and
//! extensions. Encodings come from the maintained SPL interface crates.

use solana_instruction::Instruction;
use solana_pubkey::Pubkey;
use spl_token_2022_interface::extension::{
    interest_bearing_mint, metadata_pointer, BaseStateWithExtensions, ExtensionType, StateWithExtensions,
};
use spl_token_2022_interface::state::Mint;
use spl_token_metadata_interface::state::{Field, TokenMetadata};

use crate::Error;

/// What a use-case mint carries on chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UseCaseMint {
    pub mint: Pubkey,
    pub mint_authority: Pubkey,
    pub metadata_authority: Pubkey,
    pub decimals: u8,
    pub name: String,
    pub symbol: String,
    pub uri: String,
    pub fields: Vec<(String, String)>,
    /// Interest in basis points per year; `None` leaves the extension out.
    pub interest_rate_bps: Option<i16>,
}

/// The mint's sizes: `space` to allocate when creating the account (fixed
/// extensions only; the metadata instruction grows it), and `total` to fund
/// for rent so the growth needs no second transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MintSizes {
    pub space: usize,
    pub total: usize,
}

fn fixed_extensions(spec: &UseCaseMint) -> Vec<ExtensionType> {
    let mut types = vec![ExtensionType::MetadataPointer];
    if spec.interest_rate_bps.is_some() {
        types.push(ExtensionType::InterestBearingConfig);
    }
    types
}

fn program_error(what: &str, e: impl std::fmt::Debug) -> Error {
    Error::MalformedBatch(format!("{what}: {e:?}"))
}

fn metadata_of(spec: &UseCaseMint) -> TokenMetadata {
    TokenMetadata {
        update_authority: Some(spec.metadata_authority).try_into().unwrap_or_default(),
        mint: spec.mint,
        name: spec.name.clone(),
        symbol: spec.symbol.clone(),
        uri: spec.uri.clone(),
        additional_metadata: spec.fields.clone(),
    }
}

pub fn mint_sizes(spec: &UseCaseMint) -> Result<MintSizes, Error> {
    let space = ExtensionType::try_calculate_account_len::<Mint>(&fixed_extensions(spec))
        .map_err(|e| program_error("mint length", e))?;
    let metadata = metadata_of(spec).tlv_size_of().map_err(|e| program_error("metadata length", e))?;
    let total = space.checked_add(metadata).ok_or_else(|| Error::Overflow("mint size".into()))?;
    Ok(MintSizes { space, total })
}

/// The Token-2022 instructions after the account is created, in the order
/// the program requires: extensions, then the mint, then its metadata.
/// Each additional field is one `UpdateField` so callers can split them
/// across transactions when they do not fit one.
pub fn use_case_mint_instructions(spec: &UseCaseMint) -> Result<Vec<Instruction>, Error> {
    let program = spl_token_2022_interface::id();
    let mut out = vec![metadata_pointer::instruction::initialize(
        &program,
        &spec.mint,
        Some(spec.metadata_authority),
        Some(spec.mint),
    )
    .map_err(|e| program_error("metadata pointer", e))?];
    if let Some(rate) = spec.interest_rate_bps {
        out.push(
            interest_bearing_mint::instruction::initialize(
                &program,
                &spec.mint,
                Some(spec.metadata_authority),
                rate,
            )
            .map_err(|e| program_error("interest", e))?,
        );
    }
    out.push(
        spl_token_2022_interface::instruction::initialize_mint2(
            &program,
            &spec.mint,
            &spec.mint_authority,
            None,
            spec.decimals,
        )
        .map_err(|e| program_error("mint", e))?,
    );
    out.push(spl_token_metadata_interface::instruction::initialize(
        &program,
        &spec.mint,
        &spec.metadata_authority,
        &spec.mint,
        &spec.mint_authority,
        spec.name.clone(),
        spec.symbol.clone(),
        spec.uri.clone(),
    ));
    for (key, value) in &spec.fields {
        out.push(spl_token_metadata_interface::instruction::update_field(
            &program,
            &spec.mint,
            &spec.metadata_authority,
            Field::Key(key.clone()),
            value.clone(),
        ));
    }
    Ok(out)
}

/// A mint as read from its account data (SPL Token or Token-2022).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MintView {
    pub supply: u64,
    pub decimals: u8,
    pub mint_authority: Option<Pubkey>,
    pub freeze_authority: Option<Pubkey>,
    /// Extension type codes in account order.
    pub extensions: Vec<u16>,
    pub metadata: Option<TokenMetadataView>,
    /// Current interest rate in basis points, when the mint bears interest.
    pub interest_rate_bps: Option<i16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenMetadataView {
    pub update_authority: Option<Pubkey>,
    pub mint: Pubkey,
    pub name: String,
    pub symbol: String,
    pub uri: String,
    pub fields: Vec<(String, String)>,
}

pub fn inspect_mint(data: &[u8]) -> Result<MintView, Error> {
    let state = StateWithExtensions::<Mint>::unpack(data).map_err(|e| program_error("not a mint", e))?;
    let extensions = state.get_extension_types().map_err(|e| program_error("extensions", e))?;
    let metadata = if extensions.contains(&ExtensionType::TokenMetadata) {
        let m =
            state.get_variable_len_extension::<TokenMetadata>().map_err(|e| program_error("metadata", e))?;
        Some(TokenMetadataView {
            update_authority: Option::<Pubkey>::from(m.update_authority),
            mint: m.mint,
            name: m.name,
            symbol: m.symbol,
            uri: m.uri,
            fields: m.additional_metadata,
        })
    } else {
        None
    };
    let interest_rate_bps = state
        .get_extension::<interest_bearing_mint::InterestBearingConfig>()
        .ok()
        .map(|c| i16::from(c.current_rate));
    Ok(MintView {
        supply: state.base.supply,
        decimals: state.base.decimals,
        mint_authority: state.base.mint_authority.into(),
        freeze_authority: state.base.freeze_authority.into(),
        extensions: extensions.into_iter().map(u16::from).collect(),
        metadata,
        interest_rate_bps,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(rate: Option<i16>) -> UseCaseMint {
        UseCaseMint {
            mint: Pubkey::new_unique(),
            mint_authority: Pubkey::new_unique(),
            metadata_authority: Pubkey::new_unique(),
            decimals: 6,
            name: "Pacific Solar Export".into(),
            symbol: "SOLAR".into(),
            uri: "https://pacific.example/tokens/solar.json".into(),
            fields: vec![("unit".into(), "kWh".into()), ("redemption_value".into(), "150000".into())],
            interest_rate_bps: rate,
        }
    }

    #[test]
    fn sizes_grow_with_the_interest_extension_and_metadata() {
        let plain = mint_sizes(&spec(None)).unwrap();
        let interest = mint_sizes(&spec(Some(250))).unwrap();
        assert!(interest.space > plain.space);
        assert!(plain.total > plain.space);
    }

    #[test]
    fn instructions_are_ordered_extensions_mint_metadata_fields() {
        let s = spec(Some(250));
        let ixs = use_case_mint_instructions(&s).unwrap();
        assert_eq!(ixs.len(), 4 + s.fields.len());
        assert!(ixs.iter().all(|ix| ix.program_id == spl_token_2022_interface::id()));
    }

    #[test]
    fn a_classic_mint_has_no_extensions() {
        let mut data = vec![0u8; 82];
        data[44] = 6; // decimals
        data[45] = 1; // initialised
        data[36..44].copy_from_slice(&5u64.to_le_bytes());
        let view = inspect_mint(&data).unwrap();
        assert_eq!((view.supply, view.decimals, view.extensions.len()), (5, 6, 0));
        assert!(view.mint_authority.is_none());
    }

    #[test]
    fn garbage_is_not_a_mint() {
        assert!(inspect_mint(&[1, 2, 3]).is_err());
    }
}
