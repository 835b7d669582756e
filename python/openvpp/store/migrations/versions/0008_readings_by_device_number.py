"""Readings keyed by the device's registry number instead of its der_id, without the stored payload digest.

Every batch inserts into the readings key at one place per device, all over
the index; with a 44-character der_id in every entry the index outgrew the
page cache at about a million readings and ingestion slowed as the table
grew. The registry number (devices.registered_seq) is a few bytes. The
payload digest is dropped because it is a function of the stored payload.

Revision ID: 0008_readings_by_device_number
Revises: 0007_settlement
Create Date: 2026-11-23
"""

from __future__ import annotations

import hashlib
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0008_readings_by_device_number"
down_revision = "0007_settlement"
branch_labels = None
depends_on = None

_SHARED = (
    "seq, covered_from, interval_end, import_wh, export_wh, flags, missing, payload, signature, chain_hash, "
    "received_at_us, batch_id"
)
_COPY_ROWS = 10_000


def _columns(key: sa.Column[Any], *, digest: bool) -> list[sa.Column[Any]]:
    return [
        key,
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("covered_from", sa.BigInteger(), nullable=False),
        sa.Column("interval_end", sa.BigInteger(), nullable=False),
        sa.Column("import_wh", sa.BigInteger(), nullable=False),
        sa.Column("export_wh", sa.BigInteger(), nullable=False),
        sa.Column("flags", sa.SmallInteger(), nullable=False),
        sa.Column("missing", sa.BigInteger(), nullable=False),
        sa.Column("payload", sa.LargeBinary(length=72), nullable=False),
        sa.Column("signature", sa.LargeBinary(length=64), nullable=False),
        *([sa.Column("digest", sa.LargeBinary(length=32), nullable=False)] if digest else []),
        sa.Column("chain_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("received_at_us", sa.BigInteger(), nullable=False),
        sa.Column("batch_id", sa.BigInteger(), nullable=True),
    ]


def _swap(new: str) -> None:
    """Replaces `readings` by the copy `new`, keeping the constraint and index names."""
    op.drop_table("readings")
    op.rename_table(new, "readings")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER TABLE readings RENAME CONSTRAINT pk_{new} TO pk_readings")
    op.create_index("ix_readings_interval_end", "readings", ["interval_end"], unique=False)


def upgrade() -> None:
    op.drop_index("ix_readings_interval_end", table_name="readings")
    op.create_table(
        "readings_by_device",
        *_columns(sa.Column("device", sa.BigInteger(), autoincrement=False, nullable=False), digest=False),
        sa.PrimaryKeyConstraint("device", "seq", name="pk_readings_by_device"),
    )
    op.execute(
        f"INSERT INTO readings_by_device (device, {_SHARED}) "
        f"SELECT d.registered_seq, {', '.join('r.' + c.strip() for c in _SHARED.split(','))} "
        "FROM readings r JOIN devices d ON d.der_id = r.der_id"
    )
    _swap("readings_by_device")


def downgrade() -> None:
    op.drop_index("ix_readings_interval_end", table_name="readings")
    table = op.create_table(
        "readings_by_der_id",
        *_columns(sa.Column("der_id", sa.String(length=44), nullable=False), digest=True),
        sa.PrimaryKeyConstraint("der_id", "seq", name="pk_readings_by_der_id"),
    )
    assert table is not None  # create_table returns the Table it made
    bind = op.get_bind()
    # The digest has no portable SQL spelling (SQLite lacks SHA-256), so rows are copied through Python.
    rows = bind.execute(
        sa.text(
            f"SELECT d.der_id, {', '.join('r.' + c.strip() for c in _SHARED.split(','))} "
            "FROM readings r JOIN devices d ON d.registered_seq = r.device ORDER BY r.device, r.seq"
        )
    )
    while chunk := rows.fetchmany(_COPY_ROWS):
        bind.execute(
            table.insert(), [{**row._mapping, "digest": hashlib.sha256(row.payload).digest()} for row in chunk]
        )
    _swap("readings_by_der_id")
