"""Outbox leases: the replica driving a row, until when, and the fencing
token of its claim, so that re-signing, expiry and completion are
compare-and-set and a replica that lost its lease stops.

Revision ID: 0012_outbox_lease
Revises: 0011_credential_log
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012_outbox_lease"
down_revision = "0011_credential_log"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("chain_outbox") as batch:
        batch.add_column(sa.Column("fence", sa.BigInteger(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("lease_owner", sa.String(length=128), nullable=True))
        batch.add_column(sa.Column("lease_until_us", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("chain_outbox") as batch:
        batch.drop_column("lease_until_us")
        batch.drop_column("lease_owner")
        batch.drop_column("fence")
