"""Per-device ECG analysis: samples in, beats, heart rate, HRV, quality, lead-off and AF evidence out.

One :class:`EcgAnalyzer` per wearable. It owns the streaming R-peak detector and the
windows built on its beats, and it is the place where sample-index gaps are handled:
BLE drops packets and Polar devices start late and jump, so a chunk whose first index
is not the next expected one *resets* every stage (no interval, filter state or quality
window ever spans missing data) and the update says so. Overlapping (already seen)
samples are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from cardiogate.edge.dsp.af import AfConfig, AfEvidence, af_evidence
from cardiogate.edge.dsp.filters import hold_finite
from cardiogate.edge.dsp.hrv import MAX_RR_MS, MIN_RR_MS, HrvMetrics, RrWindow
from cardiogate.edge.dsp.quality import LeadOffReason, QualityConfig, QualityReport, assess
from cardiogate.edge.dsp.rpeaks import IntArray, RPeakConfig, RPeakDetector


@dataclass(frozen=True, slots=True)
class AnalyzerConfig:
    """Windows in seconds of device time; amplitudes through ``units_per_mv`` (1000 for microvolts)."""

    units_per_mv: float = 1000.0
    mains_hz: float | None = 50.0
    hr_window_s: float = 10.0
    hrv_window_s: float = 60.0
    quality_step_s: float = 1.0
    slow_step_s: float = 5.0    # HRV and AF evidence are minute-scale: refreshed this often
    rails: tuple[float, float] | None = None
    quality: QualityConfig = field(default_factory=QualityConfig)
    af: AfConfig = field(default_factory=AfConfig)
    rpeaks: RPeakConfig | None = None


@dataclass(frozen=True, slots=True)
class EcgUpdate:
    """What one chunk changed. ``peaks`` are absolute sample indices of beats confirmed by this chunk."""

    first_sample_index: int
    n_samples: int
    peaks: IntArray
    heart_rate_bpm: float | None
    hrv: HrvMetrics | None
    sqi: float | None
    lead_off: bool
    lead_off_reason: LeadOffReason | None
    af: AfEvidence | None
    reset: bool
    lookahead_samples: int


class EcgAnalyzer:
    """Streaming analysis for one device at one sample rate."""

    def __init__(self, sample_rate_hz: float, config: AnalyzerConfig | None = None) -> None:
        self.fs = float(sample_rate_hz)
        self.config = config or AnalyzerConfig()
        c = self.config
        rp = c.rpeaks or RPeakConfig(mains_hz=c.mains_hz)
        self._detector = RPeakDetector(self.fs, rp)
        self._beats = RrWindow(self.fs, horizon_s=max(c.hrv_window_s, c.hr_window_s) + 5.0)
        self._qwin = max(2, round(c.quality.window_s * self.fs))
        self._qstep = max(1, round(c.quality_step_s * self.fs))
        self._expected: int | None = None
        self._reset_state(0)

    @property
    def lookahead_samples(self) -> int:
        return self._detector.lookahead_samples

    def _reset_state(self, start: int) -> None:
        self._detector.reset(start)
        self._beats.reset()
        self._raw = np.empty(0)
        self._x = np.empty(0)
        self._buf_start = start
        self._recent_peaks: list[int] = []
        self._last_peak: int | None = None
        self._rr: list[float] = []  # plausible intervals of this segment, newest last, for AF
        self._quality: QualityReport | None = None
        self._next_q = start + self._qwin
        self._hr: float | None = None
        self._slow: tuple[HrvMetrics | None, AfEvidence | None] = (None, None)
        self._new_beats = False
        self._new_window = False
        self._next_slow = start

    def process(self, samples: NDArray[np.floating] | NDArray[np.integer], first_sample_index: int) -> EcgUpdate:
        """Analyse the next chunk; a jump in ``first_sample_index`` resets the analysis first."""
        x_in = np.asarray(samples, dtype=np.float64).ravel()
        reset = False
        if self._expected is None or first_sample_index > self._expected:
            reset = self._expected is not None
            self._reset_state(first_sample_index)
        elif first_sample_index < self._expected:  # overlap: keep only the unseen tail
            x_in = x_in[self._expected - first_sample_index:]
            first_sample_index = self._expected
        self._expected = first_sample_index + x_in.size
        if x_in.size == 0:
            return self._update(first_sample_index, 0, np.empty(0, dtype=np.int64), reset)
        x_in = hold_finite(x_in, float(self._raw[-1]) if self._raw.size else 0.0)
        out = self._detector.process(x_in)
        peaks = out.peaks
        self._add_beats(peaks)
        self._raw = np.concatenate([self._raw, x_in])
        self._x = np.concatenate([self._x, out.filtered])
        self._new_beats |= peaks.size > 0
        self._assess_due(first_sample_index + x_in.size)
        return self._update(first_sample_index, x_in.size, peaks, reset)

    def _add_beats(self, peaks: IntArray) -> None:
        if peaks.size == 0:
            return
        self._beats.add(peaks)
        self._recent_peaks.extend(peaks.tolist())
        prev = self._last_peak
        for p in peaks.tolist():
            if prev is not None:
                rr = (p - prev) * 1000.0 / self.fs
                if MIN_RR_MS <= rr <= MAX_RR_MS:
                    self._rr.append(rr)
            prev = p
        self._last_peak = prev
        del self._rr[:-self.config.af.max_beats]

    def _assess_due(self, end: int) -> None:
        """Assess every quality window whose beats are all confirmed by now.

        A window ending at ``w_end`` is judged once the stream reaches ``w_end`` plus the detector's
        look-ahead, so it always sees exactly the beats inside it, however the stream was chunked.
        """
        lag = self.lookahead_samples
        while self._next_q + lag <= end:
            w_end = self._next_q
            w0 = w_end - self._qwin - self._buf_start
            raw = self._raw[w0:w0 + self._qwin]
            x = self._x[w0:w0 + self._qwin]
            lo = w_end - self._qwin
            pk = np.asarray([p - lo for p in self._recent_peaks if lo <= p < w_end], dtype=np.int64)
            self._quality = assess(raw, x, pk, self.fs, self.config.units_per_mv, self.config.quality,
                                   self.config.rails)
            self._next_q += self._qstep
            self._new_window = True
        keep_from = self._next_q - self._qwin
        cut = keep_from - self._buf_start
        if cut > 0:
            self._raw = self._raw[cut:]
            self._x = self._x[cut:]
            self._buf_start = keep_from
        oldest = keep_from
        if self._recent_peaks and self._recent_peaks[0] < oldest:
            self._recent_peaks = [p for p in self._recent_peaks if p >= oldest]

    def _update(self, first: int, n: int, peaks: IntArray, reset: bool) -> EcgUpdate:
        # Heart rate moves with every beat; HRV and AF (minute-scale statistics) once per quality step.
        # Nothing is recomputed for a chunk that brought neither, so tiny BLE chunks stay cheap.
        q = self._quality
        usable = q is None or not q.lead_off
        now = first + n - 1
        c = self.config
        if self._new_beats or self._new_window:
            self._hr = self._beats.heart_rate(now, c.hr_window_s) if usable else None
        if self._new_window and (now >= self._next_slow or not usable):
            self._next_slow = now + round(c.slow_step_s * self.fs)
            self._slow = (self._beats.hrv(now, c.hrv_window_s), af_evidence(self._rr, c.af)) if usable else (None, None)
        self._new_beats = self._new_window = False
        hr = self._hr
        hrv, af = self._slow
        return EcgUpdate(first_sample_index=first, n_samples=n, peaks=peaks, heart_rate_bpm=hr, hrv=hrv,
                         sqi=None if q is None else q.sqi, lead_off=bool(q and q.lead_off),
                         lead_off_reason=None if q is None else q.reason, af=af, reset=reset,
                         lookahead_samples=self.lookahead_samples)
