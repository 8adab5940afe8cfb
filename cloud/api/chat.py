"""Care-team chat over GraphQL: the seed's getChatHistory, startChatSession and sendChatMessage, plus what a
dashboard needs (sessions with unread counts, read marks, the automated assistant, a subscription).

Every operation first passes the patient check of a read (role, site scope, audit row: a session is
reachable only through its patient); writing adds CHAT_WRITE (nurses and clinicians). Messages are
validated (:mod:`cardiogate.cloud.care.chat_text`) and stored as plain text. New messages fan out
through the API's hub under ``chat/<patient>``, carrying only the message id: every replica reads
the message itself from the database, so no text travels through Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator
from datetime import datetime
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.types import Info

from cardiogate.cloud.api.access import CHAT_WRITE, Denied, require
from cardiogate.cloud.api.context import caller_of, context_of, graphql_error, hub_messages, patient_access
from cardiogate.cloud.api.objects import ns_time, time_ns
from cardiogate.cloud.api.resolvers import bad_input, field, mutation, not_available, subscription
from cardiogate.cloud.care import assistant
from cardiogate.cloud.care.chat import ChatError, ChatStore, MessageRow, SessionRow
from cardiogate.cloud.care.chat_text import ChatTextError, clean_message, clean_title
from cardiogate.core import metrics as registry

REFUSED = registry.counter("chat_refused_messages", "Chat messages refused, by reason.", ("reason",))
POSTED = registry.counter("chat_messages", "Chat messages stored, by kind (person, automated).", ("kind",))
MAX_STRIP_NS = 10 * 60 * 10**9      # an attached ECG strip spans at most 10 minutes
FUTURE_SLACK_NS = 5 * 10**9


@strawberry.type
class ChatCitation:
    kind: str = strawberry.field(description="vitals, risk, alarm or window")
    label: str
    value: str
    at: datetime | None


@strawberry.type(description="One message. `text` is plain text as written: render it as text, never as HTML.")
class ChatMessage:
    id: strawberry.ID
    session_id: strawberry.ID
    sender: str
    role: str
    automated: bool
    text: str
    sent_at: datetime
    alarm_id: strawberry.ID | None
    strip_from: datetime | None
    strip_to: datetime | None
    citations: list[ChatCitation]

    @classmethod
    def of(cls, m: MessageRow) -> ChatMessage:
        sent = ns_time(m.sent_ns)
        assert sent is not None
        return cls(id=strawberry.ID(str(m.message_id)), session_id=strawberry.ID(m.session_id), sender=m.author,
                   role=m.role, automated=m.automated, text=m.text, sent_at=sent,
                   alarm_id=strawberry.ID(m.alarm_id) if m.alarm_id else None, strip_from=ns_time(m.strip_from_ns),
                   strip_to=ns_time(m.strip_to_ns),
                   citations=[ChatCitation(kind=c.kind, label=c.label, value=c.value, at=ns_time(c.at_ns))
                              for c in m.citations])


@strawberry.type
class ChatSession:
    id: strawberry.ID
    user_id: strawberry.ID
    started_at: datetime
    started_by: str
    alarm_id: strawberry.ID | None
    title: str
    unread_count: int = strawberry.field(description="messages by others after the caller's read mark")
    message_count: int
    last_message_at: datetime | None

    @classmethod
    def of(cls, s: SessionRow) -> ChatSession:
        started = ns_time(s.started_ns)
        assert started is not None
        return cls(id=strawberry.ID(s.session_id), user_id=strawberry.ID(s.patient), started_at=started,
                   started_by=s.started_by, alarm_id=strawberry.ID(s.alarm_id) if s.alarm_id else None,
                   title=s.title, unread_count=s.unread, message_count=s.message_count,
                   last_message_at=ns_time(s.last_message_ns))


def _store(info: Info[Any, Any]) -> ChatStore:
    return ChatStore(context_of(info).services.data.engine)


def _refuse(reason: str, message: str) -> GraphQLError:
    REFUSED.labels(reason=reason).inc()
    return bad_input(message)


def _may_write(info: Info[Any, Any]) -> None:
    try:
        require(caller_of(info).principal, CHAT_WRITE)
    except Denied as exc:
        raise graphql_error(exc) from exc


async def _session(info: Info[Any, Any], session_id: str, operation: str) -> SessionRow:
    """The session, after the caller passed its patient's check. An unknown session and one of a patient
    the caller may not see answer alike (FORBIDDEN), so session ids cannot be probed."""
    row = await asyncio.to_thread(_store(info).session, session_id) if len(session_id) <= 40 else None
    if row is None:
        caller_of(info)  # unauthenticated callers learn nothing either
        raise GraphQLError("no access to this chat session", extensions={"code": "FORBIDDEN"})
    await patient_access(info, row.patient, operation)
    return row


async def _announce(info: Info[Any, Any], message: MessageRow, patient: str) -> None:
    await context_of(info).services.hub.publish(f"chat/{patient}", str(message.message_id).encode())


@strawberry.type
class ChatQuery:
    @field("Every chat message about the patient, oldest first (the newest 500).")
    async def get_chat_history(self, info: Info[Any, Any], user_id: strawberry.ID) -> list[ChatMessage | None] | None:
        await patient_access(info, str(user_id), "getChatHistory")
        return [ChatMessage.of(m) for m in await asyncio.to_thread(_store(info).history, str(user_id))]

    @field("The patient's chat sessions, latest activity first, with the caller's unread counts.")
    async def chat_sessions(self, info: Info[Any, Any], user_id: strawberry.ID) -> list[ChatSession]:
        caller = await patient_access(info, str(user_id), "chatSessions")
        rows = await asyncio.to_thread(_store(info).sessions, str(user_id), caller.principal.subject)
        return [ChatSession.of(s) for s in rows]

    @field("One session's messages, oldest first.")
    async def chat_messages(self, info: Info[Any, Any], session_id: strawberry.ID,
                            limit: int | None = 200) -> list[ChatMessage]:
        limit = 200 if limit is None else limit  # the contract's `Int = 200`: an explicit null means the default
        if not 1 <= limit <= 1000:
            raise bad_input("limit must be 1..1000")
        row = await _session(info, str(session_id), "chatMessages")
        return [ChatMessage.of(m) for m in await asyncio.to_thread(_store(info).messages, row.session_id, limit)]


@strawberry.type
class ChatMutation:
    @mutation("Open a chat session about the patient, optionally about one of their alarms.")
    async def start_chat_session(self, info: Info[Any, Any], user_id: strawberry.ID,
                                 alarm_id: strawberry.ID | None = None,
                                 title: str | None = None) -> ChatSession | None:
        caller = await patient_access(info, str(user_id), "startChatSession")
        _may_write(info)
        try:
            clean = clean_title(title)
            row = await asyncio.to_thread(_store(info).start, str(user_id), caller.principal.subject, time.time_ns(),
                                          str(alarm_id) if alarm_id else None, clean)
        except (ChatTextError, ChatError) as exc:
            raise _refuse("session", str(exc)) from exc
        return ChatSession.of(row)

    @mutation("Post a message; it may attach one of the patient's alarms or an ECG strip by time range.")
    async def send_chat_message(self, info: Info[Any, Any], session_id: strawberry.ID, message: str,
                                alarm_id: strawberry.ID | None = None, strip_from: datetime | None = None,
                                strip_to: datetime | None = None) -> ChatMessage | None:
        row = await _session(info, str(session_id), "sendChatMessage")
        _may_write(info)
        caller = caller_of(info)
        settings = context_of(info).services.settings.care
        try:
            text = clean_message(message, settings.max_message_chars)
        except ChatTextError as exc:
            raise _refuse("text", str(exc)) from exc
        strip = None
        if (strip_from is None) != (strip_to is None):
            raise _refuse("strip", "an ECG strip needs both stripFrom and stripTo")
        if strip_from is not None and strip_to is not None:
            start, end, now = time_ns(strip_from), time_ns(strip_to), time.time_ns()
            if not 0 < end - start <= MAX_STRIP_NS or end > now + FUTURE_SLACK_NS:
                raise _refuse("strip", "an ECG strip must run forwards, span at most 10 minutes and not lie in "
                                       "the future")
            strip = (start, end)
        try:
            stored = await asyncio.to_thread(_store(info).post, row, caller.principal.subject, caller.principal.role,
                                             text, time.time_ns(), alarm_id=str(alarm_id) if alarm_id else None,
                                             strip=strip)
        except ChatError as exc:
            raise _refuse("alarm", str(exc)) from exc
        POSTED.labels(kind="person").inc()
        await _announce(info, stored, row.patient)
        return ChatMessage.of(stored)

    @mutation("Mark every message of the session read for the caller.")
    async def mark_chat_read(self, info: Info[Any, Any], session_id: strawberry.ID) -> ChatSession | None:
        row = await _session(info, str(session_id), "markChatRead")
        _may_write(info)
        caller = caller_of(info)
        store = _store(info)
        await asyncio.to_thread(store.mark_read, row.session_id, caller.principal.subject, time.time_ns())
        sessions = await asyncio.to_thread(store.sessions, row.patient, caller.principal.subject)
        return next((ChatSession.of(s) for s in sessions if s.session_id == row.session_id), None)

    @mutation("Ask the automated assistant: the question and its answer (rules over the patient's own data, with "
              "the data it cited, labelled automated) are posted into the session; the answer is returned.")
    async def ask_assistant(self, info: Info[Any, Any], session_id: strawberry.ID, question: str) -> ChatMessage | None:
        row = await _session(info, str(session_id), "askAssistant")
        _may_write(info)
        services = context_of(info).services
        if not services.settings.care.assistant:
            raise not_available("askAssistant (the assistant is off: api.care.assistant)")
        try:
            text = clean_message(question, services.settings.care.max_message_chars)
        except ChatTextError as exc:
            raise _refuse("text", str(exc)) from exc
        caller = caller_of(info)
        # the question goes into the session too, so the answer reads in context
        asked = await asyncio.to_thread(_store(info).post, row, caller.principal.subject, caller.principal.role,
                                        text, time.time_ns())
        POSTED.labels(kind="person").inc()
        await _announce(info, asked, row.patient)
        facts = await asyncio.to_thread(gather_facts, services.data, row.patient, time.time_ns())
        reply = assistant.answer(question, facts)
        stored = await asyncio.to_thread(_store(info).post, row, "assistant", "automated", reply.text, time.time_ns(),
                                         automated=True, citations=reply.citations)
        POSTED.labels(kind="automated").inc()
        await _announce(info, stored, row.patient)
        return ChatMessage.of(stored)


@strawberry.type
class ChatSubscription:
    @subscription("Each new message in any chat session of the patient.")
    async def chat_message_added(self, info: Info[Any, Any],
                                 user_id: strawberry.ID) -> AsyncGenerator[ChatMessage | None, None]:
        caller = caller_of(info)
        await patient_access(info, str(user_id), "chatMessageAdded")
        store = _store(info)
        async with contextlib.aclosing(hub_messages(info, caller, f"chat/{user_id}")) as updates:
            async for payload in updates:
                if not payload.isdigit():
                    continue
                message = await asyncio.to_thread(store.message, int(payload))
                if message is not None:
                    yield ChatMessage.of(message)


def gather_facts(data: Any, patient: str, now_ns: int) -> assistant.PatientFacts:
    """What the assistant may use: the patient's latest vitals, risk report, alarms and 5-minute windows."""
    vitals = tuple(assistant.Vital(v.name, v.value, v.device_time_ns) for v in data.vitals_of([patient])[patient])
    alarms = sorted(data.alarms(patient, False), key=lambda a: a.updated_time_ns, reverse=True)
    alarm_facts = tuple(assistant.AlarmFact(a.alarm_id, a.condition, a.priority, a.state, a.value,
                                            a.raised_time_ns or a.updated_time_ns) for a in alarms[:20])
    report = data.latest_risk(patient)
    risk = None
    if report is not None:
        risk = assistant.RiskFact(report.score, report.level, report.news2,
                                  f"{report.model_name} {report.model_version}".strip(), report.baseline,
                                  tuple((f.name, f.description) for f in report.factors), report.computed_time_ns)
    trends = []
    for span, span_ns in (("1 h", 3600 * 10**9), ("24 h", 86400 * 10**9)):
        windows = data.windows(patient, 300, now_ns - span_ns, now_ns)
        if not windows:
            continue
        hrs = [w.hr_mean for w in windows if w.HasField("hr_mean")]
        spo2 = [w.spo2_min for w in windows if w.HasField("spo2_min")]
        af = [w.af_burden for w in windows if w.HasField("af_burden")]
        trends.append(assistant.TrendFact(span, hrs[0] if hrs else None, hrs[-1] if hrs else None,
                                          min(spo2) if spo2 else None, sum(af) / len(af) if af else None,
                                          len(windows), windows[-1].end_device_time_ns))
    return assistant.PatientFacts(patient, vitals, alarm_facts, risk, tuple(trends))
