"""Proves a use-case token's reserve coverage from chain data alone: the
mint's supply and metadata (redemption value, reserve account, stablecoin)
and the reserve account's balance. Nothing is taken from OpenVPP's
database, so anyone with an RPC endpoint can check it."""

from __future__ import annotations

from dataclasses import dataclass

from solders.pubkey import Pubkey

from openvpp import native
from openvpp.chain import spl
from openvpp.chain.base import Chain
from openvpp.settlement.tokens import extensions


@dataclass(frozen=True, slots=True)
class ReserveProof:
    mint: str
    symbol: str
    supply: int
    decimals: int
    redemption_value: int
    reserve_account: str
    reserve_owner: str
    stablecoin_mint: str
    reserve_balance: int
    extensions: tuple[str, ...]
    problems: tuple[str, ...]

    @property
    def scale(self) -> int:
        """Base units in one whole token."""
        return int(10**self.decimals)

    @property
    def liability(self) -> int:
        return -(-self.supply * self.redemption_value // self.scale)

    @property
    def covered(self) -> bool:
        return not self.problems and self.reserve_balance * self.scale >= self.supply * self.redemption_value


async def verify_reserve(chain: Chain, mint: str) -> ReserveProof:
    """Reads and cross-checks everything; `problems` lists what does not hold."""
    problems: list[str] = []
    mint_key = Pubkey.from_string(mint)
    (account,) = await chain.accounts([mint_key])
    if account is None or account.owner != spl.TOKEN_2022_PROGRAM_ID:
        raise ValueError(f"{mint} is not a Token-2022 mint on this chain")
    view = native.inspect_mint(bytes(account.data))
    metadata = view.metadata
    if metadata is None or metadata.mint != bytes(mint_key):
        raise ValueError(f"{mint} carries no token metadata of its own")
    fields = dict(metadata.fields)
    missing = [k for k in ("redemption_value", "reserve", "stablecoin") if k not in fields]
    if missing:
        raise ValueError(f"{mint} metadata lacks {', '.join(missing)}: not an OpenVPP use-case token")
    refused = [c for c in view.extensions if c not in extensions.ALLOWED]
    if refused:
        problems.append("extensions outside the allow-list: " + ", ".join(extensions.name(c) for c in refused))
    reserve_key = Pubkey.from_string(fields["reserve"])
    (reserve,) = await chain.accounts([reserve_key])
    balance, owner = 0, ""
    if reserve is None or len(reserve.data) < spl.TOKEN_ACCOUNT_LEN:
        problems.append(f"reserve account {reserve_key} does not exist")
    else:
        data = bytes(reserve.data)
        balance, owner = spl.token_amount(data), str(spl.token_owner(data))
        if str(spl.token_mint(data)) != fields["stablecoin"]:
            problems.append(f"reserve account holds {spl.token_mint(data)}, not the stablecoin {fields['stablecoin']}")
    return ReserveProof(
        mint,
        metadata.symbol,
        view.supply,
        view.decimals,
        int(fields["redemption_value"]),
        str(reserve_key),
        owner,
        fields["stablecoin"],
        balance,
        tuple(extensions.name(c) for c in view.extensions),
        tuple(problems),
    )
