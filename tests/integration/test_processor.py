"""The stream processor on real brokers: tansu, PostgreSQL, and Redis when it answers.

Two patients share one partition; one falls silent after four minutes and still gets its final
windows. A gateway's late backlog is routed to ``features.late`` and counted, never dropped. A
second run over the same input (a new consumer group, empty state) upserts the same rows.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from sqlalchemy import create_engine, func, select

from cardiogate.cloud.history import feature_windows, risk_reports
from cardiogate.cloud.kafka_bridge import ensure_topics
from cardiogate.cloud.processor import LATE_RECORDS, run_processor
from cardiogate.cloud.settings import CloudSettings, KafkaSettings, ProcessorSettings
from cardiogate.proto.v1 import features_pb2
from cardiogate.proto.v1 import telemetry_pb2 as pb
from tests.conftest import port_open
from tests.integration.cloud_testkit import postgres_schema, tansu

pytestmark = pytest.mark.api

S = 1_000_000_000
T0 = 1_800_000_000 * S  # aligned to 300 s
GRACE_S = 30
SAMPLES_PER_BLOCK = 2500


def vitals(patient: str, seq: int, t: int, hr: float) -> pb.Record:
    v = pb.VitalsRecord(device_time_ns=t, receive_time_ns=t, source="hrm", heart_rate_bpm=hr,
                        rr_intervals_ms=[60_000 / hr, 60_000 / hr + 7.0, 60_000 / hr - 3.0])
    return pb.Record(stream_id=f"{patient}-hrm/vitals", sequence=seq, device_id=f"{patient}-hrm", patient=patient,
                     kind=pb.STREAM_KIND_VITALS, vitals=v)


def ecg(patient: str, seq: int, t: int) -> pb.Record:
    block = pb.SampleBlock(first_sample_device_time_ns=t, receive_time_ns=t, sample_rate_hz=250.0, scale=1.0,
                           unit="uV", encoding=pb.SAMPLE_ENCODING_INT16_LE, samples=b"\0\0" * SAMPLES_PER_BLOCK,
                           sample_count=SAMPLES_PER_BLOCK)
    return pb.Record(stream_id=f"{patient}-h10/ecg", sequence=seq, device_id=f"{patient}-h10", patient=patient,
                     kind=pb.STREAM_KIND_ECG, samples=block)


def gap(patient: str, seq: int, t: int, missing: int) -> pb.Record:
    g = pb.Gap(stream=pb.STREAM_KIND_ECG, start_device_time_ns=t, end_device_time_ns=t + 2 * S,
               missing_samples=missing, cause=pb.GAP_CAUSE_LINK_LOSS, sample_rate_hz=250.0)
    return pb.Record(stream_id=f"{patient}-h10/events", sequence=seq, device_id=f"{patient}-h10", patient=patient,
                     kind=pb.STREAM_KIND_EVENTS, event=pb.DeviceEvent(device_time_ns=t, receive_time_ns=t, gap=g))


def raised(patient: str, seq: int, t: int) -> pb.Record:
    a = pb.Alarm(alarm_id=f"{patient}-{seq}", condition="tachycardia", priority=pb.ALARM_PRIORITY_HIGH,
                 state=pb.ALARM_STATE_RAISED, trigger_sample_device_time_ns=t, decision_time_ns=t)
    return pb.Record(stream_id=f"{patient}-hrm/alarms", sequence=seq, device_id=f"{patient}-hrm", patient=patient,
                     kind=pb.STREAM_KIND_ALARMS, alarm=a)


class Expected:
    """What each window must hold, computed from what was produced."""

    def __init__(self) -> None:
        self.hr: dict[tuple[str, int, int], list[float]] = defaultdict(list)
        self.received: dict[tuple[str, int, int], int] = defaultdict(int)
        self.missing: dict[tuple[str, int, int], int] = defaultdict(int)

    def add(self, r: pb.Record, t: int) -> None:
        for width in (60, 300):
            key = (r.patient, width, t - t % (width * S))
            if r.HasField("vitals"):
                self.hr[key].append(r.vitals.heart_rate_bpm)
            elif r.HasField("samples"):
                self.received[key] += r.samples.sample_count
            elif r.HasField("event"):
                self.missing[key] += r.event.gap.missing_samples


def produce(bootstrap: str, kafka: KafkaSettings, records: list[pb.Record]) -> None:
    topics = {pb.STREAM_KIND_VITALS: kafka.topic_vitals, pb.STREAM_KIND_ECG: kafka.topic_ecg,
              pb.STREAM_KIND_EVENTS: kafka.topic_events, pb.STREAM_KIND_ALARMS: kafka.topic_alarms}
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
    # Kafka's timestamps say the order the ingest wrote them in; quixstreams aligns the topics by them
    clock = itertools.count(time.time_ns() // 1_000_000 - len(records))
    for r in records:
        producer.produce(topics[r.kind], r.SerializeToString(), r.patient.encode(), timestamp=next(clock),
                         headers=[("gateway", b"gw-1"), ("stream", r.stream_id.encode()),
                                  ("seq", b"%d" % r.sequence)])
        producer.poll(0)
    assert producer.flush(15) == 0


def read_all(bootstrap: str, topic: str, wait_s: float = 3.0) -> list[tuple[bytes, bytes, dict[str, bytes]]]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"t-{time.time_ns()}",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    try:
        meta = consumer.list_topics(timeout=10)
        if topic not in meta.topics:
            return []
        consumer.assign([TopicPartition(topic, p, 0) for p in meta.topics[topic].partitions])
        out = []
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is None or msg.error():
                continue
            headers = {k: v for k, v in (msg.headers() or []) if isinstance(v, bytes)}
            out.append((msg.key() or b"", msg.value() or b"", headers))
        return out
    finally:
        consumer.close()


def windows_on(bootstrap: str, topic: str) -> dict[tuple[str, int], features_pb2.FeatureWindow]:
    out = {}
    for _, value, _ in read_all(bootstrap, topic, 1.5):
        w = features_pb2.FeatureWindow.FromString(value)
        out[(w.patient, w.start_device_time_ns)] = w
    return out


RUNNING: list[Running] = []


def wait_for(predicate: object, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for running in RUNNING:
            assert running.errors == [], "the processor failed"
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.5)
    raise AssertionError(f"{what} did not happen within {timeout_s} s")


class Running:
    def __init__(self, settings: CloudSettings) -> None:
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, args=(settings,), daemon=True)

    def _run(self, settings: CloudSettings) -> None:
        try:
            run_processor(settings, self.stop)
        except BaseException as exc:
            self.errors.append(exc)

    def __enter__(self) -> Running:
        RUNNING[:] = [self]
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(30)
        assert not self.thread.is_alive()
        assert self.errors == []


@pytest.fixture
def brokers() -> Iterator[tuple[str, str]]:
    with tansu() as bootstrap, postgres_schema() as url:
        yield bootstrap, url


def settings_for(bootstrap: str, url: str, state: Path, group: str) -> CloudSettings:
    redis_url = "redis://127.0.0.1:6379/0" if port_open("127.0.0.1", 6379) else None
    return CloudSettings(database_url=url, kafka=KafkaSettings(bootstrap=bootstrap, partitions=1),
                         processor=ProcessorSettings(grace_s=GRACE_S, state_dir=state, redis_url=redis_url,
                                                     consumer_group=group, commit_interval_s=1.0,
                                                     session_timeout_ms=6000))


def late_count(width: int) -> float:
    return float(LATE_RECORDS.labels(width_s=str(width), route="late_topic")._value.get())


def test_windows_late_records_silent_patient_and_replay(brokers: tuple[str, str], tmp_path: Path) -> None:
    bootstrap, url = brokers
    settings = settings_for(bootstrap, url, tmp_path / "state-1", "cardiogate-processor")
    ensure_topics(settings.kafka)
    expected = Expected()
    records: list[pb.Record] = []
    seq: dict[str, int] = defaultdict(int)

    def add(r: pb.Record, t: int) -> None:
        seq[r.stream_id] += 1
        r.sequence = seq[r.stream_id]
        records.append(r)
        expected.add(r, t)

    for step in range(72):  # 12 minutes of device time, a record of each kind every 10 s
        t = T0 + step * 10 * S
        for patient in ("pat-a", "pat-b"):
            if patient == "pat-b" and step >= 24:  # pat-b's gateway falls silent after 4 minutes
                continue
            add(vitals(patient, 0, t + 1 * S, 60.0 + step % 7 + (patient == "pat-b") * 20), t + 1 * S)
            add(ecg(patient, 0, t + 2 * S), t + 2 * S)
        if step in (13, 40):
            add(gap("pat-a", 0, t + 3 * S, 500), t + 3 * S)
        if step == 5:
            add(raised("pat-a", 0, t + 4 * S), t + 4 * S)
    produce(bootstrap, settings.kafka, records)

    redis_messages: list[bytes] = []
    pubsub = None
    if settings.processor.redis_url:
        import redis

        client = redis.Redis.from_url(settings.processor.redis_url)
        client.delete("cardiogate:latest:pat-a", "cardiogate:latest:pat-b")
        pubsub = client.pubsub()  # type: ignore[no-untyped-call]
        pubsub.subscribe("cardiogate:risk:pat-a", "cardiogate:risk:pat-b")
        pubsub.get_message(timeout=1.0)

    late_before = {w: late_count(w) for w in (60, 300)}
    with Running(settings):
        # partition time reaches T0 + 711 s: closed are 5-minute windows ending by 600 s, 1-minute by 660 s
        wait_for(lambda: len(windows_on(bootstrap, "features.5m")) >= 3, 60, "three 5-minute windows")
        wait_for(lambda: len(windows_on(bootstrap, "features.1m")) >= 15, 20, "fifteen 1-minute windows")
        # a gateway's backlog for minute 1 arrives after those windows closed
        backlog = [vitals("pat-a", 1000 + i, T0 + 60 * S + i * S, 150.0) for i in range(5)]
        produce(bootstrap, settings.kafka, backlog)
        wait_for(lambda: len(read_all(bootstrap, "features.late", 1.0)) >= 10, 30, "the backlog on features.late")
        if pubsub is not None:
            while (msg := pubsub.get_message(timeout=0.5)) is not None:
                if msg["type"] == "message":
                    redis_messages.append(msg["data"])

    five = windows_on(bootstrap, "features.5m")
    one = windows_on(bootstrap, "features.1m")
    assert set(five) == {("pat-a", T0), ("pat-a", T0 + 300 * S), ("pat-b", T0)}  # pat-b's last window is final
    assert {k for k in one if k[0] == "pat-b"} == {("pat-b", T0 + m * 60 * S) for m in range(4)}
    assert len([k for k in one if k[0] == "pat-a"]) == 11
    for (patient, start), w in [*five.items(), *one.items()]:
        key = (patient, w.width_s, start)
        assert w.hr_mean == pytest.approx(sum(expected.hr[key]) / len(expected.hr[key]), abs=1e-9)
        assert w.hr_count == len(expected.hr[key])  # the backlog was not folded in
        received, missing = expected.received[key], expected.missing[key]
        assert (w.samples_received, w.samples_missing) == (received, missing)
        assert w.completeness == pytest.approx(received / (received + missing), abs=1e-12)
    assert five[("pat-a", T0)].samples_missing == 500 and five[("pat-a", T0)].alarm_counts == {"high": 1}
    assert five[("pat-a", T0)].completeness == pytest.approx(30 * 2500 / (30 * 2500 + 500))

    # the backlog: routed unchanged, once per window width, and counted
    late = read_all(bootstrap, "features.late")
    assert sorted(h["late-window-s"] for _, _, h in late) == [b"300"] * 5 + [b"60"] * 5
    assert sorted(pb.Record.FromString(v).sequence for _, v, _ in late) == sorted([1000 + i for i in range(5)] * 2)
    assert {k for k, _, h in late} == {b"pat-a"} and all(h["gateway"] == b"gw-1" for _, _, h in late)
    assert {w: late_count(w) - late_before[w] for w in (60, 300)} == {60: 5, 300: 5}

    everything = [features_pb2.RiskReport.FromString(v) for _, v, _ in read_all(bootstrap, "risk-events")]
    reports = [r for r in everything if not r.provisional]
    assert len(reports) == len(five) + len(one)
    # the raised high-priority alarm got its provisional report at once: width 0, its minute's start
    provisional = [r for r in everything if r.provisional]
    assert [(r.patient, r.width_s, r.window_start_device_time_ns, r.trigger, r.level) for r in provisional] == [
        ("pat-a", 0, T0 + 0, "alarm:tachycardia:pat-a-0", "medium")]
    assert all((r.model_name, r.model_version, r.baseline) == ("news2-baseline", "1", True) for r in reports)
    assert all(any("rule baseline" in s for s in r.recommendations) for r in reports)

    engine = create_engine(url)

    def counts() -> tuple[int, int]:
        with engine.connect() as conn:
            return (conn.execute(select(func.count()).select_from(feature_windows)).scalar_one(),
                    conn.execute(select(func.count()).select_from(risk_reports)).scalar_one())

    assert counts() == (len(five) + len(one), len(five) + len(one) + 1)  # + the provisional report
    with engine.connect() as conn:
        row = conn.execute(select(feature_windows).where(feature_windows.c.patient == "pat-a",
                                                         feature_windows.c.width_s == 300,
                                                         feature_windows.c.start_device_time_ns == T0)).one()
        payload_before = bytes(row.payload)
        assert row.hr_mean == five[("pat-a", T0)].hr_mean and row.revision == 0
        assert features_pb2.FeatureWindow.FromString(row.payload).samples_missing == 500

    if pubsub is not None:
        assert len(redis_messages) == len(everything)
        latest = client.hgetall("cardiogate:latest:pat-b")
        assert features_pb2.FeatureWindow.FromString(latest[b"features.5m"]).start_device_time_ns == T0
        assert features_pb2.RiskReport.FromString(latest[b"risk"]).model_name == "news2-baseline"
        pubsub.close()

    # the same input again, from scratch (new group, empty state): the same rows, no duplicates
    again = settings_for(bootstrap, url, tmp_path / "state-2", "cardiogate-processor-replay")
    with Running(again):
        wait_for(lambda: len(read_all(bootstrap, "features.5m", 1.0)) >= 6, 60, "the replay's 5-minute windows")
    assert counts() == (len(five) + len(one), len(five) + len(one) + 1)
    with engine.connect() as conn:
        rows = conn.execute(select(feature_windows.c.width_s, func.count()).group_by(feature_windows.c.width_s)).all()
        replayed = conn.execute(select(feature_windows.c.payload).where(
            feature_windows.c.patient == "pat-a", feature_windows.c.width_s == 300,
            feature_windows.c.start_device_time_ns == T0)).scalar_one()
    assert dict(rows) == {60: len(one), 300: len(five)}
    # computed_time_ns differs between runs; every measured value is the same
    a, b = features_pb2.FeatureWindow.FromString(payload_before), features_pb2.FeatureWindow.FromString(replayed)
    a.computed_time_ns = b.computed_time_ns = 0
    assert a == b
    engine.dispose()
