"""Care-team chat through the API: the seed's operations, who may do what (site, role), refusal of bad
messages with nothing stored, unread counts, attachments, the audit trail, the assistant, and the
subscription (over the in-process hub and, when it answers, Redis)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from cardiogate.cloud.api.live import LocalHub, RedisHub
from cardiogate.cloud.api.tables import api_audit
from cardiogate.cloud.care.tables import chat_messages, chat_sessions
from tests.conftest import port_open
from tests.integration.api_testkit import Seeded, api_settings, client_for, database, gql, login, seed

pytestmark = [pytest.mark.care, pytest.mark.api, pytest.mark.timeout(120)]

START = "mutation($p: ID!, $a: ID, $t: String) { startChatSession(userId: $p, alarmId: $a, title: $t) { id userId " \
        "startedBy alarmId title unreadCount messageCount } }"
SEND = "mutation($s: ID!, $m: String!, $a: ID, $f: DateTime, $t: DateTime) { sendChatMessage(sessionId: $s, " \
       "message: $m, alarmId: $a, stripFrom: $f, stripTo: $t) { id sessionId sender role automated text alarmId " \
       "stripFrom stripTo } }"
HISTORY = "query($p: ID!) { getChatHistory(userId: $p) { id sender role text automated } }"
SESSIONS = "query($p: ID!) { chatSessions(userId: $p) { id unreadCount messageCount } }"
READ = "mutation($s: ID!) { markChatRead(sessionId: $s) { id unreadCount } }"
ASK = "mutation($s: ID!, $q: String!) { askAssistant(sessionId: $s, question: $q) { sender role automated text " \
      "citations { kind label value } } }"


@pytest.fixture
def seeded(tmp_path: Path) -> Iterator[Seeded]:
    with database("sqlite", tmp_path) as engine:
        yield seed(engine)


@pytest.fixture
def client(seeded: Seeded, tmp_path: Path) -> Iterator[TestClient]:
    with client_for(seeded.engine, api_settings(tmp_path, rate_per_s=0)) as c:
        yield c


def _ok(response: Any) -> dict[str, Any]:
    body = response.json()
    assert "errors" not in body, body
    data: dict[str, Any] = body["data"]
    return data


def _code(response: Any) -> str:
    return str(response.json()["errors"][0]["extensions"]["code"])


def _count(seeded: Seeded, table: Any) -> int:
    with seeded.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def test_the_seed_operations_and_unread_counts(client: TestClient, seeded: Seeded) -> None:
    nurse, clin = login(client, "nurse3"), login(client, "clin3")
    alarm = f"a-{seeded.p3}"
    session = _ok(gql(client, nurse, START, {"p": seeded.p3, "a": alarm, "t": "tachycardia at 03:10"}))[
        "startChatSession"]
    assert (session["userId"], session["startedBy"], session["alarmId"], session["messageCount"]) == (
        seeded.p3, "nurse3", alarm, 0)
    text = "HR 150 since 03:10.\nPatient asymptomatic, please review."
    sent = _ok(gql(client, nurse, SEND, {"s": session["id"], "m": text, "a": alarm}))["sendChatMessage"]
    assert (sent["sender"], sent["role"], sent["automated"], sent["text"], sent["alarmId"]) == (
        "nurse3", "nurse", False, text, alarm)
    # the clinician has one unread message; the nurse none (her own)
    assert _ok(gql(client, clin, SESSIONS, {"p": seeded.p3}))["chatSessions"] == [
        {"id": session["id"], "unreadCount": 1, "messageCount": 1}]
    assert _ok(gql(client, nurse, SESSIONS, {"p": seeded.p3}))["chatSessions"][0]["unreadCount"] == 0
    assert _ok(gql(client, clin, READ, {"s": session["id"]}))["markChatRead"]["unreadCount"] == 0
    reply = _ok(gql(client, clin, SEND, {"s": session["id"], "m": "Seen. 12-lead please."}))["sendChatMessage"]
    assert reply["role"] == "clinician"
    history = _ok(gql(client, clin, HISTORY, {"p": seeded.p3}))["getChatHistory"]
    assert [(m["sender"], m["text"]) for m in history] == [("nurse3", text), ("clin3", "Seen. 12-lead please.")]
    messages = "query($s: ID!, $n: Int) { chatMessages(sessionId: $s, limit: $n) { sender } }"
    assert [m["sender"] for m in _ok(gql(client, nurse, messages, {"s": session["id"], "n": 1}))["chatMessages"]] == [
        "clin3"]  # the newest, still oldest first
    assert len(_ok(gql(client, nurse, messages, {"s": session["id"], "n": None}))["chatMessages"]) == 2
    assert _code(gql(client, nurse, messages, {"s": session["id"], "n": 0})) == "BAD_USER_INPUT"
    assert _ok(gql(client, nurse, SESSIONS, {"p": seeded.p3}))["chatSessions"][0]["unreadCount"] == 1
    with seeded.engine.connect() as conn:
        audited = {(r.username, r.action) for r in conn.execute(select(api_audit).where(
            api_audit.c.patient == seeded.p3))}
    assert {("nurse3", "startChatSession"), ("nurse3", "sendChatMessage"), ("clin3", "getChatHistory"),
            ("clin3", "markChatRead"), ("clin3", "chatSessions")} <= audited


def test_other_sites_and_roles_are_refused_and_nothing_is_stored(client: TestClient, seeded: Seeded) -> None:
    nurse3, nurse4, oper, admin = (login(client, u) for u in ("nurse3", "nurse4", "oper", "admin"))
    session = _ok(gql(client, nurse3, START, {"p": seeded.p3}))["startChatSession"]["id"]
    _ok(gql(client, nurse3, SEND, {"s": session, "m": "first"}))
    before = _count(seeded, chat_messages)
    for token in (nurse4, oper):
        assert _code(gql(client, token, START, {"p": seeded.p3})) == "FORBIDDEN"
        assert _code(gql(client, token, SEND, {"s": session, "m": "sneaky"})) == "FORBIDDEN"
        assert _code(gql(client, token, HISTORY, {"p": seeded.p3})) == "FORBIDDEN"
        assert _code(gql(client, token, READ, {"s": session})) == "FORBIDDEN"
        assert _code(gql(client, token, ASK, {"s": session, "q": "summary"})) == "FORBIDDEN"
    # an admin may read every site's patients but is not part of the care team
    assert _code(gql(client, admin, SEND, {"s": session, "m": "hello"})) == "FORBIDDEN"
    assert len(_ok(gql(client, admin, HISTORY, {"p": seeded.p3}))["getChatHistory"]) == 1
    # an unknown session looks like a forbidden one
    assert _code(gql(client, nurse3, SEND, {"s": "0" * 32, "m": "x"})) == "FORBIDDEN"
    assert gql(client, None, HISTORY, {"p": seeded.p3}).status_code == 401
    assert _count(seeded, chat_messages) == before and _count(seeded, chat_sessions) == 1


@pytest.mark.parametrize("message", ["", "   \n\t ", "a" * 4001, "nul\x00byte", "bell\x07", "bidi \u202e evil",
                                     "lone \ud800 surrogate"])
def test_bad_messages_are_refused_with_nothing_stored(client: TestClient, seeded: Seeded, message: str) -> None:
    nurse = login(client, "nurse3")
    session = _ok(gql(client, nurse, START, {"p": seeded.p3}))["startChatSession"]["id"]
    # sent as escaped JSON, so that a lone surrogate reaches the server as a client could send it
    body = json.dumps({"query": SEND, "variables": {"s": session, "m": message}})
    response = client.post("/graphql", content=body, headers={"Authorization": f"Bearer {nurse}",
                                                               "Content-Type": "application/json"})
    assert _code(response) == "BAD_USER_INPUT"
    assert _count(seeded, chat_messages) == 0


def test_attachments_must_belong_to_the_patient_and_be_sane(client: TestClient, seeded: Seeded) -> None:
    nurse = login(client, "nurse3")
    assert _code(gql(client, nurse, START, {"p": seeded.p3, "a": f"a-{seeded.p4}"})) == "BAD_USER_INPUT"
    session = _ok(gql(client, nurse, START, {"p": seeded.p3}))["startChatSession"]["id"]
    assert _code(gql(client, nurse, SEND, {"s": session, "m": "x", "a": f"a-{seeded.p4}"})) == "BAD_USER_INPUT"
    now = time.time()

    def iso(t: float) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(t))

    for start, end in ((now - 60, now - 120), (now - 3600, now - 60), (now + 600, now + 660)):
        refused = gql(client, nurse, SEND, {"s": session, "m": "strip", "f": iso(start), "t": iso(end)})
        assert _code(refused) == "BAD_USER_INPUT"
    assert _code(gql(client, nurse, SEND, {"s": session, "m": "strip", "f": iso(now - 60)})) == "BAD_USER_INPUT"
    ok = _ok(gql(client, nurse, SEND, {"s": session, "m": "see strip", "f": iso(now - 90), "t": iso(now - 60)}))
    assert ok["sendChatMessage"]["stripFrom"].startswith(iso(now - 90)[:16])
    assert _count(seeded, chat_messages) == 1


def test_the_assistant_answers_from_the_patients_data_labelled_and_cited(client: TestClient, seeded: Seeded) -> None:
    nurse = login(client, "nurse3")
    session = _ok(gql(client, nurse, START, {"p": seeded.p3}))["startChatSession"]["id"]
    answer = _ok(gql(client, nurse, ASK, {"s": session, "q": "Why is the risk up? Any alarms?"}))["askAssistant"]
    assert (answer["sender"], answer["role"], answer["automated"]) == ("assistant", "automated", True)
    assert answer["text"].startswith("Automated summary (rules, not a clinician):")
    kinds = {c["kind"] for c in answer["citations"]}
    assert {"risk", "alarm"} <= kinds, answer
    assert any("tachycardia" in c["label"] for c in answer["citations"])
    unknown = _ok(gql(client, nurse, ASK, {"s": session, "q": "what is the weather?"}))["askAssistant"]
    assert "I can answer about" in unknown["text"] and unknown["citations"] == []
    history = _ok(gql(client, nurse, HISTORY, {"p": seeded.p3}))["getChatHistory"]
    assert [(m["sender"], m["automated"]) for m in history] == [("nurse3", False), ("assistant", True)] * 2
    assert history[0]["text"] == "Why is the risk up? Any alarms?"


def _hubs() -> list[str]:
    return ["local", "redis"] if port_open("127.0.0.1", 6379) else ["local"]


@pytest.mark.parametrize("hub_kind", _hubs())
def test_the_subscription_delivers_a_message_another_user_sent(seeded: Seeded, tmp_path: Path, hub_kind: str) -> None:
    settings = api_settings(tmp_path, rate_per_s=0)
    with client_for(seeded.engine, settings, hub=LocalHub() if hub_kind == "local" else None,
                    redis=hub_kind == "redis") as client:
        hub = client.app.state.hub  # type: ignore[attr-defined]
        assert isinstance(hub, LocalHub if hub_kind == "local" else RedisHub)
        nurse, clin = login(client, "nurse3"), login(client, "clin3")
        session = _ok(gql(client, nurse, START, {"p": seeded.p3}))["startChatSession"]["id"]
        with client.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"]) as ws:
            ws.send_json({"type": "connection_init", "payload": {"Authorization": f"Bearer {clin}"}})
            assert ws.receive_json()["type"] == "connection_ack"
            ws.send_json({"id": "1", "type": "subscribe", "payload": {
                "query": "subscription($p: ID!) { chatMessageAdded(userId: $p) { sessionId sender text } }",
                "variables": {"p": seeded.p3}}})
            deadline = time.monotonic() + 10
            while client.portal.call(hub.subscribers, f"chat/{seeded.p3}") < 1:  # type: ignore[union-attr]
                assert time.monotonic() < deadline, "the subscription never reached the hub"
                time.sleep(0.02)
            _ok(gql(client, nurse, SEND, {"s": session, "m": "<b>not bold</b>"}))
            message = ws.receive_json()
            assert message["type"] == "next", message
            assert message["payload"]["data"]["chatMessageAdded"] == {"sessionId": session, "sender": "nurse3",
                                                                      "text": "<b>not bold</b>"}
            ws.send_json({"id": "1", "type": "complete"})


def test_chat_on_postgresql(tmp_path: Path) -> None:
    with database("postgres", tmp_path) as engine:
        seeded = seed(engine)
        with client_for(engine, api_settings(tmp_path, rate_per_s=0)) as client:
            nurse, clin = login(client, "nurse3"), login(client, "clin3")
            session = _ok(gql(client, nurse, START, {"p": seeded.p3}))["startChatSession"]["id"]
            for n in range(3):
                _ok(gql(client, nurse, SEND, {"s": session, "m": f"note {n}"}))
            assert _ok(gql(client, clin, SESSIONS, {"p": seeded.p3}))["chatSessions"][0]["unreadCount"] == 3
            assert _ok(gql(client, clin, READ, {"s": session}))["markChatRead"]["unreadCount"] == 0
            assert _ok(gql(client, clin, READ, {"s": session}))["markChatRead"]["unreadCount"] == 0
