"""Settlement events staged by writers and sequenced into the log in a
short final step, so that writers on many replicas never queue on the
log's head row (PostgreSQL; SQLite has one writer and appends directly).

Revision ID: 0013_event_staging
Revises: 0012_outbox_lease
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013_event_staging"
down_revision = "0012_outbox_lease"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "settlement_event_staging",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("utility_namespace", sa.String(length=253), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("at_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_settlement_event_staging")),
    )


def downgrade() -> None:
    op.drop_table("settlement_event_staging")
