"""The API's GraphQL, WebSocket and REST surface on a seeded database: the authorization matrix
(every role x every operation, two sites), audit rows, the seed operations, query limits,
live risk updates over graphql-transport-ws and /ws/risk (in-process hub, and Redis when it answers)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from cardiogate.cloud.api.live import LocalHub, RedisHub, open_hub
from cardiogate.cloud.api.run import schema_sdl
from cardiogate.cloud.api.tables import api_audit
from tests.conftest import port_open
from tests.integration.api_testkit import USERS, Seeded, api_settings, client_for, database, gql, login, report, seed

pytestmark = [pytest.mark.api, pytest.mark.timeout(120)]

OK, FORBIDDEN, NA = "ok", "FORBIDDEN", "NOT_AVAILABLE"
PATIENT_ROLES_3 = {"nurse3": OK, "clin3": OK, "admin": OK, "nurse4": FORBIDDEN, "oper": FORBIDDEN}
PATIENT_ROLES_4 = {"nurse4": OK, "admin": OK, "nurse3": FORBIDDEN, "clin3": FORBIDDEN, "oper": FORBIDDEN}
PLANNED = {"nurse3": NA, "clin3": NA, "nurse4": NA, "admin": NA, "oper": FORBIDDEN}

# operation -> (document with $p3/$p4 placeholders, expected outcome per user)
MATRIX: dict[str, tuple[str, dict[str, str]]] = {
    "getRiskAssessment ward-3": ("{ getRiskAssessment(userId: \"$p3\") { score } }", PATIENT_ROLES_3),
    "getRiskAssessment ward-4": ("{ getRiskAssessment(userId: \"$p4\") { score } }", PATIENT_ROLES_4),
    "vitalsHistory": ("{ vitalsHistory(userId: \"$p3\", from: \"2025-12-31T00:00:00Z\", to: \"2026-01-02T00:00:00Z\")"
                      " { hrMean } }", PATIENT_ROLES_3),
    "alarms": ("{ alarms(userId: \"$p3\") { alarmId } }", PATIENT_ROLES_3),
    "alarms ward-4": ("{ alarms(userId: \"$p4\", activeOnly: false) { alarmId } }", PATIENT_ROLES_4),
    "patients": ("{ patients { pseudonym } }", {"nurse3": OK, "nurse4": OK, "clin3": OK, "admin": OK,
                                               "oper": FORBIDDEN}),
    "sites": ("{ sites { siteId } }", dict.fromkeys(USERS, OK)),
    "gateways": ("{ gateways { gatewayId } }", dict.fromkeys(USERS, OK)),
    "gatewayTimeline ward-3": ("{ gatewayTimeline(gatewayId: \"gw-3\", since: \"2025-12-31T00:00:00Z\") { kind } }",
                               {"nurse3": OK, "clin3": OK, "admin": OK, "oper": OK, "nurse4": "BAD_USER_INPUT"}),
    "models": ("{ models { name } }", {"clin3": OK, "oper": OK, "admin": OK, "nurse3": FORBIDDEN,
                                       "nurse4": FORBIDDEN}),
    "getNutritionAnalysis": ("{ getNutritionAnalysis(userId: \"$p3\") { deficiencies { name } } }", PATIENT_ROLES_3),
    # care-team chat: the patient's site reads; nurses and clinicians write; an unknown session is refused alike
    "getChatHistory": ("{ getChatHistory(userId: \"$p3\") { text } }", PATIENT_ROLES_3),
    "startChatSession": ("mutation { startChatSession(userId: \"$p3\") { id } }",
                         {"nurse3": OK, "clin3": OK, "admin": FORBIDDEN, "nurse4": FORBIDDEN, "oper": FORBIDDEN}),
    "sendChatMessage": ("mutation { sendChatMessage(sessionId: \"s\", message: \"hi\") { id } }",
                        dict.fromkeys(USERS, FORBIDDEN)),
    "ingestSmartwatchData": ("mutation { ingestSmartwatchData(data: {deviceId: \"w\", userId: \"$p3\", sequence: 1, "
                             "time: \"2026-01-01T00:00:00Z\", heartRate: 80}) }",
                             {"admin": NA, **{u: FORBIDDEN for u in USERS if u != "admin"}}),
    # alarm actions: nurses and clinicians of the site command and comment; only clinicians label; the gateway
    # obeys clinical roles only, so an admin may read but not command
    "acknowledgeAlarm": ("mutation { acknowledgeAlarm(userId: \"$p3\", alarmId: \"a-$p3\") { outcome } }",
                         {"nurse3": OK, "clin3": OK, "admin": FORBIDDEN, "nurse4": FORBIDDEN, "oper": FORBIDDEN}),
    "silenceAlarm ward-4": ("mutation { silenceAlarm(userId: \"$p4\", durationS: 60, reason: \"turning\") "
                            "{ outcome } }",
                            {"nurse4": OK, "clin3": FORBIDDEN, "admin": FORBIDDEN, "nurse3": FORBIDDEN,
                             "oper": FORBIDDEN}),
    "commentAlarm": ("mutation { commentAlarm(userId: \"$p3\", alarmId: \"a-$p3\", text: \"lead loose\") { text } }",
                     {"nurse3": OK, "clin3": OK, "admin": FORBIDDEN, "nurse4": FORBIDDEN, "oper": FORBIDDEN}),
    "labelAlarm": ("mutation { labelAlarm(userId: \"$p3\", alarmId: \"a-$p3\", isTrue: false) { isTrue } }",
                   {"clin3": OK, "nurse3": FORBIDDEN, "admin": FORBIDDEN, "nurse4": FORBIDDEN, "oper": FORBIDDEN}),
    "alarmActivity": ("{ alarmActivity(userId: \"$p3\") { alarmId } }", PATIENT_ROLES_3),
}

RISK = """query($p: ID!) { getRiskAssessment(userId: $p) { score confidence factors { name value contribution
          description } recommendations level news2 modelName modelVersion baseline widthS revision windowStart } }"""


@pytest.fixture(params=["sqlite", "postgresql"])
def seeded(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Seeded]:
    with database(request.param, tmp_path) as engine:
        yield seed(engine)


@pytest.fixture
def seeded_sqlite(tmp_path: Path) -> Iterator[Seeded]:
    with database("sqlite", tmp_path) as engine:
        yield seed(engine)


@pytest.fixture
def client(seeded_sqlite: Seeded, tmp_path: Path) -> Iterator[TestClient]:
    with client_for(seeded_sqlite.engine, api_settings(tmp_path)) as c:
        yield c


def outcome(response: Any) -> str:
    assert response.status_code == 200, response.text
    body = response.json()
    if body.get("errors"):
        return str(body["errors"][0]["extensions"]["code"])
    return OK


def test_authorization_matrix(seeded: Seeded, tmp_path: Path) -> None:
    with client_for(seeded.engine, api_settings(tmp_path, rate_per_s=0)) as client:
        tokens = {u: login(client, u) for u in USERS}
        got: dict[tuple[str, str], str] = {}
        want: dict[tuple[str, str], str] = {}
        for operation, (document, expected) in MATRIX.items():
            query = document.replace("$p3", seeded.p3).replace("$p4", seeded.p4)
            for user, token in tokens.items():
                got[operation, user] = outcome(gql(client, token, query))
                want[operation, user] = expected[user]
        assert got == want
        # site scope inside lists
        seen = {u: [p["pseudonym"] for p in gql(client, tokens[u], "{ patients { pseudonym } }").json()["data"]
                    ["patients"]] for u in ("nurse3", "nurse4", "admin")}
        assert seen == {"nurse3": [seeded.p3], "nurse4": [seeded.p4], "admin": [seeded.p3, seeded.p4]}
        gateways = gql(client, tokens["nurse3"], "{ gateways { gatewayId } }").json()["data"]["gateways"]
        assert gateways == [{"gatewayId": "gw-3"}]
        # an unknown patient looks exactly like another site's
        unknown = gql(client, tokens["nurse3"], '{ alarms(userId: "nobody") { alarmId } }').json()["errors"][0]
        other = gql(client, tokens["nurse3"], f'{{ alarms(userId: "{seeded.p4}") {{ alarmId }} }}').json()["errors"][0]
        assert unknown["message"].replace("nobody", "X") == other["message"].replace(seeded.p4, "X")


def test_risk_assessment_returns_the_latest_report_and_reads_are_audited(seeded: Seeded, tmp_path: Path) -> None:
    with client_for(seeded.engine, api_settings(tmp_path)) as client:
        token = login(client, "nurse3")
        risk = gql(client, token, RISK, {"p": seeded.p3}).json()["data"]["getRiskAssessment"]
        assert risk == {"score": 0.55, "confidence": 0.8, "recommendations": ["review within 1 hour"],
                        "factors": [{"name": "news2", "value": 5.0, "contribution": 0.6,
                                     "description": "NEWS2 subtotal 5"},
                                    {"name": "af_burden", "value": 0.3, "contribution": 0.4,
                                     "description": "30% AF"}],
                        "level": "medium", "news2": 5, "modelName": "risk-baseline", "modelVersion": "1.0.0",
                        "baseline": True, "widthS": 300, "revision": 1, "windowStart": "2026-01-01T00:05:00+00:00"}
        gql(client, token, RISK, {"p": seeded.p4})  # refused: no data, and no audit row
        admin = login(client, "admin")
        assert gql(client, admin, '{ getRiskAssessment(userId: "nobody") { score } }').json()["data"] == {
            "getRiskAssessment": None}
    with seeded.engine.connect() as conn:
        rows = [(r.username, r.role, r.action, r.patient, r.client) for r in
                conn.execute(select(api_audit).order_by(api_audit.c.id))]
    assert rows == [("nurse3", "nurse", "getRiskAssessment", seeded.p3, "testclient"),
                    ("admin", "admin", "getRiskAssessment", "nobody", "testclient")]


def test_patients_vitals_history_alarms_fleet_and_models(client: TestClient, seeded_sqlite: Seeded) -> None:
    s = seeded_sqlite
    clin = login(client, "clin3")
    patients = gql(client, clin, "{ patients { pseudonym site news2 vitals { name value } risk { score } "
                                 "activeAlarms { condition priority state } connected batteryPercent signalQuality "
                                 "afBurden rhythm riskTrend audioPaused } }").json()["data"]["patients"]
    assert patients == [{"pseudonym": s.p3, "site": "ward-3", "news2": 5,
                         "vitals": [{"name": "hr", "value": 88.0}, {"name": "signal_quality", "value": 0.82}],
                         "risk": {"score": 0.55},
                         "activeAlarms": [{"condition": "tachycardia", "priority": "high", "state": "raised"}],
                         # one wearable linked (a stale drop did not win); the lower battery; the ECG's rhythm
                         "connected": True, "batteryPercent": 15.0, "signalQuality": 0.82,
                         "afBurden": 0.2, "rhythm": "A", "riskTrend": [0.3, 0.45, 0.5], "audioPaused": False}]
    history = gql(client, clin, f'{{ vitalsHistory(userId: "{s.p3}", widthS: 300, from: "2026-01-01T00:00:00Z", '
                                 f'to: "2026-01-01T01:00:00Z") {{ start hrMean spo2Min afBurden }} }}').json()
    assert history["data"]["vitalsHistory"] == [
        {"start": "2026-01-01T00:00:00+00:00", "hrMean": 80.0, "spo2Min": 94.0, "afBurden": None},
        {"start": "2026-01-01T00:05:00+00:00", "hrMean": 90.0, "spo2Min": 94.0, "afBurden": None}]
    bad = gql(client, clin, f'{{ vitalsHistory(userId: "{s.p3}", widthS: 7) {{ start }} }}').json()
    assert bad["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    oper = login(client, "oper")
    gateways = gql(client, oper, "{ gateways { gatewayId site health softwareVersion outboxRecords lastHeartbeat "
                                 "connectedDevices modelVersions } }").json()["data"]["gateways"]
    assert gateways[0] == {"gatewayId": "gw-3", "site": "ward-3", "health": "ok", "softwareVersion": "0.3.1",
                           "outboxRecords": 7, "lastHeartbeat": "2026-01-01T00:00:00+00:00", "connectedDevices": 0,
                           "modelVersions": {"rhythm": "1.0.0"}}
    models = gql(client, oper, "{ models { name version metrics card } }").json()["data"]["models"]
    assert models == [{"name": "rhythm", "version": "1.0.0", "metrics": {"f1": 0.83}, "card": "# rhythm"}]


def test_deep_queries_many_aliases_and_introspection_are_refused(seeded_sqlite: Seeded, tmp_path: Path) -> None:
    with client_for(seeded_sqlite.engine, api_settings(tmp_path, max_query_depth=2, max_aliases=3)) as client:
        token = login(client, "admin")
        assert gql(client, token, "{ patients { risk { score } } }").json()["data"]["patients"]
        deep = gql(client, token, "{ patients { risk { factors { name } } } }").json()
        assert deep["data"] is None and "exceeds maximum operation depth" in deep["errors"][0]["message"]
        aliases = gql(client, token, "{ " + " ".join(f"a{i}: sites {{ siteId }}" for i in range(4)) + " }").json()
        assert "aliases" in aliases["errors"][0]["message"]
        # the cost limit: a document of more tokens than allowed is refused before it runs, however shallow
        wide = gql(client, token, "{ sites { " + " ".join(["siteId name"] * 1000) + " } }").json()
        assert wide["data"] is None and "token" in wide["errors"][0]["message"].lower()
        intro = gql(client, token, "{ __schema { types { name } } }").json()
        assert "introspection" in intro["errors"][0]["message"].lower()
    with client_for(seeded_sqlite.engine, api_settings(tmp_path, development=True)) as client:
        token = login(client, "admin")
        assert gql(client, token, "{ __schema { queryType { name } } }").json()["data"]["__schema"]["queryType"] == {
            "name": "Query"}


def _wait_subscribed(client: TestClient, hub: Any, patient: str) -> None:
    deadline = time.monotonic() + 10
    while client.portal.call(hub.subscribers, patient) < 1:  # type: ignore[union-attr]
        assert time.monotonic() < deadline, "the subscription never reached the hub"
        time.sleep(0.02)


def _live_hubs() -> list[str]:
    return ["local", "redis"] if port_open("127.0.0.1", 6379) else ["local"]


@pytest.fixture(params=_live_hubs())
def live_client(request: pytest.FixtureRequest, seeded_sqlite: Seeded, tmp_path: Path) -> Iterator[TestClient]:
    settings = api_settings(tmp_path)
    if request.param == "local":
        with client_for(seeded_sqlite.engine, settings, hub=LocalHub()) as c:
            yield c
    else:
        with client_for(seeded_sqlite.engine, settings, redis=True) as c:  # the lifespan finds Redis
            assert isinstance(c.app.state.hub, RedisHub)  # type: ignore[attr-defined]
            yield c


def test_real_time_risk_update_over_graphql_transport_ws(live_client: TestClient, seeded_sqlite: Seeded) -> None:
    client, p3 = live_client, seeded_sqlite.p3
    hub = client.app.state.hub  # type: ignore[attr-defined]
    token = login(client, "nurse3")
    with client.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"]) as ws:
        ws.send_json({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}})
        assert ws.receive_json()["type"] == "connection_ack"
        ws.send_json({"id": "1", "type": "subscribe", "payload": {
            "query": "subscription($p: ID!) { realTimeRiskUpdate(userId: $p) { userId score level "
                     "report { modelName factors { name } } } }", "variables": {"p": p3}}})
        _wait_subscribed(client, hub, p3)
        client.portal.call(hub.publish, p3, report(p3, 1, 0.91).SerializeToString())  # type: ignore[union-attr]
        message = ws.receive_json()
        assert message["type"] == "next" and message["id"] == "1"
        assert message["payload"]["data"]["realTimeRiskUpdate"] == {
            "userId": p3, "score": 0.91, "level": "medium",
            "report": {"modelName": "risk-baseline", "factors": [{"name": "news2"}, {"name": "af_burden"}]}}
        ws.send_json({"id": "1", "type": "complete"})


def test_a_subscription_ends_when_its_token_expires(client: TestClient, seeded_sqlite: Seeded, tmp_path: Path) -> None:
    from cardiogate.cloud.api.tokens import Issuer, load_or_create_key
    from cardiogate.cloud.api.users import User

    settings = api_settings(tmp_path)
    ttl = settings.auth.token_ttl_s  # a token issued ttl - 2 s ago: valid for 2 more seconds
    issuer = Issuer(load_or_create_key(settings.auth.issuer_key), settings.auth, clock=lambda: time.time() - ttl + 2)
    token, _ = issuer.issue(User("nurse3", "nurse", ("ward-3",), False))
    started = time.monotonic()
    with client.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"]) as ws:
        ws.send_json({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}})
        assert ws.receive_json()["type"] == "connection_ack"
        ws.send_json({"id": "1", "type": "subscribe", "payload": {
            "query": f'subscription {{ realTimeRiskUpdate(userId: "{seeded_sqlite.p3}") {{ score }} }}'}})
        message = ws.receive_json()
    assert message["type"] == "next" and message["payload"]["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert 0.5 < time.monotonic() - started < 10


def test_graphql_ws_refuses_without_token_and_other_site(client: TestClient, seeded_sqlite: Seeded) -> None:
    with client.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"]) as ws:
        ws.send_json({"type": "connection_init", "payload": {}})
        closed = ws.receive()
        assert closed["type"] == "websocket.close" and closed["code"] == 4403
    token = login(client, "nurse3")
    with client.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"],
                                  headers={"Authorization": f"Bearer {token}"}) as ws:
        ws.send_json({"type": "connection_init"})
        assert ws.receive_json()["type"] == "connection_ack"
        ws.send_json({"id": "1", "type": "subscribe", "payload": {
            "query": f'subscription {{ realTimeRiskUpdate(userId: "{seeded_sqlite.p4}") {{ score }} }}'}})
        message = ws.receive_json()
        assert message["type"] in ("error", "next")
        errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
        assert errors[0]["extensions"]["code"] == "FORBIDDEN"


def test_ws_risk_pushes_json_reports(live_client: TestClient, seeded_sqlite: Seeded) -> None:
    client, p3 = live_client, seeded_sqlite.p3
    hub = client.app.state.hub  # type: ignore[attr-defined]
    token = login(client, "clin3")
    with client.websocket_connect(f"/ws/risk?userId={p3}&token={token}") as ws:
        assert ws.receive_json() == {"type": "ready", "userId": p3}
        _wait_subscribed(client, hub, p3)
        client.portal.call(hub.publish, p3, report(p3, 1, 0.77).SerializeToString())  # type: ignore[union-attr]
        message = ws.receive_json()
        assert message["type"] == "risk" and message["userId"] == p3
        assert message["report"]["score"] == 0.77 and message["report"]["modelName"] == "risk-baseline"
    with client.websocket_connect(f"/ws/risk?userId={p3}") as ws:  # the token as the first message
        ws.send_json({"token": token})
        assert ws.receive_json()["type"] == "ready"
    with client.websocket_connect(f"/ws/risk?userId={seeded_sqlite.p4}",
                                  headers={"Authorization": f"Bearer {token}"}) as ws:
        assert ws.receive_json()["code"] == "FORBIDDEN"
        assert ws.receive()["code"] == 4403
    with client.websocket_connect(f"/ws/risk?userId={p3}&token=forged") as ws:
        assert ws.receive_json()["code"] == "UNAUTHENTICATED"


async def test_open_hub_falls_back_in_process_when_redis_is_absent() -> None:
    hub = await open_hub("redis://127.0.0.1:1/0", timeout_s=0.5)
    assert isinstance(hub, LocalHub)
    await hub.close()


def test_the_published_latest_report_wins_over_an_older_stored_one(client: TestClient, seeded_sqlite: Seeded) -> None:
    p3 = seeded_sqlite.p3
    hub = client.app.state.hub  # type: ignore[attr-defined]
    newer = report(p3, 2 * 10**18, 0.99)
    client.portal.call(hub.publish, p3, newer.SerializeToString())  # type: ignore[union-attr]
    token = login(client, "admin")
    assert gql(client, token, RISK, {"p": p3}).json()["data"]["getRiskAssessment"]["score"] == 0.99


def test_schema_sdl_keeps_the_seed_api() -> None:
    sdl = schema_sdl()
    # the seed's operations keep their names, arguments and types; optional arguments may follow
    for pattern in (r"startChatSession\(userId: ID!(, \w+: \w+ = null)*\): ChatSession",
                    r"sendChatMessage\(sessionId: ID!, message: String!(, \w+: \w+ = null)*\): ChatMessage"):
        assert re.search(pattern, sdl), pattern
    for text in ("getRiskAssessment(userId: ID!): RiskReport", "getNutritionAnalysis(userId: ID!): NutritionReport",
                 "getChatHistory(userId: ID!): [ChatMessage]", "ingestSmartwatchData(data: SmartwatchInput!): Boolean",
                 "realTimeRiskUpdate(userId: ID!): RiskUpdate", "type RiskReport", "recommendations: [String!]!",
                 "factors: [RiskFactor!]!", "type NutritionReport", "deficiencies: [Nutrient!]!",
                 "suggestedFoods: [FoodItem!]!", "score: Float!", "confidence: Float!"):
        assert text in sdl


def test_health_readiness_metrics_and_openapi(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ok", "database": "ok"}
    metrics = client.get("/metrics")
    assert metrics.status_code == 200 and "api_refusals_total" in metrics.text
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/healthz", "/readyz", "/metrics", "/graphql", "/auth/token", "/auth/jwks.json"} <= set(paths)
