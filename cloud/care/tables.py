"""The care team's chat, on the registry's Alembic-managed metadata (migration 0005_care_chat).

A session belongs to one patient and may be tied to one alarm. Messages are plain text as written
(never HTML); an automated message says so and carries the data it cited as JSON. ``chat_reads``
holds each user's read mark per session, from which unread counts come.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Index, String, Table, Text

from cardiogate.cloud.registry.schema import AutoId, registry_metadata

chat_sessions = Table(
    "chat_sessions", registry_metadata,
    Column("session_id", String(40), primary_key=True),
    Column("patient", String(64), nullable=False),
    Column("alarm_id", String(80), nullable=True),
    Column("title", String(200), nullable=False, default=""),
    Column("started_by", String(64), nullable=False),
    Column("started_ns", BigInteger, nullable=False),
    Index("ix_chat_sessions_patient", "patient", "started_ns"),
)

chat_messages = Table(
    "chat_messages", registry_metadata,
    Column("id", AutoId, primary_key=True, autoincrement=True),
    Column("session_id", String(40), nullable=False),
    Column("author", String(64), nullable=False),
    Column("role", String(16), nullable=False),
    Column("automated", Boolean, nullable=False, default=False),
    Column("text", Text, nullable=False),
    Column("sent_ns", BigInteger, nullable=False),
    Column("alarm_id", String(80), nullable=True),
    Column("strip_from_ns", BigInteger, nullable=True),
    Column("strip_to_ns", BigInteger, nullable=True),
    Column("citations", Text, nullable=False, default="[]"),
    Index("ix_chat_messages_session", "session_id", "id"),
)

chat_reads = Table(
    "chat_reads", registry_metadata,
    Column("session_id", String(40), primary_key=True),
    Column("username", String(64), primary_key=True),
    Column("last_read_id", BigInteger, nullable=False),
    Column("read_ns", BigInteger, nullable=False),
)
