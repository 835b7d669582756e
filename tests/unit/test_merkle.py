from __future__ import annotations

import hashlib

from hypothesis import given
from hypothesis import strategies as st

from openvpp.registry import merkle


def reference_root(leaves: list[bytes]) -> bytes:
    """RFC 6962 §2.1 written as the recursion in the RFC."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return merkle.node_hash(reference_root(leaves[:k]), reference_root(leaves[k:]))


def leaves_of(n: int) -> list[bytes]:
    return [merkle.leaf_hash(i.to_bytes(4, "big")) for i in range(n)]


def test_known_root_of_rfc_6962_empty_tree() -> None:
    assert merkle.root([]).hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


@given(st.integers(min_value=1, max_value=300))
def test_root_matches_the_rfc_recursion(n: int) -> None:
    assert merkle.root(leaves_of(n)) == reference_root(leaves_of(n))


@given(st.data())
def test_every_audit_path_verifies_and_only_for_its_own_leaf(data: st.DataObject) -> None:
    n = data.draw(st.integers(min_value=1, max_value=200))
    index = data.draw(st.integers(min_value=0, max_value=n - 1))
    leaves = leaves_of(n)
    root = merkle.root(leaves)
    path = merkle.audit_path(index, leaves)
    assert merkle.verify_inclusion(leaves[index], index, n, path, root)
    if n > 1:
        other = (index + 1) % n
        assert not merkle.verify_inclusion(leaves[other], index, n, path, root)
        assert not merkle.verify_inclusion(leaves[index], other, n, path, root)
    if path:
        tampered = [bytes(32), *path[1:]]
        assert not merkle.verify_inclusion(leaves[index], index, n, tampered, root)


def test_out_of_range_index_never_verifies() -> None:
    leaves = leaves_of(4)
    assert not merkle.verify_inclusion(leaves[0], 4, 4, [], merkle.root(leaves))
