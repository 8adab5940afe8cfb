"""Alarm actions through the API: what is queued for the gateway (by whom, from where), idempotency by
command id, refusal of bad input, comments and true/false labels in the alarm's activity. The round trip
through a real gateway is tests/e2e/test_cloud_acknowledge.py."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from cardiogate.cloud.api.tables import api_audit
from cardiogate.cloud.commands import commands_for_patient
from cardiogate.cloud.db import alarm_labels
from tests.integration.api_testkit import Seeded, api_settings, client_for, database, gql, login, seed

pytestmark = [pytest.mark.api, pytest.mark.timeout(120)]

ACK = """mutation($p: ID!, $a: ID!, $c: ID) { acknowledgeAlarm(userId: $p, alarmId: $a, reason: "at bedside",
         commandId: $c) { commandId command patient gateway actor outcome error issuedAt } }"""


@pytest.fixture
def seeded(tmp_path: Path) -> Iterator[Seeded]:
    with database("sqlite", tmp_path) as engine:
        yield seed(engine)


@pytest.fixture
def client(seeded: Seeded, tmp_path: Path) -> Iterator[TestClient]:
    with client_for(seeded.engine, api_settings(tmp_path, rate_per_s=0)) as c:
        yield c


def test_acknowledge_queues_one_command_for_the_patients_gateway_as_the_caller(client: TestClient,
                                                                               seeded: Seeded) -> None:
    token = login(client, "nurse3")
    variables = {"p": seeded.p3, "a": f"a-{seeded.p3}", "c": "ack-1"}
    first = gql(client, token, ACK, variables).json()
    assert "errors" not in first, first
    state = first["data"]["acknowledgeAlarm"]
    assert (state["command"], state["gateway"], state["actor"], state["outcome"]) == ("acknowledge", "gw-3",
                                                                                       "nurse3", "pending")
    again = gql(client, token, ACK, variables).json()["data"]["acknowledgeAlarm"]
    assert again["commandId"] == "ack-1" and again["issuedAt"] == state["issuedAt"]
    queued = commands_for_patient(seeded.engine, seeded.p3)
    assert len(queued) == 1, "the same command id was queued twice"
    body = json.loads(queued[0].payload)
    assert body == {"schema": 1, "command": "acknowledge", "patient": seeded.p3, "by": "nurse3@cloud", "id": "ack-1",
                    "alarm_id": f"a-{seeded.p3}", "reason": "at bedside"}
    assert queued[0].origin == "testclient"
    with seeded.engine.connect() as conn:
        actions = [r.action for r in conn.execute(select(api_audit).where(api_audit.c.username == "nurse3"))]
    assert actions.count("acknowledgeAlarm") == 2


def test_bad_alarm_actions_are_refused_and_nothing_is_queued(client: TestClient, seeded: Seeded) -> None:
    token = login(client, "nurse3")
    cases = {
        "another patient's alarm": ACK,  # a ward-4 patient's alarm id, under the ward-3 patient
        "silence without reason": 'mutation { silenceAlarm(userId: "$p", durationS: 60, reason: " ") { outcome } }',
        "silence too long": 'mutation { silenceAlarm(userId: "$p", durationS: 7200, reason: "x") { outcome } }',
        "silence NaN-free negative": 'mutation { silenceAlarm(userId: "$p", durationS: -1, reason: "x") { outcome } }',
        "empty comment": 'mutation { commentAlarm(userId: "$p", alarmId: "a-$p", text: "") { text } }',
    }
    for name, document in cases.items():
        if name == "another patient's alarm":
            response = gql(client, token, document, {"p": seeded.p3, "a": f"a-{seeded.p4}"})
        else:
            response = gql(client, token, document.replace("$p", seeded.p3))
        errors = response.json().get("errors")
        assert errors and errors[0]["extensions"]["code"] == "BAD_USER_INPUT", (name, response.json())
    assert commands_for_patient(seeded.engine, seeded.p3) == []


def test_comments_and_labels_show_in_the_alarm_activity(client: TestClient, seeded: Seeded) -> None:
    nurse, clinician = login(client, "nurse3"), login(client, "clin3")
    alarm = f"a-{seeded.p3}"
    gql(client, nurse, ACK, {"p": seeded.p3, "a": alarm, "c": "ack-2"})
    assert "errors" not in gql(client, nurse, f'mutation {{ commentAlarm(userId: "{seeded.p3}", alarmId: "{alarm}", '
                                              'text: "electrode off during wash") { text } }').json()
    for verdict in ("true", "false"):  # the second answer replaces the first
        done = gql(client, clinician, f'mutation {{ labelAlarm(userId: "{seeded.p3}", alarmId: "{alarm}", '
                                      f'isTrue: {verdict}, note: "artefact") {{ isTrue }} }}').json()
        assert "errors" not in done, done
    activity = gql(client, clinician, f'{{ alarmActivity(userId: "{seeded.p3}") {{ alarmId commands {{ actor '
                                      'command outcome } comments { author text } labels { author isTrue note } } }'
                   ).json()["data"]["alarmActivity"]
    assert activity == [{"alarmId": alarm,
                         "commands": [{"actor": "nurse3", "command": "acknowledge", "outcome": "pending"}],
                         "comments": [{"author": "nurse3", "text": "electrode off during wash"}],
                         "labels": [{"author": "clin3", "isTrue": False, "note": "artefact"}]},
                        {"alarmId": f"old-{seeded.p3}", "commands": [], "comments": [], "labels": []}]  # older
    with seeded.engine.connect() as conn:
        assert conn.execute(select(alarm_labels)).all().__len__() == 1
    # the ward-4 nurse sees none of it
    other = gql(client, login(client, "nurse4"), f'{{ alarmActivity(userId: "{seeded.p3}") {{ alarmId }} }}').json()
    assert other["errors"][0]["extensions"]["code"] == "FORBIDDEN"
