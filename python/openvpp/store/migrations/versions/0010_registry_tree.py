"""The registry's Merkle subtrees, persisted: head O(1), inclusion proofs O(log N).

Roots and proofs were recomputed from every leaf on each call. Complete
subtree hashes are now stored as entries append, and the whole-log root is
kept on the head row. Existing logs are backfilled here in one pass.

Revision ID: 0010_registry_tree
Revises: 0009_party_remainders
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from openvpp.registry import merkle

revision = "0010_registry_tree"
down_revision = "0009_party_remainders"
branch_labels = None
depends_on = None

_BATCH = 10_000


def upgrade() -> None:
    op.create_table(
        "registry_tree",
        sa.Column("level", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("idx", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("hash", sa.LargeBinary(length=32), nullable=False),
        sa.PrimaryKeyConstraint("level", "idx", name=op.f("pk_registry_tree")),
    )
    with op.batch_alter_table("registry_head") as batch:
        batch.add_column(sa.Column("root_hash", sa.LargeBinary(length=32), nullable=True))
    bind = op.get_bind()
    tree = sa.table("registry_tree", sa.column("level"), sa.column("idx"), sa.column("hash"))
    log = sa.table("registry_log", sa.column("seq"), sa.column("leaf_hash"))
    size, peaks = 0, dict[merkle.Node, bytes]()
    rows = bind.execute(sa.select(log.c.leaf_hash).order_by(log.c.seq)).scalars()
    while batch_leaves := [bytes(h) for h in rows.fetchmany(_BATCH)]:
        made = merkle.grow(size, peaks, batch_leaves)
        size += len(batch_leaves)
        inner = [{"level": lv, "idx": i, "hash": h} for (lv, i), h in made.items() if lv > 0]
        if inner:
            bind.execute(tree.insert(), inner)
        known = {**peaks, **made}
        peaks = {p: known[p] for p in merkle.peaks(size)}
    root = merkle.fold([peaks[p] for p in merkle.peaks(size)])
    bind.execute(sa.text("UPDATE registry_head SET root_hash = :root WHERE id = 1"), {"root": root})


def downgrade() -> None:
    with op.batch_alter_table("registry_head") as batch:
        batch.drop_column("root_hash")
    op.drop_table("registry_tree")
