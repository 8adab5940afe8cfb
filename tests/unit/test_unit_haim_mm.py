"""The HAIM-MIMIC-MM loader (models/haim/haim_mm.py): the restricted unpickler, the published layout (a synthetic
miniature, and one file written under HAIM's own Python 3.6 / pandas 1.1.5), exact drop counts, and nothing
recorded after the prediction time reaching a feature."""

from __future__ import annotations

import base64
import os
import pickle
import pickletools
import sys
import warnings
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pd = pytest.importorskip("pandas", reason="the [learn] extra is not installed")

from cardiogate.models.haim import haim_mm as hm  # noqa: E402

HOURS = 24.0
STATIC = ("admissions", "demographics", "core", "icustays")
IDS = ("subject_id", "hadm_id", "stay_id")
KEPT = (*IDS, "StudyDate", "StudyTime")
"""Not scrambled: the ids, and the chest X-rays' numeric times (changing when a row happened is not the point)."""

# A Patient_ICU pickled by MIMIC_IV_HAIM_API.Patient_ICU under Python 3.6.15, pandas 1.1.5, numpy 1.19.5
# (HAIM's 0-requirements.txt), protocol 4, with the dtypes HAIM's load_mimiciv leaves (float ids,
# datetime64 times, object text, cxr StudyTimeForm as datetime.time, an Int64Index on a filtered frame).
# Stay 39553978, ICU admission 2180-07-23 14:00; three heart rates (one stored after 24 h), a lactate drawn
# before 24 h but resulted after, two chest X-rays (one after 24 h) with two 4x4 images, one radiology note.
# zlib + base64 of the file's bytes.
PUBLISHED_ENV_PICKLE = (
    "eNrNWl9wG0cZl3Snv05cO22IoTTVlA51x1ixg+O4DExt5ISoQo4xOH5oPerqbq29i3Qn7vZSuxBoYeLazDHTTJZhaF4KKeWF4YW2D2QonoG+QEnS"
    "aRmYoQ8UHoAZHujwxgt8eyfJJ1l3lt0BSw+3e7f37X777ff7vt/e6hnxOx99MOT87MFCrpDLFnMXiudmcoXizHyO2X3ziCpYo8VcdpFdYw8/yy6z"
    "YTuF5KpimoqumcwerCFNRmZG0g2cWTFQFTM7OYsoOuvUm0JisVo2mH3c+7qiUWxoqGJmqkhDZWxAf4c+W9GliwX33hUfXgb5oVZBGa9iM1NCJgyX"
    "Kmr4qWKOPwMBMmhHG3VnYBmUYfZRzarW1lzxqlWhCjIMtAbjFQ0swUyoYUkUROyo8yKz4zCc88o1lg9dYdlwiT3HFthwPpxPXWHkXjsq07Uan6Ed"
    "OT/FNjfcVsEOf5XNzc099h/4OZf8o5SVNvkcUqZVUrFEi4oM/RMwo1NLcntSqjimkxVTIo06RrRe72/avOiMaicVzbQMpEm8sYoMhaJK0aSIWmDE"
    "I04vyCjjIlgT1lDXmH0P0c2a8xperSkGLq5UUJlhUM4WNb5Wc9Y6TIHcbd/bydZgFmwoEpg7p9HJCY+JyTHyEXIfNxK5v2GiMNw8aEeUFsN8us0w"
    "IW6YbCLuemCIwS2ZdLXAYK+dvQr58LrT74qnXzLbqdch3uM7R6QZKF4s3vzKjDvGPx91RvHvubDds7ijZ5hsNgJezyeYD1O2zupjbdwuX/za5BOh"
    "jet/SY2ebpadxxKdsR5yXCJxZil9pnBmIcPsRAHLioQc31jKzZ5fOjPLbHE2BwVfJMcid5OjPgYXrtS7JCPkE2QCe2zZldQoyZATXUqJTakxMk5O"
    "kk965fBlZsfGMuMTmXEXfwi8h5EBO1biyDYZyPHnsUuoYvGWgp2A0MAdFW46apitLyf/hetl0uM0FtfzebJErtqJkqUAuHlkipoVReL4zEfy0XyY"
    "d1h/EZOr5Do8S9afYst0UMChxWEHAaMRyYpVTJETQZahR0QpxKjLzCrZh2Rc1csGqhGF651wwxzpI/31iNWV/UbsWBkDkiAypgDLRDeKEPeYLci6"
    "zFpXw/5wJ1RCBODvpxZ46cXk5BwYgCKDQvSyRZPqNfBaXsG8EoCxiOOdX9jMDngQBL/Hpjt7c8TjzeGzoMrJ8amx0bHToydPdeO3EY/fvtKl/23L"
    "/JS82uZ75FtcyCY/Jt92HQ3W+w1nvUMAvIjHC37jPA2DH0Q8XkB+QG6Ql8gPycvOMicpWNhc4alpb2scquvY3Yw6vA12W2bb8/kXn08nDUXuDwer"
    "nDoIqPTT77CsoLKmm9gsKpJ8wIqeCFA0IRtlSZfxAa+0WgjQUcSQ6g9Yv4sB+vVx/YoyxEylcsBqbgapSaSaZOJLQG0PerV/FKBmsoJK+1Iy4SUD"
    "dpJTwQa/hExgYLceUyiucroR5eNUoHRSMjARpwTC15aCyE03s5Cf50Pk9XyY/CIwk4iNTJLuxMVevP236RXnNxCYWR7nmSj9oanlW8Cvnnzue39/"
    "Z/KJ3TNR/PNIAjLMUyknIl0kItFrM/UWLIv6Flz2mpLUN7nkb/cjeZtL3mmT3E5p6ht1V3GzmvpHfnu180SydaN7GZNYL+M7mJP6ntvVdTCh6GVK"
    "6l8bDdF8vIUstXnqkaoiGXpJ0St6ea0ncHV/xB9XQk0/6Iz5mQD1UqBeb8TQxwO0PFwzsCkZSo06HwIOVtG1AEX7a4YuYdkyeoKBfDdA04SJjUuw"
    "Zzloa74aoONdTWv2BMzfDlD1kG7RmkV7Qs/3A/TsU7ReUfMuIcA7FQkeo7UPRkbivAvns1f/imKYtCghA1uaQpl9uIJa7mOK5hKVOCykWxMquvk/"
    "JCV3lt/9xsy5956+5yefC+9OSra+/vv+b07u8rHHS0oecL/wVNI5jWLNVC7hdBZmm16E6aaHC7ns4sNMXRBcArAnujIBQuojwj5Ix2kuObUfyVNc"
    "clLwpSujQgtdyQp7oysRf7qSE3awErfhfKNBaH7x6UhX+mWghtyjegJ06wGg63O4+77UTO70kCY3dfltk3B2YrqtsBJ2gVU0L7iwWvV+NWorGzBr"
    "Lx3YdShD5N1UxzK0dWHaLZfc8hnkC1fBhetY6MmpxOI6wHU++tqxt7b3EqE74Zt/4s+3bpEb/PnQP4wTv/PfYwhNOKfOYVib9ALfZqi/5PblFzvy"
    "yDiDyymIVuMTY91sPaI7V6oX9x8vtQL6FR9AR11AD/sBOlovEzuB/bOd+HUbthoNsXwiCNiCtGrsFyZ2AoKz7hzJkBHgYtSS3UR16IKCn5rXTcU9"
    "R0l+kbfMOptLt/4lJzcdbj4/qxvVxj1vc+6dhQnEWGQXjMFaNVJPqDw6tQi+Gnrt9TdvTPqeM0RcTE53wOIfjqY2vOXYl39NeTldL0OVTcEpt2h4"
    "xu/MJLL95RcxO1wCv5+Zh8v8DANr1mMss0WnuMaysYHQaPz7aXYFelA/DhvSbKz/uOMD/AnuOIp31u9PXd+EWQ+MPHv2bXfWuyArXF9cNQaDob2e"
    "boyoERBTRX6Jil0jqnmoooa5pMAv8e7Fmzpzh0GdofjvVigOik14tCbEY2Jw0m3HptiGUQ827/Ppqv2ARvDP22MNNRNtRy9tKI4qVY5jH/4mugd1"
    "1rjnCHC40xHgQLzt5wcT6FF9GnQDkWTbz/ExO6XptDe4wobozxXissn1PGgVXw5QMYGlci/o+KsAHZNYInovKPnnIEMaSN6PjvEdVMNO8n7cfxVs"
    "kweI2XiVfrCtltDYag35bbV23WI1Iv506YWHnu/mu29kYYHZH5vXDYpKFZyemU9LBJv0U2lNT9c0bFV1SnQDrWb2fKbuGOv/yMbiEIPVRNSXjfEY"
    "7UkBR6L12BridvekgKFGgwjZwdtwPNokW8m84BuNrVLmv6Ae2Bg="
)


def _published_env_pickle() -> bytes:
    return zlib.decompress(base64.b64decode("".join(PUBLISHED_ENV_PICKLE)))


@pytest.fixture(scope="module")
def mini(tmp_path_factory: pytest.TempPathFactory) -> hm.Miniature:
    return hm.write_synthetic_miniature(tmp_path_factory.mktemp("haim") / "haim_mimiciv", patients=4, seed=3,
                                        prediction_hours=HOURS)


@pytest.fixture(scope="module")
def cohort(mini: hm.Miniature) -> hm.HaimCohort:
    return hm.load_haim_mm(mini.folder, prediction_hours=HOURS)


def _copy(mini: hm.Miniature, folder: Path) -> Path:
    (folder / "pickle").mkdir(parents=True)
    for f in mini.files:
        (folder / "pickle" / f.name).write_bytes(f.read_bytes())
    return folder


def _everything(cohort: hm.HaimCohort) -> tuple[list[str], np.ndarray, list[str], list[list[bytes]]]:
    ids = [s.stay_id for s in cohort.samples]
    names, x = hm.features(cohort, ids)
    images = [[a.tobytes() for a in cohort.images[i]] for i in ids]
    return names, x, hm.notes_text(cohort, ids), images


def _rewrite(folder: Path, edit: Callable[[dict[str, object], pd.Timestamp], None]) -> None:
    """Read every pickle of ``folder``, let ``edit`` change its fields, write it back the published way."""
    for file in sorted((folder / "pickle").glob("*.pkl")):
        fields = hm.read_patient_pickle(file).fields
        icu = fields["icustays"]
        assert isinstance(icu, pd.DataFrame)
        edit(fields, pd.Timestamp(icu["intime"].iloc[0]) + pd.Timedelta(hours=HOURS))
        hm.write_patient_pickle(file, fields)


def _later(frame: pd.DataFrame, at: pd.Timestamp) -> pd.Series:
    """Rows with any time after ``at``: worked out here from the dtypes, not with the loader's rules."""
    times = [c for c in frame.columns if pd.api.types.is_datetime64_any_dtype(frame[c])]
    return frame[times].gt(at).any(axis=1) if times else pd.Series(False, index=frame.index)


def _scramble(values: pd.Series) -> pd.Series:
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return values * 3 + 7
    return values.map(lambda v: f"LEAK {v}" if isinstance(v, str) else v)


def _scramble_after(fields: dict[str, object], at: pd.Timestamp) -> None:
    """Every event row with a time after ``at`` gets other values (ids and times kept), its image other pixels;
    the future columns of the per-stay tables (discharge, death, ICU out, LOS) change too."""
    for name, frame in fields.items():
        if not isinstance(frame, pd.DataFrame) or frame.empty:
            continue
        frame = frame.copy()
        if name in STATIC:
            for c in set(hm.FUTURE_COLUMNS) & set(frame.columns):
                moved = frame[c] + pd.Timedelta(days=9) if pd.api.types.is_datetime64_any_dtype(frame[c]) else None
                frame[c] = _scramble(frame[c]) if moved is None else moved
        else:
            later = _later(frame, at).to_numpy()
            for c in frame.columns:
                if c not in KEPT and not pd.api.types.is_datetime64_any_dtype(frame[c]):
                    frame.loc[later, c] = _scramble(frame.loc[later, c])
            if name == "cxr":
                images = fields["imcxr"]
                assert isinstance(images, list)
                fields["imcxr"] = [a + 100 if k and len(images) == len(later) else a for a, k in zip(images, later,
                                                                                                     strict=False)]
        fields[name] = frame


def test_every_published_field_has_exactly_one_rule() -> None:
    groups = [set(hm.EVENT_TABLES), set(hm.NEVER_FEATURES), set(hm.STATIC_TABLES), {"imcxr"}]
    assert sum(len(g) for g in groups) == len(hm.PATIENT_ICU_FIELDS) == 29
    assert set().union(*groups) == set(hm.PATIENT_ICU_FIELDS)
    keep = {c for spec in hm.EVENT_TABLES.values() for c in spec.keep}
    keep |= {c for cols in hm.STATIC_COLUMNS.values() for c in cols}
    assert keep.isdisjoint(hm.FUTURE_COLUMNS)


def test_the_miniature_round_trips_in_the_published_layout(mini: hm.Miniature, cohort: hm.HaimCohort) -> None:
    names = [f.name for f in mini.files]
    assert names == [f"{i:08d}.pkl" for i in range(5)]  # 4 patients, the third with two ICU stays
    keys = pd.read_csv(mini.folder / "pickle" / hm.KEY_IDS_FILE)
    assert list(keys.columns) == list(IDS)
    data = mini.files[0].read_bytes()
    strings = [arg for _op, arg, _pos in pickletools.genops(data) if isinstance(arg, str)]
    assert data[1] == 4 and strings[:2] == ["MIMIC_IV_HAIM_API", "Patient_ICU"]  # protocol 4, HAIM's class
    record = hm.read_patient_pickle(mini.files[0])
    assert list(record.fields) == list(hm.PATIENT_ICU_FIELDS)
    assert record.fields["chartevents"]["charttime"].dtype.kind == "M"  # type: ignore[index]
    assert [(s.subject_id, s.hadm_id, s.stay_id) for s in cohort.samples] == [tuple(r) for r in keys.to_numpy()]
    assert [s.haim_id for s in cohort.samples] == list(range(5))
    assert cohort.counts["stays"] == 5 and cohort.counts["patients"] == 4
    died = [s.labels.died_in_hospital for s in cohort.samples]
    assert died == [False, True, False, False, True]
    # the second patient dies in the ICU at 18 h: loaded, counted, not eligible
    assert [s.eligible for s in cohort.samples] == [True, False, True, True, True]
    assert cohort.counts["died_before_prediction"] == cohort.counts["left_icu_before_prediction"] == 1
    for s in cohort.samples:
        assert s.prediction_time == pd.Timestamp(s.intime) + pd.Timedelta(hours=HOURS)
        assert s.labels.icu_los_hours is not None and s.labels.hours_to_discharge is not None
    assert [len(cohort.images[s.stay_id]) for s in cohort.samples] == [2, 0, 2, 2, 0]  # odd patients: no pixels


def test_the_drop_counts_are_exact(mini: hm.Miniature, cohort: hm.HaimCohort) -> None:
    assert mini.expected_counts["chartevents_rows_dropped_after_prediction"] > 0
    assert mini.expected_counts["labevents_rows_dropped_untimed"] == 5
    assert {k: cohort.counts.get(k, 0) for k in mini.expected_counts} == mini.expected_counts
    for table, frame in cohort.events.items():
        limits = frame["stay_id"].map({s.stay_id: s.prediction_time for s in cohort.samples})
        assert (frame[hm.KNOWN] <= limits).all(), table


def test_exact_counts_on_a_hand_built_stay(tmp_path: Path) -> None:
    t0 = pd.Timestamp("2150-01-01 08:00")
    at = t0 + pd.Timedelta(hours=HOURS)
    minute = pd.Timedelta(minutes=1)
    ids = {"subject_id": 1.0, "hadm_id": 2.0}
    chart = pd.DataFrame({
        **{k: [v] * 5 for k, v in ids.items()}, "stay_id": [3.0, 3.0, 3.0, 3.0, 4.0],
        "charttime": [t0 + 60 * minute, at - 5 * minute, at - minute, pd.NaT, t0 + 60 * minute],
        "storetime": [t0 + 70 * minute, at, at + minute, pd.NaT, t0 + 70 * minute],
        "itemid": [220045.0] * 5, "valuenum": [80.0, 90.0, 150.0, 160.0, 170.0]})
    micro = pd.DataFrame({**ids, "chartdate": [at.normalize(), at.normalize() - pd.Timedelta(days=1)],
                          "test_name": ["blood culture", "urine culture"]})
    fields: dict[str, object] = {
        "admissions": pd.DataFrame({**ids, "admittime": [t0], "dischtime": [t0 + 90 * 60 * minute],
                                    "hospital_expire_flag": [0]}),
        "icustays": pd.DataFrame({**ids, "stay_id": [3.0], "intime": [t0], "outtime": [t0 + 48 * 60 * minute]}),
        "chartevents": chart, "microbiologyevents": micro,
        "diagnoses_icd": pd.DataFrame({**{k: [v] * 3 for k, v in ids.items()}, "icd_code": ["A", "B", "C"]})}
    hm.write_patient_pickle(tmp_path / "pickle" / "00000000.pkl", fields)
    cohort = hm.load_haim_mm(tmp_path, prediction_hours=HOURS)
    c = cohort.counts
    assert (c["chartevents_rows_dropped_after_prediction"], c["chartevents_rows_dropped_untimed"],
            c["chartevents_rows_of_other_stays"]) == (1, 1, 1)
    assert cohort.events["chartevents"]["valuenum"].tolist() == [80.0, 90.0]  # known exactly at 24 h: kept
    assert c["microbiologyevents_rows_dropped_after_prediction"] == 1  # a date counts from the end of its day
    assert cohort.events["microbiologyevents"]["test_name"].tolist() == ["urine culture"]
    assert c["diagnoses_icd_rows_never_features"] == 3
    names, x = hm.time_series(cohort, [3])
    got = dict(zip(names, x[0], strict=True))
    assert (got["chart_hr_n"], got["chart_hr_mean"], got["chart_hr_last"], got["chart_hr_std"]) == (2, 85, 90, 5)
    assert got["chart_spo2_n"] == 0 and np.isnan(got["chart_spo2_mean"])
    with warnings.catch_warnings():  # a stay with no demographics, notes or images, and an unknown id
        warnings.simplefilter("error")
        names, x = hm.features(cohort, [3, 99])
    assert x.shape == (2, len(names)) and np.isnan(x[1, names.index("demo:anchor_age")])


def test_rows_recorded_after_the_prediction_time_never_move_a_feature(mini: hm.Miniature, tmp_path: Path) -> None:
    before = _everything(hm.load_haim_mm(_copy(mini, tmp_path / "base"), prediction_hours=HOURS))
    scrambled = _copy(mini, tmp_path / "after")
    _rewrite(scrambled, _scramble_after)
    after_cohort = hm.load_haim_mm(scrambled, prediction_hours=HOURS)
    after = _everything(after_cohort)
    assert after[0] == before[0]
    np.testing.assert_array_equal(after[1], before[1])
    assert after[2:] == before[2:]
    assert after_cohort.samples[0].labels != hm.load_haim_mm(mini.folder).samples[0].labels  # the future did change

    def one_earlier_heart_rate(fields: dict[str, object], at: pd.Timestamp) -> None:
        chart = fields["chartevents"]
        assert isinstance(chart, pd.DataFrame)
        first = chart.index[(chart["itemid"] == 220045) & (chart["storetime"] < at)][0]
        chart.loc[first, "valuenum"] += 1.0

    moved = _copy(mini, tmp_path / "before")
    _rewrite(moved, one_earlier_heart_rate)
    names, x, _, _ = _everything(hm.load_haim_mm(moved, prediction_hours=HOURS))
    changed = {n for n, a, b in zip(names, x.T, before[1].T, strict=True) if not np.array_equal(a, b, equal_nan=True)}
    assert "ts:chart_hr_mean" in changed and changed <= {f"ts:chart_hr_{s}" for s in hm.STATS}


def test_labels_and_future_columns_are_never_features(cohort: hm.HaimCohort) -> None:
    names, x = hm.features(cohort, [s.stay_id for s in cohort.samples])
    assert x.shape == (5, len(names)) and len(set(names)) == len(names)
    words = {w for n in names for w in n.replace(":", "_").replace("=", "_").lower().split("_")}
    label_words = {"los", "dod", "died", "death", "deathtime", "dischtime", "outtime", "expire", "discharge",
                   "hospital_expire_flag", "discharge_location", "last_careunit", "eligible"}
    assert words.isdisjoint(label_words)
    tables = [cohort.static, *cohort.events.values()]
    assert all(set(t.columns).isdisjoint(hm.FUTURE_COLUMNS) for t in tables)
    assert set(cohort.events).isdisjoint(hm.NEVER_FEATURES)


def test_a_pickle_that_runs_code_is_refused_and_nothing_runs(mini: hm.Miniature, tmp_path: Path) -> None:
    marker = tmp_path / "ran"

    class Exploit:
        def __reduce__(self) -> tuple[Any, ...]:
            return os.system, (f"touch {marker}",)

    folder = _copy(mini, tmp_path / "mini")
    bad = folder / "pickle" / "00000002.pkl"
    bad.write_bytes(pickle.dumps({"admissions": Exploit()}, protocol=4))
    with pytest.raises(hm.RefusedPickleError, match=r"00000002\.pkl: refused (posix|nt)\.system"):
        hm.read_patient_pickle(bad)
    with pytest.raises(hm.RefusedPickleError):
        hm.load_haim_mm(folder, skip_unreadable=True)  # never skipped: it may be an attack, not damage
    assert not marker.exists()
    for module, name in (("builtins", "eval"), ("pandas.io.pickle", "read_pickle"), ("numpy", "load")):
        with pytest.raises(hm.RefusedPickleError, match=f"{module}.{name}"):
            hm.allowed_global(module, name)


def test_an_unreadable_pickle_fails_by_default_and_is_counted_when_skipped(mini: hm.Miniature,
                                                                           tmp_path: Path) -> None:
    folder = _copy(mini, tmp_path / "mini")
    broken = folder / "pickle" / "00000001.pkl"
    broken.write_bytes(broken.read_bytes()[: len(broken.read_bytes()) // 2])
    with pytest.raises(hm.HaimPickleError, match=r"00000001\.pkl: not a readable") as failure:
        hm.load_haim_mm(folder)
    assert isinstance(failure.value, ValueError)
    cohort = hm.load_haim_mm(folder, skip_unreadable=True)
    assert cohort.counts["unreadable_files"] == 1 and cohort.unreadable == [str(broken)]
    assert cohort.counts["stays"] == 4 and 30_001_000 not in {s.stay_id for s in cohort.samples}
    broken.write_bytes(pickle.dumps({"not": "a Patient_ICU"}))
    with pytest.raises(hm.HaimPickleError, match="holds a dict"):
        hm.read_patient_pickle(broken)


def test_patient_icu_pickled_from_main_reads_as_plain_data(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cls = type("Patient_ICU", (), {"__module__": "__main__"})
    monkeypatch.setattr(sys.modules["__main__"], "Patient_ICU", cls, raising=False)
    obj = cls()
    obj.__dict__.update(admissions=pd.DataFrame({"hadm_id": [1.0]}))
    data = pickle.dumps(obj, protocol=4)
    assert b"__main__" in data
    (tmp_path / "00000000.pkl").write_bytes(data)
    record = hm.read_patient_pickle(tmp_path / "00000000.pkl")
    assert type(record) is hm.HaimPatientRecord and list(record.fields) == ["admissions"]


def test_pandas_default_dtypes_round_trip(tmp_path: Path) -> None:
    """Frames as the installed pandas makes them (pyarrow-backed strings under pandas 3) load through the allowlist."""
    frame = pd.DataFrame({"text": ["a", None], "when": pd.to_datetime(["2150-01-01", None]),
                          "cat": pd.Categorical(["x", "y"]), "n": pd.array([1, None], dtype="Int64"),
                          "utc": pd.to_datetime(["2150-01-01", "2150-01-02"]).tz_localize("UTC")})
    path = hm.write_patient_pickle(tmp_path / "00000000.pkl", {"noteevents": frame, "imcxr": [np.eye(2)]})
    fields = hm.read_patient_pickle(path).fields
    pd.testing.assert_frame_equal(fields["noteevents"], frame)  # type: ignore[arg-type]


def test_a_file_written_under_haims_own_pandas_loads(tmp_path: Path) -> None:
    nested = tmp_path / "pickle" / "folder00" / "00000000.pkl"  # the embedding script's layout
    nested.parent.mkdir(parents=True)
    nested.write_bytes(_published_env_pickle())
    cohort = hm.load_haim_mm(tmp_path, prediction_hours=HOURS)
    (stay,) = cohort.samples
    assert (stay.subject_id, stay.hadm_id, stay.stay_id) == (10000032, 29079034, 39553978)
    assert stay.prediction_time == pd.Timestamp("2180-07-24 14:00") and stay.eligible
    assert stay.labels.died_in_hospital is True and stay.labels.hours_to_discharge == pytest.approx(27 + 55 / 60)
    assert cohort.counts["chartevents_rows_dropped_after_prediction"] == 1
    assert cohort.counts["labevents_rows_dropped_after_prediction"] == 1  # drawn before 24 h, resulted after
    assert cohort.counts["cxr_rows_dropped_after_prediction"] == 1
    assert cohort.events["cxr"][hm.KNOWN].tolist() == [pd.Timestamp("2180-07-23 16:00:45.5")]  # not floored
    assert [a.tolist() for a in cohort.images[stay.stay_id]] == [[[7] * 4] * 4]
    names, x = hm.features(cohort, [stay.stay_id])
    got = dict(zip(names, x[0], strict=True))
    assert (got["ts:chart_hr_n"], got["ts:chart_hr_mean"], got["ts:chart_hr_last"]) == (2, 93, 95)
    assert got["ts:lab_lactate_n"] == 0 and got["demo:anchor_age"] == 52 and got["demo:unit=MICU"] == 1
    assert hm.notes_text(cohort, [stay.stay_id]) == ["[radnotes] Portable AP chest: no pneumothorax."]


def test_anchor_at_hospital_admission(mini: hm.Miniature) -> None:
    cohort = hm.load_haim_mm(mini.folder, prediction_hours=48.0, anchor="admittime")
    admitted = cohort.static["admittime"]
    for s in cohort.samples:
        assert s.prediction_time == admitted[s.stay_id] + pd.Timedelta(hours=48)


def test_cxr_study_time_is_exact() -> None:
    frame = pd.DataFrame({"StudyDate": [21800723.0, None], "StudyTime": [160045.5, 93000.0]})
    got = hm.cxr_study_time(frame)
    assert got.iloc[0] == pd.Timestamp("2180-07-23 16:00:45.5") and pd.isna(got.iloc[1])


def test_no_pickle_no_cohort(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no HAIM-MIMIC-MM pickles"):
        hm.load_haim_mm(tmp_path)
