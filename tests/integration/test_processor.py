"""The stream processor on real brokers: tansu, PostgreSQL, and Redis when it answers.

Two patients share one partition. pat-a is continuous; pat-b's gateway is offline for ten
minutes of device time, comes back, then falls silent and still gets its final windows. pat-b's
backlog arrives after pat-a's records have moved the partition far past it: it revises the
windows it belongs to (or creates those the gateway missed entirely), and no record is missing.
A backlog beyond the revision horizon is routed to ``features.late`` and counted. A second run
over the same input (a new consumer group, empty state) upserts the same rows.
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
from sqlalchemy import Engine, create_engine, func, select

from cardiogate.cloud import features
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
STEPS = 126  # 21 minutes of device time, a step every 10 s; the partition time ends at T0 + 1252 s
B_OFFLINE = range(330 * S, 930 * S)  # pat-b's gateway is away for ten minutes
B_SILENT_FROM = 1140 * S
# windows ending after T0 + 1252 s - 920 s = T0 + 332 s are revised: all of pat-b's backlog (the
# first 1-minute window ends at T0 + 360 s), not pat-a's old minute-1 backlog (5-minute end T0 + 300 s)
HORIZON_S = 920
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


def recompute(records: list[pb.Record]) -> dict[tuple[str, int, int], features_pb2.FeatureWindow]:
    """Every window from scratch, from the records produced: what the processor must end up with."""
    accs: dict[tuple[str, int, int], features.Accumulator] = {}
    for r in records:
        t = features.event_time_ns(r)
        assert t is not None
        for width in (60, 300):
            key = (r.patient, width, features.window_start(t, width))
            features.fold(accs.setdefault(key, features.new_accumulator()), r)
    return {key: features.finalize(acc, key[0], key[1], key[2]) for key, acc in accs.items()}


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
                         processor=ProcessorSettings(grace_s=GRACE_S, revision_horizon_s=HORIZON_S,
                                                     state_dir=state, redis_url=redis_url,
                                                     consumer_group=group, commit_interval_s=1.0,
                                                     session_timeout_ms=6000))


def late_count(width: int, route: str) -> float:
    return float(LATE_RECORDS.labels(width_s=str(width), route=route)._value.get())


def stored_windows(engine: Engine) -> dict[tuple[str, int, int], features_pb2.FeatureWindow]:
    with engine.connect() as conn:
        payloads = conn.execute(select(feature_windows.c.payload)).scalars().all()
    windows = [features_pb2.FeatureWindow.FromString(p) for p in payloads]
    return {(w.patient, w.width_s, w.start_device_time_ns): w for w in windows}


def stored_reports(engine: Engine) -> dict[tuple[str, int, int], features_pb2.RiskReport]:
    with engine.connect() as conn:
        payloads = conn.execute(select(risk_reports.c.payload)).scalars().all()
    reports = [features_pb2.RiskReport.FromString(p) for p in payloads]
    return {(r.patient, r.width_s, r.window_start_device_time_ns): r for r in reports}


def test_windows_backlog_revisions_silent_patient_and_replay(brokers: tuple[str, str], tmp_path: Path) -> None:
    bootstrap, url = brokers
    settings = settings_for(bootstrap, url, tmp_path / "state-1", "cardiogate-processor")
    ensure_topics(settings.kafka)
    live: list[pb.Record] = []
    backlog: list[pb.Record] = []  # pat-b's records of its offline period, sent after it reconnects
    seq: dict[str, int] = defaultdict(int)

    def add(r: pb.Record, t: int) -> None:
        seq[r.stream_id] += 1
        r.sequence = seq[r.stream_id]
        (backlog if r.patient == "pat-b" and t - T0 in B_OFFLINE else live).append(r)

    for step in range(STEPS):
        t = T0 + step * 10 * S
        for patient in ("pat-a", "pat-b"):
            if patient == "pat-b" and t - T0 >= B_SILENT_FROM:
                continue
            add(vitals(patient, 0, t + 1 * S, 60.0 + step % 7 + (patient == "pat-b") * 20), t + 1 * S)
            add(ecg(patient, 0, t + 2 * S), t + 2 * S)
        if step in (13, 40):
            add(gap("pat-a", 0, t + 3 * S, 500), t + 3 * S)
        if step == 5:
            add(raised("pat-a", 0, t + 4 * S), t + 4 * S)
    # a backlog of pat-a's minute 1 far older than the horizon
    stale = [vitals("pat-a", 1000 + i, T0 + 60 * S + i * S, 150.0) for i in range(5)]
    expected = recompute(live + backlog)
    b_records = len([r for r in live + backlog if r.patient == "pat-b"])
    b_ontime = {(p, w, start) for p, w, start in recompute(live) if p == "pat-b"}
    late_in: dict[tuple[str, int, int], int] = defaultdict(int)  # backlog records per window
    for r in backlog:
        t = features.event_time_ns(r) or 0
        for width in (60, 300):
            late_in[("pat-b", width, features.window_start(t, width))] += 1
    assert len(backlog) == 120 and b_ontime & set(late_in)  # some windows had an on-time version
    produce(bootstrap, settings.kafka, live)

    redis_messages: list[bytes] = []
    pubsub = None
    if settings.processor.redis_url:
        import redis

        client = redis.Redis.from_url(settings.processor.redis_url)
        client.delete("cardiogate:latest:pat-a", "cardiogate:latest:pat-b")
        pubsub = client.pubsub()  # type: ignore[no-untyped-call]
        pubsub.subscribe("cardiogate:risk:pat-a", "cardiogate:risk:pat-b")
        pubsub.get_message(timeout=1.0)

    routes = ("revised", "late_topic")
    before = {(w, route): late_count(w, route) for w in (60, 300) for route in routes}
    engine = create_engine(url)
    ontime_1m = len([k for k in expected if k[1] == 60 and (k[0] == "pat-a" or k in b_ontime)]) - 1  # one open
    ontime_5m = len([k for k in expected if k[1] == 300 and (k[0] == "pat-a" or k in b_ontime)]) - 1
    with Running(settings):
        # partition time reaches T0 + 1252 s: closed are the windows ending by T0 + 1200 s
        wait_for(lambda: len(windows_on(bootstrap, "features.5m")) >= ontime_5m, 60, "the 5-minute windows")
        wait_for(lambda: len(windows_on(bootstrap, "features.1m")) >= ontime_1m, 20, "the 1-minute windows")
        produce(bootstrap, settings.kafka, backlog + stale)

        def b_complete() -> bool:
            with engine.connect() as conn:
                sums = dict(conn.execute(select(feature_windows.c.width_s, func.sum(feature_windows.c.record_count))
                                         .where(feature_windows.c.patient == "pat-b")
                                         .group_by(feature_windows.c.width_s)).all())
            return sums == {60: b_records, 300: b_records}

        wait_for(b_complete, 30, "pat-b's backlog in its windows")
        wait_for(lambda: late_count(300, "late_topic") - before[(300, "late_topic")] >= 5, 10, "the stale backlog")
        if pubsub is not None:
            while (msg := pubsub.get_message(timeout=0.5)) is not None:
                if msg["type"] == "message":
                    redis_messages.append(msg["data"])

    # the database holds every closed window exactly as a recomputation from all records says
    closed = {k for k in expected if k[2] + k[1] * S <= T0 + 1200 * S}
    rows = stored_windows(engine)
    assert set(rows) == closed
    assert {k for k in rows if k[0] == "pat-b" and k[1] == 60} == {
        ("pat-b", 60, T0 + m * 60 * S) for m in range(19)}  # all of pat-b's minutes, the offline ones included
    for key, w in rows.items():
        want = expected[key]
        assert w.hr_mean == pytest.approx(want.hr_mean, abs=1e-9), key
        assert (w.record_count, w.hr_count, w.samples_received, w.samples_missing) == (
            want.record_count, want.hr_count, want.samples_received, want.samples_missing), key
        assert w.completeness == pytest.approx(want.completeness, abs=1e-12), key
        assert (w.hr_min, w.hr_max, w.rr_count, dict(w.alarm_counts)) == (
            want.hr_min, want.hr_max, want.rr_count, dict(want.alarm_counts)), key
        late = late_in.get(key, 0)
        assert w.late_record_count == late, key
        # one revision per late record; a window the gateway missed entirely starts at revision 0
        assert w.revision == (late if key in b_ontime else max(0, late - 1)), key
    for width in (60, 300):
        assert sum(w.record_count for k, w in rows.items() if k[:2] == ("pat-b", width)) == b_records
    assert rows[("pat-a", 300, T0)].samples_missing == 500 and rows[("pat-a", 300, T0)].alarm_counts == {"high": 1}
    assert rows[("pat-a", 300, T0)].completeness == pytest.approx(30 * 2500 / (30 * 2500 + 500))
    assert rows[("pat-b", 300, T0 + 300 * S)].revision == late_in[("pat-b", 300, T0 + 300 * S)] >= 1
    reports = stored_reports(engine)
    assert {k: r.revision for k, r in reports.items() if k[1]} == {k: w.revision for k, w in rows.items()}

    # Kafka: the last message per window is the stored one; every publication has its report
    five, one = windows_on(bootstrap, "features.5m"), windows_on(bootstrap, "features.1m")
    for (patient, start), w in [*five.items(), *one.items()]:
        assert w == rows[(patient, w.width_s, start)]
    published = len(read_all(bootstrap, "features.5m", 1.5)) + len(read_all(bootstrap, "features.1m", 1.5))
    assert published == len(rows) + sum(late_in.values()) - len(set(late_in) - b_ontime)
    everything = [features_pb2.RiskReport.FromString(v) for _, v, _ in read_all(bootstrap, "risk-events")]
    assert len([r for r in everything if not r.provisional]) == published

    # the revisions are counted; only the stale backlog went to features.late, once per width
    assert {(w, route): late_count(w, route) - before[(w, route)] for w in (60, 300) for route in routes} == {
        (60, "revised"): 120, (300, "revised"): 120, (60, "late_topic"): 5, (300, "late_topic"): 5}
    late = read_all(bootstrap, "features.late")
    assert sorted(h["late-window-s"] for _, _, h in late) == [b"300"] * 5 + [b"60"] * 5
    assert sorted(pb.Record.FromString(v).sequence for _, v, _ in late) == sorted([1000 + i for i in range(5)] * 2)
    assert {k for k, _, h in late} == {b"pat-a"} and all(h["gateway"] == b"gw-1" for _, _, h in late)

    # the raised high-priority alarm got its provisional report at once: width 0, its minute's start
    provisional = [r for r in everything if r.provisional]
    assert [(r.patient, r.width_s, r.window_start_device_time_ns, r.trigger, r.level) for r in provisional] == [
        ("pat-a", 0, T0 + 0, "alarm:tachycardia:pat-a-0", "medium")]
    assert all((r.model_name, r.model_version, r.baseline) == ("news2-baseline", "1", True) for r in everything)
    assert len(reports) == len(rows) + 1  # + the provisional report

    if pubsub is not None:
        # Redis: every report of the patient's newest window of its width; an older window's revision stays out
        newest: dict[tuple[str, int], int] = {}
        live_view = []
        for r in everything:
            if r.provisional or r.window_start_device_time_ns >= newest.get((r.patient, r.width_s), 0):
                newest[(r.patient, r.width_s)] = r.window_start_device_time_ns
                live_view.append(r)
        assert [features_pb2.RiskReport.FromString(m) for m in redis_messages] == live_view
        latest = client.hgetall("cardiogate:latest:pat-b")
        assert features_pb2.FeatureWindow.FromString(latest[b"features.5m"]) == rows[("pat-b", 300, T0 + 900 * S)]
        assert features_pb2.FeatureWindow.FromString(latest[b"features.1m"]).start_device_time_ns == T0 + 1080 * S
        pubsub.close()

    # the same input again, from scratch (new group, empty state): the same rows, no duplicates
    again = settings_for(bootstrap, url, tmp_path / "state-2", "cardiogate-processor-replay")
    first_5m = len(read_all(bootstrap, "features.5m", 1.0))
    with Running(again):
        wait_for(lambda: len(read_all(bootstrap, "features.5m", 1.0)) >= 2 * first_5m, 60,
                 "the replay's 5-minute windows")
    replayed = stored_windows(engine)
    assert set(replayed) == set(rows)
    for key, w in replayed.items():  # computed_time_ns differs between runs; every measured value is the same
        w.computed_time_ns = rows[key].computed_time_ns
        assert w == rows[key], key
    assert len(stored_reports(engine)) == len(reports)
    engine.dispose()
