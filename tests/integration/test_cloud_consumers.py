"""Kafka consumers into the dashboard tables, on PostgreSQL and on SQLite, against real tansu:
latest vitals, alarm history and current state, gaps; idempotent by (gateway, stream, sequence)
and resuming from the offsets stored with the rows."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from cardiogate.cloud.consumers import StoreConsumer, run_consumers
from cardiogate.cloud.db import alarm_events, alarms_current, consumer_offsets, gaps, latest_vitals, make_engine
from cardiogate.cloud.kafka_bridge import KafkaBridge, OutgoingRecord, ensure_topics
from cardiogate.cloud.settings import CloudSettings, KafkaSettings
from cardiogate.proto.v1 import telemetry_pb2 as pb
from tests.integration.cloud_testkit import alarm, eventually, gap_event, postgres_schema, tansu, vitals

pytestmark = pytest.mark.timeout(120)
DEV = "C0:00:00:00:04:01"
S = 1_000_000_000


@pytest.fixture(scope="module")
def kafka() -> Iterator[str]:
    with tansu() as bootstrap:
        yield bootstrap


@pytest.fixture(params=["postgresql", "sqlite"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'cloud.sqlite3'}"
    else:
        with postgres_schema() as url:
            yield url


def settings_for(kafka: str, db_url: str) -> CloudSettings:
    tag = uuid.uuid4().hex[:8]  # topics of their own, so tests sharing the broker do not see each other
    return CloudSettings(database_url=db_url, tls=False, kafka=KafkaSettings(
        bootstrap=kafka, topic_ecg=f"ecg-{tag}", topic_vitals=f"vitals-{tag}", topic_alarms=f"alarms-{tag}",
        topic_events=f"events-{tag}", partitions=2))


async def produce(settings: CloudSettings, items: list[tuple[str, pb.Record]], garbage: int = 0) -> None:
    k = settings.kafka
    topic = {pb.STREAM_KIND_VITALS: k.topic_vitals, pb.STREAM_KIND_ALARMS: k.topic_alarms,
             pb.STREAM_KIND_EVENTS: k.topic_events}
    out = [OutgoingRecord(topic[r.kind], r.patient.encode(), r.SerializeToString(),
                          [("gateway", gw.encode()), ("stream", r.stream_id.encode()),
                           ("seq", str(r.sequence).encode())]) for gw, r in items]
    out += [OutgoingRecord(k.topic_alarms, b"x", b"\xff\x00 not a record", []) for _ in range(garbage)]
    await asyncio.to_thread(ensure_topics, k)
    bridge = KafkaBridge(k)
    try:
        assert await bridge.send(out) == [None] * len(out)
    finally:
        await asyncio.to_thread(bridge.close)


def story(t0: int) -> list[tuple[str, pb.Record]]:
    """One patient's hour, as the ingest writes it, with duplicates a crashed ingest could leave."""
    raised = alarm(0, "pt-0401", DEV, "pt-0401:tachy:1", pb.ALARM_STATE_RAISED, t=t0 + 10 * S)
    cleared = alarm(1, "pt-0401", DEV, "pt-0401:tachy:1", pb.ALARM_STATE_CLEARED, t=t0 + 40 * S)
    again = alarm(2, "pt-0401", DEV, "pt-0401:tachy:2", pb.ALARM_STATE_RAISED, t=t0 + 60 * S)
    gap = gap_event(0, "pt-0401", DEV, 100, 120)
    return [("gw-c", vitals(0, "pt-0401", DEV, hr=70.0, spo2=97.0, t=t0)),
            ("gw-c", vitals(1, "pt-0401", DEV, hr=80.0, t=t0 + 30 * S)),
            ("gw-c", raised), ("gw-c", cleared), ("gw-c", raised), ("gw-c", again),
            ("gw-c", gap), ("gw-c", gap),
            ("gw-old", vitals(7, "pt-0401", "C0:00:00:00:04:02", hr=55.0, t=t0 + 20 * S)),  # late, older
            ("gw-c", vitals(0, "pt-0402", "C0:00:00:00:04:03", hr=64.0, t=t0))]


async def test_consumers_fill_the_dashboard_tables_once(kafka: str, db_url: str) -> None:
    settings = settings_for(kafka, db_url)
    t0 = time.time_ns() - 3600 * S
    await produce(settings, story(t0), garbage=1)
    stop = asyncio.Event()
    task = asyncio.create_task(run_consumers(settings, stop))
    engine = make_engine(db_url)
    try:
        def offsets_total() -> int:
            with engine.connect() as conn:
                return sum(conn.execute(select(consumer_offsets.c.next_offset)).scalars())

        await eventually(lambda: offsets_total() == 11, 30.0, "all 11 messages consumed")
    finally:
        stop.set()
        await task
    with engine.connect() as conn:
        latest = {(p, v): (val, t) for p, v, val, t in conn.execute(
            select(latest_vitals.c.patient, latest_vitals.c.vital, latest_vitals.c.value,
                   latest_vitals.c.device_time_ns))}
        history = conn.execute(select(alarm_events.c.alarm_id, alarm_events.c.state)
                               .order_by(alarm_events.c.decision_time_ns)).all()
        current = dict(conn.execute(select(alarms_current.c.alarm_id, alarms_current.c.state)).all())
        cleared = conn.execute(select(alarms_current.c.raised_time_ns, alarms_current.c.cleared_time_ns)
                               .where(alarms_current.c.alarm_id == "pt-0401:tachy:1")).one()
        gap_rows = conn.execute(select(gaps.c.patient, gaps.c.cause, gaps.c.device_sequence_first,
                                       gaps.c.device_sequence_last, gaps.c.missing_samples)).all()
    assert latest == {("pt-0401", "heart_rate_bpm"): (80.0, t0 + 30 * S),  # not the late, older 55
                      ("pt-0401", "spo2_percent"): (97.0, t0),               # each vital keeps its own time
                      ("pt-0402", "heart_rate_bpm"): (64.0, t0)}
    assert [tuple(r) for r in history] == [("pt-0401:tachy:1", "raised"), ("pt-0401:tachy:1", "cleared"),
                                           ("pt-0401:tachy:2", "raised")]
    assert current == {"pt-0401:tachy:1": "cleared", "pt-0401:tachy:2": "raised"}
    assert tuple(cleared) == (t0 + 10 * S, t0 + 40 * S)
    assert [tuple(r) for r in gap_rows] == [("pt-0401", "link_loss", 100, 120, 250)]
    # A restarted consumer resumes after the stored offsets; replaying from offset 0 changes nothing.
    again = StoreConsumer(settings, engine)
    try:
        again.refresh_assignment()
        assert await asyncio.to_thread(again.poll_once, 2.0) == 0
    finally:
        again.close()
    with engine.begin() as conn:
        conn.execute(consumer_offsets.delete())
    replay = StoreConsumer(settings, engine)
    try:
        replay.refresh_assignment()
        n = 0
        for _ in range(10):
            n += await asyncio.to_thread(replay.poll_once, 1.0)
            if n >= 11:
                break
        assert n == 11
        assert (replay.applied["duplicate"], replay.applied["alarm"], replay.applied["gap"]) == (6, 0, 0)
    finally:
        replay.close()
    with engine.connect() as conn:
        assert len(conn.execute(select(alarm_events.c.alarm_id)).all()) == 3
        assert len(conn.execute(select(gaps.c.sequence)).all()) == 1
    engine.dispose()
