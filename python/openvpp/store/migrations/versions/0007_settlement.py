"""Settlement: reading batches, tariffs and price feeds, program settlement, the double-entry ledger, payouts, DR events and the settlement event log.

Revision ID: 0007_settlement
Revises: 0006_readings
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_settlement"
down_revision = "0006_readings"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "credits",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("program_id", sa.String(length=320), nullable=False),
        sa.Column("kind", sa.SmallInteger(), nullable=False),
        sa.Column("der_id", sa.String(length=44), nullable=False),
        sa.Column("party", sa.SmallInteger(), nullable=False),
        sa.Column("wallet", sa.String(length=44), nullable=False),
        sa.Column("mint", sa.String(length=44), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("seq_first", sa.BigInteger(), nullable=False),
        sa.Column("seq_last", sa.BigInteger(), nullable=False),
        sa.Column("energy_wh", sa.BigInteger(), nullable=False),
        sa.Column("estimated_wh", sa.BigInteger(), nullable=False),
        sa.Column("dr_event_id", sa.String(length=36), nullable=False),
        sa.Column("entry_id", sa.BigInteger(), nullable=False),
        sa.Column("payout_id", sa.BigInteger(), nullable=True),
        sa.Column("trace_parent", sa.String(length=64), nullable=False),
        sa.Column("created_at_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_credits")),
    )
    with op.batch_alter_table("credits", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_credits_der_id"), ["der_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_credits_payout_id"), ["payout_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_credits_program_id"), ["program_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_credits_wallet"), ["wallet"], unique=False)

    op.create_table(
        "dr_results",
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("der_id", sa.String(length=44), nullable=False),
        sa.Column("baseline_wh", sa.BigInteger(), nullable=False),
        sa.Column("actual_wh", sa.BigInteger(), nullable=False),
        sa.Column("performance_wh", sa.BigInteger(), nullable=False),
        sa.Column("adjustment_bps", sa.Integer(), nullable=False),
        sa.Column("baseline_days", sa.Text(), nullable=False),
        sa.Column("intervals", sa.Text(), nullable=False),
        sa.Column("credited", sa.BigInteger(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("computed_at_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("event_id", "der_id", name=op.f("pk_dr_results")),
    )
    op.create_table(
        "ledger_entries",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("ref", sa.String(length=128), nullable=False),
        sa.Column("created_at_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_entries")),
    )
    op.create_table(
        "ledger_lines",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("entry_id", sa.BigInteger(), nullable=False),
        sa.Column("account", sa.String(length=330), nullable=False),
        sa.Column("mint", sa.String(length=44), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_lines")),
    )
    with op.batch_alter_table("ledger_lines", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ledger_lines_entry_id"), ["entry_id"], unique=False)
        batch_op.create_index("ix_ledger_lines_mint_account", ["mint", "account"], unique=False)

    op.create_table(
        "price_points",
        sa.Column("feed_id", sa.String(length=320), nullable=False),
        sa.Column("at", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("price_micro_per_kwh", sa.BigInteger(), nullable=False),
        sa.Column("carbon_g_per_kwh", sa.BigInteger(), nullable=False),
        sa.Column("publication_id", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("feed_id", "at", name=op.f("pk_price_points")),
    )
    op.create_table(
        "pricing_cursors",
        sa.Column("program_id", sa.String(length=320), nullable=False),
        sa.Column("der_id", sa.String(length=44), nullable=False),
        sa.Column("next_seq", sa.BigInteger(), nullable=False),
        sa.Column("carry", sa.String(length=40), nullable=False),
        sa.PrimaryKeyConstraint("program_id", "der_id", name=op.f("pk_pricing_cursors")),
    )
    op.create_table(
        "reading_batches",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("batch_ref", sa.String(length=64), nullable=False),
        sa.Column("vendor_namespace", sa.String(length=253), nullable=False),
        sa.Column("accepted", sa.Integer(), nullable=False),
        sa.Column("rejected", sa.Integer(), nullable=False),
        sa.Column("trace_parent", sa.String(length=64), nullable=False),
        sa.Column("received_at_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reading_batches")),
    )
    op.create_table(
        "settlement_event_head",
        sa.Column("id", sa.SmallInteger(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_settlement_event_head")),
    )
    op.create_table(
        "settlement_events",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("utility_namespace", sa.String(length=253), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("at_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_settlement_events")),
    )
    with op.batch_alter_table("settlement_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_settlement_events_utility_namespace"), ["utility_namespace"], unique=False)

    op.create_table(
        "settlements",
        sa.Column("settlement_id", sa.String(length=36), nullable=False),
        sa.Column("state", sa.SmallInteger(), nullable=False),
        sa.Column("transactions", sa.Integer(), nullable=False),
        sa.Column("payouts", sa.Integer(), nullable=False),
        sa.Column("credits", sa.Integer(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("digest", sa.LargeBinary(length=32), nullable=False),
        sa.Column("trace_parent", sa.String(length=64), nullable=False),
        sa.Column("created_at_us", sa.BigInteger(), nullable=False),
        sa.Column("updated_at_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("settlement_id", name=op.f("pk_settlements")),
    )
    op.create_table(
        "token_accounts",
        sa.Column("wallet", sa.String(length=44), nullable=False),
        sa.Column("mint", sa.String(length=44), nullable=False),
        sa.PrimaryKeyConstraint("wallet", "mint", name=op.f("pk_token_accounts")),
    )
    op.create_table(
        "payouts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("settlement_id", sa.String(length=36), nullable=False),
        sa.Column("tx_index", sa.Integer(), nullable=False),
        sa.Column("wallet", sa.String(length=44), nullable=False),
        sa.Column("mint", sa.String(length=44), nullable=False),
        sa.Column("program_id", sa.String(length=320), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("credits", sa.Integer(), nullable=False),
        sa.Column("state", sa.SmallInteger(), nullable=False),
        sa.Column("signature", sa.String(length=88), nullable=True),
        sa.Column("created_at_us", sa.BigInteger(), nullable=False),
        sa.Column("updated_at_us", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["settlement_id"], ["settlements.settlement_id"], name=op.f("fk_payouts_settlement_id_settlements")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payouts")),
    )
    with op.batch_alter_table("payouts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_payouts_settlement_id"), ["settlement_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_payouts_wallet"), ["wallet"], unique=False)

    op.create_table(
        "price_feeds",
        sa.Column("feed_id", sa.String(length=320), nullable=False),
        sa.Column("utility_namespace", sa.String(length=253), nullable=False),
        sa.Column("oracle_key", sa.String(length=44), nullable=False),
        sa.Column("max_age_seconds", sa.Integer(), nullable=False),
        sa.Column("created_at_us", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["utility_namespace"], ["partners.namespace"], name=op.f("fk_price_feeds_utility_namespace_partners")
        ),
        sa.PrimaryKeyConstraint("feed_id", name=op.f("pk_price_feeds")),
    )
    with op.batch_alter_table("price_feeds", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_price_feeds_utility_namespace"), ["utility_namespace"], unique=False)

    op.create_table(
        "tariffs",
        sa.Column("tariff_id", sa.String(length=320), nullable=False),
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("utility_namespace", sa.String(length=253), nullable=False),
        sa.Column("time_zone", sa.String(length=64), nullable=False),
        sa.Column("effective_from", sa.String(length=10), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("published_at_us", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["utility_namespace"], ["partners.namespace"], name=op.f("fk_tariffs_utility_namespace_partners")
        ),
        sa.PrimaryKeyConstraint("tariff_id", "version", name=op.f("pk_tariffs")),
    )
    with op.batch_alter_table("tariffs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_tariffs_utility_namespace"), ["utility_namespace"], unique=False)

    op.create_table(
        "dr_events",
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("program_id", sa.String(length=320), nullable=False),
        sa.Column("start_s", sa.BigInteger(), nullable=False),
        sa.Column("end_s", sa.BigInteger(), nullable=False),
        sa.Column("incentive", sa.BigInteger(), nullable=False),
        sa.Column("method", sa.String(length=64), nullable=False),
        sa.Column("created_at_us", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["program_id"], ["programs.program_id"], name=op.f("fk_dr_events_program_id_programs")),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_dr_events")),
    )
    with op.batch_alter_table("dr_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_dr_events_program_id"), ["program_id"], unique=False)

    op.create_table(
        "price_publications",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("feed_id", sa.String(length=320), nullable=False),
        sa.Column("points", sa.LargeBinary(), nullable=False),
        sa.Column("signature", sa.LargeBinary(length=64), nullable=False),
        sa.Column("received_at_us", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["feed_id"], ["price_feeds.feed_id"], name=op.f("fk_price_publications_feed_id_price_feeds")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_price_publications")),
    )
    with op.batch_alter_table("price_publications", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_price_publications_feed_id"), ["feed_id"], unique=False)

    op.create_table(
        "program_settlements",
        sa.Column("program_id", sa.String(length=320), nullable=False),
        sa.Column("utility_namespace", sa.String(length=253), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("kind", sa.SmallInteger(), nullable=False),
        sa.Column("mint", sa.String(length=44), nullable=False),
        sa.Column("tariff_id", sa.String(length=320), nullable=False),
        sa.Column("price_feed_id", sa.String(length=320), nullable=False),
        sa.Column("split", sa.Text(), nullable=False),
        sa.Column("hold_reason", sa.Text(), nullable=False),
        sa.Column("updated_at_us", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["mint"], ["use_case_tokens.mint"], name=op.f("fk_program_settlements_mint_use_case_tokens")
        ),
        sa.ForeignKeyConstraint(
            ["program_id"], ["programs.program_id"], name=op.f("fk_program_settlements_program_id_programs")
        ),
        sa.PrimaryKeyConstraint("program_id", name=op.f("pk_program_settlements")),
    )
    with op.batch_alter_table("program_settlements", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_program_settlements_utility_namespace"), ["utility_namespace"], unique=False
        )

    with op.batch_alter_table("readings", schema=None) as batch_op:
        batch_op.add_column(sa.Column("batch_id", sa.BigInteger(), nullable=True))
    op.bulk_insert(sa.table("settlement_event_head", sa.column("id"), sa.column("seq")), [{"id": 1, "seq": 0}])


def downgrade() -> None:
    with op.batch_alter_table("readings", schema=None) as batch_op:
        batch_op.drop_column("batch_id")

    with op.batch_alter_table("program_settlements", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_program_settlements_utility_namespace"))

    op.drop_table("program_settlements")
    with op.batch_alter_table("price_publications", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_price_publications_feed_id"))

    op.drop_table("price_publications")
    with op.batch_alter_table("dr_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dr_events_program_id"))

    op.drop_table("dr_events")
    with op.batch_alter_table("tariffs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tariffs_utility_namespace"))

    op.drop_table("tariffs")
    with op.batch_alter_table("price_feeds", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_price_feeds_utility_namespace"))

    op.drop_table("price_feeds")
    with op.batch_alter_table("payouts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_payouts_wallet"))
        batch_op.drop_index(batch_op.f("ix_payouts_settlement_id"))

    op.drop_table("payouts")
    op.drop_table("token_accounts")
    op.drop_table("settlements")
    with op.batch_alter_table("settlement_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_settlement_events_utility_namespace"))

    op.drop_table("settlement_events")
    op.drop_table("settlement_event_head")
    op.drop_table("reading_batches")
    op.drop_table("pricing_cursors")
    op.drop_table("price_points")
    with op.batch_alter_table("ledger_lines", schema=None) as batch_op:
        batch_op.drop_index("ix_ledger_lines_mint_account")
        batch_op.drop_index(batch_op.f("ix_ledger_lines_entry_id"))

    op.drop_table("ledger_lines")
    op.drop_table("ledger_entries")
    op.drop_table("dr_results")
    with op.batch_alter_table("credits", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_credits_wallet"))
        batch_op.drop_index(batch_op.f("ix_credits_program_id"))
        batch_op.drop_index(batch_op.f("ix_credits_payout_id"))
        batch_op.drop_index(batch_op.f("ix_credits_der_id"))

    op.drop_table("credits")
