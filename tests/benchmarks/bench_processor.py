"""Stream processor throughput beside a plain Kafka consumer reading the same records.

One tansu broker holds ``--records`` telemetry records as the ingest writes them (key = patient
pseudonym, value = a serialized ``Record``, the ingest's headers) on ecg.raw, vitals, alarms and
device.events, 3 partitions each: ``--patients`` patients whose device times span
``--span-s`` seconds (recent, so the ECG retention keeps them), three in four records an ECG
block of 250 int16 samples, the rest vitals, with a gap event every 200th and a raised alarm
every 500th record of a patient (each of those makes a provisional report). The device times
span enough 1- and 5-minute windows that most of them close, so the run includes emitting
windows and risk reports to Kafka, the history database and Redis.

First a plain confluent-kafka consumer (its own group, from the earliest offset, nothing
decoded) reads every record: the floor of what any consumer can do on this broker. Then the
real processor (``run_processor`` in a thread, a fresh consumer group, empty state, SQLite
history in a temporary directory) runs until its group's committed offsets reach the end of
every input partition. The ends are counted from the producer's delivery reports, not asked of
the broker (tansu's watermarks can lag behind the true end). Commits happen once per
checkpoint (``--commit-interval``, 1 s here; production's default is 5 s), so the processor's
time is late by up to one interval. Both times include joining the group, which tansu does
slowly; "from first" rates leave it out (the processor's first committed checkpoint stands
in for its first record). Not a test; run by hand (results in docs/benchmarks.md):

    .venv/bin/python -m tests.benchmarks.bench_processor [--records 200000] [--patients 100] [--redis]

CPU seconds are this process's (the consumer, or the processor's threads: quixstreams,
librdkafka, RocksDB, SQLite) and the broker's, over each phase.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition

from cardiogate.app.stack import free_port
from cardiogate.cloud.settings import CloudSettings, KafkaSettings, ProcessorSettings
from cardiogate.cloud.tansu import start_tansu
from cardiogate.core.logs import setup_logging
from cardiogate.proto.v1 import telemetry_pb2 as pb

S = 1_000_000_000
SAMPLES = 250  # one second at 250 Hz, int16
REDIS_URL = "redis://127.0.0.1:6379/0"
SESSION_TIMEOUT_MS = 6000  # short: tansu completes a join only after about half of it

Partition = tuple[str, int]


# -- the records ----------------------------------------------------------------------------------


def ecg(patient: str, seq: int, t: int) -> pb.Record:
    samples = bytes((seq * 7 + k) % 251 for k in range(2 * SAMPLES))
    block = pb.SampleBlock(first_sample_device_time_ns=t, receive_time_ns=t + S // 2, sample_rate_hz=250.0,
                           scale=1.0, unit="uV", encoding=pb.SAMPLE_ENCODING_INT16_LE, samples=samples,
                           sample_count=SAMPLES, device_sequence_first=seq * 10, device_sequence_last=seq * 10 + 9)
    return pb.Record(stream_id=f"{patient}-h10/ecg", sequence=seq, device_id=f"{patient}-h10", patient=patient,
                     kind=pb.STREAM_KIND_ECG, samples=block)


def vitals(patient: str, seq: int, t: int) -> pb.Record:
    hr = 60.0 + (seq * 13) % 50
    v = pb.VitalsRecord(device_time_ns=t, receive_time_ns=t + S // 2, source="hrm", heart_rate_bpm=hr,
                        spo2_percent=92.0 + seq % 7, rr_intervals_ms=[60_000 / hr, 60_000 / hr + 7.0])
    return pb.Record(stream_id=f"{patient}-hrm/vitals", sequence=seq, device_id=f"{patient}-hrm", patient=patient,
                     kind=pb.STREAM_KIND_VITALS, vitals=v)


def gap(patient: str, seq: int, t: int) -> pb.Record:
    g = pb.Gap(stream=pb.STREAM_KIND_ECG, start_device_time_ns=t, end_device_time_ns=t + 2 * S, missing_samples=500,
               cause=pb.GAP_CAUSE_LINK_LOSS, sample_rate_hz=250.0)
    return pb.Record(stream_id=f"{patient}-h10/events", sequence=seq, device_id=f"{patient}-h10", patient=patient,
                     kind=pb.STREAM_KIND_EVENTS, event=pb.DeviceEvent(device_time_ns=t, receive_time_ns=t, gap=g))


def alarm(patient: str, seq: int, t: int) -> pb.Record:
    a = pb.Alarm(alarm_id=f"{patient}-{seq}", condition="tachycardia", priority=pb.ALARM_PRIORITY_MEDIUM,
                 state=pb.ALARM_STATE_RAISED, value=131.0, limit=120.0, trigger_sample_device_time_ns=t,
                 decision_time_ns=t, publish_time_ns=t)
    return pb.Record(stream_id=f"{patient}-hrm/alarms", sequence=seq, device_id=f"{patient}-hrm", patient=patient,
                     kind=pb.STREAM_KIND_ALARMS, alarm=a)


def records(n: int, patients: int, span_s: float) -> list[pb.Record]:
    """``n`` records in device-time order, the patients interleaved as one ingest would write them."""
    per_patient = max(1, n // patients)
    step_ns = int(span_s * S / per_patient)
    t0 = time.time_ns() - int(span_s * S) - 60 * S
    t0 -= t0 % (300 * S)  # windows aligned to the start
    out = []
    for k in range(n):
        i, p = divmod(k, patients)
        patient = f"pt-{p:04d}"
        t = t0 + i * step_ns + p * 1_000_000  # patients a millisecond apart
        make = alarm if i % 500 == 499 else gap if i % 200 == 199 else vitals if i % 4 == 3 else ecg
        out.append(make(patient, i, t))
    return out


@dataclass
class Produced:
    ends: dict[Partition, int]  # the next offset after the last record, per input partition
    count: int
    nbytes: int
    seconds: float


def produce(kafka: KafkaSettings, batch: list[pb.Record]) -> Produced:
    """Write the records as the ingest does; the partitions' ends come from the delivery reports."""
    topics = {pb.STREAM_KIND_ECG: kafka.topic_ecg, pb.STREAM_KIND_VITALS: kafka.topic_vitals,
              pb.STREAM_KIND_ALARMS: kafka.topic_alarms, pb.STREAM_KIND_EVENTS: kafka.topic_events}
    producer = Producer({"bootstrap.servers": kafka.bootstrap, "linger.ms": 5, "acks": "all",
                         "enable.idempotence": True, "queue.buffering.max.messages": 500_000})
    ends: dict[Partition, int] = defaultdict(int)
    counts: dict[Partition, int] = defaultdict(int)
    failed: list[str] = []

    def delivered(err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            failed.append(str(err))
            return
        part = (str(msg.topic()), int(msg.partition() or 0))
        ends[part] = max(ends[part], int(msg.offset() or 0) + 1)
        counts[part] += 1

    nbytes = 0
    start = time.perf_counter()
    clock = time.time_ns() // 1_000_000 - len(batch)  # Kafka timestamps in write order
    for k, r in enumerate(batch):
        value = r.SerializeToString()
        nbytes += len(value)
        while True:
            try:
                producer.produce(topics[r.kind], value, r.patient.encode(), timestamp=clock + k, on_delivery=delivered,
                                 headers=[("gateway", b"gw-bench"), ("stream", r.stream_id.encode()),
                                          ("seq", b"%d" % r.sequence)])
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    left = producer.flush(300)
    seconds = time.perf_counter() - start
    if left or failed:
        raise RuntimeError(f"{left} records undelivered, {len(failed)} failed (first: {failed[:1]})")
    short = {p: (counts[p], ends[p]) for p in ends if counts[p] != ends[p]}
    if short:  # not fatal: the end offset is what the consumers must reach
        print(f"partitions whose offsets do not start at 0 or have holes (count, end): {short}", file=sys.stderr)
    return Produced(dict(ends), sum(counts.values()), nbytes, seconds)


# -- the two consumers ----------------------------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int | None = None) -> float:
    """CPU seconds (user + system, all threads) of a process so far; None: this one."""
    if pid is None:
        t = os.times()
        return t.user + t.system
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


@dataclass
class Run:
    records: int
    seconds: float  # from subscribe / start to the last record
    first_s: float  # from subscribe / start to the first record (or first committed checkpoint)
    after_first: int  # records consumed after that moment
    cpu_self: float = 0.0
    cpu_broker: float = 0.0

    @property
    def per_s(self) -> float:
        return self.records / self.seconds

    @property
    def per_s_from_first(self) -> float:
        span = self.seconds - self.first_s
        return self.after_first / span if span > 0 else float("nan")


def plain_consumer(bootstrap: str, produced: Produced, timeout_s: float) -> Run:
    """Every record of the input topics, nothing decoded; timed from subscribe to the last record."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-plain-{uuid.uuid4().hex[:8]}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False,
                         "session.timeout.ms": SESSION_TIMEOUT_MS, "heartbeat.interval.ms": 1000})
    topics = sorted({t for t, _ in produced.ends})
    remaining = {p: end for p, end in produced.ends.items()}
    count, first = 0, 0.0
    try:
        start = time.perf_counter()
        consumer.subscribe(topics)
        while remaining:
            if time.perf_counter() - start > timeout_s:
                raise RuntimeError(f"the plain consumer did not finish within {timeout_s} s: {remaining}")
            for msg in consumer.consume(1000, 0.5):
                if msg.error():
                    continue
                if not count:
                    first = time.perf_counter() - start
                count += 1
                part = (str(msg.topic()), int(msg.partition() or 0))
                if part in remaining and int(msg.offset() or 0) + 1 >= remaining[part]:
                    del remaining[part]
        seconds = time.perf_counter() - start
    finally:
        consumer.close()
    return Run(count, seconds, first, count - 1)


def committed_total(watcher: Consumer, produced: Produced) -> int:
    """Records the group has committed past, over every input partition (capped at each end)."""
    parts = [TopicPartition(t, p) for t, p in produced.ends]
    total = 0
    for tp in watcher.committed(parts, timeout=10):
        if tp.offset >= 0:
            total += min(tp.offset, produced.ends[(tp.topic, tp.partition)])
    return total


def processor(settings: CloudSettings, produced: Produced, timeout_s: float) -> Run:
    """``run_processor`` in a thread until its group's committed offsets reach every partition's end."""
    from cardiogate.cloud.processor import run_processor

    stop = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            run_processor(settings, stop)
        except BaseException as exc:
            errors.append(exc)

    watcher = Consumer({"bootstrap.servers": settings.kafka.bootstrap,
                        "group.id": settings.processor.consumer_group, "enable.auto.commit": False})
    thread = threading.Thread(target=run, name="processor", daemon=True)
    first, at_first, done = 0.0, 0, 0
    try:
        start = time.perf_counter()
        thread.start()
        while True:
            if errors or not thread.is_alive():
                raise RuntimeError(f"the processor stopped: {errors[:1]}")
            if time.perf_counter() - start > timeout_s:
                raise RuntimeError(f"the processor did not finish within {timeout_s} s ({done} committed)")
            done = committed_total(watcher, produced)
            now = time.perf_counter() - start
            if done and not first:
                first, at_first = now, done
            if done >= produced.count:
                seconds = now
                break
            time.sleep(0.1)
    finally:
        stop.set()
        thread.join(60)
        watcher.close()
    if thread.is_alive():
        print("the processor did not stop within 60 s", file=sys.stderr)
    return Run(produced.count, seconds, first, produced.count - at_first)


def history_rows(db_url: str) -> dict[str, int]:
    """Rows the processor wrote, to show its windows closed."""
    from sqlalchemy import create_engine, func, select

    from cardiogate.cloud.history import ecg_blocks, feature_windows, risk_reports

    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            return {t.name: conn.execute(select(func.count()).select_from(t)).scalar_one()
                    for t in (feature_windows, risk_reports, ecg_blocks)}
    finally:
        engine.dispose()


def redis_answers() -> bool:
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--records", type=int, default=200_000, help="telemetry records produced")
    p.add_argument("--patients", type=int, default=100, help="patients (keys) the records are spread over")
    p.add_argument("--span-s", type=float, default=1800.0, help="device time the records span")
    p.add_argument("--partitions", type=int, default=3, help="partitions per input topic")
    p.add_argument("--redis", action="store_true", help="the processor publishes to Redis (127.0.0.1:6379)")
    p.add_argument("--guarantee", choices=["exactly-once", "at-least-once"],
                   default=ProcessorSettings().processing_guarantee)
    p.add_argument("--commit-interval", type=float, default=1.0,
                   help="the processor's checkpoint interval in seconds (the end is seen at a commit)")
    p.add_argument("--grace-s", type=float, default=ProcessorSettings().grace_s)
    p.add_argument("--timeout-s", type=float, default=1800.0, help="give up on a consumer after this long")
    args = p.parse_args(argv)
    setup_logging("WARNING")
    if args.redis and not redis_answers():
        p.error(f"--redis: Redis does not answer at {REDIS_URL}")
    with tempfile.TemporaryDirectory(prefix="bench-processor-") as tmp:
        port = free_port()
        broker: subprocess.Popen[bytes] = start_tansu(port)
        try:
            bootstrap = f"127.0.0.1:{port}"
            kafka = KafkaSettings(bootstrap=bootstrap, partitions=args.partitions)
            from cardiogate.cloud.kafka_bridge import ensure_topics

            ensure_topics(kafka)
            batch = records(args.records, args.patients, args.span_s)
            produced = produce(kafka, batch)
            del batch
            print(f"produced {produced.count:,} records ({produced.nbytes / 1e6:.1f} MB) in {produced.seconds:.1f} s "
                  f"to {len(produced.ends)} partitions", file=sys.stderr, flush=True)

            cpu0, broker0 = cpu_s(), cpu_s(broker.pid)
            plain = plain_consumer(bootstrap, produced, args.timeout_s)
            plain.cpu_self, plain.cpu_broker = cpu_s() - cpu0, cpu_s(broker.pid) - broker0
            print(f"plain consumer: {plain.per_s:,.0f} records/s", file=sys.stderr, flush=True)

            db_url = f"sqlite:///{Path(tmp) / 'history.sqlite3'}"
            settings = CloudSettings(database_url=db_url, kafka=kafka, processor=ProcessorSettings(
                consumer_group=f"bench-processor-{uuid.uuid4().hex[:8]}", state_dir=Path(tmp) / "state",
                redis_url=REDIS_URL if args.redis else None, grace_s=args.grace_s,
                processing_guarantee=args.guarantee, commit_interval_s=args.commit_interval,
                session_timeout_ms=SESSION_TIMEOUT_MS))
            cpu0, broker0 = cpu_s(), cpu_s(broker.pid)
            proc = processor(settings, produced, args.timeout_s)
            proc.cpu_self, proc.cpu_broker = cpu_s() - cpu0, cpu_s(broker.pid) - broker0
            rows = history_rows(db_url)
        finally:
            broker.kill()
            broker.wait()
    print(f"{produced.count:,} records ({produced.nbytes / produced.count:.0f} B average) of {args.patients} patients "
          f"over {args.span_s / 60:.0f} min of device time, {args.partitions} partitions per topic; tansu; processor "
          f"{args.guarantee}, checkpoint every {args.commit_interval:g} s, grace {args.grace_s:g} s, SQLite history, "
          f"Redis {'on' if args.redis else 'off'}; {os.cpu_count()} CPUs")
    print("| consumer | records/s | seconds | to first record s | records/s from first | CPU s (this process) "
          "| CPU s (tansu) | CPU µs/record |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for label, r in (("plain confluent-kafka consumer", plain), ("processor (run_processor)", proc)):
        print(f"| {label} | {r.per_s:,.0f} | {r.seconds:.1f} | {r.first_s:.1f} | {r.per_s_from_first:,.0f} "
              f"| {r.cpu_self:.1f} | {r.cpu_broker:.1f} | {1e6 * r.cpu_self / r.records:.0f} |")
    print(f"ratio processor / plain: {proc.per_s / plain.per_s:.2f} (from first: "
          f"{proc.per_s_from_first / plain.per_s_from_first:.2f}; goal >= 0.5)")
    print("processor's first record: its first committed checkpoint. History rows written: "
          + ", ".join(f"{name} {n:,}" for name, n in rows.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
