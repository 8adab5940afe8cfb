"""Signal-quality index (0..1) per window and lead-off detection.

Why: a detector always finds "beats" in noise (its thresholds are relative), so every
heart-rate or rhythm alarm must be gated by an independent judgement of the signal.
Lead-off shows as a flat line (electrode off, amplifier quiet), a railed/saturated signal
(input floating to the ADC limits) or a signal with no QRS complexes at all. Note that a
true asystole also has no QRS: ``reason`` tells the alarm engine which case it saw.

The SQI is the geometric mean of three cheap, well-studied indices (Li, Clifford et al.
2008; Clifford et al. 2012), each mapped to 0..1, so any one of them can veto: beat-template
correlation (QRS complexes of real ECG look alike, noise "beats" do not), kurtosis (ECG is
peaky, broadband noise is Gaussian, kurtosis 3) and the QRS power share (5-15 Hz over
5-40 Hz; muscle noise is broadband). On MIT-BIH/NSTDB: clean ECG windows score ~0.9-1.0,
the NSTDB muscle-artifact and baseline-wander noise records median 0.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

try:  # the compiled template match (_template_kernel.c); optional at build time
    from cardiogate.edge.dsp import _template_kernel
except ImportError:  # pragma: no cover - depends on the build
    _template_kernel = None  # type: ignore[assignment]

FloatArray = NDArray[np.float64]
LeadOffReason = Literal["flat", "saturated", "no_qrs"]


@dataclass(frozen=True, slots=True)
class QualityConfig:
    """Thresholds; amplitudes in mV, converted with the device's units per mV."""

    window_s: float = 5.0
    flat_mv: float = 0.05           # band-passed peak-to-peak below this: nothing is connected
    flat_still_fraction: float = 0.8  # or this share of consecutive raw samples identical (digital flat)
    rail_fraction: float = 0.2      # share of samples pinned at the rails (or at the window extremes)
    rail_tolerance: float = 0.005   # "at the extreme" = within this share of the window range
    min_hr_bpm: float = 20.0        # fewer beats than this rate implies in the window: no QRS
    template_s: float = 0.08        # half-width of the beat template
    align_s: float = 0.03           # a beat may shift this much to match the template
    corr_range: tuple[float, float] = (0.6, 0.9)      # template correlation mapped to 0..1
    kurtosis_range: tuple[float, float] = (3.5, 6.0)  # kurtosis mapped to 0..1 (3 = Gaussian noise)
    qrs_power_range: tuple[float, float] = (0.4, 0.6)  # share of 5-40 Hz power in 5-15 Hz, mapped to 0..1


@dataclass(frozen=True, slots=True)
class QualityReport:
    """Quality of one window: SQI 0 (unusable) .. 1 (clean) and the lead-off verdict."""

    sqi: float
    reason: LeadOffReason | None
    template_corr: float
    kurtosis: float
    qrs_power: float

    @property
    def lead_off(self) -> bool:
        return self.reason is not None


def kurtosis(x: FloatArray) -> float:
    """Pearson kurtosis (3 for Gaussian noise)."""
    c = x - float(x.sum()) / x.size
    c2 = c * c
    v = float(c2.sum()) / x.size
    return 0.0 if v <= 0.0 else float((c2 @ c2) / x.size / (v * v))


def template_correlation(filtered: FloatArray, peaks: NDArray[np.int64], half: int, shift: int = 0) -> float:
    """Mean Pearson correlation of each beat with the window's mean beat (0 with fewer than 2 beats).

    Each beat may slide by up to ``shift`` samples to its best match, so that the detector's
    placement jitter (R vs S wave of a bundle-branch block) does not read as poor quality.
    Runs in the compiled kernel where it is built (once a second per device, and in numpy the
    per-call overhead of its twenty array operations was most of the quality index's cost).
    """
    if _template_kernel is not None:
        return _template_kernel.aligned_correlation(np.ascontiguousarray(filtered, dtype=np.float64),
                                                    np.ascontiguousarray(peaks, dtype=np.int64), half, shift)
    return template_correlation_numpy(filtered, peaks, half, shift)


def template_correlation_numpy(filtered: FloatArray, peaks: NDArray[np.int64], half: int, shift: int = 0) -> float:
    """:func:`template_correlation` in numpy: the reference the kernel is tested against, and its fallback.

    The correlation at every shift comes from one matrix product plus running sums.
    """
    w = half + shift
    p = peaks[(peaks >= w) & (peaks < filtered.size - w)]
    if p.size < 2:
        return 0.0
    n = 2 * half + 1
    region = filtered[p[:, None] + np.arange(-w, w + 1)]  # beats x (n + 2 shift)
    tmpl = _centred(_centred(region[:, shift:shift + n]).sum(axis=0))
    if shift == 0:
        return _mean_corr(_centred(region), tmpl)
    views = np.lib.stride_tricks.sliding_window_view(region, n, axis=1)  # beats x shifts x n, no copy
    num = views @ tmpl  # a centred template makes this the centred dot product
    c1 = np.concatenate([np.zeros((p.size, 1)), np.cumsum(region, axis=1)], axis=1)
    c2 = np.concatenate([np.zeros((p.size, 1)), np.cumsum(region * region, axis=1)], axis=1)
    s1 = c1[:, n:] - c1[:, :-n]
    var = np.maximum(c2[:, n:] - c2[:, :-n] - s1 * s1 / n, 1e-300)
    best = np.argmax(num / np.sqrt(var), axis=1)
    aligned = _centred(views[np.arange(p.size), best])
    return _mean_corr(aligned, _centred(aligned.sum(axis=0)))


def _centred(segs: FloatArray) -> FloatArray:
    out: FloatArray = segs - segs.sum(axis=-1, keepdims=True) * (1.0 / segs.shape[-1])
    return out


def _mean_corr(segs: FloatArray, tmpl: FloatArray) -> float:
    """Mean Pearson correlation of centred rows with a centred template (its scale is irrelevant: sums do)."""
    den = np.sqrt(np.einsum("ij,ij->i", segs, segs) * float(tmpl @ tmpl))
    ok = den > 0
    return float(np.where(ok, segs @ tmpl / np.where(ok, den, 1.0), 0.0).sum()) / int(segs.shape[0])


@functools.lru_cache(maxsize=32)
def _spectral_frame(n: int, sample_rate_hz: float) -> tuple[FloatArray, NDArray[np.bool_], NDArray[np.bool_]]:
    """Window and band masks for an ``n``-sample spectrum: the same few sizes recur every second per device."""
    f = np.fft.rfftfreq(n, 1.0 / sample_rate_hz)
    return np.hanning(n), (f >= 5.0) & (f <= 40.0), (f >= 5.0) & (f <= 15.0)


def qrs_power_share(filtered: FloatArray, sample_rate_hz: float) -> float:
    """Share of the 5-40 Hz power that lies in the QRS band, 5-15 Hz (pSQI)."""
    window, band, qrs = _spectral_frame(filtered.size, float(sample_rate_hz))
    spec = np.abs(np.fft.rfft(filtered * window)) ** 2
    total = float(spec[band].sum())
    return 0.0 if total <= 0.0 else float(spec[qrs].sum()) / total


def _ramp(v: float, bounds: tuple[float, float]) -> float:
    return min(1.0, max(0.0, (v - bounds[0]) / (bounds[1] - bounds[0])))


def lead_off_reason(raw: FloatArray, filtered: FloatArray, n_peaks: int, sample_rate_hz: float,
                    units_per_mv: float, cfg: QualityConfig = QualityConfig(),
                    rails: tuple[float, float] | None = None) -> LeadOffReason | None:
    """Flat line, railing/saturation or absent QRS in this window, in that order of precedence."""
    if raw.size < 2:
        return None
    lo, hi = float(raw.min()), float(raw.max())
    pinned = 0.0
    if rails is not None:
        pinned = np.count_nonzero((raw <= rails[0]) | (raw >= rails[1])) / raw.size
    elif hi > lo:
        tol = cfg.rail_tolerance * (hi - lo)
        pinned = np.count_nonzero((raw <= lo + tol) | (raw >= hi - tol)) / raw.size
    if pinned >= cfg.rail_fraction and (rails is not None or hi > lo):
        return "saturated"
    still = np.count_nonzero(np.diff(raw) == 0) / (raw.size - 1)
    if float(np.ptp(filtered)) < cfg.flat_mv * units_per_mv or still >= cfg.flat_still_fraction:
        return "flat"
    if n_peaks < max(1, int(cfg.min_hr_bpm / 60.0 * raw.size / sample_rate_hz)):
        return "no_qrs"
    return None


def assess(raw: FloatArray, filtered: FloatArray, peaks: NDArray[np.int64], sample_rate_hz: float,
           units_per_mv: float, cfg: QualityConfig = QualityConfig(),
           rails: tuple[float, float] | None = None) -> QualityReport:
    """Quality of one window. ``peaks`` are indices into the window; ``filtered`` is the band-passed ECG."""
    reason = lead_off_reason(raw, filtered, int(peaks.size), sample_rate_hz, units_per_mv, cfg, rails)
    k = kurtosis(filtered)
    corr = template_correlation(filtered, peaks, max(1, round(cfg.template_s * sample_rate_hz)),
                                round(cfg.align_s * sample_rate_hz))
    pw = qrs_power_share(filtered, sample_rate_hz)
    if reason is not None:
        return QualityReport(sqi=0.0, reason=reason, template_corr=corr, kurtosis=k, qrs_power=pw)
    score = _ramp(corr, cfg.corr_range) * _ramp(k, cfg.kurtosis_range) * _ramp(pw, cfg.qrs_power_range)
    return QualityReport(sqi=float(score ** (1.0 / 3.0)), reason=None, template_corr=corr, kurtosis=k, qrs_power=pw)
