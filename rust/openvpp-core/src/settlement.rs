//! Batch settlement building: net pending credits, pack token transfers into
//! as few v0 transactions as fit, sign them.
//!
//! The wire format comes from the maintained Solana crates (message
//! compilation, instruction builders for SPL Token, Token-2022 and the
//! associated-token-account program); this module only decides what goes
//! into which transaction.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{OnceLock, RwLock};

use foldhash::fast::RandomState;
use rayon::prelude::*;

use sha2::{Digest, Sha256};
use solana_compute_budget_interface::ComputeBudgetInstruction;
use solana_hash::Hash;
use solana_instruction::Instruction;
use solana_keypair::Keypair;
use solana_message::{v0, AddressLookupTableAccount, VersionedMessage};
use solana_pubkey::Pubkey;
use solana_signer::Signer;
use solana_transaction::versioned::VersionedTransaction;
use spl_token_2022_interface::instruction as token;

use crate::Error;

pub const INTENT_LEN: usize = 80;
pub const MINT_LEN: usize = 72;
/// IPv6 minimum MTU minus headers: the largest transaction a validator accepts.
pub const MAX_TRANSACTION_SIZE: usize = 1232;
const DIGEST_DOMAIN: &[u8] = b"openvpp/settlement-batch/v1";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Verdict {
    /// Netted into transfer `netted` of the batch.
    Included = 0,
    /// The intent's mint is not in the mint table.
    UnknownMint = 1,
    /// Nothing to pay: the amount (or the recipient's net) is zero.
    NothingToPay = 2,
    /// The recipient's net amount does not fit in a u64.
    Overflow = 3,
    /// Even alone, this transfer does not fit one transaction.
    TooLarge = 4,
}

/// `MintInfo` program codes (see `layout::TOKEN_PROGRAMS`).
pub const PROGRAM_TOKEN: u8 = 0;
pub const PROGRAM_TOKEN_2022: u8 = 1;
/// `MintInfo` mode codes (see `layout::PAYMENT_MODES`).
pub const MODE_TRANSFER: u8 = 0;
pub const MODE_MINT_TO: u8 = 1;

/// How a mint's credits are paid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// TransferChecked from `source` (a reserve or treasury token account).
    Transfer { source: Pubkey },
    /// MintToChecked with the authority as mint authority.
    MintTo,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MintInfo {
    pub mint: Pubkey,
    pub token_program: Pubkey,
    pub decimals: u8,
    pub mode: Mode,
}

fn pubkey(b: &[u8]) -> Pubkey {
    let mut a = [0u8; 32];
    a.copy_from_slice(&b[..32]);
    Pubkey::new_from_array(a)
}

impl MintInfo {
    /// Packed as mint[32], program u8 (0 Token, 1 Token-2022), decimals u8,
    /// mode u8 (0 transfer, 1 mint-to), 5 zero bytes, source[32].
    pub fn decode(b: &[u8]) -> Result<MintInfo, Error> {
        let token_program = match b[32] {
            PROGRAM_TOKEN => spl_token_2022_interface::inline_spl_token::id(),
            PROGRAM_TOKEN_2022 => spl_token_2022_interface::id(),
            other => return Err(Error::MalformedBatch(format!("unknown token program code {other}"))),
        };
        let mode = match b[34] {
            MODE_TRANSFER => Mode::Transfer { source: pubkey(&b[40..]) },
            MODE_MINT_TO => Mode::MintTo,
            other => return Err(Error::MalformedBatch(format!("unknown payment mode {other}"))),
        };
        Ok(MintInfo { mint: pubkey(b), token_program, decimals: b[33], mode })
    }
}

/// One pending credit: packed as recipient[32] (the wallet, not its token
/// account), mint[32], amount u64 LE, create_ata u8, 7 zero bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Intent {
    pub recipient: Pubkey,
    pub mint: Pubkey,
    pub amount: u64,
    pub create_ata: bool,
}

impl Intent {
    pub fn decode(b: &[u8]) -> Intent {
        let mut amount = [0u8; 8];
        amount.copy_from_slice(&b[64..72]);
        Intent {
            recipient: pubkey(b),
            mint: pubkey(&b[32..]),
            amount: u64::from_le_bytes(amount),
            create_ata: b[72] != 0,
        }
    }
}

pub struct Config {
    pub payer: Keypair,
    pub authority: Keypair,
    pub blockhash: Hash,
    /// Priority fee, micro-lamports per compute unit; 0 leaves it out.
    pub compute_unit_price: u64,
    pub compute_units_per_transfer: u32,
    pub compute_units_per_ata: u32,
    pub max_account_locks: usize,
    pub lookup_table: Option<AddressLookupTableAccount>,
    /// Memo prefix written into every transaction as `prefix:NNNNNN` (the
    /// transaction's index from `memo_index_base`). It names the settlement
    /// on chain, and it keeps two settlements that pay the same amounts to
    /// the same wallets under one blockhash from being the same transaction
    /// (which the chain would drop as a duplicate).
    pub memo: Option<Vec<u8>>,
    pub memo_index_base: u32,
    /// Pay through one `Batch` instruction per token program and transaction
    /// (see `batched`); off for clusters whose token programs predate it.
    pub batch_payments: bool,
}

/// The SPL Memo program (v2).
pub const MEMO_PROGRAM: Pubkey = Pubkey::from_str_const("MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr");
const COMPUTE_UNITS_PER_MEMO: u32 = 5_000;

/// A recipient's net credit in one mint, and the transaction that pays it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Netted {
    pub recipient: Pubkey,
    pub mint: Pubkey,
    pub amount: u64,
    pub create_ata: bool,
    pub transaction: u32,
}

/// Netted payments packed as `layout::NETTED` records.
pub fn encode_netted(netted: &[Netted]) -> Vec<u8> {
    let mut out = Vec::with_capacity(netted.len().saturating_mul(INTENT_LEN));
    for n in netted {
        out.extend_from_slice(n.recipient.as_ref());
        out.extend_from_slice(n.mint.as_ref());
        out.extend_from_slice(&n.amount.to_le_bytes());
        out.push(u8::from(n.create_ata));
        out.extend_from_slice(&[0u8; 3]);
        out.extend_from_slice(&n.transaction.to_le_bytes());
    }
    out
}

pub struct Batch {
    pub transactions: Vec<Vec<u8>>,
    pub signatures: Vec<[u8; 64]>,
    pub netted: Vec<Netted>,
    /// Per input intent: verdict, and the index into `netted` when included.
    pub verdicts: Vec<(Verdict, u32)>,
    /// SHA-256 over the netted transfers: the same intents give the same
    /// digest whatever their order, blockhash or packing.
    pub digest: [u8; 32],
}

/// Derived token-account addresses, kept across batches: the same
/// prosumers are paid every cycle, and each derivation hashes and tests
/// curve points until it finds an address off the curve. Emptied when full.
type AtaCache = RwLock<HashMap<(Pubkey, Pubkey, Pubkey), Pubkey, RandomState>>;
static ATA_CACHE: OnceLock<AtaCache> = OnceLock::new();
const ATA_CACHE_ENTRIES: usize = 1 << 17;

fn ata_cache() -> &'static AtaCache {
    ATA_CACHE.get_or_init(|| RwLock::new(HashMap::with_hasher(RandomState::default())))
}

fn remember_ata(owner: &Pubkey, mint: &Pubkey, program: &Pubkey, address: Pubkey) {
    if let Ok(mut c) = ata_cache().write() {
        if c.len() >= ATA_CACHE_ENTRIES {
            c.clear();
        }
        c.insert((*owner, *mint, *program), address);
    }
}

pub fn associated_token_address(owner: &Pubkey, mint: &Pubkey, program: &Pubkey) -> Pubkey {
    if let Some(address) = ata_cache().read().ok().and_then(|c| c.get(&(*owner, *mint, *program)).copied()) {
        return address;
    }
    let address =
        spl_associated_token_account_interface::address::get_associated_token_address_with_program_id(
            owner, mint, program,
        );
    remember_ata(owner, mint, program, address);
    address
}

fn instructions_for(
    n: &Netted,
    info: &MintInfo,
    payer: &Pubkey,
    authority: &Pubkey,
) -> Result<Vec<Instruction>, Error> {
    let mut out = Vec::with_capacity(2);
    // The ATA builder derives the account address; reuse it rather than
    // derive it twice (each derivation hashes until it leaves the curve).
    let destination = if n.create_ata {
        let create =
            spl_associated_token_account_interface::instruction::create_associated_token_account_idempotent(
                payer,
                &n.recipient,
                &n.mint,
                &info.token_program,
            );
        let address = create.accounts[1].pubkey;
        remember_ata(&n.recipient, &n.mint, &info.token_program, address);
        out.push(create);
        address
    } else {
        associated_token_address(&n.recipient, &n.mint, &info.token_program)
    };
    // The Token-2022 builders accept either token program id, and the two
    // programs share these instructions' layouts.
    let program = info.token_program;
    let pay = match info.mode {
        Mode::Transfer { source } => token::transfer_checked(
            &program,
            &source,
            &n.mint,
            &destination,
            authority,
            &[],
            n.amount,
            info.decimals,
        ),
        Mode::MintTo => {
            token::mint_to_checked(&program, &n.mint, &destination, authority, &[], n.amount, info.decimals)
        }
    }
    .map_err(|e| Error::Internal(format!("token instruction: {e}")))?;
    out.push(pay);
    Ok(out)
}

/// The token programs' `Batch` instruction: runs several of the program's
/// own instructions in one invocation. Its data is this tag, then per inner
/// instruction its account count and data length (a byte each) and its
/// data; its accounts are the inner instructions' accounts in order.
const BATCH_TAG: u8 = 255;
/// Upper bound of the bytes a `Batch` adds to a transaction over its inner
/// instructions sent one by one: its program index, tag and two length
/// prefixes. Each inner instruction sheds a byte of framing (three become
/// two), which more than pays for longer prefixes once they pass 127.
const BATCH_OVERHEAD: usize = 4;

fn is_token_program(program: &Pubkey) -> bool {
    *program == spl_token_2022_interface::id() || *program == spl_token_2022_interface::inline_spl_token::id()
}

/// `body` with each token program's payments merged into one `Batch`,
/// placed after every other instruction (the token accounts they pay are
/// created by those). A program invocation costs the VM far more than the
/// token logic it runs (a fresh stack, heap and serialised accounts each
/// time), so one invocation instead of one per payment runs a full payout
/// transaction in about a third of the time. A program with a single
/// payment keeps the plain instruction.
fn batched(body: &[Instruction]) -> Vec<Instruction> {
    let mut out: Vec<Instruction> =
        body.iter().filter(|ix| !is_token_program(&ix.program_id)).cloned().collect();
    let mut programs: Vec<Pubkey> = Vec::new();
    for ix in body.iter().filter(|ix| is_token_program(&ix.program_id)) {
        if !programs.contains(&ix.program_id) {
            programs.push(ix.program_id);
        }
    }
    for program in programs {
        let payments: Vec<&Instruction> = body.iter().filter(|ix| ix.program_id == program).collect();
        let framed: Option<Vec<(u8, u8)>> = payments
            .iter()
            .map(|ix| Some((u8::try_from(ix.accounts.len()).ok()?, u8::try_from(ix.data.len()).ok()?)))
            .collect();
        match framed {
            Some(frames) if payments.len() > 1 => {
                let mut data = vec![BATCH_TAG];
                let mut accounts = Vec::new();
                for (ix, (count, len)) in payments.iter().zip(frames) {
                    data.extend_from_slice(&[count, len]);
                    data.extend_from_slice(&ix.data);
                    accounts.extend(ix.accounts.iter().cloned());
                }
                out.push(Instruction { program_id: program, accounts, data });
            }
            _ => out.extend(payments.into_iter().cloned()),
        }
    }
    out
}

/// Running net of one (mint, recipient): the sum (None once it overflowed),
/// whether any intent asked for the token account, and the intents in it.
type Group = (Option<u64>, bool, Vec<usize>);

/// Nets intents per (recipient, mint) in a deterministic order.
fn net(intents: &[Intent], mints: &BTreeMap<Pubkey, MintInfo>) -> (Vec<Netted>, Vec<(Verdict, u32)>) {
    let mut groups: BTreeMap<(Pubkey, Pubkey), Group> = BTreeMap::new();
    let mut verdicts = vec![(Verdict::NothingToPay, u32::MAX); intents.len()];
    for (i, intent) in intents.iter().enumerate() {
        if !mints.contains_key(&intent.mint) {
            verdicts[i] = (Verdict::UnknownMint, u32::MAX);
            continue;
        }
        if intent.amount == 0 {
            continue;
        }
        let entry = groups.entry((intent.mint, intent.recipient)).or_insert((Some(0), false, Vec::new()));
        entry.0 = entry.0.and_then(|sum| sum.checked_add(intent.amount));
        entry.1 |= intent.create_ata;
        entry.2.push(i);
    }
    let mut netted = Vec::with_capacity(groups.len());
    for ((mint, recipient), (sum, create_ata, members)) in groups {
        let Some(amount) = sum else {
            for i in members {
                verdicts[i] = (Verdict::Overflow, u32::MAX);
            }
            continue;
        };
        let index = u32::try_from(netted.len()).unwrap_or(u32::MAX);
        for i in members {
            verdicts[i] = (Verdict::Included, index);
        }
        netted.push(Netted { recipient, mint, amount, create_ata, transaction: u32::MAX });
    }
    (netted, verdicts)
}

fn digest(netted: &[Netted]) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(DIGEST_DOMAIN);
    hash.update((netted.len() as u64).to_le_bytes());
    for n in netted {
        hash.update(n.recipient.as_ref());
        hash.update(n.mint.as_ref());
        hash.update(n.amount.to_le_bytes());
        hash.update([u8::from(n.create_ata)]);
    }
    hash.finalize().into()
}

struct Packer<'a> {
    config: &'a Config,
    tables: Vec<AddressLookupTableAccount>,
    table_keys: HashSet<Pubkey, RandomState>,
    signers: usize,
}

fn shortvec_len(n: usize) -> usize {
    match n {
        0..=0x7f => 1,
        0x80..=0x3fff => 2,
        _ => 3,
    }
}

fn instruction_len(ix: &Instruction) -> usize {
    1usize
        .saturating_add(shortvec_len(ix.accounts.len()))
        .saturating_add(ix.accounts.len())
        .saturating_add(shortvec_len(ix.data.len()))
        .saturating_add(ix.data.len())
}

/// A running upper bound on the size of the transaction being filled, so
/// the message compiler (which gives the exact answer) runs about twice per
/// transaction instead of once per candidate transfer. Only the decision
/// "certainly fits" is taken from the bound; everything else is compiled.
#[derive(Clone, Default)]
struct Estimate {
    keys: HashSet<Pubkey, RandomState>,
    invoked: HashSet<Pubkey, RandomState>,
    signers: HashSet<Pubkey, RandomState>,
    instructions: usize,
    instruction_bytes: usize,
}

impl Estimate {
    fn add(&mut self, ixs: &[Instruction]) {
        for ix in ixs {
            self.keys.insert(ix.program_id);
            self.invoked.insert(ix.program_id);
            for meta in &ix.accounts {
                self.keys.insert(meta.pubkey);
                if meta.is_signer {
                    self.signers.insert(meta.pubkey);
                }
            }
            self.instructions = self.instructions.saturating_add(1);
            self.instruction_bytes = self.instruction_bytes.saturating_add(instruction_len(ix));
        }
    }

    /// (transaction size bound, exact number of account locks).
    fn bound(&self, packer: &Packer) -> (usize, usize) {
        let loaded = self
            .keys
            .iter()
            .filter(|k| {
                packer.table_keys.contains(*k) && !self.invoked.contains(*k) && !self.signers.contains(*k)
            })
            .count();
        let statics = self.keys.len().saturating_sub(loaded);
        let batches = if packer.config.batch_payments {
            self.invoked.iter().filter(|p| is_token_program(p)).count().saturating_mul(BATCH_OVERHEAD)
        } else {
            0
        };
        let lookups = if packer.tables.is_empty() {
            1
        } else {
            1usize
                .saturating_add(32)
                .saturating_add(shortvec_len(loaded).saturating_mul(2))
                .saturating_add(loaded)
        };
        let message = 1usize // version prefix
            .saturating_add(3) // header
            .saturating_add(shortvec_len(statics))
            .saturating_add(statics.saturating_mul(32))
            .saturating_add(32) // blockhash
            .saturating_add(shortvec_len(self.instructions))
            .saturating_add(self.instruction_bytes)
            .saturating_add(batches)
            .saturating_add(lookups);
        let size = 1usize.saturating_add(packer.signers.saturating_mul(64)).saturating_add(message);
        (size, self.keys.len())
    }
}

impl Packer<'_> {
    /// The fixed head of transaction `index`: compute budget and memo. The
    /// memo's index is zero-padded, so every transaction's head has the same size.
    fn budget(&self, transfers: u32, atas: u32, index: u32) -> Vec<Instruction> {
        let memo_units = if self.config.memo.is_some() { COMPUTE_UNITS_PER_MEMO } else { 0 };
        let units = transfers
            .saturating_mul(self.config.compute_units_per_transfer)
            .saturating_add(atas.saturating_mul(self.config.compute_units_per_ata))
            .saturating_add(memo_units);
        let mut out = vec![ComputeBudgetInstruction::set_compute_unit_limit(units)];
        if self.config.compute_unit_price > 0 {
            out.push(ComputeBudgetInstruction::set_compute_unit_price(self.config.compute_unit_price));
        }
        if let Some(prefix) = &self.config.memo {
            let mut data = prefix.clone();
            data.extend_from_slice(
                format!(":{:06}", self.config.memo_index_base.saturating_add(index)).as_bytes(),
            );
            out.push(Instruction { program_id: MEMO_PROGRAM, accounts: Vec::new(), data });
        }
        out
    }

    /// An estimate holding the payer and the compute-budget instructions.
    fn empty_estimate(&self) -> Estimate {
        let mut e = Estimate::default();
        e.keys.insert(self.config.payer.pubkey());
        e.signers.insert(self.config.payer.pubkey());
        e.add(&self.budget(0, 0, 0));
        e
    }

    /// The compiled message, if it fits the size and account-lock limits.
    fn compile(
        &self,
        body: &[Instruction],
        transfers: u32,
        atas: u32,
        index: u32,
    ) -> Result<Option<v0::Message>, Error> {
        let mut all = self.budget(transfers, atas, index);
        if self.config.batch_payments {
            all.extend(batched(body));
        } else {
            all.extend_from_slice(body);
        }
        let message = v0::Message::try_compile(
            &self.config.payer.pubkey(),
            &all,
            &self.tables,
            self.config.blockhash.clone(),
        )
        .map_err(|e| Error::Internal(format!("message compilation: {e}")))?;
        let locks = message.account_keys.len().saturating_add(
            message
                .address_table_lookups
                .iter()
                .map(|l| l.writable_indexes.len().saturating_add(l.readonly_indexes.len()))
                .sum(),
        );
        let message_len = VersionedMessage::V0(message.clone()).serialize().len();
        // shortvec(signature count) is one byte below 128 signatures.
        let size = 1usize.saturating_add(self.signers.saturating_mul(64)).saturating_add(message_len);
        Ok((size <= MAX_TRANSACTION_SIZE && locks <= self.config.max_account_locks).then_some(message))
    }

    fn certainly_fits(&self, estimate: &Estimate) -> bool {
        let (size, locks) = estimate.bound(self);
        size <= MAX_TRANSACTION_SIZE && locks <= self.config.max_account_locks
    }

    fn sign(&self, message: v0::Message) -> Result<(Vec<u8>, [u8; 64]), Error> {
        let keys: Vec<&Keypair> = if self.config.authority.pubkey() == self.config.payer.pubkey() {
            vec![&self.config.payer]
        } else {
            vec![&self.config.payer, &self.config.authority]
        };
        let tx = VersionedTransaction::try_new(VersionedMessage::V0(message), &keys)
            .map_err(|e| Error::Internal(format!("signing: {e}")))?;
        let bytes = wincode::serialize(&tx).map_err(|e| Error::Internal(format!("serialising: {e}")))?;
        let signature: [u8; 64] = tx.signatures[0].into();
        Ok((bytes, signature))
    }
}

/// The transaction being filled.
struct Open {
    body: Vec<Instruction>,
    members: Vec<usize>,
    estimate: Estimate,
    transfers: u32,
    atas: u32,
}

/// Nets, packs and signs. See the module docs.
pub fn build(intents: &[u8], mints: &[u8], config: &Config) -> Result<Batch, Error> {
    if !intents.len().is_multiple_of(INTENT_LEN) || !mints.len().is_multiple_of(MINT_LEN) {
        return Err(Error::MalformedBatch(format!(
            "intents must be {INTENT_LEN}-byte records and mints {MINT_LEN}-byte records"
        )));
    }
    let mut table = BTreeMap::new();
    for chunk in mints.chunks_exact(MINT_LEN) {
        let info = MintInfo::decode(chunk)?;
        if table.insert(info.mint, info).is_some() {
            return Err(Error::MalformedBatch(format!("mint {} appears twice", info.mint)));
        }
    }
    let intents: Vec<Intent> = intents.chunks_exact(INTENT_LEN).map(Intent::decode).collect();
    let (mut netted, mut verdicts) = net(&intents, &table);
    let signers = if config.authority.pubkey() == config.payer.pubkey() { 1 } else { 2 };
    let tables: Vec<AddressLookupTableAccount> = config.lookup_table.iter().cloned().collect();
    let table_keys = tables.iter().flat_map(|t| t.addresses.iter().copied()).collect();
    let packer = Packer { config, tables, table_keys, signers };
    let payer = config.payer.pubkey();
    let authority = config.authority.pubkey();

    let mut messages = Vec::new();
    let mut too_large = Vec::new();
    // Address derivation dominates instruction building; it parallelises.
    let groups: Vec<Vec<Instruction>> = netted
        .par_iter()
        .map(|n| instructions_for(n, &table[&n.mint], &payer, &authority))
        .collect::<Result<_, _>>()?;
    let new_open = || Open {
        body: Vec::new(),
        members: Vec::new(),
        estimate: packer.empty_estimate(),
        transfers: 0,
        atas: 0,
    };
    let mut open = new_open();
    for (i, group) in groups.into_iter().enumerate() {
        let index = u32::try_from(messages.len()).unwrap_or(u32::MAX);
        let adds_ata = u32::from(netted[i].create_ata);
        let mut estimate = open.estimate.clone();
        estimate.add(&group);
        let fits = packer.certainly_fits(&estimate) || {
            let mut candidate = open.body.clone();
            candidate.extend(group.iter().cloned());
            packer
                .compile(
                    &candidate,
                    open.transfers.saturating_add(1),
                    open.atas.saturating_add(adds_ata),
                    index,
                )?
                .is_some()
        };
        if fits {
            open.body.extend(group);
            open.members.push(i);
            open.estimate = estimate;
            open.transfers = open.transfers.saturating_add(1);
            open.atas = open.atas.saturating_add(adds_ata);
            continue;
        }
        if !open.members.is_empty() {
            flush(&packer, &mut open, &mut netted, &mut messages)?;
        }
        open = new_open();
        let index = u32::try_from(messages.len()).unwrap_or(u32::MAX);
        if packer.compile(&group, 1, adds_ata, index)?.is_some() {
            open.estimate.add(&group);
            open.body = group;
            open.members.push(i);
            open.transfers = 1;
            open.atas = adds_ata;
        } else {
            too_large.push(i);
        }
    }
    if !open.members.is_empty() {
        flush(&packer, &mut open, &mut netted, &mut messages)?;
    }
    for v in &mut verdicts {
        if v.0 == Verdict::Included && too_large.contains(&(v.1 as usize)) {
            *v = (Verdict::TooLarge, v.1);
        }
    }
    // Packing is sequential; signing each finished message is not.
    let signed: Vec<(Vec<u8>, [u8; 64])> =
        messages.into_par_iter().map(|m| packer.sign(m)).collect::<Result<_, _>>()?;
    let (transactions, signatures) = signed.into_iter().unzip();
    let digest = digest(&netted);
    Ok(Batch { transactions, signatures, netted, verdicts, digest })
}

fn flush(
    packer: &Packer,
    open: &mut Open,
    netted: &mut [Netted],
    messages: &mut Vec<v0::Message>,
) -> Result<(), Error> {
    let index =
        u32::try_from(messages.len()).map_err(|_| Error::MalformedBatch("too many transactions".into()))?;
    let message = packer
        .compile(&open.body, open.transfers, open.atas, index)?
        // The bound only ever admits what truly fits; reaching this is a bug.
        .ok_or_else(|| Error::Internal("a packed transaction exceeds the limits".into()))?;
    for &m in &open.members {
        netted[m].transaction = index;
    }
    messages.push(message);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use solana_instruction::AccountMeta;

    fn ix(program: Pubkey, accounts: usize, data: &[u8]) -> Instruction {
        let metas = (0..accounts).map(|_| AccountMeta::new(Pubkey::new_unique(), false)).collect();
        Instruction { program_id: program, accounts: metas, data: data.to_vec() }
    }

    #[test]
    fn batch_frames_each_program_after_the_other_instructions() {
        let legacy = spl_token_2022_interface::inline_spl_token::id();
        let t22 = spl_token_2022_interface::id();
        let other = Pubkey::new_unique();
        let body = [ix(t22, 4, &[14, 1]), ix(other, 2, &[9]), ix(legacy, 3, &[7]), ix(t22, 4, &[14, 2, 3])];
        let out = batched(&body);
        assert_eq!(out.len(), 3);
        assert_eq!(out[0], body[1]);
        // Token-2022 appeared first, so its batch comes first; the legacy
        // program has one payment and keeps the plain instruction.
        assert_eq!(out[1].program_id, t22);
        assert_eq!(out[1].data, vec![BATCH_TAG, 4, 2, 14, 1, 4, 3, 14, 2, 3]);
        let accounts: Vec<_> = body[0].accounts.iter().chain(&body[3].accounts).cloned().collect();
        assert_eq!(out[1].accounts, accounts);
        assert_eq!(out[2], body[2]);
    }

    #[test]
    fn an_instruction_too_long_to_frame_leaves_the_program_unbatched() {
        let t22 = spl_token_2022_interface::id();
        let body = [ix(t22, 4, &[1; 300]), ix(t22, 4, &[2])];
        assert_eq!(batched(&body), body.to_vec());
    }
}
