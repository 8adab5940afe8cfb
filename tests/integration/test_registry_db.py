"""The registries and the rollout controller on real databases: SQLite (the embedded default) and PostgreSQL."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine, create_engine, inspect, select

from cardiogate.cloud.authz import load_grants
from cardiogate.cloud.db import assignments, make_engine
from cardiogate.cloud.registry.artifacts import FilesystemArtifactStore
from cardiogate.cloud.registry.fleet import FleetError, FleetRegistry, Heartbeat, heartbeat_from_proto
from cardiogate.cloud.registry.migrate import (
    TARGET_METADATA,
    current_revision,
    head_revision,
    include_object,
    open_database,
    upgrade,
)
from cardiogate.cloud.registry.models import CHALLENGER, CHAMPION, ModelRegistry, RegistryError
from cardiogate.cloud.registry.schema import registry_metadata
from cardiogate.cloud.registry.signing import Signer
from cardiogate.cloud.rollout.controller import GatewayReport, RolloutController, RolloutError
from cardiogate.cloud.rollout.plan import Gates, RolloutPlan
from cardiogate.edge.updater.manifest import TrustedKeys, verify_manifest, verify_rollback_order
from cardiogate.proto.v1 import fleet_pb2
from tests.integration.cloud_testkit import postgres_schema
from tests.integration.test_migrations import merged


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'cloud.sqlite3'}"
    else:
        with postgres_schema() as url:
            yield url


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = open_database(db_url)
    yield engine
    engine.dispose()


class Clock:
    def __init__(self) -> None:
        self.ns = 1_700_000_000 * 10**9

    def __call__(self) -> int:
        return self.ns


def test_migrations_apply_once_and_match_the_models(engine: Engine) -> None:
    assert current_revision(engine) == head_revision() == "0007_cloud_core"
    upgrade(engine)  # idempotent
    names = set(inspect(engine).get_table_names())
    assert set(registry_metadata.tables) <= names and "assignments" in names
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True,
                                                                        "include_object": include_object}),
                                merged(TARGET_METADATA))
    assert diff == []


def test_migration_on_a_fresh_database_creates_the_shared_assignments_table(tmp_path: Path) -> None:
    bare = create_engine(f"sqlite:///{tmp_path / 'bare.sqlite3'}")
    upgrade(bare)
    assert "assignments" in inspect(bare).get_table_names()
    bare.dispose()
    engine = make_engine(f"sqlite:///{tmp_path / 'bare.sqlite3'}")  # cardiogate.cloud.db accepts the same table
    with engine.begin() as conn:
        conn.execute(assignments.insert().values(gateway_id="g", patient="p", device_id="*", created_ns=1))
    engine.dispose()


def test_concurrent_starts_migrate_once(db_url: str) -> None:
    engines = [create_engine(db_url) for _ in range(3)]  # not make_engine: that migrates before the race
    errors: list[BaseException] = []

    def go(e: Engine) -> None:
        try:
            upgrade(e)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=go, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []  # they take turns
    assert current_revision(engines[0]) == "0007_cloud_core"
    for e in engines:
        e.dispose()


def test_fleet_registry(engine: Engine) -> None:
    fleet = FleetRegistry(engine)
    fleet.add_site("ward-a", "Ward A")
    fleet.add_site("home", "Home hubs")
    for i in range(4):
        fleet.add_gateway(f"gw-{i}", "ward-a" if i < 3 else "home", tags=["pi5"] if i % 2 else ["jetson", "beta"])
    with pytest.raises(FleetError, match="unknown site"):
        fleet.add_gateway("gw-9", "nowhere")
    with pytest.raises(FleetError, match="invalid"):
        fleet.add_gateway("bad id!")
    assert fleet.cohort(["ward-a"]) == ["gw-0", "gw-1", "gw-2"]
    assert fleet.cohort(tags=["pi5"]) == ["gw-1", "gw-3"]
    assert fleet.cohort(["ward-a"], ["beta"]) == ["gw-0", "gw-2"]
    fleet.set_tags("gw-0", ["pi5"])
    assert fleet.gateway("gw-0") is not None and fleet.gateway("gw-0").tags == ("pi5",)  # type: ignore[union-attr]
    assert [g.gateway_id for g in fleet.gateways(site="home")] == ["gw-3"]

    fleet.add_device("polar-h10-1", "polar_h10", "bed 3", "ward-a")
    fleet.add_patient("patient-007", "ward-a")
    with pytest.raises(FleetError):
        fleet.add_patient("John Smith")
    assert fleet.assign("patient-007", "gw-1", "polar-h10-1")
    assert not fleet.assign("patient-007", "gw-1", "polar-h10-1")  # idempotent
    assert fleet.assignments(patient="patient-007") == [("gw-1", "patient-007", "polar-h10-1")]
    # the ingest's authorisation reads the same rows
    with engine.connect() as conn:
        rows = conn.execute(select(assignments.c.gateway_id, assignments.c.device_id)).all()
    assert [tuple(r) for r in rows] == [("gw-1", "polar-h10-1")]
    grants = load_grants(engine, "gw-1")
    assert grants.allows("patient-007", "polar-h10-1") and not grants.allows("patient-007", "other-watch")
    assert fleet.unassign("patient-007", "gw-1") == 1 and not fleet.assignments()

    msg = fleet_pb2.GatewayHeartbeat(gateway_id="gw-1", time_ns=5, software_version="0.1.0",
                                     model_versions={"rhythm": "1.0.0"}, outbox_records=12, outbox_bytes=3400,
                                     oldest_unsent_age_ms=250, health="ok",
                                     devices=[fleet_pb2.ConnectedDevice(device_id="polar-h10-1", patient="patient-007",
                                                                        connected=True, rssi_dbm=-60),
                                              fleet_pb2.ConnectedDevice(device_id="w2", connected=False)])
    fleet.record_heartbeat(heartbeat_from_proto(msg, received_ns=100))
    fleet.record_heartbeat(Heartbeat("gw-new", 6, "0.1.0", {}, "degraded", received_ns=200))  # unknown: registered
    gw = fleet.gateway("gw-1")
    assert gw is not None
    assert (gw.software_version, gw.model_versions, gw.health, gw.outbox_records, gw.connected_devices,
            gw.last_seen_ns) == ("0.1.0", {"rhythm": "1.0.0"}, "ok", 12, 1, 100)
    hb = fleet.heartbeats("gw-1")
    assert len(hb) == 1 and hb[0].devices[0]["rssi_dbm"] == -60 and hb[0].devices[1]["rssi_dbm"] is None
    assert fleet.gateway("gw-new") is not None and fleet.gateway("gw-new").site_id is None  # type: ignore[union-attr]
    assert fleet.prune_heartbeats(150) == 1 and fleet.heartbeats("gw-1") == []


def _artifact(tmp_path: Path, name: str, content: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


def test_model_registry(engine: Engine, tmp_path: Path) -> None:
    signer = Signer(Ed25519PrivateKey.generate())
    models = ModelRegistry(engine, FilesystemArtifactStore(tmp_path / "store"))
    v1 = models.publish(_artifact(tmp_path, "m1.json", b'{"kind": "rule"}'), signer=signer, name="rhythm",
                        version="1.0.0", task="rhythm", input_spec={"window_s": 4}, min_gateway_version="0.1.0",
                        training_data_hash="ab" * 32, metrics={"f1": 0.80}, code_version="git:abc",
                        model_card="# rhythm v1", extra={"format": "rule"}, actor="alice")
    assert v1.parent_version is None and v1.sha256 == hashlib.sha256(b'{"kind": "rule"}').hexdigest()
    models.set_alias("rhythm", CHAMPION, "1.0.0", actor="alice", reason="first")
    v2 = models.publish(_artifact(tmp_path, "m2.json", b'{"kind": "rule", "threshold_bpm": 105}'), signer=signer,
                        name="rhythm", version="1.1.0", task="rhythm", input_spec={}, min_gateway_version="0.1.0",
                        metrics={"f1": 0.83})
    assert v2.parent_version == "1.0.0"  # lineage defaults to the champion
    with pytest.raises(RegistryError, match="not newer"):
        models.publish(_artifact(tmp_path, "m0.json", b"x"), signer=signer, name="rhythm", version="1.0.5",
                       task="rhythm", input_spec={}, min_gateway_version="0.1.0")
    assert [v.version for v in models.versions("rhythm")] == ["1.0.0", "1.1.0"]
    assert [v.version for v in models.lineage("rhythm", "1.1.0")] == ["1.1.0", "1.0.0"]
    got = models.get("rhythm", "1.0.0")
    assert got is not None and got.metrics == {"f1": 0.80} and got.model_card == "# rhythm v1"
    assert got.code_version == "git:abc" and got.created_by == "alice" and got.key_id == signer.key_id
    # the stored manifest is exactly what a gateway verifies
    m = verify_manifest(got.manifest, TrustedKeys.of([signer.public_key]))
    assert m.body["training_data_hash"] == "ab" * 32 and m.body["code_version"] == "git:abc"
    data, total = models.read_chunk("rhythm", "1.1.0", 5, 10)
    assert total == v2.size_bytes and data == b'{"kind": "rule", "threshold_bpm": 105}'[5:15]
    models.set_alias("rhythm", CHALLENGER, "1.1.0")
    models.set_alias("rhythm", CHALLENGER, None)
    assert models.aliases("rhythm") == {CHAMPION: "1.0.0"}
    assert [(e.alias, e.version, e.previous_version) for e in models.alias_history("rhythm")] == [
        (CHAMPION, "1.0.0", None), (CHALLENGER, "1.1.0", None), (CHALLENGER, None, "1.1.0")]
    with pytest.raises(RegistryError):
        models.set_alias("rhythm", CHAMPION, "9.9.9")


def _report(gw: str, state: str, active: str, **kw: object) -> GatewayReport:
    return GatewayReport(gw, "rhythm", state, active, **kw)  # type: ignore[arg-type]


def test_rollout_lifecycle_is_persisted(engine: Engine, tmp_path: Path) -> None:
    clock = Clock()
    signer = Signer(Ed25519PrivateKey.generate())
    fleet = FleetRegistry(engine)
    models = ModelRegistry(engine, FilesystemArtifactStore(tmp_path / "store"))
    c = RolloutController(engine, models, fleet, signer, clock_ns=clock)
    fleet.add_site("ward-a")
    for i in range(5):
        fleet.add_gateway(f"gw-{i}", "ward-a")
    for v in ("1.0.0", "1.1.0", "1.2.0"):
        models.publish(_artifact(tmp_path, f"{v}.json", v.encode()), signer=signer, name="rhythm", version=v,
                       task="rhythm", input_spec={}, min_gateway_version="0.1.0")
    plan = RolloutPlan(sites=("ward-a",), canary_share=0.2, min_devices_per_stage=2, bake_s=10,
                       gates=Gates(min_windows=5))
    with pytest.raises(RolloutError, match="no champion"):
        c.start("rhythm", "1.1.0", plan)
    models.set_alias("rhythm", CHAMPION, "1.0.0")
    # a gateway with nothing installs the champion
    a = c.assignment("gw-0", "rhythm", "", False)
    assert (a.action, a.version, a.rollout_id) == ("activate", "1.0.0", "")
    rid = c.start("rhythm", "1.1.0", plan, actor="bob")
    with pytest.raises(RolloutError, match="already has a rollout"):
        c.start("rhythm", "1.2.0", plan)
    st = c.status(rid)
    assert st.sizes == (2, 4, 5) and st.state == "running" and models.alias("rhythm", CHALLENGER) == "1.1.0"
    canary = [m.gateway_id for m, _ in st.members if m.stage == 0]
    others = [m.gateway_id for m, _ in st.members if m.stage > 0]
    assert c.assignment(canary[0], "rhythm", "1.0.0", False).action == "shadow"
    assert c.assignment(others[0], "rhythm", "1.0.0", False).action == "none"

    c.pause(rid, actor="bob", reason="night shift")
    with pytest.raises(RolloutError):
        c.pause(rid)
    c.resume(rid, actor="bob")
    for gw in canary:
        c.report(_report(gw, "shadow", "1.0.0", candidate_version="1.1.0", windows=50, agreements=49, shadow_s=11,
                         candidate_p99_ms=3.0, live_p99_ms=3.0))
    assert c.status(rid).stage == 0  # bake time not over
    clock.ns += 11 * 10**9
    assert c.tick()[rid].action == "advance"
    assert c.status(rid).stage == 1
    # canary switches, except while its patient has a high-priority alarm
    assert c.assignment(canary[0], "rhythm", "1.0.0", True).action == "shadow"
    assert c.assignment(canary[0], "rhythm", "1.0.0", False).action == "activate"
    c.report(_report(canary[0], "idle", "1.1.0", rollout_id=rid))
    assert dict((m.gateway_id, m.status) for m, _ in c.status(rid).members)[canary[0]] == "active"
    # a stage-2 gateway crashes the candidate: abort, and the switched canary is told to roll back
    c.report(_report(others[0], "shadow", "1.0.0", candidate_version="1.1.0", crashes=1, windows=3))
    st = c.status(rid)
    assert st.state == "aborted" and "crashes" in st.decision
    assert models.alias("rhythm", CHALLENGER) is None and models.alias("rhythm", CHAMPION) == "1.0.0"
    back = c.assignment(canary[0], "rhythm", "1.1.0", False)
    assert (back.action, back.version) == ("rollback", "1.0.0")
    order = verify_rollback_order(back.rollback_order, TrustedKeys.of([signer.public_key]), clock.ns)
    assert (order.from_version, order.to_version, order.rollout_id) == ("1.1.0", "1.0.0", rid)
    assert c.assignment(canary[0], "rhythm", "1.1.0", False).rollback_order == back.rollback_order  # stable bytes
    assert c.assignment(canary[1], "rhythm", "1.0.0", False).action == "none"
    c.report(_report(canary[0], "idle", "1.0.0"))
    kinds = [e.kind for e in c.history(rid)]
    assert kinds[:4] == ["started", "paused", "resumed", "gateway"] and "stage_passed" in kinds
    assert "aborted" in kinds and kinds[-1] == "gateway"
    aborted = next(e for e in c.history(rid) if e.kind == "aborted")
    assert aborted.actor == "controller" and canary[0] in aborted.detail["switched"]
    assert dict((m.gateway_id, m.status) for m, _ in c.status(rid).members)[canary[0]] == "rolled_back"
    assert [s.rollout_id for s in c.list_rollouts("rhythm")] == [rid]
    json.dumps(c.status(rid).to_dict())  # serialisable for the dashboard

    # a second rollout, promoted by the operator
    rid2 = c.start("rhythm", "1.2.0", plan)
    c.promote(rid2, actor="carol")
    assert c.status(rid2).state == "completed" and models.alias("rhythm", CHAMPION) == "1.2.0"
    assert c.assignment(others[1], "rhythm", "1.0.0", False).action == "activate"
    with pytest.raises(RolloutError):
        c.abort(rid2)
