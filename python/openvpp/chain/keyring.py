"""The settlement keys: Solana-CLI keypair files under `<data dir>/keys/`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from solders.keypair import Keypair

from openvpp import keys

KEYS_DIR = "keys"
SETTLEMENT_AUTHORITY = "settlement-authority.json"
RESERVE_AUTHORITY = "reserve-authority.json"
FEE_PAYER = "fee-payer.json"
# Development only: mints the local test stablecoin on the embedded chain.
STABLECOIN_AUTHORITY = "stablecoin-mint-authority.json"
TREASURY_DIR = "treasury"
_SAFE = re.compile(r"[^a-z0-9.-]")


class MissingKeys(FileNotFoundError):
    """Settlement keys this replica was not given."""

    def __init__(self, paths: list[str]) -> None:
        super().__init__(
            f"settlement keys missing: {', '.join(paths)}; run `openvpp init` once and give every replica "
            "the same keys (a mounted secret), or start with --create-missing-keys (development)"
        )
        self.paths = paths


@dataclass(frozen=True)
class Keyring:
    """The keys OpenVPP signs settlement transactions with.

    The settlement authority mints use-case tokens and signs registry
    anchors; the reserve authority owns every reserve account; the fee
    payer pays fees and rent so holders need no SOL.
    """

    directory: Path
    settlement_authority: Keypair
    reserve_authority: Keypair
    fee_payer: Keypair

    @classmethod
    def load(cls, data_dir: Path, *, create: bool = False) -> Keyring:
        """The keys under `<data_dir>/keys/`; missing ones are made only with
        `create` (`openvpp init`, development), and are otherwise an error:
        replicas given different keys would sign with different authorities."""
        directory = data_dir / KEYS_DIR
        names = (SETTLEMENT_AUTHORITY, RESERVE_AUTHORITY, FEE_PAYER)
        missing = [str(directory / n) for n in names if not (directory / n).exists()]
        if missing and not create:
            raise MissingKeys(missing)
        return cls(directory, *(_load(directory / n, create) for n in names))

    def stablecoin_authority(self, *, create: bool) -> Keypair | None:
        path = self.directory / STABLECOIN_AUTHORITY
        return _load(path, create) if create or path.exists() else None

    def treasury_path(self, namespace: str) -> Path:
        return self.directory / TREASURY_DIR / f"{_SAFE.sub('_', namespace)}.json"

    def treasury(self, namespace: str, *, create: bool) -> Keypair | None:
        """A utility's treasury wallet (development); None when there is none and `create` is off."""
        path = self.treasury_path(namespace)
        return _load(path, create) if create or path.exists() else None


def _load(path: Path, create: bool) -> Keypair:
    if not path.exists():
        if not create:
            raise FileNotFoundError(f"no keypair at {path}: run `openvpp init`")
        keys.write(path, keys.generate())
    return keys.read(path)
