"""The MIMIC-III / MIMIC-IV demo loaders: cohort counts, the prediction-time cut (rows after it never move
the features, rows before it do), labels kept out of the features, and clear errors for wrong folders."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO

pd = pytest.importorskip("pandas", reason="pandas (the [learn] extra) is not installed")

from cardiogate.models.haim.mimic import (  # noqa: E402
    CHART_ITEMS,
    FAHRENHEIT_ITEMS,
    ITEM,
    KNOWN_TIME,
    LAB_ITEMS,
    STATS,
    STAY,
    MimicCohort,
    MimicLayoutError,
    MimicStay,
    detect_layout,
    load_mimic_cohort,
    signal_values,
    vital_statistics,
)

DATA = Path(os.environ.get("CARDIOGATE_DATA_DIR", REPO.parent / "shared" / "data"))
MIMIC3 = DATA / "mimic-iii-demo"
MIMIC4 = DATA / "mimic-iv-demo"
needs_iii = pytest.mark.skipif(not (MIMIC3 / "csv" / "icustays.csv.gz").is_file(),
                               reason=f"the MIMIC-III demo is not in {MIMIC3} (set CARDIOGATE_DATA_DIR)")
needs_iv = pytest.mark.skipif(not (MIMIC4 / "icu" / "icustays.csv.gz").is_file(),
                              reason=f"the MIMIC-IV demo is not in {MIMIC4} (set CARDIOGATE_DATA_DIR)")
LABEL_WORDS = ("expire", "death", "died", "disch", "outtime", "los", "dod", "prolonged", "mortality")


def _time(text: pd.Series) -> pd.Series:
    return pd.to_datetime(text, errors="coerce", utc=True, format="ISO8601").dt.tz_localize(None)


def _text(stamps: pd.Series) -> pd.Series:
    return stamps.dt.strftime("%Y-%m-%d %H:%M:%S")


@pytest.fixture(scope="module")
def cohort3() -> MimicCohort:
    return load_mimic_cohort(MIMIC3)


@pytest.fixture(scope="module")
def cohort4() -> MimicCohort:
    return load_mimic_cohort(MIMIC4)


def _counts_add_up(cohort: MimicCohort) -> None:
    c = cohort.counts
    assert c["stays"] == len(cohort.samples) == c["eligible"] + c["excluded_left_unit_before_prediction"] + c[
        "excluded_no_hospital_outcome"]
    for t, kept in cohort.events.items():
        linked = c[f"{t}_rows_read"] - c[f"{t}_rows_other_items"] - c[f"{t}_rows_without_time"] - c[
            f"{t}_rows_without_stay"]
        assert linked > 0 and c[f"{t}_stay_rows"] >= linked, t
        assert c[f"{t}_stay_rows"] == (c[f"{t}_dropped_before_window"] + c[f"{t}_dropped_after_prediction"]
                                       + c[f"{t}_kept"]), t
        assert len(kept) == c[f"{t}_kept"] > 0 and c[f"{t}_dropped_after_prediction"] > 0, t
        limit = kept[STAY].map({s.stay_id: s.prediction_time for s in cohort.samples})
        assert bool((kept[KNOWN_TIME] <= limit).all()), f"{t}: a kept row is known after the prediction time"


@needs_iii
def test_the_mimic_iii_demo_loads(cohort3: MimicCohort) -> None:
    assert cohort3.version == "iii"
    assert len(cohort3.samples) == 136 and cohort3.counts["subjects"] == 100
    assert len({s.stay_id for s in cohort3.samples}) == 136
    assert set(cohort3.events) == {"chartevents", "labevents"}
    for s in cohort3.samples:
        assert (s.prediction_time - s.intime).total_seconds() == 24 * 3600
        assert s.prolonged_stay == (s.icu_los_days is not None and s.icu_los_days > 7)
    _counts_add_up(cohort3)
    assert 0 < cohort3.counts["eligible"] < 136
    assert cohort3.static["age"].between(15, 90).all()  # shifted ages (~300) are capped at 90
    assert cohort3.static["age"].max() == 90


@needs_iv
def test_the_mimic_iv_demo_loads(cohort4: MimicCohort) -> None:
    assert cohort4.version == "iv"
    assert len(cohort4.samples) == 140 and cohort4.counts["subjects"] == 100
    assert set(cohort4.events) == {"labevents", "omr"}  # the demo 2.2 has no icu/chartevents
    _counts_add_up(cohort4)
    names, matrix = vital_statistics(cohort4)
    assert "hr_mean" not in names and "creatinine_mean" in names and "omr_sbp_last" in names
    assert matrix.shape == (140, len(names))
    assert cohort4.static["age"].between(18, 90).all()


@needs_iii
@needs_iv
def test_layouts_are_detected() -> None:
    assert detect_layout(MIMIC3).version == "iii" and detect_layout(MIMIC3).root == MIMIC3 / "csv"
    assert detect_layout(MIMIC3 / "csv").root == MIMIC3 / "csv"
    assert detect_layout(MIMIC4) == detect_layout(MIMIC4, "iv")
    with pytest.raises(MimicLayoutError, match="MIMIC-III layout, not MIMIC-IV") as err:
        load_mimic_cohort(MIMIC3, version="iv")
    assert str(MIMIC3) in str(err.value)
    with pytest.raises(MimicLayoutError, match=str(MIMIC4)):
        load_mimic_cohort(MIMIC4, version="iii")


def test_a_missing_or_foreign_folder_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match="no such folder") as err:
        load_mimic_cohort(missing)
    assert isinstance(err.value, MimicLayoutError) and str(missing) in str(err.value)
    eicu = tmp_path / "eicu"
    eicu.mkdir()
    pd.DataFrame({"patientunitstayid": [1]}).to_csv(eicu / "patient.csv.gz", index=False)
    with pytest.raises(MimicLayoutError, match="neither a MIMIC-III folder") as err:
        load_mimic_cohort(eicu)
    assert str(eicu) in str(err.value)
    with pytest.raises(ValueError, match="version must be one of"):
        load_mimic_cohort(eicu, version="v")  # type: ignore[arg-type]
    bad = tmp_path / "bad"
    bad.mkdir()
    pd.DataFrame({"subject_id": [1]}).to_csv(bad / "ADMISSIONS.csv.gz", index=False)  # capitals are found
    pd.DataFrame({"subject_id": [1]}).to_csv(bad / "icustays.csv.gz", index=False)
    with pytest.raises(MimicLayoutError, match="lacks the columns") as err:
        load_mimic_cohort(bad)
    assert "icustays" in str(err.value)


@needs_iii
def test_the_item_ids_are_the_signals_in_the_dictionaries() -> None:
    items = pd.read_csv(MIMIC3 / "csv" / "d_items.csv.gz").set_index("itemid")
    words = {"hr": ("heart rate",), "spo2": ("spo2", "o2 saturation"), "sbp": ("systolic",),
             "dbp": ("diastolic",), "mbp": ("mean",), "rr": ("resp",), "temp_c": ("temperature",)}
    for item, signal in CHART_ITEMS.items():
        label = str(items.at[item, "label"]).lower()
        assert items.at[item, "linksto"] == "chartevents" and any(w in label for w in words[signal]), (item, label)
        assert (item in FAHRENHEIT_ITEMS) == ("temperature f" in label), label
    lab_words = {"lactate": "lactate", "creatinine": "creatinine", "potassium": "potassium",
                 "hemoglobin": "hemoglobin", "wbc": "w"}
    for folder in (MIMIC3 / "csv", MIMIC4 / "hosp"):
        if not (folder / "d_labitems.csv.gz").is_file():
            continue
        labs = pd.read_csv(folder / "d_labitems.csv.gz").set_index("itemid")
        for item, signal in LAB_ITEMS.items():
            label = str(labs.at[item, "label"]).lower()
            assert lab_words[signal] in label and str(labs.at[item, "fluid"]).lower() == "blood", (item, label)


def _stay(stay_id: int) -> MimicStay:
    intime = datetime(2150, 1, 1, 8)
    return MimicStay(stay_id, stay_id, stay_id, intime, datetime(2150, 1, 2, 8), 3.0, True, False, False)


def test_statistics_drop_implausible_values_and_convert_fahrenheit() -> None:
    t = pd.Timestamp("2150-01-01 09:00")
    rows = [(1, 220045, 90.0, 3), (1, 220045, 0.0, 0), (1, 220045, 80.0, 1), (1, 220045, 350.0, 2),
            (1, 220277, 101.0, 1), (1, 223761, 98.6, 1), (1, 220210, np.nan, 1)]
    chart = pd.DataFrame({STAY: [r[0] for r in rows], ITEM: [r[1] for r in rows], "value": [r[2] for r in rows],
                          "event_time": [t + pd.Timedelta(hours=r[3]) for r in rows]})
    chart[KNOWN_TIME] = chart["event_time"]
    cohort = MimicCohort("iii", [_stay(1), _stay(2)],
                         pd.DataFrame({"age": [70.0, 90.0], "sex_male": [1.0, 0.0]}, index=pd.Index([1, 2], name=STAY)),
                         {"chartevents": chart, "labevents": chart.iloc[:0]})
    names, x = vital_statistics(cohort)
    assert names[:len(STATS)] == [f"hr_{s}" for s in STATS] and names[-2:] == ["age", "sex_male"]
    one = dict(zip(names, x[0], strict=True))
    assert (one["hr_count"], one["hr_mean"], one["hr_min"], one["hr_max"], one["hr_std"], one["hr_last"]) == (
        2, 85, 80, 90, 5, 90)
    assert one["spo2_count"] == 0 and np.isnan(one["spo2_mean"])
    assert one["temp_c_mean"] == pytest.approx(37.0) and one["rr_count"] == 0
    assert one["creatinine_count"] == 0 and np.isnan(one["creatinine_last"])
    two = dict(zip(names, x[1], strict=True))
    assert two["hr_count"] == 0 and np.isnan(two["hr_mean"]) and two["age"] == 90
    _values, dropped = signal_values(cohort)
    assert dropped["hr_implausible"] == 2 and dropped["spo2_implausible"] == 1 and dropped["rr_missing_value"] == 1


# ------------------------------------------------------------------------------------------- the leak test


def _single_stay_subjects(icu: pd.DataFrame, stay: str, every: int) -> pd.DataFrame:
    """Stays still in the ICU at 24 h whose subject has no other stay: each row links to one stay only."""
    icu = icu.assign(pred=_time(icu["intime"]) + pd.Timedelta(hours=24))
    icu = icu[(_time(icu["outtime"]) > icu["pred"]) & ~icu["subject_id"].duplicated(keep=False)]
    return icu.sort_values(stay).iloc[::every]


def _write_subset(src: dict[str, Path], dst: Path, subjects: set[int]) -> None:
    for rel, path in src.items():
        frame = pd.read_csv(path, low_memory=False)
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        frame[frame["subject_id"].isin(subjects)].to_csv(dst / rel, index=False)


@pytest.fixture(scope="module")
def small3(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[int, pd.Timestamp]]:
    """A few MIMIC-III stays, every table cut to their subjects."""
    icu = _single_stay_subjects(pd.read_csv(MIMIC3 / "csv" / "icustays.csv.gz"), "icustay_id", 9)
    out = tmp_path_factory.mktemp("mimic3")
    names = ("admissions", "patients", "icustays", "chartevents", "labevents")
    _write_subset({f"{n}.csv.gz": MIMIC3 / "csv" / f"{n}.csv.gz" for n in names}, out, set(icu["subject_id"]))
    return out, dict(zip(icu["subject_id"], icu["pred"], strict=True))


@pytest.fixture(scope="module")
def small4(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[int, pd.Timestamp]]:
    """A few MIMIC-IV stays, every table cut to their subjects."""
    icu = _single_stay_subjects(pd.read_csv(MIMIC4 / "icu" / "icustays.csv.gz"), "stay_id", 6)
    out = tmp_path_factory.mktemp("mimic4")
    rels = ("hosp/admissions", "hosp/patients", "icu/icustays", "hosp/labevents", "hosp/omr")
    _write_subset({f"{r}.csv.gz": MIMIC4 / f"{r}.csv.gz" for r in rels}, out, set(icu["subject_id"]))
    return out, dict(zip(icu["subject_id"], icu["pred"], strict=True))


def _copy(src: Path, dst: Path) -> Path:
    for f in src.rglob("*.csv.gz"):
        (dst / f.relative_to(src)).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(f, dst / f.relative_to(src))
    return dst


def _rewrite(folder: Path, rel: str, frame: pd.DataFrame) -> None:
    (folder / rel).unlink()
    frame.to_csv(folder / rel, index=False)


def _after(frame: pd.DataFrame, pred: dict[int, pd.Timestamp], times: tuple[str, ...], day: bool = False) -> np.ndarray:
    """Rows known after their subject's prediction time (or never known: a time column is empty)."""
    known = pd.concat([_time(frame[c]) for c in times], axis=1).max(axis=1, skipna=False)
    known = known + pd.Timedelta(days=1) if day else known
    return (known.isna() | (known > frame["subject_id"].map(pred))).to_numpy()


def _perturb_after(folder: Path, rel: str, pred: dict[int, pd.Timestamp], times: tuple[str, ...],
                   change: Callable[[pd.DataFrame], pd.DataFrame], day: bool = False) -> int:
    """Change every row known after the prediction time, and add more such rows two days later."""
    frame = pd.read_csv(folder / rel, low_memory=False)
    after = _after(frame, pred, times, day)
    frame = pd.concat([frame[~after], change(frame[after])]).sort_index()
    added = frame[after].copy()
    for c in times:
        added[c] = _text(_time(added[c]) + pd.Timedelta(days=2))
    _rewrite(folder, rel, pd.concat([frame, added], ignore_index=True))
    return int(after.sum())


def _times_ten(frame: pd.DataFrame) -> pd.DataFrame:
    value = pd.to_numeric(frame["valuenum"], errors="coerce") * 10
    return frame.assign(valuenum=value, value=value.astype(str))


def _perturb_outcomes(folder: Path, rel: dict[str, str]) -> None:
    """The future of the stay: death, discharge and ICU exit, all rewritten."""
    adm = pd.read_csv(folder / rel["admissions"])
    adm["hospital_expire_flag"] = 1 - adm["hospital_expire_flag"]
    adm["deathtime"], adm["discharge_location"] = adm["dischtime"], "DEAD/EXPIRED"
    _rewrite(folder, rel["admissions"], adm)
    icu = pd.read_csv(folder / rel["icustays"])
    icu["outtime"] = _text(_time(icu["intime"]) + pd.Timedelta(days=20))
    icu["los"] = 20.0
    _rewrite(folder, rel["icustays"], icu)
    pat = pd.read_csv(folder / rel["patients"])
    pat["dod"] = icu["outtime"].iloc[0]
    _rewrite(folder, rel["patients"], pat)


def _features(folder: Path) -> tuple[list[str], np.ndarray, MimicCohort]:
    cohort = load_mimic_cohort(folder)
    names, matrix = vital_statistics(cohort)
    return names, matrix, cohort


@needs_iii
def test_mimic_iii_rows_after_the_prediction_time_never_move_the_features(
        tmp_path: Path, small3: tuple[Path, dict[int, pd.Timestamp]]) -> None:
    base, pred = small3
    names, x, cohort = _features(base)
    assert len(cohort.samples) >= 4 and (x[:, names.index("hr_count")] > 0).sum() >= 3
    folder = _copy(base, tmp_path / "after")
    changed = _perturb_after(folder, "chartevents.csv.gz", pred, ("charttime", "storetime"), _times_ten)
    changed += _perturb_after(folder, "labevents.csv.gz", pred, ("charttime",), _times_ten)
    # charted before the prediction time but stored after it; and one never stored: neither was known
    chart = pd.read_csv(folder / "chartevents.csv.gz", low_memory=False)
    late = chart[chart["itemid"].isin([211, 220045])].groupby("subject_id").head(1).copy()
    limit = late["subject_id"].map(pred)
    late["charttime"] = _text(limit - pd.Timedelta(minutes=30))
    late["storetime"] = _text(limit + pd.Timedelta(minutes=5))
    late["valuenum"] = 150.0
    never = late.assign(storetime=np.nan)
    _rewrite(folder, "chartevents.csv.gz", pd.concat([chart, late, never], ignore_index=True))
    _perturb_outcomes(folder, {"admissions": "admissions.csv.gz", "icustays": "icustays.csv.gz",
                               "patients": "patients.csv.gz"})
    assert changed > 1000
    names2, x2, moved = _features(folder)
    assert names2 == names
    np.testing.assert_array_equal(x2, x)
    assert moved.counts["chartevents_rows_without_time"] == len(never)
    assert [s.died_in_hospital for s in moved.samples] != [s.died_in_hospital for s in cohort.samples]
    assert all(s.prolonged_stay for s in moved.samples)


@needs_iii
def test_mimic_iii_a_row_before_the_prediction_time_does_move_them(
        tmp_path: Path, small3: tuple[Path, dict[int, pd.Timestamp]]) -> None:
    base, pred = small3
    names, x, _cohort = _features(base)
    folder = _copy(base, tmp_path / "before")
    chart = pd.read_csv(folder / "chartevents.csv.gz", low_memory=False)
    hr = chart["itemid"].isin([211, 220045]) & chart["valuenum"].between(30, 250)
    early = ~_after(chart, pred, ("charttime", "storetime")) & hr.to_numpy()
    chart.loc[early, "valuenum"] = chart.loc[early, "valuenum"] + 7
    _rewrite(folder, "chartevents.csv.gz", chart)
    _names, x2, _ = _features(folder)
    col = names.index("hr_mean")
    has_hr = x[:, names.index("hr_count")] > 0
    assert has_hr.sum() >= 3 and (x2[has_hr, col] > x[has_hr, col]).all()
    others = [i for i, n in enumerate(names) if not n.startswith("hr_")]
    np.testing.assert_array_equal(x2[:, others], x[:, others])


@needs_iv
def test_mimic_iv_rows_after_the_prediction_time_never_move_the_features(
        tmp_path: Path, small4: tuple[Path, dict[int, pd.Timestamp]]) -> None:
    base, pred = small4
    names, x, cohort = _features(base)
    assert len(cohort.samples) >= 4 and np.isfinite(x[:, names.index("creatinine_last")]).all()
    folder = _copy(base, tmp_path / "after")
    changed = _perturb_after(folder, "hosp/labevents.csv.gz", pred, ("charttime", "storetime"), _times_ten)

    def higher_bp(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.assign(result_value="180/110")

    changed += _perturb_after(folder, "hosp/omr.csv.gz", pred, ("chartdate",), higher_bp, day=True)
    _perturb_outcomes(folder, {"admissions": "hosp/admissions.csv.gz", "icustays": "icu/icustays.csv.gz",
                               "patients": "hosp/patients.csv.gz"})
    assert changed > 500
    names2, x2, moved = _features(folder)
    assert names2 == names
    np.testing.assert_array_equal(x2, x)
    assert [s.died_in_hospital for s in moved.samples] != [s.died_in_hospital for s in cohort.samples]


@needs_iv
def test_mimic_iv_a_row_before_the_prediction_time_does_move_them(
        tmp_path: Path, small4: tuple[Path, dict[int, pd.Timestamp]]) -> None:
    base, pred = small4
    names, x, _cohort = _features(base)
    folder = _copy(base, tmp_path / "before")
    lab = pd.read_csv(folder / "hosp/labevents.csv.gz", low_memory=False)
    early = ~_after(lab, pred, ("charttime", "storetime")) & (lab["itemid"] == 50912).to_numpy()
    lab.loc[early, "valuenum"] = lab.loc[early, "valuenum"] + 1
    _rewrite(folder, "hosp/labevents.csv.gz", lab)
    _names, x2, _ = _features(folder)
    col = names.index("creatinine_last")
    np.testing.assert_allclose(x2[:, col], x[:, col] + 1)


# ------------------------------------------------------------------------------------------- labels


@needs_iii
@needs_iv
def test_labels_are_the_expire_flag_and_never_features(cohort3: MimicCohort, cohort4: MimicCohort) -> None:
    for cohort, adm_path, icu_path in ((cohort3, MIMIC3 / "csv" / "admissions.csv.gz",
                                        MIMIC3 / "csv" / "icustays.csv.gz"),
                                       (cohort4, MIMIC4 / "hosp" / "admissions.csv.gz",
                                        MIMIC4 / "icu" / "icustays.csv.gz")):
        flag = pd.read_csv(adm_path).set_index("hadm_id")["hospital_expire_flag"]
        assert [s.died_in_hospital for s in cohort.samples] == [bool(flag[s.hadm_id]) for s in cohort.samples]
        icu = pd.read_csv(icu_path).set_index("icustay_id" if cohort.version == "iii" else "stay_id")
        for s in cohort.samples:
            assert s.icu_los_days == pytest.approx(float(icu.at[s.stay_id, "los"]), abs=1e-3)
        names, _x = vital_statistics(cohort)
        assert not [n for n in names if any(w in n.lower() for w in LABEL_WORDS)]
        assert set(cohort.static.columns) == {"age", "sex_male"}
        for frame in cohort.events.values():
            assert not [c for c in frame.columns if any(w in c.lower() for w in LABEL_WORDS)]
