"""The cloud's core tables (cardiogate.cloud.db): ingest ledger, enrollment and certificates, latest vitals,
alarm history and current alarms, gaps, device status, gateway commands (the command audit), alarm comments
and labels, consumer offsets.

Revision ID: 0007_cloud_core
Revises: 0006_care_nutrition
Create Date: 2026-12-04

Until this revision these tables were made only by ``metadata.create_all`` in cardiogate.cloud.db, so a
database brought up with ``alembic upgrade head`` lacked them. The shapes here are exactly those
cardiogate.cloud.db declares (``assignments`` stays with 0001_registry, which creates it when missing).

Databases that already have some of these tables, made by ``create_all`` before this revision, are
upgraded in place: each table, and each of its indexes, is created only when the database does not have it
yet (looked up with the inspector), and rows already there are kept. No release ever changed the columns of
a table after creating it, so an existing table already has the shape below. An offline script
(``alembic upgrade 0006_care_nutrition:0007_cloud_core --sql``) cannot look, and creates them all.

The downgrade drops all of these tables, including ones that ``create_all`` made before this revision,
and their rows with them.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_cloud_core"
down_revision = "0006_care_nutrition"
branch_labels = None
depends_on = None


def _tables() -> list[tuple[str, list[sa.Column[object]], list[tuple[str, list[str]]]]]:
    """(table, columns, [(index, columns)]) in creation order; fresh Column objects on every call."""
    return [
        ("ingest_ledger", [
            sa.Column("gateway", sa.String(64), primary_key=True),
            sa.Column("stream_id", sa.String(160), primary_key=True),
            sa.Column("next_seq", sa.BigInteger, nullable=False),
            sa.Column("claim_owner", sa.String(128), nullable=True),
            sa.Column("claim_expires_ns", sa.BigInteger, nullable=False),
        ], []),
        ("enrollment_tokens", [
            sa.Column("token_hash", sa.String(64), primary_key=True),
            sa.Column("gateway_id", sa.String(64), nullable=False),
            sa.Column("created_ns", sa.BigInteger, nullable=False),
            sa.Column("expires_ns", sa.BigInteger, nullable=False),
            sa.Column("used_ns", sa.BigInteger, nullable=True),
            sa.Column("used_serial", sa.String(40), nullable=True),
        ], [("ix_enrollment_tokens_gateway_id", ["gateway_id"])]),
        ("certificates", [
            sa.Column("serial", sa.String(40), primary_key=True),
            sa.Column("gateway_id", sa.String(64), nullable=False),
            sa.Column("not_before_ns", sa.BigInteger, nullable=False),
            sa.Column("not_after_ns", sa.BigInteger, nullable=False),
            sa.Column("issued_ns", sa.BigInteger, nullable=False),
        ], [("ix_certificates_gateway_id", ["gateway_id"])]),
        ("revoked_certificates", [
            sa.Column("serial", sa.String(40), primary_key=True),
            sa.Column("gateway_id", sa.String(64), nullable=False),
            sa.Column("revoked_ns", sa.BigInteger, nullable=False),
            sa.Column("reason", sa.Text, nullable=False),
        ], []),
        ("latest_vitals", [
            sa.Column("patient", sa.String(64), primary_key=True),
            sa.Column("vital", sa.String(32), primary_key=True),
            sa.Column("value", sa.Float, nullable=False),
            sa.Column("device_time_ns", sa.BigInteger, nullable=False),
            sa.Column("receive_time_ns", sa.BigInteger, nullable=False),
            sa.Column("device_id", sa.String(64), nullable=False),
            sa.Column("gateway", sa.String(64), nullable=False),
            sa.Column("stream_id", sa.String(160), nullable=False),
            sa.Column("sequence", sa.BigInteger, nullable=False),
        ], []),
        ("alarm_events", [
            sa.Column("gateway", sa.String(64), primary_key=True),
            sa.Column("stream_id", sa.String(160), primary_key=True),
            sa.Column("sequence", sa.BigInteger, primary_key=True),
            sa.Column("alarm_id", sa.String(128), nullable=False),
            sa.Column("patient", sa.String(64), nullable=False),
            sa.Column("device_id", sa.String(64), nullable=False),
            sa.Column("condition", sa.String(64), nullable=False),
            sa.Column("priority", sa.String(16), nullable=False),
            sa.Column("state", sa.String(16), nullable=False),
            sa.Column("message", sa.Text, nullable=False),
            sa.Column("value", sa.Float, nullable=False),
            sa.Column("limit", sa.Float, nullable=False),
            sa.Column("onset_sample_device_time_ns", sa.BigInteger, nullable=False),
            sa.Column("trigger_sample_device_time_ns", sa.BigInteger, nullable=False),
            sa.Column("decision_time_ns", sa.BigInteger, nullable=False),
            sa.Column("publish_time_ns", sa.BigInteger, nullable=False),
        ], [("ix_alarm_events_patient", ["patient", "decision_time_ns"])]),
        ("alarms_current", [
            sa.Column("alarm_id", sa.String(128), primary_key=True),
            sa.Column("patient", sa.String(64), nullable=False),
            sa.Column("device_id", sa.String(64), nullable=False),
            sa.Column("gateway", sa.String(64), nullable=False),
            sa.Column("condition", sa.String(64), nullable=False),
            sa.Column("priority", sa.String(16), nullable=False),
            sa.Column("state", sa.String(16), nullable=False),
            sa.Column("value", sa.Float, nullable=False),
            sa.Column("limit", sa.Float, nullable=False),
            sa.Column("raised_time_ns", sa.BigInteger, nullable=True),
            sa.Column("cleared_time_ns", sa.BigInteger, nullable=True),
            sa.Column("updated_time_ns", sa.BigInteger, nullable=False),
        ], [("ix_alarms_current_patient", ["patient"])]),
        ("gaps", [
            sa.Column("gateway", sa.String(64), primary_key=True),
            sa.Column("stream_id", sa.String(160), primary_key=True),
            sa.Column("sequence", sa.BigInteger, primary_key=True),
            sa.Column("patient", sa.String(64), nullable=False),
            sa.Column("device_id", sa.String(64), nullable=False),
            sa.Column("stream_kind", sa.String(16), nullable=False),
            sa.Column("cause", sa.String(32), nullable=False),
            sa.Column("device_sequence_first", sa.BigInteger, nullable=False),
            sa.Column("device_sequence_last", sa.BigInteger, nullable=False),
            sa.Column("start_device_time_ns", sa.BigInteger, nullable=False),
            sa.Column("end_device_time_ns", sa.BigInteger, nullable=False),
            sa.Column("missing_samples", sa.BigInteger, nullable=False),
            sa.Column("sample_rate_hz", sa.Float, nullable=False),
            sa.Column("receive_time_ns", sa.BigInteger, nullable=False),
        ], [("ix_gaps_patient", ["patient", "start_device_time_ns"])]),
        ("device_status", [
            sa.Column("patient", sa.String(64), primary_key=True),
            sa.Column("device_id", sa.String(64), primary_key=True),
            sa.Column("gateway", sa.String(64), nullable=False),
            sa.Column("connected", sa.Boolean, nullable=True),
            sa.Column("link_time_ns", sa.BigInteger, nullable=True),
            sa.Column("battery_percent", sa.Float, nullable=True),
            sa.Column("health_time_ns", sa.BigInteger, nullable=True),
            sa.Column("rhythm", sa.String(8), nullable=True),
            sa.Column("rhythm_time_ns", sa.BigInteger, nullable=True),
        ], []),
        ("gateway_commands", [
            sa.Column("command_id", sa.String(64), primary_key=True),
            sa.Column("gateway_id", sa.String(64), nullable=False),
            sa.Column("patient", sa.String(64), nullable=False),
            sa.Column("command", sa.String(16), nullable=False),
            sa.Column("payload", sa.Text, nullable=False),
            sa.Column("actor", sa.String(64), nullable=False),
            sa.Column("role", sa.String(16), nullable=False),
            sa.Column("origin", sa.String(128), nullable=False),
            sa.Column("issued_ns", sa.BigInteger, nullable=False),
            sa.Column("expires_ns", sa.BigInteger, nullable=False),
            sa.Column("delivered_ns", sa.BigInteger, nullable=True),
            sa.Column("deliveries", sa.BigInteger, nullable=False),
            sa.Column("outcome", sa.String(16), nullable=False),
            sa.Column("error", sa.Text, nullable=False),
            sa.Column("applied_ns", sa.BigInteger, nullable=True),
            sa.Column("reported_ns", sa.BigInteger, nullable=True),
        ], [("ix_gateway_commands_pending", ["gateway_id", "outcome"]),
            ("ix_gateway_commands_patient", ["patient", "issued_ns"])]),
        ("alarm_comments", [
            sa.Column("comment_id", sa.String(32), primary_key=True),
            sa.Column("alarm_id", sa.String(128), nullable=False),
            sa.Column("patient", sa.String(64), nullable=False),
            sa.Column("username", sa.String(64), nullable=False),
            sa.Column("role", sa.String(16), nullable=False),
            sa.Column("client", sa.String(80), nullable=False),
            sa.Column("time_ns", sa.BigInteger, nullable=False),
            sa.Column("text", sa.Text, nullable=False),
        ], [("ix_alarm_comments_alarm", ["alarm_id", "time_ns"])]),
        ("alarm_labels", [
            sa.Column("alarm_id", sa.String(128), primary_key=True),
            sa.Column("username", sa.String(64), primary_key=True),
            sa.Column("patient", sa.String(64), nullable=False),
            sa.Column("is_true", sa.Boolean, nullable=False),
            sa.Column("note", sa.Text, nullable=False),
            sa.Column("client", sa.String(80), nullable=False),
            sa.Column("time_ns", sa.BigInteger, nullable=False),
        ], [("ix_alarm_labels_patient", ["patient", "time_ns"])]),
        ("consumer_offsets", [
            sa.Column("consumer", sa.String(64), primary_key=True),
            sa.Column("topic", sa.String(128), primary_key=True),
            sa.Column("partition", sa.BigInteger, primary_key=True),
            sa.Column("next_offset", sa.BigInteger, nullable=False),
        ], []),
    ]


def upgrade() -> None:
    offline = op.get_context().as_sql  # ``alembic upgrade --sql`` writes a script for a database without them
    inspector = None if offline else sa.inspect(op.get_bind())
    existing = set(inspector.get_table_names()) if inspector is not None else set()
    for table, columns, indexes in _tables():
        present: set[str | None] = set()
        if inspector is not None and table in existing:
            present = {ix["name"] for ix in inspector.get_indexes(table)}
        else:
            op.create_table(table, *columns)
        for name, on in indexes:
            if name not in present:
                op.create_index(name, table, on)


def downgrade() -> None:
    for table, _columns, indexes in reversed(_tables()):
        for name, _on in indexes:
            op.drop_index(name, table_name=table)
        op.drop_table(table)
