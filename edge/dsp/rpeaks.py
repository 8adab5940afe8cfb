"""Streaming R-peak detection with a fixed, bounded look-ahead.

Why this shape: the alarm path needs beats within a fraction of a second, BLE delivers
chunks of arbitrary size, and a Raspberry Pi serves many watches. So a chunk costs one call
into a small compiled kernel (``_rpeaks_kernel.c``, C99, built by ``pip install`` as an
optional extension): the three filter cascades with carried state, |slope|, the prominence
row, the candidate search and the sequential decisions below, on state the kernel owns;
the Python side converts the chunk and allocates the ``filtered`` output (~1 us a chunk).
Where the kernel is not built the same algorithm runs in numpy and Python
(``_process_python``, the reference: the per-sample work vectorised per chunk, only the
few local maxima and candidates in Python; ``compiled=False`` selects it). Both give
bit-identical peaks and ``filtered`` samples: the kernel filters in scipy's ``sosfilt``
order (sample by sample, sections in order, direct form II transposed) without fused
multiply-add, takes first extremes as numpy's argmax/argmin do, rounds half to even as
Python's ``round``, and the unit tests compare the two at many chunkings (checked on
x86_64; on a CPU where scipy itself was built with fused multiply-add the filters could
differ in the last bit, which those tests would show). Single-core throughput on MIT-BIH
in 1-s chunks: about 2.2x NeuroKit2's fastest method (see docs/benchmarks.md).

Pipeline (Pan-Tompkins / Hamilton-Tompkins lineage, re-derived for streaming):

1. ``x``: 0.5-40 Hz band-pass + mains notch (what peaks are placed on);
2. QRS feature ``f``: 5-15 Hz band-pass of ``x`` -> 5-point derivative -> absolute value
   -> 5 Hz low-pass (an IIR stand-in for Hamilton's moving-window integrator; |slope|
   rather than slope squared keeps wide, low-slope PVCs within reach of the threshold);
3. a candidate is a local maximum of ``f`` not exceeded in the next 200 ms nor the previous
   100 ms (short, so T/P ripples become candidates and keep the noise level honest);
   its R peak is placed on the most *prominent* deflection of ``x`` in the 150 ms before the
   feature peak, prominence being ``x[i] - (x[i - w] + x[i + w]) / 2`` with w = 120 ms (a
   narrow QRS deflection stands out from its surroundings; the broad discordant wave after a
   PVC or a tall T wave does not, however large it is in ``x``), then moved onto the raw
   signal's extremum of that polarity within 20 ms (the causal filters delay ``x`` by ~7 ms):
   the R wave itself, not an envelope or the S wave;
4. decisions: threshold = noise + 0.3125 (QRS - noise) from the medians of the last 8 QRS
   and noise peaks; 200 ms refractory period; T-wave rejection (within 360 ms of a beat
   and less than half its slope); search-back: once no beat has come for
   min(1.5 RR, RR + max_delay / 2), the largest pending candidate above half the threshold
   is the missed beat; after 3 s of silence the QRS level is re-learnt from recent peaks.

Chunk-boundary invariance: every decision is a function of the samples up to a fixed
"known" time (candidate sample + 200 ms, or a timer's sample), candidates and timers are
processed in sample order, and filter states are carried exactly, so any chunking (down to
one sample) gives bit-identical peaks.

Look-ahead bound: a peak is reported at most ``lookahead_samples`` after its own sample:
``max(search + refine + 200 ms, max_delay)`` = 0.37 s with the defaults (133 samples at
360 Hz, 49 at 130 Hz). Search-back candidates older than ``max_delay_s`` are dropped
rather than reported late.

On MIT-BIH DS1 (22 records, first channel) this scores F1 99.46% at a 150 ms window and
99.41% at 75 ms (peaks on the R wave); see docs/benchmarks.md.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from cardiogate.edge.dsp.filters import (
    FloatArray,
    StreamingSos,
    bandpass_sos,
    ecg_sos,
    hold_finite,
    initial_state,
    lowpass_sos,
)

try:  # the compiled per-chunk kernel (_rpeaks_kernel.c); optional at build time
    from cardiogate.edge.dsp import _rpeaks_kernel
except ImportError:  # pragma: no cover - depends on the build
    _rpeaks_kernel = None  # type: ignore[assignment]

IntArray = NDArray[np.int64]
_NO_PEAKS: IntArray = np.empty(0, dtype=np.int64)

#: Whether the compiled kernel was built and imports; without it the detector runs in Python (same results).
KERNEL_AVAILABLE: bool = _rpeaks_kernel is not None


@dataclass(frozen=True, slots=True)
class RPeakConfig:
    """Detector parameters; times in seconds so one config serves every sample rate.

    Defaults are the classic Pan-Tompkins/Hamilton values except where a MIT-BIH sweep showed a
    broad plateau (feature smoothing, candidate windows); none is tuned per record.
    """

    mains_hz: float | None = 50.0
    qrs_band_hz: tuple[float, float] = (5.0, 15.0)
    smooth_hz: float = 5.0           # low-pass of |slope|: the QRS "energy" envelope
    peak_halfwidth_s: float = 0.2    # a candidate is the largest feature value up to this far ahead...
    left_s: float = 0.1              # ...and this far back (short, so T/P ripples feed the noise level)
    search_s: float = 0.15           # the R wave is sought this far before the feature peak
    refine_s: float = 0.02           # then moved onto the raw extremum (undoing the filters' ~7 ms delay)
    peak_width_s: float = 0.12       # an R wave stands out from x this far either side of it (<= halfwidth)
    refractory_s: float = 0.2
    t_wave_s: float = 0.36
    t_slope_ratio: float = 0.5
    threshold_ratio: float = 0.3125  # threshold = noise + ratio * (QRS - noise), medians of the last 8
    history: int = 8
    searchback_rr: float = 1.5
    searchback_ratio: float = 0.5
    searchback_min_s: float = 0.36
    max_delay_s: float = 0.35        # a search-back beat is never reported later than this after its sample
    relearn_s: float = 3.0
    default_rr_s: float = 1.0
    warmup_s: float = 0.25           # candidates this close to a (re)start lack settled filters and context


@dataclass(frozen=True, slots=True)
class _Candidate:
    rpos: int      # absolute index of the R peak
    height: float  # QRS feature peak value
    slope: float   # largest |derivative| in the QRS window (T-wave test)
    known: int     # absolute index of the sample at which it became decidable


class _Decider:
    """The sequential decision state: thresholds, last beat, pending search-back candidates, timers.

    Everything is driven by sample indices, never by chunk boundaries: candidates arrive in order
    of ``known``, and timers due before a candidate's ``known`` fire before it is classified.
    """

    def __init__(self, cfg: RPeakConfig, fs: float) -> None:
        def n(seconds: float) -> int:
            return round(seconds * fs)

        self.cfg = cfg
        self.refractory, self.t_wave, self.sb_gap = n(cfg.refractory_s), n(cfg.t_wave_s), n(cfg.searchback_min_s)
        self.max_delay, self.relearn, self.default_rr = n(cfg.max_delay_s), n(cfg.relearn_s), n(cfg.default_rr_s)
        self.qrs: deque[float] = deque(maxlen=cfg.history)
        self.noise: deque[float] = deque(maxlen=cfg.history)
        self.rr: deque[int] = deque(maxlen=cfg.history)
        self.recent: deque[tuple[int, float]] = deque()  # (known, height) of candidates in the last relearn_s
        self.pending: list[_Candidate] = []
        self.last: _Candidate | None = None
        self.timer: int | None = None
        self.searching = False
        self.thr: float | None = None  # cached threshold; None = recompute
        self.out: list[int] = []

    def threshold(self) -> float:
        if not self.qrs:  # nothing learnt yet: half the largest recent peak
            return 0.5 * max(h for _, h in self.recent)
        if self.thr is None:
            q = _median(self.qrs)
            nz = _median(self.noise) if self.noise else 0.0
            self.thr = nz + self.cfg.threshold_ratio * (q - nz)
        return self.thr

    def accept(self, c: _Candidate, at: int) -> None:
        if self.last is not None:
            self.rr.append(c.rpos - self.last.rpos)
        self.qrs.append(c.height)
        self.thr = None
        self.last = c
        self.out.append(c.rpos)
        self.pending = [p for p in self.pending if p.rpos > c.rpos]
        rr = _median(self.rr) if self.rr else self.default_rr
        delay = min(self.cfg.searchback_rr * rr, rr + self.max_delay // 2)
        self.searching = False
        self.timer = max(c.rpos + round(delay), at + 1)

    def run_timers(self, until: int) -> None:
        while self.last is not None and self.timer is not None and self.timer <= until:
            t = self.timer
            if self.searching:  # a long silence: the QRS level was probably learnt on a bigger signal
                self._relearn(t)
                self.timer = t + self.relearn
            else:
                self.searching = True
                self.timer = max(t + 1, self.last.rpos + self.relearn)
            self._searchback(t)

    def _searchback(self, t: int) -> None:
        last = self.last
        assert last is not None
        oldest = t - self.max_delay
        self.pending = [p for p in self.pending if p.rpos >= oldest]
        floor = self.cfg.searchback_ratio * self.threshold()
        ok = [p for p in self.pending if p.height > floor and p.rpos - last.rpos >= self.sb_gap]
        if ok:
            self.accept(max(ok, key=lambda p: p.height), t)

    def _relearn(self, t: int) -> None:
        self._forget(t)
        if self.recent:
            self.qrs.clear()
            self.qrs.append(max(h for _, h in self.recent))
            self.thr = None

    def _forget(self, t: int) -> None:
        while self.recent and self.recent[0][0] <= t - self.relearn:
            self.recent.popleft()

    def observe(self, c: _Candidate) -> None:
        """Remember a candidate's height for the start-up threshold without judging it."""
        self.recent.append((c.known, c.height))
        self._forget(c.known)

    def candidate(self, c: _Candidate) -> None:
        self.run_timers(c.known - 1)
        self.observe(c)
        last = self.last
        if last is not None and c.rpos - last.rpos < self.refractory:
            return
        t_wave = (last is not None and c.rpos - last.rpos < self.t_wave
                  and c.slope < self.cfg.t_slope_ratio * last.slope)
        if not t_wave and c.height > self.threshold():
            self.accept(c, c.known)
            return
        self.noise.append(c.height)
        self.thr = None
        if not t_wave:
            self.pending.append(c)
            if self.searching:
                self._searchback(c.known)


def _median(values: deque[float] | deque[int]) -> float:
    v = sorted(values)
    n = len(v)
    return float(v[n // 2]) if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2.0


def derivative_sos(sample_rate_hz: float) -> FloatArray:
    """The 5-point derivative (1, 2, 0, -2, -1) * fs / 8 as exact zero-only sections: (1 - z^-2)(1 + z^-1)^2."""
    g = sample_rate_hz / 8.0
    return np.array([[g, 0.0, -g, 1.0, 0.0, 0.0], [1.0, 2.0, 1.0, 1.0, 0.0, 0.0]])


class RPeakUpdate(NamedTuple):
    """What one chunk yields: confirmed R peaks (absolute indices, increasing) and the chunk band-passed."""

    peaks: IntArray
    filtered: FloatArray


class RPeakDetector:
    """Streaming R-peak detector for one ECG lead; feed contiguous chunks, get absolute peak indices."""

    def __init__(self, sample_rate_hz: float, config: RPeakConfig | None = None, start_index: int = 0, *,
                 compiled: bool | None = None) -> None:
        """``compiled``: None uses the compiled kernel when it was built, True requires it, False runs in Python."""
        if compiled and _rpeaks_kernel is None:
            raise RuntimeError("the compiled R-peak kernel (cardiogate.edge.dsp._rpeaks_kernel) is not built")
        self.fs = float(sample_rate_hz)
        self.config = config or RPeakConfig()
        c = self.config
        self._x_sos = ecg_sos(self.fs, c.mains_hz)
        self._d_sos = np.vstack([bandpass_sos(self.fs, c.qrs_band_hz[0], c.qrs_band_hz[1]),
                                 derivative_sos(self.fs)])
        self._f_sos = lowpass_sos(self.fs, c.smooth_hz)
        self._half = max(1, round(c.peak_halfwidth_s * self.fs))
        self._left = max(1, min(self._half, round(c.left_s * self.fs)))
        self._search = max(1, round(c.search_s * self.fs))
        self._refine = round(c.refine_s * self.fs)
        self._w = max(1, min(self._half, round(c.peak_width_s * self.fs)))
        self._warmup = round(c.warmup_s * self.fs)
        self._pad = self._half + self._search + self._refine + self._w + 1
        self._kernel: _rpeaks_kernel.Kernel | None = None
        if _rpeaks_kernel is not None and compiled is not False:
            d = _Decider(c, self.fs)
            ints = np.array([self._half, self._left, self._search, self._refine, self._w, self._warmup, self._pad,
                             d.refractory, d.t_wave, d.sb_gap, d.max_delay, d.relearn, d.default_rr, c.history],
                            dtype=np.int64)
            floats = np.array([c.t_slope_ratio, c.threshold_ratio, c.searchback_rr, c.searchback_ratio])
            cascades = [np.ascontiguousarray(s, dtype=np.float64) for s in (self._x_sos, self._d_sos, self._f_sos)]
            zis = [np.ascontiguousarray(initial_state(s, 1.0)) for s in cascades]  # scaled by the first sample
            self._kernel = _rpeaks_kernel.Kernel(cascades[0], zis[0], cascades[1], zis[1], cascades[2], zis[2],
                                                 ints, floats, start_index)
            self._peaks = np.empty(64, dtype=np.int64)
        self.reset(start_index)

    @property
    def lookahead_samples(self) -> int:
        """The most samples that can arrive after a peak's own sample before the peak is reported."""
        return max(self._search + self._refine + self._half, round(self.config.max_delay_s * self.fs))

    @property
    def next_index(self) -> int:
        """Absolute index the next chunk's first sample gets."""
        return self._end

    @property
    def compiled(self) -> bool:
        """Whether this detector runs the compiled kernel (else the pure-Python implementation)."""
        return self._kernel is not None

    def reset(self, start_index: int = 0) -> None:
        """Forget everything (used after a gap); the next sample gets ``start_index``."""
        self._end = start_index
        if self._kernel is not None:
            self._kernel.reset(start_index)
            return
        self._xf = StreamingSos(self._x_sos)
        self._df = StreamingSos(self._d_sos)
        self._ff = StreamingSos(self._f_sos)
        # Rows: raw, x (band-passed), |d| (QRS slope), f (feature), p (R-wave prominence of x). A pad stands
        # for "before the start": its feature is -inf so it never makes a candidate, its prominence 0 so it
        # never holds an R wave. Column c holds absolute index _buf_start + c.
        self._buf = np.zeros((5, 8 * self._pad))
        self._buf[3, :self._pad] = -np.inf
        self._used = self._pad
        self._buf_start = start_index - self._pad
        self._start = start_index
        self._end = start_index
        self._next = start_index  # first sample not yet tested as a candidate
        self._next_p = start_index  # first sample whose prominence is not yet known
        self._last_finite = 0.0
        self._state = _Decider(self.config, self.fs)

    def process(self, chunk: NDArray[np.floating] | NDArray[np.integer]) -> RPeakUpdate:
        """Feed the next contiguous chunk; get the newly confirmed peaks and the chunk band-passed."""
        kernel = self._kernel
        if kernel is None:
            return self._process_python(chunk)
        raw = np.ascontiguousarray(chunk, dtype=np.float64)
        n = raw.size
        if n == 0:
            return RPeakUpdate(_NO_PEAKS.copy(), raw.ravel())
        filtered: FloatArray = np.empty(n)
        k = kernel.process(raw, filtered, self._peaks)
        self._end += n
        if k == 0:
            return RPeakUpdate(_NO_PEAKS.copy(), filtered)
        if k > self._peaks.size:
            self._peaks = np.empty(2 * k, dtype=np.int64)
            kernel.take_peaks(self._peaks)
        return RPeakUpdate(self._peaks[:k].copy(), filtered)

    def _process_python(self, chunk: NDArray[np.floating] | NDArray[np.integer]) -> RPeakUpdate:
        """The reference implementation of :meth:`process` in numpy and Python (the kernel's fallback)."""
        raw = np.asarray(chunk, dtype=np.float64).ravel()
        n = raw.size
        if n == 0:
            return RPeakUpdate(_NO_PEAKS.copy(), raw)
        if not math.isfinite(raw.sum()):  # one cheap reduction; the rare bad chunk gets the careful pass
            raw = hold_finite(raw, self._last_finite)
        self._last_finite = float(raw[-1])
        self._make_room(n)
        u, v = self._used, self._used + n
        buf = self._buf
        # Each stage filters its own buffer row in place: no temporaries, one C call per filter.
        buf[0, u:v] = raw
        buf[1, u:v] = raw
        self._xf.process_inplace(buf[1:2, u:v])
        buf[2, u:v] = buf[1, u:v]
        d = buf[2:3, u:v]
        self._df.process_inplace(d)
        np.abs(d, out=d)
        buf[3, u:v] = d[0]
        self._ff.process_inplace(buf[3:4, u:v])
        self._used = v
        self._end += n
        self._prominence()
        self._find_candidates()
        self._state.run_timers(self._end - 1)
        out = self._state.out
        peaks = np.array(out, dtype=np.int64) if out else _NO_PEAKS.copy()
        out.clear()
        return RPeakUpdate(peaks, buf[1, u:v].copy())

    def _make_room(self, n: int) -> None:
        """Keep only what undecided samples can still look back at; grow for an unusually big chunk."""
        if self._used + n <= self._buf.shape[1]:
            return
        keep_from = max(min(self._next, self._next_p) - self._pad, self._buf_start)
        cut = keep_from - self._buf_start
        kept = self._used - cut
        cap = max(self._buf.shape[1], 2 * (kept + n))
        new = np.empty((5, cap))
        new[:, :kept] = self._buf[:, cut:self._used]
        self._buf, self._used, self._buf_start = new, kept, keep_from

    def _prominence(self) -> None:
        """R-wave prominence p = x - (x[-w] + x[+w]) / 2 for every sample with w samples after it.

        A QRS deflection stands out from the signal ``peak_width_s`` either side of it; a slow ST/T wave
        or the broad discordant wave after a PVC does not, however large it is in the band-passed signal.
        """
        w, b0 = self._w, self._buf_start
        lo, hi = self._next_p, self._end - w
        if hi <= lo:
            return
        self._next_p = hi
        x = self._buf[1]
        a, b = lo - b0, hi - b0
        p = self._buf[4, a:b]
        np.add(x[a - w:b - w], x[a + w:b + w], out=p)
        p *= -0.5
        p += x[a:b]
        first = self._start - b0
        if a - w < first:  # samples whose left reference lies before the (re)start have no prominence
            p[:min(b, first + w) - a] = 0.0

    def _find_candidates(self) -> None:
        h = self._half
        lo, hi = self._next, self._end - h  # testable: [lo, hi), each needs h samples after it
        if hi <= lo:
            return
        self._next = hi
        b0 = self._buf_start
        f = self._buf[3]
        seg = f[lo - b0 - 1:hi - b0 + 1]
        mid = seg[1:-1]
        js = np.flatnonzero((mid > seg[:-2]) & (mid >= seg[2:]))  # local maxima, few: f is smooth
        if js.size == 0:
            return
        left, search = self._left, self._search
        raw, slope, prom = self._buf[0], self._buf[2], self._buf[4]
        first = self._start - b0
        settled = first + self._warmup
        state = self._state
        for j in (js + (lo - b0)).tolist():
            # A candidate: larger than the left_s before it, not exceeded in the peak_halfwidth_s after it.
            if f[j] <= 0.0 or f[j - left:j + h + 1].argmax() != left:
                continue
            # Its R wave: the most prominent deflection in the search_s before the feature peak, then the raw
            # extremum of that polarity just before it (the causal filters delay x by a few ms).
            s0 = max(j - search, first)
            pw = prom[s0:j + 1]
            i_max, i_min = int(pw.argmax()), int(pw.argmin())
            positive = pw[i_max] >= -pw[i_min]
            rx = s0 + (i_max if positive else i_min)
            r0 = max(rx - self._refine, first)
            rw = raw[r0:rx + 1]
            r = r0 + int(rw.argmax() if positive else rw.argmin())
            cand = _Candidate(rpos=b0 + r, height=float(f[j]), slope=float(slope[s0:j + 1].max()), known=b0 + j + h)
            if r < settled:  # too early to trust as a beat, but it tells the start-up threshold the scale
                state.observe(cand)
            else:
                state.candidate(cand)


def detect_rpeaks(samples: NDArray[np.floating] | NDArray[np.integer], sample_rate_hz: float,
                  config: RPeakConfig | None = None, chunk: int | None = None, *,
                  compiled: bool | None = None) -> IntArray:
    """Run the streaming detector over a whole record (``chunk`` samples at a time; default 1 s)."""
    det = RPeakDetector(sample_rate_hz, config, compiled=compiled)
    n = chunk or max(1, round(sample_rate_hz))
    x = np.asarray(samples)
    parts = [det.process(x[i:i + n]).peaks for i in range(0, x.size, n)]
    return np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)
