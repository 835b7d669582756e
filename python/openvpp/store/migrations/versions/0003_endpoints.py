"""Partner endpoints with their last probe result.

Revision ID: 0003_endpoints
Revises: 0002_partners
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_endpoints"
down_revision = "0002_partners"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "endpoints",
        sa.Column("endpoint_id", sa.String(320)),
        sa.Column("namespace", sa.String(253), nullable=False),
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("protocol", sa.SmallInteger, nullable=False),
        sa.Column("programs", sa.Text, nullable=False),
        sa.Column("tls_server_name", sa.String(253), nullable=False),
        sa.Column("auth_mode", sa.SmallInteger, nullable=False),
        sa.Column("health_path", sa.Text, nullable=False),
        sa.Column("trust_anchors_pem", sa.Text, nullable=False),
        sa.Column("expected_spki_pins", sa.Text, nullable=False),
        sa.Column("state", sa.SmallInteger, nullable=False),
        sa.Column("probe", sa.Text, nullable=False),
        sa.Column("probed_at_us", sa.BigInteger, nullable=False),
        sa.Column("registered_at_us", sa.BigInteger, nullable=False),
        sa.Column("updated_at_us", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("endpoint_id", name="pk_endpoints"),
        sa.ForeignKeyConstraint(["namespace"], ["partners.namespace"], name="fk_endpoints_namespace_partners"),
    )
    op.create_index("ix_endpoints_namespace", "endpoints", ["namespace"])


def downgrade() -> None:
    op.drop_table("endpoints")
