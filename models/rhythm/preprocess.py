"""Numpy preprocessing used at training time, driven by the spec in ``cardiogate.models.rhythm.spec``.

The gateway has its own implementation of the same spec (``cardiogate.edge.inference.preprocess``);
``tests/unit/test_unit_rhythm_model.py`` proves the two give identical windows.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import signal  # type: ignore[import-untyped]

Float32Array = NDArray[np.float32]


def to_model_rate(ecg: NDArray[Any], fs: float, spec: dict[str, Any]) -> NDArray[np.float64]:
    """Resample, band-pass and robustly normalise one record (any length) at the model rate."""
    x = np.asarray(ecg, dtype=np.float64).ravel()
    ratio = Fraction(int(spec["sample_rate_hz"]), round(fs)).limit_denominator(1000)
    if ratio != 1:
        x = signal.resample_poly(x, ratio.numerator, ratio.denominator)
    band = spec["bandpass"]
    rate = float(spec["sample_rate_hz"])
    sos = signal.butter(int(band["order"]), [float(band["low_hz"]), min(float(band["high_hz"]), 0.45 * rate)],
                        btype="bandpass", output="sos", fs=rate)
    x = signal.sosfiltfilt(sos, x)
    norm = spec["normalise"]
    x = x - np.median(x)
    scale = float(np.percentile(np.abs(x), float(norm["percentile"])))
    if scale <= 1e-9:
        return np.zeros_like(x)
    clip = float(norm["clip"])
    out: NDArray[np.float64] = np.clip(x / scale, -clip, clip)
    return out


def window_starts(n: int, spec: dict[str, Any]) -> list[int]:
    """Start offsets of the windows that cover a record: hop-spaced, the last one flush with the end."""
    width, hop = int(spec["window_samples"]), int(spec["hop_samples"])
    if n <= width:
        return [0]
    starts = list(range(0, n - width + 1, hop))
    if starts[-1] != n - width:
        starts.append(n - width)
    return starts


def fit_window(x: NDArray[np.float64], start: int, spec: dict[str, Any]) -> Float32Array:
    """One window of exactly ``window_samples``, zero-padded at the end when the record is shorter."""
    width = int(spec["window_samples"])
    out = np.zeros(width, dtype=np.float32)
    part = x[start:start + width]
    out[: part.size] = part
    return out


def windows(ecg: NDArray[Any], fs: float, spec: dict[str, Any]) -> Float32Array:
    """All windows of a record, shaped (n, 1, window_samples), as the model takes them."""
    x = to_model_rate(ecg, fs, spec)
    return np.stack([fit_window(x, s, spec) for s in window_starts(x.size, spec)])[:, None, :]
