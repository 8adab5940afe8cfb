"""ECG waveform building blocks, plus the original simple engine kept for existing callers.

Pure and deterministic for a given seed, so a test can regenerate exactly what a watch
produced. A beat is a sum of Gaussian waves (P, Q, R, S, T for sinus; no P in AF; a wide,
bizarre QRS with a discordant T for ventricular beats), with P and T moving with sqrt(RR)
(Bazett). Artefacts are pure functions of time (sinusoids with seeded phases) or of a fixed
block number (seeded Gaussian noise, motion spikes per second), so any slicing of time gives
the same samples. ``HeartRateTimeline``, ``BeatGenerator`` and ``EcgSynthesizer`` are the
first engine; new code uses :class:`cardiogate.sim.patient.PatientSimulator`.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from cardiogate.sim.rhythm import Beat, seed_sequence

F64 = npt.NDArray[np.float64]

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
        return uv_to_int16(uv, self.resolution_nv)


# ---- quantisation -------------------------------------------------------------------------------

INT24_MIN, INT24_MAX = -(1 << 23), (1 << 23) - 1


def uv_to_int16(uv: npt.ArrayLike, resolution_nv: int = 1000) -> npt.NDArray[np.int16]:
    """Microvolts to int16 counts of ``resolution_nv`` nanovolts each, rounded and clipped like a saturating ADC."""
    if resolution_nv <= 0:
        raise ValueError("resolution_nv must be positive")
    lsb = np.asarray(uv, dtype=np.float64) * 1000.0 / resolution_nv
    return np.clip(np.round(lsb), -32768, 32767).astype(np.int16)


def uv_to_int24(uv: npt.ArrayLike) -> npt.NDArray[np.int32]:
    """Microvolts to the signed 24-bit microvolt samples of a Polar-style ECG stream (held in int32)."""
    return np.clip(np.round(np.asarray(uv, dtype=np.float64)), INT24_MIN, INT24_MAX).astype(np.int32)


# ---- beat morphology ----------------------------------------------------------------------------

Wave = tuple[float, float, float, bool]  # (offset from R at RR = 1 s, width s, amplitude mV, moves with sqrt(RR))

SINUS_WAVES: tuple[Wave, ...] = _WAVES
AF_WAVES: tuple[Wave, ...] = _WAVES[1:]  # no organised atrial activity: no P wave
PAC_WAVES: tuple[Wave, ...] = ((-0.16, 0.022, -0.08, True), *_WAVES[1:])  # early, inverted ectopic P
VENTRICULAR_WAVES: tuple[Wave, ...] = (
    (-0.050, 0.020, 0.20, False),  # slurred onset
    (0.000, 0.032, 1.45, False),  # broad R
    (0.070, 0.030, -0.60, False),  # broad S: QRS ~ 160 ms
    (0.300, 0.075, -0.45, True),  # T discordant to the QRS
)
NOMINAL_R_MV = 1.2
_SUPPORT = 5.0  # widths either side of a wave's centre; beyond it the wave is exactly zero


def beat_waves(beat: Beat) -> tuple[Wave, ...]:
    """The waves that make up ``beat``'s complex."""
    if beat.symbol == "V":
        return VENTRICULAR_WAVES
    if beat.symbol == "A":
        return PAC_WAVES
    return AF_WAVES if beat.rhythm == "af" else SINUS_WAVES


def render_beats(t: F64, beats: Sequence[Beat], gains: Sequence[float]) -> F64:
    """ECG in mV at sorted times ``t`` from ``beats``, each scaled by its gain (1 = R of NOMINAL_R_MV)."""
    out = np.zeros_like(t)
    for beat, gain in zip(beats, gains, strict=True):
        stretch = math.sqrt(min(max(beat.rr_s if beat.rr_s is not None else 1.0, 0.25), 2.0))
        for offset, width, amp, moves in beat_waves(beat):
            centre = beat.t_s + (offset * stretch if moves else offset)
            w = width * stretch if moves else width
            lo, hi = np.searchsorted(t, (centre - _SUPPORT * w, centre + _SUPPORT * w))
            if hi > lo:
                seg = t[lo:hi]
                out[lo:hi] += gain * amp * np.exp(-0.5 * ((seg - centre) / w) ** 2)
    return out


def qrs_peak_to_peak_mv(gain: float = 1.0) -> float:
    """Peak-to-peak QRS amplitude of a normal beat: the signal reference for SNR (as in the MIT-BIH NSTDB)."""
    t = np.arange(-0.1, 0.1, 1e-4)
    qrs = render_beats(t, [Beat(0.0, "N", "sinus", 1.0)], [gain])
    return float(qrs.max() - qrs.min())


# ---- artefacts and background -------------------------------------------------------------------

_PHASE_STREAM = 0x5A5E
_NOISE_STREAM = 0x401E
_MOTION_STREAM = 0x3071
_SPIKE_STREAM = 0x5B1C
_VF_STREAM = 0x7F00


@dataclass(frozen=True)
class Oscillators:
    """A fixed set of sinusoids (Hz, relative amplitude, phase): deterministic, time-pure background."""

    freqs: tuple[float, ...]
    amps: tuple[float, ...]
    phases: tuple[float, ...]

    @classmethod
    def seeded(cls, seed: int, tag: int, freqs: Sequence[tuple[float, float]], amps: Sequence[float]) -> Oscillators:
        """Frequencies drawn uniformly from each (low, high) band, phases uniformly, from the seed."""
        rng = np.random.default_rng(seed_sequence(seed, _PHASE_STREAM, tag))
        f = tuple(float(rng.uniform(lo, hi)) for lo, hi in freqs)
        ph = tuple(float(rng.uniform(0.0, 2.0 * math.pi)) for _ in freqs)
        return cls(f, tuple(amps), ph)

    def __call__(self, t: F64) -> F64:
        out = np.zeros_like(t)
        for f, a, ph in zip(self.freqs, self.amps, self.phases, strict=True):
            out += a * np.sin(2.0 * math.pi * f * t + ph)
        return out


def fibrillatory_oscillators(seed: int) -> Oscillators:
    """f-waves of AF: 4-9 Hz, irregular in shape, about unit peak amplitude."""
    return Oscillators.seeded(seed, 1, [(4.5, 5.5), (5.8, 6.8), (7.0, 8.5), (0.15, 0.35)], [0.5, 0.35, 0.2, 0.0])


def fibrillatory_mv(osc: Oscillators, t: F64, amplitude_mv: float) -> F64:
    """f-waves of ``amplitude_mv`` with a slow amplitude modulation (coarse and fine stretches)."""
    envelope = 1.0 + 0.35 * np.sin(2.0 * math.pi * osc.freqs[-1] * t + osc.phases[-1])
    return amplitude_mv * envelope * osc(t)


def fibrillation_mv(t: F64, seed: int, event: int, start_s: float, end_s: float, amplitude_mv: float,
                    frequency_hz: float) -> F64:
    """Ventricular fibrillation within [start_s, end_s): no complexes and no baseline, only an oscillation that
    wanders around ``frequency_hz`` (two close components beat against each other, a slower third adds shape)
    and waxes and wanes over a few seconds; ``amplitude_mv`` is its typical peak."""
    inside = (t >= start_s) & (t < end_s)
    if not inside.any():
        return np.zeros_like(t)
    f = frequency_hz
    bands = [(0.94 * f, 0.98 * f), (1.02 * f, 1.08 * f), (0.6 * f, 0.7 * f)]
    wave = Oscillators.seeded(seed, _VF_STREAM + event, bands, [0.6, 0.4, 0.2])
    envelope = Oscillators.seeded(seed, _VF_STREAM + 0x80 + event, [(0.15, 0.3)], [0.3])
    return np.where(inside, amplitude_mv * wave(t) * (1.0 + envelope(t)), 0.0)


def wander_oscillators(seed: int, respiration_hz: float) -> Oscillators:
    """Baseline wander: the breath plus a slower drift (electrode-skin and posture)."""
    return Oscillators.seeded(seed, 2, [(respiration_hz, respiration_hz), (0.04, 0.09)], [1.0, 0.6])


def block_noise(seed: int, block: int, size: int) -> F64:
    """Unit Gaussian noise for sample block ``block``: the same whoever asks and however the block is sliced."""
    return np.random.default_rng(seed_sequence(seed, _NOISE_STREAM, block)).standard_normal(size)


def motion_mv(t: F64, seed: int, event: int, start_s: float, end_s: float,
              amplitude_mv: float, spikes_per_s: float, spike_mv: float) -> F64:
    """Motion artefact within [start_s, end_s): slow large swings (0.2-2 Hz) plus sharp decaying spikes."""
    out = np.zeros_like(t)
    inside = (t >= start_s) & (t < end_s)
    if not inside.any():
        return out
    swings = Oscillators.seeded(seed, _MOTION_STREAM + event, [(0.2, 0.5), (0.7, 1.2), (1.4, 2.0)], [0.6, 0.3, 0.2])
    out += np.where(inside, amplitude_mv * swings(t), 0.0)
    if spikes_per_s <= 0 or spike_mv <= 0:
        return out
    tau = 0.04
    first = max(0, math.floor(max(float(t[0]), start_s)) - 1)
    last = math.floor(min(float(t[-1]), end_s))
    for second in range(first, last + 1):  # spikes are drawn per whole second: slicing never changes them
        rng = np.random.default_rng(seed_sequence(seed, _SPIKE_STREAM, event, second))
        n = int(rng.poisson(spikes_per_s))
        times = second + rng.random(n)
        amps = spike_mv * rng.uniform(0.5, 1.0, n) * rng.choice((-1.0, 1.0), n)
        for ts, a in zip(times, amps, strict=True):
            if not start_s <= ts < end_s:
                continue
            lo, hi = np.searchsorted(t, (ts, ts + 12 * tau))
            out[lo:hi] += a * np.exp(-(t[lo:hi] - ts) / tau)
    return out


# ---- photoplethysmogram -------------------------------------------------------------------------

PULSE_TRANSIT_S = 0.22  # R peak to the pulse's upstroke at the arm (pre-ejection period plus arterial transit)
_PPG_MOTION_STREAM = 0x9970
_PPG_NOISE_STREAM = 0x9971
PPG_DC_COUNTS = (250_000.0, 230_000.0, 270_000.0)  # steady light of the three optical channels
PPG_AC_COUNTS = 2_500.0  # a full pulse (perfusion index about 1 %)
PPG_AMBIENT_COUNTS = 1_500.0
PPG_NOISE_COUNTS = 12.0


def render_pulses(t: F64, beats: Sequence[Beat], amplitudes: Sequence[float],
                  transit_s: float = PULSE_TRANSIT_S) -> F64:
    """Arterial blood volume at the sensor (1 = a normal pulse) at sorted times ``t``, one pulse per beat.

    Each pulse starts ``transit_s`` after its R peak: a systolic wave and a smaller dicrotic one, both
    narrowing with shorter RR as the ECG's waves do.
    """
    out = np.zeros_like(t)
    for beat, amp in zip(beats, amplitudes, strict=True):
        if amp == 0.0:
            continue
        stretch = math.sqrt(min(max(beat.rr_s if beat.rr_s is not None else 1.0, 0.25), 2.0))
        onset = beat.t_s + transit_s
        for offset, width, rel in ((0.14, 0.065, 1.0), (0.38, 0.09, 0.35)):
            centre, w = onset + offset * stretch, width * stretch
            lo, hi = np.searchsorted(t, (centre - _SUPPORT * w, centre + _SUPPORT * w))
            if hi > lo:
                out[lo:hi] += amp * rel * np.exp(-0.5 * ((t[lo:hi] - centre) / w) ** 2)
    return out


def ppg_motion(t: F64, seed: int, event: int, start_s: float, end_s: float, rate_hz: float,
               amplitude: float, jitter: float) -> F64:
    """Arm movement seen by an optical sensor in [start_s, end_s): quasi-periodic pulse-like swings.

    Bumps about ``rate_hz`` apart (each shifted by up to ``jitter`` of a period and of random size),
    ``amplitude`` times a normal pulse, over a slow sway: what a walking or tapping arm does to the light.
    """
    out = np.zeros_like(t)
    if rate_hz <= 0 or amplitude <= 0 or not ((t >= start_s) & (t < end_s)).any():
        return out
    period = 1.0 / rate_hz
    first = max(0, math.floor((float(t[0]) - start_s) / period) - 2)
    last = math.ceil((min(float(t[-1]), end_s) - start_s) / period) + 2
    for k in range(first, last + 1):  # each bump drawn on its own: slicing never changes it
        rng = np.random.default_rng(seed_sequence(seed, _PPG_MOTION_STREAM, event, k))
        centre = start_s + (k + float(rng.uniform(-jitter, jitter))) * period
        size = amplitude * float(rng.uniform(0.6, 1.0))
        w = 0.18 * period
        lo, hi = np.searchsorted(t, (centre - _SUPPORT * w, centre + _SUPPORT * w))
        if hi > lo:
            out[lo:hi] += size * np.exp(-0.5 * ((t[lo:hi] - centre) / w) ** 2)
    sway = Oscillators.seeded(seed, _PPG_MOTION_STREAM + event, [(0.15, 0.35)], [0.5 * amplitude])
    out += sway(t)
    inside = (t >= start_s) & (t < end_s)
    return np.where(inside, out, 0.0)


def ppg_counts(volume: F64, seed: int, first_index: int, block: int = 256) -> npt.NDArray[np.int32]:
    """Raw optical counts (n, 4: ppg0, ppg1, ppg2, ambient) for a blood-volume wave starting at sample ``first_index``.

    More blood absorbs more light, so the optical channels dip with each pulse; the noise is drawn per
    block of samples so any split of a sample range gives the same counts.
    """
    n = volume.size
    noise = np.empty((n, 4), dtype=np.float64)
    pos = 0
    while pos < n:
        k, off = divmod(first_index + pos, block)
        take = min(block - off, n - pos)
        blk = np.random.default_rng(seed_sequence(seed, _PPG_NOISE_STREAM, k)).standard_normal((block, 4))
        noise[pos:pos + take] = blk[off:off + take]
        pos += take
    out = np.empty((n, 4), dtype=np.float64)
    for ch, (dc, gain) in enumerate(zip(PPG_DC_COUNTS, (1.0, 0.9, 1.1), strict=True)):
        out[:, ch] = dc + PPG_AMBIENT_COUNTS - gain * PPG_AC_COUNTS * volume + PPG_NOISE_COUNTS * noise[:, ch]
    out[:, 3] = PPG_AMBIENT_COUNTS + PPG_NOISE_COUNTS * noise[:, 3]
    return np.clip(np.round(out), INT24_MIN, INT24_MAX).astype(np.int32)
