"""A small physiology engine: a heart-rate timeline drives beat times, beats drive the ECG.

Pure and deterministic for a given seed, so a test can regenerate exactly what a
watch produced. The ECG is a sum of Gaussian P, Q, R, S and T waves per beat, with
the QT interval shortening as the RR interval shortens (Bazett), which is enough
for realistic R-peaks, heart rate and RR intervals.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

# (offset from R peak in s at RR = 1 s, width s, amplitude mV); P and T stretch with sqrt(RR).
_WAVES: tuple[tuple[float, float, float, bool], ...] = (
    (-0.20, 0.025, 0.12, True),   # P
    (-0.03, 0.010, -0.10, False),  # Q
    (0.00, 0.011, 1.20, False),    # R
    (0.03, 0.010, -0.25, False),   # S
    (0.28, 0.050, 0.30, True),     # T
)


@dataclass(frozen=True)
class HeartRateTimeline:
    """Heart rate as a piecewise-linear function of time since the watch started."""

    knots: tuple[tuple[float, float], ...] = ((0.0, 72.0),)

    def __post_init__(self) -> None:
        times = [t for t, _ in self.knots]
        if not self.knots or times != sorted(times):
            raise ValueError("heart-rate knots must be non-empty and sorted by time")
        if any(not 20.0 <= hr <= 300.0 for _, hr in self.knots):
            raise ValueError("heart rate knots must lie within 20..300 bpm")

    def at(self, t: float) -> float:
        """Heart rate in bpm at time ``t`` (s)."""
        times = [k[0] for k in self.knots]
        i = bisect.bisect_right(times, t)
        if i == 0:
            return self.knots[0][1]
        if i == len(self.knots):
            return self.knots[-1][1]
        (t0, h0), (t1, h1) = self.knots[i - 1], self.knots[i]
        return h0 + (h1 - h0) * (t - t0) / (t1 - t0)


@dataclass
class BeatGenerator:
    """Beat (R-peak) times from a heart-rate timeline with a little physiological variability."""

    timeline: HeartRateTimeline
    seed: int = 0
    variability: float = 0.02
    _beats: list[float] = field(default_factory=lambda: [0.3])
    _rng: np.random.Generator = field(init=False)

    def __post_init__(self) -> None:
        self._rng = np.random.default_rng(self.seed)

    def beats_until(self, t_end: float) -> list[float]:
        """All beat times up to ``t_end`` (plus one beyond, so waveforms can be drawn to the edge)."""
        while self._beats[-1] <= t_end + 1.5:
            last = self._beats[-1]
            rr = 60.0 / self.timeline.at(last)
            rr *= 1.0 + self.variability * float(self._rng.standard_normal())
            self._beats.append(last + max(0.2, rr))
        return self._beats

    def beats_between(self, t0: float, t1: float) -> list[float]:
        """Beat times in [t0, t1)."""
        beats = self.beats_until(t1)
        return [b for b in beats if t0 <= b < t1]


def ecg_millivolts(t: npt.NDArray[np.float64], beats: list[float]) -> npt.NDArray[np.float64]:
    """The ECG in mV at times ``t`` given R-peak times ``beats`` (sorted)."""
    out = np.zeros_like(t)
    if not beats:
        return out
    lo, hi = float(t[0]) - 1.0, float(t[-1]) + 1.0
    for i, beat in enumerate(beats):
        if not lo <= beat <= hi:
            continue
        rr = beats[i] - beats[i - 1] if i > 0 else (beats[1] - beats[0] if len(beats) > 1 else 0.8)
        stretch = float(np.sqrt(max(rr, 0.25)))
        for offset, width, amp, scales in _WAVES:
            centre = beat + (offset * stretch if scales else offset)
            w = width * stretch if scales else width
            out += amp * np.exp(-0.5 * ((t - centre) / w) ** 2)
    return out


@dataclass
class EcgSynthesizer:
    """Quantised ECG samples for consecutive sample indices of one watch."""

    beats: BeatGenerator
    sample_rate_hz: int = 250
    resolution_nv: int = 1000
    noise_uv: float = 10.0
    seed: int = 0
    _rng: np.random.Generator = field(init=False)

    def __post_init__(self) -> None:
        self._rng = np.random.default_rng(self.seed + 7919)

    def samples(self, first_index: int, count: int) -> npt.NDArray[np.int16]:
        """``count`` int16 samples starting at sample ``first_index`` (time 0 = watch start)."""
        t = (first_index + np.arange(count, dtype=np.float64)) / self.sample_rate_hz
        beats = self.beats.beats_until(float(t[-1]))
        mv = ecg_millivolts(t, beats)
        uv = mv * 1000.0 + self._rng.normal(0.0, self.noise_uv, size=count)
        lsb = uv * 1000.0 / self.resolution_nv
        return np.clip(np.round(lsb), -32768, 32767).astype(np.int16)
