"""Peaks of a sampled signal by minimum distance and prominence (pulse detection on PPG and pressure).

The same definitions as scipy.signal.find_peaks with ``distance`` and ``prominence`` (a unit test
compares them), in numpy, because the gateway does not load scipy.signal (see
:mod:`cardiogate.edge.dsp.iir_design`):

- a peak is a sample, or the middle of a flat run, higher than its neighbours on both sides
  (never the first or last sample);
- ``distance``: peaks closer than this are thinned, the higher one kept first;
- prominence: how far a peak rises above the higher of the two lowest points between it and the
  nearest higher sample on either side (or the signal's end); peaks below ``prominence`` are dropped.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


def local_maxima(x: FloatArray) -> IntArray:
    """Indices of local maxima; a flat top counts once, at its middle (rounded down)."""
    if x.size < 3:
        return np.empty(0, dtype=np.int64)
    starts = np.concatenate(([0], np.flatnonzero(np.diff(x) != 0) + 1))  # first sample of each flat run
    ends = np.concatenate((starts[1:] - 1, [x.size - 1]))
    values = x[starts]
    inner = np.arange(1, starts.size - 1)
    top = inner[(values[inner] > values[inner - 1]) & (values[inner] > values[inner + 1])]
    out: IntArray = ((starts[top] + ends[top]) // 2).astype(np.int64)
    return out


def thin_by_distance(peaks: IntArray, heights: FloatArray, distance: float) -> IntArray:
    """Keep peaks at least ``distance`` samples apart, taking them from the highest down."""
    gap = math.ceil(distance)
    keep = np.ones(peaks.size, dtype=bool)
    for j in np.argsort(heights)[::-1].tolist():
        if not keep[j]:
            continue
        k = j - 1
        while k >= 0 and peaks[j] - peaks[k] < gap:
            keep[k] = False
            k -= 1
        k = j + 1
        while k < peaks.size and peaks[k] - peaks[j] < gap:
            keep[k] = False
            k += 1
    out: IntArray = peaks[keep]
    return out


def prominences(x: FloatArray, peaks: IntArray) -> FloatArray:
    """Each peak's height above the higher of its two bases (lowest points before a higher sample)."""
    out = np.empty(peaks.size)
    for n, p in enumerate(peaks.tolist()):
        v = x[p]
        higher_left = np.flatnonzero(x[:p] > v)
        lo = int(higher_left[-1]) + 1 if higher_left.size else 0
        higher_right = np.flatnonzero(x[p + 1:] > v)
        hi = p + 1 + int(higher_right[0]) if higher_right.size else x.size
        out[n] = v - max(float(x[lo:p + 1].min()), float(x[p:hi].min()))
    return out


def find_peaks(x: FloatArray, distance: float | None = None, prominence: float | None = None) -> IntArray:
    """Peak indices, thinned by ``distance`` (samples) and then kept only if at least ``prominence``."""
    sig = np.asarray(x, dtype=np.float64)
    if sig.ndim != 1:
        raise ValueError("find_peaks takes a 1-D signal")
    if distance is not None and distance < 1:
        raise ValueError("distance must be at least 1 sample")
    peaks = local_maxima(sig)
    if distance is not None and peaks.size > 1:
        peaks = thin_by_distance(peaks, sig[peaks], distance)
    if prominence is not None and peaks.size:
        peaks = peaks[prominences(sig, peaks) >= prominence]
    return peaks
