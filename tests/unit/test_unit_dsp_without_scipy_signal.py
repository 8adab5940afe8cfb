"""The gateway's own filter design, zero-phase filtering, peak finding and resampling against scipy.signal.

The gateway does not import scipy.signal (its package initialiser loads most of scipy, ~80 MB resident);
these are its numpy replacements, held to scipy's results here, where scipy is only the reference.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from scipy import signal  # type: ignore[import-untyped]

from cardiogate.edge.dsp import sosfilt as sf
from cardiogate.edge.dsp.iir_design import ba_to_sos, butter_sos, notch_ba, sos_zi
from cardiogate.edge.dsp.peaks import find_peaks, prominences
from cardiogate.edge.dsp.resample import lowpass_fir, resample_poly

RATES = (50.0, 100.0, 125.0, 130.0, 250.0, 256.0, 360.0, 500.0, 1000.0)


@pytest.mark.parametrize("fs", RATES)
@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_butterworth_sections_match_scipy(fs: float, order: int) -> None:
    for lo, hi in ((0.5, 40.0), (5.0, 15.0), (0.5, 8.0)):
        hi = min(hi, 0.45 * fs)
        ref = signal.butter(order, [lo, hi], btype="bandpass", output="sos", fs=fs)
        np.testing.assert_allclose(butter_sos(order, (lo, hi), "bandpass", fs), ref, rtol=1e-12, atol=1e-15)
    for cut in (5.0, 15.0, 40.0):
        cut = min(cut, 0.45 * fs)
        ref = signal.butter(order, cut, output="sos", fs=fs)
        np.testing.assert_allclose(butter_sos(order, (cut,), "lowpass", fs), ref, rtol=1e-12, atol=1e-15)


def test_the_ecg_filters_are_bit_identical_to_scipy() -> None:
    # the R-peak detector's published F1 was measured with scipy's designs: the common ones are exact
    for fs in (125.0, 130.0, 250.0, 360.0, 500.0):
        for band in ((0.5, 40.0), (5.0, 15.0), (0.5, 8.0), (0.5, 5.0)):  # ECG, QRS slope, pulse, PPG
            ref = signal.butter(2, list(band), btype="bandpass", output="sos", fs=fs)
            assert np.array_equal(butter_sos(2, band, "bandpass", fs), ref), (fs, band)
        assert np.array_equal(butter_sos(2, (5.0,), "lowpass", fs), signal.butter(2, 5.0, output="sos", fs=fs))
        ref = signal.butter(2, [0.5, 40.0], btype="bandpass", output="sos", fs=fs)
        for mains in (50.0, 60.0):
            b, a = signal.iirnotch(mains, 30.0, fs=fs)
            ours_b, ours_a = notch_ba(mains, 30.0, fs)
            assert np.array_equal(ours_b, b) and np.array_equal(ours_a, a)
            np.testing.assert_allclose(ba_to_sos(ours_b, ours_a), signal.tf2sos(b, a), rtol=1e-14)
        assert np.array_equal(sos_zi(ref), signal.sosfilt_zi(ref))


def test_bad_designs_are_refused() -> None:
    with pytest.raises(ValueError):
        butter_sos(2, (0.5, 200.0), "bandpass", 250.0)
    with pytest.raises(ValueError):
        butter_sos(2, (40.0, 5.0), "bandpass", 250.0)
    with pytest.raises(ValueError):
        butter_sos(0, (5.0,), "lowpass", 250.0)
    with pytest.raises(ValueError):
        notch_ba(60.0, 30.0, 100.0)


def test_forward_and_zero_phase_filtering_match_scipy_exactly() -> None:
    rng = np.random.default_rng(7)
    for n in (40, 200, 5000):
        x = rng.normal(size=n).cumsum()
        for sos in (signal.butter(2, [0.5, 8.0], btype="bandpass", output="sos", fs=125),
                    signal.butter(3, 10.0, output="sos", fs=100)):
            if n <= sf.pad_length(sos):
                with pytest.raises(ValueError):
                    sf.sosfiltfilt(sos, x)
                continue
            assert np.array_equal(sf.sosfiltfilt(sos, x), signal.sosfiltfilt(sos, x))
            zi = signal.sosfilt_zi(sos) * x[0]
            ref, ref_zf = signal.sosfilt(sos, x, zi=zi)
            ours, zf = sf.sosfilt(sos, x, zi)
            assert np.array_equal(ours, ref) and np.array_equal(zf, ref_zf)


def test_peaks_match_scipy_on_noise_plateaus_and_sines() -> None:
    rng = np.random.default_rng(0)
    for trial in range(600):
        n = int(rng.integers(0, 300))
        kind = trial % 3
        if kind == 0:
            x = rng.normal(size=n)
        elif kind == 1:
            x = np.round(rng.normal(size=n).cumsum())  # flat tops
        else:
            x = np.sin(np.arange(n) / rng.uniform(2, 20)) + 0.1 * rng.integers(0, 3, n)
        distance = None if trial % 4 == 0 else float(rng.uniform(1, 30))
        prominence = None if trial % 5 == 0 else float(rng.uniform(0, 2))
        ref, _ = signal.find_peaks(x, distance=distance, prominence=prominence)
        assert np.array_equal(find_peaks(x, distance=distance, prominence=prominence), ref), trial
        if ref.size:
            assert np.array_equal(prominences(x, ref), signal.peak_prominences(x, ref)[0])


def test_peak_finding_refuses_bad_input() -> None:
    with pytest.raises(ValueError):
        find_peaks(np.zeros((2, 3)))
    with pytest.raises(ValueError):
        find_peaks(np.zeros(10), distance=0.5)
    assert find_peaks(np.array([1.0, 2.0])).size == 0


@pytest.mark.parametrize("up,down", [(1, 2), (25, 26), (5, 12), (6, 5), (3, 1), (125, 128), (2, 2)])
def test_polyphase_resampling_matches_scipy(up: int, down: int) -> None:
    rng = np.random.default_rng(up * 100 + down)
    for n in (1, 2, 7, 100, 3751):
        x = rng.normal(size=n).cumsum() * 1000.0
        ref = signal.resample_poly(x, up, down)
        ours = resample_poly(x, up, down)
        assert ours.shape == ref.shape
        np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-12 * max(1.0, float(np.abs(x).max())))
    with pytest.raises(ValueError):
        resample_poly(np.zeros(4), 0, 2)


def test_the_cached_resampling_filter_cannot_be_changed_by_a_caller() -> None:
    h = lowpass_fir(1, 2)
    assert lowpass_fir(1, 2) is h  # designed once per ratio
    with pytest.raises(ValueError):
        h[0] = 1.0


def test_the_gateway_never_loads_scipy_signal() -> None:
    # a fresh interpreter: import the gateway, run the ECG analysis, the pulse check and the model's preprocessing
    code = """
import sys
import numpy as np
import cardiogate.edge.gateway
from cardiogate.edge.dsp.analyzer import EcgAnalyzer
from cardiogate.edge.dsp.pulse import pulse_evidence
from cardiogate.edge.dsp import sosfilt
from cardiogate.edge.inference.preprocess import condition
rng = np.random.default_rng(1)
analyzer = EcgAnalyzer(250.0)
for i in range(12):
    analyzer.process(rng.normal(size=250) * 100.0, i * 250)
t = np.arange(2500) / 125.0
wave = np.sin(2 * np.pi * 1.2 * t) ** 8
pulse_evidence(wave[1250:], wave[:1250], 125.0)
condition(rng.normal(size=2600), 130.0, {"sample_rate_hz": 125, "bandpass": {"low_hz": 0.5, "high_hz": 40.0,
          "order": 2, "zero_phase": True}, "normalise": {"percentile": 99.0, "clip": 8.0}})
loaded = sorted(m for m in sys.modules if m.startswith("scipy.signal") and m != "scipy.signal._sosfilt")
print(sosfilt.compiled(), loaded)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "True []", out.stdout + out.stderr
