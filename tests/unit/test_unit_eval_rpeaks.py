"""cardiogate eval rpeaks: the beat-matching rule, and a small run on MIT-BIH when the data is present."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from cardiogate.app.cli import main
from cardiogate.app.evaluation.rpeaks import (
    BEAT_SYMBOLS,
    Score,
    find_records,
    format_table,
    match_pairs,
    score_beats,
    tolerance_samples,
)
from tests.conftest import REPO

MITDB = Path(os.environ.get("CARDIOGATE_DATA_DIR", REPO.parent / "shared" / "data")) / "mitdb"
needs_mitdb = pytest.mark.skipif(not (MITDB / "101.atr").is_file(), reason=f"MIT-BIH record 101 not found in {MITDB}")


def test_matching_is_one_to_one() -> None:
    # two detections near one beat: one TP, one FP; one detection between two beats: one TP, one FN
    assert score_beats([100], [98, 103], 10) == Score(tp=1, fp=1, fn=0)
    assert score_beats([100, 110], [105], 10) == Score(tp=1, fp=0, fn=1)


def test_matching_takes_the_nearest_pair_first() -> None:
    # in time order 120 would take 100 and 145 would take 150; nearest first gives the same here...
    assert match_pairs([100, 150], [120, 145], 50) == [(1, 1), (0, 0)]
    # ...but a greedy left-to-right rule would pair 100-140 and lose 150; nearest first keeps both
    assert match_pairs([100, 150], [140, 60], 50) == [(1, 0), (0, 1)]
    assert score_beats([100], [90, 105], 54) == Score(tp=1, fp=1, fn=0)
    assert match_pairs([100], [90, 105], 54) == [(0, 1)]
    # equal distances: the earlier detection wins, deterministically
    assert match_pairs([100], [105, 95], 54) == [(0, 1)]


def test_window_boundary_is_inclusive() -> None:
    tol = tolerance_samples(0.150, 360.0)
    assert tol == 54
    assert score_beats([1000], [1054], tol).tp == 1
    assert score_beats([1000], [946], tol).tp == 1
    assert score_beats([1000], [1055], tol) == Score(tp=0, fp=1, fn=1)
    assert tolerance_samples(0.150, 250.0) == 37 and tolerance_samples(0.150, 130.0) == 19


def test_empty_inputs_and_summed_scores() -> None:
    assert score_beats([], [5, 6], 3) == Score(0, 2, 0)
    assert score_beats([5, 6], [], 3) == Score(0, 0, 2)
    total = Score(90, 5, 10) + Score(10, 0, 0)
    assert (total.tp, total.fp, total.fn) == (100, 5, 10)
    assert total.se == pytest.approx(100 / 110) and total.ppv == pytest.approx(100 / 105)
    assert total.f1 == pytest.approx(200 / 215)
    assert Score(0, 0, 0).f1 == 0.0


def test_reference_symbols_are_the_beat_labels() -> None:
    assert frozenset("NLRBAaJSVrFejnE/fQ?") == BEAT_SYMBOLS
    assert not {"+", "~", "|", "!", "[", "]", "x", '"'} & BEAT_SYMBOLS


def test_find_records_needs_header_and_annotations(tmp_path: Path) -> None:
    for name in ("a.hea", "a.atr", "a.dat", "b.hea", "b.dat", "c.atr"):
        (tmp_path / name).write_bytes(b"")
    assert find_records(tmp_path) == ["a"]


def test_table_reports_both_detectors_and_the_ratio() -> None:
    result = {"overall": {k: {"se": 0.99, "ppv": 0.98, "f1": 0.985, "samples_per_s": 2e6, "tp": 1, "fp": 0, "fn": 0}
                          for k in ("ours", "neurokit2")},
              "records": {"101": {k: {"se": 1.0, "ppv": 1.0, "f1": 1.0} for k in ("ours", "neurokit2")}}}
    text = format_table(result)
    assert "101" in text and "overall" in text and "x1.00" in text


@needs_mitdb
def test_a_few_minutes_of_record_101() -> None:
    from cardiogate.app.evaluation.rpeaks import detect_ours, load_record

    rec = load_record(MITDB, "101")
    n = int(2 * 60 * rec.sample_rate_hz)
    peaks, seconds = detect_ours(rec.signal[:n], rec.sample_rate_hz)
    s = score_beats(rec.beats[rec.beats < n], peaks, tolerance_samples(0.15, rec.sample_rate_hz))
    assert s.f1 > 0.99 and seconds > 0
    assert np.all(np.diff(peaks) > 0)


@needs_mitdb
def test_cli_writes_the_json_shape(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("neurokit2")
    out = tmp_path / "rpeaks.json"
    affinity = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    assert main(["eval", "rpeaks", "--data", str(MITDB), "--records", "101", "--json", str(out)]) == 0
    if affinity is not None:
        assert os.sched_getaffinity(0) == affinity  # pinned to one core only while measuring
    printed = capsys.readouterr().out
    assert "[1/1] 101" in printed and "ours / neurokit2" in printed
    result = json.loads(out.read_text())
    for key in ("ours", "neurokit2"):
        assert {"se", "ppv", "f1", "samples_per_s"} <= set(result["overall"][key])
        assert {"se", "ppv", "f1", "tp", "fp", "fn"} <= set(result["records"]["101"][key])
    assert result["overall"]["ours"]["f1"] > 0.99


def test_cli_rejects_a_missing_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "rpeaks", "--data", str(tmp_path / "absent"), "--no-neurokit"]) == 2
    assert "no such folder" in capsys.readouterr().err
