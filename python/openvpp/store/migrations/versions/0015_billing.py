"""Billing: each program's plan (versions as rows) and each account's
issued bills, with the state carried from one bill to the next.

Revision ID: 0015_billing
Revises: 0014_chain_history
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015_billing"
down_revision = "0014_chain_history"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "billing_plans",
        sa.Column("program_id", sa.String(length=320), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("utility_namespace", sa.String(length=253), nullable=False),
        sa.Column("regime", sa.SmallInteger(), nullable=False),
        sa.Column("time_zone", sa.String(length=64), nullable=False),
        sa.Column("cycle_day", sa.SmallInteger(), nullable=False),
        sa.Column("true_up_month", sa.SmallInteger(), nullable=False),
        sa.Column("surplus_rate", sa.BigInteger(), nullable=False),
        sa.Column("tax_bps", sa.Integer(), nullable=False),
        sa.Column("urdb_json", sa.Text(), nullable=False),
        sa.Column("urdb_label", sa.String(length=200), nullable=False),
        sa.Column("tariff_name", sa.Text(), nullable=False),
        sa.Column("bills_from", sa.String(length=10), nullable=False),
        sa.Column("collect_threshold", sa.BigInteger(), nullable=False),
        sa.Column("created_at_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("program_id", "version", name=op.f("pk_billing_plans")),
    )
    op.create_index("ix_billing_plans_utility_namespace", "billing_plans", ["utility_namespace"], unique=False)
    op.create_table(
        "bills",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("program_id", sa.String(length=320), nullable=False),
        sa.Column("account_ref", sa.String(length=128), nullable=False),
        sa.Column("period_start", sa.String(length=10), nullable=False),
        sa.Column("period_end", sa.String(length=10), nullable=False),
        sa.Column("plan_version", sa.Integer(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("amount_due", sa.BigInteger(), nullable=False),
        sa.Column("issued_at_us", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.SmallInteger(), nullable=False),
        sa.Column("payment_signature", sa.String(length=88), nullable=True),
        sa.Column("payment_reason", sa.Text(), nullable=False),
        sa.Column("updated_at_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bills")),
    )
    op.create_index("ix_bills_state", "bills", ["state"], unique=False)
    op.create_table(
        "billing_autopay",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("program_id", sa.String(length=320), nullable=False),
        sa.Column("account_ref", sa.String(length=128), nullable=False),
        sa.Column("holder", sa.String(length=44), nullable=False),
        sa.Column("token_account", sa.String(length=44), nullable=False),
        sa.Column("delegate", sa.String(length=44), nullable=False),
        sa.Column("allowance", sa.BigInteger(), nullable=False),
        sa.Column("message", sa.LargeBinary(), nullable=False),
        sa.Column("last_valid_block_height", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.SmallInteger(), nullable=False),
        sa.Column("signature", sa.String(length=88), nullable=True),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("updated_at_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_billing_autopay")),
    )
    op.create_index("ix_billing_autopay_program_account", "billing_autopay", ["program_id", "account_ref"], unique=True)
    op.create_table(
        "bill_collections",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("program_id", sa.String(length=320), nullable=False),
        sa.Column("account_ref", sa.String(length=128), nullable=False),
        sa.Column("period_start", sa.String(length=10), nullable=False),
        sa.Column("period_end", sa.String(length=10), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.SmallInteger(), nullable=False),
        sa.Column("signature", sa.String(length=88), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("updated_at_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bill_collections")),
    )
    op.create_index(
        "ix_bill_collections_account_period",
        "bill_collections",
        ["program_id", "account_ref", "period_start"],
        unique=False,
    )
    op.create_index(
        "ix_bills_program_account_period", "bills", ["program_id", "account_ref", "period_start"], unique=True
    )


def downgrade() -> None:
    op.drop_index("ix_bill_collections_account_period", table_name="bill_collections")
    op.drop_table("bill_collections")
    op.drop_index("ix_billing_autopay_program_account", table_name="billing_autopay")
    op.drop_table("billing_autopay")
    op.drop_index("ix_bills_state", table_name="bills")
    op.drop_index("ix_bills_program_account_period", table_name="bills")
    op.drop_table("bills")
    op.drop_index("ix_billing_plans_utility_namespace", table_name="billing_plans")
    op.drop_table("billing_plans")
