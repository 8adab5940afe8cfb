"""Heart rate and time-domain HRV (SDNN, RMSSD, pNN50) over time-based sliding windows.

Windows are defined in seconds of device time (sample index / rate), not in beats, so a
window means the same thing at 40 and at 180 bpm and empties when beats stop (asystole
or lead-off gives "no heart rate", never a stale one).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]

MIN_RR_MS = 250.0    # 240 bpm: shorter intervals are double detections or noise
MAX_RR_MS = 3000.0   # 20 bpm: longer ones span a missed beat, a gap or a pause


@dataclass(frozen=True, slots=True)
class HrvMetrics:
    """Time-domain summary of the normal-to-normal intervals in one window."""

    n_intervals: int
    mean_hr_bpm: float
    sdnn_ms: float
    rmssd_ms: float
    pnn50_pct: float


def time_domain(rr_ms: ArrayLike) -> HrvMetrics | None:
    """SDNN (sample SD, ddof=1), RMSSD and pNN50 of consecutive intervals; None with fewer than 3."""
    rr = np.asarray(rr_ms, dtype=np.float64)
    if rr.size < 3:
        return None
    diff = np.diff(rr)
    return HrvMetrics(n_intervals=int(rr.size), mean_hr_bpm=float(60_000.0 / rr.mean()),
                      sdnn_ms=float(rr.std(ddof=1)), rmssd_ms=float(np.sqrt(np.mean(diff * diff))),
                      pnn50_pct=float(100.0 * np.count_nonzero(np.abs(diff) > 50.0) / diff.size))


def plausible(rr_ms: FloatArray, ectopic_ratio: float = 0.2) -> FloatArray:
    """Keep physiologically plausible intervals that are within ``ectopic_ratio`` of the window median.

    HRV is defined on normal-to-normal intervals: one missed or extra beat would otherwise
    dominate SDNN and RMSSD.
    """
    rr = rr_ms[(rr_ms >= MIN_RR_MS) & (rr_ms <= MAX_RR_MS)]
    if rr.size == 0:
        return rr
    med = _median(rr)
    return rr[np.abs(rr - med) <= ectopic_ratio * med]


def _median(v: FloatArray) -> float:
    """Median of a short array (np.median's overhead dominates below ~100 values)."""
    return _median_of(v.tolist())


def _median_of(values: list[float]) -> float:
    s = sorted(values)
    n = len(s)
    return float(s[n // 2]) if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2.0


class RrWindow:
    """The beats of one continuous segment, queried over trailing time windows.

    Intervals are only formed between consecutive detected beats of the same segment; after a
    gap the owner calls :meth:`reset`, so no interval ever spans missing data.
    """

    def __init__(self, sample_rate_hz: float, horizon_s: float = 300.0) -> None:
        self.fs = float(sample_rate_hz)
        self._horizon = round(horizon_s * self.fs)
        self._beats: deque[int] = deque()

    def reset(self) -> None:
        self._beats.clear()

    def add(self, peaks: ArrayLike) -> None:
        """Append new beat sample indices (increasing)."""
        for p in np.asarray(peaks, dtype=np.int64).tolist():
            self._beats.append(p)
        if self._beats:
            oldest = self._beats[-1] - self._horizon
            while self._beats and self._beats[0] < oldest:
                self._beats.popleft()

    def rr_ms(self, now: int, window_s: float) -> FloatArray:
        """Intervals whose closing beat lies in (now - window_s, now], in ms."""
        if len(self._beats) < 2:
            return np.empty(0)
        beats = np.fromiter(self._beats, dtype=np.int64, count=len(self._beats))
        rr = np.diff(beats) * (1000.0 / self.fs)
        ends = beats[1:]
        keep = (ends > now - window_s * self.fs) & (ends <= now)
        return rr[keep]

    def heart_rate(self, now: int, window_s: float = 10.0) -> float | None:
        """Current heart rate, 60 / median RR over the window (robust to one missed or extra beat).

        It runs for every chunk with a beat of every patient, over a dozen intervals: walking back from the
        newest beat in plain Python costs a fraction of building the whole horizon's arrays (:meth:`rr_ms`).
        The arithmetic is the same, so the rate is too (a test holds them equal).
        """
        lo = now - window_s * self.fs
        scale = 1000.0 / self.fs
        rr: list[float] = []
        newer = None
        for beat in reversed(self._beats):
            if newer is not None:
                if newer <= lo:
                    break
                if newer <= now:
                    interval = (newer - beat) * scale
                    if MIN_RR_MS <= interval <= MAX_RR_MS:
                        rr.append(interval)
            newer = beat
        return None if not rr else 60_000.0 / _median_of(rr)

    def heart_rate_numpy(self, now: int, window_s: float = 10.0) -> float | None:
        """:meth:`heart_rate` from :meth:`rr_ms`: the reference it is tested against."""
        rr = self.rr_ms(now, window_s)
        rr = rr[(rr >= MIN_RR_MS) & (rr <= MAX_RR_MS)]
        return None if rr.size == 0 else 60_000.0 / _median(rr)

    def hrv(self, now: int, window_s: float = 60.0) -> HrvMetrics | None:
        """Time-domain HRV of the plausible normal-to-normal intervals in the window."""
        return time_domain(plausible(self.rr_ms(now, window_s)))


def sliding_hrv(peaks: ArrayLike, sample_rate_hz: float, window_s: float = 60.0,
                step_s: float = 10.0) -> list[tuple[float, HrvMetrics | None]]:
    """Offline helper: HRV for windows ending every ``step_s`` seconds (end time in s, metrics)."""
    p = np.asarray(peaks, dtype=np.int64)
    if p.size == 0:
        return []
    win = RrWindow(sample_rate_hz, horizon_s=window_s + step_s)
    out: list[tuple[float, HrvMetrics | None]] = []
    step = round(step_s * sample_rate_hz)
    end = step
    i = 0
    while end <= p[-1] + step:
        j = int(np.searchsorted(p, end, side="right"))
        win.add(p[i:j])
        i = j
        out.append((end / sample_rate_hz, win.hrv(end, window_s)))
        end += step
    return out
