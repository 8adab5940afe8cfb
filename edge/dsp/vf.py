"""Ventricular flutter and fibrillation from the waveform itself, for the ``vf`` alarm.

The R-peak detector finds beats; VF has none. Coarse flutter reaches the clinician as a ``vt`` run, but fine
or disorganised fibrillation may give the detector nothing to count. This module therefore looks at the
shape of the signal instead, on a sliding window (4 s, judged every second), with three classic, published
measures that all have to agree, plus an amplitude floor:

- **VF filter leakage** (Kuo and Dillman, 1978): a signal that cancels itself when added to a copy shifted by
  half its period is close to a sinusoid. Below 0.625 (their limit) the window "leaks" little: flutter-like.
  The period is the spectrum's dominant one (below), not the original's estimate from the mean absolute value
  over the mean absolute slope: broadband noise inflates the slope, so that estimate comes out too short and
  noisy VF "leaked" (simulated 0.3-mV VF at 12 dB SNR: 0.6-0.76 and no alarm; with the dominant period
  0.26-0.38). The reference records judge as before (docs/alarms.md).
- **Threshold crossing sample count** (TCSC; Arafat, Chowdhury and Hasan, 2011): on 3-s pieces normalised to
  their largest absolute value, the share of samples above 0.2. Sinus rhythm spends most of its time near the
  baseline between narrow QRS complexes; VF never rests. Above 0.45 (their 48 % on 3-s windows, rounded
  down).
- **Spectrum** (after Barro et al., 1989): the share of the 0.5-30 Hz power between 2.5 and 9 Hz (150-540
  per minute, where VF lives; sinus harmonics and artefacts spread wider), and the share within 0.7-1.4 times
  the dominant frequency (one organised oscillation rather than broadband noise).

Each measure alone flags muscle noise or a wide-complex tachycardia now and then; all together, on the
reference data, they judged 109 of the 119 windows lying wholly inside MIT-BIH 207's flutter VF, and raised
no alarm in 2.5 h of noise stress records (docs/alarms.md "Ventricular flutter and fibrillation";
tests/benchmarks/vf_reference.py). These limits come from the papers, not fitted to these records; only the
second-lead limit of :func:`judge` was chosen on data. The alarm engine adds the onset delay (the flag must
hold for several consecutive windows), and :func:`judge` weighs a second lead and a pulse where there are
such (cardiogate.edge.ecg_monitor).

Pure: :func:`vf_features` on one window; :class:`VfWatch` keeps one lead's filter state and window and judges
at fixed sample positions, so the result does not depend on how the stream was chunked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from cardiogate.edge.dsp.filters import StreamingSos, bandpass_sos

FloatArray = NDArray[np.float64]
VfVerdict = Literal["vf", "doubted", "none"]
"""One window: flutter/fibrillation; flutter-like on the primary lead but argued against by other evidence; neither."""


@dataclass(frozen=True, slots=True)
class VfConfig:
    """Window, band and limits. Amplitudes in mV of the band-passed signal."""

    window_s: float = 4.0
    step_s: float = 1.0
    band_hz: tuple[float, float] = (1.0, 30.0)  # analysis band-pass: baseline wander and EMG out
    vf_band_hz: tuple[float, float] = (2.5, 9.0)
    max_leakage: float = 0.625
    min_tcsc: float = 0.45
    min_vf_band_share: float = 0.75
    min_concentration: float = 0.45
    min_amplitude_mv: float = 0.15  # 2.5-97.5 percentile span; below it the trace is asystole's business
    # a second lead with this little activity off its baseline (TCSC, two thirds of the VF limit) is resting between
    # beats, which fibrillating ventricles never do: the first lead's "VF" is then doubted (chosen on CinC 2015)
    veto_tcsc: float = 0.30

    def __post_init__(self) -> None:
        if not (self.window_s >= 3.0 and 0 < self.step_s <= self.window_s):
            raise ValueError("VF window must be >= 3 s (TCSC needs 3-s pieces) and the step within it")
        if not 0 < self.vf_band_hz[0] < self.vf_band_hz[1]:
            raise ValueError("VF band must be an increasing pair of positive frequencies")


@dataclass(frozen=True, slots=True)
class VfFeatures:
    """The measures of one window."""

    leakage: float
    tcsc: float
    dominant_hz: float
    vf_band_share: float
    concentration: float
    amplitude_mv: float

    def is_vf(self, cfg: VfConfig) -> bool:
        """Whether every measure points to flutter or fibrillation."""
        return (self.amplitude_mv >= cfg.min_amplitude_mv and self.leakage < cfg.max_leakage
                and self.tcsc > cfg.min_tcsc and self.vf_band_share > cfg.min_vf_band_share
                and self.concentration > cfg.min_concentration)

    def describe(self) -> str:
        """For the alarm's reason: what the window looked like."""
        return (f"{self.dominant_hz * 60:.0f}/min oscillation, no isoelectric baseline "
                f"(leakage {self.leakage:.2f}, TCSC {self.tcsc:.2f}, {self.vf_band_share:.0%} of power in the VF band)")


def _leakage(x: FloatArray, half_period: int) -> float:
    """How much of the window survives adding it to itself shifted by half a period (0: a pure sinusoid)."""
    if half_period >= x.size:
        return 1.0
    a, b = x[half_period:], x[:-half_period]
    total = float((np.abs(a) + np.abs(b)).sum())
    return float(np.abs(a + b).sum()) / total if total > 0.0 else 1.0


def _tcsc(x: FloatArray, fs: float) -> float:
    piece, step = round(3.0 * fs), round(fs)
    a = np.abs(x)
    shares = []
    for start in range(0, x.size - piece + 1, step):
        w = a[start:start + piece]
        top = float(w.max())
        shares.append(np.count_nonzero(w > 0.2 * top) / piece if top > 0.0 else 0.0)
    return float(sum(shares) / len(shares)) if shares else 0.0


@lru_cache(maxsize=16)
def _spectral_plan(n: int, fs: float, vf_band_hz: tuple[float, float]) -> tuple[FloatArray, FloatArray, slice, slice]:
    """Per window length and rate (a watch judges thousands of windows of one length): the taper, the bin
    frequencies, and the bins of 0.5-30 Hz and of the VF band."""
    freqs: FloatArray = np.fft.rfftfreq(n, 1.0 / fs).astype(np.float64)

    def bins(lo: float, hi: float) -> slice:
        return slice(int(np.searchsorted(freqs, lo, "left")), int(np.searchsorted(freqs, hi, "right")))

    return np.hamming(n), freqs, bins(0.5, 30.0), bins(*vf_band_hz)


def vf_features(x_mv: FloatArray, fs: float, cfg: VfConfig | None = None, screen: bool = False) -> VfFeatures:
    """The measures of one band-passed window (mV) at ``fs``; the window should be ``cfg.window_s`` long.

    ``screen``: when the spectrum alone already rules VF out (too little power in the VF band, as in most
    windows of a normal ECG), the other measures are not computed and read NaN (so :meth:`VfFeatures.is_vf`
    is False, as it would be anyway): the judgement is the same at about half the cost.
    """
    cfg = cfg or VfConfig()
    x = np.asarray(x_mv, dtype=np.float64)
    if x.size < round(3.0 * fs):
        raise ValueError("a VF window needs at least 3 s of signal")
    taper, freqs, band, vf_band = _spectral_plan(x.size, float(fs), cfg.vf_band_hz)
    spectrum = np.abs(np.fft.rfft((x - x.mean()) * taper)) ** 2
    total = float(spectrum[band].sum())
    if total <= 0.0:
        return VfFeatures(1.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    peak = band.start + int(np.argmax(spectrum[band]))
    dominant = float(freqs[peak])
    vf_share = float(spectrum[vf_band].sum()) / total
    if screen and not vf_share > cfg.min_vf_band_share:
        return VfFeatures(math.nan, math.nan, dominant, vf_share, math.nan, math.nan)
    near = slice(int(np.searchsorted(freqs, 0.7 * dominant, "left")),
                 int(np.searchsorted(freqs, 1.4 * dominant, "right")))
    concentration = float(spectrum[near].sum()) / total
    lo_k, hi_k = int(0.025 * (x.size - 1)), int(np.ceil(0.975 * (x.size - 1)))
    ordered = np.partition(x, (lo_k, hi_k))  # order statistics: the span without sorting the window
    half_period = max(1, int(np.floor(fs / (2.0 * dominant) + 0.5)))  # dominant > 0: the band starts at 0.5 Hz
    return VfFeatures(_leakage(x, half_period), _tcsc(x, fs), dominant, vf_share, concentration,
                      float(ordered[hi_k] - ordered[lo_k]))


def judge(primary: VfFeatures, cfg: VfConfig, other_lead: VfFeatures | None = None,
          regular_pulse: str | None = None) -> tuple[VfVerdict, str]:
    """The verdict on one window and why: the primary lead's measures, weighed against a second lead's measures
    over the same time and a pulse that continued regularly (its description), where there are such.

    One-sided like the VT check: other evidence can only make a VF *doubted* (an advisory), never silence it
    without a trace; a second lead too small to judge or no pulse says nothing.
    """
    if not primary.is_vf(cfg):
        return "none", ""
    seen = primary.describe()
    if other_lead is not None and other_lead.amplitude_mv >= cfg.min_amplitude_mv and other_lead.tcsc < cfg.veto_tcsc:
        return "doubted", f"{seen} in one lead, but the other lead rests on its baseline (TCSC {other_lead.tcsc:.2f})"
    if regular_pulse is not None:
        return "doubted", f"{seen}, but the pulse continues ({regular_pulse})"
    return "vf", seen


@dataclass(frozen=True, slots=True)
class VfJudgement:
    """One window's verdict; ``end`` is the absolute sample index just past the window."""

    end: int
    vf: bool
    features: VfFeatures


class VfWatch:
    """One lead, streaming: band-pass with carried state, judged every ``step_s`` on the last ``window_s``.

    Windows end at fixed positions counted from the first sample after a (re)start, and no window ever spans
    a gap: a jump in the sample index restarts the filter and the window.
    """

    def __init__(self, fs: float, units_per_mv: float, cfg: VfConfig | None = None, screen: bool = False) -> None:
        self.fs = float(fs)
        self.cfg = cfg or VfConfig()
        self._screen = screen  # see vf_features: for a lead whose non-VF windows need no other measure
        lo, hi = self.cfg.band_hz
        self._filter = StreamingSos(bandpass_sos(self.fs, lo, hi))
        self._scale = 1.0 / units_per_mv
        self._window = round(self.cfg.window_s * self.fs)
        self._step = max(1, round(self.cfg.step_s * self.fs))
        self._buf = np.zeros(self._window, dtype=np.float64)
        self._start: int | None = None  # index of the first sample since the last restart
        self._end = 0  # index just past the newest sample
        self._next = 0  # end index of the next window to judge

    @property
    def window(self) -> int:
        """Window length in samples."""
        return self._window

    @property
    def step(self) -> int:
        """Samples between judgements."""
        return self._step

    def reset(self) -> None:
        self._filter.reset()
        self._start = None

    def push(self, x: FloatArray, first: int) -> list[VfJudgement]:
        """Add samples starting at absolute index ``first``; the windows they completed, oldest first."""
        if x.size == 0:
            return []
        if self._start is None or first != self._end:
            if self._start is not None and first < self._end:  # overlap: keep only what is new
                x = x[self._end - first:]
                first = self._end
                if x.size == 0:
                    return []
            else:
                self._filter.reset()
                self._start, self._end, self._next = first, first, first + self._window
        y = self._filter.process(x) * self._scale
        out: list[VfJudgement] = []
        pos = 0
        while pos < y.size:  # copy into the ring up to each judging point
            take = min(y.size - pos, self._next - self._end)
            self._append(y[pos:pos + take])
            pos += take
            if self._end == self._next:
                feats = vf_features(self._buf, self.fs, self.cfg, self._screen)
                out.append(VfJudgement(self._end, feats.is_vf(self.cfg), feats))
                self._next += self._step
        return out

    def _append(self, y: FloatArray) -> None:
        n = y.size
        if n >= self._window:
            self._buf[:] = y[-self._window:]
        elif n:
            self._buf[:-n] = self._buf[n:]
            self._buf[-n:] = y
        self._end += n


VF_RHYTHM_WINDOWS = 3
"""VF windows in a row before the lead counts as in a VF/VFL rhythm: the ``vf`` alarm's own onset (judged every
second, the flag held 2 s more; cardiogate.edge.alarm_engine.config), so beats are withheld only where that alarm
has its grounds."""


class VfRhythm:
    """Whether a lead is in ventricular flutter or fibrillation, for what the gateway reports as *beats*.

    In flutter the R-peak detector counts every wave, about 300 a minute; those waves are not beats (MIT-BIH
    annotates them ``!``), and a heart rate counted from them is not a heart rate. Bedside monitors stop counting
    beats in VF, and AAMI EC57 scores beat detection with VF left out for the same reason. The rhythm holds from
    the :data:`VF_RHYTHM_WINDOWS`-th ``vf`` verdict in a row until the first window that is not ``vf`` (a doubted
    window ends it too: other evidence argues for real beats). Pure state on sample indices: a beat at sample
    ``p`` is judged by the newest window that ended at or before ``p``, so the answer does not depend on how the
    stream was chunked, provided every window ending at or before ``p`` has been observed (the monitor pushes the
    chunk's samples to the VF watch before it reports the chunk's beats).

    Withholding a beat here changes no alarm: the alarm engine still gets every detected wave (asystole must not
    read flutter as a pause; a VT run in progress keeps counting), marked as counted in VF.
    """

    __slots__ = ("_changes", "_run", "_windows", "holds")

    def __init__(self, windows: int = VF_RHYTHM_WINDOWS) -> None:
        if windows < 1:
            raise ValueError("a VF rhythm needs at least one window")
        self._windows = windows
        self._run = 0
        self.holds = False
        """The state after the newest window observed."""
        self._changes: list[tuple[int, bool]] = []  # (window end, state from then on), oldest first, a few kept

    def reset(self) -> None:
        """A restart of the signal (gap, clock jump): no window before it says anything about what follows."""
        self._run, self.holds = 0, False
        self._changes.clear()

    def observe(self, end: int, vf: bool) -> None:
        """One window's verdict, windows in order; ``end`` is the sample index just past the window."""
        self._run = self._run + 1 if vf else 0
        state = self._run >= self._windows
        if state != self.holds:
            self.holds = state
            self._changes.append((end, state))
            if len(self._changes) > 8:  # beats are asked about within a second or so of the newest window
                del self._changes[0]

    def holds_at(self, index: int) -> bool:
        """The state judged by the newest window that ended at or before sample ``index``."""
        for end, state in reversed(self._changes):
            if end <= index:
                return state
        return False
