"""The cloud database: one schema for SQLite (the embedded default) and PostgreSQL (production).

SQLAlchemy Core, synchronous: callers on the event loop run these calls in a worker
thread. Every table that holds telemetry is keyed so that applying the same Kafka
record twice changes nothing (idempotent by gateway, stream and sequence).

The schema is owned by the Alembic migrations in cloud/alembic (these tables: 0007_cloud_core;
``assignments``: 0001_registry). ``make_engine`` brings the database to head; a change to a table here
needs a new migration (tests/integration/test_migrations.py compares the migrated schema with this).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Engine,
    Float,
    Index,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url

metadata = MetaData()

# (gateway, stream) -> next sequence not yet in Kafka, plus the claim of the replica writing it now.
ingest_ledger = Table(
    "ingest_ledger", metadata,
    Column("gateway", String(64), primary_key=True),
    Column("stream_id", String(160), primary_key=True),
    Column("next_seq", BigInteger, nullable=False),
    Column("claim_owner", String(128), nullable=True),
    Column("claim_expires_ns", BigInteger, nullable=False, default=0),
)

enrollment_tokens = Table(
    "enrollment_tokens", metadata,
    Column("token_hash", String(64), primary_key=True),  # sha256 hex; the token itself is never stored
    Column("gateway_id", String(64), nullable=False, index=True),
    Column("created_ns", BigInteger, nullable=False),
    Column("expires_ns", BigInteger, nullable=False),
    Column("used_ns", BigInteger, nullable=True),
    Column("used_serial", String(40), nullable=True),
)

certificates = Table(
    "certificates", metadata,
    Column("serial", String(40), primary_key=True),  # hex
    Column("gateway_id", String(64), nullable=False, index=True),
    Column("not_before_ns", BigInteger, nullable=False),
    Column("not_after_ns", BigInteger, nullable=False),
    Column("issued_ns", BigInteger, nullable=False),
)

revoked_certificates = Table(
    "revoked_certificates", metadata,
    Column("serial", String(40), primary_key=True),
    Column("gateway_id", String(64), nullable=False),
    Column("revoked_ns", BigInteger, nullable=False),
    Column("reason", Text, nullable=False, default=""),
)

# A gateway may send for a patient from one device, or from any device ('*').
ANY_DEVICE = "*"
assignments = Table(
    "assignments", metadata,
    Column("gateway_id", String(64), primary_key=True),
    Column("patient", String(64), primary_key=True),
    Column("device_id", String(64), primary_key=True),
    Column("created_ns", BigInteger, nullable=False),
)

# One row per (patient, vital): each value keeps its own time, so an old SpO2 never looks current.
latest_vitals = Table(
    "latest_vitals", metadata,
    Column("patient", String(64), primary_key=True),
    Column("vital", String(32), primary_key=True),
    Column("value", Float, nullable=False),
    Column("device_time_ns", BigInteger, nullable=False),
    Column("receive_time_ns", BigInteger, nullable=False),
    Column("device_id", String(64), nullable=False),
    Column("gateway", String(64), nullable=False),
    Column("stream_id", String(160), nullable=False),
    Column("sequence", BigInteger, nullable=False),
)

alarm_events = Table(
    "alarm_events", metadata,
    Column("gateway", String(64), primary_key=True),
    Column("stream_id", String(160), primary_key=True),
    Column("sequence", BigInteger, primary_key=True),
    Column("alarm_id", String(128), nullable=False),
    Column("patient", String(64), nullable=False),
    Column("device_id", String(64), nullable=False),
    Column("condition", String(64), nullable=False),
    Column("priority", String(16), nullable=False),
    Column("state", String(16), nullable=False),
    Column("message", Text, nullable=False),
    Column("value", Float, nullable=False),
    Column("limit", Float, nullable=False),
    Column("onset_sample_device_time_ns", BigInteger, nullable=False),
    Column("trigger_sample_device_time_ns", BigInteger, nullable=False),
    Column("decision_time_ns", BigInteger, nullable=False),
    Column("publish_time_ns", BigInteger, nullable=False),
    Index("ix_alarm_events_patient", "patient", "decision_time_ns"),
)

alarms_current = Table(
    "alarms_current", metadata,
    Column("alarm_id", String(128), primary_key=True),
    Column("patient", String(64), nullable=False, index=True),
    Column("device_id", String(64), nullable=False),
    Column("gateway", String(64), nullable=False),
    Column("condition", String(64), nullable=False),
    Column("priority", String(16), nullable=False),
    Column("state", String(16), nullable=False),
    Column("value", Float, nullable=False),
    Column("limit", Float, nullable=False),
    Column("raised_time_ns", BigInteger, nullable=True),
    Column("cleared_time_ns", BigInteger, nullable=True),
    Column("updated_time_ns", BigInteger, nullable=False),
)

gaps = Table(
    "gaps", metadata,
    Column("gateway", String(64), primary_key=True),
    Column("stream_id", String(160), primary_key=True),
    Column("sequence", BigInteger, primary_key=True),
    Column("patient", String(64), nullable=False),
    Column("device_id", String(64), nullable=False),
    Column("stream_kind", String(16), nullable=False),
    Column("cause", String(32), nullable=False),
    Column("device_sequence_first", BigInteger, nullable=False),
    Column("device_sequence_last", BigInteger, nullable=False),
    Column("start_device_time_ns", BigInteger, nullable=False),
    Column("end_device_time_ns", BigInteger, nullable=False),
    Column("missing_samples", BigInteger, nullable=False),
    Column("sample_rate_hz", Float, nullable=False),
    Column("receive_time_ns", BigInteger, nullable=False),
    Index("ix_gaps_patient", "patient", "start_device_time_ns"),
)

# What a ward tile shows besides vitals: each wearable's link, battery and latest rhythm class, each part
# with its own time so a late event never overwrites a newer one.
device_status = Table(
    "device_status", metadata,
    Column("patient", String(64), primary_key=True),
    Column("device_id", String(64), primary_key=True),
    Column("gateway", String(64), nullable=False),
    Column("connected", Boolean, nullable=True),
    Column("link_time_ns", BigInteger, nullable=True),
    Column("battery_percent", Float, nullable=True),
    Column("health_time_ns", BigInteger, nullable=True),
    Column("rhythm", String(8), nullable=True),
    Column("rhythm_time_ns", BigInteger, nullable=True),
)

# Commands down to gateways (acknowledge, silence, unsilence from the API). A row is the audit record on the
# cloud's side: who gave it, from where, when; when it was delivered; the gateway's answer and when it applied it.
gateway_commands = Table(
    "gateway_commands", metadata,
    Column("command_id", String(64), primary_key=True),
    Column("gateway_id", String(64), nullable=False),
    Column("patient", String(64), nullable=False),
    Column("command", String(16), nullable=False),
    Column("payload", Text, nullable=False),
    Column("actor", String(64), nullable=False),
    Column("role", String(16), nullable=False),
    Column("origin", String(128), nullable=False),
    Column("issued_ns", BigInteger, nullable=False),
    Column("expires_ns", BigInteger, nullable=False),
    Column("delivered_ns", BigInteger, nullable=True),
    Column("deliveries", BigInteger, nullable=False, default=0),
    Column("outcome", String(16), nullable=False, default="pending"),  # pending, accepted, rejected, expired
    Column("error", Text, nullable=False, default=""),
    Column("applied_ns", BigInteger, nullable=True),
    Column("reported_ns", BigInteger, nullable=True),
    Index("ix_gateway_commands_pending", "gateway_id", "outcome"),
    Index("ix_gateway_commands_patient", "patient", "issued_ns"),
)

# What clinicians say about alarms in the cloud: comments, and whether an alarm was true (the label the
# training jobs learn from). One label per alarm and clinician; a later answer replaces the earlier one.
alarm_comments = Table(
    "alarm_comments", metadata,
    Column("comment_id", String(32), primary_key=True),
    Column("alarm_id", String(128), nullable=False),
    Column("patient", String(64), nullable=False),
    Column("username", String(64), nullable=False),
    Column("role", String(16), nullable=False),
    Column("client", String(80), nullable=False),
    Column("time_ns", BigInteger, nullable=False),
    Column("text", Text, nullable=False),
    Index("ix_alarm_comments_alarm", "alarm_id", "time_ns"),
)

alarm_labels = Table(
    "alarm_labels", metadata,
    Column("alarm_id", String(128), primary_key=True),
    Column("username", String(64), primary_key=True),
    Column("patient", String(64), nullable=False),
    Column("is_true", Boolean, nullable=False),
    Column("note", Text, nullable=False),
    Column("client", String(80), nullable=False),
    Column("time_ns", BigInteger, nullable=False),
    Index("ix_alarm_labels_patient", "patient", "time_ns"),
)

# Consumer positions live beside the rows they produced, committed in the same transaction.
consumer_offsets = Table(
    "consumer_offsets", metadata,
    Column("consumer", String(64), primary_key=True),
    Column("topic", String(128), primary_key=True),
    Column("partition", BigInteger, primary_key=True),
    Column("next_offset", BigInteger, nullable=False),
)


def make_engine(url: str) -> Engine:
    """An engine with the pragmas and pool each backend needs, over a database migrated to head
    (``alembic upgrade head`` through cardiogate.cloud.registry.migrate; idempotent, replicas take turns)."""
    from cardiogate.cloud.registry.migrate import upgrade  # imports this module: here, not at the top

    parsed = make_url(url)
    kwargs: dict[str, Any] = {"future": True}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
    else:
        kwargs.update(pool_pre_ping=True, pool_size=8, max_overflow=16)
    engine = create_engine(url, **kwargs)
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    upgrade(engine)
    return engine


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def insert_for(conn: Connection, table: Table) -> Any:
    """The dialect's INSERT, which offers ON CONFLICT on both SQLite and PostgreSQL."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    if conn.dialect.name == "sqlite":
        return sqlite.insert(table)
    raise RuntimeError(f"unsupported database dialect {conn.dialect.name!r}; use SQLite or PostgreSQL")
