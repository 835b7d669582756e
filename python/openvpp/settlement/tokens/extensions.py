"""Which Token-2022 extensions a mint OpenVPP pays in may carry.

Settlement promises exact amounts to holders and a reserve provable from
chain data. Extensions that let a third party move or block tokens, or
change what arrives, break those promises, so they are refused unless an
operator explicitly accepts them (`allowed_token_extensions`):
- TransferHook: runs arbitrary program code on every transfer, which can
  refuse payouts or redemptions or require extra accounts.
- PermanentDelegate: a delegate can move or burn any holder's tokens, and
  the reserve's if the stablecoin has one.
- TransferFeeConfig: holders would receive less than they were credited.
- DefaultAccountState: new holder accounts could start frozen.
- ConfidentialTransfer*: balances and supply stop being readable, so the
  reserve can no longer be proved from chain data.
- Pausable: the issuer could halt redemptions.
- NonTransferable, MintCloseAuthority, PermissionedBurn: holders could
  not move or redeem their tokens, or the mint could disappear.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

from openvpp import errors


class Extension(enum.IntEnum):
    """Token-2022 `ExtensionType` codes."""

    TRANSFER_FEE_CONFIG = 1
    TRANSFER_FEE_AMOUNT = 2
    MINT_CLOSE_AUTHORITY = 3
    CONFIDENTIAL_TRANSFER_MINT = 4
    CONFIDENTIAL_TRANSFER_ACCOUNT = 5
    DEFAULT_ACCOUNT_STATE = 6
    IMMUTABLE_OWNER = 7
    MEMO_TRANSFER = 8
    NON_TRANSFERABLE = 9
    INTEREST_BEARING_CONFIG = 10
    CPI_GUARD = 11
    PERMANENT_DELEGATE = 12
    NON_TRANSFERABLE_ACCOUNT = 13
    TRANSFER_HOOK = 14
    TRANSFER_HOOK_ACCOUNT = 15
    CONFIDENTIAL_TRANSFER_FEE_CONFIG = 16
    CONFIDENTIAL_TRANSFER_FEE_AMOUNT = 17
    METADATA_POINTER = 18
    TOKEN_METADATA = 19
    GROUP_POINTER = 20
    TOKEN_GROUP = 21
    GROUP_MEMBER_POINTER = 22
    TOKEN_GROUP_MEMBER = 23
    CONFIDENTIAL_MINT_BURN = 24
    SCALED_UI_AMOUNT = 25
    PAUSABLE = 26
    PAUSABLE_ACCOUNT = 27
    PERMISSIONED_BURN = 28

    @property
    def title(self) -> str:
        return "".join(part.capitalize() for part in self.name.split("_"))


# Descriptive or display-only extensions; amounts and control are unaffected.
ALLOWED = frozenset(
    {
        Extension.METADATA_POINTER,
        Extension.TOKEN_METADATA,
        Extension.INTEREST_BEARING_CONFIG,
        Extension.SCALED_UI_AMOUNT,
        Extension.GROUP_POINTER,
        Extension.TOKEN_GROUP,
        Extension.GROUP_MEMBER_POINTER,
        Extension.TOKEN_GROUP_MEMBER,
        Extension.IMMUTABLE_OWNER,
        Extension.MEMO_TRANSFER,
        Extension.CPI_GUARD,
    }
)


def name(code: int) -> str:
    try:
        return Extension(code).title
    except ValueError:
        return f"Unknown({code})"


def parse_allowed(names: Iterable[str]) -> frozenset[int]:
    """Operator-named extra extensions (CamelCase or UPPER_SNAKE) → codes."""
    by_name = {e.title.lower(): e for e in Extension} | {e.name.lower(): e for e in Extension}
    out = set()
    for raw in names:
        found = by_name.get(raw.strip().lower())
        if found is None:
            raise ValueError(f"unknown Token-2022 extension {raw!r}")
        out.add(int(found))
    return frozenset(out)


def check(mint: str, codes: Iterable[int], extra_allowed: frozenset[int]) -> None:
    """FailedPrecondition naming every extension outside the allow-list."""
    refused = sorted({c for c in codes if c not in ALLOWED and c not in extra_allowed})
    if refused:
        names = ", ".join(name(c) for c in refused)
        raise errors.FailedPrecondition(
            f"mint {mint} carries Token-2022 extensions OpenVPP does not pay in: {names}",
            "TOKEN_EXTENSION_NOT_ALLOWED",
            metadata={"mint": mint, "extensions": names},
        )
