"""``cardiogate eval alarms``: the gateway's alarm path scored on simulated patients with known events.

Each patient is a seeded scenario from the simulator (cardiogate.sim.patient). Its ECG
frames, Heart Rate Measurements and oximeter readings, encoded exactly as the watch
would send them, go through the gateway's own processor, ECG monitor (and rhythm model
when given) and alarm engine, faster than real time. Two questions:

- sensitivity and delay: every injected critical event (VT run, ventricular fibrillation,
  pause over 3 s, HR above 150 or below 40 bpm, SpO2 below 88 %) must alarm within its
  condition's onset delay + 1 s of the moment the signal first met the condition (device
  time; for VF, once a whole VF window of it has arrived);
- false alarms: physiological alarms raised on noisy normal rhythms, per patient-hour.

The BLE link, MQTT and the uplink are not involved (the e2e tests cover those); the
times compared are the triggering samples' device times, which is what the alarm carries.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cardiogate.app.evaluation import ALARMS_DESCRIPTION, add_alarms_arguments
from cardiogate.edge.alarm_bridge import AlarmBridge
from cardiogate.edge.alarm_engine.config import default_specs
from cardiogate.edge.alarm_engine.model import TechnicalCondition, VfVerdict
from cardiogate.edge.codecs.heart_rate import HeartRateMeasurement, encode_heart_rate_measurement, rr_ms_to_1024
from cardiogate.edge.codecs.pulse_oximeter import PlxContinuousMeasurement, SpO2PR, encode_plx_continuous_measurement
from cardiogate.edge.codecs.sfloat import sfloat_from_float
from cardiogate.edge.dsp.vf import VfConfig
from cardiogate.edge.ecg_assembler import EcgFrame
from cardiogate.edge.ecg_monitor import MonitoredBeat
from cardiogate.edge.inference import RhythmClassifier, RhythmResult
from cardiogate.edge.processing import DeviceProcessor
from cardiogate.edge.settings import SHIPPED_RHYTHM_MODEL, AlarmSettings, AnalysisSettings
from cardiogate.proto.v1 import telemetry_pb2 as pb
from cardiogate.sim.patient import PatientScenario, PatientSimulator
from cardiogate.sim.physiology import uv_to_int16

FS = 250
PER_PACKET = 114
T0_NS = 1_800_000_000 * 1_000_000_000
TRANSPORT_NS = 20_000_000  # a notification arrives this long after its last sample
VT_BEATS = int(default_specs()["vt"].tiers[0].limit)  # the run is a VT once it is as long as the gateway's limit
ONSET_S = {"vt": 0.0, "asystole": 0.0, "hr_high": 5.0, "hr_low": 5.0, "spo2_low": 15.0,
           "vf": default_specs()["vf"].tiers[0].onset_delay_s}
VF_WINDOW_S = VfConfig().window_s  # VF is judged on this much signal: its criterion is a window full of it


class BridgeSink:
    """RecordSink for the scorer: records are dropped, observations go to the alarm bridge."""

    def __init__(self, bridge: AlarmBridge) -> None:
        self.bridge = bridge

    def emit_record(self, record: pb.Record) -> None:
        pass

    def observe_vitals(self, patient: str, device_id: str, device_ns: int, *, hr: float | None = None,
                       spo2: float | None = None, systolic: float | None = None) -> None:
        self.bridge.observe_vitals(patient, device_id, device_ns, hr=hr, spo2=spo2, systolic=systolic)

    def observe_technical(self, patient: str, device_id: str, kind: TechnicalCondition, active: bool,
                          device_ns: int) -> None:
        self.bridge.observe_technical(patient, device_id, kind, active, device_ns)

    def observe_beats(self, patient: str, device_id: str, complete_ns: int, beats: list[MonitoredBeat],
                      interrupted: bool = False) -> None:
        self.bridge.observe_beats(patient, device_id, complete_ns, beats, interrupted)

    def observe_rhythm(self, patient: str, device_id: str, end_ns: int, rhythm: RhythmResult,
                       window_uv: Any = None, sample_rate_hz: float = 0.0) -> None:
        self.bridge.observe_rhythm(patient, device_id, end_ns, rhythm)

    def observe_vf(self, patient: str, device_id: str, end_ns: int, verdict: VfVerdict, reason: str) -> None:
        self.bridge.observe_vf(patient, device_id, end_ns, verdict, reason)


@dataclass
class PatientRun:
    patient: str
    seconds: float
    notices: list[dict[str, Any]] = field(default_factory=list)
    hr_reports: list[tuple[float, float]] = field(default_factory=list)    # (t_s, bpm)
    spo2_reports: list[tuple[float, float]] = field(default_factory=list)  # (t_s, %)


def simulate(patient: str, scenario: PatientScenario, seed: int, seconds: float,
             rhythm: RhythmClassifier | None = None) -> tuple[PatientRun, PatientSimulator]:
    """Run one patient through the gateway's processing and alarm engine; collect every alarm notice."""
    run = PatientRun(patient, seconds)

    def publish(_patient: str, leaf: str, payload: dict[str, Any], _qos: int, _retain: bool, _stamp: bool) -> None:
        if leaf == "alarms":
            run.notices.append(payload)

    bridge = AlarmBridge(AlarmSettings(), "eval", publish, lambda _r: None, lambda _p: True)
    device = "C0:00:00:00:EE:01"
    proc = DeviceProcessor(device, patient, BridgeSink(bridge), 250, analysis=AnalysisSettings(rhythm_model=None),
                           rhythm=rhythm)
    sim = PatientSimulator(scenario, seed=seed, ecg_rate_hz=FS)
    seq, index, next_second = 0, 0, 1
    total = int(seconds * FS)
    while index + PER_PACKET <= total:
        end_s = (index + PER_PACKET) / FS
        while next_second <= end_s:  # the once-a-second notifications due before this packet
            _second(proc, sim, next_second, run)
            next_second += 1
        samples = uv_to_int16(sim.ecg_uv(index, PER_PACKET), 1000).astype(np.int32)
        first_ns = T0_NS + round(index * 1e9 / FS)
        proc.on_ecg_frame(EcgFrame(first_ns, float(FS), 1.0, samples, seq, first_ns + round(PER_PACKET * 4e6)
                                   + TRANSPORT_NS))
        seq, index = seq + 1, index + PER_PACKET
        if index % (FS * 10) < PER_PACKET:
            bridge.tick()
    return run, sim


def _second(proc: DeviceProcessor, sim: PatientSimulator, t: int, run: PatientRun) -> None:
    rx = T0_NS + t * 1_000_000_000 + TRANSPORT_NS
    contact = sim.sensor_contact(t)
    hr = max(1, round(sim.heart_rate_bpm(t)))
    rr = [rr_ms_to_1024(x * 1000.0) for x in sim.rr_intervals_s(t - 1, t)] if contact else []
    proc.on_heart_rate(encode_heart_rate_measurement(HeartRateMeasurement(min(hr, 0xFFFF), contact, None,
                                                                          tuple(rr[:9]))), rx)
    spo2 = round(sim.spo2_pct(t), 1)
    proc.on_plx_continuous(encode_plx_continuous_measurement(PlxContinuousMeasurement(
        SpO2PR(sfloat_from_float(spo2, 1), sfloat_from_float(round(sim.pulse_rate_bpm(t)), 0)))), rx)
    run.hr_reports.append((float(t), float(hr)))
    run.spo2_reports.append((float(t), spo2))


@dataclass(frozen=True)
class Expected:
    """A critical event, the condition that must alarm, and when the signal first met it (s)."""

    patient: str
    kind: str
    condition: str
    criterion_s: float


def expected_alarms(run: PatientRun, sim: PatientSimulator) -> list[Expected]:
    out = []
    for ev in sim.truth_events():
        if not ev.critical:
            continue
        start, end = ev.start_s, ev.end_s if ev.end_s is not None else run.seconds
        if ev.kind == "vt":
            v = [b.t_s for b in sim.beats_between(start, end + 0.5) if b.symbol == "V"]
            if len(v) >= VT_BEATS:
                out.append(Expected(run.patient, "vt", "vt", v[VT_BEATS - 1]))
        elif ev.kind == "vf":
            out.append(Expected(run.patient, "vf", "vf", start + VF_WINDOW_S))
        elif ev.kind == "pause":
            before = [b.t_s for b in sim.beats_between(max(0.0, start - 5.0), start + 0.01)]
            if before:
                out.append(Expected(run.patient, "pause", "asystole", before[-1] + 3.0))
        elif ev.kind == "desaturation":
            below = [t for t, s in run.spo2_reports if s < 90.0 and start <= t <= end + 60]
            if below:
                out.append(Expected(run.patient, "desaturation", "spo2_low", below[0]))
        elif ev.kind in ("tachycardia", "sinus", "bradycardia"):
            high = ev.params.get("hr_bpm", 0) > 150
            hits = [t for t, h in run.hr_reports if start <= t <= end + 10 and (h > 150 if high else h < 40)]
            if hits:
                out.append(Expected(run.patient, ev.kind, "hr_high" if high else "hr_low", hits[0]))
    return out


def score(runs: list[tuple[PatientRun, PatientSimulator]]) -> dict[str, Any]:
    """Sensitivity and delays on critical events; physiological false alarms elsewhere."""
    events = []
    for run, sim in runs:
        for exp in expected_alarms(run, sim):
            matches = [n for n in run.notices if n["condition"] == exp.condition
                       and n["state"] in ("raised", "escalated")
                       and (n["trigger_sample_device_time_ns"] - T0_NS) / 1e9 >= exp.criterion_s - 1.0]
            delay = (matches[0]["trigger_sample_device_time_ns"] - T0_NS) / 1e9 - exp.criterion_s if matches else None
            allowed = ONSET_S[exp.condition] + 1.0
            events.append({"patient": exp.patient, "event": exp.kind, "condition": exp.condition,
                           "criterion_s": round(exp.criterion_s, 3), "delay_s": None if delay is None else
                           round(delay, 3), "allowed_s": allowed, "ok": delay is not None and delay <= allowed})
    return {"events": events, "detected": sum(e["ok"] for e in events), "expected": len(events)}


def poisson_upper_rate(events: int, exposure: float, confidence: float = 0.95) -> float:
    """Exact one-sided upper confidence bound of a Poisson rate (events per unit of exposure).

    Why: "fewer than 0.1 false alarms per patient-hour" is only shown when the bound, not the point
    estimate, is below it; 0 events in 30 patient-hours bounds the rate at 0.0999.
    """
    from scipy.stats import chi2  # type: ignore[import-untyped]

    return float(chi2.ppf(confidence, 2 * (events + 1))) / 2.0 / exposure


def false_alarms(runs: list[PatientRun]) -> dict[str, Any]:
    raised = [n for r in runs for n in r.notices if n["state"] == "raised" and n["category"] == "physiological"]
    hours = sum(r.seconds for r in runs) / 3600.0
    return {"patient_hours": round(hours, 3), "physiological_alarms": len(raised),
            "per_patient_hour": round(len(raised) / hours, 4) if hours else None,
            "upper95_per_patient_hour": round(poisson_upper_rate(len(raised), hours), 4) if hours else None,
            "conditions": sorted({n["condition"] for n in raised})}


def critical_scenarios() -> list[tuple[str, dict[str, Any]]]:
    """One patient per critical event kind, on a noisy but normal baseline."""
    base = {"snr_db": 18.0}
    return [
        ("pt-vt", {**base, "hr_bpm": 75, "events": [{"kind": "vt", "at_s": 40, "duration_s": 12, "hr_bpm": 180}]}),
        ("pt-pause", {**base, "hr_bpm": 70, "events": [{"kind": "pause", "at_s": 40, "duration_s": 5}]}),
        ("pt-tachy", {**base, "hr_bpm": 80, "events": [{"kind": "tachycardia", "at_s": 30, "duration_s": 40,
                                                          "hr_bpm": 170, "ramp_s": 5}]}),
        ("pt-brady", {**base, "hr_bpm": 60, "events": [{"kind": "bradycardia", "at_s": 30, "duration_s": 40,
                                                          "hr_bpm": 34, "ramp_s": 5}]}),
        ("pt-desat", {**base, "hr_bpm": 72, "events": [{"kind": "desaturation", "at_s": 20, "duration_s": 60,
                                                          "target_pct": 84}]}),
        ("pt-vf", {**base, "hr_bpm": 80, "events": [{"kind": "vf", "at_s": 40, "duration_s": 30}]}),
    ]


def noisy_normal_scenario(i: int) -> dict[str, Any]:
    """Sinus rhythm with noise at 10-20 dB SNR and motion artefacts every few minutes."""
    events = [{"kind": "motion", "at_s": 60.0 + 240.0 * k, "duration_s": 20} for k in range(8)]
    return {"hr_bpm": 60 + (i * 7) % 40, "snr_db": 10.0 + (i % 3) * 5.0, "events": events}


def run(patients: int, minutes: float, json_path: Path | None, use_model: bool) -> dict[str, Any]:
    model = RhythmClassifier.load(SHIPPED_RHYTHM_MODEL) if use_model and SHIPPED_RHYTHM_MODEL.exists() else None
    began = time.process_time()
    critical = []
    for i, (name, sc) in enumerate(critical_scenarios()):
        critical.append(simulate(name, PatientScenario.model_validate(sc), 100 + i, 120.0, model))
    sensitivity = score(critical)
    normal = []
    for i in range(patients):
        r, _ = simulate(f"pt-n{i:03d}", PatientScenario.model_validate(noisy_normal_scenario(i)), 500 + i,
                        minutes * 60.0, model)
        normal.append(r)
        print(f"noisy normal {i + 1}/{patients}: {sum(1 for n in r.notices if n['state'] == 'raised')} raised",
              flush=True)
    fa = false_alarms(normal)
    result: dict[str, Any] = {"critical": sensitivity, "false_alarms": fa, "rhythm_model": model is not None,
                              "cpu_s": round(time.process_time() - began, 1)}
    for e in sensitivity["events"]:
        print(f"{e['event']:<14} {e['condition']:<9} delay {e['delay_s']} s (allowed {e['allowed_s']} s) "
              f"{'ok' if e['ok'] else 'MISSED'}")
    print(f"critical events alarmed in time: {sensitivity['detected']}/{sensitivity['expected']}; false alarms on "
          f"noisy normal rhythms: {fa['physiological_alarms']} in {fa['patient_hours']} patient-hours "
          f"({fa['per_patient_hour']} per patient-hour; one-sided 95 % upper bound {fa['upper95_per_patient_hour']})")
    if json_path is not None:
        json_path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return result


def run_cli(ns: argparse.Namespace) -> int:
    """``cardiogate eval alarms``: exit 0 when every critical event alarmed in time, else 1."""
    result = run(ns.patients, ns.minutes, ns.json, not ns.no_model)
    return 0 if result["critical"]["detected"] == result["critical"]["expected"] else 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="cardiogate eval alarms", description=ALARMS_DESCRIPTION)
    add_alarms_arguments(p)
    return run_cli(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
