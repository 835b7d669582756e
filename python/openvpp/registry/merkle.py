"""RFC 6962 / RFC 9162 Merkle tree hashing, audit paths and their verification.

Hand-written because what we need is small and exact: the tree is our own
log table (existing libraries keep their own storage), and clients must be
able to check proofs with nothing but hashlib, as in Certificate Transparency.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

HASH_LEN = 32


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly below n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def root(leaves: Sequence[bytes]) -> bytes:
    """Merkle tree hash over leaf hashes (MTH of RFC 6962 §2.1)."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    level = list(leaves)
    # Pairing left to right and promoting an odd last node gives the same
    # tree as RFC 6962's recursive split, without recursion.
    while len(level) > 1:
        paired = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


def audit_path(index: int, leaves: Sequence[bytes]) -> list[bytes]:
    """Sibling hashes from leaf `index` up to the root (PATH of RFC 6962 §2.1.1)."""
    if not 0 <= index < len(leaves):
        raise ValueError(f"leaf index {index} outside a tree of {len(leaves)}")
    path: list[bytes] = []
    lo, hi = 0, len(leaves)
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            path.append(root(leaves[lo + k : hi]))
            hi = lo + k
        else:
            path.append(root(leaves[lo : lo + k]))
            lo = lo + k
    path.reverse()
    return path


def verify_inclusion(leaf: bytes, index: int, tree_size: int, path: Sequence[bytes], expected_root: bytes) -> bool:
    """Checks an audit path (RFC 9162 §2.1.3.2). Needs nothing but the proof."""
    if not 0 <= index < tree_size:
        return False
    fn, sn, r = index, tree_size - 1, leaf
    for sibling in path:
        if len(sibling) != HASH_LEN or sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(sibling, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, sibling)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == expected_root


# -- persisted subtrees -------------------------------------------------------
# A node (level, index) is the root of the perfect subtree over leaves
# [index * 2^level, (index + 1) * 2^level). Nodes are stored as the log
# grows, so a root needs the O(log N) "peaks" of its size and an audit path
# O(log N) nodes, never the whole log.

Node = tuple[int, int]


def ranges(lo: int, hi: int) -> list[Node]:
    """[lo, hi) as perfect aligned subtrees, left to right (lo aligned to the largest)."""
    out: list[Node] = []
    while lo < hi:
        level = (hi - lo).bit_length() - 1
        while lo % (1 << level):
            level -= 1
        out.append((level, lo >> level))
        lo += 1 << level
    return out


def peaks(size: int) -> list[Node]:
    return ranges(0, size)


def fold(hashes: Sequence[bytes]) -> bytes:
    """MTH of consecutive perfect subtrees given left to right (largest first)."""
    if not hashes:
        return hashlib.sha256(b"").digest()
    result = hashes[-1]
    for left in reversed(hashes[:-1]):
        result = node_hash(left, result)
    return result


def grow(size: int, old_peaks: dict[Node, bytes], leaves: Sequence[bytes]) -> dict[Node, bytes]:
    """Every node completed by appending `leaves` to a tree of `size` whose
    peaks are `old_peaks`: the new leaves (level 0) and inner nodes."""
    known = dict(old_peaks)
    made: dict[Node, bytes] = {}
    for offset, leaf in enumerate(leaves):
        index, level, current = size + offset, 0, leaf
        made[(0, index)] = known[(0, index)] = current
        while index & 1:
            current = node_hash(known[(level, index - 1)], current)
            level, index = level + 1, index >> 1
            made[(level, index)] = known[(level, index)] = current
    return made


def path_nodes(index: int, size: int) -> list[list[Node]]:
    """The audit path of leaf `index` as subtree lists, bottom up: each entry's
    hash is the `fold` of its nodes (RFC 6962 §2.1.1 PATH, iteratively)."""
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} outside a tree of {size}")
    path: list[list[Node]] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            path.append(ranges(lo + k, hi))
            hi = lo + k
        else:
            path.append(ranges(lo, lo + k))
            lo = lo + k
    path.reverse()
    return path
