"""Kafka -> cloud database: the consumers behind the dashboards (``cardiogate cloud consume``).

Partitions are assigned explicitly rather than through a consumer group: no rebalance
pauses (tansu joins a group only after about half the session timeout), and each
partition's next offset is stored in the same database transaction as the rows it
produced, so a crash never applies a message twice or skips one. Records Kafka holds
twice are absorbed by the idempotent writes in :mod:`cardiogate.cloud.store`.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
import time
from collections import Counter

from confluent_kafka import Consumer, TopicPartition
from sqlalchemy import Engine, select

from cardiogate.cloud.db import consumer_offsets, make_engine
from cardiogate.cloud.kafka_bridge import ensure_topics
from cardiogate.cloud.settings import CloudSettings
from cardiogate.cloud.store import apply, decode, save_offsets
from cardiogate.core import metrics as prometheus
from cardiogate.core.logs import get_logger

log = get_logger(__name__)
APPLIED = prometheus.counter("store_records_applied", "Kafka records applied to the dashboard tables, by outcome.",
                             ("outcome",))
LAG = prometheus.gauge("store_consumer_lag_records", "Records the store consumers have yet to apply, by partition.",
                       ("topic", "partition"))
FAILED_BATCHES = prometheus.counter("store_failed_batches", "Consumer batches rolled back (database or broker away); "
                                                            "retried from the stored position.")

_REFRESH_S = 30.0  # how often new partitions are looked for


class StoreConsumer:
    """Reads vitals, alarms and device events and applies them to the dashboard tables."""

    def __init__(self, settings: CloudSettings, engine: Engine) -> None:
        self._settings = settings.consumers
        self._engine = engine
        k = settings.kafka
        self._topics = [k.topic_vitals, k.topic_alarms, k.topic_events]
        self._consumer = Consumer({"bootstrap.servers": k.bootstrap, "group.id": f"cardiogate-{self._settings.name}",
                                   "enable.auto.commit": False, "enable.auto.offset.store": False,
                                   "auto.offset.reset": "earliest"})
        self._assigned: set[tuple[str, int]] = set()
        self._refreshed = -_REFRESH_S
        self.applied: Counter[str] = Counter()

    def _mine(self, partition: int) -> bool:
        return partition % self._settings.instances == self._settings.instance

    def refresh_assignment(self) -> None:
        """Assign our share of every partition of our topics, resuming at the stored offsets."""
        meta = self._consumer.list_topics(timeout=10)
        wanted = {(t, p) for t in self._topics if t in meta.topics for p in meta.topics[t].partitions if self._mine(p)}
        self._refreshed = time.monotonic()
        if wanted == self._assigned:
            return
        with self._engine.connect() as conn:
            stored = {(str(t), int(p)): int(o) for t, p, o in conn.execute(
                select(consumer_offsets.c.topic, consumer_offsets.c.partition, consumer_offsets.c.next_offset)
                .where(consumer_offsets.c.consumer == self._settings.name))}
        self._consumer.assign([TopicPartition(t, p, stored.get((t, p), 0)) for t, p in sorted(wanted)])
        self._assigned = wanted
        log.info("consumer assigned", consumer=self._settings.name, partitions=len(wanted),
                 resumed=sum(1 for tp in wanted if tp in stored))

    def poll_once(self, timeout_s: float | None = None) -> int:
        """Consume up to ``max_batch`` messages and apply them in one transaction; returns how many."""
        if time.monotonic() - self._refreshed > _REFRESH_S:
            self.refresh_assignment()
        messages = self._consumer.consume(self._settings.max_batch, self._settings.poll_s
                                          if timeout_s is None else timeout_s)
        offsets: dict[tuple[str, int], int] = {}
        outcome: Counter[str] = Counter()
        with self._engine.begin() as conn:
            for msg in messages:
                if msg.error():
                    log.warning("kafka consumer error", error=str(msg.error()))
                    continue
                topic, partition, offset = str(msg.topic()), int(msg.partition() or 0), int(msg.offset() or 0)
                delivered = decode(msg.value(), msg.headers())
                outcome[apply(conn, delivered) if delivered is not None else "undecodable"] += 1
                offsets[(topic, partition)] = offset + 1
            if offsets:
                save_offsets(conn, self._settings.name, offsets)
        self.applied.update(outcome)
        self._publish_lag(offsets)
        for kind, count in outcome.items():
            APPLIED.labels(outcome=kind).inc(count)
        if outcome["undecodable"]:
            log.warning("skipped messages that are not cardiogate records", count=outcome["undecodable"])
        return sum(outcome.values())

    def _publish_lag(self, positions: dict[tuple[str, int], int]) -> None:
        """Records still to read per partition, from the broker's high watermark as the last fetch saw it."""
        for (topic, partition), position in positions.items():
            _, high = self._consumer.get_watermark_offsets(TopicPartition(topic, partition), cached=True)
            if high >= 0:
                LAG.labels(topic=topic, partition=str(partition)).set(max(0, high - position))

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.poll_once()
            except Exception as exc:  # the database or broker is away: keep the position, wait, retry
                FAILED_BATCHES.inc()
                log.warning("consumer batch failed; retrying from the stored position", error=repr(exc))
                self._assigned = set()  # re-seek to the stored offsets
                self._refreshed = 0.0
                stop.wait(2.0)

    def close(self) -> None:
        self._consumer.close()


async def run_consumers(settings: CloudSettings, stop: asyncio.Event | None = None) -> None:
    """Run the store consumers until SIGTERM/SIGINT (or ``stop`` is set)."""
    engine = make_engine(settings.db_url)
    await asyncio.to_thread(ensure_topics, settings.kafka)
    consumer = StoreConsumer(settings, engine)
    metrics_server = prometheus.start(settings.consumers.metrics, "consumers")
    halt = threading.Event()
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
    print(f"cloud: consumers reading {settings.kafka.bootstrap} into {engine.url.render_as_string()}", flush=True)
    worker = asyncio.create_task(asyncio.to_thread(consumer.run, halt))
    try:
        await asyncio.wait({worker, asyncio.create_task(stop.wait())}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        halt.set()
        await asyncio.gather(worker, return_exceptions=True)
        consumer.close()
        engine.dispose()
        if metrics_server is not None:
            metrics_server.close()
        log.info("consumers stopped", applied=dict(consumer.applied))
