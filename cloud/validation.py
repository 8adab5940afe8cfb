"""Checks every batch before anything of it is written (pure; names the first problem).

Two passes, one verdict. The fast pass reads each field once per record, checks what
identifies a stream (kind, stream id, device, patient pseudonym) once per distinct
combination in the batch rather than once per record, and compares the rest inline; it
only answers yes or no. A batch it does not accept goes through the reference pass, record
by record and rule by rule, which raises naming the first record and the first rule it
breaks. The fast pass checks the same rules (never fewer), so a good batch costs only the
fast pass and every refusal reads exactly as the reference pass words it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

from cardiogate.cloud.settings import IngestLimits
from cardiogate.proto.v1 import telemetry_pb2 as pb

_PSEUDONYM = re.compile(r"^[a-z0-9][a-z0-9-]{2,63}$")
_BODY_FOR_KIND = {pb.STREAM_KIND_ECG: "samples", pb.STREAM_KIND_VITALS: "vitals", pb.STREAM_KIND_ALARMS: "alarm",
                  pb.STREAM_KIND_EVENTS: "event"}
_SUFFIX: dict[int, str] = {kind: "/" + pb.StreamKind.Name(kind).removeprefix("STREAM_KIND_").lower()
                           for kind in _BODY_FOR_KIND}
_WIDTH = {pb.SAMPLE_ENCODING_INT16_LE: 2, pb.SAMPLE_ENCODING_INT32_LE: 4}
_ECG, _VITALS = pb.STREAM_KIND_ECG, pb.STREAM_KIND_VITALS


class InvalidBatch(ValueError):
    """A batch that must be refused as a whole; ``code`` names the cause for metrics."""

    def __init__(self, message: str, code: str = "invalid") -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class CheckedBatch:
    """What checking a batch learned that later steps need, so they need not read every record again."""

    size: int                              # serialized bytes
    senders: frozenset[tuple[str, str]]    # the distinct (patient, device_id) pairs, for authorization


def expected_stream_id(record: pb.Record) -> str:
    return f"{record.device_id}/{pb.StreamKind.Name(record.kind).removeprefix('STREAM_KIND_').lower()}"


def validate_batch(batch: pb.TelemetryBatch, limits: IngestLimits, now_ns: int | None = None,
                   size: int | None = None) -> CheckedBatch:
    """Raise InvalidBatch naming the record and the problem; ``size``: the batch's serialized size
    when the caller already knows it (it saves serializing the batch to measure it)."""
    records = batch.records
    if not records:
        raise InvalidBatch("batch has no records", "empty")
    if len(records) > limits.max_records_per_batch:
        raise InvalidBatch(f"batch has {len(records)} records, limit {limits.max_records_per_batch}",
                           "too_many_records")
    if size is None:
        size = batch.ByteSize()
    if size > limits.max_batch_bytes:
        raise InvalidBatch(f"batch is {size} bytes, limit {limits.max_batch_bytes}", "oversized")
    now = time.time_ns() if now_ns is None else now_ns
    skew = int(limits.max_clock_skew_s * 1e9)
    senders = _fast_pass(records, limits, now, skew)
    if senders is None:
        _reference_pass(records, limits, now, skew)  # raises for any batch the fast pass refused
        senders = frozenset((r.patient, r.device_id) for r in records)
    return CheckedBatch(size, senders)


# -- the fast pass ----------------------------------------------------------------------------------


def _stream_ok(stream_id: str, device_id: str, kind: int, patient: str) -> bool:
    suffix = _SUFFIX.get(kind)
    return suffix is not None and stream_id == device_id + suffix and _PSEUDONYM.fullmatch(patient) is not None


def _fast_pass(records: Sequence[pb.Record], limits: IngestLimits, now: int,
               skew: int) -> frozenset[tuple[str, str]] | None:
    """The distinct (patient, device) pairs if every record passes every rule; None otherwise.

    An ECG record whose body is not a sample block reads as the empty default block, whose
    encoding (unspecified) has no sample width, so the block check refuses it without a
    separate body check."""
    low, high = now - skew, now + skew
    max_samples = limits.max_samples_per_block
    width = _WIDTH.get
    streams: dict[str, tuple[str, int, str]] = {}  # stream id -> (device, kind, patient) last checked
    senders: set[tuple[str, str]] = set()
    last_seq: dict[str, int] = {}
    for r in records:
        sid = r.stream_id
        seen = (r.device_id, r.kind, r.patient)
        if streams.get(sid) != seen:
            if not _stream_ok(sid, *seen):
                return None
            streams[sid] = seen
            senders.add((seen[2], seen[0]))
        seq = r.sequence
        if last_seq.get(sid, -1) >= seq:
            return None
        last_seq[sid] = seq
        kind = seen[1]
        if kind == _ECG:
            b = r.samples
            count = b.sample_count
            if not (0 < count <= max_samples and len(b.samples) == count * width(b.encoding, -1)
                    and 1.0 <= b.sample_rate_hz <= 10000.0 and b.scale > 0 and b.unit
                    and low <= b.first_sample_device_time_ns <= high):
                return None
        elif kind == _VITALS:
            if not r.HasField("vitals"):
                return None
            v = r.vitals
            if not low <= v.device_time_ns <= high \
                    or (v.HasField("heart_rate_bpm") and not 0 <= v.heart_rate_bpm <= 400) \
                    or (v.HasField("spo2_percent") and not 0 <= v.spo2_percent <= 100):
                return None
        else:  # alarms and device events: few, checked by the reference rules
            try:
                _check_body(0, r, limits, now, skew)
            except InvalidBatch:
                return None
    return frozenset(senders)


# -- the reference pass -----------------------------------------------------------------------------


def _reference_pass(records: Sequence[pb.Record], limits: IngestLimits, now: int, skew: int) -> None:
    last_seq: dict[str, int] = {}
    for i, r in enumerate(records):
        if r.kind not in _BODY_FOR_KIND:
            raise InvalidBatch(f"{_where(i, r)}: unknown stream kind {r.kind}", "kind")
        if r.stream_id != expected_stream_id(r):
            raise InvalidBatch(f"{_where(i, r)}: stream_id must be {expected_stream_id(r)!r}", "stream_id")
        if not _PSEUDONYM.fullmatch(r.patient):
            raise InvalidBatch(f"{_where(i, r)}: patient must be a pseudonym like 'pt-0001'", "pseudonym")
        if r.WhichOneof("body") != _BODY_FOR_KIND[r.kind]:
            raise InvalidBatch(f"{_where(i, r)}: body {r.WhichOneof('body')!r} does not match kind", "body")
        if r.stream_id in last_seq and r.sequence <= last_seq[r.stream_id]:
            raise InvalidBatch(f"{_where(i, r)}: sequence numbers must increase within a stream", "sequence")
        last_seq[r.stream_id] = r.sequence
        _check_body(i, r, limits, now, skew)


def _where(i: int, r: pb.Record) -> str:
    return f"record {i} ({r.stream_id!r} #{r.sequence})"


def _check_body(i: int, r: pb.Record, limits: IngestLimits, now: int, skew: int) -> None:
    if r.kind == pb.STREAM_KIND_ECG:
        _check_block(r.samples, i, r, limits, now, skew)
    elif r.kind == pb.STREAM_KIND_VITALS:
        _check_time(r.vitals.device_time_ns, i, r, now, skew)
        if r.vitals.HasField("heart_rate_bpm") and not 0 <= r.vitals.heart_rate_bpm <= 400:
            raise InvalidBatch(f"{_where(i, r)}: heart rate {r.vitals.heart_rate_bpm} out of range", "value_range")
        if r.vitals.HasField("spo2_percent") and not 0 <= r.vitals.spo2_percent <= 100:
            raise InvalidBatch(f"{_where(i, r)}: SpO2 {r.vitals.spo2_percent} out of range", "value_range")
    elif r.kind == pb.STREAM_KIND_EVENTS:
        _check_event(r.event, i, r, now, skew)
    elif r.kind == pb.STREAM_KIND_ALARMS and r.WhichOneof("body") != "alarm":
        raise InvalidBatch(f"{_where(i, r)}: body {r.WhichOneof('body')!r} does not match kind", "body")


def _check_time(t_ns: int, i: int, r: pb.Record, now: int, skew: int) -> None:
    if abs(t_ns - now) > skew:
        raise InvalidBatch(f"{_where(i, r)}: device time is more than the allowed skew away from now", "clock_skew")


def _check_event(e: pb.DeviceEvent, i: int, r: pb.Record, now: int, skew: int) -> None:
    if r.WhichOneof("body") != "event":
        raise InvalidBatch(f"{_where(i, r)}: body {r.WhichOneof('body')!r} does not match kind", "body")
    if e.WhichOneof("event") is None:
        raise InvalidBatch(f"{_where(i, r)}: a device event needs a body", "body")
    _check_time(e.receive_time_ns, i, r, now, skew)
    if e.HasField("gap"):
        g = e.gap
        if g.end_device_time_ns < g.start_device_time_ns or g.device_sequence_last < g.device_sequence_first:
            raise InvalidBatch(f"{_where(i, r)}: a gap must not end before it starts", "gap_bounds")


def _check_block(b: pb.SampleBlock, i: int, r: pb.Record, limits: IngestLimits, now: int, skew: int) -> None:
    width = _WIDTH.get(b.encoding)
    if width is None:
        raise InvalidBatch(f"{_where(i, r)}: unknown sample encoding {b.encoding}", "samples")
    if b.sample_count == 0 or b.sample_count > limits.max_samples_per_block:
        raise InvalidBatch(f"{_where(i, r)}: sample_count {b.sample_count} outside 1..{limits.max_samples_per_block}",
                           "samples")
    if len(b.samples) != b.sample_count * width:
        raise InvalidBatch(f"{_where(i, r)}: {len(b.samples)} bytes do not hold {b.sample_count} samples", "samples")
    if not 1.0 <= b.sample_rate_hz <= 10000.0:
        raise InvalidBatch(f"{_where(i, r)}: sample rate {b.sample_rate_hz} Hz out of range", "samples")
    if not b.scale > 0 or not b.unit:
        raise InvalidBatch(f"{_where(i, r)}: a sample block needs a positive scale and a unit", "samples")
    _check_time(b.first_sample_device_time_ns, i, r, now, skew)
