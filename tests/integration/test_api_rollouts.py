"""Rollouts through the API: the controller the CLI drives, behind the API's roles (operators and admins
manage, clinicians read, nurses neither), each action in the rollout's history under the user's name."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient

from cardiogate.cloud.api.app import create_app
from cardiogate.cloud.api.live import LocalHub
from cardiogate.cloud.registry.artifacts import FilesystemArtifactStore
from cardiogate.cloud.registry.fleet import FleetRegistry
from cardiogate.cloud.registry.models import CHAMPION, ModelRegistry
from cardiogate.cloud.registry.signing import Signer
from cardiogate.cloud.rollout.controller import RolloutController
from tests.integration.api_testkit import Seeded, api_settings, database, gql, login, seed

pytestmark = [pytest.mark.api, pytest.mark.timeout(120)]

START = """mutation($plan: JSON!) { startRollout(model: "rhythm", version: "1.1.0", plan: $plan) {
  rolloutId state stageSizes members { gatewayId stage status agreement } history { kind actor } } }"""
PLAN = {"sites": ["ward-3", "ward-4"], "canary_share": 0.5, "min_devices_per_stage": 1, "bake_s": 60,
        "gates": {"min_windows": 5}}


@pytest.fixture
def seeded(tmp_path: Path) -> Iterator[Seeded]:
    with database("sqlite", tmp_path) as engine:
        yield seed(engine)


@pytest.fixture
def client(seeded: Seeded, tmp_path: Path) -> Iterator[TestClient]:
    signer = Signer(Ed25519PrivateKey.generate())
    models = ModelRegistry(seeded.engine, FilesystemArtifactStore(tmp_path / "store"))
    for version in ("1.0.1", "1.1.0"):  # the seed holds rhythm 1.0.0 without an artifact
        artifact = tmp_path / f"{version}.json"
        artifact.write_bytes(f'{{"kind": "rule", "v": "{version}"}}'.encode())
        models.publish(artifact, signer=signer, name="rhythm", version=version, task="rhythm", input_spec={},
                       min_gateway_version="0.1.0")
    models.set_alias("rhythm", CHAMPION, "1.0.1")
    controller = RolloutController(seeded.engine, models, FleetRegistry(seeded.engine), signer)
    app = create_app(api_settings(tmp_path, rate_per_s=0), seeded.engine, hub=LocalHub(), rollouts=controller)
    with TestClient(app) as c:
        yield c


def _code(response: Any) -> str:
    body = response.json()
    return str(body["errors"][0]["extensions"]["code"]) if body.get("errors") else "ok"


def test_operators_run_a_rollout_others_may_not(client: TestClient) -> None:
    tokens = {u: login(client, u) for u in ("nurse3", "clin3", "oper", "admin")}
    assert _code(gql(client, tokens["nurse3"], START, {"plan": PLAN})) == "FORBIDDEN"
    assert _code(gql(client, tokens["clin3"], START, {"plan": PLAN})) == "FORBIDDEN"
    started = gql(client, tokens["oper"], START, {"plan": PLAN}).json()
    assert "errors" not in started, started
    rollout = started["data"]["startRollout"]
    assert rollout["state"] == "running" and rollout["stageSizes"] == [1, 2]
    assert sorted(m["gatewayId"] for m in rollout["members"]) == ["gw-3", "gw-4"]
    assert rollout["history"] == [{"kind": "started", "actor": "oper"}]
    rid = rollout["rolloutId"]
    act = 'mutation { %s(rolloutId: "%s", reason: "night shift") { state history { kind actor } } }'
    assert _code(gql(client, tokens["clin3"], act % ("pauseRollout", rid))) == "FORBIDDEN"
    paused = gql(client, tokens["oper"], act % ("pauseRollout", rid)).json()["data"]["pauseRollout"]
    assert paused["state"] == "paused"
    # a paused rollout cannot be paused again: a clear refusal, not a server error
    assert _code(gql(client, tokens["oper"], act % ("pauseRollout", rid))) == "BAD_USER_INPUT"
    resumed = gql(client, tokens["admin"], act % ("resumeRollout", rid)).json()["data"]["resumeRollout"]
    assert resumed["state"] == "running"
    aborted = gql(client, tokens["admin"], act % ("abortRollout", rid)).json()["data"]["abortRollout"]
    assert aborted["state"] == "aborted"
    assert [(h["kind"], h["actor"]) for h in aborted["history"]][:4] == [
        ("started", "oper"), ("paused", "oper"), ("resumed", "admin"), ("aborted", "admin")]
    # clinicians read rollouts (models permission), nurses do not
    listed = gql(client, tokens["clin3"], "{ rollouts(model: \"rhythm\") { rolloutId state } }").json()
    assert listed["data"]["rollouts"] == [{"rolloutId": rid, "state": "aborted"}]
    assert _code(gql(client, tokens["nurse3"], "{ rollouts { rolloutId } }")) == "FORBIDDEN"


def test_a_bad_plan_or_version_is_refused_clearly(client: TestClient) -> None:
    token = login(client, "oper")
    for plan in ({"sites": ["ward-3"], "canary_share": 7}, {"nonsense": 1}, {"sites": ["nowhere"]}, [1, 2]):
        assert _code(gql(client, token, START, {"plan": plan})) == "BAD_USER_INPUT", plan
    older = START.replace('version: "1.1.0"', 'version: "0.9.0"')
    assert _code(gql(client, token, older, {"plan": PLAN})) == "BAD_USER_INPUT"
