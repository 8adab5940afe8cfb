"""Per-device processing: decode notifications, time-stamp, cut ECG blocks, run alarm rules.

Pure apart from the clock passed in: the BLE session hands raw bytes and the receive
time; a :class:`RecordSink` receives protobuf records and alarm events. Malformed
packets are counted and logged, and never end the session.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from cardiogate.logs import get_logger
from edge.alarms import AlarmEvent, UpperLimitAlarm, UpperLimitRule
from edge.codecs.ecg_waveform import EcgPacket, decode_ecg_packet
from edge.codecs.errors import DecodeError
from edge.codecs.heart_rate import decode_heart_rate_measurement
from proto.cardiogate.v1 import telemetry_pb2 as pb

log = get_logger(__name__)


class RecordSink(Protocol):
    """Where a device's output goes (outbox, MQTT, tests)."""

    def emit_record(self, record: pb.Record) -> None: ...

    def emit_alarm(self, patient: str, device_id: str, event: AlarmEvent) -> None: ...


@dataclass
class DeviceCounters:
    """Per-device health counters, shown in status and logs."""

    hr_packets: int = 0
    ecg_packets: int = 0
    ecg_samples: int = 0
    decode_errors: int = 0
    ecg_gaps: int = 0
    ecg_missing_packets: int = 0
    last_heart_rate: int | None = None


@dataclass
class _Block:
    first_time_us: int
    receive_ns: int
    sample_rate: int
    resolution_nv: int
    seq_first: int
    seq_last: int
    chunks: list[bytes] = field(default_factory=list)
    count: int = 0


def stream_id(device_id: str, kind: pb.StreamKind.ValueType) -> str:
    """Stable stream identifier: '<device>/<kind>'."""
    return f"{device_id}/{pb.StreamKind.Name(kind).removeprefix('STREAM_KIND_').lower()}"


class DeviceProcessor:
    """Turns one wearable's notifications into records and alarms."""

    def __init__(self, device_id: str, patient: str, sink: RecordSink, rules: list[UpperLimitRule],
                 block_samples: int = 250) -> None:
        self.device_id = device_id
        self.patient = patient
        self._sink = sink
        self._alarms = [UpperLimitAlarm(rule, patient) for rule in rules]
        self._block_samples = block_samples
        self._block: _Block | None = None
        self._next_seq: int | None = None
        self._offset_ns: int | None = None  # device clock - gateway clock, min-delay estimate
        self.counters = DeviceCounters()

    # -- heart rate ---------------------------------------------------------
    def on_heart_rate(self, data: bytes | bytearray, receive_ns: int) -> None:
        try:
            m = decode_heart_rate_measurement(data)
        except DecodeError as exc:
            self._decode_error("heart_rate", exc, data)
            return
        self.counters.hr_packets += 1
        self.counters.last_heart_rate = m.heart_rate_bpm
        device_ns = receive_ns + (self._offset_ns or 0)
        vitals = pb.VitalsRecord(device_time_ns=device_ns, receive_time_ns=receive_ns,
                                 heart_rate_bpm=float(m.heart_rate_bpm), rr_intervals_ms=m.rr_intervals_ms)
        if m.sensor_contact is not None:
            vitals.sensor_contact = m.sensor_contact
        self._sink.emit_record(self._record(pb.STREAM_KIND_VITALS, vitals=vitals))
        for alarm in self._alarms:
            event = alarm.update(float(m.heart_rate_bpm), device_ns, receive_ns)
            if event is not None:
                self._sink.emit_alarm(self.patient, self.device_id, event)

    # -- ECG ----------------------------------------------------------------
    def on_ecg(self, data: bytes | bytearray, receive_ns: int) -> None:
        try:
            p = decode_ecg_packet(data)
        except DecodeError as exc:
            self._decode_error("ecg", exc, data)
            return
        self.counters.ecg_packets += 1
        self.counters.ecg_samples += len(p.samples)
        end_device_ns = (p.first_sample_time_us * 1000) + int(len(p.samples) * 1e9 / p.sample_rate_hz)
        offset = end_device_ns - receive_ns
        self._offset_ns = offset if self._offset_ns is None else max(self._offset_ns, offset)
        if self._next_seq is not None and p.sequence != self._next_seq:
            missing = (p.sequence - self._next_seq) & 0xFFFFFFFF
            self.counters.ecg_gaps += 1
            if missing < 0x80000000:
                self.counters.ecg_missing_packets += missing
                log.warning("ecg sequence gap", device=self.device_id, expected=self._next_seq, got=p.sequence,
                            missing_packets=missing)
            else:  # the counter went backwards: a repeated packet or a device restart, not 4 billion losses
                log.warning("ecg sequence went backwards", device=self.device_id, expected=self._next_seq,
                            got=p.sequence)
            self.flush()
        self._next_seq = (p.sequence + 1) & 0xFFFFFFFF
        self._append(p, receive_ns)

    def _append(self, p: EcgPacket, receive_ns: int) -> None:
        b = self._block
        if b is not None and (b.sample_rate != p.sample_rate_hz or b.resolution_nv != p.resolution_nv):
            self.flush()
            b = None
        if b is None:
            b = self._block = _Block(p.first_sample_time_us, receive_ns, p.sample_rate_hz, p.resolution_nv,
                                     p.sequence, p.sequence)
        b.chunks.append(np.asarray(p.samples, dtype="<i2").tobytes())
        b.count += len(p.samples)
        b.seq_last = p.sequence
        if b.count >= self._block_samples:
            self.flush()

    def flush(self) -> None:
        """Emit the pending ECG block (on gaps, when full, at disconnect and shutdown)."""
        b, self._block = self._block, None
        if b is None or b.count == 0:
            return
        block = pb.SampleBlock(
            first_sample_device_time_ns=b.first_time_us * 1000, receive_time_ns=b.receive_ns,
            sample_rate_hz=float(b.sample_rate), scale=b.resolution_nv / 1000.0, unit="uV",
            encoding=pb.SAMPLE_ENCODING_INT16_LE, samples=b"".join(b.chunks), sample_count=b.count,
            device_sequence_first=b.seq_first, device_sequence_last=b.seq_last)
        self._sink.emit_record(self._record(pb.STREAM_KIND_ECG, samples=block))

    def on_disconnected(self) -> None:
        """Close the open block; the next packet starts a new one (the gap shows in device sequences)."""
        self.flush()

    # -- helpers ------------------------------------------------------------
    def _record(self, kind: pb.StreamKind.ValueType, **body: object) -> pb.Record:
        return pb.Record(stream_id=stream_id(self.device_id, kind), device_id=self.device_id,
                         patient=self.patient, kind=kind, **body)  # type: ignore[arg-type]

    def _decode_error(self, what: str, exc: DecodeError, data: bytes | bytearray) -> None:
        self.counters.decode_errors += 1
        log.warning("decode error", device=self.device_id, characteristic=what, error=str(exc),
                    length=len(data), head=bytes(data[:24]).hex())
