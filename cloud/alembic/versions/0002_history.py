"""Feature windows and risk reports from the stream processor (cardiogate.cloud.history).

Revision ID: 0002_history
Revises: 0001_registry
Create Date: 2026-01-12
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_history"
down_revision = "0001_registry"
branch_labels = None
depends_on = None


def _key() -> list[sa.Column[object]]:
    return [sa.Column("patient", sa.String(64), primary_key=True),
            sa.Column("width_s", sa.Integer, primary_key=True),
            sa.Column("start_device_time_ns", sa.BigInteger, primary_key=True),
            sa.Column("end_device_time_ns", sa.BigInteger, nullable=False),
            sa.Column("revision", sa.Integer, nullable=False),
            sa.Column("computed_time_ns", sa.BigInteger, nullable=False)]


def upgrade() -> None:
    op.create_table(
        "feature_windows", *_key(),
        *(sa.Column(name, sa.Float, nullable=True) for name in (
            "hr_mean", "hr_min", "hr_max", "sdnn_ms", "rmssd_ms", "spo2_min", "spo2_mean", "systolic_mean",
            "diastolic_mean", "af_burden", "signal_quality_mean", "completeness")),
        sa.Column("record_count", sa.Integer, nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
    )
    op.create_index("ix_feature_windows_time", "feature_windows", ["width_s", "start_device_time_ns"])
    op.create_table(
        "risk_reports", *_key(),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("confidence", sa.Float, nullable=False),
        sa.Column("news2", sa.Integer, nullable=False),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("model_name", sa.String(64), nullable=False),
        sa.Column("model_version", sa.String(40), nullable=False),
        sa.Column("baseline", sa.Integer, nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
    )
    op.create_index("ix_risk_reports_time", "risk_reports", ["width_s", "start_device_time_ns"])


def downgrade() -> None:
    op.drop_index("ix_risk_reports_time", "risk_reports")
    op.drop_table("risk_reports")
    op.drop_index("ix_feature_windows_time", "feature_windows")
    op.drop_table("feature_windows")
