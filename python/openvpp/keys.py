"""Ed25519 keypairs as Solana-CLI JSON files (a JSON array of 64 byte values).

A device key, an authority key and a Solana wallet are the same kind of
object, so every OpenVPP key file can be used by `solana` tools as is.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from solders.keypair import Keypair


def generate() -> Keypair:
    return Keypair()


def write(path: Path, keypair: Keypair, *, overwrite: bool = False) -> None:
    """Writes the keypair readable by its owner only (mode 0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if overwrite else os.O_EXCL)
    fd = os.open(path, flags, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(keypair.to_json())
        handle.write("\n")


def read(path: Path) -> Keypair:
    """Reads a Solana-CLI keypair file; ValueError when it is not one."""
    data = json.loads(path.read_text())
    if not isinstance(data, list) or len(data) != 64 or not all(isinstance(b, int) and 0 <= b < 256 for b in data):
        raise ValueError(f"{path} is not a Solana keypair file (a JSON array of 64 bytes)")
    return Keypair.from_bytes(bytes(data))
