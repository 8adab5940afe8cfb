"""Deterioration within hours (MIMIC-III demo): each hourly sample's features see only the chartevents rows
known by its own time (rows known later never move them, a row inside its window does), the death-within-H
label, NEWS2 from the last values, clear errors for other layouts, and the report's keys and counts."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO

pd = pytest.importorskip("pandas", reason="pandas (the [learn] extra) is not installed")
pytest.importorskip("sklearn", reason="scikit-learn (the [learn] extra) is not installed")

from cardiogate.models.haim.deterioration import (  # noqa: E402
    NEWS2_FEATURES,
    SUBJECT,
    TIME,
    VITALS,
    WINDOW_STATS,
    cluster_bootstrap,
    feature_names,
    labels,
    load_vitals,
    main,
    prepare,
    run,
    sample_times,
    window_features,
)
from cardiogate.models.haim.mimic import EVENT_TIME, KNOWN_TIME, SIGNAL, STAY, VALUE, MimicLayoutError  # noqa: E402

DATA = Path(os.environ.get("CARDIOGATE_DATA_DIR", REPO.parent / "shared" / "data"))
MIMIC3 = DATA / "mimic-iii-demo"
needs_iii = pytest.mark.skipif(not (MIMIC3 / "csv" / "chartevents.csv.gz").is_file(),
                               reason=f"the MIMIC-III demo is not in {MIMIC3} (set CARDIOGATE_DATA_DIR)")
T0 = pd.Timestamp("2150-01-01 08:00")
ITEMS = {"hr": 220045, "spo2": 220277, "sbp": 220179, "rr": 220210, "temp_c": 223762}


def _text(stamps: pd.Series) -> pd.Series:
    return pd.to_datetime(stamps).dt.strftime("%Y-%m-%d %H:%M:%S")


def _time(text: pd.Series) -> pd.Series:
    return pd.to_datetime(text, errors="coerce", utc=True, format="ISO8601").dt.tz_localize(None)


# ------------------------------------------------------------------------------ a tiny MIMIC-III-like folder


def _hourly_chart(stay: int, hours: int, rng: np.random.Generator, sick: bool) -> pd.DataFrame:
    """Vitals every hour, stored 10 minutes later; a sick stay's heart rate climbs, its SpO2 falls."""
    rows = []
    for h in range(hours):
        drift = h / hours if sick else 0.0
        values = {"hr": 80 + 40 * drift, "spo2": 97 - 6 * drift, "sbp": 120 - 30 * drift, "rr": 16 + 8 * drift,
                  "temp_c": 37.0}
        for signal, value in values.items():
            when = T0 + pd.Timedelta(hours=h, minutes=20)
            rows.append((stay, stay, stay, ITEMS[signal], when, when + pd.Timedelta(minutes=10),
                         round(value + rng.normal(0, 2), 1)))
    frame = pd.DataFrame(rows, columns=["subject_id", "hadm_id", "icustay_id", "itemid", "charttime", "storetime",
                                        "valuenum"])
    return frame.assign(charttime=_text(frame["charttime"]), storetime=_text(frame["storetime"]))


def write_folder(folder: Path, deaths: dict[int, float], stays: int = 12, hours: int = 30) -> Path:
    """A MIMIC-III-like folder: ``stays`` subjects with one stay each; ``deaths`` maps stay -> hours to death."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    ids = list(range(1, stays + 1))
    intime = pd.Series([T0] * stays)
    out = pd.Series([T0 + pd.Timedelta(hours=hours)] * stays)
    death = pd.Series([T0 + pd.Timedelta(hours=deaths[i]) if i in deaths else pd.NaT for i in ids])
    pd.DataFrame({"subject_id": ids, "hadm_id": ids, "admittime": _text(intime - pd.Timedelta(hours=2)),
                  "deathtime": _text(death), "hospital_expire_flag": [int(i in deaths) for i in ids]}
                 ).to_csv(folder / "admissions.csv.gz", index=False)
    pd.DataFrame({"subject_id": ids, "hadm_id": ids, "icustay_id": ids, "intime": _text(intime),
                  "outtime": _text(out)}).to_csv(folder / "icustays.csv.gz", index=False)
    pd.DataFrame({"subject_id": ids, "gender": ["M"] * stays, "dob": ["2080-01-01 00:00:00"] * stays}
                 ).to_csv(folder / "patients.csv.gz", index=False)
    chart = pd.concat([_hourly_chart(i, hours, rng, i in deaths) for i in ids], ignore_index=True)
    chart.to_csv(folder / "chartevents.csv.gz", index=False)
    return folder


def _rewrite_known_after(folder: Path, cut: dict[int, pd.Timestamp], out: Path) -> int:
    """A copy of ``folder`` whose chartevents rows known after their stay's cut are all changed (values up,
    charted inside the window, stored after the cut), plus rows charted before the cut but never stored."""
    out.mkdir()
    for f in folder.glob("*.csv.gz"):
        if f.name != "chartevents.csv.gz":
            os.symlink(f, out / f.name)
    chart = pd.read_csv(folder / "chartevents.csv.gz", low_memory=False)
    limit = chart["icustay_id"].map(cut)
    known = pd.concat([_time(chart["charttime"]), _time(chart["storetime"])], axis=1).max(axis=1)
    after = (known > limit).to_numpy()
    moved = chart[after].copy()
    moved["valuenum"] = moved["valuenum"] + 5
    moved["charttime"] = _text(limit[after] - pd.Timedelta(minutes=30))
    moved["storetime"] = _text(np.maximum(known[after], limit[after] + pd.Timedelta(minutes=1)))
    never = moved.assign(storetime=np.nan, valuenum=moved["valuenum"] + 20)
    pd.concat([chart[~after], moved, never], ignore_index=True).to_csv(out / "chartevents.csv.gz", index=False)
    return int(after.sum())


def _rewrite_inside_window(folder: Path, cut: dict[int, pd.Timestamp], out: Path, window_h: float = 6.0) -> int:
    """A copy whose heart rates known by the cut and charted inside its window are 7 higher."""
    out.mkdir()
    for f in folder.glob("*.csv.gz"):
        if f.name != "chartevents.csv.gz":
            os.symlink(f, out / f.name)
    chart = pd.read_csv(folder / "chartevents.csv.gz", low_memory=False)
    limit = chart["icustay_id"].map(cut)
    charted = _time(chart["charttime"])
    known = pd.concat([charted, _time(chart["storetime"])], axis=1).max(axis=1)
    inside = ((known <= limit) & (charted > limit - pd.Timedelta(hours=window_h))
              & chart["itemid"].isin([211, 220045])).to_numpy()
    chart.loc[inside, "valuenum"] = chart.loc[inside, "valuenum"] + 7
    chart.to_csv(out / "chartevents.csv.gz", index=False)
    return int(inside.sum())


def _features_at(folder: Path) -> tuple[pd.DataFrame, np.ndarray]:
    ds = prepare(folder)
    return ds.samples, ds.x


def _assert_cut_holds(base: Path, cut: dict[int, pd.Timestamp], tmp: Path) -> None:
    """Samples at or before their stay's cut: identical after the later rows change; the cut's own sample
    moves when a row inside its window changes (so this check can fail)."""
    samples, x = _features_at(base)
    at_or_before = (samples[TIME] <= samples[STAY].map(cut)).to_numpy()
    at_cut = (samples[TIME] == samples[STAY].map(cut)).to_numpy()
    assert at_cut.sum() == len(cut) and at_or_before.sum() > len(cut)
    changed = _rewrite_known_after(base, cut, tmp / "after")
    samples2, x2 = _features_at(tmp / "after")
    assert changed > 100
    pd.testing.assert_frame_equal(samples2[at_or_before], samples[at_or_before])
    np.testing.assert_array_equal(x2[at_or_before], x[at_or_before])
    assert not np.array_equal(x2[~at_or_before], x[~at_or_before], equal_nan=True)  # later samples did see them
    assert _rewrite_inside_window(base, cut, tmp / "inside") >= len(cut)
    _s3, x3 = _features_at(tmp / "inside")
    col = feature_names().index("hr_mean")
    assert (x3[at_cut, col] > x[at_cut, col]).all()


def test_rows_known_after_a_sample_never_move_its_features_synthetic(tmp_path: Path) -> None:
    base = write_folder(tmp_path / "base", {3: 25.0, 7: 27.5})
    cut = {i: T0 + pd.Timedelta(hours=6 + i) for i in range(1, 13)}
    _assert_cut_holds(base, cut, tmp_path)


@pytest.fixture(scope="module")
def demo_subset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[int, pd.Timestamp]]:
    """Five MIMIC-III demo stays of single-stay subjects, alive and in the ICU for 40-70 h (so not thinned);
    each cut 20 h after intime, an hourly sample time."""
    src = MIMIC3 / "csv"
    icu = pd.read_csv(src / "icustays.csv.gz").merge(pd.read_csv(src / "admissions.csv.gz")[["hadm_id", "deathtime"]])
    intime = _time(icu["intime"])
    end = pd.concat([_time(icu["outtime"]), _time(icu["deathtime"])], axis=1).min(axis=1)
    hours = (end - intime) / pd.Timedelta(hours=1)
    icu = icu[~icu["subject_id"].duplicated(keep=False) & hours.between(40, 70)].sort_values("icustay_id")
    icu = icu.iloc[::2].head(5)
    subjects = set(icu["subject_id"])
    out = tmp_path_factory.mktemp("mimic3_subset")
    for name in ("admissions", "patients", "icustays", "chartevents"):
        frame = pd.read_csv(src / f"{name}.csv.gz", low_memory=False)
        frame[frame["subject_id"].isin(subjects)].to_csv(out / f"{name}.csv.gz", index=False)
    intime = _time(icu["intime"])
    return out, dict(zip(icu["icustay_id"], intime.dt.floor("s") + pd.Timedelta(hours=20), strict=True))


@needs_iii
def test_rows_known_after_a_sample_never_move_its_features_demo(
        tmp_path: Path, demo_subset: tuple[Path, dict[int, pd.Timestamp]]) -> None:
    base, cut = demo_subset
    _assert_cut_holds(base, cut, tmp_path)


def test_window_features_use_only_known_rows_in_the_window() -> None:
    t = T0 + pd.Timedelta(hours=10)
    rows = [("hr", 50.0, -7.0, -7.0), ("hr", 60.0, -3.0, -3.0), ("hr", 80.0, -1.0, -0.5), ("hr", 200.0, -0.5, 0.5),
            ("hr", 150.0, 1.0, 1.0)]  # charted 7 h before (out of the window), stored after t, charted after t
    vitals = pd.DataFrame({STAY: 1, SIGNAL: [r[0] for r in rows], VALUE: [r[1] for r in rows],
                           EVENT_TIME: [t + pd.Timedelta(hours=r[2]) for r in rows],
                           KNOWN_TIME: [t + pd.Timedelta(hours=r[3]) for r in rows]})
    samples = pd.DataFrame({STAY: [1, 2], SUBJECT: [1, 2], TIME: [t, t]})
    names, x = window_features(vitals, samples, 6.0)
    assert names == [*(f"{v}_{s}" for v in VITALS for s in WINDOW_STATS), *NEWS2_FEATURES]
    one = dict(zip(names, x[0], strict=True))
    assert (one["hr_count"], one["hr_mean"], one["hr_min"], one["hr_max"], one["hr_last"]) == (2, 70, 60, 80, 80)
    assert one["hr_slope"] == pytest.approx(10.0)  # 60 -> 80 in 2 h
    assert one["spo2_count"] == 0 and np.isnan(one["spo2_mean"]) and np.isnan(one["spo2_slope"])
    assert (one["news2"], one["news2_parameters"]) == (0, 1)  # pulse 80 scores 0; only the pulse is known
    two = dict(zip(names, x[1], strict=True))
    assert two["hr_count"] == 0 and np.isnan(two["news2"]) and two["news2_parameters"] == 0


def test_news2_of_the_last_known_values_is_the_hand_computed_score() -> None:
    t = T0 + pd.Timedelta(hours=10)
    first = {"hr": 70.0, "spo2": 98.0, "sbp": 130.0, "rr": 14.0, "temp_c": 37.0}  # scores 0 everywhere
    last = {"hr": 115.0, "spo2": 93.0, "sbp": 105.0, "rr": 22.0, "temp_c": 38.5}
    # hand: pulse 111-130 -> 2, SpO2 92-93 -> 2, systolic 101-110 -> 1, RR 21-24 -> 2, 38.1-39.0 C -> 1 = 8
    rows = [(s, v, -2.0) for s, v in first.items()] + [(s, v, -1.0) for s, v in last.items()]
    rows += [("hr", 35.0, 2.0)]  # a later heart rate (3 points) is not known yet
    vitals = pd.DataFrame({STAY: 1, SIGNAL: [r[0] for r in rows], VALUE: [r[1] for r in rows],
                           EVENT_TIME: [t + pd.Timedelta(hours=r[2]) for r in rows]})
    vitals[KNOWN_TIME] = vitals[EVENT_TIME]
    names, x = window_features(vitals, pd.DataFrame({STAY: [1], SUBJECT: [1], TIME: [t]}))
    assert x[0, names.index("news2")] == 8 and x[0, names.index("news2_parameters")] == 5
    assert x[0, names.index("dbp_count")] == 0


# ------------------------------------------------------------------------------------------- samples, labels


def _stays(hours: float, death_h: float | None) -> pd.DataFrame:
    return pd.DataFrame({STAY: [1], SUBJECT: [1], "intime": [T0], "outtime": [T0 + pd.Timedelta(hours=hours)],
                         "deathtime": [T0 + pd.Timedelta(hours=death_h) if death_h is not None else pd.NaT]})


def test_a_death_11_hours_later_is_positive_at_12_and_negative_at_10() -> None:
    stays = _stays(40, 17)
    samples = sample_times(stays)
    assert list(samples[TIME]) == [T0 + pd.Timedelta(hours=h) for h in range(6, 17)]  # alive and in the ICU
    first = samples[TIME] == T0 + pd.Timedelta(hours=6)
    assert labels(samples, stays, 12)[first.to_numpy()].tolist() == [1]
    assert labels(samples, stays, 10)[first.to_numpy()].tolist() == [0]
    assert labels(samples, stays, 12).sum() == 11 and labels(samples, stays, 10).sum() == 10
    survivor = _stays(40, None)
    assert labels(sample_times(survivor), survivor, 12).sum() == 0


def test_long_stays_are_thinned_evenly_and_short_ones_give_nothing() -> None:
    long = sample_times(_stays(500, None), cap=72)
    assert len(long) == 72 and long[TIME].iloc[0] == T0 + pd.Timedelta(hours=6)
    assert long[TIME].iloc[-1] == T0 + pd.Timedelta(hours=499) and long[TIME].is_monotonic_increasing
    assert len(sample_times(_stays(50, None), cap=72)) == 44
    assert sample_times(_stays(5.5, None)).empty


def test_the_cluster_bootstrap_pairs_scores_on_the_same_subjects() -> None:
    rng = np.random.default_rng(1)
    y = np.tile([0, 0, 0, 1], 25)
    score = y + rng.normal(0, 0.8, len(y))
    out = cluster_bootstrap(y, {"a": score, "news2": score.copy()}, np.repeat(np.arange(20), 5), rounds=200)
    assert out["a_minus_news2"] == {"auroc_ci": [0.0, 0.0], "auprc_ci": [0.0, 0.0]}
    assert out["a"]["auroc_ci"][0] < out["a"]["auroc"] < out["a"]["auroc_ci"][1]


# ------------------------------------------------------------------------------------------- errors, report


def test_a_folder_of_another_layout_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    eicu = tmp_path / "eicu"
    eicu.mkdir()
    pd.DataFrame({"patientunitstayid": [1]}).to_csv(eicu / "patient.csv.gz", index=False)
    with pytest.raises(MimicLayoutError, match="neither a MIMIC-III folder"):
        load_vitals(eicu)
    assert main(["--data", str(eicu)]) == 2 and str(eicu) in capsys.readouterr().err
    four = tmp_path / "mimic4"
    (four / "hosp").mkdir(parents=True)
    (four / "icu").mkdir()
    pd.DataFrame({"subject_id": [1], "hadm_id": [1], "admittime": ["2150-01-01 06:00:00"], "deathtime": [""],
                  "hospital_expire_flag": [0]}).to_csv(four / "hosp" / "admissions.csv.gz", index=False)
    pd.DataFrame({"subject_id": [1], "gender": ["F"], "anchor_age": [60], "anchor_year": [2150]}).to_csv(
        four / "hosp" / "patients.csv.gz", index=False)
    pd.DataFrame({"subject_id": [1], "hadm_id": [1], "stay_id": [1], "intime": ["2150-01-01 08:00:00"],
                  "outtime": ["2150-01-03 08:00:00"]}).to_csv(four / "icu" / "icustays.csv.gz", index=False)
    with pytest.raises(MimicLayoutError, match="no chartevents"):
        load_vitals(four)


def test_the_report_on_a_synthetic_folder_has_its_keys(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "f", {i: 24.0 + i % 5 for i in range(1, 21, 3)}, stays=20)
    out = tmp_path / "report.json"
    assert main(["--data", str(folder), "--json", str(out), "--seed", "3"]) == 0
    report = json.loads(out.read_text(encoding="utf-8"))
    assert {"task", "data", "settings", "counts", "test_news2_parameters", "metrics"} <= set(report)
    c = report["counts"]
    dying = [24 + i % 5 - 6 for i in range(1, 21, 3)]  # alive: 6 h after intime up to the hour before death
    assert c["all"]["samples"] == 24 * (20 - len(dying)) + sum(dying) and c["all"]["subjects"] == 20
    assert c["all"]["positive_samples"] == 12 * len(dying)
    assert c["train"]["subjects"] + c["test"]["subjects"] == 20 and c["test"]["positive_subjects"] == 2
    assert set(report["metrics"]) == {"logistic", "xgboost", "news2", "logistic_minus_news2", "xgboost_minus_news2"}


@needs_iii
def test_the_report_on_the_demo_has_plausible_counts() -> None:
    report = run(MIMIC3, seed=13, rounds=50)
    c = report["counts"]
    assert c["all"] == {"samples": 6146, "positive_samples": 228, "stays": 133, "subjects": 97,
                        "positive_stays": 30, "positive_subjects": 30}
    for key in ("samples", "positive_samples", "stays", "subjects"):
        assert c["train"][key] + c["test"][key] == c["all"][key], key
    assert 25 <= c["test"]["subjects"] <= 35 and c["test"]["positive_subjects"] == 9
    assert 0.01 < c["all"]["positive_samples"] / c["all"]["samples"] < 0.1
    for name in ("logistic", "xgboost", "news2"):
        m = report["metrics"][name]
        assert 0.5 < m["auroc"] < 1 and m["auroc_ci"][0] < m["auroc_ci"][1] and 0 < m["auprc"] < 1, name
    assert report["settings"]["features"][-2:] == list(NEWS2_FEATURES)
