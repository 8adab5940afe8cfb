"""Tables of the fleet registry, the model registry and the rollout controller.

Owned by Alembic (cloud/alembic): ``migrate.upgrade`` brings any database to head at
start. The ingest's ``assignments`` table (cardiogate.cloud.db) is the registry's patient/device ->
gateway assignment as well, so the authorization the ingest enforces and what the fleet
registry shows can never disagree; the first migration creates it when it is missing.
JSON-valued columns are TEXT so SQLite and PostgreSQL store them the same way.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

registry_metadata = MetaData()

# SQLite only auto-increments a column declared exactly INTEGER PRIMARY KEY.
AutoId = BigInteger().with_variant(Integer(), "sqlite")

sites = Table(
    "sites", registry_metadata,
    Column("site_id", String(64), primary_key=True),
    Column("name", String(200), nullable=False, default=""),
    Column("created_ns", BigInteger, nullable=False),
)

gateways = Table(
    "gateways", registry_metadata,
    Column("gateway_id", String(64), primary_key=True),
    Column("site_id", String(64), ForeignKey("sites.site_id"), nullable=True, index=True),
    Column("created_ns", BigInteger, nullable=False),
    Column("last_seen_ns", BigInteger, nullable=True),
    Column("software_version", String(64), nullable=False, default=""),
    Column("model_versions", Text, nullable=False, default="{}"),
    Column("health", String(16), nullable=False, default=""),
    Column("outbox_records", BigInteger, nullable=False, default=0),
    Column("outbox_bytes", BigInteger, nullable=False, default=0),
    Column("oldest_unsent_age_ms", BigInteger, nullable=False, default=0),
    Column("connected_devices", Integer, nullable=False, default=0),
)

gateway_tags = Table(
    "gateway_tags", registry_metadata,
    Column("gateway_id", String(64), ForeignKey("gateways.gateway_id", ondelete="CASCADE"), primary_key=True),
    Column("tag", String(64), primary_key=True),
    Index("ix_gateway_tags_tag", "tag"),
)

devices = Table(
    "devices", registry_metadata,
    Column("device_id", String(64), primary_key=True),
    Column("kind", String(32), nullable=False, default=""),
    Column("name", String(200), nullable=False, default=""),
    Column("site_id", String(64), ForeignKey("sites.site_id"), nullable=True),
    Column("created_ns", BigInteger, nullable=False),
)

patients = Table(
    "patients", registry_metadata,
    Column("pseudonym", String(64), primary_key=True),
    Column("site_id", String(64), ForeignKey("sites.site_id"), nullable=True),
    Column("created_ns", BigInteger, nullable=False),
)

heartbeats = Table(
    "heartbeats", registry_metadata,
    Column("id", AutoId, primary_key=True, autoincrement=True),
    Column("gateway_id", String(64), nullable=False),
    Column("time_ns", BigInteger, nullable=False),
    Column("received_ns", BigInteger, nullable=False),
    Column("software_version", String(64), nullable=False),
    Column("model_versions", Text, nullable=False),
    Column("health", String(16), nullable=False),
    Column("outbox_records", BigInteger, nullable=False),
    Column("outbox_bytes", BigInteger, nullable=False),
    Column("oldest_unsent_age_ms", BigInteger, nullable=False),
    Column("connected_devices", Integer, nullable=False),
    Column("devices", Text, nullable=False),
    Index("ix_heartbeats_gateway", "gateway_id", "received_ns"),
)

model_versions = Table(
    "model_versions", registry_metadata,
    Column("name", String(64), primary_key=True),
    Column("version", String(40), primary_key=True),
    Column("task", String(64), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("size_bytes", BigInteger, nullable=False),
    Column("artifact_key", String(300), nullable=False),
    Column("manifest", Text, nullable=False),  # the signed envelope, exactly as gateways receive it
    Column("key_id", String(16), nullable=False),
    Column("code_version", String(80), nullable=False, default=""),
    Column("training_data_hash", String(128), nullable=False, default=""),
    Column("metrics", Text, nullable=False, default="{}"),
    Column("model_card", Text, nullable=False, default=""),
    Column("parent_version", String(40), nullable=True),
    Column("created_ns", BigInteger, nullable=False),
    Column("created_by", String(64), nullable=False, default=""),
)

model_aliases = Table(
    "model_aliases", registry_metadata,
    Column("name", String(64), primary_key=True),
    Column("alias", String(32), primary_key=True),
    Column("version", String(40), nullable=False),
    Column("updated_ns", BigInteger, nullable=False),
)

model_alias_events = Table(
    "model_alias_events", registry_metadata,
    Column("id", AutoId, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False),
    Column("alias", String(32), nullable=False),
    Column("version", String(40), nullable=True),
    Column("previous_version", String(40), nullable=True),
    Column("time_ns", BigInteger, nullable=False),
    Column("actor", String(64), nullable=False),
    Column("reason", Text, nullable=False),
    Index("ix_model_alias_events_name", "name", "id"),
)

rollouts = Table(
    "rollouts", registry_metadata,
    Column("rollout_id", String(32), primary_key=True),
    Column("model", String(64), nullable=False),
    Column("candidate_version", String(40), nullable=False),
    Column("baseline_version", String(40), nullable=True),
    Column("plan", Text, nullable=False),
    Column("state", String(16), nullable=False),  # running, paused, completed, aborted
    Column("stage", Integer, nullable=False),
    Column("stage_sizes", Text, nullable=False),
    Column("stage_started_ns", BigInteger, nullable=False),
    Column("decision", Text, nullable=False, default=""),
    Column("created_ns", BigInteger, nullable=False),
    Column("updated_ns", BigInteger, nullable=False),
    Column("finished_ns", BigInteger, nullable=True),
    Column("created_by", String(64), nullable=False, default=""),
    Index("ix_rollouts_model_state", "model", "state"),
)

rollout_members = Table(
    "rollout_members", registry_metadata,
    Column("rollout_id", String(32), ForeignKey("rollouts.rollout_id", ondelete="CASCADE"), primary_key=True),
    Column("gateway_id", String(64), primary_key=True),
    Column("position", Integer, nullable=False),
    Column("stage", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("active_version", String(40), nullable=False, default=""),
    Column("alarm_active", Boolean, nullable=False, default=False),
    Column("figures", Text, nullable=False, default="{}"),
    Column("refusal_code", String(32), nullable=False, default=""),
    Column("refusal_detail", Text, nullable=False, default=""),
    Column("last_report_ns", BigInteger, nullable=True),
    Column("activated_ns", BigInteger, nullable=True),
    Index("ix_rollout_members_gateway", "gateway_id"),
)

rollout_events = Table(
    "rollout_events", registry_metadata,
    Column("id", AutoId, primary_key=True, autoincrement=True),
    Column("rollout_id", String(32), nullable=False),
    Column("time_ns", BigInteger, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("gateway_id", String(64), nullable=True),
    Column("actor", String(64), nullable=False, default=""),
    Column("detail", Text, nullable=False, default="{}"),
    Index("ix_rollout_events_rollout", "rollout_id", "id"),
)
