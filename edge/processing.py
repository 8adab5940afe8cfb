"""Per-device processing: decode notifications, time-stamp, cut ECG blocks, feed the alarm engine.

Pure apart from the clock passed in: the BLE session hands raw bytes and the receive
time; a :class:`RecordSink` receives protobuf records and observations for the alarm engine. Malformed
packets are counted and logged, and never end the session. Every sample carries the
device time (the wearable's clock, or the gateway's estimate of it for characteristics
without timestamps) and the receive time; ECG blocks also carry the device time mapped
onto the gateway clock with the estimated drift.

A sink that is also an :class:`EcgTailStore` (the gateway, over its outbox) makes ECG
continuity survive a restart: each device's ECG blocks and gap records are stored
together with the tail they account for, and a new processor resumes from that tail.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from cardiogate.core.logs import get_logger
from cardiogate.edge.alarm_engine.model import TechnicalCondition
from cardiogate.edge.clock import ClockTracker
from cardiogate.edge.codecs.battery import decode_battery_level
from cardiogate.edge.codecs.blood_pressure import decode_blood_pressure_measurement
from cardiogate.edge.codecs.current_time import decode_current_time
from cardiogate.edge.codecs.ecg_waveform import decode_ecg_packet
from cardiogate.edge.codecs.errors import DecodeError
from cardiogate.edge.codecs.heart_rate import decode_heart_rate_measurement
from cardiogate.edge.codecs.polar_pmd import (
    ECG_SAMPLE_RATE_HZ,
    PPG_SAMPLE_RATE_HZ,
    PmdMeasurementType,
    decode_pmd_response,
    decode_polar_ecg_frame,
    decode_polar_ppg_frame,
    first_sample_time_ns,
    pmd_frame_type,
    polar_to_unix_ns,
)
from cardiogate.edge.codecs.pulse_oximeter import decode_plx_continuous_measurement, decode_plx_spot_check_measurement
from cardiogate.edge.dsp.ppg import PpgMonitor
from cardiogate.edge.dsp.vf import VfVerdict
from cardiogate.edge.dsp.vt import VtConfig
from cardiogate.edge.ecg_assembler import EcgAssembler, EcgFrame, EcgTail
from cardiogate.edge.ecg_monitor import RHYTHM_NAMES, AuxKind, EcgMonitor, MonitoredBeat, MonitorOutput
from cardiogate.edge.gateway_metrics import DECODE_ERRORS, ECG_GAPS, ECG_MISSING_SAMPLES, RR_DROPPED
from cardiogate.edge.inference import RhythmClassifier, RhythmResult
from cardiogate.edge.settings import AnalysisSettings
from cardiogate.proto.contracts import stream_id_for
from cardiogate.proto.v1 import telemetry_pb2 as pb

log = get_logger(__name__)


class RecordSink(Protocol):
    """Where a device's output goes: records to the outbox, observations to the alarm engine."""

    def emit_record(self, record: pb.Record) -> None: ...

    def observe_vitals(self, patient: str, device_id: str, device_ns: int, *, hr: float | None = None,
                       spo2: float | None = None, systolic: float | None = None) -> None: ...

    def observe_technical(self, patient: str, device_id: str, kind: TechnicalCondition, active: bool,
                          device_ns: int) -> None: ...

    def observe_beats(self, patient: str, device_id: str, complete_ns: int, beats: list[MonitoredBeat],
                      interrupted: bool = False) -> None: ...

    def observe_rhythm(self, patient: str, device_id: str, end_ns: int, rhythm: RhythmResult,
                       window_uv: npt.NDArray[np.float64] | None = None, sample_rate_hz: float = 0.0) -> None: ...

    def observe_vf(self, patient: str, device_id: str, end_ns: int, verdict: VfVerdict, reason: str) -> None: ...


@runtime_checkable
class EcgTailStore(Protocol):
    """A sink that stores records atomically with ECG tails, and gives a device's tail back after a restart.

    Optional on top of :class:`RecordSink` (the device manager hands processors one sink), so it
    is detected with ``isinstance``; without it ECG continuity starts afresh with each process.
    """

    def emit_records(self, records: Sequence[pb.Record], ecg_tails: Mapping[str, EcgTail] | None = None) -> None: ...

    def load_ecg_tail(self, device_id: str) -> EcgTail | None: ...


@dataclass
class DeviceCounters:
    """Per-device health counters, shown in status and logs."""

    hr_packets: int = 0
    ecg_packets: int = 0
    ecg_samples: int = 0
    vitals_packets: int = 0
    decode_errors: int = 0
    rr_dropped: int = 0  # RR values of 0 removed from otherwise good Heart Rate Measurements
    ecg_gaps: int = 0
    ecg_missing_samples: int = 0
    clock_jumps: int = 0
    pmd_refusals: int = 0
    ppg_packets: int = 0
    last_heart_rate: int | None = None


@dataclass
class DeviceState:
    """What the gateway knows about the wearable right now (health, for MQTT and heartbeats)."""

    battery_percent: int | None = None
    sensor_contact: bool | None = None
    spo2_percent: float | None = None
    systolic_mmhg: float | None = None
    diastolic_mmhg: float | None = None
    last_seen_ns: int | None = None
    manufacturer: str | None = None
    model: str | None = None
    firmware: str | None = None


def stream_id(device_id: str, kind: pb.StreamKind.ValueType) -> str:
    """Stable stream identifier: '<device>/<kind>'."""
    return str(stream_id_for(device_id, kind))


class DeviceProcessor:
    """Turns one wearable's notifications into records and alarms."""

    def __init__(self, device_id: str, patient: str, sink: RecordSink, block_samples: int = 250,
                 battery_low_percent: int = 15, analysis: AnalysisSettings | None = None,
                 rhythm: RhythmClassifier | None = None) -> None:
        self.device_id = device_id
        self.patient = patient
        self._sink = sink
        self._analysis = analysis if analysis is not None else AnalysisSettings(enabled=False)
        self._rhythm = rhythm
        self.monitor: EcgMonitor | None = None
        self.last_rhythm: RhythmResult | None = None
        self._battery_low_percent = battery_low_percent
        self._assembler = EcgAssembler(block_samples)
        self._tails = sink if isinstance(sink, EcgTailStore) else None
        self._stored_tail = self._tails.load_ecg_tail(device_id) if self._tails is not None else None
        if self._stored_tail is not None:
            self._assembler.resume(self._stored_tail)
            log.info("ecg stream resumed", device=device_id, seq=self._stored_tail.seq,
                     end_ns=self._stored_tail.end_ns)
        self.polar_rate_hz = ECG_SAMPLE_RATE_HZ
        self.ppg_rate_hz = PPG_SAMPLE_RATE_HZ  # what the gateway asked the sensor for (profiles)
        self.ppg: PpgMonitor | None = None
        self._ppg_end_ns: int | None = None
        self._ppg_next_read_ns = 0
        self._device_offset_ns: int | None = None  # device clock - gateway clock, from the latest frame
        # The same patient's other devices (set by the device manager): a PPG-only armband's pulse
        # reaches the VT check of the chest strap's ECG through them.
        self.peers: Callable[[], Iterable[DeviceProcessor]] | None = None
        self.clock = ClockTracker()
        self.counters = DeviceCounters()
        self.state = DeviceState()
        self.device_kind = "unknown"  # a metric label, set from the services found at connect

    # -- time ---------------------------------------------------------------
    def device_time_for(self, receive_ns: int) -> int:
        """The wearable's clock at a receive time (for characteristics that carry no timestamp)."""
        est = self.clock.estimate
        return receive_ns + (est.offset_at(receive_ns) if est is not None else 0)

    def _seen(self, receive_ns: int) -> None:
        self.state.last_seen_ns = receive_ns

    # -- heart rate ---------------------------------------------------------
    def on_heart_rate(self, data: bytes | bytearray, receive_ns: int) -> None:
        try:
            m = decode_heart_rate_measurement(data)
        except DecodeError as exc:
            self._decode_error("heart_rate", exc, data)
            return
        self._seen(receive_ns)
        self.counters.hr_packets += 1
        self.counters.last_heart_rate = m.heart_rate_bpm
        if m.rr_dropped:
            self.counters.rr_dropped += m.rr_dropped
            RR_DROPPED.labels(self.device_kind).inc(m.rr_dropped)
            log.debug("invalid rr dropped", device=self.device_id, dropped=m.rr_dropped, kept=len(m.rr_intervals_1024))
        device_ns = self.device_time_for(receive_ns)
        vitals = pb.VitalsRecord(device_time_ns=device_ns, receive_time_ns=receive_ns, source="hrm",
                                 heart_rate_bpm=float(m.heart_rate_bpm), rr_intervals_ms=m.rr_intervals_ms)
        if m.sensor_contact is not None:
            vitals.sensor_contact = m.sensor_contact
            self._contact(m.sensor_contact, device_ns)
        self.emit_vitals(vitals)
        if m.sensor_contact is not False:  # a rate measured without skin contact is not a heart rate
            self._sink.observe_vitals(self.patient, self.device_id, device_ns, hr=float(m.heart_rate_bpm))

    def emit_vitals(self, vitals: pb.VitalsRecord) -> None:
        self.counters.vitals_packets += 1
        self._sink.emit_record(self._record(pb.STREAM_KIND_VITALS, vitals=vitals))

    def _contact(self, contact: bool, device_ns: int) -> None:
        self.state.sensor_contact = contact
        self._sink.observe_technical(self.patient, self.device_id, "lead_off", not contact, device_ns)

    # -- pulse oximetry and blood pressure ------------------------------------
    def on_plx_continuous(self, data: bytes | bytearray, receive_ns: int) -> None:
        try:
            m = decode_plx_continuous_measurement(data)
        except DecodeError as exc:
            self._decode_error("plx_continuous", exc, data)
            return
        self._plx(m.normal.spo2_percent, m.normal.pulse_rate_bpm, m.sensor_off,
                  m.pulse_amplitude_index.number() if m.pulse_amplitude_index else None, receive_ns, None)

    def on_plx_spot_check(self, data: bytes | bytearray, receive_ns: int) -> None:
        try:
            m = decode_plx_spot_check_measurement(data)
        except DecodeError as exc:
            self._decode_error("plx_spot_check", exc, data)
            return
        stamped = m.timestamp.to_unix_ns() if m.timestamp is not None and not m.clock_not_set else None
        self._plx(m.reading.spo2_percent, m.reading.pulse_rate_bpm, m.sensor_off,
                  m.pulse_amplitude_index.number() if m.pulse_amplitude_index else None, receive_ns, stamped)

    def _plx(self, spo2: float | None, pr: float | None, sensor_off: bool | None, pai: float | None,
             receive_ns: int, device_ns: int | None) -> None:
        self._seen(receive_ns)
        device_ns = device_ns if device_ns is not None else self.device_time_for(receive_ns)
        vitals = pb.VitalsRecord(device_time_ns=device_ns, receive_time_ns=receive_ns, source="plx")
        if spo2 is not None:
            vitals.spo2_percent = spo2
            self.state.spo2_percent = spo2
        if pr is not None:
            vitals.pulse_rate_bpm = pr
        if pai is not None:
            vitals.perfusion_index = pai
        if sensor_off is not None:
            vitals.sensor_contact = not sensor_off
            self._contact(not sensor_off, device_ns)
        self.emit_vitals(vitals)
        if spo2 is not None and not sensor_off:
            self._sink.observe_vitals(self.patient, self.device_id, device_ns, spo2=spo2)

    def on_blood_pressure(self, data: bytes | bytearray, receive_ns: int) -> None:
        """A cuff reading; stored readings arrive late, so the cuff's own timestamp wins when it has one."""
        try:
            m = decode_blood_pressure_measurement(data)
        except DecodeError as exc:
            self._decode_error("blood_pressure", exc, data)
            return
        self._seen(receive_ns)
        stamped = m.timestamp.to_unix_ns() if m.timestamp is not None else None
        device_ns = stamped if stamped is not None else self.device_time_for(receive_ns)
        vitals = pb.VitalsRecord(device_time_ns=device_ns, receive_time_ns=receive_ns, source="bpm")
        for field_name, value in (("systolic_mmhg", m.systolic_mmhg), ("diastolic_mmhg", m.diastolic_mmhg),
                                  ("mean_arterial_mmhg", m.mean_arterial_pressure_mmhg)):
            if value is not None:
                setattr(vitals, field_name, value)
        if m.pulse_rate_bpm is not None:
            vitals.pulse_rate_bpm = m.pulse_rate_bpm
        self.state.systolic_mmhg = m.systolic_mmhg
        self.state.diastolic_mmhg = m.diastolic_mmhg
        self.emit_vitals(vitals)
        if m.systolic_mmhg is not None:
            self._sink.observe_vitals(self.patient, self.device_id, device_ns, systolic=m.systolic_mmhg)

    # -- battery ------------------------------------------------------------
    def on_battery(self, data: bytes | bytearray, receive_ns: int) -> None:
        try:
            percent = decode_battery_level(data)
        except DecodeError as exc:
            self._decode_error("battery", exc, data)
            return
        self.on_battery_level(percent, receive_ns)

    def on_battery_level(self, percent: int, receive_ns: int) -> None:
        self._seen(receive_ns)
        changed = percent != self.state.battery_percent
        self.state.battery_percent = percent
        self._sink.observe_technical(self.patient, self.device_id, "battery_low",
                                     percent <= self._battery_low_percent, self.device_time_for(receive_ns))
        if changed:
            self.emit_health(receive_ns)

    # -- ECG ----------------------------------------------------------------
    def on_ecg(self, data: bytes | bytearray, receive_ns: int) -> None:
        """Our ECG waveform characteristic (docs/ecg-waveform-spec.md)."""
        try:
            p = decode_ecg_packet(data)
        except DecodeError as exc:
            self._decode_error("ecg", exc, data)
            return
        samples = np.asarray(p.samples, dtype=np.int32)
        self.on_ecg_frame(EcgFrame(p.first_sample_time_us * 1000, float(p.sample_rate_hz), p.resolution_nv / 1000.0,
                                   samples, p.sequence, receive_ns))

    def on_polar_ecg(self, data: bytes | bytearray, receive_ns: int) -> None:
        """Polar Measurement Data ECG: 24-bit microvolt samples, the last sample's time in ns since 2000."""
        try:
            f = decode_polar_ecg_frame(data)
            first_ns = polar_to_unix_ns(first_sample_time_ns(f, self.polar_rate_hz))
        except DecodeError as exc:
            self._decode_error("polar_ecg", exc, data)
            return
        except ValueError as exc:  # a timestamp that cannot be placed in time
            self._decode_error("polar_ecg", DecodeError(str(exc)), data)
            return
        self.on_ecg_frame(EcgFrame(first_ns, float(self.polar_rate_hz), 1.0, f.samples_uv, None, receive_ns))

    def on_pmd_data(self, data: bytes | bytearray, receive_ns: int) -> None:
        """A PMD data notification: ECG or PPG, told apart by its measurement type byte."""
        try:
            kind = pmd_frame_type(data)
        except DecodeError as exc:
            self._decode_error("pmd_data", exc, data)
            return
        if kind == PmdMeasurementType.PPG:
            self.on_polar_ppg(data, receive_ns)
        else:
            self.on_polar_ecg(data, receive_ns)  # ECG, or a decode error that names the unexpected type

    def on_polar_ppg(self, data: bytes | bytearray, receive_ns: int) -> None:
        """Polar Measurement Data PPG: pulse rate and perfusion for the record, the pulse wave for the VT check."""
        try:
            f = decode_polar_ppg_frame(data)
            first_ns = polar_to_unix_ns(first_sample_time_ns(f, self.ppg_rate_hz))
        except DecodeError as exc:
            self._decode_error("polar_ppg", exc, data)
            return
        except ValueError as exc:
            self._decode_error("polar_ppg", DecodeError(str(exc)), data)
            return
        self._seen(receive_ns)
        self.counters.ppg_packets += 1
        fs = float(self.ppg_rate_hz)
        if self.ppg is None or self.ppg.fs != fs:
            self.ppg = PpgMonitor(fs)
        tolerance = round(2e9 / fs)
        if self._ppg_end_ns is not None and abs(first_ns - self._ppg_end_ns) > tolerance:
            self.ppg.reset()  # a gap: the pulse window restarts
        end_ns = first_ns + round(f.sample_count * 1e9 / fs)
        self._ppg_end_ns = end_ns
        self._device_offset_ns = end_ns - receive_ns
        wave = self.ppg.push(f.ppg, f.ambient)
        if end_ns >= self._ppg_next_read_ns:
            self._ppg_next_read_ns = end_ns + 1_000_000_000
            self._ppg_vitals(end_ns, receive_ns)
        self._route_pulse(EcgFrame(first_ns, fs, 1.0, np.round(wave).astype(np.int32), None, receive_ns))

    def _ppg_vitals(self, device_ns: int, receive_ns: int) -> None:
        assert self.ppg is not None
        reading = self.ppg.read()
        if reading.present is None:
            return
        vitals = pb.VitalsRecord(device_time_ns=device_ns, receive_time_ns=receive_ns, source="ppg")
        if reading.present and reading.rate_bpm is not None:
            vitals.pulse_rate_bpm = reading.rate_bpm
        if reading.perfusion_index is not None:
            vitals.perfusion_index = reading.perfusion_index
        self.emit_vitals(vitals)

    def _route_pulse(self, frame: EcgFrame) -> None:
        """The pulse wave to this patient's ECG monitor: this device's own, else a peer's on that peer's clock."""
        if self.monitor is not None:
            self.on_aux_frame("pulse", frame)
            return
        for peer in self.peers() if self.peers is not None else ():
            offset = peer.device_offset_ns
            if peer.monitor is None or offset is None or self._device_offset_ns is None:
                continue
            shift = offset - self._device_offset_ns  # our device time -> gateway time -> the peer's device time
            peer.on_aux_frame("pulse", EcgFrame(frame.first_sample_ns + shift, frame.sample_rate_hz, frame.scale_uv,
                                                frame.samples, None, frame.receive_ns))
            return

    @property
    def device_offset_ns(self) -> int | None:
        """The wearable's clock minus the gateway's, as of its latest timestamped frame (None before one)."""
        est = self.clock.estimate
        if est is not None and self.state.last_seen_ns is not None:
            return est.offset_at(self.state.last_seen_ns)
        return self._device_offset_ns

    def on_pmd_control(self, data: bytes | bytearray, receive_ns: int) -> None:
        """A control point response: a refused start is logged and counted (the session keeps the other streams)."""
        try:
            r = decode_pmd_response(data)
        except DecodeError as exc:
            self._decode_error("pmd_control", exc, data)
            return
        self._seen(receive_ns)
        if not r.ok:
            self.counters.pmd_refusals += 1
            log.warning("polar measurement refused", device=self.device_id, op=r.op_code.name,
                        error=r.error.name if r.error else r.error_code)

    def on_current_time(self, data: bytes | bytearray, receive_ns: int) -> None:
        """A Current Time read: one observation of the wearable's clock for devices without timestamped data."""
        try:
            ct = decode_current_time(data)
        except DecodeError as exc:
            self._decode_error("current_time", exc, data)
            return
        device_ns = ct.to_unix_ns()
        if device_ns is not None and self.counters.ecg_packets == 0:
            self.clock.observe(device_ns, receive_ns)

    def on_ecg_frame(self, frame: EcgFrame) -> None:
        """Any wearable's ECG frame, already decoded (our watch, Polar PMD)."""
        self._seen(frame.receive_ns)
        self.counters.ecg_packets += 1
        self.counters.ecg_samples += len(frame.samples)
        out = self._assembler.push(frame)
        events: list[pb.Record] = []
        for event in out.events:
            if event.HasField("clock_jump"):
                self.counters.clock_jumps += 1
                self.clock.reset()
                log.warning("device clock jumped", device=self.device_id,
                            by_ms=(event.clock_jump.observed_device_time_ns
                                   - event.clock_jump.expected_device_time_ns) / 1e6)
            elif event.HasField("gap"):
                self.counters.ecg_gaps += 1
                self.counters.ecg_missing_samples += event.gap.missing_samples
                ECG_GAPS.labels(self.device_kind).inc()
                ECG_MISSING_SAMPLES.labels(self.device_kind).inc(event.gap.missing_samples)
                log.info("ecg gap", device=self.device_id, missing_samples=event.gap.missing_samples,
                         packets=event.gap.device_sequence_last - event.gap.device_sequence_first + 1,
                         cause=pb.GapCause.Name(event.gap.cause))
            events.append(self._record(pb.STREAM_KIND_EVENTS, event=event))
        self.clock.observe(frame.end_ns, frame.receive_ns)
        self._device_offset_ns = frame.end_ns - frame.receive_ns
        # The block a gap closed goes first, with the gap, in one transaction where the sink allows.
        self._store(self._block_records(out.blocks) + events)
        if self._analysis.enabled:
            self._analyse(frame)

    def _analyse(self, frame: EcgFrame) -> None:
        """Streaming ECG analysis: beats to the alarm engine, lead-off and signal quality, the rhythm model."""
        a = self._analysis
        if self.monitor is None or self.monitor.fs != frame.sample_rate_hz or self.monitor.scale_uv != frame.scale_uv:
            self.monitor = EcgMonitor(frame.sample_rate_hz, frame.scale_uv, self._rhythm, a.rhythm_every_s,
                                      a.rhythm_window_s, a.mains_hz, a.vt_rejection,
                                      VtConfig(one_lead_pulse=a.vt_one_lead_pulse, pulse_wait_s=a.vt_pulse_wait_s))
        out = self.monitor.push(frame)
        if out.complete_ns is not None:
            self._sink.observe_beats(self.patient, self.device_id, out.complete_ns, out.beats, out.interrupted)
        for end_ns, verdict, why in out.vf:
            self._sink.observe_vf(self.patient, self.device_id, end_ns, verdict, why)
        now = frame.first_sample_ns
        if out.lead_off is not None:
            self._sink.observe_technical(self.patient, self.device_id, "lead_off", out.lead_off, now)
        if out.sqi is not None:
            self._sink.observe_technical(self.patient, self.device_id, "poor_signal",
                                         out.sqi < a.poor_signal_below and not out.lead_off, now)
        if out.rhythm_error is not None and out.rhythm_error.reason != "input_too_short":
            log.warning("rhythm model failed", device=self.device_id, reason=out.rhythm_error.reason)
            self._sink.observe_technical(self.patient, self.device_id, "model_failure", True, now)
        if out.rhythm is not None and out.rhythm_end_ns is not None:
            self._rhythm_result(out, out.rhythm, out.rhythm_end_ns, frame.receive_ns)

    def on_aux_frame(self, kind: AuxKind, frame: EcgFrame) -> None:
        """A second ECG lead or a pulse waveform of the same patient: evidence for the VT check only."""
        if self._analysis.enabled and self.monitor is not None:
            self.monitor.push_aux(kind, frame)

    def _rhythm_result(self, out: MonitorOutput, r: RhythmResult, end_ns: int, receive_ns: int) -> None:
        self.last_rhythm = r
        self._sink.observe_technical(self.patient, self.device_id, "model_failure", False, end_ns)
        self._sink.observe_rhythm(self.patient, self.device_id, end_ns, r, out.rhythm_window_uv,
                                  self.monitor.fs if self.monitor is not None else 0.0)
        vitals = pb.VitalsRecord(device_time_ns=end_ns, receive_time_ns=receive_ns, source="ecg", rhythm=r.label,
                                 rhythm_confidence=r.probabilities.get(r.label, 0.0), rhythm_model=r.model)
        if out.heart_rate_bpm is not None:
            vitals.heart_rate_bpm = out.heart_rate_bpm
        if out.sqi is not None:
            vitals.signal_quality = out.sqi
        self.emit_vitals(vitals)
        log.debug("rhythm", device=self.device_id, rhythm=RHYTHM_NAMES.get(r.label, r.label),
                 confidence=round(r.probabilities.get(r.label, 0.0), 3), latency_ms=round(r.latency_ms, 2))

    def _block_records(self, blocks: list[pb.SampleBlock]) -> list[pb.Record]:
        est = self.clock.estimate
        for block in blocks:
            if est is not None:
                block.first_sample_corrected_time_ns = est.to_gateway_time(block.first_sample_device_time_ns)
        return [self._record(pb.STREAM_KIND_ECG, samples=block) for block in blocks]

    def _store(self, records: list[pb.Record]) -> None:
        """Hand records on; where the assembler's tail moved, the new one goes in the same transaction."""
        if not records:
            return
        if self._tails is None:
            for record in records:
                self._sink.emit_record(record)
            return
        tail = self._assembler.tail
        self._tails.emit_records(records, {self.device_id: tail} if tail is not None and tail != self._stored_tail
                                 else None)
        self._stored_tail = tail

    def flush(self) -> None:
        """Emit the pending ECG block (at disconnect and shutdown)."""
        self._store(self._block_records(self._assembler.flush()))

    # -- link and health ----------------------------------------------------
    def set_rhythm_model(self, rhythm: RhythmClassifier | None) -> None:
        """A new model version went live: later classifications use it."""
        self._rhythm = rhythm
        if self.monitor is not None:
            self.monitor.set_rhythm_model(rhythm)

    def on_link(self, connected: bool, receive_ns: int | None = None, reason: str = "") -> None:
        now = receive_ns if receive_ns is not None else self.state.last_seen_ns or 0
        if now:
            self.emit_event(pb.DeviceEvent(device_time_ns=self.device_time_for(now), receive_time_ns=now,
                                           link=pb.LinkChange(connected=connected, reason=reason)))

    def on_disconnected(self) -> None:
        """Close the open block; the next packet starts a new one (a gap record accounts for the loss)."""
        self.flush()

    def emit_health(self, receive_ns: int, rssi: int | None = None) -> None:
        h = pb.DeviceHealth()
        if self.state.battery_percent is not None:
            h.battery_percent = self.state.battery_percent
        if rssi is not None:
            h.rssi_dbm = rssi
        if self.state.sensor_contact is not None:
            h.sensor_contact = self.state.sensor_contact
        est = self.clock.estimate
        if est is not None:
            h.clock_skew_ppm = est.skew_ppm
            h.clock_offset_ns = est.offset_at(receive_ns)
        self.emit_event(pb.DeviceEvent(device_time_ns=self.device_time_for(receive_ns), receive_time_ns=receive_ns,
                                       health=h))

    def emit_event(self, event: pb.DeviceEvent) -> None:
        self._sink.emit_record(self._record(pb.STREAM_KIND_EVENTS, event=event))

    # -- helpers ------------------------------------------------------------
    def _record(self, kind: pb.StreamKind.ValueType, **body: object) -> pb.Record:
        return pb.Record(stream_id=stream_id(self.device_id, kind), device_id=self.device_id,
                         patient=self.patient, kind=kind, **body)  # type: ignore[arg-type]

    def decode_error(self, what: str, exc: DecodeError, data: bytes | bytearray) -> None:
        """Count and log a malformed packet (public for the profile handlers)."""
        self._decode_error(what, exc, data)

    def _decode_error(self, what: str, exc: DecodeError, data: bytes | bytearray) -> None:
        self.counters.decode_errors += 1
        DECODE_ERRORS.labels(self.device_kind, what).inc()
        log.warning("decode error", device=self.device_id, characteristic=what, error=str(exc),
                    length=len(data), head=bytes(data[:24]).hex())
