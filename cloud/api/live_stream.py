"""A patient's live stream while a strip is open: every vitals record, and the ECG at full rate.

The windows and reports the processor writes are minutes behind by design; a strip on a screen
must not be. Each API replica follows ``ecg.raw`` and ``vitals`` itself, from the end of every
partition (assigned, no consumer group: every replica must see every record), but only while at
least one stream is open here: the consumer starts with the first watcher and stops
``linger_s`` after the last one leaves. Records of patients nobody here watches are skipped by
their key (the patient pseudonym) before they are parsed.

A watcher that falls behind loses its oldest messages (counted in
``api_live_dropped_messages_total``), never the other watchers' or the consumer's pace.
Messages are plain JSON-ready dicts (see :func:`live_message`), the same for every client.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

from confluent_kafka import OFFSET_END, Consumer, KafkaException, TopicPartition

from cardiogate.cloud.api.data import EcgBlockRow
from cardiogate.cloud.api.ecg import decode
from cardiogate.cloud.history import ENCODINGS
from cardiogate.core import metrics as registry
from cardiogate.core.logs import get_logger
from cardiogate.proto.v1 import telemetry_pb2 as pb

log = get_logger(__name__)

QUEUE_LIMIT = 256  # ~2 minutes of half-second ECG blocks
VITAL_NAMES = ("heart_rate_bpm", "spo2_percent", "systolic_mmhg", "diastolic_mmhg", "pulse_rate_bpm",
               "mean_arterial_mmhg", "perfusion_index", "signal_quality")
DROPPED = registry.counter("api_live_dropped_messages", "Live-stream messages a slow client never got.")
DELIVERED = registry.counter("api_live_messages", "Live-stream messages handed to clients, by type.", ("type",))


def live_message(record: pb.Record) -> dict[str, Any] | None:
    """The client's message for one record: ``ecg`` (samples in µV) or ``vitals``; None for anything else."""
    which = record.WhichOneof("body")
    if which == "samples" and record.kind == pb.STREAM_KIND_ECG:
        s = record.samples
        first = s.first_sample_corrected_time_ns or s.first_sample_device_time_ns
        encoding = ENCODINGS.get(s.encoding)
        if first <= 0 or s.sample_rate_hz <= 0 or encoding is None:
            return None
        samples = decode(EcgBlockRow(record.device_id, first, s.sample_rate_hz, s.scale, s.unit, encoding,
                                     s.sample_count, s.samples))
        if samples is None:
            return None
        return {"type": "ecg", "deviceId": record.device_id, "lead": record.device_id,
                "sampleRateHz": s.sample_rate_hz, "t0Ms": first / 1e6, "unit": "uV", "samples": samples}
    if which == "vitals":
        v = record.vitals
        values = {name: getattr(v, name) for name in VITAL_NAMES if v.HasField(name)}  # type: ignore[arg-type]
        message: dict[str, Any] = {"type": "vitals", "deviceId": record.device_id, "timeMs": v.device_time_ns / 1e6,
                                   "source": v.source, "values": values}
        if v.rhythm:
            message["rhythm"] = v.rhythm
        return message
    return None


class LiveTail:
    """Follows ECG and vitals topics for the patients watched in this process."""

    def __init__(self, bootstrap: str, topics: tuple[str, ...], linger_s: float = 30.0) -> None:
        self._bootstrap = bootstrap
        self._topics = topics
        self._linger_s = linger_s
        self._lock = threading.Lock()  # guards watchers and the thread's start and exit
        self._watchers: dict[str, set[tuple[asyncio.AbstractEventLoop, asyncio.Queue[dict[str, Any]]]]] = {}
        self._keys: frozenset[bytes] = frozenset()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.assigned = threading.Event()  # set once the consumer follows every partition (tests wait on it)

    async def watch(self, patient: str) -> AsyncIterator[dict[str, Any]]:
        """Messages of ``patient`` from now on, until the caller stops iterating."""
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_LIMIT)
        entry = (asyncio.get_running_loop(), queue)
        with self._lock:
            self._watchers.setdefault(patient, set()).add(entry)
            self._keys = frozenset(p.encode() for p in self._watchers)
            if self._thread is None:
                self._stop.clear()
                self.assigned.clear()
                self._thread = threading.Thread(target=self._run, name="live-tail", daemon=True)
                self._thread.start()
        try:
            while True:
                yield await queue.get()
        finally:
            with self._lock:
                self._watchers[patient].discard(entry)
                if not self._watchers[patient]:
                    del self._watchers[patient]
                self._keys = frozenset(p.encode() for p in self._watchers)

    def watching(self) -> int:
        with self._lock:
            return sum(len(v) for v in self._watchers.values())

    def following(self) -> bool:
        """Whether a consumer runs (from the first watcher until ``linger_s`` after the last)."""
        with self._lock:
            return self._thread is not None

    def close(self) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout=5)

    def _consumer(self) -> Consumer | None:
        consumer = Consumer({"bootstrap.servers": self._bootstrap, "group.id": "cardiogate-api-live",
                             "enable.auto.commit": False, "fetch.wait.max.ms": 100,
                             "isolation.level": "read_uncommitted"})
        while not self._stop.is_set():
            try:
                meta = consumer.list_topics(timeout=5)
                assignment = [TopicPartition(topic, p, OFFSET_END) for topic in self._topics
                              if topic in meta.topics and meta.topics[topic].error is None
                              for p in meta.topics[topic].partitions]
                if assignment:
                    consumer.assign(assignment)
                    self.assigned.set()
                    log.info("live stream following", topics=list(self._topics), partitions=len(assignment))
                    return consumer
            except KafkaException as exc:
                log.info("live stream waiting for its topics", error=str(exc))
            self._stop.wait(1.0)
        consumer.close()
        return None

    def _run(self) -> None:
        consumer = None
        try:
            consumer = self._consumer()
            idle_since: float | None = None
            while consumer is not None and not self._stop.is_set():
                with self._lock:
                    if self._watchers:
                        idle_since = None
                    elif idle_since is None:
                        idle_since = time.monotonic()
                    elif time.monotonic() - idle_since > self._linger_s:
                        self._thread = None  # a watcher arriving from now on starts a new consumer
                        return
                msg = consumer.poll(0.2)
                if msg is None or msg.error() is not None:
                    continue
                key, value = msg.key(), msg.value()
                if not key or not value or key not in self._keys:
                    continue
                self._deliver(key.decode("utf-8", errors="replace"), value)
        except Exception as exc:  # the thread must not die silently: the next watcher starts a new one
            log.warning("live stream consumer failed", error=str(exc))
        finally:
            with self._lock:
                if self._thread is threading.current_thread():
                    self._thread = None
            if consumer is not None:
                consumer.close()

    def _deliver(self, patient: str, value: bytes) -> None:
        record = pb.Record()
        try:
            record.ParseFromString(value)
        except Exception:
            return
        message = live_message(record)
        if message is None:
            return
        with self._lock:
            watchers = list(self._watchers.get(patient, ()))
        for loop, queue in watchers:
            with contextlib.suppress(RuntimeError):  # that client's loop closed meanwhile
                loop.call_soon_threadsafe(_offer, queue, message)


def _offer(queue: asyncio.Queue[dict[str, Any]], message: dict[str, Any]) -> None:
    if queue.full():
        queue.get_nowait()
        DROPPED.inc()
    queue.put_nowait(message)
    DELIVERED.labels(type=message["type"]).inc()
