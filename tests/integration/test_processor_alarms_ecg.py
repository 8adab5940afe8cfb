"""The processor's alarm and ECG paths on real brokers (tansu, PostgreSQL, Redis when it answers).

A raised high-priority alarm reaches the risk channel as a provisional report within 2 s of
being produced, assessed on the open window. ECG blocks land in ``ecg_blocks`` exactly as sent,
``ecgStrip`` serves them back sample for sample, a replay adds no rows, and blocks past the
retention period are pruned. A burst of ECG blocks measures what the processor keeps up with.
"""

from __future__ import annotations

import random
import struct
import time
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition
from sqlalchemy import Engine, func, select

from cardiogate.cloud.api.tables import api_audit
from cardiogate.cloud.api.users import add_user
from cardiogate.cloud.history import ecg_blocks
from cardiogate.cloud.kafka_bridge import ensure_topics
from cardiogate.cloud.processor import ECG_PRUNED, ECG_STORED
from cardiogate.cloud.registry.fleet import FleetRegistry
from cardiogate.cloud.registry.migrate import open_database
from cardiogate.cloud.settings import CloudSettings
from cardiogate.proto.v1 import features_pb2
from cardiogate.proto.v1 import telemetry_pb2 as pb
from tests.integration.api_testkit import PASSWORD, api_settings, client_for, gql, login
from tests.integration.test_processor import Running, brokers, produce, settings_for, vitals, wait_for

pytestmark = [pytest.mark.api, pytest.mark.timeout(300)]
__all__ = ["brokers"]  # the fixture

S = 1_000_000_000
MS = 1_000_000
RATE = 250


def ecg_block(patient: str, seq: int, t: int, values: list[int], encoding: int = pb.SAMPLE_ENCODING_INT16_LE,
              scale: float = 1.0) -> pb.Record:
    fmt = "<%dh" if encoding == pb.SAMPLE_ENCODING_INT16_LE else "<%di"
    block = pb.SampleBlock(first_sample_device_time_ns=t, receive_time_ns=t, sample_rate_hz=RATE, scale=scale,
                           unit="uV", encoding=encoding, samples=struct.pack(fmt % len(values), *values),
                           sample_count=len(values))
    return pb.Record(stream_id=f"{patient}-h10/ecg", sequence=seq, device_id=f"{patient}-h10", patient=patient,
                     kind=pb.STREAM_KIND_ECG, samples=block)


def tachycardia(patient: str, seq: int, t: int) -> pb.Record:
    a = pb.Alarm(alarm_id=f"{patient}-tachy-{seq}", condition="tachycardia", priority=pb.ALARM_PRIORITY_HIGH,
                 state=pb.ALARM_STATE_RAISED, value=150.0, limit=130.0, category="physiological",
                 trigger_sample_device_time_ns=t, decision_time_ns=t)
    return pb.Record(stream_id=f"{patient}-hrm/alarms", sequence=seq, device_id=f"{patient}-hrm", patient=patient,
                     kind=pb.STREAM_KIND_ALARMS, alarm=a)


def rows(engine: Engine, patient: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(ecg_blocks)
                                .where(ecg_blocks.c.patient == patient)).scalar_one())


def stored(counter: Any) -> float:
    return float(counter._value.get())


def risk_consumer(bootstrap: str) -> Consumer:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"t-{time.time_ns()}",
                         "enable.auto.commit": False, "auto.offset.reset": "latest",
                         "isolation.level": "read_committed"})
    meta = consumer.list_topics(timeout=10)
    consumer.assign([TopicPartition("risk-events", p, -1) for p in meta.topics["risk-events"].partitions])
    consumer.poll(0.5)
    return consumer


def test_provisional_report_ecg_strip_replay_and_retention(brokers: tuple[str, str], tmp_path: Path) -> None:
    bootstrap, url = brokers
    base = settings_for(bootstrap, url, tmp_path / "state-1", "cardiogate-processor")
    settings = base.model_copy(update={"processor": base.processor.model_copy(
        update={"ecg_retention_s": 7 * 86400.0, "ecg_prune_interval_s": 1.0})})
    ensure_topics(settings.kafka)
    now = time.time_ns()
    t1 = now - now % (60 * S) - 600 * S  # ten minutes ago, on a minute
    rng = random.Random(11)
    produced: dict[int, list[int]] = {}  # block start -> values
    records: list[pb.Record] = []
    for i in range(60):
        t = t1 + i * S
        values = [rng.randint(-32768, 32767) for _ in range(RATE)]
        produced[t] = values
        records.append(ecg_block("pat-e", i, t, values))
        if i % 10 == 0:
            records.append(vitals("pat-e", i // 10, t + 500 * MS, 120.0))
    old = now - 8 * 86400 * S  # past the retention period
    records += [ecg_block("pat-old", i, old + i * S, [i] * RATE) for i in range(3)]
    stored_before, pruned_before = stored(ECG_STORED), stored(ECG_PRUNED)
    produce(bootstrap, settings.kafka, records)

    engine = open_database(url)
    redis_client: Any = None
    if settings.processor.redis_url:
        import redis

        redis_client = redis.Redis.from_url(settings.processor.redis_url)
    with Running(settings):
        wait_for(lambda: rows(engine, "pat-e") == 60, 60, "60 ECG blocks in ecg_blocks")
        wait_for(lambda: stored(ECG_PRUNED) - pruned_before == 3, 20, "the three old blocks pruned")
        assert rows(engine, "pat-old") == 0 and stored(ECG_STORED) - stored_before == 63

        # the alarm: straight to the risk channel, not after its window closes
        pubsub = None
        if redis_client is not None:
            pubsub = redis_client.pubsub()
            pubsub.subscribe("cardiogate:risk:pat-e")
            pubsub.get_message(timeout=1.0)
        consumer = risk_consumer(bootstrap)
        produced_at = time.monotonic()
        produce(bootstrap, settings.kafka, [tachycardia("pat-e", 1, t1 + 45 * S)])
        redis_latency = None
        if pubsub is not None:
            message = None
            while message is None and time.monotonic() - produced_at < 10:
                message = pubsub.get_message(timeout=0.05)
                if message is not None and message["type"] != "message":
                    message = None
            assert message is not None, "no provisional report on Redis"
            redis_latency = time.monotonic() - produced_at
            report = features_pb2.RiskReport.FromString(message["data"])
            pubsub.close()
        kafka_report = None
        while kafka_report is None and time.monotonic() - produced_at < 10:
            msg = consumer.poll(0.05)
            if msg is not None and not msg.error():
                kafka_report = features_pb2.RiskReport.FromString(msg.value())
        kafka_latency = time.monotonic() - produced_at
        consumer.close()
    print(f"provisional report: redis {redis_latency} s, risk-events {kafka_latency:.3f} s after produce")
    assert kafka_report is not None and kafka_report.provisional
    if redis_latency is not None:
        assert redis_latency < 2.0, redis_latency
        assert report == kafka_report
    else:
        assert kafka_latency < 2.0 + settings.processor.commit_interval_s, kafka_latency
    r = kafka_report
    assert (r.patient, r.trigger, r.width_s, r.window_start_device_time_ns) == (
        "pat-e", "alarm:tachycardia:pat-e-tachy-1", 0, t1)
    assert r.level in ("medium", "high") and r.score >= 0.5
    # assessed on the open minute: its vitals (pulse 120 -> NEWS2 2) and the alarm itself
    assert r.news2 == 2 and any(f.name == "alarms" for f in r.factors)
    from cardiogate.cloud.history import risk_reports

    with engine.connect() as conn:
        widths = conn.execute(select(risk_reports.c.width_s).where(risk_reports.c.patient == "pat-e")).scalars()
        assert sorted(widths) == [0]  # the provisional row; the window itself has not closed

    # ecgStrip returns exactly what was produced, trimmed to the range; a gap past the data
    fleet = FleetRegistry(engine)
    fleet.add_site("ward-3", "Ward 3")
    fleet.add_site("ward-4", "Ward 4")
    fleet.add_patient("pat-e", "ward-3")
    add_user(engine, "nurse3", PASSWORD, "nurse", ["ward-3"])
    add_user(engine, "nurse4", PASSWORD, "nurse", ["ward-4"])
    start, end = t1 + 10 * S + 500 * MS, t1 + 20 * S + 500 * MS
    expected = [v for t in sorted(produced) for i, v in enumerate(produced[t]) if start <= t + i * 4 * MS < end]
    query = """query($p: ID!, $f: DateTime!, $t: DateTime!) { ecgStrip(userId: $p, from: $f, to: $t) {
               lead sampleRateHz unit start samples gaps { start end afterSample missingSamples } } }"""

    def iso(ns: int) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // S)) + f".{ns % S // 1000:06d}Z"

    with client_for(engine, api_settings(tmp_path)) as client:
        token = login(client, "nurse3")
        body = gql(client, token, query, {"p": "pat-e", "f": iso(start), "t": iso(end)}).json()
        strip = body["data"]["ecgStrip"]
        assert strip["samples"] == [float(v) for v in expected] and len(expected) == 2500
        assert (strip["lead"], strip["sampleRateHz"], strip["unit"], strip["gaps"]) == ("pat-e-h10", 250.0, "uV", [])
        tail = gql(client, token, query, {"p": "pat-e", "f": iso(t1 + 59 * S), "t": iso(t1 + 61 * S)}).json()
        gaps = tail["data"]["ecgStrip"]["gaps"]
        assert len(tail["data"]["ecgStrip"]["samples"]) == 250 and [g["missingSamples"] for g in gaps] == [250]
        too_long = gql(client, token, query, {"p": "pat-e", "f": iso(t1), "t": iso(t1 + 301 * S)}).json()
        assert too_long["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
        other = gql(client, login(client, "nurse4"), query, {"p": "pat-e", "f": iso(start), "t": iso(end)}).json()
        assert other["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    with engine.connect() as conn:
        audit = [(a.username, a.action, a.patient) for a in conn.execute(select(api_audit).order_by(api_audit.c.id))]
    assert audit == [("nurse3", "ecgStrip", "pat-e")] * 2

    # a replay from scratch (new group, empty state) writes the blocks again: no new rows
    again = settings_for(bootstrap, url, tmp_path / "state-2", "cardiogate-processor-replay")
    replay_before = stored(ECG_STORED)
    with Running(again):
        wait_for(lambda: stored(ECG_STORED) - replay_before >= 63, 60, "the replayed blocks")
    assert rows(engine, "pat-e") == 60
    engine.dispose()


def test_ecg_storage_throughput(brokers: tuple[str, str], tmp_path: Path) -> None:
    """10,000 one-second blocks of 20 patients: how fast the processor stores them (printed)."""
    bootstrap, url = brokers
    settings: CloudSettings = settings_for(bootstrap, url, tmp_path / "state", "cardiogate-processor")
    ensure_topics(settings.kafka)
    t0 = time.time_ns() - 3600 * S
    t0 -= t0 % (60 * S)
    values = list(range(RATE))
    records = [ecg_block(f"pat-{p:02d}", i, t0 + i * S, values) for i in range(500) for p in range(20)]
    produce(bootstrap, settings.kafka, records)
    engine = open_database(url)
    before = stored(ECG_STORED)
    launched = time.monotonic()
    with Running(settings):  # also timed from the first flush, without the consumer group's join
        wait_for(lambda: stored(ECG_STORED) > before, 60, "the first blocks stored")
        started, first = time.monotonic(), stored(ECG_STORED) - before
        wait_for(lambda: stored(ECG_STORED) - before >= len(records), 240, "all blocks stored")
        done = time.monotonic()
    elapsed, overall = done - started, done - launched
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(ecg_blocks)).scalar_one() == len(records)
    engine.dispose()
    rate = (len(records) - first) / elapsed
    print(f"ecg storage: {len(records)} blocks in {overall:.1f} s from start (join included); after the first "
          f"flush ({first:.0f} blocks) {len(records) - first:.0f} in {elapsed:.1f} s = {rate:.0f} blocks/s; "
          f"one patient sends 1 block/s")
    assert len(records) / overall > 100  # 100 patients in real time, with a wide margin for a shared machine
