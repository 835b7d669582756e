"""`make bench`: the registry head and an inclusion proof at a million log entries.

Before: every call read every leaf hash and rehashed the tree (`merkle.root`,
`merkle.audit_path` over the whole log). After: the root is read from the head
row and a proof from the O(log N) persisted subtrees. Both are timed on the
same SQLite database, through the same repository code the server uses, and
checked to give identical roots and paths.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table
from sqlalchemy import insert, update

from openvpp.registry import merkle
from openvpp.store import migrate
from openvpp.store import registry_repo as repo
from openvpp.store.database import Database
from openvpp.store.schema import registry_head, registry_log, registry_tree

OUT = Path("build/bench/registry_tree.json")


async def _fill(db: Database, entries: int) -> None:
    """A log of `entries` leaves with its subtrees, written in bulk."""
    size, peaks = 0, dict[merkle.Node, bytes]()
    batch = 50_000
    while size < entries:
        count = min(batch, entries - size)
        leaves = [merkle.leaf_hash(i.to_bytes(8, "big")) for i in range(size, size + count)]
        made = merkle.grow(size, peaks, leaves)
        async with db.write() as conn:
            await conn.execute(
                insert(registry_log),
                [
                    {"seq": size + i + 1, "der_id": "x", "kind": 1, "version": 1, "entry_bytes": b"", "leaf_hash": h}
                    for i, h in enumerate(leaves)
                ],
            )
            await conn.execute(
                insert(registry_tree), [{"level": lv, "idx": i, "hash": h} for (lv, i), h in made.items() if lv > 0]
            )
        size += count
        known = {**peaks, **made}
        peaks = {p: known[p] for p in merkle.peaks(size)}
    root = merkle.fold([peaks[p] for p in merkle.peaks(size)])
    async with db.write() as conn:
        await conn.execute(update(registry_head).where(registry_head.c.id == 1).values(seq=size, root_hash=root))


async def _measure(db: Database, size: int, rounds: int) -> dict[str, float]:
    index = size // 3

    async def head_before() -> bytes:
        async with db.read() as conn:
            seq, _ = await repo.head(conn)
            return merkle.root(await repo.leaf_hashes(conn, seq))

    async def head_after() -> bytes:
        async with db.read() as conn:
            return await repo.root(conn)

    async def proof_before() -> list[bytes]:
        async with db.read() as conn:
            return merkle.audit_path(index, await repo.leaf_hashes(conn, size))

    async def proof_after() -> list[bytes]:
        parts = merkle.path_nodes(index, size)
        async with db.read() as conn:
            nodes = await repo.tree_nodes(conn, [n for part in parts for n in part])
        return [merkle.fold([nodes[n] for n in part]) for part in parts]

    out: dict[str, list[float]] = {k: [] for k in ("head_before", "head_after", "proof_before", "proof_after")}
    results = {}
    for _ in range(rounds):
        for name, fn in (
            ("head_before", head_before),
            ("head_after", head_after),
            ("proof_before", proof_before),
            ("proof_after", proof_after),
        ):
            start = time.perf_counter()
            results[name] = await fn()
            out[name].append(time.perf_counter() - start)
    assert results["head_before"] == results["head_after"]
    assert results["proof_before"] == results["proof_after"]
    return {k: statistics.median(v) for k, v in out.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'tree.db'}"
        migrate.upgrade(url)

        async def run() -> dict[str, float]:
            db = Database(url)
            try:
                await _fill(db, args.entries)
                return await _measure(db, args.entries, args.rounds)
            finally:
                await db.close()

        result = asyncio.run(run())
    table = Table(title=f"Registry tree at {args.entries:,} entries (SQLite, median of {args.rounds})")
    for column in ("call", "before (whole log)", "after (persisted subtrees)", "speed-up"):
        table.add_column(column)
    for call in ("head", "proof"):
        before, after = result[f"{call}_before"], result[f"{call}_after"]
        table.add_row(call, f"{before * 1000:,.1f} ms", f"{after * 1000:,.2f} ms", f"{before / after:,.0f}x")
    Console().print(table)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"entries": args.entries, **result}, indent=2))
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
