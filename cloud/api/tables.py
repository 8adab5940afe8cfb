"""The API's own tables, on the registry's Alembic-managed metadata (migration 0003_api).

``api_users`` are the embedded issuer's local accounts: the password is kept only as an
argon2id hash. ``api_audit`` holds one row per read of patient data, so "who looked at this
patient, when, from where" is a query, not a log search.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Index, String, Table, Text

from cardiogate.cloud.registry.schema import AutoId, registry_metadata

api_users = Table(
    "api_users", registry_metadata,
    Column("username", String(64), primary_key=True),
    Column("password_hash", String(200), nullable=False),
    Column("role", String(16), nullable=False),
    Column("sites", Text, nullable=False, default="[]"),  # JSON list of site ids
    Column("disabled", Boolean, nullable=False, default=False),
    Column("created_ns", BigInteger, nullable=False),
)

api_audit = Table(
    "api_audit", registry_metadata,
    Column("id", AutoId, primary_key=True, autoincrement=True),
    Column("time_ns", BigInteger, nullable=False),
    Column("username", String(64), nullable=False),
    Column("role", String(16), nullable=False),
    Column("action", String(64), nullable=False),
    Column("patient", String(64), nullable=False),
    Column("client", String(80), nullable=False, default=""),
    Index("ix_api_audit_patient", "patient", "time_ns"),
    Index("ix_api_audit_user", "username", "time_ns"),
)
