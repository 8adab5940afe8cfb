"""Risk updates straight from Kafka, for an API without Redis.

Without Redis the processor's pub/sub cannot reach the API's subscribers. Each API replica then
reads ``risk-events`` itself from the end of every partition (assigned, no consumer group: every
replica must see every report) and hands each report to its in-process hub. Slower than Redis by
the consumer's fetch wait, and every replica reads the whole topic: fine for a demo or one ward,
which is what a deployment without Redis is.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Coroutine
from typing import Any

from confluent_kafka import OFFSET_END, Consumer, KafkaException, TopicPartition

from cardiogate.core.logs import get_logger

log = get_logger(__name__)

Publish = Callable[[str, bytes], Coroutine[Any, Any, None]]


class RiskTail:
    """A thread that follows ``topic`` from its end and publishes each (patient key, report bytes) on the loop."""

    def __init__(self, bootstrap: str, topic: str, publish: Publish, loop: asyncio.AbstractEventLoop) -> None:
        self._bootstrap = bootstrap
        self._topic = topic
        self._publish = publish
        self._loop = loop
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="risk-tail", daemon=True)
        self.delivered = 0

    def start(self) -> None:
        self._thread.start()
        log.info("live risk updates from kafka (no redis)", topic=self._topic, kafka=self._bootstrap)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _consumer(self) -> Consumer | None:
        consumer = Consumer({"bootstrap.servers": self._bootstrap, "group.id": "cardiogate-api-risk-tail",
                             "enable.auto.commit": False, "fetch.wait.max.ms": 100,
                             # the processor writes in transactions committed every few seconds; a live view
                             # shows a report at once, and a report of an aborted transaction is replaced by
                             # its retry with the same content
                             "isolation.level": "read_uncommitted"})
        while not self._stop.is_set():
            try:
                meta = consumer.list_topics(self._topic, timeout=5)
                partitions = meta.topics[self._topic].partitions if self._topic in meta.topics else {}
                if partitions and meta.topics[self._topic].error is None:
                    consumer.assign([TopicPartition(self._topic, p, OFFSET_END) for p in partitions])
                    return consumer
            except KafkaException as exc:
                log.info("waiting for the risk topic", topic=self._topic, error=str(exc))
            self._stop.wait(2.0)
        consumer.close()
        return None

    def _run(self) -> None:
        consumer = self._consumer()
        if consumer is None:
            return
        try:
            while not self._stop.is_set():
                msg = consumer.poll(0.2)
                if msg is None or msg.error() is not None:
                    continue
                key, value = msg.key(), msg.value()
                if not key or not value:
                    continue
                patient = key.decode("utf-8", errors="replace")
                with contextlib.suppress(RuntimeError):  # the loop closed while stopping
                    asyncio.run_coroutine_threadsafe(self._publish(patient, bytes(value)), self._loop)
                    self.delivered += 1
        finally:
            consumer.close()
