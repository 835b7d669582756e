"""Checks a registry record against the Merkle root its operator anchored
on chain: the audit path reaches the root, and the root is exactly what a
landed Memo transaction signed by the anchoring key says."""

from __future__ import annotations

from dataclasses import dataclass, field

from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import VersionedTransaction

from openvpp.chain.base import Chain
from openvpp.registry import merkle
from openvpp.registry.anchor import MEMO_PROGRAM, memo_text
from openvpp.v1 import registry_pb2


@dataclass
class Verification:
    checks: list[tuple[str, bool, str]] = field(default_factory=list)

    def add(self, name: str, ok: bool, detail: str = "") -> bool:
        self.checks.append((name, ok, detail))
        return ok

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(ok for _, ok, _ in self.checks)


async def verify_anchored(
    proof: registry_pb2.GetInclusionProofResponse, chain: Chain, authority: Pubkey | None
) -> Verification:
    result = Verification()
    leaf = merkle.leaf_hash(proof.entry_bytes)
    result.add("leaf hash", leaf == proof.leaf_hash, proof.leaf_hash.hex())
    result.add(
        "audit path",
        merkle.verify_inclusion(leaf, proof.leaf_index, proof.tree_size, list(proof.audit_path), proof.root_hash),
        f"leaf {proof.leaf_index} of {proof.tree_size} → {proof.root_hash.hex()}",
    )
    anchor = proof.anchor
    if not result.add("anchored", proof.HasField("anchor") and anchor.tree_size == proof.tree_size, anchor.signature):
        return result
    record = await chain.transaction(Signature.from_string(anchor.signature))
    if not result.add("transaction landed", record is not None and record.error is None, f"slot {anchor.slot}"):
        return result
    assert record is not None
    message = VersionedTransaction.from_bytes(record.raw).message
    keys = list(message.account_keys)
    expected = memo_text(proof.tree_size, proof.root_hash).encode()
    signer = authority or Pubkey.from_string(anchor.authority)
    found = False
    for ix in message.instructions:
        if keys[ix.program_id_index] != MEMO_PROGRAM or bytes(ix.data) != expected:
            continue
        signers = [keys[i] for i in bytes(ix.accounts) if message.is_signer(i)]
        found = found or signer in signers
    result.add("memo matches the root", found, expected.decode())
    result.add("signed by the anchoring key", found, str(signer) + ("" if authority else " (as the server reports it)"))
    return result
