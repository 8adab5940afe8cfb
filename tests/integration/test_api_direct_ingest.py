"""Phone-direct ``ingestSmartwatchData`` against real tansu: a reading reaches the vitals topic
exactly as the gRPC ingest writes one (key, headers, record), a resent (device, sequence) is
written once, and refused input (bad numbers, unknown or foreign patient, wrong role, a device
assigned to someone else) writes nothing."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from cardiogate.cloud.api.access import Caller
from cardiogate.cloud.api.app import create_app
from cardiogate.cloud.api.direct_ingest import DirectIngest, Reading, Refused, vitals_record
from cardiogate.cloud.api.live import LocalHub
from cardiogate.cloud.api.tokens import Principal
from cardiogate.cloud.db import assignments
from cardiogate.cloud.dedup import SequenceLedger
from cardiogate.cloud.kafka_bridge import OutgoingRecord, ensure_topics
from cardiogate.cloud.settings import CloudSettings, IngestLimits, KafkaSettings
from cardiogate.proto.v1 import telemetry_pb2 as pb
from tests.integration.api_testkit import Seeded, api_settings, client_for, database, gql, login, seed
from tests.integration.cloud_testkit import tansu

pytestmark = [pytest.mark.api, pytest.mark.timeout(180)]

INGEST = "mutation($d: SmartwatchInput!) { ingestSmartwatchData(data: $d) }"


@dataclass
class Written:
    key: bytes
    headers: dict[str, bytes]
    record: pb.Record


@pytest.fixture(scope="module")
def kafka() -> Iterator[str]:
    with tansu() as bootstrap:
        yield bootstrap


@pytest.fixture
def seeded(tmp_path: Path) -> Iterator[Seeded]:
    with database("sqlite", tmp_path) as engine:
        yield seed(engine)


def written(bootstrap: str, topic: str, wait_s: float = 3.0) -> list[Written]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"t-{uuid.uuid4().hex}",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    try:
        meta = consumer.list_topics(topic, timeout=10)
        consumer.assign([TopicPartition(topic, p, 0) for p in meta.topics[topic].partitions])
        out: list[Written] = []
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is None or msg.error():
                continue
            headers = {k: v for k, v in (msg.headers() or []) if isinstance(v, bytes)}
            out.append(Written(msg.key() or b"", headers, pb.Record.FromString(msg.value() or b"")))
        return out
    finally:
        consumer.close()


def reading(patient: str, seq: int, **values: Any) -> dict[str, Any]:
    values.setdefault("heartRate", 72.0)
    return {"deviceId": "watch-1", "userId": patient, "sequence": seq,
            "time": datetime.now(UTC).isoformat(), **values}


def raw_gql(client: TestClient, token: str, variables: dict[str, Any]) -> Any:
    """Variables as Python's json writes NaN and Infinity (which httpx refuses to send)."""
    body = json.dumps({"query": INGEST, "variables": variables}, allow_nan=True)
    return client.post("/graphql", content=body, headers={"Authorization": f"Bearer {token}",
                                                           "Content-Type": "application/json"})


def code(response: Any) -> str:
    assert response.status_code == 200, response.text
    body = response.json()
    return str(body["errors"][0].get("extensions", {}).get("code", "INVALID")) if body.get("errors") else "ok"


def test_readings_reach_kafka_once_as_the_grpc_ingest_writes_them(kafka: str, seeded: Seeded,
                                                                   tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    cloud = CloudSettings(database_url="sqlite://", tls=False, kafka=KafkaSettings(
        bootstrap=kafka, topic_vitals=f"vitals-{tag}", topic_ecg=f"ecg-{tag}", topic_alarms=f"alarms-{tag}",
        topic_events=f"events-{tag}", partitions=1, delivery_timeout_s=30))
    ensure_topics(cloud.kafka)
    with seeded.engine.begin() as conn:
        conn.execute(assignments.insert().values(gateway_id="gw-4", patient=seeded.p4, device_id="watch-p4",
                                                 created_ns=0))
    direct = DirectIngest.from_settings(cloud, seeded.engine)
    app = create_app(api_settings(tmp_path, rate_per_s=0), seeded.engine, hub=LocalHub(), direct_ingest=direct)
    try:
        with TestClient(app) as client:
            admin, nurse = login(client, "admin"), login(client, "nurse3")
            first = reading(seeded.p3, 1, spo2=97.5, systolic=121.0, diastolic=80.0, rrIntervalsMs=[820.0, 845.5])
            assert gql(client, admin, INGEST, {"d": first}).json() == {"data": {"ingestSmartwatchData": True}}
            assert gql(client, admin, INGEST, {"d": first}).json() == {"data": {"ingestSmartwatchData": True}}
            assert code(gql(client, admin, INGEST, {"d": reading(seeded.p3, 2, heartRate=75.0)})) == "ok"
            assert code(gql(client, admin, INGEST, {"d": reading(seeded.p3, 0)})) == "ok"  # below the ledger: a resend
            old = datetime.fromtimestamp(time.time() - 3 * 86400, UTC).isoformat()
            refused = {
                "nan": raw_gql(client, admin, {"d": reading(seeded.p3, 3, heartRate=float("nan"))}),
                "inf": raw_gql(client, admin, {"d": reading(seeded.p3, 3, spo2=float("inf"))}),
                "hr": gql(client, admin, INGEST, {"d": reading(seeded.p3, 3, heartRate=500.0)}),
                "spo2": gql(client, admin, INGEST, {"d": reading(seeded.p3, 3, spo2=101.0)}),
                "bp": gql(client, admin, INGEST, {"d": reading(seeded.p3, 3, systolic=80.0, diastolic=90.0)}),
                "rr": gql(client, admin, INGEST, {"d": reading(seeded.p3, 3, rrIntervalsMs=[50.0])}),
                "skew": gql(client, admin, INGEST, {"d": reading(seeded.p3, 3) | {"time": old}}),
                "steps": gql(client, admin, INGEST, {"d": reading(seeded.p3, 3, steps=100)}),
                "empty": gql(client, admin, INGEST, {"d": reading(seeded.p3, 3, heartRate=None)}),
                "device": gql(client, admin, INGEST, {"d": reading(seeded.p3, 3) | {"deviceId": "bad/id"}}),
                "unknown": gql(client, admin, INGEST, {"d": reading("pt-nobody", 3)}),
                "assigned elsewhere": gql(client, admin, INGEST, {"d": reading(seeded.p3, 3) |
                                                                   {"deviceId": "watch-p4"}}),
                "nurse": gql(client, nurse, INGEST, {"d": reading(seeded.p3, 3)}),
            }
            got = {what: code(r) for what, r in refused.items()}
            assert got == {"nan": "INVALID", "inf": "INVALID", "hr": "BAD_USER_INPUT", "spo2": "BAD_USER_INPUT",
                           "bp": "BAD_USER_INPUT", "rr": "BAD_USER_INPUT", "skew": "BAD_USER_INPUT",
                           "steps": "BAD_USER_INPUT", "empty": "BAD_USER_INPUT", "device": "BAD_USER_INPUT",
                           "unknown": "FORBIDDEN", "assigned elsewhere": "FORBIDDEN", "nurse": "FORBIDDEN"}
            assert "out of range" in refused["hr"].json()["errors"][0]["message"]
    finally:
        direct.close()
    records = written(kafka, cloud.kafka.topic_vitals)
    assert [(w.key, w.headers, w.record.sequence) for w in records] == [
        (seeded.p3.encode(), {"gateway": b"direct:ward-3", "stream": b"watch-1/vitals", "seq": b"1"}, 1),
        (seeded.p3.encode(), {"gateway": b"direct:ward-3", "stream": b"watch-1/vitals", "seq": b"2"}, 2)]
    r = records[0].record
    assert (r.kind, r.patient, r.device_id, r.stream_id) == (pb.STREAM_KIND_VITALS, seeded.p3, "watch-1",
                                                            "watch-1/vitals")
    v = r.vitals
    assert (v.heart_rate_bpm, v.spo2_percent, v.systolic_mmhg, v.diastolic_mmhg, list(v.rr_intervals_ms),
            v.source) == (72.0, 97.5, 121.0, 80.0, [820.0, 845.5], "phone")
    assert SequenceLedger(seeded.engine, 5.0).next_expected("direct:ward-3", "watch-1/vitals") == 3


def test_without_kafka_the_mutation_is_not_available(seeded: Seeded, tmp_path: Path) -> None:
    with client_for(seeded.engine, api_settings(tmp_path)) as client:
        response = gql(client, login(client, "admin"), INGEST, {"d": reading(seeded.p3, 1)})
    assert code(response) == "NOT_AVAILABLE"


class FlakyProducer:
    """Fails the first ``failures`` sends, then delivers into ``sent``."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.sent: list[OutgoingRecord] = []

    async def send(self, records: Sequence[OutgoingRecord]) -> list[Exception | None]:
        if self.failures:
            self.failures -= 1
            return [RuntimeError("broker down")] * len(records)
        self.sent.extend(records)
        return [None] * len(records)


def _direct(engine: Engine, producer: FlakyProducer) -> DirectIngest:
    return DirectIngest(engine, producer, KafkaSettings(), IngestLimits(), claim_ttl_s=1.0)


async def test_a_failed_kafka_write_is_not_taken_as_written(seeded: Seeded) -> None:
    producer = FlakyProducer(failures=1)
    direct = _direct(seeded.engine, producer)
    admin = Caller(Principal("admin", "admin", frozenset()))
    one = Reading("watch-9", seeded.p4, 5, time.time_ns(), heart_rate=60.0)
    with pytest.raises(Refused) as refused:
        await direct.ingest(admin, one)
    assert refused.value.code == "UNAVAILABLE" and producer.sent == []
    assert await direct.ingest(admin, one) and await direct.ingest(admin, one)
    assert [o.headers for o in producer.sent] == [[("gateway", b"direct:ward-4"), ("stream", b"watch-9/vitals"),
                                                   ("seq", b"5")]]
    assert producer.sent[0].topic == "vitals"


async def test_a_site_scoped_writer_is_held_to_its_sites(seeded: Seeded) -> None:
    """Only admins write today (all sites); the scope check stands ready for site-scoped writers."""
    direct = _direct(seeded.engine, FlakyProducer(0))
    record = vitals_record(Reading("watch-9", seeded.p4, 0, time.time_ns(), heart_rate=60.0), IngestLimits())
    ward3 = Caller(Principal("c", "clinician", frozenset({"ward-3"})))
    with pytest.raises(Refused, match="no access"):
        await asyncio.to_thread(direct.authorize, ward3, record)
    assert direct.authorize(Caller(Principal("c", "clinician", frozenset({"ward-4"}))), record) == "direct:ward-4"
