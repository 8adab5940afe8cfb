"""The Ingest service: validate, de-duplicate, write to Kafka, then ack.

Per stream, records before the ledger's next-expected sequence are duplicates (a
gateway replaying after a break) and are acked without being written again. A
record's ack means Kafka has it: the ledger advances only over records whose
delivery succeeded, contiguously, so a partial failure is retried, not skipped.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
import grpc.aio

from cardiogate.logs import get_logger
from cloud.dedup import SequenceLedger
from cloud.kafka_bridge import KafkaBridge, OutgoingRecord
from cloud.settings import CloudSettings
from cloud.validation import InvalidBatch, validate_batch
from proto.cardiogate.v1 import ingest_pb2, ingest_pb2_grpc
from proto.cardiogate.v1 import telemetry_pb2 as pb

log = get_logger(__name__)


@dataclass
class IngestCounters:
    batches: int = 0
    records_written: int = 0
    duplicates: int = 0
    rejected_batches: int = 0
    kafka_failures: int = 0


class IngestService(ingest_pb2_grpc.IngestServicer):
    def __init__(self, settings: CloudSettings, bridge: KafkaBridge, ledger: SequenceLedger) -> None:
        self._settings = settings
        self._bridge = bridge
        self._ledger = ledger
        self._topics = {pb.STREAM_KIND_ECG: settings.kafka.topic_ecg,
                        pb.STREAM_KIND_VITALS: settings.kafka.topic_vitals,
                        pb.STREAM_KIND_ALARMS: settings.kafka.topic_alarms,
                        pb.STREAM_KIND_EVENTS: settings.kafka.topic_events}
        self.counters = IngestCounters()

    async def Upload(self, request_iterator: AsyncIterator[ingest_pb2.UploadRequest],
                     context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[ingest_pb2.UploadResponse]:
        first = await anext(aiter(request_iterator), None)
        if first is None or first.WhichOneof("message") != "hello" or not first.hello.gateway_id:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the first message must be a Hello with gateway_id")
            return
        gateway = first.hello.gateway_id
        log.info("gateway connected", gateway=gateway, version=first.hello.software_version, peer=context.peer())
        async for request in request_iterator:
            if request.WhichOneof("message") != "batch":
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "after Hello only batches may follow")
                return
            batch = request.batch
            try:
                validate_batch(batch, self._settings.limits)
            except InvalidBatch as exc:
                self.counters.rejected_batches += 1
                log.warning("batch rejected", gateway=gateway, batch_id=batch.batch_id, reason=str(exc))
                yield ingest_pb2.UploadResponse(rejected=ingest_pb2.BatchRejected(batch_id=batch.batch_id,
                                                                                  reason=str(exc)))
                continue
            yield await self._write(gateway, batch)

    async def _write(self, gateway: str, batch: pb.TelemetryBatch) -> ingest_pb2.UploadResponse:
        self.counters.batches += 1
        fresh: list[pb.Record] = []
        dup_ranges: dict[str, tuple[int, int]] = {}
        for r in batch.records:
            if r.sequence < self._ledger.next_expected(gateway, r.stream_id):
                lo, hi = dup_ranges.get(r.stream_id, (r.sequence, r.sequence))
                dup_ranges[r.stream_id] = (min(lo, r.sequence), max(hi, r.sequence))
            else:
                fresh.append(r)
        outgoing = [OutgoingRecord(self._topics[r.kind], r.patient.encode(), r.SerializeToString(),
                                   [("gateway", gateway.encode()), ("stream", r.stream_id.encode()),
                                    ("seq", str(r.sequence).encode())]) for r in fresh]
        results = await self._bridge.send(outgoing) if outgoing else []
        written: dict[str, tuple[int, int]] = {}
        blocked: set[str] = set()
        for r, err in zip(fresh, results, strict=True):
            if r.stream_id in blocked:
                continue
            if err is not None:
                blocked.add(r.stream_id)
                self.counters.kafka_failures += 1
                log.warning("kafka delivery failed", gateway=gateway, stream=r.stream_id, seq=r.sequence,
                            error=str(err))
                continue
            lo, hi = written.get(r.stream_id, (r.sequence, r.sequence))
            written[r.stream_id] = (min(lo, r.sequence), max(hi, r.sequence))
        self._ledger.advance(gateway, {s: hi + 1 for s, (_, hi) in written.items()})
        duplicates = sum(hi - lo + 1 for lo, hi in dup_ranges.values())
        self.counters.records_written += sum(hi - lo + 1 for lo, hi in written.values())
        self.counters.duplicates += duplicates
        ack = ingest_pb2.BatchAck(batch_id=batch.batch_id, duplicates=duplicates)
        for ranges in (dup_ranges, written):
            for stream_id, (lo, hi) in ranges.items():
                ack.ranges.add(stream_id=stream_id, first=lo, last=hi)
        return ingest_pb2.UploadResponse(ack=ack)
