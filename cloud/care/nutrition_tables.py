"""The nutrition analysis's tables, on the registry's Alembic-managed metadata (migration 0006_care_nutrition).

``care_lab_results`` keeps each lab value in its analyte's canonical unit beside the value and unit
as entered, so a conversion can always be checked. ``care_conditions`` holds the patient's current
conditions and medications (kind ``condition`` or ``medication``); ``care_meals`` one row per logged
food, with its sodium and potassium worked out when it was logged.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Float, Index, String, Table

from cardiogate.cloud.registry.schema import AutoId, registry_metadata

care_lab_results = Table(
    "care_lab_results", registry_metadata,
    Column("id", AutoId, primary_key=True, autoincrement=True),
    Column("patient", String(64), nullable=False),
    Column("analyte", String(32), nullable=False),
    Column("value", Float, nullable=False),  # canonical unit of the analyte
    Column("unit", String(16), nullable=False),
    Column("entered_value", Float, nullable=False),
    Column("entered_unit", String(16), nullable=False),
    Column("taken_ns", BigInteger, nullable=False),
    Column("recorded_ns", BigInteger, nullable=False),
    Column("recorded_by", String(64), nullable=False),
    Column("source", String(80), nullable=False),
    Index("ix_care_lab_results_patient", "patient", "analyte", "taken_ns"),
)

care_conditions = Table(
    "care_conditions", registry_metadata,
    Column("patient", String(64), primary_key=True),
    Column("kind", String(16), primary_key=True),  # condition | medication
    Column("name", String(100), primary_key=True),
    Column("recorded_ns", BigInteger, nullable=False),
    Column("recorded_by", String(64), nullable=False),
    Column("source", String(80), nullable=False),
)

care_meals = Table(
    "care_meals", registry_metadata,
    Column("id", AutoId, primary_key=True, autoincrement=True),
    Column("patient", String(64), nullable=False),
    Column("ndb_no", String(8), nullable=False),
    Column("description", String(200), nullable=False),
    Column("grams", Float, nullable=False),
    Column("sodium_mg", Float, nullable=False),
    Column("potassium_mg", Float, nullable=False),
    Column("eaten_ns", BigInteger, nullable=False),
    Column("recorded_ns", BigInteger, nullable=False),
    Column("recorded_by", String(64), nullable=False),
    Index("ix_care_meals_patient", "patient", "eaten_ns"),
)
