"""Checks every batch before anything of it is written (pure; returns the first problem)."""

from __future__ import annotations

import re
import time

from cardiogate.cloud.settings import IngestLimits
from cardiogate.proto.v1 import telemetry_pb2 as pb

_PSEUDONYM = re.compile(r"^[a-z0-9][a-z0-9-]{2,63}$")
_BODY_FOR_KIND = {pb.STREAM_KIND_ECG: "samples", pb.STREAM_KIND_VITALS: "vitals", pb.STREAM_KIND_ALARMS: "alarm",
                  pb.STREAM_KIND_EVENTS: "event"}
_WIDTH = {pb.SAMPLE_ENCODING_INT16_LE: 2, pb.SAMPLE_ENCODING_INT32_LE: 4}


class InvalidBatch(ValueError):
    """A batch that must be refused as a whole; ``code`` names the cause for metrics."""

    def __init__(self, message: str, code: str = "invalid") -> None:
        super().__init__(message)
        self.code = code


def expected_stream_id(record: pb.Record) -> str:
    return f"{record.device_id}/{pb.StreamKind.Name(record.kind).removeprefix('STREAM_KIND_').lower()}"


def validate_batch(batch: pb.TelemetryBatch, limits: IngestLimits, now_ns: int | None = None) -> None:
    """Raise InvalidBatch naming the record and the problem."""
    if not batch.records:
        raise InvalidBatch("batch has no records", "empty")
    if len(batch.records) > limits.max_records_per_batch:
        raise InvalidBatch(f"batch has {len(batch.records)} records, limit {limits.max_records_per_batch}",
                           "too_many_records")
    if (size := batch.ByteSize()) > limits.max_batch_bytes:
        raise InvalidBatch(f"batch is {size} bytes, limit {limits.max_batch_bytes}", "oversized")
    now = time.time_ns() if now_ns is None else now_ns
    skew = int(limits.max_clock_skew_s * 1e9)
    last_seq: dict[str, int] = {}
    for i, r in enumerate(batch.records):
        where = f"record {i} ({r.stream_id!r} #{r.sequence})"
        if r.kind not in _BODY_FOR_KIND:
            raise InvalidBatch(f"{where}: unknown stream kind {r.kind}", "kind")
        if r.stream_id != expected_stream_id(r):
            raise InvalidBatch(f"{where}: stream_id must be {expected_stream_id(r)!r}", "stream_id")
        if not _PSEUDONYM.fullmatch(r.patient):
            raise InvalidBatch(f"{where}: patient must be a pseudonym like 'pt-0001'", "pseudonym")
        if r.WhichOneof("body") != _BODY_FOR_KIND[r.kind]:
            raise InvalidBatch(f"{where}: body {r.WhichOneof('body')!r} does not match kind", "body")
        if r.stream_id in last_seq and r.sequence <= last_seq[r.stream_id]:
            raise InvalidBatch(f"{where}: sequence numbers must increase within a stream", "sequence")
        last_seq[r.stream_id] = r.sequence
        if r.kind == pb.STREAM_KIND_ECG:
            _check_block(r.samples, where, limits, now, skew)
        elif r.kind == pb.STREAM_KIND_VITALS:
            _check_time(r.vitals.device_time_ns, where, now, skew)
            if r.vitals.HasField("heart_rate_bpm") and not 0 <= r.vitals.heart_rate_bpm <= 400:
                raise InvalidBatch(f"{where}: heart rate {r.vitals.heart_rate_bpm} out of range", "value_range")
            if r.vitals.HasField("spo2_percent") and not 0 <= r.vitals.spo2_percent <= 100:
                raise InvalidBatch(f"{where}: SpO2 {r.vitals.spo2_percent} out of range", "value_range")
        elif r.kind == pb.STREAM_KIND_EVENTS:
            _check_event(r.event, where, now, skew)


def _check_time(t_ns: int, where: str, now: int, skew: int) -> None:
    if abs(t_ns - now) > skew:
        raise InvalidBatch(f"{where}: device time is more than the allowed skew away from now", "clock_skew")


def _check_event(e: pb.DeviceEvent, where: str, now: int, skew: int) -> None:
    if e.WhichOneof("event") is None:
        raise InvalidBatch(f"{where}: a device event needs a body", "body")
    _check_time(e.receive_time_ns, where, now, skew)
    if e.HasField("gap"):
        g = e.gap
        if g.end_device_time_ns < g.start_device_time_ns or g.device_sequence_last < g.device_sequence_first:
            raise InvalidBatch(f"{where}: a gap must not end before it starts", "gap_bounds")


def _check_block(b: pb.SampleBlock, where: str, limits: IngestLimits, now: int, skew: int) -> None:
    width = _WIDTH.get(b.encoding)
    if width is None:
        raise InvalidBatch(f"{where}: unknown sample encoding {b.encoding}", "samples")
    if b.sample_count == 0 or b.sample_count > limits.max_samples_per_block:
        raise InvalidBatch(f"{where}: sample_count {b.sample_count} outside 1..{limits.max_samples_per_block}",
                           "samples")
    if len(b.samples) != b.sample_count * width:
        raise InvalidBatch(f"{where}: {len(b.samples)} bytes do not hold {b.sample_count} samples", "samples")
    if not 1.0 <= b.sample_rate_hz <= 10000.0:
        raise InvalidBatch(f"{where}: sample rate {b.sample_rate_hz} Hz out of range", "samples")
    if not b.scale > 0 or not b.unit:
        raise InvalidBatch(f"{where}: a sample block needs a positive scale and a unit", "samples")
    _check_time(b.first_sample_device_time_ns, where, now, skew)
