"""``/ws/live`` on real tansu: a nurse watching her patient gets its ECG blocks (exact µV, full rate) and vitals
as they reach Kafka, nothing of another patient; a nurse of another ward and an operator are refused; the
consumer runs only while someone watches."""

from __future__ import annotations

import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Producer
from sqlalchemy import select
from starlette.websockets import WebSocketDisconnect

from cardiogate.cloud.api.app import create_app
from cardiogate.cloud.api.live import LocalHub
from cardiogate.cloud.api.live_stream import LiveTail
from cardiogate.cloud.api.tables import api_audit
from cardiogate.cloud.kafka_bridge import ensure_topics
from cardiogate.cloud.registry.migrate import open_database
from cardiogate.cloud.settings import KafkaSettings
from cardiogate.proto.v1 import telemetry_pb2 as pb
from tests.integration.api_testkit import T0, Seeded, api_settings, login, seed
from tests.integration.cloud_testkit import tansu

pytestmark = [pytest.mark.api, pytest.mark.timeout(180)]


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[str, Seeded]]:
    engine = open_database(f"sqlite:///{tmp_path / 'api.db'}")
    with tansu() as bootstrap:
        ensure_topics(KafkaSettings(bootstrap=bootstrap, partitions=2))
        yield bootstrap, seed(engine)
    engine.dispose()


def ecg_record(patient: str, seq: int, samples: list[int]) -> pb.Record:
    block = pb.SampleBlock(first_sample_device_time_ns=T0 + seq * 10**9, sample_rate_hz=250.0, scale=2.5, unit="uV",
                           encoding=pb.SAMPLE_ENCODING_INT16_LE, samples=struct.pack(f"<{len(samples)}h", *samples),
                           sample_count=len(samples))
    return pb.Record(stream_id="strap/ecg", sequence=seq, patient=patient, device_id="strap",
                     kind=pb.STREAM_KIND_ECG, samples=block)


def vitals_record(patient: str, seq: int, hr: float) -> pb.Record:
    return pb.Record(stream_id="strap/vitals", sequence=seq, patient=patient, device_id="strap",
                     kind=pb.STREAM_KIND_VITALS,
                     vitals=pb.VitalsRecord(device_time_ns=T0 + seq, heart_rate_bpm=hr, source="ecg", rhythm="N"))


def produce(bootstrap: str, records: list[tuple[str, pb.Record]]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    for topic, record in records:
        producer.produce(topic, key=record.patient.encode(), value=record.SerializeToString())
    assert producer.flush(10) == 0


def wait_for(predicate: object, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_watched_patient_streams_its_ecg_and_vitals_and_nothing_else(stack: tuple[str, Seeded]) -> None:
    from fastapi.testclient import TestClient

    bootstrap, seeded = stack
    live = LiveTail(bootstrap, ("ecg.raw", "vitals"), linger_s=0.5)
    app = create_app(api_settings(Path(str(seeded.engine.url.database)).parent), seeded.engine, hub=LocalHub(),
                     live=live)
    samples = [(i * 37) % 2000 - 1000 for i in range(125)]  # half a second at 250 Hz, both signs
    try:
        with TestClient(app) as client:
            nurse = login(client, "nurse3")
            assert not live.following()
            with client.websocket_connect(f"/ws/live?userId={seeded.p3}") as ws:
                ws.send_json({"token": nurse})
                assert ws.receive_json() == {"type": "ready", "userId": seeded.p3}
                wait_for(live.assigned.is_set)
                produce(bootstrap, [("ecg.raw", ecg_record(seeded.p4, 1, [1, 2, 3])),  # not watched: never sent
                                    ("ecg.raw", ecg_record(seeded.p3, 7, samples)),
                                    ("vitals", vitals_record(seeded.p3, 8, 131.0))])
                got = [ws.receive_json(), ws.receive_json()]
            got.sort(key=lambda m: m["type"])
            assert got[0] == {"type": "ecg", "deviceId": "strap", "lead": "strap", "sampleRateHz": 250.0,
                              "t0Ms": (T0 + 7 * 10**9) / 1e6, "unit": "uV", "samples": [s * 2.5 for s in samples]}
            assert got[1] == {"type": "vitals", "deviceId": "strap", "timeMs": (T0 + 8) / 1e6, "source": "ecg",
                              "values": {"heart_rate_bpm": 131.0}, "rhythm": "N"}
            wait_for(lambda: live.watching() == 0 and not live.following())  # the consumer stops after the linger

            for who in ("nurse4", "oper"):  # another ward's nurse; an operator sees no patient data
                with client.websocket_connect(f"/ws/live?userId={seeded.p3}") as ws:
                    ws.send_json({"token": login(client, who)})
                    assert ws.receive_json()["code"] == "FORBIDDEN"
                    with pytest.raises(WebSocketDisconnect) as closed:
                        ws.receive_json()
                    assert closed.value.code == 4403
            with client.websocket_connect(f"/ws/live?userId={seeded.p3}") as ws:
                ws.send_json({"token": nurse[:-4] + "AAAA"})  # forged signature
                assert ws.receive_json()["code"] == "UNAUTHENTICATED"
    finally:
        live.close()
    with seeded.engine.connect() as conn:
        rows = [(r.username, r.action, r.patient) for r in
                conn.execute(select(api_audit).where(api_audit.c.action == "ws/live"))]
    assert rows == [("nurse3", "ws/live", seeded.p3)]


def test_without_kafka_the_live_stream_says_it_is_not_available(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    engine = open_database(f"sqlite:///{tmp_path / 'api.db'}")
    seeded = seed(engine)
    with TestClient(create_app(api_settings(tmp_path), engine, hub=LocalHub())) as client, \
            client.websocket_connect(f"/ws/live?userId={seeded.p3}") as ws:
        assert ws.receive_json()["code"] == "NOT_AVAILABLE"
    engine.dispose()
