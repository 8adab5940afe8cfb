"""Wearable photoplethysmogram (PPG): the pulse wave, its pulses, their rate, presence and perfusion.

Why: an optical sensor on the arm or wrist sees every heartbeat that moves blood as a dip in the
light that comes back. Whether those pulses are still there, and how strong they are, is the
wearable's only evidence of circulation: it is what the VT check weighs against a single-lead ECG
(through :mod:`cardiogate.edge.dsp.pulse`), and what the gateway reports as pulse rate and
perfusion index beside the ECG heart rate.

Raw Polar PMD PPG is three optical channels and one ambient-light channel in counts. More blood
absorbs more light, so the pulse wave is the ambient-corrected optical mean, inverted. For a
one-lead VT check, :func:`run_pulse` asks whether pulses followed the run's own beats, which tells a
pulseless run long before its pulse pause reaches 2 s. Pure functions plus one small streaming
helper (:class:`PpgMonitor`); any sample rate from 25 Hz up.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from cardiogate.edge.dsp.filters import bandpass_sos
from cardiogate.edge.dsp.peaks import find_peaks
from cardiogate.edge.dsp.pulse import PulseConfig
from cardiogate.edge.dsp.sosfilt import sosfiltfilt

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class PpgConfig:
    """Physiological limits for pulse detection (none fitted to a record)."""

    band_hz: tuple[float, float] = (0.5, 5.0)  # pulse fundamental (30-300/min) and its first harmonic
    min_interval_s: float = 0.25               # pulses closer than this (> 240/min) are one pulse
    prominence: float = 0.3                    # a pulse rises at least this share of the window's amplitude
    window_s: float = 8.0                      # presence, rate and perfusion are judged over this much signal
    max_gap_s: float = 3.0                     # a longer pause between pulses: the pulse is not present
    min_ac_ratio: float = 0.25                 # pulse amplitude below this share of the usual one: not present
    min_perfusion: float = 0.05                # perfusion index (%) below this: noise, not a pulse (normal 0.5-5)
    reference_windows: int = 30                # the "usual" amplitude: median of this many earlier windows


@dataclass(frozen=True, slots=True)
class PpgReading:
    """One look at the last ``window_s``: ``present`` None when there is too little signal to say."""

    pulses: int
    rate_bpm: float | None
    perfusion_index: float | None  # pulsatile / steady light, percent
    present: bool | None
    reason: str


def pulse_wave(ppg: NDArray[np.integer], ambient: NDArray[np.integer] | None = None) -> FloatArray:
    """The pulse wave from raw optical channels ((n, k) counts) and the ambient channel: up = more blood."""
    x = np.asarray(ppg, dtype=np.float64)
    light = x.mean(axis=1) if x.ndim == 2 else x
    if ambient is not None:
        light = light - np.asarray(ambient, dtype=np.float64)
    out: FloatArray = -light
    return out


def detect_pulses(wave: FloatArray, fs: float, cfg: PpgConfig = PpgConfig()) -> tuple[IntArray, float]:
    """Pulse peaks (sample indices into ``wave``) and the band-passed wave's amplitude (p95 - p5).

    A window too short to filter (under 2 s) has no pulses.
    """
    if wave.size < 2 * fs:
        return np.zeros(0, dtype=np.int64), 0.0
    sos = bandpass_sos(fs, cfg.band_hz[0], min(cfg.band_hz[1], fs * 0.45))
    ac = sosfiltfilt(sos, wave - float(np.mean(wave)))
    amplitude = float(np.percentile(ac, 95) - np.percentile(ac, 5))
    if amplitude <= 0.0:
        return np.zeros(0, dtype=np.int64), 0.0
    peaks = find_peaks(ac, distance=max(1, round(cfg.min_interval_s * fs)), prominence=cfg.prominence * amplitude)
    return peaks.astype(np.int64), amplitude


def read_pulse(wave: FloatArray, light: FloatArray, fs: float, reference_ac: float | None,
               cfg: PpgConfig = PpgConfig()) -> tuple[PpgReading, float]:
    """Pulses, rate, perfusion and presence in one window; also the window's pulse amplitude (AC).

    ``light``: the steady light level (ambient-corrected counts) for the perfusion index.
    ``reference_ac``: the patient's usual pulse amplitude (None: not known yet, presence then rests
    on pulses and gaps alone).
    """
    if wave.size < cfg.window_s * fs * 0.9:
        return PpgReading(0, None, None, None, "too little signal"), 0.0
    peaks, ac = detect_pulses(wave, fs, cfg)
    dc = float(np.mean(np.abs(light))) if light.size else 0.0
    perfusion = 100.0 * ac / dc if dc > 0 else None
    rate = 60.0 * fs * (peaks.size - 1) / float(peaks[-1] - peaks[0]) if peaks.size >= 2 else None
    edges = np.concatenate([[0], peaks, [wave.size]])
    gap = float(np.max(np.diff(edges))) / fs
    if perfusion is not None and perfusion < cfg.min_perfusion:
        return PpgReading(0, None, perfusion, False, f"no pulsatile signal (perfusion {perfusion:.3f} %)"), ac
    if peaks.size < 2:
        return PpgReading(int(peaks.size), rate, perfusion, False, f"only {peaks.size} pulses"), ac
    if gap > cfg.max_gap_s:
        return PpgReading(int(peaks.size), rate, perfusion, False, f"no pulse for {gap:.1f} s"), ac
    if reference_ac is not None and reference_ac > 0 and ac < cfg.min_ac_ratio * reference_ac:
        return PpgReading(int(peaks.size), rate, perfusion, False,
                          f"pulse amplitude x{ac / reference_ac:.2f} of usual"), ac
    return PpgReading(int(peaks.size), rate, perfusion, True, f"pulses at {rate:.0f}/min"), ac


_PULSE = PulseConfig()
RUN_PULSE_AFTER_S = 0.45  # a beat's pulse peaks at the arm within this of its R wave (transit plus upstroke)
RUN_PULSE_WAIT_S = 0.8    # the run's later beats must have had this long to show their pulses


def run_pulse(window: FloatArray, baseline: FloatArray, window_start: int, run_first: int, fs: float,
              cfg: PulseConfig = _PULSE) -> tuple[bool | None, str]:
    """Did pulses follow a ventricular run's beats? True, False (the pulse stopped with the run) or None (too early).

    Why: a pulse that "continued regularly" over a 16 s window can still have stopped when the run began;
    waiting for a 2 s pause would let a pulseless run look pulsed for its first beats, and a pulse channel
    that does not reach far enough past the run's start cannot say anything about the run. Every beat
    that ejects shows as a pulse peak about ``RUN_PULSE_AFTER_S`` after its R wave, so once the channel
    reaches ``RUN_PULSE_AFTER_S + RUN_PULSE_WAIT_S`` past the run's first beat (index ``run_first``, on
    the clock of ``window_start``, the index of ``window[0]``), a peak after ``run_first +
    RUN_PULSE_AFTER_S`` says the run's beats eject. Peaks count as in the 16 s judgement: a rise of
    ``cfg.prominence`` of the baseline's amplitude.
    """
    after = run_first + round(RUN_PULSE_AFTER_S * fs) - window_start
    if after < 0 or window.size - after < RUN_PULSE_WAIT_S * fs or baseline.size < fs * 4:
        return None, "the pulse does not reach far enough past the run's start yet"
    sos = bandpass_sos(fs, cfg.band_hz[0], min(cfg.band_hz[1], fs * 0.45))
    both = sosfiltfilt(sos, np.concatenate([baseline, window]))
    base, win = both[:baseline.size], both[baseline.size:]
    amp0 = float(np.percentile(base, 95) - np.percentile(base, 5))
    if amp0 <= 0.0:
        return None, "no pulse amplitude before the run"
    peaks = find_peaks(win, distance=max(1, round(cfg.min_interval_s * fs)), prominence=cfg.prominence * amp0)
    late = int(np.count_nonzero(peaks >= after))
    if late:
        return True, f"{late} pulses followed the run's beats"
    return False, f"no pulse since the run began ({(window.size - after) / fs + RUN_PULSE_AFTER_S:.1f} s)"


class PpgMonitor:
    """The last ``window_s`` of one sensor's pulse wave, read on request; learns the usual pulse amplitude.

    Only windows with present pulses teach the usual amplitude, so a weak pulse never becomes the norm.
    """

    def __init__(self, fs: float, cfg: PpgConfig = PpgConfig()) -> None:
        self.fs = fs
        self.cfg = cfg
        self._keep = round(cfg.window_s * fs)
        self._wave = np.zeros(0, dtype=np.float64)
        self._light = np.zeros(0, dtype=np.float64)
        self._ac: deque[float] = deque(maxlen=cfg.reference_windows)

    def reset(self) -> None:
        """A gap in the stream: the window restarts (the usual amplitude is kept: the same patient)."""
        self._wave = np.zeros(0, dtype=np.float64)
        self._light = np.zeros(0, dtype=np.float64)

    def push(self, ppg: NDArray[np.integer], ambient: NDArray[np.integer] | None) -> FloatArray:
        """Add a frame's raw samples; returns their pulse wave (for the VT check)."""
        wave = pulse_wave(ppg, ambient)
        self._wave = np.concatenate([self._wave, wave])[-self._keep:]
        self._light = np.concatenate([self._light, -wave])[-self._keep:]
        return wave

    @property
    def reference_ac(self) -> float | None:
        return float(np.median(np.asarray(self._ac))) if len(self._ac) >= 3 else None

    def read(self) -> PpgReading:
        reading, ac = read_pulse(self._wave, self._light, self.fs, self.reference_ac, self.cfg)
        if reading.present:
            self._ac.append(ac)
        return reading
