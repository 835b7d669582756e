"""Rounding remainders per receiving party, credits that show how they were made, DR export mode.

Remainders were carried per (program, device) and a split used the largest
remainder within each credit, so a party's total depended on how readings
happened to be batched. They are now carried per (wallet, token) in
party_carries. Stored device remainders are dropped rather than converted:
they were in units of the old, value-blind conversion and are each below one
base unit.

Revision ID: 0009_party_remainders
Revises: 0008_readings_by_device_number
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_party_remainders"
down_revision = "0008_readings_by_device_number"
branch_labels = None
depends_on = None

_CREDIT_COLUMNS = (
    ("share_bps", sa.Integer(), "10000"),
    ("exact_share", sa.String(length=48), "0"),
    ("carry_after", sa.String(length=48), "0"),
    ("denominator", sa.String(length=48), "1"),
    ("interval_start", sa.BigInteger(), "0"),
    ("interval_end", sa.BigInteger(), "0"),
)


def upgrade() -> None:
    op.create_table(
        "party_carries",
        sa.Column("wallet", sa.String(length=44), nullable=False),
        sa.Column("mint", sa.String(length=44), nullable=False),
        sa.Column("carry", sa.String(length=48), nullable=False),
        sa.Column("denominator", sa.String(length=48), nullable=False),
        sa.PrimaryKeyConstraint("wallet", "mint", name=op.f("pk_party_carries")),
    )
    with op.batch_alter_table("credits") as batch:
        for name, kind, default in _CREDIT_COLUMNS:
            batch.add_column(sa.Column(name, kind, nullable=False, server_default=default))
    with op.batch_alter_table("program_settlements") as batch:
        batch.add_column(sa.Column("dr_includes_exports", sa.SmallInteger(), nullable=False, server_default="0"))
    op.execute("UPDATE pricing_cursors SET carry = '0'")


def downgrade() -> None:
    with op.batch_alter_table("program_settlements") as batch:
        batch.drop_column("dr_includes_exports")
    with op.batch_alter_table("credits") as batch:
        for name, _, _ in reversed(_CREDIT_COLUMNS):
            batch.drop_column(name)
    op.drop_table("party_carries")
