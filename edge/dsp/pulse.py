"""Pulsatile waveforms (plethysmogram, arterial pressure): are the pulses still coming, regularly, as before?

Why: a ventricular tachycardia that matters haemodynamically shows on the pulse: beats drop out,
the amplitude collapses, or the pulse rate jumps to the ventricular rate. Most false VT alarms come
from ECG artefact while the pulse carries on undisturbed. So a pulse that continues regularly with
its usual amplitude is evidence against a VT that only a noisy ECG shows. The verdict is one-sided
by design: regular pulses can make a VT *doubtful*; anything else (no pulse channel, a flat or
clipped one, irregular or vanishing pulses) says nothing and never argues for rejection.

Regular pulses are weighed against the ECG run's own beats too (:func:`follows_run`): pulses locked one
to one to the run's beats, at a rate other than in the minute before, say the run's beats are real beats
that eject (a VT with its pulses preserved), so they corroborate the run instead of refuting it. The VT
check weighs this where two ECG leads disagree (:class:`cardiogate.edge.dsp.vt_watch.VtWatch`).

Pure functions on a window of samples (any units: only ratios within the signal are used).
"""

from __future__ import annotations

from collections.abc import Sequence
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
    # pulses locked to a run's beats (see follows_run): every beat's pulse at the same delay within this (pulse
    # transit varies by tens of ms), and a baseline pulse interval further than this share off the run's: another rhythm
    lock_tolerance_s: float = 0.1
    rate_tolerance: float = 0.15


@dataclass(frozen=True, slots=True)
class PulseEvidence:
    """What the pulse did in the window. ``regular``: pulses continued, evenly, at their usual amplitude."""

    pulses: int
    rate_bpm: float
    max_gap_s: float
    amplitude_ratio: float
    regular: bool
    reason: str
    peaks: tuple[int, ...] = ()  # the window's pulse peaks (sample indices into the window)
    baseline_interval_s: float | None = None  # median pulse interval in the baseline (None: not measured, too few)


BEAT_TO_PULSE_S = 0.45  # a beat's pulse peaks within this of its R wave (transit plus upstroke), arm or finger


def _amplitude(x: FloatArray) -> float:
    return float(np.percentile(x, 95) - np.percentile(x, 5)) if x.size else 0.0


def _flat(x: FloatArray, cfg: PulseConfig) -> bool:
    return x.size < 2 or float(np.count_nonzero(np.diff(x) == 0)) / (x.size - 1) >= cfg.flat_fraction


def pulse_evidence(window: FloatArray, baseline: FloatArray, fs: float,
                   cfg: PulseConfig = PulseConfig(), baseline_rhythm: bool = False) -> PulseEvidence | None:
    """Pulses in ``window`` judged against the same channel's ``baseline`` (the preceding minute).

    None when the channel cannot be judged (too short, flat, clipped, no amplitude before): the caller
    must then treat the pulse as unknown, never as present. ``baseline_rhythm``: for regular pulses, also
    measure the baseline's median pulse interval (for :func:`follows_run`; it costs as much again).
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
    distance = max(1, round(cfg.min_interval_s * fs))
    peaks = find_peaks(win, distance=distance, prominence=cfg.prominence * amp0)
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
    interval0 = None
    if regular and baseline_rhythm:
        before = find_peaks(base, distance=distance, prominence=cfg.prominence * amp0)
        interval0 = float(np.median(np.diff(before))) / fs if before.size >= 3 else None
    return PulseEvidence(int(peaks.size), rate, max_gap, ratio, regular, why, tuple(int(k) for k in peaks), interval0)


def locked_delay(pulse: PulseEvidence, beats: Sequence[int], end: int, fs: float,
                 cfg: PulseConfig = PulseConfig()) -> tuple[float, int] | None:
    """The one delay at which pulses follow a run's beats, and how many beats showed it; None if they do not.

    Each of the run's beats after its first (whose pulse may still be the one of the beat before it) that the
    pulse channel reaches ``BEAT_TO_PULSE_S`` past must be followed by a pulse peak within ``BEAT_TO_PULSE_S``,
    all at the same delay within ``lock_tolerance_s`` (inclusive); at least three such beats. One delay to every
    beat also means a pulse of its own, since the beats are further apart than that. (With a pulse slower than
    the beats the delay is the previous beat's pulse transit less the beat interval: still one delay.) Noise on
    the pulse channel, pulses that kept the sinus rhythm under an artefact run, or pulses at half the run's rate
    keep no single delay. ``beats``: sample indices into the window ``pulse`` was judged on; ``end``: that
    window's length in samples (how far the pulse channel reaches). Cheap: no filtering.
    """
    lag = round(BEAT_TO_PULSE_S * fs)
    seen = np.asarray([b for b in beats[1:] if b + lag <= end], dtype=np.int64)
    if seen.size < 3 or not pulse.peaks:
        return None
    peaks = np.asarray(pulse.peaks, dtype=np.int64)
    after = np.searchsorted(peaks, seen, side="right")  # each beat's first pulse peak after it
    if after[-1] >= peaks.size:
        return None
    delays = (peaks[after] - seen) / fs
    if float(delays.max()) > BEAT_TO_PULSE_S or float(np.ptp(delays)) > cfg.lock_tolerance_s:
        return None
    return float(np.median(delays)), int(seen.size)


def follows_run(pulse: PulseEvidence, beats: Sequence[int], end: int, fs: float,
                cfg: PulseConfig = PulseConfig()) -> str | None:
    """Did the pulses follow a ventricular run's beats one to one, at a rate other than before? Why, or None.

    Why: regular pulses at the rate they had before mean the heart kept its rhythm under an ECG artefact. Pulses
    locked to the run's own beats (:func:`locked_delay`), when the minute before beat at another rate, mean the
    run's beats are real beats that eject: a VT with its pulses preserved (or another wide-complex tachycardia),
    never evidence against one. So this can only take doubt away (the caller then treats the pulse as changed,
    not as regular). Another rate: the run's median beat interval differs from the baseline's median pulse
    interval (``pulse.baseline_interval_s``, see ``pulse_evidence(baseline_rhythm=True)``; None: no) by more
    than ``rate_tolerance`` of it, since artefact riding on the patient's own beats keeps their rate.
    """
    before = pulse.baseline_interval_s
    lock = locked_delay(pulse, beats, end, fs, cfg)
    if before is None or lock is None:
        return None
    interval = float(np.median(np.diff(np.asarray(beats, dtype=np.float64)))) / fs
    if abs(before - interval) <= cfg.rate_tolerance * interval:
        return None
    return (f"a pulse {lock[0]:.2f} s after each of its last {lock[1]} beats, "
            f"{60.0 / interval:.0f}/min against {60.0 / before:.0f}/min before")
