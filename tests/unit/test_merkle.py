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


def test_persisted_subtrees_give_the_same_roots_and_paths_as_the_whole_tree() -> None:
    import random

    rng = random.Random(7)
    leaves = leaves_of(300)
    store: dict[merkle.Node, bytes] = {}
    size = 0
    while size < len(leaves):
        step = min(rng.randrange(1, 20), len(leaves) - size)
        store.update(merkle.grow(size, {p: store[p] for p in merkle.peaks(size)}, leaves[size : size + step]))
        size += step
        assert merkle.fold([store[p] for p in merkle.peaks(size)]) == merkle.root(leaves[:size])
    for n in (1, 2, 3, 5, 8, 13, 64, 100, 255, 256, 257, 300):
        for i in range(n):
            path = [merkle.fold([store[node] for node in part]) for part in merkle.path_nodes(i, n)]
            assert path == merkle.audit_path(i, leaves[:n]), (n, i)
            assert sum(len(part) for part in merkle.path_nodes(i, n)) <= 2 * n.bit_length() ** 2
