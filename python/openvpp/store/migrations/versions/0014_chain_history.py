"""What a served embedded chain keeps about each transaction for the
JSON-RPC: block time, balances before and after, inner instructions, and
an index of the signatures touching each address; plus a genesis hash.

Revision ID: 0014_chain_history
Revises: 0013_event_staging
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014_chain_history"
down_revision = "0013_event_staging"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("chain_transactions") as batch:
        batch.add_column(sa.Column("block_time", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("details", sa.Text(), nullable=True))
    with op.batch_alter_table("chain_state") as batch:
        batch.add_column(sa.Column("genesis_hash", sa.String(length=44), nullable=True))
    op.create_table(
        "chain_address_signatures",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("address", sa.String(length=44), nullable=False),
        sa.Column("signature", sa.String(length=88), nullable=False),
        sa.Column("slot", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chain_address_signatures")),
    )
    op.create_index(
        "ix_chain_address_signatures_address_id", "chain_address_signatures", ["address", "id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_chain_address_signatures_address_id", table_name="chain_address_signatures")
    op.drop_table("chain_address_signatures")
    with op.batch_alter_table("chain_state") as batch:
        batch.drop_column("genesis_hash")
    with op.batch_alter_table("chain_transactions") as batch:
        batch.drop_column("details")
        batch.drop_column("block_time")
