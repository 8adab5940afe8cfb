"""Wearable PPG: pulse detection, presence and perfusion; the simulated pulse; the gateway's routing to the VT check.

The pulse must follow the beats, stop in asystole, vanish in a pulseless VT and carry on in a VT with
pulses preserved; the gateway turns Polar PMD PPG frames into pulse rate and perfusion, and hands the
pulse wave to the VT check of the same patient's ECG, from the same device or another one.
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest
from bumble.link import LocalLink

from cardiogate.edge.alarm_bridge import AlarmBridge
from cardiogate.edge.alarm_engine.model import TechnicalCondition, VfVerdict
from cardiogate.edge.codecs.polar_pmd import (
    PmdError,
    PmdMeasurementType,
    PmdOpCode,
    PmdRequest,
    PolarEcgFrame,
    PolarPpgFrame,
    ecg_start_request,
    encode_polar_ecg_frame,
    encode_polar_ppg_frame,
    ppg_start_request,
    unix_to_polar_ns,
)
from cardiogate.edge.dsp.ppg import (
    PpgConfig,
    PpgMonitor,
    detect_pulses,
    pulse_wave,
    read_pulse,
    run_pulse,
)
from cardiogate.edge.dsp.pulse import PulseEvidence
from cardiogate.edge.dsp.vt import LeadRun, VtConfig, assess_vt
from cardiogate.edge.ecg_assembler import EcgFrame
from cardiogate.edge.ecg_monitor import EcgMonitor, MonitoredBeat
from cardiogate.edge.inference import RhythmResult
from cardiogate.edge.processing import DeviceProcessor
from cardiogate.edge.settings import AlarmSettings, AnalysisSettings
from cardiogate.proto.v1 import telemetry_pb2 as pb
from cardiogate.sim.patient import PatientScenario, PatientSimulator
from cardiogate.sim.physiology import PULSE_TRANSIT_S, ppg_counts, uv_to_int24
from cardiogate.sim.scenario import WatchSpec
from cardiogate.sim.truth import GroundTruthLog
from cardiogate.sim.watch import SimulatedWatch

NS = 1_000_000_000
T0 = 1_800_000_000 * NS


def _sim(events: list[dict[str, Any]], hr: float = 75.0, seed: int = 7) -> PatientSimulator:
    return PatientSimulator(PatientScenario.model_validate({"hr_bpm": hr, "snr_db": 25, "events": events}),
                            seed=seed, ecg_rate_hz=130)


def _wave(sim: PatientSimulator, t0: float, t1: float, fs: float) -> np.ndarray:
    raw = sim.ppg(round(t0 * fs), round((t1 - t0) * fs), fs)
    return pulse_wave(raw[:, :3], raw[:, 3])


# ---- pulse detection -----------------------------------------------------------------------------

def test_the_pulse_wave_is_the_inverted_ambient_corrected_optical_mean() -> None:
    ppg = np.array([[100, 110, 120], [90, 100, 110]])
    assert pulse_wave(ppg, np.array([10, 10])).tolist() == [-100.0, -90.0]  # less light: more blood
    assert pulse_wave(ppg).tolist() == [-110.0, -100.0]


@pytest.mark.parametrize("fs", [55.0, 135.0, 176.0])
@pytest.mark.parametrize("hr", [45.0, 75.0, 150.0])
def test_every_simulated_pulse_is_found_at_each_polar_rate(fs: float, hr: float) -> None:
    sim = _sim([], hr=hr)
    wave = _wave(sim, 10.0, 30.0, fs)
    peaks, amplitude = detect_pulses(wave, fs)
    beats = sim.beats_between(10.0, 30.0)
    assert amplitude > 0
    assert abs(len(peaks) - len(beats)) <= 1
    reading, _ = read_pulse(wave[-round(8 * fs):], -wave[-round(8 * fs):], fs, None)
    assert reading.present and reading.rate_bpm is not None and abs(reading.rate_bpm - hr) < 0.08 * hr
    assert reading.perfusion_index is not None and 0.3 < reading.perfusion_index < 3.0  # about 1 %


def test_a_window_without_pulses_is_absent_and_a_short_one_is_unknown() -> None:
    fs = 55.0
    sim = _sim([{"kind": "pause", "at_s": 20.0, "duration_s": None}])
    after = _wave(sim, 25.0, 33.0, fs)
    reading, _ = read_pulse(after, -after, fs, None)
    assert reading.present is False and reading.rate_bpm is None
    short, _ = read_pulse(after[:100], -after[:100], fs, None)
    assert short.present is None and "too little" in short.reason
    assert detect_pulses(after[:50], fs)[0].size == 0


def test_a_pause_longer_than_the_gap_limit_is_not_a_present_pulse() -> None:
    fs = 55.0
    sim = _sim([{"kind": "pause", "at_s": 24.0, "duration_s": 4.0}])
    wave = _wave(sim, 20.0, 28.0, fs)
    reading, _ = read_pulse(wave, -wave, fs, None)
    assert reading.present is False and "no pulse for" in reading.reason


def test_presence_needs_the_usual_amplitude_once_it_is_known() -> None:
    fs = 55.0
    sim = _sim([{"kind": "vt", "at_s": 40.0, "duration_s": 20.0, "hr_bpm": 180, "pulses": "weak"}])
    mon = PpgMonitor(fs)
    readings = []
    for k in range(round(56 * fs / 16)):
        raw = sim.ppg(k * 16, 16, fs)
        mon.push(raw[:, :3], raw[:, 3])
        if k % 4 == 3:
            readings.append(mon.read())
    sinus = readings[8:30]  # windows full (8 s) and before the VT at 40 s
    assert sinus and all(r.present for r in sinus)
    assert mon.reference_ac is not None
    weak = readings[-3:]  # the last seconds: only the weak VT pulses in the window
    assert all(r.present is False and "amplitude" in r.reason for r in weak), weak
    # without a learnt amplitude the weak pulses would have counted: the reference is what refutes them
    w = _wave(sim, 48.0, 56.0, fs)
    assert read_pulse(w, -w, fs, None)[0].present is True


def test_a_monitor_restart_keeps_the_learnt_amplitude() -> None:
    fs = 55.0
    sim = _sim([])
    mon = PpgMonitor(fs, PpgConfig())
    for k in range(round(30 * fs / 16)):
        raw = sim.ppg(k * 16, 16, fs)
        mon.push(raw[:, :3], raw[:, 3])
        mon.read()
    before = mon.reference_ac
    mon.reset()
    assert before is not None and mon.reference_ac == before
    assert mon.read().present is None


# ---- the simulated pulse -------------------------------------------------------------------------

def test_the_simulated_ppg_is_the_same_however_it_is_split() -> None:
    sim = _sim([{"kind": "ppg_motion", "at_s": 2.0, "duration_s": 5.0}])
    whole = sim.ppg(0, 700, 135.0)
    parts = np.concatenate([sim.ppg(0, 250, 135.0), sim.ppg(250, 13, 135.0), sim.ppg(263, 437, 135.0)])
    assert whole.shape == (700, 4) and whole.dtype == np.int32
    assert np.array_equal(whole, parts)
    assert np.array_equal(ppg_counts(np.zeros(10), 1, 5), ppg_counts(np.zeros(10), 1, 5))


def test_each_pulse_follows_its_beat_after_the_transit_time() -> None:
    sim = _sim([])
    fs = 1000.0
    t = np.arange(10.0, 14.0, 1 / fs)
    vol = sim.pulse_volume(t)
    for beat in sim.beats_between(10.0, 13.0):
        seg = (t >= beat.t_s) & (t < beat.t_s + 0.6)
        delay = float(t[seg][np.argmax(vol[seg])]) - beat.t_s
        assert PULSE_TRANSIT_S < delay < PULSE_TRANSIT_S + 0.25


@pytest.mark.parametrize(("pulses", "lo", "hi"), [("absent", 0.0, 0.1), ("weak", 0.05, 0.3), ("preserved", 0.6, 1.2)])
def test_vt_pulses_are_absent_weak_or_preserved(pulses: str, lo: float, hi: float) -> None:
    fs = 55.0
    sim = _sim([{"kind": "vt", "at_s": 30.0, "duration_s": 20.0, "hr_bpm": 180, "pulses": pulses}])
    _, before = detect_pulses(_wave(sim, 20.0, 30.0, fs), fs)
    _, during = detect_pulses(_wave(sim, 35.0, 45.0, fs), fs)
    assert lo <= during / before <= hi


def test_asystole_stops_the_pulse_and_arm_motion_mimics_one() -> None:
    fs = 55.0
    still = _sim([{"kind": "pause", "at_s": 20.0, "duration_s": None}])
    moving = _sim([{"kind": "pause", "at_s": 20.0, "duration_s": None},
                   {"kind": "ppg_motion", "at_s": 15.0, "duration_s": 30.0, "rate_hz": 1.3}])
    flat = _wave(still, 27.0, 35.0, fs)
    gone, _ = read_pulse(flat, -flat, fs, None)
    assert gone.present is False and "no pulsatile signal" in gone.reason
    fake, _ = read_pulse(_wave(moving, 27.0, 35.0, fs), -_wave(moving, 27.0, 35.0, fs), fs, None)
    assert fake.present and fake.rate_bpm is not None and 60 < fake.rate_bpm < 100  # quasi-periodic, pulse-like


def test_a_vt_event_rejects_an_unknown_pulse_option() -> None:
    with pytest.raises(ValueError, match="pulses"):
        PatientScenario.model_validate({"events": [{"kind": "vt", "at_s": 1, "pulses": "some"}]})


# ---- the VT check with one lead and a pulse ------------------------------------------------------

REGULAR = PulseEvidence(40, 180.0, 0.4, 0.8, True, "pulses regular at 180/min, amplitude x0.80")
PAUSED = PulseEvidence(3, 75.0, 2.4, 0.3, False, "pulses paused 2.4 s")
RUN = [LeadRun("ECG", 8, 180.0, True, 0.3)]


def test_one_lead_with_regular_pulses_is_doubted_only_when_the_pulse_may_decide() -> None:
    on = VtConfig(one_lead_pulse=True)
    doubted = assess_vt(RUN, None, REGULAR, on)
    assert not doubted.confirmed and "one lead" in doubted.reason and "pulses regular" in doubted.reason
    assert assess_vt(RUN, None, REGULAR).confirmed  # default: one lead is never doubted


def test_one_lead_with_a_paused_or_missing_pulse_is_confirmed() -> None:
    on = VtConfig(one_lead_pulse=True)
    paused = assess_vt(RUN, None, PAUSED, on)
    assert paused.confirmed and paused.corroborated and "paused" in paused.reason
    unknown = assess_vt(RUN, None, None, on)
    assert unknown.confirmed and not unknown.corroborated


# ---- the gateway: PMD PPG frames in, pulse vitals and VT evidence out ----------------------------

class _Sink:
    """Records kept; observations go to a real alarm bridge whose MQTT notices are kept too."""

    def __init__(self) -> None:
        self.records: list[pb.Record] = []
        self.notices: list[dict[str, Any]] = []

        def publish(_p: str, leaf: str, payload: dict[str, Any], _q: int, _r: bool, _s: bool) -> None:
            if leaf == "alarms":
                self.notices.append(payload)

        self.bridge = AlarmBridge(AlarmSettings(), "site", publish, lambda _r: None, lambda _p: True)

    def emit_record(self, record: pb.Record) -> None:
        copy = pb.Record()
        copy.CopyFrom(record)
        self.records.append(copy)

    def observe_vitals(self, patient: str, device_id: str, device_ns: int, *, hr: float | None = None,
                       spo2: float | None = None, systolic: float | None = None) -> None:
        self.bridge.observe_vitals(patient, device_id, device_ns, hr=hr, spo2=spo2, systolic=systolic)

    def observe_technical(self, patient: str, device_id: str, kind: TechnicalCondition, active: bool,
                          device_ns: int) -> None:
        self.bridge.observe_technical(patient, device_id, kind, active, device_ns)

    def observe_vf(self, patient: str, device_id: str, end_ns: int, verdict: VfVerdict, reason: str) -> None:
        self.bridge.observe_vf(patient, device_id, end_ns, verdict, reason)

    def observe_beats(self, patient: str, device_id: str, complete_ns: int, beats: list[MonitoredBeat],
                      interrupted: bool = False) -> None:
        self.bridge.observe_beats(patient, device_id, complete_ns, beats, interrupted)

    def observe_rhythm(self, patient: str, device_id: str, end_ns: int, rhythm: RhythmResult,
                       window_uv: Any = None, sample_rate_hz: float = 0.0) -> None:
        pass

    def raised(self, condition: str) -> list[dict[str, Any]]:
        return [n for n in self.notices if n["condition"] == condition and n["state"] == "raised"]


def _stream(sim: PatientSimulator, seconds: float, ecg: DeviceProcessor, ppg: DeviceProcessor,
            ppg_clock_offset_s: float = 0.0, ppg_lag_s: float = 0.0) -> None:
    """ECG (73-sample frames at 130 Hz) and PPG (16-sample frames at 55 Hz) as a strap sends them, in time order.

    ``ppg_lag_s``: the PPG arrives this much later than the ECG of the same moment.
    """
    ei = pi = 0
    for step in range(round(seconds / 0.05)):
        t = step * 0.05
        while (ei + 73) / 130 <= t:
            last = T0 + round((ei + 72) * NS / 130)
            frame = PolarEcgFrame(unix_to_polar_ns(last), uv_to_int24(sim.ecg_uv(ei, 73)))
            ecg.on_pmd_data(encode_polar_ecg_frame(frame), last + 30_000_000)
            ei += 73
        while (pi + 16) / 55 + ppg_lag_s <= t:
            last = T0 + round((pi + 15) * NS / 55)
            own = last + round(ppg_clock_offset_s * NS)  # another device's clock
            frame_p = PolarPpgFrame(unix_to_polar_ns(own), sim.ppg(pi, 16, 55.0))
            ppg.on_pmd_data(encode_polar_ppg_frame(frame_p), last + 30_000_000)
            pi += 16


def _processor(sink: _Sink, address: str, one_lead_pulse: bool = True) -> DeviceProcessor:
    return DeviceProcessor(address, "pt-1", sink, 250, analysis=AnalysisSettings(
        rhythm_model=None, vt_one_lead_pulse=one_lead_pulse))


def test_ppg_frames_give_pulse_rate_and_perfusion_records() -> None:
    sink = _Sink()
    proc = _processor(sink, "C0:00:00:00:00:01")
    _stream(_sim([], hr=66.0), 20.0, proc, proc)
    ppg = [r.vitals for r in sink.records if r.kind == pb.STREAM_KIND_VITALS and r.vitals.source == "ppg"]
    assert len(ppg) >= 10 and proc.counters.ppg_packets > 60
    rates = [v.pulse_rate_bpm for v in ppg if v.HasField("pulse_rate_bpm")]
    assert rates and all(abs(r - 66.0) < 6.0 for r in rates)
    assert all(0.3 < v.perfusion_index < 3.0 for v in ppg if v.HasField("perfusion_index"))
    assert proc.counters.decode_errors == 0


def test_a_malformed_pmd_notification_is_counted_not_fatal() -> None:
    sink = _Sink()
    proc = _processor(sink, "C0:00:00:00:00:01")
    for raw in (b"", b"\x01" + bytes(8) + b"\x00" + bytes(5), b"\x01" + bytes(8) + b"\x80" + bytes(12),
                b"\x02" + bytes(9) + bytes(6)):
        proc.on_pmd_data(raw, T0)
    assert proc.counters.decode_errors == 4 and proc.counters.ppg_packets == 0


@pytest.mark.parametrize("two_devices", [False, True], ids=["one-strap", "strap-and-armband"])
def test_a_vt_with_pulses_preserved_raises_the_advisory_not_the_alarm(two_devices: bool) -> None:
    sink = _Sink()
    ecg = _processor(sink, "C0:00:00:00:00:01")
    ppg = _processor(sink, "C0:00:00:00:00:02") if two_devices else ecg
    if two_devices:
        ppg.peers = lambda: [ecg]
    sim = _sim([{"kind": "vt", "at_s": 40.0, "duration_s": 12.0, "hr_bpm": 180, "pulses": "preserved"}])
    _stream(sim, 56.0, ecg, ppg, ppg_clock_offset_s=3.7 if two_devices else 0.0)
    assert sink.raised("vt") == []
    advisory = sink.raised("vt_unconfirmed")
    assert advisory and "VT unconfirmed" in advisory[0]["reason"] and "pulses regular" in advisory[0]["reason"]


@pytest.mark.parametrize("two_devices", [False, True], ids=["one-strap", "strap-and-armband"])
def test_a_pulseless_vt_alarms_at_the_beat_that_completes_the_run(two_devices: bool) -> None:
    sink = _Sink()
    ecg = _processor(sink, "C0:00:00:00:00:01")
    ppg = _processor(sink, "C0:00:00:00:00:02") if two_devices else ecg
    if two_devices:
        ppg.peers = lambda: [ecg]
    sim = _sim([{"kind": "vt", "at_s": 40.0, "duration_s": 12.0, "hr_bpm": 180}])
    _stream(sim, 46.0, ecg, ppg, ppg_clock_offset_s=-2.2 if two_devices else 0.0)
    vt = sink.raised("vt")
    assert vt and vt[0]["priority"] == "high" and "pulse" in vt[0]["reason"]
    sixth = sim.beats_between(40.0, 46.0)[5].t_s
    assert (vt[0]["trigger_sample_device_time_ns"] - T0) / NS <= sixth + 1.0
    assert sink.raised("vt_unconfirmed") == []


@pytest.mark.parametrize("lag_s", [0.3, 0.6, 0.9])
def test_a_pulseless_vt_is_not_doubted_while_its_pulse_pause_is_still_short(lag_s: float) -> None:
    """A late PPG stream shows under 2 s of pause at the run's 6th beat: the missing run pulses decide, or
    (later still) the pulse cannot tell yet and the run is not doubted."""
    sink = _Sink()
    proc = _processor(sink, "C0:00:00:00:00:01")
    sim = _sim([{"kind": "vt", "at_s": 40.0, "duration_s": 12.0, "hr_bpm": 180}])
    _stream(sim, 46.0, proc, proc, ppg_lag_s=lag_s)
    assert sink.raised("vt_unconfirmed") == []
    vt = sink.raised("vt")
    assert vt and vt[0]["priority"] == "high"
    sixth = sim.beats_between(40.0, 46.0)[5].t_s
    assert (vt[0]["trigger_sample_device_time_ns"] - T0) / NS <= sixth + 1.0


def test_run_pulses_tell_a_pulsed_run_from_a_pulseless_one_once_they_had_time_to_show() -> None:
    fs = 55.0
    lost = _sim([{"kind": "vt", "at_s": 40.0, "duration_s": 12.0, "hr_bpm": 180}])
    kept = _sim([{"kind": "vt", "at_s": 40.0, "duration_s": 12.0, "hr_bpm": 180, "pulses": "preserved"}])
    first = round(lost.beats_between(40.0, 41.0)[0].t_s * fs)
    start = round(25 * fs)
    for sim, followed in ((lost, False), (kept, True)):
        wave = _wave(sim, 0.0, 41.6, fs)
        base, win = wave[:start], wave[start:]
        seen, why = run_pulse(win, base, start, first, fs)
        assert seen is followed, why
        assert ("no pulse since the run began" in why) is (not followed)
        early, _ = run_pulse(win[: first - start + round(1.1 * fs)], base, start, first, fs)
        assert early is None  # under 1.25 s of pulse after the run's start: nothing to say yet


@pytest.mark.parametrize("lag_s", [0.0, 0.2, 0.4])
def test_a_pulsed_vt_is_doubted_with_a_slightly_late_pulse_stream(lag_s: float) -> None:
    sink = _Sink()
    proc = _processor(sink, "C0:00:00:00:00:01")
    sim = _sim([{"kind": "vt", "at_s": 40.0, "duration_s": 12.0, "hr_bpm": 180, "pulses": "preserved"}])
    _stream(sim, 50.0, proc, proc, ppg_lag_s=lag_s)
    assert sink.raised("vt") == [] and sink.raised("vt_unconfirmed")


def _monitor(pulses: str, ppg_lag_s: float | None, aux_ecg: bool = False,
             seconds: float = 46.0) -> list[tuple[int, list[MonitoredBeat]]]:
    """A 180/min VT at 40 s streamed into one ECG monitor: each chunk's end (device ns) with its beats.

    ``ppg_lag_s``: the pulse wave arrives this much after the ECG of the same moment (None: no pulse channel);
    ``aux_ecg``: the same signal again as a second lead.
    """
    sim = _sim([{"kind": "vt", "at_s": 40.0, "duration_s": 12.0, "hr_bpm": 180, "pulses": pulses}])
    monitor = EcgMonitor(130.0, 1.0, vt=VtConfig(one_lead_pulse=True))
    wave = np.round(_wave(sim, 0.0, seconds + 1.0, 55.0)).astype(np.int32)
    chunks: list[tuple[int, list[MonitoredBeat]]] = []
    pi = 0
    for ei in range(0, round(seconds * 130) - 73, 73):
        while ppg_lag_s is not None and (pi + 16) / 55 + ppg_lag_s <= (ei + 73) / 130:
            monitor.push_aux("pulse", EcgFrame(T0 + round(pi * NS / 55), 55.0, 1.0, wave[pi:pi + 16]))
            pi += 16
        frame = EcgFrame(T0 + round(ei * NS / 130), 130.0, 1.0, np.round(sim.ecg_uv(ei, 73)).astype(np.int32))
        if aux_ecg:
            monitor.push_aux("ecg", frame)
        chunks.append((T0 + round((ei + 73) * NS / 130), monitor.push(frame).beats))
    return chunks


def _run_beats(chunks: list[tuple[int, list[MonitoredBeat]]]) -> list[MonitoredBeat]:
    return [b for _, beats in chunks for b in beats if b.label == "V" and not b.vt_decision
            and b.device_time_ns >= T0 + 39 * NS]


@pytest.mark.parametrize(("pulses", "confirmed", "why"), [("preserved", False, "pulses regular"),
                                                          ("absent", True, "no pulse since the run began")])
def test_a_one_lead_decision_waits_for_the_pulse_that_covers_the_run(pulses: str, confirmed: bool, why: str) -> None:
    chunks = _monitor(pulses, ppg_lag_s=0.5)
    run = _run_beats(chunks)
    limit_t = run[VtConfig().min_run - 1].device_time_ns  # the beat that brought the run to 3 beats
    waiting = [b for b in run if b.vt_pending_until_ns is not None]
    assert waiting and {b.vt_pending_until_ns for b in waiting} == {limit_t + NS}  # the shipped 1 s wait
    assert all(b.vt_confirmed is None for b in waiting)
    [(end, decision)] = [(end, b) for end, beats in chunks for b in beats if b.vt_decision]
    assert decision.device_time_ns == limit_t and decision.vt_confirmed is confirmed and why in decision.vt_reason
    # here the pulse covers the run just as the wait ends: evidence that arrives with that chunk still decides
    assert end == next(e for e, _ in chunks if e >= limit_t + NS)
    assert all(b.vt_pending_until_ns is None for b in run if b.device_time_ns > waiting[-1].device_time_ns)


def test_a_pulse_too_late_for_the_wait_confirms_the_run_when_the_wait_ends() -> None:
    chunks = _monitor("preserved", ppg_lag_s=1.5)
    limit_t = _run_beats(chunks)[VtConfig().min_run - 1].device_time_ns
    at = next(i for i, (_, beats) in enumerate(chunks) if any(b.vt_decision for b in beats))
    [decision] = [b for b in chunks[at][1] if b.vt_decision]
    assert decision.vt_confirmed is True and decision.device_time_ns == limit_t
    assert "waiting for the pulse: none covered the run within 1 s, so confirmed" in decision.vt_reason
    assert chunks[at - 1][0] < limit_t + NS <= chunks[at][0]  # decided in the first chunk that reaches the wait's end


@pytest.mark.parametrize(("aux_ecg", "ppg_lag_s"), [(True, 0.5), (False, None)], ids=["two-leads", "no-pulse"])
def test_two_leads_or_no_pulse_channel_never_wait(aux_ecg: bool, ppg_lag_s: float | None) -> None:
    chunks = _monitor("preserved", ppg_lag_s, aux_ecg=aux_ecg)
    run = _run_beats(chunks)
    assert len(run) > 10 and all(b.vt_confirmed is True and b.vt_pending_until_ns is None for b in run)
    assert not any(b.vt_decision for _, beats in chunks for b in beats)


def test_without_the_one_lead_pulse_setting_a_pulsed_vt_still_alarms() -> None:
    sink = _Sink()
    proc = _processor(sink, "C0:00:00:00:00:01", one_lead_pulse=False)
    sim = _sim([{"kind": "vt", "at_s": 40.0, "duration_s": 12.0, "hr_bpm": 180, "pulses": "preserved"}])
    _stream(sim, 46.0, proc, proc)
    assert sink.raised("vt") and sink.raised("vt_unconfirmed") == []


def test_a_pulse_from_a_device_without_ecg_and_no_peer_goes_nowhere() -> None:
    sink = _Sink()
    armband = _processor(sink, "C0:00:00:00:00:02")
    _stream(_sim([]), 6.0, _processor(_Sink(), "C0:00:00:00:00:09"), armband)
    assert armband.monitor is None and armband.counters.ppg_packets > 0
    assert sink.notices == []


# ---- the simulated devices' control point --------------------------------------------------------

def _answers(profile: str) -> dict[str, Any]:
    """What a simulated device of ``profile`` offers and answers (bumble needs a running loop)."""

    async def ask() -> dict[str, Any]:
        watch = SimulatedWatch(WatchSpec.model_validate({"name": "dev", "address": "C0:00:00:00:09:01",
                                                         "profile": profile}), LocalLink(), GroundTruthLog(None))
        out: dict[str, Any] = {"types": watch._pmd_types, "ecg": watch._pmd_answer(ecg_start_request()).error_code,
                               "ppg": watch._pmd_answer(ppg_start_request(135)).error_code,
                               "rate": watch._ppg_rate_hz}
        out["again"] = watch._pmd_answer(ppg_start_request(55)).error_code  # already running: success
        out["rate_after"] = watch._ppg_rate_hz
        get = watch._pmd_answer(PmdRequest(PmdOpCode.GET_MEASUREMENT_SETTINGS, PmdMeasurementType.PPG))
        out["offered"] = get.settings[0].values if get.settings else None
        watch._pmd_answer(PmdRequest(PmdOpCode.STOP_MEASUREMENT, PmdMeasurementType.PPG))
        out["stopped"] = watch._ppg_rate_hz
        out["bad_rate"] = watch._pmd_answer(ppg_start_request(100)).error_code
        return out

    return asyncio.run(ask())


@pytest.mark.parametrize(("profile", "ecg", "ppg"), [("polar_h10", True, False), ("polar_ecg_ppg", True, True),
                                                    ("polar_verity", False, True)])
def test_each_polar_like_profile_offers_what_it_measures(profile: str, ecg: bool, ppg: bool) -> None:
    a = _answers(profile)
    assert (PmdMeasurementType.ECG in a["types"]) is ecg and (PmdMeasurementType.PPG in a["types"]) is ppg
    assert a["ecg"] == (PmdError.SUCCESS if ecg else PmdError.NOT_SUPPORTED)
    if ppg:
        assert a["ppg"] == PmdError.SUCCESS and a["rate"] == 135  # streams at the rate asked for
        assert a["again"] == PmdError.SUCCESS and a["offered"] == (55, 135, 176)
        assert a["rate_after"] == 135  # a second start does not change a running stream
        assert a["stopped"] is None and a["bad_rate"] == PmdError.INVALID_SAMPLE_RATE
    else:
        assert a["ppg"] == PmdError.NOT_SUPPORTED and a["rate"] is None


def test_polar_like_profiles_sample_ecg_at_130_hz() -> None:
    with pytest.raises(ValueError, match="130 Hz"):
        WatchSpec.model_validate({"name": "d", "address": "C0:00:00:00:09:01", "profile": "polar_verity",
                                  "sample_rate_hz": 250})
