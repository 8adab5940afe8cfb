"""The nutrition analysis: lab results, known conditions and medications, logged meals.

Revision ID: 0006_care_nutrition
Revises: 0005_care_chat
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_care_nutrition"
down_revision = "0005_care_chat"
branch_labels = None
depends_on = None

AutoId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "care_lab_results",
        sa.Column("id", AutoId, primary_key=True, autoincrement=True),
        sa.Column("patient", sa.String(64), nullable=False),
        sa.Column("analyte", sa.String(32), nullable=False),
        sa.Column("value", sa.Float, nullable=False),
        sa.Column("unit", sa.String(16), nullable=False),
        sa.Column("entered_value", sa.Float, nullable=False),
        sa.Column("entered_unit", sa.String(16), nullable=False),
        sa.Column("taken_ns", sa.BigInteger, nullable=False),
        sa.Column("recorded_ns", sa.BigInteger, nullable=False),
        sa.Column("recorded_by", sa.String(64), nullable=False),
        sa.Column("source", sa.String(80), nullable=False),
    )
    op.create_index("ix_care_lab_results_patient", "care_lab_results", ["patient", "analyte", "taken_ns"])
    op.create_table(
        "care_conditions",
        sa.Column("patient", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("recorded_ns", sa.BigInteger, nullable=False),
        sa.Column("recorded_by", sa.String(64), nullable=False),
        sa.Column("source", sa.String(80), nullable=False),
    )
    op.create_table(
        "care_meals",
        sa.Column("id", AutoId, primary_key=True, autoincrement=True),
        sa.Column("patient", sa.String(64), nullable=False),
        sa.Column("ndb_no", sa.String(8), nullable=False),
        sa.Column("description", sa.String(200), nullable=False),
        sa.Column("grams", sa.Float, nullable=False),
        sa.Column("sodium_mg", sa.Float, nullable=False),
        sa.Column("potassium_mg", sa.Float, nullable=False),
        sa.Column("eaten_ns", sa.BigInteger, nullable=False),
        sa.Column("recorded_ns", sa.BigInteger, nullable=False),
        sa.Column("recorded_by", sa.String(64), nullable=False),
    )
    op.create_index("ix_care_meals_patient", "care_meals", ["patient", "eaten_ns"])


def downgrade() -> None:
    op.drop_index("ix_care_meals_patient", table_name="care_meals")
    op.drop_table("care_meals")
    op.drop_table("care_conditions")
    op.drop_index("ix_care_lab_results_patient", table_name="care_lab_results")
    op.drop_table("care_lab_results")
