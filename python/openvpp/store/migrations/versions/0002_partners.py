"""Partners and the certificates issued to them.

Revision ID: 0002_partners
Revises: 0001_registry
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_partners"
down_revision = "0001_registry"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "partners",
        sa.Column("namespace", sa.String(253)),
        sa.Column("kind", sa.SmallInteger, nullable=False),
        sa.Column("legal_name", sa.String(256), nullable=False),
        sa.Column("contacts", sa.Text, nullable=False),
        sa.Column("status", sa.SmallInteger, nullable=False),
        sa.Column("status_reason", sa.Text, nullable=False),
        sa.Column("onboarded_at_us", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("namespace", name="pk_partners"),
    )
    op.create_table(
        "certificates",
        sa.Column("serial", sa.String(40)),
        sa.Column("namespace", sa.String(253), nullable=False),
        sa.Column("kind", sa.SmallInteger, nullable=False),
        sa.Column("not_before_us", sa.BigInteger, nullable=False),
        sa.Column("not_after_us", sa.BigInteger, nullable=False),
        sa.Column("revoked_at_us", sa.BigInteger, nullable=True),
        sa.Column("revocation_reason", sa.SmallInteger, nullable=False),
        sa.Column("certificate_pem", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("serial", name="pk_certificates"),
        sa.ForeignKeyConstraint(["namespace"], ["partners.namespace"], name="fk_certificates_namespace_partners"),
    )
    op.create_index("ix_certificates_namespace", "certificates", ["namespace"])


def downgrade() -> None:
    op.drop_table("certificates")
    op.drop_table("partners")
