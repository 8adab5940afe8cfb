"""Raw ECG blocks kept for ECG strips, written by the stream processor (cardiogate.cloud.history).

Revision ID: 0004_ecg_blocks
Revises: 0003_api
Create Date: 2026-01-20

Keyed by (gateway, stream_id, sequence) so a replayed record adds no row; the index serves a
patient's time range.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_ecg_blocks"
down_revision = "0003_api"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ecg_blocks",
        sa.Column("gateway", sa.String(64), primary_key=True),
        sa.Column("stream_id", sa.String(160), primary_key=True),
        sa.Column("sequence", sa.BigInteger, primary_key=True),
        sa.Column("patient", sa.String(64), nullable=False),
        sa.Column("device_id", sa.String(64), nullable=False),
        sa.Column("first_sample_device_time_ns", sa.BigInteger, nullable=False),
        sa.Column("sample_rate_hz", sa.Float, nullable=False),
        sa.Column("scale", sa.Float, nullable=False),
        sa.Column("unit", sa.String(16), nullable=False),
        sa.Column("encoding", sa.String(16), nullable=False),
        sa.Column("sample_count", sa.Integer, nullable=False),
        sa.Column("samples", sa.LargeBinary, nullable=False),
    )
    op.create_index("ix_ecg_blocks_patient_time", "ecg_blocks", ["patient", "first_sample_device_time_ns"])


def downgrade() -> None:
    op.drop_index("ix_ecg_blocks_patient_time", table_name="ecg_blocks")
    op.drop_table("ecg_blocks")
