"""Programs, endpoint attachments, enrollments, the route-change log and 2030.5 device certificates.

Revision ID: 0004_routing
Revises: 0003_endpoints
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_routing"
down_revision = "0003_endpoints"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "programs",
        sa.Column("program_id", sa.String(320)),
        sa.Column("utility_namespace", sa.String(253), nullable=False),
        sa.Column("code", sa.String(63), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("kind", sa.SmallInteger, nullable=False),
        sa.Column("route_ttl_seconds", sa.Integer, nullable=False),
        sa.Column("created_at_us", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("program_id", name="pk_programs"),
        sa.ForeignKeyConstraint(
            ["utility_namespace"], ["partners.namespace"], name="fk_programs_utility_namespace_partners"
        ),
    )
    op.create_index("ix_programs_utility_namespace", "programs", ["utility_namespace"])
    op.create_table(
        "program_endpoints",
        sa.Column("program_id", sa.String(320)),
        sa.Column("endpoint_id", sa.String(320)),
        sa.Column("priority", sa.Integer, nullable=False),
        sa.Column("weight", sa.Integer, nullable=False),
        sa.Column("attached_at_us", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("program_id", "endpoint_id", name="pk_program_endpoints"),
        sa.ForeignKeyConstraint(
            ["program_id"], ["programs.program_id"], name="fk_program_endpoints_program_id_programs"
        ),
        sa.ForeignKeyConstraint(
            ["endpoint_id"], ["endpoints.endpoint_id"], name="fk_program_endpoints_endpoint_id_endpoints"
        ),
    )
    op.create_index("ix_program_endpoints_endpoint_id", "program_endpoints", ["endpoint_id"])
    op.create_table(
        "enrollments",
        sa.Column("program_id", sa.String(320)),
        sa.Column("der_id", sa.String(44)),
        sa.Column("utility_namespace", sa.String(253), nullable=False),
        sa.Column("vendor_namespace", sa.String(253), nullable=False),
        sa.Column("account_ref", sa.String(128), nullable=False),
        sa.Column("consent_payload", sa.LargeBinary, nullable=False),
        sa.Column("consent_signature", sa.LargeBinary(64), nullable=False),
        sa.Column("scopes", sa.Text, nullable=False),
        sa.Column("status", sa.SmallInteger, nullable=False),
        sa.Column("status_reason", sa.Text, nullable=False),
        sa.Column("consent_expires_at_us", sa.BigInteger, nullable=False),
        sa.Column("enrolled_at_us", sa.BigInteger, nullable=False),
        sa.Column("updated_at_us", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("program_id", "der_id", name="pk_enrollments"),
        sa.ForeignKeyConstraint(["program_id"], ["programs.program_id"], name="fk_enrollments_program_id_programs"),
        sa.ForeignKeyConstraint(["der_id"], ["devices.der_id"], name="fk_enrollments_der_id_devices"),
    )
    op.create_index("ix_enrollments_der_id", "enrollments", ["der_id"])
    op.create_index("ix_enrollments_utility_namespace", "enrollments", ["utility_namespace"])
    op.create_index("ix_enrollments_vendor_namespace", "enrollments", ["vendor_namespace"])
    op.create_table(
        "route_head",
        sa.Column("id", sa.SmallInteger),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_route_head"),
    )
    op.bulk_insert(sa.table("route_head", sa.column("id"), sa.column("seq")), [{"id": 1, "seq": 0}])
    op.create_table(
        "route_log",
        sa.Column("seq", sa.BigInteger, autoincrement=False),
        sa.Column("kind", sa.SmallInteger, nullable=False),
        sa.Column("der_id", sa.String(44), nullable=False),
        sa.Column("vendor_namespace", sa.String(253), nullable=False),
        sa.Column("utility_namespace", sa.String(253), nullable=False),
        sa.Column("program_id", sa.String(320), nullable=False),
        sa.Column("endpoint_id", sa.String(320), nullable=False),
        sa.Column("namespace", sa.String(253), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("at_us", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_route_log"),
    )
    op.create_index("ix_route_log_vendor_namespace", "route_log", ["vendor_namespace"])
    op.create_index("ix_route_log_utility_namespace", "route_log", ["utility_namespace"])
    op.create_table(
        "device_certificates",
        sa.Column("lfdi", sa.String(40)),
        sa.Column("der_id", sa.String(44), nullable=False),
        sa.Column("sfdi", sa.String(12), nullable=False),
        sa.Column("certificate_der", sa.LargeBinary, nullable=False),
        sa.Column("registered_at_us", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("lfdi", name="pk_device_certificates"),
        sa.ForeignKeyConstraint(["der_id"], ["devices.der_id"], name="fk_device_certificates_der_id_devices"),
        sa.UniqueConstraint("sfdi", name="uq_device_certificates_sfdi"),
    )
    op.create_index("ix_device_certificates_der_id", "device_certificates", ["der_id"])


def downgrade() -> None:
    for table in ("device_certificates", "route_log", "route_head", "enrollments", "program_endpoints", "programs"):
        op.drop_table(table)
