"""Use-case tokens: Token-2022 mints with on-chain metadata, each backed by a
stablecoin reserve account, and the invariant every mint keeps:
reserve x 10^decimals >= supply x redemption value (value per whole token).

Mint and reserve addresses derive from the fee payer and a random seed
(create-account-with-seed), so a creation whose blockhash expired can be
signed again for the very same addresses without keeping throwaway keys.
"""

from __future__ import annotations

import asyncio
import enum
import re
import secrets
from dataclasses import dataclass
from typing import Any

from solders.pubkey import Pubkey
from solders.system_program import CreateAccountWithSeedParams, create_account_with_seed
from sqlalchemy.ext.asyncio import AsyncConnection

from openvpp import errors, native
from openvpp.chain import spl
from openvpp.chain.base import Chain, RecentBlockhash
from openvpp.chain.keyring import Keyring
from openvpp.chain.outbox import Handler, Outbox, OutboxState, Outcome
from openvpp.kernel import clock
from openvpp.kernel.clock import Clock
from openvpp.kernel.identity import Identity
from openvpp.kernel.programs import denied, program_not_found
from openvpp.settlement.tokens import extensions
from openvpp.settlement.tokens.faucet import DevelopmentFaucet
from openvpp.settlement.tokens.stablecoin import Stablecoin, read_mint
from openvpp.store import routing_repo, token_repo
from openvpp.store.database import Database

_SYMBOL = re.compile(r"^[A-Z0-9]{2,10}$")
MAX_NAME = 32
MAX_URI = 200
MAX_DECIMALS = 9


class TokenState(enum.IntEnum):
    CREATING = 1
    ACTIVE = 2
    FAILED = 3


class Unit(enum.IntEnum):
    USD = 1
    KWH = 2
    KG_CO2 = 3


UNIT_LABEL = {Unit.USD: "USD", Unit.KWH: "kWh", Unit.KG_CO2: "kg CO2"}


@dataclass(frozen=True, slots=True)
class TokenSpec:
    program_id: str
    name: str
    symbol: str
    uri: str
    unit: int
    decimals: int
    redemption_value: int
    interest_rate_bps: int


@dataclass(frozen=True, slots=True)
class UseCaseToken:
    mint: str
    utility_namespace: str
    program_id: str
    name: str
    symbol: str
    uri: str
    unit: Unit
    decimals: int
    redemption_value: int
    interest_rate_bps: int
    reserve_account: str
    stablecoin_mint: str
    state: TokenState
    created_at_us: int
    extensions: tuple[str, ...] = ()

    @classmethod
    def from_row(cls, row: Any, exts: tuple[str, ...] = ()) -> UseCaseToken:
        return cls(
            row.mint,
            row.utility_namespace,
            row.program_id,
            row.name,
            row.symbol,
            row.uri,
            Unit(row.unit),
            row.decimals,
            row.redemption_value,
            row.interest_rate_bps or 0,
            row.reserve_account,
            row.stablecoin_mint,
            TokenState(row.state),
            row.created_at_us,
            exts,
        )


@dataclass(frozen=True, slots=True)
class ReserveView:
    mint: str
    reserve_account: str
    balance: int
    supply: int
    decimals: int
    redemption_value: int
    slot: int

    @property
    def scale(self) -> int:
        """Base units in one whole token."""
        return int(10**self.decimals)

    @property
    def liability(self) -> int:
        """What redeeming the whole supply pays, rounded up."""
        return -(-self.supply * self.redemption_value // self.scale)

    @property
    def covered(self) -> bool:
        return self.balance * self.scale >= self.supply * self.redemption_value

    @property
    def coverage_bps(self) -> int:
        return self.balance * 10_000 // self.liability if self.liability else 0

    @property
    def mintable(self) -> int:
        return max(0, self.balance * self.scale // self.redemption_value - self.supply)


def _validate(spec: TokenSpec) -> None:
    bad = errors.InvalidArgument.field
    if not 1 <= len(spec.name) <= MAX_NAME:
        raise bad("name", f"must be 1-{MAX_NAME} characters")
    if not _SYMBOL.match(spec.symbol):
        raise bad("symbol", "must be 2-10 upper-case letters or digits")
    if spec.uri and (not spec.uri.startswith("https://") or len(spec.uri) > MAX_URI):
        raise bad("uri", f"must be empty or an https:// URL of at most {MAX_URI} characters")
    if spec.unit not in set(Unit):
        raise bad("unit", "must be USD, KWH or KG_CO2", "INVALID_ENUM")
    if not 0 <= spec.decimals <= MAX_DECIMALS:
        raise bad("decimals", f"must be 0-{MAX_DECIMALS}")
    if not 0 < spec.redemption_value < 2**63:
        raise bad("redemption_value_base_units", "must be positive")
    if not -10_000 <= spec.interest_rate_bps <= 10_000:
        raise bad("interest_rate_bps", "must be -10000..10000")


def _decode_key(value: str, field: str) -> Pubkey:
    try:
        return Pubkey.from_string(value)
    except ValueError:
        raise errors.InvalidArgument.field(field, "must be a base58 Solana address", "INVALID_ADDRESS") from None


class UseCaseTokens:
    def __init__(
        self,
        db: Database,
        chain: Chain,
        outbox: Outbox,
        keyring: Keyring,
        stablecoin: Stablecoin,
        extra_allowed: frozenset[int] = frozenset(),
        clock_us: Clock = clock.system,
        faucet: DevelopmentFaucet | None = None,
    ) -> None:
        self.clock_us = clock_us
        self.faucet = faucet
        self.db = db
        self.chain = chain
        self.outbox = outbox
        self.keyring = keyring
        self.stablecoin = stablecoin
        self.extra_allowed = extra_allowed
        self._mint_locks: dict[str, asyncio.Lock] = {}
        outbox.register("token_mint", Handler(self._record_mint, self._build_mint, follows_on=True))
        outbox.register("token_reserve", Handler(self._record_reserve, self._build_reserve))
        outbox.register("reserve_fund", Handler(_record_nothing, self._build_fund))
        outbox.register("token_issue", Handler(_record_nothing, self._build_issue))

    # -- addresses ----------------------------------------------------------

    def _addresses(self, seed: str) -> tuple[Pubkey, Pubkey]:
        base = self.keyring.fee_payer.pubkey()
        mint = Pubkey.create_with_seed(base, f"m{seed}", spl.TOKEN_2022_PROGRAM_ID)
        reserve = Pubkey.create_with_seed(base, f"r{seed}", self.stablecoin.program)
        return mint, reserve

    async def _row_by_seed(self, seed: str) -> Any:
        mint, _ = self._addresses(seed)
        async with self.db.read() as conn:
            row = await token_repo.token(conn, str(mint))
        assert row is not None, "a token's outbox work starts after its row is written"
        return row

    # -- creation -----------------------------------------------------------

    async def create(self, caller: Identity, spec: TokenSpec) -> tuple[UseCaseToken, list[str]]:
        _validate(spec)
        async with self.db.read() as conn:
            program = await routing_repo.program(conn, spec.program_id)
            if program is None:
                raise program_not_found(spec.program_id)
            if not caller.acts_for(program.utility_namespace):
                raise denied("create tokens for its own programs")
            clash = await token_repo.mint_of_symbol(conn, spec.program_id, spec.symbol)
        if clash is not None:
            raise errors.AlreadyExists(
                f"program {spec.program_id} already has a {spec.symbol} token ({clash})", "TOKEN_EXISTS"
            )
        seed = secrets.token_hex(12)
        mint, reserve = self._addresses(seed)
        recent = await self.chain.latest_blockhash()
        values = {
            "mint": str(mint),
            "utility_namespace": program.utility_namespace,
            "program_id": spec.program_id,
            "name": spec.name,
            "symbol": spec.symbol,
            "uri": spec.uri,
            "unit": spec.unit,
            "decimals": spec.decimals,
            "redemption_value": spec.redemption_value,
            "interest_rate_bps": spec.interest_rate_bps or None,
            "reserve_account": str(reserve),
            "stablecoin_mint": str(self.stablecoin.mint),
            "state": TokenState.CREATING,
            "created_at_us": self.clock_us(),
        }
        raw = await self._mint_transaction(seed, values, recent)
        async with self.db.write() as conn:
            await token_repo.insert_token(conn, values)
            first = await self.outbox.enqueue(conn, "token_mint", seed, raw, recent.last_valid_block_height)
        signatures = [(await self.outbox.drive(first)).signature]
        second = await self.outbox.find("token_reserve", seed)
        if second is not None:
            signatures.append((await self.outbox.drive(second)).signature)
        return await self.get(str(mint)), signatures

    def _plan(self, values: dict[str, Any]) -> native.UseCaseMintPlan:
        authority = bytes(self.keyring.settlement_authority.pubkey())
        return native.use_case_mint(
            mint=bytes(Pubkey.from_string(values["mint"])),
            mint_authority=authority,
            metadata_authority=authority,
            decimals=values["decimals"],
            name=values["name"],
            symbol=values["symbol"],
            uri=values["uri"],
            fields=self._fields(values),
            interest_rate_bps=values["interest_rate_bps"],
        )

    def _fields(self, values: dict[str, Any]) -> list[tuple[str, str]]:
        """Written into the mint's metadata so the reserve is provable from chain data alone."""
        return [
            ("unit", UNIT_LABEL[Unit(values["unit"])]),
            ("redemption_value", str(values["redemption_value"])),
            ("program", values["program_id"]),
            ("utility", values["utility_namespace"]),
            ("reserve", values["reserve_account"]),
            ("stablecoin", values["stablecoin_mint"]),
        ]

    async def _mint_transaction(self, seed: str, values: dict[str, Any], recent: RecentBlockhash) -> bytes:
        """Account, extensions, mint and metadata; funded for the final size so the
        metadata fields written next need no further rent."""
        mint, _ = self._addresses(seed)
        plan = self._plan(values)
        payer = self.keyring.fee_payer
        create = create_account_with_seed(
            CreateAccountWithSeedParams(
                from_pubkey=payer.pubkey(),
                to_pubkey=mint,
                base=payer.pubkey(),
                seed=f"m{seed}",
                lamports=await self.chain.minimum_balance(plan.total_len),
                space=plan.space,
                owner=spl.TOKEN_2022_PROGRAM_ID,
            )
        )
        head = plan.instructions[: len(plan.instructions) - len(self._fields(values))]
        instructions = [create, *(spl.from_raw(ix) for ix in head)]
        return spl.signed(instructions, payer, [self.keyring.settlement_authority], recent.blockhash)

    async def _build_mint(self, seed: str, recent: RecentBlockhash) -> bytes:
        row = await self._row_by_seed(seed)
        return await self._mint_transaction(seed, dict(row._mapping), recent)

    async def _record_mint(self, conn: AsyncConnection, seed: str, outcome: Outcome) -> None:
        mint, _ = self._addresses(seed)
        if outcome.state is not OutboxState.CONFIRMED:
            await token_repo.set_state(conn, str(mint), TokenState.FAILED)
            return
        recent = outcome.recent
        assert recent is not None, "token_mint is registered with follows_on"
        row = await token_repo.token(conn, str(mint))
        raw = await self._reserve_transaction(seed, dict(row._mapping), recent)
        await self.outbox.enqueue(conn, "token_reserve", seed, raw, recent.last_valid_block_height)

    async def _reserve_transaction(self, seed: str, values: dict[str, Any], recent: RecentBlockhash) -> bytes:
        _, reserve = self._addresses(seed)
        payer, authority = self.keyring.fee_payer, self.keyring.settlement_authority
        fields = self._plan(values).instructions[-len(self._fields(values)) :]
        create = create_account_with_seed(
            CreateAccountWithSeedParams(
                from_pubkey=payer.pubkey(),
                to_pubkey=reserve,
                base=payer.pubkey(),
                seed=f"r{seed}",
                lamports=await self.chain.minimum_balance(spl.TOKEN_ACCOUNT_LEN),
                space=spl.TOKEN_ACCOUNT_LEN,
                owner=self.stablecoin.program,
            )
        )
        init = spl.initialize_account(
            self.stablecoin.program, reserve, self.stablecoin.mint, self.keyring.reserve_authority.pubkey()
        )
        instructions = [create, init, *(spl.from_raw(ix) for ix in fields)]
        return spl.signed(instructions, payer, [authority], recent.blockhash)

    async def _build_reserve(self, seed: str, recent: RecentBlockhash) -> bytes:
        row = await self._row_by_seed(seed)
        return await self._reserve_transaction(seed, dict(row._mapping), recent)

    async def _record_reserve(self, conn: AsyncConnection, seed: str, outcome: Outcome) -> None:
        mint, _ = self._addresses(seed)
        state = TokenState.ACTIVE if outcome.state is OutboxState.CONFIRMED else TokenState.FAILED
        await token_repo.set_state(conn, str(mint), state)

    # -- reads --------------------------------------------------------------

    async def _row(self, mint: str) -> Any:
        _decode_key(mint, "mint")
        async with self.db.read() as conn:
            row = await token_repo.token(conn, mint)
        if row is None:
            raise errors.NotFound(f"no use-case token {mint}", "TOKEN_NOT_FOUND")
        return row

    async def get(self, mint: str) -> UseCaseToken:
        row = await self._row(mint)
        exts: tuple[str, ...] = ()
        if row.state == TokenState.ACTIVE:
            view, _ = await read_mint(self.chain, Pubkey.from_string(mint))
            exts = tuple(extensions.name(c) for c in view.extensions)
        return UseCaseToken.from_row(row, exts)

    async def list(self, utility: str = "", program_id: str = "") -> list[UseCaseToken]:
        async with self.db.read() as conn:
            return [UseCaseToken.from_row(r) for r in await token_repo.tokens(conn, utility, program_id)]

    async def _active(self, mint: str) -> Any:
        row = await self._row(mint)
        if row.state != TokenState.ACTIVE:
            raise errors.FailedPrecondition(
                f"token {mint} is {TokenState(row.state).name.lower()}, not active", "TOKEN_NOT_ACTIVE"
            )
        return row

    async def reserve(self, mint: str) -> ReserveView:
        """Supply, decimals and the reserve balance, read from chain state."""
        row = await self._active(mint)
        mint_key, reserve_key = Pubkey.from_string(mint), Pubkey.from_string(row.reserve_account)
        slot = await self.chain.slot()
        mint_account, reserve_account = await self.chain.accounts([mint_key, reserve_key])
        if mint_account is None or reserve_account is None:
            raise errors.FailedPrecondition(f"token {mint} or its reserve is missing on chain", "CHAIN_STATE_MISSING")
        view = native.inspect_mint(bytes(mint_account.data))
        extensions.check(mint, view.extensions, self.extra_allowed)
        balance = spl.token_amount(bytes(reserve_account.data))
        return ReserveView(mint, row.reserve_account, balance, view.supply, view.decimals, row.redemption_value, slot)

    # -- funding ------------------------------------------------------------

    async def _owned(self, caller: Identity, mint: str) -> Any:
        row = await self._active(mint)
        if not caller.acts_for(row.utility_namespace):
            raise denied("fund its own tokens' reserves")
        return row

    async def fund(self, caller: Identity, mint: str, amount: int) -> tuple[str, ReserveView]:
        """Development: moves stablecoin from the utility's treasury into the reserve."""
        if amount <= 0:
            raise errors.InvalidArgument.field("amount_base_units", "must be positive")
        row = await self._owned(caller, mint)
        treasury = await self.treasury(row.utility_namespace)
        if treasury is None:
            raise errors.FailedPrecondition(
                f"no treasury key for {row.utility_namespace}: deposit {self.stablecoin.mint} to the reserve "
                f"account {row.reserve_account} on chain; GetReserve shows it once it lands",
                "NO_TREASURY",
                metadata={"reserve_account": row.reserve_account},
            )
        source = spl.ata(treasury, self.stablecoin.mint, self.stablecoin.program)
        (account,) = await self.chain.accounts([source])
        held = 0 if account is None else spl.token_amount(bytes(account.data))
        if held < amount:
            raise errors.FailedPrecondition(
                f"treasury {treasury} holds {held} base units, less than {amount}", "INSUFFICIENT_FUNDS"
            )
        # The ref carries what a rebuild needs, so a restart can re-sign it.
        ref = f"{mint}:{amount}:{secrets.token_hex(8)}"
        outcome = await self.outbox.submit("reserve_fund", ref, lambda recent: self._build_fund(ref, recent))
        if outcome.state is not OutboxState.CONFIRMED:
            raise errors.Unavailable(f"funding transaction {outcome.signature} failed: {outcome.error}", "CHAIN_FAILED")
        return outcome.signature, await self.reserve(mint)

    async def utility_of(self, mint: str) -> str:
        """The utility that issued a use-case token."""
        return str((await self._row(mint)).utility_namespace)

    async def fund_test_wallet(self, wallet: str, amount: int) -> tuple[str, int]:
        """Development chains: test stablecoin for a wallet; (signature, its balance after)."""
        if self.faucet is None:
            raise errors.FailedPrecondition(
                f"{self.chain.name} is not a development chain: wallets are funded by their owners",
                "NOT_DEVELOPMENT_CHAIN",
            )
        try:
            owner = Pubkey.from_string(wallet)
        except ValueError:
            raise errors.InvalidArgument.field("wallet", "must be a base58 Solana address", "INVALID_ADDRESS") from None
        limit = self.faucet.WALLET_MAX_BASE_UNITS
        if not 0 < amount <= limit:
            raise errors.InvalidArgument.field("amount_base_units", f"must be 1 to {limit}")
        signature = await self.faucet.fund_wallet(owner, amount)
        coin = self.stablecoin
        (account,) = await self.chain.accounts([spl.ata(owner, coin.mint, coin.program)])
        return signature, 0 if account is None else spl.token_amount(bytes(account.data))

    async def _build_fund(self, ref: str, recent: RecentBlockhash) -> bytes:
        mint, amount_text, _ = ref.split(":")
        amount = int(amount_text)
        row = await self._row(mint)
        treasury = self.keyring.treasury(row.utility_namespace, create=False)
        assert treasury is not None
        coin = self.stablecoin
        source = spl.ata(treasury.pubkey(), coin.mint, coin.program)
        move = spl.transfer(
            coin.program,
            source,
            coin.mint,
            Pubkey.from_string(row.reserve_account),
            treasury.pubkey(),
            amount,
            coin.decimals,
        )
        return spl.signed(
            [spl.memo(f"openvpp/reserve-fund/v1 {ref}"), move], self.keyring.fee_payer, [treasury], recent.blockhash
        )

    async def treasury(self, utility: str) -> Pubkey | None:
        """The utility's treasury wallet; on a development chain with the
        faucet's test stablecoin it is created and seeded once."""
        existing = self.keyring.treasury(utility, create=False)
        if existing is not None:
            return existing.pubkey()
        return None if self.faucet is None else await self.faucet.seed_treasury(utility)

    # -- minting within the reserve -----------------------------------------

    async def issue(self, mint: str, recipient: str, amount: int) -> Outcome:
        """Mints `amount` base units to the recipient's wallet, refused with
        FailedPrecondition RESERVE_SHORT when the reserve would not cover the
        new supply. One mint at a time per token, so the check sees every
        earlier mint's supply."""
        if amount <= 0:
            raise errors.InvalidArgument.field("amount_base_units", "must be positive")
        wallet = _decode_key(recipient, "recipient")
        lock = self._mint_locks.setdefault(mint, asyncio.Lock())
        async with lock:
            view = await self.reserve(mint)
            if amount > view.mintable:
                raise errors.FailedPrecondition(
                    f"minting {amount} would break the reserve invariant: reserve {view.balance} covers "
                    f"{view.mintable} more base units",
                    "RESERVE_SHORT",
                    metadata={"mintable_base_units": str(view.mintable), "reserve_base_units": str(view.balance)},
                )
            ref = f"{mint}:{wallet}:{amount}:{secrets.token_hex(4)}"
            return await self.outbox.submit("token_issue", ref, lambda recent: self._build_issue(ref, recent))

    async def _build_issue(self, ref: str, recent: RecentBlockhash) -> bytes:
        mint, wallet_text, amount_text, _ = ref.split(":")
        wallet, amount = Pubkey.from_string(wallet_text), int(amount_text)
        row = await self._row(mint)
        payer, authority = self.keyring.fee_payer, self.keyring.settlement_authority
        mint_key = Pubkey.from_string(mint)
        program = spl.TOKEN_2022_PROGRAM_ID
        instructions = [
            spl.memo(f"openvpp/token-issue/v1 {ref}"),
            spl.create_ata(payer.pubkey(), wallet, mint_key, program),
            spl.mint_to(
                program, mint_key, spl.ata(wallet, mint_key, program), authority.pubkey(), amount, row.decimals
            ),
        ]
        return spl.signed(instructions, payer, [authority], recent.blockhash)


async def _record_nothing(_conn: AsyncConnection, _ref: str, _outcome: Outcome) -> None:
    """The chain itself is the record (balances); nothing else to write."""
