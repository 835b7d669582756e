"""The web app's sign-in challenges and sessions.

Revision ID: 0017_web_sessions
Revises: 0016_bill_payments
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017_web_sessions"
down_revision = "0016_bill_payments"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "web_challenges",
        sa.Column("secret_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("subject", sa.String(length=400), nullable=False),
        sa.Column("serial", sa.String(length=40), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("expires_at_us", sa.BigInteger(), nullable=False),
        sa.Column("used_at_us", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("secret_hash"),
    )
    op.create_index("ix_web_challenges_expires_at_us", "web_challenges", ["expires_at_us"])
    op.create_table(
        "web_sessions",
        sa.Column("token_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("subject", sa.String(length=400), nullable=False),
        sa.Column("serial", sa.String(length=40), nullable=False),
        sa.Column("created_at_us", sa.BigInteger(), nullable=False),
        sa.Column("expires_at_us", sa.BigInteger(), nullable=False),
        sa.Column("ended_at_us", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("token_hash"),
    )
    op.create_index("ix_web_sessions_expires_at_us", "web_sessions", ["expires_at_us"])


def downgrade() -> None:
    op.drop_table("web_sessions")
    op.drop_table("web_challenges")
