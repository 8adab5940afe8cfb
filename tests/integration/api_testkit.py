"""Shared pieces of the API tests: a database seeded with two sites (ward-3, ward-4), users of
every role, vitals, alarms, feature windows, risk reports, gateways and a model; and an app on it."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from cardiogate.cloud import history
from cardiogate.cloud.api.app import create_app
from cardiogate.cloud.api.live import Hub, LocalHub
from cardiogate.cloud.api.settings import ApiAuthSettings, ApiSettings
from cardiogate.cloud.api.users import add_user
from cardiogate.cloud.db import alarms_current, latest_vitals
from cardiogate.cloud.registry.fleet import FleetRegistry, Heartbeat
from cardiogate.cloud.registry.migrate import open_database
from cardiogate.cloud.registry.schema import model_versions
from cardiogate.cloud.store import Delivered, apply
from cardiogate.proto.v1 import features_pb2
from cardiogate.proto.v1 import telemetry_pb2 as pb
from tests.integration.cloud_testkit import postgres_schema

PASSWORD = "correct horse battery"
T0 = 1_767_225_600 * 10**9  # 2026-01-01T00:00:00Z
USERS = {  # username -> (role, sites)
    "nurse3": ("nurse", ["ward-3"]),
    "nurse4": ("nurse", ["ward-4"]),
    "clin3": ("clinician", ["ward-3"]),
    "oper": ("operator", []),
    "admin": ("admin", []),
}


@dataclass
class Seeded:
    engine: Engine
    p3: str  # a ward-3 patient
    p4: str  # a ward-4 patient


@contextlib.contextmanager
def database(kind: str, tmp_path: Path) -> Iterator[Engine]:
    if kind == "sqlite":
        engine = open_database(f"sqlite:///{tmp_path / 'cloud.sqlite3'}")
        yield engine
        engine.dispose()
    else:
        with postgres_schema() as url:
            engine = open_database(url)
            yield engine
            engine.dispose()


def report(patient: str, start_ns: int, score: float, revision: int = 0,
           width_s: int = 300) -> features_pb2.RiskReport:
    return features_pb2.RiskReport(
        schema_version=1, patient=patient, width_s=width_s, window_start_device_time_ns=start_ns,
        window_end_device_time_ns=start_ns + width_s * 10**9, score=score, confidence=0.8,
        factors=[features_pb2.RiskFactor(name="news2", value=5, contribution=0.6, description="NEWS2 subtotal 5"),
                 features_pb2.RiskFactor(name="af_burden", value=0.3, contribution=0.4, description="30% AF")],
        recommendations=["review within 1 hour"], model_name="risk-baseline", model_version="1.0.0", baseline=True,
        news2=5, level="medium", computed_time_ns=start_ns + 301 * 10**9, revision=revision)


def window(patient: str, start_ns: int, hr: float, width_s: int = 300,
           **extra: Any) -> features_pb2.FeatureWindow:
    return features_pb2.FeatureWindow(schema_version=1, patient=patient, width_s=width_s,
                                      start_device_time_ns=start_ns, end_device_time_ns=start_ns + width_s * 10**9,
                                      computed_time_ns=start_ns + 1, hr_mean=hr, hr_min=hr - 5, hr_max=hr + 5,
                                      hr_count=10, spo2_min=94.0, record_count=10, **extra)


def status_records(patient: str) -> list[pb.Record]:
    """Two wearables: the strap linked (a stale drop arrives after it) at 40 % battery, the watch gone at 15 %;
    the ECG's rhythm and quality. The stale event, older than what the row holds, must change nothing."""
    def event(device: str, seq: int, t: int, **body: Any) -> pb.Record:
        return pb.Record(stream_id=f"{device}/events", sequence=seq, patient=patient, device_id=device,
                         event=pb.DeviceEvent(device_time_ns=t, receive_time_ns=t, **body))

    ecg = pb.VitalsRecord(device_time_ns=T0 + 5, receive_time_ns=T0 + 5, source="ecg",
                          rhythm="A", rhythm_confidence=0.9, signal_quality=0.82)
    return [event("strap", 1, T0 + 2, link=pb.LinkChange(connected=True)),
            event("strap", 2, T0 + 1, link=pb.LinkChange(connected=False, reason="stale")),
            event("strap", 3, T0 + 3, health=pb.DeviceHealth(battery_percent=40)),
            event("watch", 1, T0 + 3, link=pb.LinkChange(connected=False, reason="out of range")),
            event("watch", 2, T0 + 4, health=pb.DeviceHealth(battery_percent=15)),
            pb.Record(stream_id="strap/vitals", sequence=1, patient=patient, device_id="strap", vitals=ecg)]


def seed(engine: Engine) -> Seeded:
    tag = uuid.uuid4().hex[:8]  # unique pseudonyms: Redis channels are shared with other test runs
    p3, p4 = f"pt3-{tag}", f"pt4-{tag}"
    fleet = FleetRegistry(engine)
    fleet.add_site("ward-3", "Ward 3")
    fleet.add_site("ward-4", "Ward 4")
    fleet.add_patient(p3, "ward-3")
    fleet.add_patient(p4, "ward-4")
    fleet.add_gateway("gw-3", "ward-3")
    fleet.add_gateway("gw-4", "ward-4")
    fleet.assign(p3, "gw-3")
    fleet.assign(p4, "gw-4")
    fleet.record_heartbeat(Heartbeat("gw-3", T0, "0.3.1", {"rhythm": "1.0.0"}, "ok", outbox_records=7,
                                     received_ns=T0 + 1))
    for name, (role, sites) in USERS.items():
        add_user(engine, name, PASSWORD, role, sites)
    with engine.begin() as conn:
        for patient, hr in ((p3, 88.0), (p4, 70.0)):
            conn.execute(latest_vitals.insert().values(patient=patient, vital="hr", value=hr, device_time_ns=T0,
                                                       receive_time_ns=T0, device_id="w1", gateway="gw", stream_id="s",
                                                       sequence=1))
            conn.execute(alarms_current.insert().values(
                alarm_id=f"a-{patient}", patient=patient, device_id="w1", gateway="gw", condition="tachycardia",
                priority="high", state="raised", value=131.0, limit=130.0, raised_time_ns=T0, cleared_time_ns=None,
                updated_time_ns=T0))
            conn.execute(alarms_current.insert().values(  # over: in the history, never among the active alarms
                alarm_id=f"old-{patient}", patient=patient, device_id="w1", gateway="gw", condition="spo2_low",
                priority="medium", state="cleared", value=88.0, limit=90.0, raised_time_ns=T0 - 10**9,
                cleared_time_ns=T0 - 1, updated_time_ns=T0 - 1))
        for record in status_records(p3):  # through the consumers' own store, as Kafka would deliver them
            apply(conn, Delivered("gw-3", record))
        minute = [window(p3, T0 + i * 60 * 10**9, 80.0, width_s=60, af_burden=0.1 * i) for i in range(3)]
        trend = [report(p3, T0 + i * 60 * 10**9, score, width_s=60) for i, score in enumerate((0.3, 0.4, 0.5))]
        history.save(conn, [window(p3, T0, 80.0), window(p3, T0 + 300 * 10**9, 90.0), *minute],
                     [report(p3, T0, 0.2), report(p3, T0 + 300 * 10**9, 0.55, revision=1), report(p4, T0, 0.1),
                      *trend, report(p3, T0 + 60 * 10**9, 0.45, revision=1, width_s=60)])
        conn.execute(model_versions.insert().values(
            name="rhythm", version="1.0.0", task="rhythm", sha256="ab" * 32, size_bytes=10, artifact_key="k",
            manifest="{}", key_id="k1", metrics=json.dumps({"f1": 0.83}), model_card="# rhythm", created_ns=T0))
    return Seeded(engine, p3, p4)


def api_settings(tmp_path: Path, **extra: Any) -> ApiSettings:
    return ApiSettings(auth=ApiAuthSettings(issuer_key=tmp_path / "issuer.key"), **extra)


@contextlib.contextmanager
def client_for(engine: Engine, settings: ApiSettings, hub: Hub | None = None, *,
               redis: bool = False) -> Iterator[TestClient]:
    """A started app; with ``redis`` the app finds its hub itself (Redis at settings.redis_url)."""
    app = create_app(settings, engine, hub=None if redis else hub or LocalHub())
    with TestClient(app) as client:
        yield client


def login(client: TestClient, username: str, password: str = PASSWORD) -> str:
    response = client.post("/auth/token", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def gql(client: TestClient, token: str | None, query: str, variables: dict[str, Any] | None = None) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.post("/graphql", json={"query": query, "variables": variables or {}}, headers=headers)
