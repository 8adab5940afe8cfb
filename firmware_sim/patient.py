"""A simulated patient: a validated scenario (baseline vitals plus a timeline of events) and its signals.

:class:`PatientScenario` is a strict pydantic model, so it can sit in a watch's TOML entry as a
``patient`` table or stand alone (:func:`load_patient_scenario`); docs/simulator-scenarios.md
describes the format. :class:`PatientSimulator` turns it, with a seed, into beats, an ECG, heart
rate, SpO2, blood pressure, sensor contact and the ground truth an alarm engine is scored on.
Everything is a deterministic function of (scenario, seed, sample rate): the ECG is computed in
fixed blocks of samples with per-block noise, so any split of a sample range gives the same values.
"""

from __future__ import annotations

import itertools
import math
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import Field, ValidationError, field_validator, model_validator

from cardiogate.core.settings import ConfigError, StrictModel, describe_validation_error, read_toml
from cardiogate.sim.physiology import (
    NOMINAL_R_MV,
    block_noise,
    fibrillation_mv,
    fibrillatory_mv,
    fibrillatory_oscillators,
    motion_mv,
    ppg_counts,
    ppg_motion,
    qrs_peak_to_peak_mv,
    render_beats,
    render_pulses,
    wander_oscillators,
)
from cardiogate.sim.rhythm import (
    Beat,
    BeatTrain,
    Episode,
    Ramp,
    RhythmPlan,
    RhythmSpan,
    blend,
    episodes_from_beats,
    reported_rate_bpm,
)

F64 = npt.NDArray[np.float64]
HeartRate = Annotated[float, Field(ge=20.0, le=300.0)]
CRITICAL_PAUSE_S = 3.0
CRITICAL_LOW_BPM, CRITICAL_HIGH_BPM = 40.0, 150.0
CRITICAL_SPO2_PCT = 88.0
_VT_PULSE = {"absent": 0.0, "weak": 0.15, "preserved": 0.9}


# ---- scenario -----------------------------------------------------------------------------------

class _Event(StrictModel):
    """Common to every event: when it starts and how long it lasts (``inf`` or omitted where allowed: no end)."""

    at_s: float = Field(ge=0.0, allow_inf_nan=False, description="start, seconds since the watch started")
    duration_s: float | None = Field(default=60.0, gt=0.0)

    @field_validator("duration_s")
    @classmethod
    def _open_ended(cls, v: float | None) -> float | None:
        return None if v is not None and math.isinf(v) else v

    @property
    def end_s(self) -> float | None:
        return None if self.duration_s is None else self.at_s + self.duration_s

    def lasts_at_least(self, seconds: float, lead_in_s: float = 0.0) -> bool:
        return self.duration_s is None or self.duration_s - lead_in_s >= seconds

    def critical_reason(self, sustain_s: float) -> str | None:
        """Why this event should raise a high-priority alarm, or None."""
        return None


class _RateEvent(_Event):
    hr_bpm: HeartRate
    ramp_s: float = Field(default=0.0, ge=0.0, allow_inf_nan=False,
                          description="linear ramp from the prevailing rate, and back after the end")

    def critical_reason(self, sustain_s: float) -> str | None:
        if not self.lasts_at_least(sustain_s, self.ramp_s):
            return None
        if self.hr_bpm < CRITICAL_LOW_BPM:
            return f"HR < {CRITICAL_LOW_BPM:g} bpm for >= {sustain_s:g} s"
        if self.hr_bpm > CRITICAL_HIGH_BPM:
            return f"HR > {CRITICAL_HIGH_BPM:g} bpm for >= {sustain_s:g} s"
        return None


class SinusEvent(_RateEvent):
    """Sinus rhythm at a new rate (P waves present); with no duration the change is permanent."""

    kind: Literal["sinus"] = "sinus"
    duration_s: float | None = Field(default=None, gt=0.0)


class BradycardiaEvent(_RateEvent):
    """Sinus bradycardia."""

    kind: Literal["bradycardia"] = "bradycardia"
    hr_bpm: float = Field(default=35.0, ge=20.0, le=60.0)
    ramp_s: float = Field(default=5.0, ge=0.0, allow_inf_nan=False)


class TachycardiaEvent(_RateEvent):
    """Sinus tachycardia."""

    kind: Literal["tachycardia"] = "tachycardia"
    hr_bpm: float = Field(default=165.0, ge=100.0, le=300.0)
    ramp_s: float = Field(default=10.0, ge=0.0, allow_inf_nan=False)


class AfEvent(_Event):
    """Atrial fibrillation: irregularly irregular RR, no P waves, fibrillatory baseline."""

    kind: Literal["af"] = "af"
    hr_bpm: float = Field(default=110.0, ge=30.0, le=220.0, description="mean ventricular rate")
    irregularity: float = Field(default=0.25, ge=0.05, le=0.6, description="standard deviation of log RR")
    fwave_mv: float = Field(default=0.08, ge=0.0, le=0.5, description="f-wave amplitude")

    def critical_reason(self, sustain_s: float) -> str | None:
        if self.hr_bpm > CRITICAL_HIGH_BPM and self.lasts_at_least(sustain_s):
            return f"HR > {CRITICAL_HIGH_BPM:g} bpm for >= {sustain_s:g} s"
        return None


class VtEvent(_Event):
    """A run of ventricular tachycardia: wide bizarre QRS, no P waves."""

    kind: Literal["vt"] = "vt"
    duration_s: float | None = Field(default=10.0, gt=0.0)
    hr_bpm: float = Field(default=190.0, ge=120.0, le=300.0)
    pulses: Literal["absent", "weak", "preserved"] = Field(
        default="absent", description="what the ventricles still eject: pulseless (absent), barely (weak, 15 % of "
                                       "a normal pulse), or a VT with pulses preserved (90 %)")

    def critical_reason(self, sustain_s: float) -> str | None:
        return "ventricular tachycardia run"


class VfEvent(_Event):
    """Ventricular fibrillation: no beats and no pulses, only a wandering 3-9 Hz oscillation (coarse or fine).
    It does not end on its own (defibrillation ends it): without ``duration_s`` it lasts to the end."""

    kind: Literal["vf"] = "vf"
    duration_s: float | None = Field(default=None, gt=0.0)
    amplitude_mv: float = Field(default=0.5, ge=0.05, le=3.0, description="typical peak; coarse VF >= 0.2 mV, "
                                                                         "fine below")
    frequency_hz: float = Field(default=5.0, ge=3.0, le=9.0)

    def critical_reason(self, sustain_s: float) -> str | None:
        return "ventricular fibrillation"


class PauseEvent(_Event):
    """No beats at all (sinus pause, or asystole when it never ends); the next beat comes at the end."""

    kind: Literal["pause"] = "pause"
    duration_s: float | None = Field(default=4.0, gt=0.0)

    def critical_reason(self, sustain_s: float) -> str | None:
        if self.duration_s is None:
            return "asystole"
        return f"pause > {CRITICAL_PAUSE_S:g} s" if self.duration_s > CRITICAL_PAUSE_S else None


class DesaturationEvent(_Event):
    """SpO2 falls smoothly to a target over ``fall_s``, holds until the end, recovers over ``recovery_s``."""

    kind: Literal["desaturation"] = "desaturation"
    duration_s: float | None = Field(default=90.0, gt=0.0)
    target_pct: float = Field(default=84.0, ge=50.0, le=99.0)
    fall_s: float = Field(default=30.0, ge=0.0, allow_inf_nan=False)
    recovery_s: float = Field(default=30.0, ge=0.0, allow_inf_nan=False)

    def critical_reason(self, sustain_s: float) -> str | None:
        return f"SpO2 < {CRITICAL_SPO2_PCT:g} %" if self.target_pct < CRITICAL_SPO2_PCT else None


class HypertensiveEvent(_Event):
    """Blood pressure ramps to a new systolic/diastolic and back."""

    kind: Literal["hypertensive"] = "hypertensive"
    duration_s: float | None = Field(default=300.0, gt=0.0)
    systolic_mmhg: float = Field(default=185.0, ge=60.0, le=280.0)
    diastolic_mmhg: float = Field(default=115.0, ge=30.0, le=180.0)
    ramp_s: float = Field(default=60.0, ge=0.0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _pressures(self) -> HypertensiveEvent:
        if self.diastolic_mmhg >= self.systolic_mmhg:
            raise ValueError(f"diastolic_mmhg ({self.diastolic_mmhg:g}) must be below systolic_mmhg "
                             f"({self.systolic_mmhg:g})")
        return self


class NoiseEvent(_Event):
    """Additive broadband (white Gaussian) noise at an SNR relative to the QRS peak-to-peak amplitude."""

    kind: Literal["noise"] = "noise"
    duration_s: float | None = Field(default=10.0, gt=0.0)
    snr_db: float = Field(default=6.0, ge=-20.0, le=60.0)


class MotionEvent(_Event):
    """Motion artefact: large low-frequency baseline swings and sharp spikes."""

    kind: Literal["motion"] = "motion"
    duration_s: float | None = Field(default=10.0, gt=0.0)
    amplitude_mv: float = Field(default=1.5, ge=0.0, le=20.0)
    spikes_per_s: float = Field(default=1.0, ge=0.0, le=20.0)
    spike_mv: float = Field(default=2.0, ge=0.0, le=20.0)


class PpgMotionEvent(_Event):
    """Arm movement under an optical sensor: quasi-periodic, pulse-sized-or-larger swings of the PPG only."""

    kind: Literal["ppg_motion"] = "ppg_motion"
    duration_s: float | None = Field(default=30.0, gt=0.0)
    rate_hz: float = Field(default=1.3, ge=0.3, le=4.0, description="about this many swings a second")
    amplitude: float = Field(default=3.0, ge=0.0, le=20.0, description="swing size, in normal pulses")
    jitter: float = Field(default=0.15, ge=0.0, le=0.45, description="timing jitter, share of a period")


class LeadOffEvent(_Event):
    """Electrode off: ECG flat (0) or railed, and sensor contact reported false."""

    kind: Literal["lead_off"] = "lead_off"
    duration_s: float | None = Field(default=10.0, gt=0.0)
    mode: Literal["flat", "railed"] = "flat"
    rail_mv: float = Field(default=32.767, ge=-10000.0, le=10000.0, description="the level when railed")


Event = Annotated[
    SinusEvent | BradycardiaEvent | TachycardiaEvent | AfEvent | VtEvent | VfEvent | PauseEvent | DesaturationEvent
    | HypertensiveEvent | NoiseEvent | MotionEvent | PpgMotionEvent | LeadOffEvent,
    Field(discriminator="kind"),
]
EVENT_KINDS = ("sinus", "bradycardia", "tachycardia", "af", "vt", "vf", "pause", "desaturation", "hypertensive",
               "noise", "motion", "ppg_motion", "lead_off")


class PatientScenario(StrictModel):
    """A patient's baseline and the timeline of events injected into it."""

    hr_bpm: HeartRate = 72.0
    spo2_pct: float = Field(default=97.0, ge=50.0, le=100.0)
    systolic_mmhg: float = Field(default=120.0, ge=60.0, le=280.0)
    diastolic_mmhg: float = Field(default=80.0, ge=30.0, le=180.0)
    snr_db: float | None = Field(default=None, ge=-20.0, le=60.0, description="baseline ECG noise; None: clean")
    respiration_rate_bpm: float = Field(default=14.0, ge=4.0, le=60.0)
    rr_variability: float = Field(default=0.02, ge=0.0, le=0.2, description="sinus RR standard deviation / mean")
    r_amplitude_mv: float = Field(default=NOMINAL_R_MV, gt=0.0, le=5.0)
    wander_mv: float = Field(default=0.05, ge=0.0, le=2.0, description="baseline wander amplitude")
    pvc_per_min: float = Field(default=0.0, ge=0.0, le=30.0)
    pac_per_min: float = Field(default=0.0, ge=0.0, le=30.0)
    events: list[Event] = Field(default_factory=list)

    @field_validator("events", mode="before")
    @classmethod
    def _kinds_present(cls, events: Any) -> Any:
        for i, ev in enumerate(events if isinstance(events, list) else []):
            if isinstance(ev, dict) and "kind" not in ev:
                raise ValueError(f"events[{i}] has no 'kind' (one of {', '.join(EVENT_KINDS)})")
        return events

    @model_validator(mode="after")
    def _consistent(self) -> PatientScenario:
        if self.diastolic_mmhg >= self.systolic_mmhg:
            raise ValueError(f"diastolic_mmhg ({self.diastolic_mmhg:g}) must be below systolic_mmhg "
                             f"({self.systolic_mmhg:g})")
        for i, ev in enumerate(self.events):
            if isinstance(ev, DesaturationEvent) and ev.target_pct >= self.spo2_pct:
                raise ValueError(f"events[{i}] desaturation target_pct ({ev.target_pct:g}) must be below the "
                                 f"baseline spo2_pct ({self.spo2_pct:g})")
        return self

    @classmethod
    def from_heart_rate_knots(cls, knots: Sequence[tuple[float, float]], **fields: Any) -> PatientScenario:
        """The scenario equivalent to piecewise-linear [seconds, bpm] knots (the older ``heart_rate`` setting)."""
        if not knots:
            raise ValueError("heart-rate knots must be non-empty")
        events = [SinusEvent(at_s=t0, hr_bpm=h1, ramp_s=t1 - t0)
                  for (t0, _), (t1, h1) in itertools.pairwise(knots)]
        return cls(hr_bpm=knots[0][1], events=[*events, *fields.pop("events", [])], **fields)


def parse_patient_scenario(data: Mapping[str, Any], source: str = "patient scenario") -> PatientScenario:
    """A scenario from parsed TOML/JSON, or a ConfigError with one line per problem naming the field."""
    try:
        return PatientScenario.model_validate(dict(data))
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, source)) from None


def load_patient_scenario(path: Path) -> PatientScenario:
    """A scenario from a standalone TOML file: the fields at top level, or all inside one ``[patient]`` table."""
    data = read_toml(path)
    if set(data) == {"patient"} and isinstance(data["patient"], dict):
        data = data["patient"]
    return parse_patient_scenario(data, str(path))


# ---- ground truth -------------------------------------------------------------------------------

@dataclass(frozen=True)
class TruthEvent:
    """One injected event as the scorer sees it; ``critical`` if a high-priority alarm is expected."""

    index: int
    kind: str
    start_s: float
    end_s: float | None
    params: dict[str, Any]
    critical: bool
    technical: bool
    reason: str

    def as_record(self) -> dict[str, Any]:
        return {"index": self.index, "kind": self.kind, "start_s": self.start_s, "end_s": self.end_s,
                "params": self.params, "critical": self.critical, "technical": self.technical,
                "reason": self.reason}


def truth_events(scenario: PatientScenario, sustain_s: float = 10.0) -> list[TruthEvent]:
    """The injected events with their expected-alarm flags (lead_off is a technical alarm)."""
    out = []
    for i, ev in enumerate(scenario.events):
        reason = ev.critical_reason(sustain_s)
        technical = isinstance(ev, LeadOffEvent)
        params = ev.model_dump(exclude={"kind", "at_s", "duration_s"})
        out.append(TruthEvent(i, ev.kind, ev.at_s, ev.end_s, params, reason is not None, technical,
                              reason or ("lead off" if technical else "")))
    return out


# ---- the simulator ------------------------------------------------------------------------------

def _smooth(x: float) -> float:
    x = min(1.0, max(0.0, x))
    return x * x * (3.0 - 2.0 * x)


def _window(t: F64, start: float, end: float | None) -> npt.NDArray[np.bool_]:
    return (t >= start) & (t < (math.inf if end is None else end))


class PatientSimulator:
    """Beats, ECG and vitals of one patient, deterministic for (scenario, seed, ecg_rate_hz)."""

    BLOCK = 256  # samples per noise/cache block
    _MARGIN_S = 1.5  # beats this far outside a block still shape it
    _CACHE_BLOCKS = 16

    def __init__(self, scenario: PatientScenario, seed: int = 0, ecg_rate_hz: int = 250) -> None:
        if not 50 <= ecg_rate_hz <= 2000:
            raise ValueError(f"ecg_rate_hz must lie within 50..2000 (got {ecg_rate_hz})")
        self.scenario = scenario
        self.seed = seed
        self.ecg_rate_hz = ecg_rate_hz
        ev = scenario.events
        resp_hz = scenario.respiration_rate_bpm / 60.0
        self.plan = RhythmPlan(
            baseline_hr_bpm=scenario.hr_bpm,
            rate_ramps=tuple(Ramp(e.at_s, e.end_s, e.hr_bpm, e.ramp_s) for e in ev if isinstance(e, _RateEvent)),
            spans=tuple(self._span(e) for e in ev if isinstance(e, AfEvent | VtEvent | VfEvent | PauseEvent)),
            rr_variability=scenario.rr_variability, respiration_hz=resp_hz,
            pvc_per_min=scenario.pvc_per_min, pac_per_min=scenario.pac_per_min)
        self._train = BeatTrain(self.plan, seed)
        self._gain = scenario.r_amplitude_mv / NOMINAL_R_MV
        self._p2p_uv = qrs_peak_to_peak_mv(self._gain) * 1000.0
        self._wander = wander_oscillators(seed, resp_hz)
        self._fwaves = fibrillatory_oscillators(seed)
        self._af = [e for e in ev if isinstance(e, AfEvent)]
        self._motion = [(i, e) for i, e in enumerate(ev) if isinstance(e, MotionEvent)]
        self._noise = [e for e in ev if isinstance(e, NoiseEvent)]
        self._lead_off = [e for e in ev if isinstance(e, LeadOffEvent)]
        self._vt = [e for e in ev if isinstance(e, VtEvent)]
        self._vf = [(i, e) for i, e in enumerate(ev) if isinstance(e, VfEvent)]
        self._ppg_motion = [(i, e) for i, e in enumerate(ev) if isinstance(e, PpgMotionEvent)]
        self._desat = [e for e in ev if isinstance(e, DesaturationEvent)]
        hyper = [e for e in ev if isinstance(e, HypertensiveEvent)]
        self._sys_ramps = tuple(Ramp(e.at_s, e.end_s, e.systolic_mmhg, e.ramp_s) for e in hyper)
        self._dia_ramps = tuple(Ramp(e.at_s, e.end_s, e.diastolic_mmhg, e.ramp_s) for e in hyper)
        self._cache: OrderedDict[int, F64] = OrderedDict()

    @staticmethod
    def _span(e: AfEvent | VtEvent | VfEvent | PauseEvent) -> RhythmSpan:
        if isinstance(e, AfEvent):
            return RhythmSpan(e.at_s, e.end_s, "af", e.hr_bpm, e.irregularity)
        if isinstance(e, VtEvent):
            return RhythmSpan(e.at_s, e.end_s, "vt", e.hr_bpm)
        return RhythmSpan(e.at_s, e.end_s, "pause")  # a pause, or VF: no beat ejects, no R wave to time

    # -- beats and rate --

    def beats_between(self, t0_s: float, t1_s: float) -> list[Beat]:
        """True beats (R peaks) with t0_s <= t < t1_s, generated as far as needed."""
        return self._train.between(t0_s, t1_s)

    def beats_until(self, t_s: float) -> list[Beat]:
        """All beats since the watch started, before ``t_s``."""
        return self._train.between(0.0, t_s)

    def rr_intervals_s(self, t0_s: float, t1_s: float) -> list[float]:
        """RR intervals (s) ending at each beat in [t0_s, t1_s)."""
        return self._train.rr_between(t0_s, t1_s)

    def heart_rate_bpm(self, t_s: float) -> float:
        """Heart rate as a watch reports it at ``t_s``: 60 / mean of the last 4 RR; falls during a pause."""
        rate = reported_rate_bpm(self._train.last_before(t_s, 5), t_s, 4)
        return self.plan.nominal_rate(t_s) if rate is None else rate

    def pulse_rate_bpm(self, t_s: float) -> float:
        """Pulse rate as an oximeter reports it: the same beats, averaged over 8 intervals."""
        rate = reported_rate_bpm(self._train.last_before(t_s, 9), t_s, 8)
        return self.plan.nominal_rate(t_s) if rate is None else rate

    def rhythm_at(self, t_s: float) -> str:
        """sinus, af, vt or pause."""
        return self.plan.rhythm_at(t_s)

    # -- ECG --

    def ecg_uv(self, first_index: int, count: int) -> F64:
        """``count`` ECG samples in microvolts from sample ``first_index`` (sample 0 at t = 0)."""
        if first_index < 0 or count < 0:
            raise ValueError("first_index and count must be non-negative")
        out = np.empty(count, dtype=np.float64)
        pos = 0
        while pos < count:
            k, off = divmod(first_index + pos, self.BLOCK)
            take = min(self.BLOCK - off, count - pos)
            out[pos:pos + take] = self._block(k)[off:off + take]
            pos += take
        return out

    def _block(self, k: int) -> F64:
        cached = self._cache.get(k)
        if cached is not None:
            self._cache.move_to_end(k)
            return cached
        sc = self.scenario
        t = (k * self.BLOCK + np.arange(self.BLOCK, dtype=np.float64)) / self.ecg_rate_hz
        t0, t1 = float(t[0]), float(t[-1])
        beats = self._train.between(t0 - self._MARGIN_S, t1 + self._MARGIN_S)
        resp_f, resp_ph = self._wander.freqs[0], self._wander.phases[0]
        gains = [self._gain * (1.0 + 0.05 * math.sin(2.0 * math.pi * resp_f * b.t_s + resp_ph)) for b in beats]
        mv = render_beats(t, beats, gains)
        if sc.wander_mv > 0:
            mv += sc.wander_mv * self._wander(t)
        for af in self._af:
            inside = _window(t, af.at_s, af.end_s)
            if af.fwave_mv > 0 and inside.any():
                mv += np.where(inside, fibrillatory_mv(self._fwaves, t, af.fwave_mv * self._gain), 0.0)
        for i, vf in self._vf:
            mv += fibrillation_mv(t, self.seed, i, vf.at_s, math.inf if vf.end_s is None else vf.end_s,
                                  vf.amplitude_mv, vf.frequency_hz)
        for i, motion in self._motion:
            end = math.inf if motion.end_s is None else motion.end_s
            mv += motion_mv(t, self.seed, i, motion.at_s, end,
                            motion.amplitude_mv, motion.spikes_per_s, motion.spike_mv)
        uv = mv * 1000.0
        variance = np.full_like(t, 0.0 if sc.snr_db is None else self._noise_sd_uv(sc.snr_db) ** 2)
        for noise in self._noise:
            variance += np.where(_window(t, noise.at_s, noise.end_s), self._noise_sd_uv(noise.snr_db) ** 2, 0.0)
        if variance.any():
            uv += np.sqrt(variance) * block_noise(self.seed, k, self.BLOCK)
        for off in self._lead_off:
            level = 0.0 if off.mode == "flat" else off.rail_mv * 1000.0
            uv = np.where(_window(t, off.at_s, off.end_s), level, uv)
        self._cache[k] = uv
        if len(self._cache) > self._CACHE_BLOCKS:
            self._cache.popitem(last=False)
        return uv

    # -- PPG --

    def pulse_volume(self, t: F64) -> F64:
        """Arterial blood volume under an optical sensor (1 = a normal pulse) at sorted times ``t``.

        Every beat ejects a pulse that arrives after the pulse transit time, scaled by breathing; a VT
        beat ejects what its event's ``pulses`` says; no beat (asystole), no pulse. Arm motion adds to it.
        """
        if t.size == 0:
            return np.zeros(0, dtype=np.float64)
        beats = self._train.between(float(t[0]) - 2.0, float(t[-1]) + 0.1)
        resp_f, resp_ph = self._wander.freqs[0], self._wander.phases[0]
        amps = [self._pulse_amplitude(b) * (1.0 + 0.08 * math.sin(2.0 * math.pi * resp_f * b.t_s + resp_ph))
                for b in beats]
        vol = render_pulses(t, beats, amps)
        vol += 0.2 * np.sin(2.0 * math.pi * resp_f * t + resp_ph)  # breathing moves venous blood too
        for i, m in self._ppg_motion:
            vol += ppg_motion(t, self.seed, i, m.at_s, math.inf if m.end_s is None else m.end_s,
                              m.rate_hz, m.amplitude, m.jitter)
        return vol

    def _pulse_amplitude(self, beat: Beat) -> float:
        if beat.rhythm != "vt":
            return 0.5 if beat.symbol == "V" else 1.0  # an ectopic beat ejects less
        for e in self._vt:
            if e.at_s <= beat.t_s and (e.end_s is None or beat.t_s < e.end_s):
                return _VT_PULSE[e.pulses]
        return _VT_PULSE["absent"]

    def ppg(self, first_index: int, count: int, rate_hz: float) -> npt.NDArray[np.int32]:
        """``count`` raw PPG samples (n, 4: ppg0, ppg1, ppg2, ambient) from sample ``first_index`` at ``rate_hz``."""
        if first_index < 0 or count < 0:
            raise ValueError("first_index and count must be non-negative")
        t = (first_index + np.arange(count, dtype=np.float64)) / rate_hz
        return ppg_counts(self.pulse_volume(t), self.seed, first_index)

    def _noise_sd_uv(self, snr_db: float) -> float:
        """Noise SD for an SNR defined as in the MIT-BIH NSTDB: signal power = (QRS peak-to-peak)^2 / 8."""
        return self._p2p_uv / math.sqrt(8.0) / math.pow(10.0, snr_db / 20.0)

    # -- vitals and contact --

    def spo2_pct(self, t_s: float) -> float:
        """Functional SpO2 (%) at ``t_s``: baseline, pulled down by desaturation events."""
        base = self.scenario.spo2_pct
        drop = 0.0
        for ev in self._desat:
            drop = max(drop, (base - ev.target_pct) * self._desat_weight(ev, t_s))
        return base - drop

    @staticmethod
    def _desat_weight(ev: DesaturationEvent, t: float) -> float:
        if t < ev.at_s:
            return 0.0
        def fall(x: float) -> float:
            return 1.0 if ev.fall_s <= 0 else _smooth((x - ev.at_s) / ev.fall_s)
        if ev.end_s is None or t < ev.end_s:
            return fall(t)
        recovered = 1.0 if ev.recovery_s <= 0 else _smooth((t - ev.end_s) / ev.recovery_s)
        return fall(ev.end_s) * (1.0 - recovered)

    def blood_pressure(self, t_s: float) -> tuple[float, float, float]:
        """(systolic, diastolic, mean) mmHg: events, plus a modest rise with heart rate; VT and asystole drop it."""
        sc = self.scenario
        systolic = blend(sc.systolic_mmhg, self._sys_ramps, t_s)
        diastolic = blend(sc.diastolic_mmhg, self._dia_ramps, t_s)
        d_hr = min(100.0, max(-40.0, self.heart_rate_bpm(t_s) - sc.hr_bpm))
        systolic += 0.25 * d_hr
        diastolic += 0.12 * d_hr
        if self.plan.rhythm_at(t_s) == "vt":
            systolic, diastolic = 0.7 * systolic, 0.8 * diastolic
        recent = self._train.last_before(t_s, 5)
        if len(recent) >= 2:
            mean_rr = (recent[-1].t_s - recent[0].t_s) / (len(recent) - 1)
            overdue = t_s - recent[-1].t_s - 2.0 * mean_rr
            if overdue > 0:  # no beats: pressure decays towards the mean filling pressure
                f = math.exp(-overdue / 2.5)
                systolic, diastolic = 15.0 + (systolic - 15.0) * f, 8.0 + (diastolic - 8.0) * f
        mean = diastolic + (systolic - diastolic) / 3.0
        return round(systolic, 1), round(diastolic, 1), round(mean, 1)

    def respiration_rate_bpm(self, t_s: float) -> float:
        """Breaths per minute (constant: the baseline)."""
        return self.scenario.respiration_rate_bpm

    def sensor_contact(self, t_s: float) -> bool:
        """False while a lead_off event is active."""
        return not self.lead_off(t_s)

    def lead_off(self, t_s: float) -> bool:
        return any(e.at_s <= t_s and (e.end_s is None or t_s < e.end_s) for e in self._lead_off)

    # -- ground truth --

    def truth_events(self, sustain_s: float = 10.0) -> list[TruthEvent]:
        """The injected events with their expected-alarm flags."""
        return truth_events(self.scenario, sustain_s)

    def critical_episodes(self, until_s: float, sustain_s: float = 10.0, step_s: float = 0.5) -> list[Episode]:
        """What actually happened up to ``until_s`` that should alarm: VT runs, pauses > 3 s, HR < 40 or
        > 150 bpm for ``sustain_s``, SpO2 < 88 % (sampled every ``step_s``)."""
        beats = self._train.between(0.0, until_s)
        out = episodes_from_beats(beats, sustain_s=sustain_s, pause_s=CRITICAL_PAUSE_S,
                                  low_bpm=CRITICAL_LOW_BPM, high_bpm=CRITICAL_HIGH_BPM)
        start: float | None = None
        grid = np.arange(0.0, until_s, step_s)
        for t in [*grid.tolist(), until_s]:
            low = t < until_s and self.spo2_pct(t) < CRITICAL_SPO2_PCT
            if low and start is None:
                start = t
            elif not low and start is not None:
                out.append(Episode("desaturation", start, t, f"SpO2 < {CRITICAL_SPO2_PCT:g} %"))
                start = None
        return sorted(out, key=lambda e: (e.start_s, e.kind))
