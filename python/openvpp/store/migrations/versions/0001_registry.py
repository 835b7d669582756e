"""Registry: devices, aliases and the hash-chained log.

Revision ID: 0001_registry
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_registry"
down_revision = None
branch_labels = None
depends_on = None

GENESIS_HASH = bytes(32)


def upgrade() -> None:
    head = op.create_table(
        "registry_head",
        sa.Column("id", sa.SmallInteger, primary_key=True),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("head_hash", sa.LargeBinary(32), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_registry_head"),
    )
    op.bulk_insert(head, [{"id": 1, "seq": 0, "head_hash": GENESIS_HASH}])
    op.create_table(
        "registry_log",
        sa.Column("seq", sa.BigInteger, autoincrement=False),
        sa.Column("der_id", sa.String(44), nullable=False),
        sa.Column("kind", sa.SmallInteger, nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("entry_bytes", sa.LargeBinary, nullable=False),
        sa.Column("leaf_hash", sa.LargeBinary(32), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_registry_log"),
    )
    op.create_index("ix_registry_log_der_id_version", "registry_log", ["der_id", "version"])
    op.create_table(
        "devices",
        sa.Column("der_id", sa.String(44)),
        sa.Column("public_key", sa.LargeBinary(32), nullable=False),
        sa.Column("name", sa.String(253), nullable=False),
        sa.Column("vendor_namespace", sa.String(253), nullable=False),
        sa.Column("kind", sa.SmallInteger, nullable=False),
        sa.Column("utility_territory", sa.String(64), nullable=False),
        sa.Column("status", sa.SmallInteger, nullable=False),
        sa.Column("status_reason", sa.Text, nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("record_bytes", sa.LargeBinary, nullable=False),
        sa.Column("signature", sa.LargeBinary(64), nullable=False),
        sa.Column("registered_seq", sa.BigInteger, nullable=False),
        sa.Column("log_seq", sa.BigInteger, nullable=False),
        sa.Column("registered_at_us", sa.BigInteger, nullable=False),
        sa.Column("updated_at_us", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("der_id", name="pk_devices"),
        sa.UniqueConstraint("name", name="uq_devices_name"),
        sa.UniqueConstraint("registered_seq", name="uq_devices_registered_seq"),
    )
    op.create_index("ix_devices_vendor_namespace", "devices", ["vendor_namespace"])
    op.create_index("ix_devices_utility_territory", "devices", ["utility_territory"])
    op.create_table(
        "device_aliases",
        sa.Column("kind", sa.SmallInteger),
        sa.Column("value", sa.String(128)),
        sa.Column("der_id", sa.String(44), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("kind", "value", name="pk_device_aliases"),
        sa.ForeignKeyConstraint(["der_id"], ["devices.der_id"], name="fk_device_aliases_der_id_devices"),
    )
    op.create_index("ix_device_aliases_der_id", "device_aliases", ["der_id"])


def downgrade() -> None:
    op.drop_table("device_aliases")
    op.drop_table("devices")
    op.drop_table("registry_log")
    op.drop_table("registry_head")
