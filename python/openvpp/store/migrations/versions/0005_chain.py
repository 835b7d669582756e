"""The embedded chain's persisted state, the exactly-once outbox, use-case tokens, redemptions and registry anchors.

Revision ID: 0005_chain
Revises: 0004_routing
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_chain"
down_revision = "0004_routing"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "chain_accounts",
        sa.Column("address", sa.String(length=44), nullable=False),
        sa.Column("account", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("address", name=op.f("pk_chain_accounts")),
    )
    op.create_table(
        "chain_blockhashes",
        sa.Column("blockhash", sa.String(length=44), nullable=False),
        sa.Column("block_height", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("blockhash", name=op.f("pk_chain_blockhashes")),
    )
    with op.batch_alter_table("chain_blockhashes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_chain_blockhashes_block_height"), ["block_height"], unique=False)

    op.create_table(
        "chain_outbox",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("ref", sa.String(length=128), nullable=False),
        sa.Column("state", sa.SmallInteger(), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=True),
        sa.Column("signature", sa.String(length=88), nullable=True),
        sa.Column("last_valid_block_height", sa.BigInteger(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("slot", sa.BigInteger(), nullable=True),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("created_at_us", sa.BigInteger(), nullable=False),
        sa.Column("updated_at_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chain_outbox")),
    )
    with op.batch_alter_table("chain_outbox", schema=None) as batch_op:
        batch_op.create_index("ix_chain_outbox_kind_ref", ["kind", "ref"], unique=True)
        batch_op.create_index(batch_op.f("ix_chain_outbox_signature"), ["signature"], unique=False)
        batch_op.create_index(batch_op.f("ix_chain_outbox_state"), ["state"], unique=False)

    op.create_table(
        "chain_state",
        sa.Column("id", sa.SmallInteger(), nullable=False),
        sa.Column("slot", sa.BigInteger(), nullable=False),
        sa.Column("block_height", sa.BigInteger(), nullable=False),
        sa.Column("unix_time_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chain_state")),
    )
    op.create_table(
        "chain_transactions",
        sa.Column("signature", sa.String(length=88), nullable=False),
        sa.Column("slot", sa.BigInteger(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("fee", sa.BigInteger(), nullable=False),
        sa.Column("compute_units", sa.BigInteger(), nullable=False),
        sa.Column("logs", sa.Text(), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("signature", name=op.f("pk_chain_transactions")),
    )
    op.create_table(
        "registry_anchors",
        sa.Column("tree_size", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("root_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("signature", sa.String(length=88), nullable=False),
        sa.Column("slot", sa.BigInteger(), nullable=False),
        sa.Column("authority", sa.String(length=44), nullable=False),
        sa.Column("anchored_at_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("tree_size", name=op.f("pk_registry_anchors")),
    )
    op.create_table(
        "settlement_config",
        sa.Column("id", sa.SmallInteger(), nullable=False),
        sa.Column("stablecoin_mint", sa.String(length=44), nullable=False),
        sa.Column("stablecoin_decimals", sa.SmallInteger(), nullable=False),
        sa.Column("stablecoin_program", sa.String(length=44), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_settlement_config")),
    )
    op.create_table(
        "use_case_tokens",
        sa.Column("mint", sa.String(length=44), nullable=False),
        sa.Column("utility_namespace", sa.String(length=253), nullable=False),
        sa.Column("program_id", sa.String(length=320), nullable=False),
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("symbol", sa.String(length=10), nullable=False),
        sa.Column("uri", sa.String(length=200), nullable=False),
        sa.Column("unit", sa.SmallInteger(), nullable=False),
        sa.Column("decimals", sa.SmallInteger(), nullable=False),
        sa.Column("redemption_value", sa.BigInteger(), nullable=False),
        sa.Column("interest_rate_bps", sa.Integer(), nullable=True),
        sa.Column("reserve_account", sa.String(length=44), nullable=False),
        sa.Column("stablecoin_mint", sa.String(length=44), nullable=False),
        sa.Column("state", sa.SmallInteger(), nullable=False),
        sa.Column("created_at_us", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["program_id"], ["programs.program_id"], name=op.f("fk_use_case_tokens_program_id_programs")
        ),
        sa.ForeignKeyConstraint(
            ["utility_namespace"], ["partners.namespace"], name=op.f("fk_use_case_tokens_utility_namespace_partners")
        ),
        sa.PrimaryKeyConstraint("mint", name=op.f("pk_use_case_tokens")),
    )
    with op.batch_alter_table("use_case_tokens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_use_case_tokens_program_id"), ["program_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_use_case_tokens_utility_namespace"), ["utility_namespace"], unique=False)

    op.create_table(
        "redemptions",
        sa.Column("redemption_id", sa.String(length=36), nullable=False),
        sa.Column("mint", sa.String(length=44), nullable=False),
        sa.Column("holder", sa.String(length=44), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("payout", sa.BigInteger(), nullable=False),
        sa.Column("message", sa.LargeBinary(), nullable=False),
        sa.Column("last_valid_block_height", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.SmallInteger(), nullable=False),
        sa.Column("signature", sa.String(length=88), nullable=True),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("created_at_us", sa.BigInteger(), nullable=False),
        sa.Column("updated_at_us", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["mint"], ["use_case_tokens.mint"], name=op.f("fk_redemptions_mint_use_case_tokens")),
        sa.PrimaryKeyConstraint("redemption_id", name=op.f("pk_redemptions")),
    )
    with op.batch_alter_table("redemptions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_redemptions_mint"), ["mint"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("redemptions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_redemptions_mint"))

    op.drop_table("redemptions")
    with op.batch_alter_table("use_case_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_use_case_tokens_utility_namespace"))
        batch_op.drop_index(batch_op.f("ix_use_case_tokens_program_id"))

    op.drop_table("use_case_tokens")
    op.drop_table("settlement_config")
    op.drop_table("registry_anchors")
    op.drop_table("chain_transactions")
    op.drop_table("chain_state")
    with op.batch_alter_table("chain_outbox", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_chain_outbox_state"))
        batch_op.drop_index(batch_op.f("ix_chain_outbox_signature"))
        batch_op.drop_index("ix_chain_outbox_kind_ref")

    op.drop_table("chain_outbox")
    with op.batch_alter_table("chain_blockhashes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_chain_blockhashes_block_height"))

    op.drop_table("chain_blockhashes")
    op.drop_table("chain_accounts")
