"""The compiled beat-template correlations and R-wave width (_template_kernel.c) against their numpy references.

The kernel must give the numpy versions' answers (to rounding) on every input, including the edges:
beats too near the window's ends, fewer than two beats, shifts that leave the signal, flat templates.
"""

from __future__ import annotations

import numpy as np
import pytest

from cardiogate.edge.dsp import beats, quality, vt

kernel = pytest.importorskip("cardiogate.edge.dsp._template_kernel", reason="the C kernel is not built here")


def _ecg_like(rng: np.random.Generator, n: int, rr: int) -> tuple[np.ndarray, np.ndarray]:
    x = 0.05 * rng.normal(size=n) + np.cumsum(0.01 * rng.normal(size=n))
    peaks = np.arange(rr // 2, n - 5, rr, dtype=np.int64) + rng.integers(-3, 4, size=len(range(rr // 2, n - 5, rr)))
    peaks = np.clip(peaks, 0, n - 1)
    for p in peaks:
        lo, hi = max(0, p - 3), min(n, p + 4)
        x[lo:hi] += np.hanning(9)[1:8][: hi - lo] * 1.5
    return x, np.unique(peaks)


def test_the_quality_template_match_equals_numpy_on_random_and_ecg_like_windows() -> None:
    rng = np.random.default_rng(7)
    for trial in range(1500):
        n = int(rng.integers(40, 1300))
        if trial % 2:
            x, peaks = _ecg_like(rng, n, int(rng.integers(30, 200)))
        else:
            x = rng.normal(size=n)
            peaks = np.sort(rng.choice(n, size=int(rng.integers(0, 15)), replace=False)).astype(np.int64)
        half, shift = int(rng.integers(3, 15)), int(rng.integers(0, 6))
        fast = quality.template_correlation(x, peaks, half, shift)
        assert fast == pytest.approx(quality.template_correlation_numpy(x, peaks, half, shift), abs=1e-9)


def test_the_vt_similarity_equals_numpy_including_beats_at_the_edges() -> None:
    rng = np.random.default_rng(11)
    nones = 0
    for _ in range(1500):
        n = int(rng.integers(30, 700))
        x = np.cumsum(rng.normal(size=n))
        half, shift = int(rng.integers(3, 15)), int(rng.integers(0, 8))
        template = rng.normal(size=2 * half + 1)
        peak = int(rng.integers(-5, n + 5))
        fast, ref = vt.similarity(x, peak, template, shift), vt.similarity_numpy(x, peak, template, shift)
        assert (fast is None) == (ref is None)
        if fast is None or ref is None:
            nones += 1
            continue
        assert fast == pytest.approx(ref, abs=1e-9)
    assert nones > 0, "no beat at an edge was tried"


def test_degenerate_inputs_answer_as_numpy_does() -> None:
    x = np.linspace(0.0, 1.0, 200)
    flat = np.zeros(21)
    assert vt.similarity(x, 100, flat, 4) is None and vt.similarity_numpy(x, 100, flat, 4) is None
    assert quality.template_correlation(x, np.array([100], dtype=np.int64), 10, 3) == 0.0  # one beat
    assert quality.template_correlation(x, np.array([2, 198], dtype=np.int64), 10, 3) == 0.0  # both at the edges
    constant = np.ones(300)
    peaks = np.array([50, 150, 250], dtype=np.int64)
    assert quality.template_correlation(constant, peaks, 10, 3) == quality.template_correlation_numpy(
        constant, peaks, 10, 3) == 0.0


def test_wrong_array_types_are_refused_with_a_clear_error() -> None:
    with pytest.raises(TypeError, match="float64"):
        kernel.aligned_correlation(np.zeros(10, dtype=np.float32), np.zeros(2, dtype=np.int64), 2, 1)
    with pytest.raises(TypeError, match="int64"):
        kernel.aligned_correlation(np.zeros(10), np.zeros(2, dtype=np.int32), 2, 1)
    with pytest.raises(ValueError, match="negative"):
        kernel.aligned_correlation(np.zeros(10), np.zeros(2, dtype=np.int64), -1, 1)


def test_the_r_wave_width_equals_numpy_exactly_including_ties_edges_and_nan() -> None:
    """Bit-identical, not close: the width decides whether a beat is ventricular, so a rounding difference
    at the 55-ms limit would change an alarm. Integer-valued signals (as the watches send) tie the median."""
    rng = np.random.default_rng(13)
    nones = widths = 0
    for trial in range(3000):
        n = int(rng.integers(20, 400))
        fs = float(rng.choice([128.0, 130.0, 250.0, 256.0, 360.0, 500.0]))
        if trial % 3 == 0:
            x = np.round(rng.normal(scale=4.0, size=n))  # few distinct values: many ties
        elif trial % 3 == 1:
            x, _ = _ecg_like(rng, n, int(rng.integers(30, 120)))
            x = -x if trial % 2 else x  # negative waves too
        else:
            x = np.cumsum(rng.normal(size=n))
        if trial % 50 == 0:
            x[int(rng.integers(0, n))] = np.nan
        peak = int(rng.integers(-3, n + 3))
        fast, ref = beats.r_width_s(x, peak, fs), beats.r_width_s_numpy(x, peak, fs)
        assert fast == ref, (trial, peak, fs)
        nones += fast is None
        widths += fast is not None
    assert nones > 0 and widths > 1000
    flat = np.full(200, 7.0)
    assert beats.r_width_s(flat, 100, 250.0) is None and beats.r_width_s_numpy(flat, 100, 250.0) is None
    with pytest.raises(TypeError, match="float64"):
        kernel.half_height_width(np.zeros(100, dtype=np.float32), 50, 10)
    with pytest.raises(ValueError, match="negative"):
        kernel.half_height_width(np.zeros(100), 50, -1)


def test_the_sinus_template_median_equals_numpy_exactly() -> None:
    """The VT check's template (the median of up to 30 stored beats) from the kernel is numpy's median to the bit:
    odd and even counts, tied integer values, a NaN in a column; and refuses a read-only or mistyped output and
    rows that do not match it."""
    rng = np.random.default_rng(17)
    for trial in range(3000):
        count, width = int(rng.integers(1, 31)), int(rng.integers(1, 60))
        rows = rng.normal(size=(30, width))
        if trial % 3:
            rows = np.round(rows * (3.0 if trial % 2 else 1000.0))
        if trial % 97 == 0:
            rows[int(rng.integers(0, count)), int(rng.integers(0, width))] = np.nan
        assert np.array_equal(vt.column_median(rows, count), np.median(rows[:count], axis=0), equal_nan=True)
    rows = rng.normal(size=(30, 21))
    frozen = np.empty(21)
    frozen.flags.writeable = False
    with pytest.raises((TypeError, ValueError, BufferError)):
        kernel.column_median_into(rows, 30, frozen)
    with pytest.raises(TypeError, match="float64"):
        kernel.column_median_into(rows, 30, np.empty(21, dtype=np.float32))
    with pytest.raises(ValueError, match="count"):
        kernel.column_median_into(rows, 31, np.empty(21))
    with pytest.raises(ValueError, match="count"):
        kernel.column_median_into(rows, 0, np.empty(21))
    with pytest.raises(ValueError, match="columns"):  # rows of another width would be read as garbage
        kernel.column_median_into(rows, 10, np.empty(20))
    with pytest.raises(ValueError, match="columns"):
        kernel.column_median_into(rows.ravel(), 10, np.empty(21))
