"""Read cardiogate records back from Kafka (demo status, end-to-end tests, verification).

Reads partitions directly from offset 0 (no consumer group), so it sees everything
without waiting for a group rebalance, and never trusts watermarks for completeness.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

from cardiogate.proto.v1 import telemetry_pb2 as pb


@dataclass(frozen=True, slots=True)
class KafkaRecord:
    topic: str
    partition: int
    offset: int
    record: pb.Record
    headers: dict[str, bytes]


class RecordReader:
    """Tails one or more topics from the beginning."""

    def __init__(self, bootstrap: str, topics: list[str]) -> None:
        from confluent_kafka import Consumer, TopicPartition

        self._consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"cardiogate-reader-{time.time_ns()}",
                                   "enable.auto.commit": False, "auto.offset.reset": "earliest"})
        meta = self._consumer.list_topics(timeout=10)
        parts = [TopicPartition(t, p, 0) for t in topics if t in meta.topics for p in meta.topics[t].partitions]
        self._consumer.assign(parts)

    def poll(self, max_wait_s: float = 0.5, max_records: int = 10000) -> Iterator[KafkaRecord]:
        """Yield what arrives within ``max_wait_s``."""
        deadline = time.monotonic() + max_wait_s
        n = 0
        while n < max_records:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            msg = self._consumer.poll(min(remaining, 0.2))
            if msg is None or msg.error():
                continue
            record = pb.Record()
            record.ParseFromString(msg.value() or b"")
            raw_headers: list[tuple[str, bytes | None]] = list(msg.headers() or [])
            headers = {k: v for k, v in raw_headers if isinstance(v, bytes)}
            n += 1
            yield KafkaRecord(str(msg.topic()), int(msg.partition() or 0), int(msg.offset() or 0), record, headers)

    def close(self) -> None:
        self._consumer.close()
