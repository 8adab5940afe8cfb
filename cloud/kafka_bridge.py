"""An asyncio face on confluent-kafka's idempotent producer.

``acks=all`` plus idempotence: a record is acknowledged to the gateway only after the
broker has durably accepted it, and producer retries never duplicate it.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from confluent_kafka import KafkaError, KafkaException, Message, Producer
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from cardiogate.logs import get_logger
from cloud.settings import KafkaSettings

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class OutgoingRecord:
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


class KafkaBridge:
    """Produce records and await their delivery reports."""

    def __init__(self, settings: KafkaSettings) -> None:
        self._producer = Producer({
            "bootstrap.servers": settings.bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "compression.type": "lz4",
            "linger.ms": 5,
            "delivery.timeout.ms": int(settings.delivery_timeout_s * 1000),
        })
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll, name="kafka-poll", daemon=True)
        self._poller.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.05)

    async def send(self, records: Sequence[OutgoingRecord]) -> list[Exception | None]:
        """Produce all records; returns, per record, None on delivery or the error."""
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[None]] = [loop.create_future() for _ in records]

        def report(fut: asyncio.Future[None]) -> Callable[[KafkaError | None, Message[bytes, bytes]], None]:
            def on_delivery(err: KafkaError | None, _msg: Message[bytes, bytes]) -> None:
                def settle() -> None:
                    if fut.done():
                        return
                    if err is None:
                        fut.set_result(None)
                    else:
                        fut.set_exception(KafkaException(err))
                loop.call_soon_threadsafe(settle)
            return on_delivery

        for rec, fut in zip(records, futures, strict=True):
            while True:
                try:
                    self._producer.produce(rec.topic, key=rec.key, value=rec.value, headers=rec.headers,
                                           on_delivery=report(fut))
                    break
                except BufferError:  # local queue full: back-pressure, wait for deliveries
                    await asyncio.sleep(0.01)
        results = await asyncio.gather(*futures, return_exceptions=True)
        return [r if isinstance(r, Exception) else None for r in results]

    def close(self, timeout_s: float = 10.0) -> None:
        with contextlib.suppress(Exception):
            self._producer.flush(timeout_s)
        self._stop.set()
        self._poller.join(timeout=2)
