"""The gateway's implementation of a model's preprocessing spec (read from its manifest).

Raw ECG at the device rate -> polyphase resampling to the model rate -> zero-phase
Butterworth band-pass -> median/percentile normalisation with clipping -> hop-spaced
windows of fixed width (zero-padded at the end when the signal is shorter). The training
code implements the same spec independently; a unit test proves both give the same windows (to float32
precision: the gateway resamples with numpy, not scipy.signal).
"""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction
from typing import Any

import numpy as np
from numpy.typing import NDArray

from cardiogate.edge.dsp.iir_design import butter_sos
from cardiogate.edge.dsp.resample import resample_poly
from cardiogate.edge.dsp.sosfilt import sosfiltfilt

Float32Array = NDArray[np.float32]
Float64Array = NDArray[np.float64]

REQUIRED_KEYS = ("sample_rate_hz", "bandpass", "normalise", "window_samples", "hop_samples", "min_samples")


def check_spec(spec: Mapping[str, Any]) -> None:
    """Raise ValueError when a manifest's preprocessing spec is incomplete or uses unknown options."""
    missing = [k for k in REQUIRED_KEYS if k not in spec]
    if missing:
        raise ValueError(f"preprocessing spec lacks {', '.join(missing)}")
    if spec.get("resample", "polyphase") != "polyphase" or spec.get("pad", "zero_end") != "zero_end":
        raise ValueError("unsupported resample or pad mode")
    norm = spec["normalise"]
    if norm.get("center") != "median" or norm.get("scale") != "abs_percentile":
        raise ValueError(f"unsupported normalisation {norm}")
    if not spec["bandpass"].get("zero_phase", False):
        raise ValueError("only zero-phase band-pass is supported")


def resample(x: Float64Array, source_hz: float, target_hz: int) -> Float64Array:
    ratio = Fraction(target_hz, round(source_hz)).limit_denominator(1000)
    if ratio == 1:
        return x
    return resample_poly(x, ratio.numerator, ratio.denominator)


def bandpass(x: Float64Array, rate_hz: float, low_hz: float, high_hz: float, order: int) -> Float64Array:
    """Zero-phase Butterworth band-pass; the upper edge stays below Nyquist at low model rates."""
    sos = butter_sos(order, (low_hz, min(high_hz, 0.45 * rate_hz)), "bandpass", rate_hz)
    return sosfiltfilt(sos, x)


def normalise(x: Float64Array, percentile: float, clip: float) -> Float64Array:
    """Centre on the median, scale by a percentile of |x| (robust to a few artefact spikes), clip."""
    centred = x - np.median(x)
    scale = float(np.percentile(np.abs(centred), percentile))
    if scale <= 1e-9:
        return np.zeros_like(centred)
    out: Float64Array = np.clip(centred / scale, -clip, clip)
    return out


def condition(ecg: NDArray[Any], source_hz: float, spec: Mapping[str, Any]) -> Float64Array:
    """A whole signal at the model rate, filtered and normalised."""
    rate = int(spec["sample_rate_hz"])
    band, norm = spec["bandpass"], spec["normalise"]
    x = resample(np.asarray(ecg, dtype=np.float64).ravel(), source_hz, rate)
    x = bandpass(x, float(rate), float(band["low_hz"]), float(band["high_hz"]), int(band["order"]))
    return normalise(x, float(norm["percentile"]), float(norm["clip"]))


def starts(n: int, width: int, hop: int) -> list[int]:
    """Hop-spaced window starts, with a last window flush with the end of the signal."""
    if n <= width:
        return [0]
    out = list(range(0, n - width + 1, hop))
    if out[-1] != n - width:
        out.append(n - width)
    return out


def to_windows(ecg: NDArray[Any], source_hz: float, spec: Mapping[str, Any]) -> Float32Array:
    """(n_windows, 1, window_samples) float32, ready for the model."""
    x = condition(ecg, source_hz, spec)
    width, hop = int(spec["window_samples"]), int(spec["hop_samples"])
    offsets = starts(x.size, width, hop)
    out = np.zeros((len(offsets), 1, width), dtype=np.float32)
    for i, s in enumerate(offsets):
        part = x[s:s + width]
        out[i, 0, : part.size] = part
    return out


def model_samples(n_source: int, source_hz: float, spec: Mapping[str, Any]) -> int:
    """How many model-rate samples ``n_source`` device samples become (for the minimum-length check)."""
    ratio = Fraction(int(spec["sample_rate_hz"]), round(source_hz)).limit_denominator(1000)
    return -(-n_source * ratio.numerator // ratio.denominator)
