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
    evaluate,
    find_records,
    format_table,
    match_pairs,
    outside,
    score_beats,
    speed_summary,
    tolerance_samples,
    vf_spans,
    window_label,
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


def test_windows_are_labelled_in_milliseconds() -> None:
    assert window_label(0.15) == "150" and window_label(0.075) == "75"
    assert window_label(0.0625) == "62.5"


def overall_of(**samples_per_s: float) -> dict[str, dict[str, float | int]]:
    return {k.replace("_", "-"): {"se": 0.99, "ppv": 0.98, "f1": 0.985, "samples_per_s": v, "tp": 1, "fp": 0, "fn": 0}
            for k, v in samples_per_s.items()}


def test_speed_is_compared_with_the_fastest_reference_method() -> None:
    overall = overall_of(ours=3e6, neurokit2=1e6, neurokit2_pantompkins1985=6e6)
    speed = speed_summary(overall)
    assert speed is not None
    assert speed["fastest_reference"] == "neurokit2-pantompkins1985"
    assert speed["ratio"] == pytest.approx(0.5)
    assert speed_summary(overall_of(ours=3e6)) is None  # ours alone: nothing to compare with


def test_table_shows_every_window_and_the_ratio_to_the_fastest() -> None:
    keys = ("ours", "neurokit2", "neurokit2-pantompkins1985")
    head = overall_of(ours=3e6, neurokit2=1e6, neurokit2_pantompkins1985=6e6)
    narrow = {k: {**v, "f1": 0.5} for k, v in head.items()}
    result = {"overall": head, "records": {"101": {k: {"se": 1.0, "ppv": 1.0, "f1": 1.0} for k in keys}},
              "windows": {"150": {"overall": head}, "75": {"overall": narrow}}}
    text = format_table(result)
    assert "(window 150 ms)" in text and "(window 75 ms)" in text and "50.00" in text
    assert "ours / neurokit2: " in text and "throughput x3.00" in text
    assert "ours / neurokit2-pantompkins1985: " in text and "throughput x0.50" in text
    assert "fastest reference (neurokit2-pantompkins1985): x0.50" in text


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
    for key in ("ours", "neurokit2", "neurokit2-pantompkins1985"):
        assert {"se", "ppv", "f1", "samples_per_s"} <= set(result["overall"][key])
        assert {"se", "ppv", "f1", "tp", "fp", "fn"} <= set(result["records"]["101"][key])
    assert result["overall"]["ours"]["f1"] > 0.99
    # both windows from the one run; the first is the headline, the narrow one can only score lower
    assert set(result["windows"]) == {"150", "75"}
    assert result["windows"]["150"]["overall"] == result["overall"]
    assert 0.99 < result["windows"]["75"]["overall"]["ours"]["f1"] <= result["overall"]["ours"]["f1"]
    speed = result["speed"]
    assert speed["fastest_reference"] in ("neurokit2", "neurokit2-pantompkins1985")
    fastest = max(result["overall"][k]["samples_per_s"] for k in ("neurokit2", "neurokit2-pantompkins1985"))
    assert speed["ratio"] == pytest.approx(result["overall"]["ours"]["samples_per_s"] / fastest)
    assert result["meta"]["window_ms"] == [150.0, 75.0]
    assert "fastest reference" in printed


@needs_mitdb
def test_cli_scores_the_windows_asked_for(tmp_path: Path) -> None:
    out = tmp_path / "rpeaks.json"
    assert main(["eval", "rpeaks", "--data", str(MITDB), "--records", "101", "--no-neurokit",
                 "--window-ms", "100", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert set(result["windows"]) == {"100"} and set(result["overall"]) == {"ours", "gateway"}
    # 101 has no flutter: the beats the gateway reports are the detector's
    assert result["overall"]["gateway"]["tp"] == result["overall"]["ours"]["tp"]
    assert result["overall"]["gateway"]["fp"] == result["overall"]["ours"]["fp"]
    assert "speed" not in result


def test_cli_rejects_a_window_that_is_not_positive(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["eval", "rpeaks", "--data", str(tmp_path), "--no-neurokit", "--window-ms", "150,0"])
    assert exc.value.code == 2
    assert "above 0" in capsys.readouterr().err


def test_cli_rejects_a_missing_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "rpeaks", "--data", str(tmp_path / "absent"), "--no-neurokit"]) == 2
    assert "no such folder" in capsys.readouterr().err


def test_vf_episodes_run_from_open_to_close_bracket() -> None:
    spans = vf_spans([10, 50, 60, 100, 200, 300], ["N", "[", "!", "]", "N", "["], 400)
    assert spans == ((50, 100), (300, 399))  # one still open at the end runs to the last sample
    assert vf_spans([5], ["]"], 10) == ()  # a close without an open excludes nothing
    assert outside([10, 50, 75, 100, 101, 350], spans).tolist() == [10, 101]


@needs_mitdb
def test_record_207_scores_better_without_its_flutter_and_101_is_untouched() -> None:
    """207's flutter waves are not beats, so every detection there is a false positive: excluded, +P rises;
    101 has no VF episode, so its two figures are the same."""
    result = evaluate(MITDB, ["101", "207"], window_s=(0.15,), detectors={"ours": detect_ours_only})
    whole, no_vf = result["overall"]["ours"], result["vf_excluded"]["windows"]["150"]["ours"]
    assert result["vf_excluded"]["samples"] > 10 * 360  # 207 has minutes of flutter
    assert no_vf["fp"] < whole["fp"] - 100 and no_vf["tp"] <= whole["tp"] and no_vf["ppv"] > whole["ppv"]
    only_101 = evaluate(MITDB, ["101"], window_s=(0.15,), detectors={"ours": detect_ours_only})
    assert only_101["vf_excluded"]["samples"] == 0
    assert only_101["vf_excluded"]["windows"]["150"]["ours"] == {
        k: only_101["overall"]["ours"][k] for k in ("se", "ppv", "f1", "tp", "fp", "fn")}


def detect_ours_only(signal: np.ndarray, sample_rate_hz: float) -> tuple[np.ndarray, float]:
    from cardiogate.app.evaluation.rpeaks import detect_ours

    return detect_ours(signal, sample_rate_hz)


@needs_mitdb
def test_the_gateway_withholds_207s_flutter_waves_at_any_chunk_size() -> None:
    """The beats the gateway reports leave out what the detector counted in 207's ventricular flutter (every
    detection there is a false positive) and keep its beats outside it; the same peaks at any chunk size."""
    from cardiogate.app.evaluation.rpeaks import detect_gateway, detect_ours, load_record

    rec = load_record(MITDB, "207")
    tol = tolerance_samples(0.15, rec.sample_rate_hz)
    ours, _ = detect_ours(rec.signal, rec.sample_rate_hz)
    gateway, seconds = detect_gateway(rec.signal, rec.sample_rate_hz)
    a, b = score_beats(rec.beats, ours, tol), score_beats(rec.beats, gateway, tol)
    assert seconds > 0 and set(gateway.tolist()) <= set(ours.tolist())
    assert b.fp < a.fp - 200 and b.fn <= a.fn + 10  # 374 -> about 125 FP; a few beats just after flutter withheld
    in_flutter = np.zeros(rec.signal.size, dtype=bool)
    for lo, hi in rec.vf_spans:
        in_flutter[lo:hi + 1] = True
    withheld = np.setdiff1d(ours, gateway)
    assert np.mean(in_flutter[withheld]) > 0.95  # withheld waves lie in flutter (the rest within 4 s of its end)
    for chunk_s in (0.3, 2.5):
        assert np.array_equal(detect_gateway(rec.signal, rec.sample_rate_hz, chunk_s)[0], gateway)
