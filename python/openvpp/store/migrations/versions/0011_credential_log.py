"""The credential change log: revocations, suspensions and reinstatements,
which every replica's credential cache follows.

Revision ID: 0011_credential_log
Revises: 0010_registry_tree
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_credential_log"
down_revision = "0010_registry_tree"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "credential_log",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("namespace", sa.String(length=253), nullable=False),
        sa.Column("serial", sa.String(length=40), nullable=False),
        sa.Column("change", sa.String(length=16), nullable=False),
        sa.Column("at_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_credential_log")),
    )


def downgrade() -> None:
    op.drop_table("credential_log")
