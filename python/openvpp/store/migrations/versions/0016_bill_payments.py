"""Paying bills: past-due retry policy and attempts, Solana Pay payment
requests with their reference keys, bills paid with use-case tokens, and
journal accounts long enough to name a customer's receivable.

Revision ID: 0016_bill_payments
Revises: 0015_billing
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016_bill_payments"
down_revision = "0015_billing"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("billing_plans") as batch:
        batch.add_column(sa.Column("payment_retries", sa.SmallInteger(), server_default="0", nullable=False))
        batch.add_column(sa.Column("retry_interval_s", sa.Integer(), server_default="86400", nullable=False))
        batch.add_column(sa.Column("accepts_tokens", sa.SmallInteger(), server_default="0", nullable=False))
    with op.batch_alter_table("redemptions") as batch:
        batch.add_column(sa.Column("bill_id", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("bills") as batch:
        batch.add_column(sa.Column("attempts", sa.SmallInteger(), server_default="0", nullable=False))
        batch.add_column(sa.Column("retry_at_us", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("payment_method", sa.SmallInteger(), server_default="0", nullable=False))
    with op.batch_alter_table("ledger_lines") as batch:
        batch.alter_column("account", type_=sa.String(length=480), existing_type=sa.String(length=330))
    op.create_table(
        "bill_payment_requests",
        sa.Column("bill_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("reference", sa.String(length=44), nullable=False),
        sa.Column("recipient", sa.String(length=44), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.SmallInteger(), nullable=False),
        sa.Column("signature", sa.String(length=88), nullable=True),
        sa.Column("created_at_us", sa.BigInteger(), nullable=False),
        sa.Column("updated_at_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("bill_id", name=op.f("pk_bill_payment_requests")),
        sa.UniqueConstraint("reference", name=op.f("uq_bill_payment_requests_reference")),
    )
    op.create_index("ix_bill_payment_requests_state", "bill_payment_requests", ["state"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_bill_payment_requests_state", table_name="bill_payment_requests")
    op.drop_table("bill_payment_requests")
    with op.batch_alter_table("ledger_lines") as batch:
        batch.alter_column("account", type_=sa.String(length=330), existing_type=sa.String(length=480))
    with op.batch_alter_table("bills") as batch:
        batch.drop_column("payment_method")
        batch.drop_column("retry_at_us")
        batch.drop_column("attempts")
    with op.batch_alter_table("redemptions") as batch:
        batch.drop_column("bill_id")
    with op.batch_alter_table("billing_plans") as batch:
        batch.drop_column("accepts_tokens")
        batch.drop_column("retry_interval_s")
        batch.drop_column("payment_retries")
