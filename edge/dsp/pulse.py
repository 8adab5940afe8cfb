"""Pulsatile waveforms (plethysmogram, arterial pressure): are the pulses still coming, regularly, as before?

Why: a ventricular tachycardia that matters haemodynamically shows on the pulse: beats drop out,
the amplitude collapses, or the pulse rate jumps to the ventricular rate. Most false VT alarms come
from ECG artefact while the pulse carries on undisturbed. So a pulse that continues regularly with
its usual amplitude is evidence against a VT that only a noisy ECG shows. The verdict is one-sided
by design: regular pulses can make a VT *doubtful*; anything else (no pulse channel, a flat or
clipped one, irregular or vanishing pulses) says nothing and never argues for rejection.

Pure functions on a window of samples (any units: only ratios within the signal are used).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from cardiogate.edge.dsp.filters import bandpass_sos
from cardiogate.edge.dsp.peaks import find_peaks
from cardiogate.edge.dsp.sosfilt import sosfiltfilt

FloatArray = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class PulseConfig:
    """Thresholds for calling a window's pulses 'regular and unchanged' (all physiological, none per record)."""

    band_hz: tuple[float, float] = (0.5, 8.0)  # pulse fundamental and its first harmonics
    min_interval_s: float = 0.33               # pulses closer than this (> 180/min) are one pulse
    prominence: float = 0.35                   # a pulse rises at least this share of the baseline amplitude
    max_gap_s: float = 2.0                     # a longer pause between pulses: they did not simply continue
    min_rate_bpm: float = 40.0                 # fewer pulses than this rate implies: not a continuing pulse
    amplitude_range: tuple[float, float] = (0.6, 1.6)  # window amplitude / baseline amplitude still "as before"
    flat_fraction: float = 0.5                 # this share of identical consecutive samples: flat or clipped


@dataclass(frozen=True, slots=True)
class PulseEvidence:
    """What the pulse did in the window. ``regular``: pulses continued, evenly, at their usual amplitude."""

    pulses: int
    rate_bpm: float
    max_gap_s: float
    amplitude_ratio: float
    regular: bool
    reason: str


def _amplitude(x: FloatArray) -> float:
    return float(np.percentile(x, 95) - np.percentile(x, 5)) if x.size else 0.0


def _flat(x: FloatArray, cfg: PulseConfig) -> bool:
    return x.size < 2 or float(np.count_nonzero(np.diff(x) == 0)) / (x.size - 1) >= cfg.flat_fraction


def pulse_evidence(window: FloatArray, baseline: FloatArray, fs: float,
                   cfg: PulseConfig = PulseConfig()) -> PulseEvidence | None:
    """Pulses in ``window`` judged against the same channel's ``baseline`` (the preceding minute).

    None when the channel cannot be judged (too short, flat, clipped, no amplitude before): the caller
    must then treat the pulse as unknown, never as present.
    """
    if window.size < fs * 4 or baseline.size < fs * 4 or _flat(window, cfg) or _flat(baseline, cfg):
        return None
    sos = bandpass_sos(fs, cfg.band_hz[0], min(cfg.band_hz[1], fs * 0.45))
    both = sosfiltfilt(sos, np.concatenate([baseline, window]))
    base, win = both[:baseline.size], both[baseline.size:]
    amp0 = _amplitude(base)
    if amp0 <= 0.0:
        return None
    ratio = _amplitude(win) / amp0
    peaks = find_peaks(win, distance=max(1, round(cfg.min_interval_s * fs)), prominence=cfg.prominence * amp0)
    edges = np.concatenate([[0], peaks, [win.size]])
    max_gap = float(np.max(np.diff(edges))) / fs
    rate = 60.0 * (peaks.size - 1) * fs / float(peaks[-1] - peaks[0]) if peaks.size >= 2 else 0.0
    lo, hi = cfg.amplitude_range
    if peaks.size < cfg.min_rate_bpm / 60.0 * win.size / fs:
        regular, why = False, f"only {peaks.size} pulses"
    elif max_gap > cfg.max_gap_s:
        regular, why = False, f"pulses paused {max_gap:.1f} s"
    elif not lo <= ratio <= hi:
        regular, why = False, f"pulse amplitude changed x{ratio:.2f}"
    else:
        regular, why = True, f"pulses regular at {rate:.0f}/min, amplitude x{ratio:.2f}"
    return PulseEvidence(int(peaks.size), rate, max_gap, ratio, regular, why)
