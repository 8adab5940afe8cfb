"""Fleet registry, model registry and rollouts.

Revision ID: 0001_registry
Revises:
Create Date: 2025-11-28

Also creates the ingest's ``assignments`` table when the database does not have it yet,
with exactly the shape cardiogate.cloud.db declares, so both code paths share one table.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_registry"
down_revision = None
branch_labels = None
depends_on = None

AutoId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    if not sa.inspect(op.get_bind()).has_table("assignments"):
        op.create_table(
            "assignments",
            sa.Column("gateway_id", sa.String(64), primary_key=True),
            sa.Column("patient", sa.String(64), primary_key=True),
            sa.Column("device_id", sa.String(64), primary_key=True),
            sa.Column("created_ns", sa.BigInteger, nullable=False),
        )
    op.create_table(
        "sites",
        sa.Column("site_id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("created_ns", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "gateways",
        sa.Column("gateway_id", sa.String(64), primary_key=True),
        sa.Column("site_id", sa.String(64), sa.ForeignKey("sites.site_id"), nullable=True),
        sa.Column("created_ns", sa.BigInteger, nullable=False),
        sa.Column("last_seen_ns", sa.BigInteger, nullable=True),
        sa.Column("software_version", sa.String(64), nullable=False),
        sa.Column("model_versions", sa.Text, nullable=False),
        sa.Column("health", sa.String(16), nullable=False),
        sa.Column("outbox_records", sa.BigInteger, nullable=False),
        sa.Column("outbox_bytes", sa.BigInteger, nullable=False),
        sa.Column("oldest_unsent_age_ms", sa.BigInteger, nullable=False),
        sa.Column("connected_devices", sa.Integer, nullable=False),
    )
    op.create_index("ix_gateways_site_id", "gateways", ["site_id"])
    op.create_table(
        "gateway_tags",
        sa.Column("gateway_id", sa.String(64), sa.ForeignKey("gateways.gateway_id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("tag", sa.String(64), primary_key=True),
    )
    op.create_index("ix_gateway_tags_tag", "gateway_tags", ["tag"])
    op.create_table(
        "devices",
        sa.Column("device_id", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("site_id", sa.String(64), sa.ForeignKey("sites.site_id"), nullable=True),
        sa.Column("created_ns", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "patients",
        sa.Column("pseudonym", sa.String(64), primary_key=True),
        sa.Column("site_id", sa.String(64), sa.ForeignKey("sites.site_id"), nullable=True),
        sa.Column("created_ns", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "heartbeats",
        sa.Column("id", AutoId, primary_key=True, autoincrement=True),
        sa.Column("gateway_id", sa.String(64), nullable=False),
        sa.Column("time_ns", sa.BigInteger, nullable=False),
        sa.Column("received_ns", sa.BigInteger, nullable=False),
        sa.Column("software_version", sa.String(64), nullable=False),
        sa.Column("model_versions", sa.Text, nullable=False),
        sa.Column("health", sa.String(16), nullable=False),
        sa.Column("outbox_records", sa.BigInteger, nullable=False),
        sa.Column("outbox_bytes", sa.BigInteger, nullable=False),
        sa.Column("oldest_unsent_age_ms", sa.BigInteger, nullable=False),
        sa.Column("connected_devices", sa.Integer, nullable=False),
        sa.Column("devices", sa.Text, nullable=False),
    )
    op.create_index("ix_heartbeats_gateway", "heartbeats", ["gateway_id", "received_ns"])
    op.create_table(
        "model_versions",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("version", sa.String(40), primary_key=True),
        sa.Column("task", sa.String(64), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger, nullable=False),
        sa.Column("artifact_key", sa.String(300), nullable=False),
        sa.Column("manifest", sa.Text, nullable=False),
        sa.Column("key_id", sa.String(16), nullable=False),
        sa.Column("code_version", sa.String(80), nullable=False),
        sa.Column("training_data_hash", sa.String(128), nullable=False),
        sa.Column("metrics", sa.Text, nullable=False),
        sa.Column("model_card", sa.Text, nullable=False),
        sa.Column("parent_version", sa.String(40), nullable=True),
        sa.Column("created_ns", sa.BigInteger, nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
    )
    op.create_table(
        "model_aliases",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("alias", sa.String(32), primary_key=True),
        sa.Column("version", sa.String(40), nullable=False),
        sa.Column("updated_ns", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "model_alias_events",
        sa.Column("id", AutoId, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("alias", sa.String(32), nullable=False),
        sa.Column("version", sa.String(40), nullable=True),
        sa.Column("previous_version", sa.String(40), nullable=True),
        sa.Column("time_ns", sa.BigInteger, nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
    )
    op.create_index("ix_model_alias_events_name", "model_alias_events", ["name", "id"])
    op.create_table(
        "rollouts",
        sa.Column("rollout_id", sa.String(32), primary_key=True),
        sa.Column("model", sa.String(64), nullable=False),
        sa.Column("candidate_version", sa.String(40), nullable=False),
        sa.Column("baseline_version", sa.String(40), nullable=True),
        sa.Column("plan", sa.Text, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("stage", sa.Integer, nullable=False),
        sa.Column("stage_sizes", sa.Text, nullable=False),
        sa.Column("stage_started_ns", sa.BigInteger, nullable=False),
        sa.Column("decision", sa.Text, nullable=False),
        sa.Column("created_ns", sa.BigInteger, nullable=False),
        sa.Column("updated_ns", sa.BigInteger, nullable=False),
        sa.Column("finished_ns", sa.BigInteger, nullable=True),
        sa.Column("created_by", sa.String(64), nullable=False),
    )
    op.create_index("ix_rollouts_model_state", "rollouts", ["model", "state"])
    op.create_table(
        "rollout_members",
        sa.Column("rollout_id", sa.String(32), sa.ForeignKey("rollouts.rollout_id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("gateway_id", sa.String(64), primary_key=True),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("stage", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("active_version", sa.String(40), nullable=False),
        sa.Column("alarm_active", sa.Boolean, nullable=False),
        sa.Column("figures", sa.Text, nullable=False),
        sa.Column("refusal_code", sa.String(32), nullable=False),
        sa.Column("refusal_detail", sa.Text, nullable=False),
        sa.Column("last_report_ns", sa.BigInteger, nullable=True),
        sa.Column("activated_ns", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_rollout_members_gateway", "rollout_members", ["gateway_id"])
    op.create_table(
        "rollout_events",
        sa.Column("id", AutoId, primary_key=True, autoincrement=True),
        sa.Column("rollout_id", sa.String(32), nullable=False),
        sa.Column("time_ns", sa.BigInteger, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("gateway_id", sa.String(64), nullable=True),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
    )
    op.create_index("ix_rollout_events_rollout", "rollout_events", ["rollout_id", "id"])


def downgrade() -> None:
    for index, table in (("ix_rollout_events_rollout", "rollout_events"),
                         ("ix_rollout_members_gateway", "rollout_members"), ("ix_rollouts_model_state", "rollouts"),
                         ("ix_model_alias_events_name", "model_alias_events"),
                         ("ix_heartbeats_gateway", "heartbeats"), ("ix_gateway_tags_tag", "gateway_tags"),
                         ("ix_gateways_site_id", "gateways")):
        op.drop_index(index, table_name=table)
    for table in ("rollout_events", "rollout_members", "rollouts", "model_alias_events", "model_aliases",
                  "model_versions", "heartbeats", "patients", "devices", "gateway_tags", "gateways", "sites"):
        op.drop_table(table)
    # ``assignments`` stays: the ingest's authorization owns it as well.
