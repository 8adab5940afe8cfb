"""What the heart does over time: rate ramps and rhythm spans drive a lazily generated train of beats.

Free of pydantic and of waveforms so the same beat logic serves the patient simulator, WFDB
replay (annotated beats) and the scoring of alarms (critical episodes found in true beats).
Beats are drawn one at a time from one seeded stream with a fixed number of draws per beat,
so the train is identical however far ahead, and in whatever order, callers ask.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal, Protocol

import numpy as np
import numpy.typing as npt

SEED_MASK = (1 << 64) - 1
_BEAT_STREAM = 0xB347
MIN_RR_S = 0.2  # 300 bpm: nothing conducts faster

RhythmName = Literal["sinus", "af", "vt", "pause"]


def seed_sequence(seed: int, *words: int) -> np.random.SeedSequence:
    """A seed stream keyed by ``seed`` and fixed ``words`` (e.g. a purpose tag and a block number)."""
    return np.random.SeedSequence([seed & SEED_MASK, *words])


@dataclass(frozen=True, slots=True)
class Beat:
    """One heartbeat: R-peak time, MIT-BIH beat code (N normal, V ventricular, A atrial premature), rhythm."""

    t_s: float
    symbol: str
    rhythm: str
    rr_s: float | None = None  # interval from the previous beat, None when unknown


class EcgBeatSource(Protocol):
    """What a watch needs from a heart, simulated or replayed: ECG samples and the beats behind them."""

    @property
    def ecg_rate_hz(self) -> int: ...

    def ecg_uv(self, first_index: int, count: int) -> npt.NDArray[np.float64]: ...

    def beats_between(self, t0_s: float, t1_s: float) -> list[Beat]: ...

    def beats_until(self, t_s: float) -> list[Beat]: ...

    def rr_intervals_s(self, t0_s: float, t1_s: float) -> list[float]: ...

    def heart_rate_bpm(self, t_s: float) -> float: ...

    def sensor_contact(self, t_s: float) -> bool: ...


@dataclass(frozen=True, slots=True)
class Ramp:
    """A value held over [start_s, end_s) that blends in, and back out, linearly over ``ramp_s``."""

    start_s: float
    end_s: float | None
    value: float
    ramp_s: float = 0.0

    def weight(self, t: float) -> float:
        """How much of ``value`` applies at ``t`` (0..1)."""
        if t < self.start_s:
            return 0.0
        up = 1.0 if self.ramp_s <= 0 else min(1.0, (t - self.start_s) / self.ramp_s)
        if self.end_s is None or t < self.end_s:
            return up
        down = 0.0 if self.ramp_s <= 0 else max(0.0, 1.0 - (t - self.end_s) / self.ramp_s)
        return min(up, down)


def blend(base: float, ramps: Sequence[Ramp], t: float) -> float:
    """``base`` overridden by each ramp in turn: a later-starting ramp wins while it is fully on."""
    value = base
    for ramp in ramps:
        w = ramp.weight(t)
        if w > 0.0:
            value += w * (ramp.value - value)
    return value


@dataclass(frozen=True, slots=True)
class RhythmSpan:
    """A rhythm other than sinus over [start_s, end_s): AF or VT at a ventricular rate, or a pause."""

    start_s: float
    end_s: float | None
    rhythm: Literal["af", "vt", "pause"]
    hr_bpm: float = 0.0
    irregularity: float = 0.0  # AF: standard deviation of log RR

    def covers(self, t: float) -> bool:
        return self.start_s <= t and (self.end_s is None or t < self.end_s)


@dataclass(frozen=True)
class RhythmPlan:
    """The heart's schedule: a sinus rate (baseline plus ramps) and spans of other rhythms on top."""

    baseline_hr_bpm: float = 72.0
    rate_ramps: tuple[Ramp, ...] = ()
    spans: tuple[RhythmSpan, ...] = ()
    rr_variability: float = 0.02
    respiration_hz: float = 0.25
    pvc_per_min: float = 0.0
    pac_per_min: float = 0.0

    def sinus_rate(self, t: float) -> float:
        """Sinus rate (bpm) at ``t``: what the sinus node would do if no other rhythm took over."""
        return blend(self.baseline_hr_bpm, self.rate_ramps, t)

    def span_at(self, t: float) -> RhythmSpan | None:
        """The latest-starting span active at ``t`` (later in the list wins a tie), or None for sinus."""
        found: RhythmSpan | None = None
        for span in self.spans:
            if span.covers(t) and (found is None or span.start_s >= found.start_s):
                found = span
        return found

    def rhythm_at(self, t: float) -> RhythmName:
        span = self.span_at(t)
        return "sinus" if span is None else span.rhythm

    def nominal_rate(self, t: float) -> float:
        """The rate the current rhythm aims at (0 during a pause)."""
        span = self.span_at(t)
        if span is None:
            return self.sinus_rate(t)
        return 0.0 if span.rhythm == "pause" else span.hr_bpm

    @cached_property
    def boundaries(self) -> tuple[float, ...]:
        """Times at which the rhythm may change."""
        edges = {s.start_s for s in self.spans} | {s.end_s for s in self.spans if s.end_s is not None}
        return tuple(sorted(edges))

    def next_boundary(self, t: float) -> float | None:
        i = bisect.bisect_right(self.boundaries, t)
        return self.boundaries[i] if i < len(self.boundaries) else None

    def pause_end(self, t: float) -> float | None:
        """When the pause(s) covering ``t`` are over, None if the asystole never ends."""
        span = self.span_at(t)
        while span is not None and span.rhythm == "pause":
            if span.end_s is None:
                return None
            t = span.end_s
            span = self.span_at(t)
        return t


@dataclass
class BeatTrain:
    """R-peak times from a plan, generated lazily and identically for a given seed."""

    plan: RhythmPlan
    seed: int = 0
    _rng: np.random.Generator = field(init=False, repr=False)
    _beats: list[Beat] = field(init=False, repr=False)
    _times: list[float] = field(init=False, repr=False)
    _ended: bool = field(init=False, default=False, repr=False)

    def __post_init__(self) -> None:
        self._rng = np.random.default_rng(seed_sequence(self.seed, _BEAT_STREAM))
        rr0 = 60.0 / self.plan.sinus_rate(0.0)
        first = Beat(-(4.0 + float(self._rng.random())) * rr0, "N", "sinus", rr0)  # the heart beat before t=0
        self._beats = [first]
        self._times = [first.t_s]

    def extend_to(self, t: float) -> None:
        """Generate beats until one lies beyond ``t`` (or the heart stops for good)."""
        while not self._ended and self._times[-1] <= t:
            nxt = self._next(self._beats[-1])
            if nxt is None:
                self._ended = True
            else:
                self._beats.append(nxt)
                self._times.append(nxt.t_s)

    def between(self, t0: float, t1: float) -> list[Beat]:
        """Beats with t0 <= t < t1 (times may be negative: the heart beat before the watch started)."""
        self.extend_to(t1)
        return self._beats[bisect.bisect_left(self._times, t0):bisect.bisect_left(self._times, t1)]

    def last_before(self, t: float, count: int) -> list[Beat]:
        """The last ``count`` beats at or before ``t``."""
        self.extend_to(t)
        i = bisect.bisect_right(self._times, t)
        return self._beats[max(0, i - count):i]

    def rr_between(self, t0: float, t1: float) -> list[float]:
        """RR intervals (s) ending at each beat in [t0, t1)."""
        self.extend_to(t1)
        return rr_in_window(self._times, t0, t1)

    def _next(self, prev: Beat) -> Beat | None:
        z = float(self._rng.standard_normal())  # always two draws per beat: the stream never drifts
        u = float(self._rng.random())
        plan, b = self.plan, prev.t_s
        span = plan.span_at(b)
        if span is not None and span.rhythm == "pause":
            return self._escape(prev, b)
        rr, symbol = self._interval(prev, span, b, z, u)
        t_next = b + rr
        s = plan.next_boundary(b)
        while s is not None and s <= t_next:
            new = plan.span_at(s)
            if new is not None and new.rhythm == "pause":
                return self._escape(prev, s)
            if _name(new) != _name(span):
                rr, symbol = self._interval(prev, new, s, z, u)
                t_next = max(s, b + rr)
                span = new
            s = plan.next_boundary(s)
        return Beat(t_next, symbol, _name(span), t_next - b)

    def _escape(self, prev: Beat, t_pause: float) -> Beat | None:
        """The first beat after a pause, exactly when it ends."""
        end = self.plan.pause_end(t_pause)
        if end is None:
            return None
        rhythm = self.plan.rhythm_at(end)
        return Beat(end, "V" if rhythm == "vt" else "N", rhythm, end - prev.t_s)

    def _interval(self, prev: Beat, span: RhythmSpan | None, t: float, z: float, u: float) -> tuple[float, str]:
        if span is not None and span.rhythm == "vt":
            return max(MIN_RR_S, 60.0 / span.hr_bpm * (1.0 + 0.01 * z)), "V"
        if span is not None and span.rhythm == "af":
            sigma = span.irregularity
            return max(MIN_RR_S + 0.05, 60.0 / span.hr_bpm * math.exp(sigma * z - 0.5 * sigma * sigma)), "N"
        plan = self.plan
        rate = plan.sinus_rate(t)
        base = 60.0 / rate
        rsa = 1.0 + 0.5 * plan.rr_variability * math.sin(2.0 * math.pi * plan.respiration_hz * t)
        rr = base * (1.0 + plan.rr_variability * max(-3.0, min(3.0, z))) * rsa
        if prev.rhythm == "sinus" and prev.symbol == "V" and prev.rr_s is not None:
            return max(MIN_RR_S, 2.0 * base - prev.rr_s), "N"  # full compensatory pause after a PVC
        if prev.rhythm == "sinus" and prev.symbol == "A":
            return max(MIN_RR_S, 1.1 * base), "N"  # the sinus node was reset
        p_pvc, p_pac = plan.pvc_per_min / rate, plan.pac_per_min / rate
        if u < p_pvc:
            return max(MIN_RR_S, 0.6 * base), "V"
        if u < p_pvc + p_pac:
            return max(MIN_RR_S, 0.7 * base), "A"
        return max(MIN_RR_S, rr), "N"


def _name(span: RhythmSpan | None) -> str:
    return "sinus" if span is None else span.rhythm


def reported_rate_bpm(recent: Sequence[Beat], t: float, n_rr: int = 4) -> float | None:
    """Heart rate as a wearable reports it at ``t``: 60 / mean of the last ``n_rr`` RR intervals.

    ``recent`` are the last beats at or before ``t``. While no beat comes, the time since the last
    one bounds the RR from below, so the rate falls during a pause instead of freezing.
    """
    if len(recent) < 2:
        return None
    times = [b.t_s for b in recent[-(n_rr + 1):]]
    mean_rr = (times[-1] - times[0]) / (len(times) - 1)
    return 60.0 / max(mean_rr, t - times[-1])


def rr_in_window(times: Sequence[float], t0: float, t1: float) -> list[float]:
    """RR intervals (s) ending at each beat in [t0, t1), from sorted beat ``times``."""
    lo = max(1, bisect.bisect_left(times, t0))
    hi = bisect.bisect_left(times, t1)
    return [times[i] - times[i - 1] for i in range(lo, hi)]


@dataclass(frozen=True, slots=True)
class Episode:
    """A stretch of time an alarm system should flag: vt, asystole, bradycardia, tachycardia, desaturation."""

    kind: str
    start_s: float
    end_s: float
    detail: str = ""

    def as_record(self) -> dict[str, object]:
        return {"kind": self.kind, "start_s": round(self.start_s, 3), "end_s": round(self.end_s, 3),
                "detail": self.detail}


def episodes_from_beats(beats: Sequence[Beat], *, sustain_s: float = 10.0, pause_s: float = 3.0,
                        low_bpm: float = 40.0, high_bpm: float = 150.0, n_rr: int = 4) -> list[Episode]:
    """Critical episodes in a true beat sequence: asystole > ``pause_s``, VT runs (>= 3 V beats in a row),
    and heart rate (mean of ``n_rr`` RR) below ``low_bpm`` or above ``high_bpm`` for >= ``sustain_s``."""
    out: list[Episode] = []
    times = [b.t_s for b in beats]
    for a, b in itertools.pairwise(times):
        if b - a > pause_s:
            out.append(Episode("asystole", a, b, f"no beat for {b - a:.2f} s"))
    run: list[float] = []
    for beat in [*beats, Beat(math.inf, "", "")]:
        if beat.symbol == "V":
            run.append(beat.t_s)
            continue
        if len(run) >= 3:
            out.append(Episode("vt", run[0], run[-1], f"{len(run)} ventricular beats"))
        run = []
    rates = [(times[i], 60.0 * n_rr / (times[i] - times[i - n_rr])) for i in range(n_rr, len(times))]
    for t0, t1 in _runs(rates, lambda hr: hr < low_bpm):
        if t1 - t0 >= sustain_s:
            out.append(Episode("bradycardia", t0, t1, f"HR < {low_bpm:g} bpm"))
    for t0, t1 in _runs(rates, lambda hr: hr > high_bpm):
        if t1 - t0 >= sustain_s:
            out.append(Episode("tachycardia", t0, t1, f"HR > {high_bpm:g} bpm"))
    return sorted(out, key=lambda e: (e.start_s, e.kind))


def _runs(points: Sequence[tuple[float, float]], hit: Callable[[float], bool]) -> list[tuple[float, float]]:
    """(first, last) times of each maximal run of consecutive points whose value passes ``hit``."""
    runs: list[tuple[float, float]] = []
    start: float | None = None
    last = 0.0
    for t, value in points:
        if hit(value):
            start = t if start is None else start
            last = t
        elif start is not None:
            runs.append((start, last))
            start = None
    if start is not None:
        runs.append((start, last))
    return runs
