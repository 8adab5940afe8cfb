"""The API service: local users of the embedded token issuer and the patient-data audit trail.

Revision ID: 0003_api
Revises: 0002_history
Create Date: 2026-01-12
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_api"
down_revision = "0002_history"
branch_labels = None
depends_on = None

AutoId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "api_users",
        sa.Column("username", sa.String(64), primary_key=True),
        sa.Column("password_hash", sa.String(200), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("sites", sa.Text, nullable=False),
        sa.Column("disabled", sa.Boolean, nullable=False),
        sa.Column("created_ns", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "api_audit",
        sa.Column("id", AutoId, primary_key=True, autoincrement=True),
        sa.Column("time_ns", sa.BigInteger, nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("patient", sa.String(64), nullable=False),
        sa.Column("client", sa.String(80), nullable=False),
    )
    op.create_index("ix_api_audit_patient", "api_audit", ["patient", "time_ns"])
    op.create_index("ix_api_audit_user", "api_audit", ["username", "time_ns"])


def downgrade() -> None:
    op.drop_index("ix_api_audit_user", table_name="api_audit")
    op.drop_index("ix_api_audit_patient", table_name="api_audit")
    op.drop_table("api_audit")
    op.drop_table("api_users")
