"""The care team's chat: sessions per patient (optionally tied to an alarm), messages, read marks.

Revision ID: 0005_care_chat
Revises: 0004_ecg_blocks
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_care_chat"
down_revision = "0004_ecg_blocks"
branch_labels = None
depends_on = None

AutoId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "chat_sessions",
        sa.Column("session_id", sa.String(40), primary_key=True),
        sa.Column("patient", sa.String(64), nullable=False),
        sa.Column("alarm_id", sa.String(80), nullable=True),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("started_by", sa.String(64), nullable=False),
        sa.Column("started_ns", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_chat_sessions_patient", "chat_sessions", ["patient", "started_ns"])
    op.create_table(
        "chat_messages",
        sa.Column("id", AutoId, primary_key=True, autoincrement=True),
        sa.Column("session_id", sa.String(40), nullable=False),
        sa.Column("author", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("automated", sa.Boolean, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("sent_ns", sa.BigInteger, nullable=False),
        sa.Column("alarm_id", sa.String(80), nullable=True),
        sa.Column("strip_from_ns", sa.BigInteger, nullable=True),
        sa.Column("strip_to_ns", sa.BigInteger, nullable=True),
        sa.Column("citations", sa.Text, nullable=False),
    )
    op.create_index("ix_chat_messages_session", "chat_messages", ["session_id", "id"])
    op.create_table(
        "chat_reads",
        sa.Column("session_id", sa.String(40), primary_key=True),
        sa.Column("username", sa.String(64), primary_key=True),
        sa.Column("last_read_id", sa.BigInteger, nullable=False),
        sa.Column("read_ns", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("chat_reads")
    op.drop_index("ix_chat_messages_session", table_name="chat_messages")
    op.drop_table("chat_messages")
    op.drop_index("ix_chat_sessions_patient", table_name="chat_sessions")
    op.drop_table("chat_sessions")
