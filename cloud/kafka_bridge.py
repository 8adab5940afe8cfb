"""An asyncio face on confluent-kafka's idempotent producer.

``acks=all`` plus idempotence: a record is acknowledged to the gateway only after the
broker has durably accepted it, and producer retries never duplicate it.

A producer whose idempotence state broke (librdkafka's fatal errors, or being fenced
after its records timed out in a long outage) refuses every further record. The bridge
then replaces it with a fresh producer (a new producer id) without the ingest noticing,
except that every record the old one still held is reported as failed: the ingest then
acks none of them and the gateway resends them from its outbox.

Delivery reports are counted per ``send()`` in librdkafka's callback thread and handed
to the event loop once per batch, so a batch costs one loop wake-up, not one per record.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from cardiogate.cloud.settings import KafkaSettings
from cardiogate.core.logs import get_logger

log = get_logger(__name__)


@dataclass(slots=True)
class OutgoingRecord:
    """One Kafka record. Not frozen: one is built per record, and a frozen dataclass costs 3x as much."""

    topic: str
    key: bytes
    value: bytes
    headers: list[tuple[str, str | bytes | None]]


def ensure_topics(settings: KafkaSettings) -> None:
    """Create the topics the ingest writes to, if they are missing."""
    admin = AdminClient({"bootstrap.servers": settings.bootstrap})
    wanted = [settings.topic_ecg, settings.topic_vitals, settings.topic_alarms, settings.topic_events]
    futures = admin.create_topics([NewTopic(t, settings.partitions, 1) for t in wanted], request_timeout=15)
    for topic, fut in futures.items():
        try:
            fut.result(timeout=20)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
        log.info("kafka topic ready", topic=topic)


def producer_config(settings: KafkaSettings) -> dict[str, Any]:
    """The producer's librdkafka configuration (the benchmark's raw producer uses it with linger.ms 5).

    ``delivery_timeout_s = 0`` becomes ``message.timeout.ms = 0``: retry until delivered.
    Reconnects are capped at 1 s (librdkafka: 10 s) so writing resumes soon after an outage.
    ``linger.ms`` is 1 (librdkafka: 5): a batch is produced in one burst and its ack waits for the
    whole of it, so lingering only adds latency to every batch (15k -> 23k records/s with 200-record
    batches, docs/benchmarks.md)."""
    return {
        "bootstrap.servers": settings.bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "compression.type": "lz4",
        "linger.ms": 1,
        "message.timeout.ms": round(settings.delivery_timeout_s * 1000),
        "reconnect.backoff.max.ms": 1000,
    }


_PRODUCER_DEAD = frozenset({
    KafkaError._FATAL, KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH,
    KafkaError.OUT_OF_ORDER_SEQUENCE_NUMBER, KafkaError.UNKNOWN_PRODUCER_ID, KafkaError._GAPLESS_GUARANTEE,
})
"""Errors after which the producer's idempotence state (producer id, epoch, sequences) is not trusted.
Some come without librdkafka's fatal flag: after messages time out in an outage, librdkafka bumps the
epoch, and a broker that disagrees (tansu does) then answers PRODUCER_FENCED to every later record."""


def is_fatal(error: KafkaError | BaseException | None) -> bool:
    """Whether an error (or a KafkaException carrying one) means the producer instance is unusable."""
    if isinstance(error, KafkaException) and error.args and isinstance(error.args[0], KafkaError):
        error = error.args[0]
    return isinstance(error, KafkaError) and (error.fatal() or error.code() in _PRODUCER_DEAD)


_UNREPORTED: Any = object()


class _Batch:
    """The delivery reports of one ``send()``: filled in by librdkafka's callback thread, settled on
    the event loop once all are in (or when the producer dies and the rest are failed at once)."""

    __slots__ = ("_left", "_lock", "_loop", "errors", "future", "generation")

    def __init__(self, loop: asyncio.AbstractEventLoop, n: int, generation: _Generation) -> None:
        self.errors: list[Exception | None] = [_UNREPORTED] * n
        self.future: asyncio.Future[list[Exception | None]] = loop.create_future()
        self.generation = generation
        self._left = n
        self._loop = loop
        self._lock = threading.Lock()

    @property
    def settled(self) -> bool:
        return self._left == 0

    def on_delivery(self, index: int, err: KafkaError | None, _msg: Message[bytes, bytes] | None) -> None:
        """librdkafka's delivery report for record ``index`` (runs in the poll thread, once per record:
        the success path is :meth:`report` inlined)."""
        if err is not None:
            if is_fatal(err):
                self.generation.fail(err)
            self.report(index, KafkaException(err))
            return
        with self._lock:
            if self.errors[index] is not _UNREPORTED:
                return  # already failed when the producer was retired
            self.errors[index] = None
            self._left -= 1
            done = self._left == 0
        if done:
            self._settle()

    def report(self, index: int, error: Exception | None) -> None:
        with self._lock:
            if self.errors[index] is not _UNREPORTED:
                return  # already failed when the producer was retired
            self.errors[index] = error
            self._left -= 1
            done = self._left == 0
        if done:
            self._settle()

    def fail_unreported(self, error: Exception, start: int = 0) -> None:
        """Every record from ``start`` without a report yet fails with ``error``."""
        with self._lock:
            for i in range(start, len(self.errors)):
                if self.errors[i] is _UNREPORTED:
                    self.errors[i] = error
                    self._left -= 1
            done = self._left == 0
        if done:
            self._settle()

    def _settle(self) -> None:
        def settle() -> None:
            if not self.future.done():
                self.future.set_result(self.errors)

        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting any more
            self._loop.call_soon_threadsafe(settle)


class _Generation:
    """One Producer instance, its poll thread and the batches waiting on it."""

    def __init__(self, config: dict[str, Any], number: int, on_fatal: Callable[[_Generation], None]) -> None:
        self.number = number
        self.fatal: KafkaError | None = None
        self._on_fatal = on_fatal
        self._lock = threading.RLock()  # fail() may run inside produce() on the same thread
        self._batches: set[_Batch] = set()
        self._stop = threading.Event()
        self.producer = Producer({**config, "error_cb": self._on_error})
        self._poller = threading.Thread(target=self._poll, name=f"kafka-poll-{number}", daemon=True)
        self._poller.start()

    def _on_error(self, err: KafkaError) -> None:
        if is_fatal(err):
            self.fail(err)
        else:  # e.g. all brokers down: librdkafka keeps retrying within the delivery timeout
            log.warning("kafka producer error", error=str(err), generation=self.number)

    def fail(self, err: KafkaError) -> None:
        """The producer is unusable: stop producing to it and have the bridge replace it."""
        with self._lock:
            if self.fatal is not None:
                return
            self.fatal = err
        log.error("kafka producer failed fatally; replacing it", error=str(err), generation=self.number)
        self._stop.set()
        self._on_fatal(self)

    def track(self, batch: _Batch) -> None:
        with self._lock:
            self._batches.add(batch)
            dead = self.fatal
        if dead is not None:  # raced with a fatal error: nothing of this batch can be delivered
            batch.fail_unreported(KafkaException(dead))

    def produce(self, records: Sequence[OutgoingRecord], start: int, batch: _Batch) -> int:
        """Hand records from ``start`` on to librdkafka; returns the index reached. Under the lock, so
        no record slips into this producer after :meth:`fail` (the retirement's purge would miss it).
        Raises BufferError when librdkafka's queue is full; the caller waits and continues from there.
        A record refused by ``produce`` fails with the rest of the batch, none of which is produced, so a
        stream never has a later record written past an earlier failed one."""
        produce = self.producer.produce
        report = batch.on_delivery
        with self._lock:
            if self.fatal is not None:
                batch.fail_unreported(KafkaException(self.fatal), start)
                return len(records)
            for i in range(start, len(records)):
                rec = records[i]
                try:
                    produce(rec.topic, value=rec.value, key=rec.key, headers=rec.headers,
                            on_delivery=functools.partial(report, i))
                except BufferError:
                    if i > start:
                        return i
                    raise
                except KafkaException as exc:  # refused locally: this record and the rest are not produced
                    batch.fail_unreported(exc, i)
                    if is_fatal(exc):
                        self.fail(exc.args[0])
                    break
        return len(records)

    def untrack(self, batch: _Batch) -> None:
        with self._lock:
            self._batches.discard(batch)

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.producer.poll(0.05)
        if self.fatal is not None:
            self._retire(self.fatal)

    def _retire(self, err: KafkaError) -> None:
        """Drop what the dead producer still holds; whatever it reported delivered before stays delivered."""
        with contextlib.suppress(Exception):
            self.producer.purge(in_queue=True, in_flight=True, blocking=False)
            self.producer.flush(2.0)  # serves the purge reports
        failure = KafkaException(err)
        with self._lock:
            batches = list(self._batches)
        for batch in batches:
            batch.fail_unreported(failure)

    def close(self, timeout_s: float) -> None:
        with contextlib.suppress(Exception):
            self.producer.flush(timeout_s)
        self._stop.set()
        if self._poller is not threading.current_thread():
            self._poller.join(timeout=timeout_s + 2)


class KafkaBridge:
    """Produce records and await their delivery reports; replaces a producer that failed fatally."""

    def __init__(self, settings: KafkaSettings) -> None:
        self._config = producer_config(settings)
        self._lock = threading.Lock()
        self._closed = False
        self.replacements = 0
        self._gen = _Generation(self._config, 0, self._replace)

    @property
    def generation(self) -> int:
        """How many producers came before the current one (0 until a fatal error)."""
        return self._gen.number

    def inject_fatal(self, err: KafkaError) -> None:
        """Treat ``err`` as a fatal error of the current producer (for tests and chaos drills)."""
        self._gen.fail(err)

    def _replace(self, dead: _Generation) -> None:
        with self._lock:
            if self._closed or self._gen is not dead:
                return
            self._gen = _Generation(self._config, dead.number + 1, self._replace)
            self.replacements += 1
        log.warning("kafka producer replaced", generation=self._gen.number)

    async def send(self, records: Sequence[OutgoingRecord]) -> list[Exception | None]:
        """Produce all records; returns, per record, None on delivery or the error."""
        if not records:
            return []
        gen = self._gen
        batch = _Batch(asyncio.get_running_loop(), len(records), gen)
        gen.track(batch)
        try:
            i = 0
            while i < len(records) and not batch.settled:
                try:
                    i = gen.produce(records, i, batch)
                except BufferError:  # local queue full: back-pressure, wait for deliveries
                    await asyncio.sleep(0.01)
            return await batch.future
        finally:
            gen.untrack(batch)

    def close(self, timeout_s: float = 10.0) -> None:
        with self._lock:
            self._closed = True
            gen = self._gen
        gen.close(timeout_s)
