"""The care team's chat store: sessions per patient, messages, read marks (SQLAlchemy Core, synchronous;
the API calls it from a worker thread).

Authorization is the caller's job (the API checks role, site and audits before calling); this module
trusts its arguments except for what it can check itself: a message goes only into an existing
session, and an attached alarm must belong to the session's patient.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, and_, func, select

from cardiogate.cloud.care.assistant import Citation
from cardiogate.cloud.care.tables import chat_messages, chat_reads, chat_sessions
from cardiogate.cloud.db import alarms_current, insert_for

HISTORY_LIMIT = 500


@dataclass(frozen=True, slots=True)
class SessionRow:
    session_id: str
    patient: str
    alarm_id: str | None
    title: str
    started_by: str
    started_ns: int
    message_count: int = 0
    unread: int = 0
    last_message_ns: int | None = None


@dataclass(frozen=True, slots=True)
class MessageRow:
    message_id: int
    session_id: str
    author: str
    role: str
    automated: bool
    text: str
    sent_ns: int
    alarm_id: str | None
    strip_from_ns: int | None
    strip_to_ns: int | None
    citations: tuple[Citation, ...]


class ChatError(ValueError):
    """A request the store refuses: ``code`` is NOT_FOUND or BAD_USER_INPUT."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _message(r: Any) -> MessageRow:
    cites = tuple(Citation(c["kind"], c["label"], c["value"], c.get("at_ns")) for c in json.loads(r.citations or "[]"))
    return MessageRow(int(r.id), r.session_id, r.author, r.role, bool(r.automated), r.text, int(r.sent_ns),
                      r.alarm_id, r.strip_from_ns, r.strip_to_ns, cites)


class ChatStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def alarm_belongs(self, patient: str, alarm_id: str) -> bool:
        with self.engine.connect() as conn:
            return conn.execute(select(alarms_current.c.alarm_id).where(
                alarms_current.c.alarm_id == alarm_id, alarms_current.c.patient == patient)).first() is not None

    def start(self, patient: str, by: str, now_ns: int, alarm_id: str | None = None, title: str = "") -> SessionRow:
        if alarm_id is not None and not self.alarm_belongs(patient, alarm_id):
            raise ChatError("BAD_USER_INPUT", f"no alarm {alarm_id!r} for this patient")
        row = SessionRow(uuid.uuid4().hex, patient, alarm_id, title, by, now_ns)
        with self.engine.begin() as conn:
            conn.execute(chat_sessions.insert().values(
                session_id=row.session_id, patient=patient, alarm_id=alarm_id, title=title, started_by=by,
                started_ns=now_ns))
        return row

    def session(self, session_id: str) -> SessionRow | None:
        with self.engine.connect() as conn:
            r = conn.execute(select(chat_sessions).where(chat_sessions.c.session_id == session_id)).first()
        if r is None:
            return None
        return SessionRow(r.session_id, r.patient, r.alarm_id, r.title, r.started_by, int(r.started_ns))

    def sessions(self, patient: str, username: str) -> list[SessionRow]:
        """The patient's sessions, latest activity first, with the caller's unread count."""
        m, rd = chat_messages, chat_reads
        counts = (select(m.c.session_id, func.count().label("n"), func.max(m.c.sent_ns).label("last"))
                  .group_by(m.c.session_id).subquery())
        unread = (select(m.c.session_id, func.count().label("u"))
                  .select_from(m.outerjoin(rd, and_(rd.c.session_id == m.c.session_id, rd.c.username == username)))
                  .where(m.c.author != username, m.c.id > func.coalesce(rd.c.last_read_id, 0))
                  .group_by(m.c.session_id).subquery())
        s = chat_sessions
        query = (select(s, counts.c.n, counts.c.last, unread.c.u)
                 .outerjoin(counts, counts.c.session_id == s.c.session_id)
                 .outerjoin(unread, unread.c.session_id == s.c.session_id)
                 .where(s.c.patient == patient))
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        out = [SessionRow(r.session_id, r.patient, r.alarm_id, r.title, r.started_by, int(r.started_ns),
                          int(r.n or 0), int(r.u or 0), int(r.last) if r.last is not None else None) for r in rows]
        return sorted(out, key=lambda x: x.last_message_ns or x.started_ns, reverse=True)

    def post(self, session: SessionRow, author: str, role: str, text: str, now_ns: int, *, automated: bool = False,
             alarm_id: str | None = None, strip: tuple[int, int] | None = None,
             citations: tuple[Citation, ...] = ()) -> MessageRow:
        if alarm_id is not None and not self.alarm_belongs(session.patient, alarm_id):
            raise ChatError("BAD_USER_INPUT", f"no alarm {alarm_id!r} for this patient")
        cites = json.dumps([{"kind": c.kind, "label": c.label, "value": c.value, "at_ns": c.at_ns} for c in citations])
        with self.engine.begin() as conn:
            result = conn.execute(chat_messages.insert().values(
                session_id=session.session_id, author=author, role=role, automated=automated, text=text,
                sent_ns=now_ns, alarm_id=alarm_id, strip_from_ns=strip[0] if strip else None,
                strip_to_ns=strip[1] if strip else None, citations=cites))
            key = result.inserted_primary_key
            if key is None:  # every dialect we run on reports the new id; without it nothing can be marked read
                raise RuntimeError("the database did not report the new message's id")
            message_id = int(key[0])
            if not automated:  # your own message is read; so is everything before it
                self._mark(conn, session.session_id, author, message_id, now_ns)
        return MessageRow(message_id, session.session_id, author, role, automated, text, now_ns, alarm_id,
                          strip[0] if strip else None, strip[1] if strip else None, citations)

    def messages(self, session_id: str, limit: int = 200) -> list[MessageRow]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(chat_messages).where(chat_messages.c.session_id == session_id)
                                .order_by(chat_messages.c.id.desc()).limit(limit)).all()
        return [_message(r) for r in reversed(rows)]

    def message(self, message_id: int) -> MessageRow | None:
        with self.engine.connect() as conn:
            r = conn.execute(select(chat_messages).where(chat_messages.c.id == message_id)).first()
        return _message(r) if r is not None else None

    def history(self, patient: str, limit: int = HISTORY_LIMIT) -> list[MessageRow]:
        """Every session's messages of the patient, oldest first (the newest ``limit``)."""
        query = (select(chat_messages).join(chat_sessions, chat_sessions.c.session_id == chat_messages.c.session_id)
                 .where(chat_sessions.c.patient == patient).order_by(chat_messages.c.id.desc()).limit(limit))
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [_message(r) for r in reversed(rows)]

    def mark_read(self, session_id: str, username: str, now_ns: int) -> None:
        with self.engine.begin() as conn:
            last = conn.execute(select(func.max(chat_messages.c.id))
                                .where(chat_messages.c.session_id == session_id)).scalar()
            self._mark(conn, session_id, username, int(last or 0), now_ns)

    @staticmethod
    def _mark(conn: Any, session_id: str, username: str, message_id: int, now_ns: int) -> None:
        stmt = insert_for(conn, chat_reads).values(session_id=session_id, username=username,
                                                   last_read_id=message_id, read_ns=now_ns)
        conn.execute(stmt.on_conflict_do_update(
            index_elements=["session_id", "username"],
            set_={"last_read_id": func.max(chat_reads.c.last_read_id, stmt.excluded.last_read_id)
                  if conn.dialect.name == "sqlite" else func.greatest(chat_reads.c.last_read_id,
                                                                      stmt.excluded.last_read_id),
                  "read_ns": stmt.excluded.read_ns}))
