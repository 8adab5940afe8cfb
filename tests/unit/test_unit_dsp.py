"""cardiogate.edge.dsp: streaming filters and R peaks independent of chunking, HRV by hand, lead-off, AF, SQI."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray
from scipy import signal  # type: ignore[import-untyped]

from cardiogate.edge.dsp import (
    AnalyzerConfig,
    EcgAnalyzer,
    EcgUpdate,
    RPeakDetector,
    RrWindow,
    StreamingSos,
    af_evidence,
    detect_rpeaks,
    ecg_sos,
    filter_chunk,
    rpeaks,
    time_domain,
)
from cardiogate.edge.dsp.af import sample_entropy, turning_points
from cardiogate.edge.dsp.filters import hold_finite, initial_state
from cardiogate.edge.dsp.quality import assess
from tests.conftest import REPO


def gauss(t: NDArray[np.float64], centre: float, width: float) -> NDArray[np.float64]:
    out: NDArray[np.float64] = np.exp(-0.5 * ((t - centre) / width) ** 2)
    return out


def synthetic_ecg(fs: float, rr_s: list[float], noise_mv: float = 0.01, seed: int = 0,
                  mains_hz: float = 50.0) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """P-QRS-T beats (mV) at the given RR intervals, with baseline wander, mains hum and noise; true R indices."""
    beats = 0.6 + np.concatenate([[0.0], np.cumsum(rr_s)])
    n = int((beats[-1] + 0.8) * fs)
    t = np.arange(n) / fs
    x = 0.15 * np.sin(2 * np.pi * 0.25 * t) + 0.03 * np.sin(2 * np.pi * mains_hz * t)
    for b in beats:
        x += (0.12 * gauss(t, b - 0.18, 0.025) - 0.1 * gauss(t, b - 0.03, 0.01) + 1.0 * gauss(t, b, 0.011)
              - 0.25 * gauss(t, b + 0.03, 0.012) + 0.3 * gauss(t, b + 0.3, 0.05))
    x += np.random.default_rng(seed).normal(0.0, noise_mv, n)
    return x, np.round(beats * fs).astype(np.int64)


def sinus_rr(n: int, mean_s: float = 0.8, seed: int = 1) -> list[float]:
    rng = np.random.default_rng(seed)
    k = np.arange(n)
    rr: list[float] = (mean_s + 0.03 * np.sin(2 * np.pi * k / 5.0) + rng.normal(0.0, 0.004, n)).tolist()
    return rr


def irregular_rr(n: int, seed: int = 2) -> list[float]:
    rr: list[float] = np.random.default_rng(seed).uniform(0.4, 1.1, n).tolist()
    return rr


def random_chunks(n: int, seed: int) -> list[int]:
    """Chunk sizes covering 1-sample, odd and large chunks, summing to n."""
    rng = np.random.default_rng(seed)
    sizes: list[int] = []
    while sum(sizes) < n:
        sizes.append(int(rng.choice([1, 1, 2, 3, 7, 17, 64, 129, 333, 1001])))
    sizes[-1] -= sum(sizes) - n
    return sizes


def test_dsp_imports_only_numpy_scipy_and_itself() -> None:
    """The gateway installs light: no NeuroKit2, wfdb, torch, cloud or models code in cardiogate.edge.dsp."""
    import ast

    allowed = {"numpy", "scipy", "cardiogate.edge.dsp", "__future__", "collections", "dataclasses", "math", "typing",
               "importlib", "pathlib", "functools"}
    for path in (REPO / "edge" / "dsp").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
            for name in names:
                assert name.split(".")[0] in allowed or name.startswith("cardiogate.edge.dsp"), \
                    f"{path.name} imports {name}"


# -- filters -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("fs", "mains"), [(130.0, 50.0), (250.0, 60.0), (360.0, 60.0), (500.0, 50.0)])
def test_streaming_filter_equals_one_shot_filtering(fs: float, mains: float) -> None:
    sos = ecg_sos(fs, mains)
    x = np.random.default_rng(3).normal(1000.0, 80.0, 4000)
    zi = initial_state(sos, float(x[0]))
    expected = signal.sosfilt(sos, x, zi=zi)[0]
    f = StreamingSos(sos)
    got = np.concatenate([f.process(x[i:i + n]) for i, n in zip(np.cumsum([0, *random_chunks(x.size, 4)]),
                                                                 random_chunks(x.size, 4), strict=False)])
    assert np.array_equal(got, expected)
    # the pure step gives the same samples and hands over the same state
    y1, z1 = filter_chunk(sos, x[:1234], zi)
    y2, _ = filter_chunk(sos, x[1234:], z1)
    assert np.array_equal(np.concatenate([y1, y2]), expected)


def test_in_place_filtering_of_buffer_rows_equals_process() -> None:
    sos = ecg_sos(360.0, 50.0)
    x = np.random.default_rng(8).normal(0.0, 1.0, 3000)
    expected = StreamingSos(sos).process(x)
    f = StreamingSos(sos)
    buf = np.zeros((3, x.size + 10))  # a row of a bigger buffer: contiguous along samples, not on its own
    i = 0
    for n in random_chunks(x.size, 9):
        buf[1, i:i + n] = x[i:i + n]
        f.process_inplace(buf[1:2, i:i + n])
        i += n
    assert np.array_equal(buf[1, :x.size], expected)
    assert not buf[0].any() and not buf[2].any() and not buf[1, x.size:].any()  # nothing else written


def test_filter_starts_without_a_transient_from_the_dc_offset() -> None:
    f = StreamingSos(ecg_sos(250.0))
    y = f.process(np.full(500, 2048.0))
    assert np.max(np.abs(y)) < 1e-6


def test_non_finite_samples_are_held_not_propagated() -> None:
    assert hold_finite(np.array([np.nan, 2.0, np.inf, np.nan, 5.0]), 1.0).tolist() == [1.0, 2.0, 2.0, 2.0, 5.0]
    fs = 250.0
    x, truth = synthetic_ecg(fs, sinus_rr(30))
    x[1000:1003] = np.nan
    peaks = detect_rpeaks(x, fs)
    assert peaks.size == truth.size and np.max(np.abs(peaks - truth)) <= 3


def test_notch_is_skipped_when_mains_is_above_nyquist() -> None:
    assert ecg_sos(100.0, 50.0).shape == ecg_sos(100.0, None).shape


# -- R peaks -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fs", [130.0, 250.0, 360.0, 500.0])
def test_peaks_sit_on_the_r_wave_at_any_sample_rate(fs: float) -> None:
    x, truth = synthetic_ecg(fs, sinus_rr(60))
    peaks = detect_rpeaks(x * 1000.0, fs)  # microvolts: the detector has no absolute thresholds
    assert peaks.size == truth.size
    assert np.max(np.abs(peaks - truth)) <= max(1, round(0.01 * fs))  # within 10 ms of the true R


def test_peaks_are_the_same_whatever_the_chunking() -> None:
    fs = 250.0
    rr = sinus_rr(25) + irregular_rr(25) + [0.45, 1.2] * 5  # sinus, AF-like and bigeminy-like stretches
    x, _ = synthetic_ecg(fs, rr, noise_mv=0.05)
    one_shot = detect_rpeaks(x, fs, chunk=x.size)
    assert one_shot.size >= len(rr)
    for seed in (5, 6):
        det = RPeakDetector(fs)
        parts, i = [], 0
        for n in random_chunks(x.size, seed):
            parts.append(det.process(x[i:i + n]).peaks)
            i += n
        assert np.array_equal(np.concatenate(parts), one_shot)


@pytest.mark.parametrize("chunk", [1, 2, 7, 13, 114, 250, 333, 1001])
def test_fixed_chunk_sizes_give_the_same_peaks_and_filtered_signal(chunk: int) -> None:
    """Every fixed size, from one sample (a polling loop) through odd sizes to several seconds."""
    fs = 250.0
    rr = sinus_rr(12) + irregular_rr(12, seed=4) + [0.45, 1.2] * 3
    x, _ = synthetic_ecg(fs, rr, noise_mv=0.05, seed=3)
    x[700] = np.nan  # a corrupt sample is held the same way whichever chunk it falls in
    reference = RPeakDetector(fs).process(x)
    det = RPeakDetector(fs)
    outs = [det.process(x[i:i + chunk]) for i in range(0, x.size, chunk)]
    assert reference.peaks.size >= len(rr)
    assert np.array_equal(np.concatenate([o.peaks for o in outs]), reference.peaks)
    assert np.array_equal(np.concatenate([o.filtered for o in outs]), reference.filtered)
    assert det.next_index == x.size


def test_peak_is_the_r_wave_not_the_broad_wave_after_it() -> None:
    """Ectopic beats: a narrow R followed by a broad, deeper discordant wave; the peak belongs on the R.

    In the band-passed signal the wave is the largest deflection near the QRS, so "largest |x|" would
    land on its slope or trough ~100 ms late; the R wave is the deflection that stands out locally.
    """
    fs = 360.0
    x, truth = synthetic_ecg(fs, [0.9] * 40, mains_hz=60.0)
    t = np.arange(x.size) / fs
    for b in truth[::4] / fs:  # every fourth beat: a wide (FWHM ~190 ms) negative wave after the R
        x -= 1.5 * gauss(t, b + 0.18, 0.08)
    peaks = detect_rpeaks(x, fs)
    assert peaks.size == truth.size
    assert np.max(np.abs(peaks - truth)) <= round(0.01 * fs)


def test_each_peak_is_reported_within_the_lookahead_bound() -> None:
    fs = 130.0
    x, _ = synthetic_ecg(fs, irregular_rr(40, seed=9), noise_mv=0.08)
    det = RPeakDetector(fs)
    worst = 0
    for i in range(x.size):
        for p in det.process(x[i:i + 1]).peaks.tolist():
            worst = max(worst, i - p)
    assert 0 < worst <= det.lookahead_samples < fs  # well under one second
    assert det.lookahead_samples / fs == pytest.approx(0.37, abs=0.02)


def tall_t_waves_and_a_small_beat(fs: float) -> tuple[NDArray[np.float64], NDArray[np.int64], int]:
    """Beats with tall T waves, beat 20 shrunk below the detection threshold: (signal, true R indices, its R)."""
    x, truth = synthetic_ecg(fs, [0.8] * 30)
    t = np.arange(x.size) / fs
    for b in truth / fs:
        x += 0.4 * gauss(t, b + 0.3, 0.05)
    k = int(truth[20])
    x[k - 20:k + 20] *= 0.3  # below the detection threshold, above the search-back one
    return x, truth, k


def test_tall_t_waves_are_rejected_and_a_small_beat_is_found_by_search_back(
        monkeypatch: pytest.MonkeyPatch) -> None:
    fs = 360.0
    x, truth, k = tall_t_waves_and_a_small_beat(fs)
    found_by_search_back: list[int] = []
    original = rpeaks._Decider._searchback

    def spy(self: rpeaks._Decider, t: int) -> None:
        n = len(self.out)
        original(self, t)
        found_by_search_back.extend(self.out[n:])

    monkeypatch.setattr(rpeaks._Decider, "_searchback", spy)
    peaks = detect_rpeaks(x, fs, compiled=False)  # the spy sees the Python decider; the kernel gives the same peaks
    assert np.array_equal(detect_rpeaks(x, fs), peaks)
    assert peaks.size == truth.size
    assert np.max(np.abs(np.delete(peaks, 20) - np.delete(truth, 20))) <= 4
    assert found_by_search_back == [peaks[20]] and abs(peaks[20] - k) <= 0.05 * fs


def run_detector(x: NDArray[np.float64], fs: float, sizes: list[int], compiled: bool,
                 restart_at: int | None = None) -> tuple[NDArray[np.int64], NDArray[np.float64], int]:
    """Feed ``x`` in chunks of ``sizes``; (peaks, filtered, next_index). ``restart_at``: reset there (a gap)."""
    det = RPeakDetector(fs, compiled=compiled)
    assert det.compiled == compiled
    peaks, filtered, i = [], [], 0
    for n in sizes:
        if restart_at is not None and i <= restart_at < i + n:
            n = restart_at - i or n
        if i == restart_at:
            det.reset(i + 1000)  # a new segment, numbered after a gap
        out = det.process(x[i:i + n])
        peaks.append(out.peaks)
        filtered.append(out.filtered)
        i += n
        if i >= x.size:
            break
    return np.concatenate(peaks), np.concatenate(filtered), det.next_index


def chunkings(size: int, fs: float) -> list[list[int]]:
    """One sample, odd sizes, 0.25 / 1 / 5 s, the whole signal, and random mixes."""
    fixed = [1, 7, round(0.25 * fs), round(fs), round(5 * fs), size]
    return [[n] * -(-size // n) for n in fixed] + [random_chunks(size, seed) for seed in (11, 12)]


needs_kernel = pytest.mark.skipif(not rpeaks.KERNEL_AVAILABLE, reason="the compiled R-peak kernel is not built")


def test_the_compiled_kernel_is_built() -> None:
    """``make venv`` compiles it (gcc and the Python headers are part of the development setup)."""
    assert rpeaks.KERNEL_AVAILABLE, "cardiogate.edge.dsp._rpeaks_kernel did not build: see the pip install log"
    assert RPeakDetector(250.0).compiled


@needs_kernel
@pytest.mark.parametrize("fs", [130.0, 250.0, 360.0])
def test_compiled_kernel_matches_python_bit_for_bit(fs: float) -> None:
    """Same peaks and the same filtered samples (exact float equality) for every chunking, with a corrupt
    stretch, a long pause (search-back, relearning), a restart after a gap, and other configurations."""
    rr = sinus_rr(15) + irregular_rr(15, seed=7) + [0.45, 1.2] * 3 + [3.5] + [0.8] * 6  # a pause: relearn
    x, _ = synthetic_ecg(fs, rr, noise_mv=0.05, seed=8)
    x[500:503] = [np.nan, -np.inf, np.nan]
    for sizes in chunkings(x.size, fs):
        py = run_detector(x, fs, sizes, compiled=False)
        c = run_detector(x, fs, sizes, compiled=True)
        assert py[0].size >= len(rr) - 2
        assert np.array_equal(c[0], py[0]) and np.array_equal(c[1], py[1]) and c[2] == py[2] == x.size
    restart = int(12.3 * fs)
    for sizes in chunkings(x.size, fs)[:3]:
        py = run_detector(x, fs, sizes, compiled=False, restart_at=restart)
        c = run_detector(x, fs, sizes, compiled=True, restart_at=restart)
        assert np.array_equal(c[0], py[0]) and np.array_equal(c[1], py[1]) and c[2] == py[2]
    for cfg in (rpeaks.RPeakConfig(mains_hz=None), rpeaks.RPeakConfig(history=3, relearn_s=1.0)):
        assert np.array_equal(detect_rpeaks(x, fs, cfg, chunk=37), detect_rpeaks(x, fs, cfg, chunk=37, compiled=False))


@needs_kernel
def test_compiled_kernel_matches_python_on_t_waves_and_search_back() -> None:
    x, _, _ = tall_t_waves_and_a_small_beat(360.0)
    for sizes in chunkings(x.size, 360.0):
        py = run_detector(x, 360.0, sizes, compiled=False)
        c = run_detector(x, 360.0, sizes, compiled=True)
        assert np.array_equal(c[0], py[0]) and np.array_equal(c[1], py[1])


@needs_kernel
def test_compiled_kernel_matches_python_on_mit_bih() -> None:
    """Two hard MIT-BIH records (multiform PVCs and noise; ventricular flutter): whole records in 1-s chunks
    and in one call, and a minute of each in one-sample and random chunks."""
    mitdb = Path(os.environ.get("CARDIOGATE_DATA_DIR", REPO.parent / "shared" / "data")) / "mitdb"
    if not (mitdb / "203.atr").is_file() or not (mitdb / "207.atr").is_file():
        pytest.skip(f"MIT-BIH records 203 and 207 not found in {mitdb}")
    from cardiogate.app.evaluation.rpeaks import load_record

    for name in ("203", "207"):
        rec = load_record(mitdb, name)
        x, fs = rec.signal, rec.sample_rate_hz
        for sizes in ([360] * -(-x.size // 360), [x.size]):  # 1-s chunks; the record at once (~2,000 peaks)
            py = run_detector(x, fs, sizes, compiled=False)
            c = run_detector(x, fs, sizes, compiled=True)
            assert py[0].size > 1500
            assert np.array_equal(c[0], py[0]) and np.array_equal(c[1], py[1])
        part = x[int(600 * fs):int(660 * fs)]
        for sizes in ([1] * part.size, random_chunks(part.size, 13)):
            py = run_detector(part, fs, sizes, compiled=False)
            c = run_detector(part, fs, sizes, compiled=True)
            assert np.array_equal(c[0], py[0]) and np.array_equal(c[1], py[1])


@needs_kernel
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # inf - inf in the finiteness check
def test_the_kernel_survives_hostile_chunks_exactly_like_python() -> None:
    # BLE delivers whatever a device sends: rails, NaN/inf, huge values, empty and odd-sized chunks, restarts.
    # The compiled kernel must neither crash nor drift from the Python implementation on any of it.
    rng = np.random.default_rng(42)
    for trial in range(40):
        fs = float(rng.choice([50, 125, 130, 250, 360, 1000]))
        fast, slow = RPeakDetector(fs, compiled=True), RPeakDetector(fs, compiled=False)
        for step in range(int(rng.integers(5, 30))):
            n = int(rng.choice([0, 1, 2, 7, 114, 500, 3000]))
            kind = int(rng.integers(0, 5))
            x: NDArray[np.float64] = (
                rng.normal(0, 1000, n) if kind == 0
                else np.full(n, float(rng.choice([0, 32767, -32768, 1e12]))) if kind == 1
                else rng.choice(np.array([1e300, -1e300, 0.0, np.nan, np.inf, -np.inf]), n) if kind == 2
                else rng.integers(-32768, 32767, n).astype(np.float64) if kind == 3
                else np.zeros(n))
            a, b = fast.process(x), slow.process(x)
            assert np.array_equal(a.peaks, b.peaks), (trial, step)
            assert np.array_equal(a.filtered, b.filtered, equal_nan=True), (trial, step)
            if rng.random() < 0.05:
                start = int(rng.integers(0, 10**6))
                fast.reset(start)
                slow.reset(start)


def test_the_python_implementation_can_be_required_and_the_kernel_demanded(monkeypatch: pytest.MonkeyPatch) -> None:
    assert not RPeakDetector(250.0, compiled=False).compiled
    monkeypatch.setattr(rpeaks, "_rpeaks_kernel", None)
    assert not RPeakDetector(250.0).compiled  # absent kernel: the Python implementation, silently
    with pytest.raises(RuntimeError, match="not built"):
        RPeakDetector(250.0, compiled=True)


# -- HRV -----------------------------------------------------------------------------------------------


def test_time_domain_hrv_matches_hand_computation() -> None:
    m = time_domain([800.0, 810.0, 790.0, 850.0, 700.0])
    assert m is not None
    # mean 790; deviations 10, 20, 0, 60, -90 -> SS 12200 / 4; diffs 10, -20, 60, -150
    assert m.mean_hr_bpm == pytest.approx(60_000 / 790)
    assert m.sdnn_ms == pytest.approx(math.sqrt(12_200 / 4))
    assert m.rmssd_ms == pytest.approx(math.sqrt((100 + 400 + 3600 + 22_500) / 4))
    assert m.pnn50_pct == pytest.approx(50.0)
    assert time_domain([800.0, 810.0]) is None


def test_rr_window_is_time_based_and_excludes_ectopic_intervals() -> None:
    fs = 100.0
    w = RrWindow(fs)
    beats = np.cumsum([0, *[80] * 20, 40, 120, *[80] * 20])  # 0.8 s sinus, one premature beat
    w.add(beats)
    now = int(beats[-1])
    assert w.heart_rate(now, 10.0) == pytest.approx(75.0)
    hrv = w.hrv(now, 60.0)
    assert hrv is not None and hrv.n_intervals == 40 and hrv.rmssd_ms == 0.0  # 400/1200 ms dropped
    assert w.heart_rate(now + 20 * int(fs), 10.0) is None  # no beats in the last 10 s: no stale rate


def test_heart_rate_walk_equals_the_array_reference_exactly() -> None:
    """The per-chunk heart rate walks back from the newest beat; it must give the array version's rate to the
    bit at every moment: before, between and after beats, with implausible intervals, pauses and window edges."""
    rng = np.random.default_rng(5)
    compared = nones = 0
    for _ in range(300):
        fs = float(rng.choice([125.0, 250.0, 256.0, 360.0]))
        w = RrWindow(fs, horizon_s=float(rng.choice([15.0, 60.0])))
        t = 0
        for _ in range(int(rng.integers(1, 60))):
            t += int(rng.choice([rng.integers(20, 120), rng.integers(1, 20), rng.integers(300, 900)]) * fs / 100)
            w.add([t])
            for now in (t, t + int(rng.integers(0, 5 * int(fs))), t - int(rng.integers(0, int(fs)))):
                window = float(rng.choice([5.0, 10.0, 12.5]))
                fast, ref = w.heart_rate(now, window), w.heart_rate_numpy(now, window)
                assert fast == ref
                compared += 1
                nones += fast is None
    assert compared > 5000 and 0 < nones < compared


# -- AF ------------------------------------------------------------------------------------------------


def test_af_evidence_high_on_irregular_rr_low_on_sinus_and_bigeminy() -> None:
    af = af_evidence(np.array(irregular_rr(60)) * 1000)
    sinus = af_evidence(np.array(sinus_rr(60)) * 1000)
    bigeminy = af_evidence(np.array([450.0, 1150.0] * 30) + np.random.default_rng(1).normal(0, 8, 60))
    assert af is not None and sinus is not None and bigeminy is not None
    assert af.af and af.score > 0.8
    assert not sinus.af and sinus.score < 0.5
    assert not bigeminy.af  # alternation: far too many turning points for a random sequence
    assert af_evidence([800.0] * 10) is None  # too few beats


def test_af_helpers() -> None:
    assert turning_points(np.array([1.0, 3.0, 2.0, 4.0, 4.0, 5.0])) == 2
    assert sample_entropy(np.full(40, 800.0)) == 0.0
    periodic = np.tile([700.0, 800.0, 900.0], 20)
    assert sample_entropy(periodic) < 0.1  # perfectly predictable


# -- quality and lead-off -----------------------------------------------------------------------------


def run_analyzer(x: NDArray[np.float64], fs: float, chunk: int, cfg: AnalyzerConfig | None = None,
                 start: int = 0) -> list[EcgUpdate]:
    an = EcgAnalyzer(fs, cfg)
    return [an.process(x[i:i + chunk], start + i) for i in range(0, x.size, chunk)]


def test_analyzer_on_clean_ecg_gives_rate_hrv_and_high_sqi() -> None:
    fs = 130.0  # Polar H10
    x, truth = synthetic_ecg(fs, sinus_rr(90, mean_s=0.75))
    an = EcgAnalyzer(fs, AnalyzerConfig(units_per_mv=1000.0))
    ups = [an.process(np.round(x[i:i + 73] * 1000).astype(np.int32), i) for i in range(0, x.size, 73)]
    last = ups[-1]
    assert sum(u.peaks.size for u in ups) == truth.size
    assert last.heart_rate_bpm == pytest.approx(80.0, abs=3.0)
    assert last.hrv is not None and last.hrv.rmssd_ms > 0
    assert last.sqi is not None and last.sqi > 0.8 and not last.lead_off
    assert last.af is not None and not last.af.af


def test_sqi_is_low_on_noise() -> None:
    fs = 250.0
    noise = np.random.default_rng(7).normal(0.0, 300.0, int(30 * fs))
    sqis = [u.sqi for u in run_analyzer(noise, fs, 250) if u.sqi is not None]
    assert sqis and max(sqis) < 0.2


def test_flat_line_is_lead_off_and_hides_the_heart_rate() -> None:
    fs = 250.0
    x, _ = synthetic_ecg(fs, sinus_rr(20))
    flat = np.concatenate([x * 1000, np.full(int(10 * fs), 12.0)])
    ups = run_analyzer(flat, fs, 50)
    last = ups[-1]
    assert last.lead_off and last.lead_off_reason == "flat"
    assert last.heart_rate_bpm is None and last.sqi == 0.0


def test_railed_signal_is_saturated() -> None:
    fs = 250.0
    rng = np.random.default_rng(8)
    railed = np.where(rng.random(int(12 * fs)) < 0.5, -32768.0, 32767.0)  # floating input banging the rails
    assert run_analyzer(railed, fs, 125)[-1].lead_off_reason == "saturated"
    x, _ = synthetic_ecg(fs, sinus_rr(20))
    clipped = np.clip(x * 1000 + 700, -2000, 800)  # baseline pushed into the upper rail
    cfg = AnalyzerConfig(rails=(-2000.0, 800.0))
    assert run_analyzer(clipped, fs, 125, cfg)[-1].lead_off_reason == "saturated"


def test_no_qrs_in_a_noisy_but_connected_signal() -> None:
    fs = 250.0
    t = np.arange(int(6 * fs)) / fs
    slow = 300 * np.sin(2 * np.pi * 0.3 * t)  # breathing artefact only
    report = assess(slow, slow - slow.mean(), np.empty(0, dtype=np.int64), fs, 1000.0)
    assert report.reason == "no_qrs" and report.sqi == 0.0


def test_gap_resets_and_overlap_is_dropped() -> None:
    fs = 250.0
    x, _ = synthetic_ecg(fs, sinus_rr(40))
    an = EcgAnalyzer(fs)
    half = x.size // 2
    first = an.process(x[:half], 0)
    assert not first.reset and first.peaks.size > 0
    dup = an.process(x[half - 100:half], half - 100)  # already seen: nothing new
    assert dup.n_samples == 0 and dup.peaks.size == 0
    jump = 10 * half
    after = [an.process(x[half + i:half + i + 125], jump + i) for i in range(0, x.size - half, 125)]
    assert after[0].reset and not any(u.reset for u in after[1:])
    peaks = np.concatenate([u.peaks for u in after])
    assert peaks.size > 0 and peaks.min() >= jump
    assert after[0].heart_rate_bpm is None  # no interval spans the gap
