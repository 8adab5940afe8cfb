"""Replay of WFDB records through a watch: rates, length, determinism, beats on R peaks, looping."""

from __future__ import annotations

import itertools
import math
import os
from pathlib import Path

import numpy as np
import pytest

from cardiogate.sim.patient import PatientScenario, PatientSimulator
from cardiogate.sim.rhythm import EcgBeatSource
from cardiogate.sim.wfdb_replay import RecordedEcgSource, WfdbRecordSource, read_cinc2017, resample_ratio, rhythm_name
from tests.conftest import REPO

DATA = Path(os.environ.get("CARDIOGATE_DATA_DIR", REPO.parent / "shared" / "data"))
MITDB = DATA / "mitdb"
CINC_TAR = DATA / "cinc2017" / "training2017.tar.gz"
pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame.set_index")  # inside wfdb


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"reference data not present: {path}")
    return path


@pytest.fixture(scope="module")
def rec101() -> WfdbRecordSource:
    return WfdbRecordSource(need(MITDB / "101.hea"), channel=0, target_rate_hz=250)


def test_resample_ratios_are_exact() -> None:
    assert resample_ratio(360, 250) == (25, 36)
    assert resample_ratio(300, 250) == (5, 6)
    assert resample_ratio(125, 250) == (2, 1)
    assert resample_ratio(360.0, 130) == (13, 36)


def test_rhythm_labels() -> None:
    assert [rhythm_name(a) for a in ("(N\x00", "(AFIB", "(VT", "(B")] == ["sinus", "af", "vt", "b"]


def test_mitdb_101_has_the_expected_length_and_units(rec101: WfdbRecordSource) -> None:
    assert rec101.n_samples == math.ceil(650_000 * 25 / 36) == 451_389
    assert rec101.duration_s == pytest.approx(1805.556, abs=1e-3)
    assert rec101.ecg_rate_hz == 250 and rec101.name == "101:MLII"
    r_peaks = rec101.ecg_uv(0, rec101.n_samples)[rec101.beat_indices[1:-1]]
    assert 500 < float(np.median(r_peaks)) < 3000  # microvolts, not millivolts or ADC units


def test_replay_is_deterministic_and_chunk_invariant(rec101: WfdbRecordSource) -> None:
    again = WfdbRecordSource(MITDB / "101", target_rate_hz=250)
    n = 250 * 120
    whole = rec101.ecg_uv(0, n)
    assert np.array_equal(whole, again.ecg_uv(0, n))
    cuts = [0, *sorted(np.random.default_rng(1).choice(np.arange(1, n), 50, replace=False).tolist()), n]
    assert np.array_equal(np.concatenate([again.ecg_uv(a, b - a) for a, b in itertools.pairwise(cuts)]),
                          whole)
    assert rec101.beats_until(120) == again.beats_until(120)


def test_annotated_beats_sit_on_r_peaks_of_the_resampled_signal(rec101: WfdbRecordSource) -> None:
    x = rec101.ecg_uv(0, rec101.n_samples)
    idx = rec101.beat_indices
    assert idx.size == 1865  # every beat annotation of record 101
    half = 10  # 40 ms either side
    offsets = np.array([int(np.argmax(x[i - half:i + half + 1])) - half for i in idx[1:-1]])
    assert np.mean(np.abs(offsets) <= 1) > 0.99
    beats = rec101.beats_until(rec101.duration_s)
    assert [round(b.t_s * 250) for b in beats] == idx.tolist()
    assert {b.rhythm for b in beats} == {"sinus"}


def test_reported_rate_matches_the_annotated_rr(rec101: WfdbRecordSource) -> None:
    for t in (30.0, 600.0, 1500.0):
        rr = rec101.rr_intervals_s(0, t)[-4:]
        assert rec101.heart_rate_bpm(t) == pytest.approx(60 / float(np.mean(rr)))
        assert 50 < rec101.heart_rate_bpm(t) < 90
    assert rec101.critical_episodes(rec101.duration_s) == []


def test_stop_or_loop_at_the_end(rec101: WfdbRecordSource) -> None:
    n, d = rec101.n_samples, rec101.duration_s
    assert rec101.ecg_uv(n - 5, 10).size == 5 and rec101.ecg_uv(n + 10, 10).size == 0
    assert rec101.beats_between(d, d + 100) == [] and not rec101.sensor_contact(d + 1)
    looped = WfdbRecordSource(MITDB / "101", loop=True)
    x = rec101.ecg_uv(0, n)
    assert np.array_equal(looped.ecg_uv(n - 5, 10), np.concatenate([x[-5:], x[:5]]))
    first, second = rec101.beats_between(0, 10), looped.beats_between(d, d + 10)
    assert [b.t_s + d for b in first] == pytest.approx([b.t_s for b in second])
    assert second[0].rr_s == pytest.approx(first[0].t_s + d - rec101.beats_until(d)[-1].t_s)
    assert 50 < looped.heart_rate_bpm(d + 1.0) < 90 and looped.sensor_contact(d + 1)


def test_channel_by_name_and_rhythm_annotations() -> None:
    v1 = WfdbRecordSource(need(MITDB / "101.hea"), channel="V1")
    assert v1.name == "101:V1"
    with pytest.raises(ValueError, match="no signal named 'II'"):
        WfdbRecordSource(MITDB / "101", channel="II")
    af = WfdbRecordSource(need(MITDB / "201.hea"))
    rhythms = {b.rhythm for b in af.beats_until(af.duration_s)}
    assert {"sinus", "af"} <= rhythms


def test_a_signal_without_annotations() -> None:
    t = np.arange(3600) / 360
    src = RecordedEcgSource(1000 * np.sin(2 * np.pi * 1.0 * t), 360, 250)
    assert src.n_samples == 2500 and src.beats_until(10) == [] and src.heart_rate_bpm(5) == 0.0
    assert np.max(np.abs(src.ecg_uv(100, 2300) - 1000 * np.sin(2 * np.pi * (100 + np.arange(2300)) / 250))) < 5


def test_cinc2017_record_straight_from_the_tarball() -> None:
    src = read_cinc2017(need(CINC_TAR), "A00001")
    assert src.source_rate_hz == 300 and src.n_samples == 7500  # 9000 samples at 300 Hz, 30 s
    assert 300 < float(np.ptp(src.ecg_uv(0, src.n_samples))) < 5000  # microvolts


def test_either_source_drives_a_watch(rec101: WfdbRecordSource) -> None:
    def one_second(src: EcgBeatSource, t: float) -> tuple[int, int, float]:
        fs = src.ecg_rate_hz
        return src.ecg_uv(round(t * fs), fs).size, len(src.beats_between(t, t + 1)), src.heart_rate_bpm(t)

    assert one_second(rec101, 100)[0] == 250
    assert one_second(PatientSimulator(PatientScenario(), ecg_rate_hz=130), 100)[0] == 130
