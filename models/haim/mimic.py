"""MIMIC-III and MIMIC-IV clinical database demos -> one :class:`MimicStay` per ICU stay.

The eICU loader's rule, for MIMIC's absolute timestamps: the prediction time of every ICU stay is
``prediction_hours`` (24 h) after ICU ``intime``. A row of an event table is known at the latest
of its time columns (``charttime`` and, where the table has one, ``storetime``: a value charted at
23:50 but stored at 24:10 was not on the screen at 24:00); a row with a time column missing is
dropped (its known time is unknown, so it cannot be shown to precede the prediction), and every row
known after its stay's prediction time is dropped here, before any feature is computed. Each drop
is counted by reason. Date-only columns (``omr.chartdate``) are known at the end of their day.

Rows link to stays two ways: ICU tables (``chartevents``) by their stay id; hospital tables
(``labevents``, ``omr``) by ``subject_id``, from hospital arrival (the earliest of ``admittime``,
``edregtime`` and ``intime``; for ``omr``, outpatient measurements, from a year before it) up to
the prediction time. So a lab drawn in the emergency department (no ``hadm_id`` in MIMIC-IV) counts,
and a subject with two stays gives each its own copy of a row (counts are per (row, stay) pair).

Labels, kept in the sample and never in the features: in-hospital mortality
(``admissions.hospital_expire_flag``) and prolonged ICU stay (``outtime - intime`` > 7 days). The
columns that describe the future (``dischtime``, ``deathtime``, ``discharge_location``,
``hospital_expire_flag``, ``outtime``, ``los``, ``dod``, ``expire_flag``) are never read into
:attr:`MimicCohort.static` or :attr:`MimicCohort.events`. ``diagnoses_icd`` is not loaded at all:
its codes are assigned for billing after discharge, so none of them is known at 24 h.

A 24-h prediction is only meaningful for a patient still in the ICU at 24 h: stays that left
earlier are loaded but not ``eligible``.

Only the items the features use are loaded (:data:`CHART_ITEMS`, :data:`LAB_ITEMS`,
:data:`OMR_ITEMS`), filtered chunk by chunk, so the full databases' event tables fit in memory too.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal, get_args

import numpy as np
import pandas as pd

from cardiogate.core.artifacts import sha256_file

Version = Literal["iii", "iv"]
PREDICTION_HOURS = 24.0
"""Prediction time: hours after ICU admission (``intime``)."""
PROLONGED_STAY_DAYS = 7.0
"""Prolonged stay: ICU length of stay above 7 days."""
AGE_CAP = 90
"""Ages above 89 are shifted (MIMIC-III: to about 300 years; MIMIC-IV: to 91): reported as 90."""
OMR_LOOKBACK_DAYS = 365.0
"""``omr`` holds outpatient measurements: those of the year before hospital arrival count."""
CHUNK_ROWS = 500_000
"""Event tables are read this many rows at a time and filtered to the items used."""

STAY = "stay_id"
SUBJECT = "subject_id"
ITEM = "item"
VALUE = "value"
EVENT_TIME = "event_time"
"""When the measurement was made (``charttime``; ``chartdate`` at midnight)."""
KNOWN_TIME = "known_time"
"""When the row became known: the latest of its time columns (a date's end of day)."""
SIGNAL = "signal"

# chartevents itemids, CareVue (< 220000) and MetaVision (>= 220000), looked up in MIMIC-III's d_items
# (MIMIC-IV's icu/chartevents uses the MetaVision ones); invasive and non-invasive BP are one signal.
CHART_ITEMS: dict[int, str] = {
    211: "hr", 220045: "hr",  # Heart Rate
    646: "spo2", 220277: "spo2",  # SpO2 / O2 saturation pulseoxymetry
    51: "sbp", 442: "sbp", 455: "sbp", 6701: "sbp", 220050: "sbp", 220179: "sbp",  # arterial, manual, NBP
    8368: "dbp", 8440: "dbp", 8441: "dbp", 8555: "dbp", 220051: "dbp", 220180: "dbp",
    52: "mbp", 443: "mbp", 456: "mbp", 6702: "mbp", 220052: "mbp", 220181: "mbp", 225312: "mbp",
    615: "rr", 618: "rr", 220210: "rr", 224690: "rr",  # Resp Rate (Total) / Respiratory Rate
    676: "temp_c", 223762: "temp_c", 678: "temp_c", 223761: "temp_c",  # Temperature C / F
}
FAHRENHEIT_ITEMS = frozenset({678, 223761})
"""Temperature items charted in Fahrenheit, converted to Celsius."""
# labevents itemids (the same in MIMIC-III and MIMIC-IV d_labitems); blood-gas analysers beside the lab's
LAB_ITEMS: dict[int, str] = {
    50813: "lactate",
    50912: "creatinine",
    50971: "potassium", 50822: "potassium",  # Potassium / Potassium, Whole Blood
    51222: "hemoglobin", 50811: "hemoglobin",  # Hematology / Blood Gas
    51301: "wbc", 51300: "wbc",  # White Blood Cells / WBC Count
}
OMR_ITEMS = ("Blood Pressure", "Blood Pressure Sitting", "Blood Pressure Lying", "Blood Pressure Standing",
             "Blood Pressure Standing (1 min)", "Blood Pressure Standing (3 mins)")
"""MIMIC-IV ``omr.result_name`` values read; ``result_value`` is "systolic/diastolic"."""

# signal -> (the event table it comes from, the plausible range: lower bound excluded, upper included)
SIGNALS: dict[str, tuple[str, tuple[float, float]]] = {
    "hr": ("chartevents", (0.0, 300.0)),
    "spo2": ("chartevents", (0.0, 100.0)),
    "sbp": ("chartevents", (0.0, 400.0)),
    "dbp": ("chartevents", (0.0, 300.0)),
    "mbp": ("chartevents", (0.0, 300.0)),
    "rr": ("chartevents", (0.0, 80.0)),
    "temp_c": ("chartevents", (20.0, 45.0)),
    "lactate": ("labevents", (0.0, 50.0)),
    "creatinine": ("labevents", (0.0, 50.0)),
    "potassium": ("labevents", (0.0, 20.0)),
    "hemoglobin": ("labevents", (0.0, 30.0)),
    "wbc": ("labevents", (0.0, 1000.0)),
    "omr_sbp": ("omr", (0.0, 400.0)),
    "omr_dbp": ("omr", (0.0, 300.0)),
}
STATS = ("count", "mean", "min", "max", "std", "last")
DEMOGRAPHICS = ("age", "sex_male")
LABEL_COLUMNS = frozenset({"hospital_expire_flag", "outtime"})
"""The only columns read that are not known at the prediction time: they make labels, never features."""


class MimicLayoutError(FileNotFoundError):
    """The folder is missing, is not a MIMIC-III / MIMIC-IV layout, or a table lacks a needed column."""


@dataclass(frozen=True)
class EventTable:
    """Where an event table is, how its rows link to stays, and when a row becomes known."""

    subfolder: str
    file: str
    link: Literal["stay", "subject"]
    key: str
    times: tuple[str, ...]
    item: str
    value: str
    items: tuple[int | str, ...]
    date_only: bool = False
    lookback_days: float = 0.0
    """Subject-linked tables: rows from this long before hospital arrival count."""


def _event_tables(version: Version) -> dict[str, EventTable]:
    icu, hosp, stay_key = ("", "", "icustay_id") if version == "iii" else ("icu", "hosp", "stay_id")
    chart_times = ("charttime", "storetime")
    lab_times = ("charttime",) if version == "iii" else ("charttime", "storetime")  # MIMIC-III has no storetime
    tables = {
        "chartevents": EventTable(icu, "chartevents", "stay", stay_key, chart_times, "itemid", "valuenum",
                                  tuple(CHART_ITEMS)),
        "labevents": EventTable(hosp, "labevents", "subject", SUBJECT, lab_times, "itemid", "valuenum",
                                tuple(LAB_ITEMS)),
    }
    if version == "iv":
        tables["omr"] = EventTable(hosp, "omr", "subject", SUBJECT, ("chartdate",), "result_name", "result_value",
                                   OMR_ITEMS, date_only=True, lookback_days=OMR_LOOKBACK_DAYS)
    return tables


@dataclass(frozen=True)
class Layout:
    """A detected demo folder: its version and where its tables are."""

    version: Version
    root: Path

    def subfolder(self, table: str) -> str:
        if self.version == "iii":
            return ""
        return "icu" if table in ("icustays", "chartevents") else "hosp"

    def path(self, table: str) -> Path | None:
        return _find(self.root / self.subfolder(table), table)

    def require(self, table: str) -> Path:
        found = self.path(table)
        if found is None:
            raise MimicLayoutError(f"no {table}.csv.gz in {self.root / self.subfolder(table)}")
        return found


@dataclass(frozen=True)
class MimicStay:
    """One ICU stay at its prediction time."""

    stay_id: int
    subject_id: int
    """Splits are by subject (patient), never by stay."""
    hadm_id: int
    intime: datetime
    prediction_time: datetime
    """``intime`` + the prediction hours: nothing known after it reaches the features."""
    icu_los_days: float | None
    in_unit_at_prediction: bool
    died_in_hospital: bool | None
    """``admissions.hospital_expire_flag``: a label, never a feature."""
    prolonged_stay: bool | None
    """ICU length of stay > 7 days: a label, never a feature."""

    @property
    def eligible(self) -> bool:
        """Still in the ICU at the prediction time and with a known hospital outcome."""
        return self.in_unit_at_prediction and self.died_in_hospital is not None


@dataclass
class MimicCohort:
    """The samples plus the tables they read, cut at each stay's prediction time."""

    version: Version
    samples: list[MimicStay]
    static: pd.DataFrame
    """Age and sex, indexed by stay (what is known at ICU admission)."""
    events: dict[str, pd.DataFrame]
    """Per table: stay, item, value, event time, known time; only rows known at or before the prediction time."""
    file_sha256: dict[str, str] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def subset(self, stay_ids: Sequence[int]) -> MimicCohort:
        keep = {int(s) for s in stay_ids}
        return MimicCohort(self.version, [s for s in self.samples if s.stay_id in keep],
                           self.static[self.static.index.isin(keep)],
                           {k: v[v[STAY].isin(keep)] for k, v in self.events.items()},
                           dict(self.file_sha256), dict(self.counts))

    def stay_events(self, stay_id: int, table: str) -> pd.DataFrame:
        """One stay's rows of an event table (all known at or before its prediction time)."""
        frame = self.events[table]
        return frame[frame[STAY] == stay_id]


def _find(folder: Path, table: str) -> Path | None:
    """``table.csv.gz`` or ``table.csv`` in any letter case (the full MIMIC-III names its files in capitals)."""
    if not folder.is_dir():
        return None
    names = {f"{table}.csv.gz", f"{table}.csv"}
    return next((p for p in sorted(folder.iterdir()) if p.name.lower() in names and p.is_file()), None)


def detect_layout(folder: Path | str, version: Version | None = None) -> Layout:
    """MIMIC-IV has ``hosp/`` and ``icu/``; MIMIC-III keeps every table in one folder (here or in ``csv/``)."""
    data = Path(folder)
    if version is not None and version not in get_args(Version):
        raise ValueError(f"version must be one of {get_args(Version)}, not {version!r} (folder {data})")
    if not data.is_dir():
        raise MimicLayoutError(f"no such folder: {data}")
    found: Layout | None = None
    if _find(data / "hosp", "admissions") and _find(data / "icu", "icustays"):
        found = Layout("iv", data)
    else:
        root = next((r for r in (data, data / "csv") if _find(r, "admissions") and _find(r, "icustays")), None)
        found = Layout("iii", root) if root is not None else None
    if found is None:
        raise MimicLayoutError(f"{data} is neither a MIMIC-III folder (admissions and icustays .csv.gz, here or "
                               "in csv/) nor a MIMIC-IV one (hosp/admissions and icu/icustays .csv.gz)")
    if version is not None and found.version != version:
        raise MimicLayoutError(f"{data} has the MIMIC-{found.version.upper()} layout, not MIMIC-{version.upper()}")
    return found


def _columns(frame: pd.DataFrame, path: Path, required: Sequence[str], optional: Sequence[str]) -> pd.DataFrame:
    frame.columns = [str(c).lower() for c in frame.columns]
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise MimicLayoutError(f"{path} lacks the columns {missing}")
    for c in optional:
        if c not in frame.columns:
            frame[c] = np.nan
    return frame[[*required, *optional]]


def read_columns(path: Path, required: Sequence[str], optional: Sequence[str] = ()) -> pd.DataFrame:
    """Only the named columns (any letter case), lower-cased; missing optional ones are empty."""
    wanted = {*required, *optional}
    frame = pd.read_csv(path, usecols=lambda c: str(c).lower() in wanted, low_memory=False)
    return _columns(frame, path, required, optional)


def read_items(path: Path, spec: EventTable) -> tuple[pd.DataFrame, int]:
    """An event table's key, item, value and time columns, only the rows of the items used; and its row count."""
    required = [spec.key, spec.item, spec.value, *spec.times]
    wanted = set(required)
    parts: list[pd.DataFrame] = []
    total = 0
    with pd.read_csv(path, usecols=lambda c: str(c).lower() in wanted, chunksize=CHUNK_ROWS,
                     low_memory=False) as reader:
        for chunk in reader:
            chunk = _columns(chunk, path, required, ())
            total += len(chunk)
            parts.append(chunk[chunk[spec.item].isin(spec.items)])
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in required}), 0
    return pd.concat(parts, ignore_index=True), total


def timestamps(values: pd.Series) -> pd.Series:
    """ISO text (MIMIC-III's carry ``+00:00``, MIMIC-IV's none) -> naive timestamps; unreadable -> NaT."""
    parsed = pd.to_datetime(values, errors="coerce", utc=True, format="ISO8601")
    return parsed.dt.tz_localize(None)


def known_time(frame: pd.DataFrame, spec: EventTable) -> pd.Series:
    """When each row became known: the latest of its time columns, NaT when any is missing; a date at its end."""
    stamps = pd.concat([timestamps(frame[c]) for c in spec.times], axis=1)
    known = stamps.max(axis=1, skipna=False)
    return known + pd.Timedelta(days=1) if spec.date_only else known


def _stays(layout: Layout, prediction_hours: float, hashes: dict[str, str]) -> pd.DataFrame:
    """One row per ICU stay: ids, intime, prediction time, hospital arrival and the two label columns."""
    path = layout.require("icustays")
    hashes["icustays"] = sha256_file(path)
    key = "icustay_id" if layout.version == "iii" else STAY
    icu = read_columns(path, (key, SUBJECT, "hadm_id", "intime", "outtime")).rename(columns={key: STAY})
    path = layout.require("admissions")
    hashes["admissions"] = sha256_file(path)
    adm = read_columns(path, ("hadm_id", "admittime", "hospital_expire_flag"), ("edregtime",))
    stays = icu.drop_duplicates(STAY).merge(adm.drop_duplicates("hadm_id"), on="hadm_id", how="left")
    for col in ("intime", "outtime", "admittime", "edregtime"):
        stays[col] = timestamps(stays[col])
    stays["prediction_time"] = stays["intime"] + pd.Timedelta(hours=prediction_hours)
    stays["window_start"] = stays[["admittime", "edregtime", "intime"]].min(axis=1, skipna=True)
    return stays.sort_values(STAY, kind="mergesort").reset_index(drop=True)


def _flag(value: object) -> bool | None:
    number = pd.to_numeric(value, errors="coerce")
    return None if pd.isna(number) else bool(number)


def _samples(stays: pd.DataFrame, prolonged_days: float) -> list[MimicStay]:
    los = (stays["outtime"] - stays["intime"]) / pd.Timedelta(days=1)
    samples = []
    for row, days in zip(stays.itertuples(index=False), los, strict=True):
        known_los = None if pd.isna(days) else float(days)
        samples.append(MimicStay(
            stay_id=int(row.stay_id), subject_id=int(row.subject_id), hadm_id=int(row.hadm_id),
            intime=row.intime.to_pydatetime(), prediction_time=row.prediction_time.to_pydatetime(),
            icu_los_days=known_los,
            in_unit_at_prediction=bool(pd.notna(row.outtime) and row.outtime >= row.prediction_time),
            died_in_hospital=_flag(row.hospital_expire_flag),
            prolonged_stay=None if known_los is None else known_los > prolonged_days))
    return samples


def _age_iii(dob: pd.Series, intime: pd.Series) -> pd.Series:
    """Completed years from ``dob`` to ``intime``, from the text (shifted dates of birth are centuries back)."""
    text = dob.astype("string").str.slice(0, 10)
    year = pd.to_numeric(text.str.slice(0, 4), errors="coerce")
    month_day = pd.to_numeric(text.str.slice(5, 7), errors="coerce") * 100 + pd.to_numeric(
        text.str.slice(8, 10), errors="coerce")
    before_birthday = (intime.dt.month * 100 + intime.dt.day) < month_day
    return (intime.dt.year - year - before_birthday.astype(int)).astype(float)


def _static(layout: Layout, stays: pd.DataFrame, hashes: dict[str, str]) -> pd.DataFrame:
    """Age at ICU admission (capped at 90) and sex: what is known when the stay starts."""
    path = layout.require("patients")
    hashes["patients"] = sha256_file(path)
    born = ("dob",) if layout.version == "iii" else ("anchor_age", "anchor_year")
    patients = read_columns(path, (SUBJECT, "gender", *born)).drop_duplicates(SUBJECT)
    frame = stays[[STAY, SUBJECT, "intime"]].merge(patients, on=SUBJECT, how="left")
    if layout.version == "iii":
        age = _age_iii(frame["dob"], frame["intime"])
    else:  # anchor_age is the age in anchor_year; the stay's year moves it on
        age = (pd.to_numeric(frame["anchor_age"], errors="coerce") + frame["intime"].dt.year
               - pd.to_numeric(frame["anchor_year"], errors="coerce")).astype(float)
    gender = frame["gender"].astype("string").str.strip().str.upper()
    sex = gender.map({"M": 1.0, "F": 0.0}).astype(float)
    return pd.DataFrame({"age": age.clip(upper=AGE_CAP).to_numpy(), "sex_male": sex.to_numpy()},
                        index=pd.Index(frame[STAY].to_numpy(), name=STAY))


def cut_at_prediction(frame: pd.DataFrame, spec: EventTable, stays: pd.DataFrame,
                      counts: dict[str, int], name: str) -> pd.DataFrame:
    """Link rows to stays and keep those known in [hospital arrival - lookback, prediction time]; count the rest."""
    known = known_time(frame, spec)
    counts[f"{name}_rows_without_time"] = int(known.isna().sum())
    frame = frame[known.notna()].assign(**{KNOWN_TIME: known[known.notna()]})
    column = STAY if spec.link == "stay" else SUBJECT
    keys = pd.to_numeric(frame[spec.key], errors="coerce")
    linked = keys.isin(stays[column])
    counts[f"{name}_rows_without_stay"] = int((~linked).sum())
    frame = frame[linked].assign(**{column: keys[linked].astype("int64")})
    rows = pd.DataFrame({column: frame[column], ITEM: frame[spec.item], VALUE: frame[spec.value],
                         EVENT_TIME: timestamps(frame[spec.times[0]]), KNOWN_TIME: frame[KNOWN_TIME]})
    pairs = rows.merge(stays[[STAY, SUBJECT, "window_start", "prediction_time"]].drop_duplicates(STAY), on=column)
    before = pd.Series(False, index=pairs.index)
    if spec.link == "subject":
        before = pairs[EVENT_TIME] < pairs["window_start"] - pd.Timedelta(days=spec.lookback_days)
    after = ~before & (pairs[KNOWN_TIME] > pairs["prediction_time"])
    counts[f"{name}_stay_rows"] = len(pairs)
    counts[f"{name}_dropped_before_window"] = int(before.sum())
    counts[f"{name}_dropped_after_prediction"] = int(after.sum())
    kept = pairs.loc[~before & ~after, [STAY, ITEM, VALUE, EVENT_TIME, KNOWN_TIME]]
    counts[f"{name}_kept"] = len(kept)
    return kept.sort_values([STAY, EVENT_TIME, KNOWN_TIME], kind="mergesort").reset_index(drop=True)


def _stay_counts(samples: Sequence[MimicStay]) -> dict[str, int]:
    """Each stay is eligible or excluded for exactly one reason (the first that applies)."""
    left = [s for s in samples if not s.in_unit_at_prediction]
    return {
        "stays": len(samples),
        "subjects": len({s.subject_id for s in samples}),
        "excluded_left_unit_before_prediction": len(left),
        "excluded_no_hospital_outcome": sum(s.in_unit_at_prediction and s.died_in_hospital is None for s in samples),
        "eligible": sum(s.eligible for s in samples),
        "died_in_hospital": sum(bool(s.died_in_hospital) for s in samples),
        "eligible_died_in_hospital": sum(s.eligible and bool(s.died_in_hospital) for s in samples),
        "eligible_prolonged_stay": sum(s.eligible and bool(s.prolonged_stay) for s in samples),
    }


def load_mimic_cohort(folder: Path | str, version: Version | None = None,
                      prediction_hours: float = PREDICTION_HOURS,
                      log: Callable[[str], None] = lambda _m: None) -> MimicCohort:
    """Read a MIMIC-III or MIMIC-IV demo folder into samples and event tables cut at the prediction time."""
    layout = detect_layout(folder, version)
    hashes: dict[str, str] = {}
    stays = _stays(layout, prediction_hours, hashes)
    samples = _samples(stays, PROLONGED_STAY_DAYS)
    static = _static(layout, stays, hashes)
    counts = _stay_counts(samples)
    events: dict[str, pd.DataFrame] = {}
    for name, spec in _event_tables(layout.version).items():
        path = layout.path(name)
        if path is None:  # MIMIC-IV demo 2.2 has no icu/chartevents
            log(f"MIMIC-{layout.version.upper()}: no {name} in {layout.root / spec.subfolder}; its signals are absent")
            continue
        hashes[name] = sha256_file(path)
        frame, total = read_items(path, spec)
        counts[f"{name}_rows_read"] = total
        counts[f"{name}_rows_other_items"] = total - len(frame)
        events[name] = cut_at_prediction(frame, spec, stays, counts, name)
    log(f"MIMIC-{layout.version.upper()}: {counts['stays']} ICU stays of {counts['subjects']} subjects; "
        f"{counts['excluded_left_unit_before_prediction']} left the ICU before {prediction_hours:g} h, "
        f"{counts['excluded_no_hospital_outcome']} without a hospital outcome; {counts['eligible']} eligible")
    return MimicCohort(layout.version, samples, static, events, hashes, counts)


def _chart_signals(frame: pd.DataFrame) -> pd.DataFrame:
    value = pd.to_numeric(frame[VALUE], errors="coerce")
    fahrenheit = frame[ITEM].isin(FAHRENHEIT_ITEMS)
    value = value.where(~fahrenheit, (value - 32.0) * 5.0 / 9.0)
    return frame[[STAY, EVENT_TIME, KNOWN_TIME]].assign(**{SIGNAL: frame[ITEM].map(CHART_ITEMS), VALUE: value})


def _lab_signals(frame: pd.DataFrame) -> pd.DataFrame:
    value = pd.to_numeric(frame[VALUE], errors="coerce")
    return frame[[STAY, EVENT_TIME, KNOWN_TIME]].assign(**{SIGNAL: frame[ITEM].map(LAB_ITEMS), VALUE: value})


_BLOOD_PRESSURE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(\d+(?:\.\d+)?)\s*$")


def _omr_signals(frame: pd.DataFrame) -> pd.DataFrame:
    """Text such as "120/80" -> an omr_sbp and an omr_dbp row; unreadable text -> missing values."""
    parts = frame[VALUE].astype("string").str.extract(_BLOOD_PRESSURE)
    base = frame[[STAY, EVENT_TIME, KNOWN_TIME]]
    return pd.concat([base.assign(**{SIGNAL: name, VALUE: pd.to_numeric(parts[i], errors="coerce").to_numpy()})
                      for i, name in enumerate(("omr_sbp", "omr_dbp"))], ignore_index=True)


_SIGNAL_ROWS: dict[str, Callable[[pd.DataFrame], pd.DataFrame]] = {
    "chartevents": _chart_signals, "labevents": _lab_signals, "omr": _omr_signals}


def available_signals(cohort: MimicCohort) -> list[str]:
    """The signals whose source table the cohort has (MIMIC-IV demo: labs and omr, no chartevents)."""
    return [s for s, (table, _range) in SIGNALS.items() if table in cohort.events]


def signal_values(cohort: MimicCohort) -> tuple[pd.DataFrame, dict[str, int]]:
    """Long rows (stay, signal, value, times) of plausible values; counts of missing and implausible ones."""
    parts = [_SIGNAL_ROWS[t](cohort.events[t]) for t in _SIGNAL_ROWS if t in cohort.events]
    columns = [STAY, SIGNAL, VALUE, EVENT_TIME, KNOWN_TIME]
    long = pd.concat([p[columns] for p in parts], ignore_index=True) if parts else pd.DataFrame(columns=columns)
    counts: dict[str, int] = {}
    keep = pd.Series(True, index=long.index)
    for signal in available_signals(cohort):
        lo, hi = SIGNALS[signal][1]
        rows = long[SIGNAL] == signal
        values = pd.to_numeric(long[VALUE], errors="coerce")
        missing = rows & values.isna()
        implausible = rows & values.notna() & ~((values > lo) & (values <= hi))
        counts[f"{signal}_missing_value"] = int(missing.sum())
        counts[f"{signal}_implausible"] = int(implausible.sum())
        keep &= ~(missing | implausible)
    return long[keep & long[SIGNAL].notna()].reset_index(drop=True), counts


def _statistics(values: pd.DataFrame, ids: Sequence[int], signals: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """count/mean/min/max/std/last per (stay, signal); NaN where a stay has no value (count 0)."""
    names = [f"{sig}_{st}" for sig in signals for st in STATS]
    out = np.full((len(ids), len(names)), np.nan)
    counts = [i for i, n in enumerate(names) if n.endswith("_count")]
    out[:, counts] = 0.0
    f = values[values[SIGNAL].isin(signals) & values[STAY].isin(ids)]
    if f.empty:
        return names, out
    f = f.assign(**{VALUE: pd.to_numeric(f[VALUE]).astype(float)})
    f = f.sort_values([STAY, SIGNAL, EVENT_TIME, KNOWN_TIME, VALUE], kind="mergesort")
    g = f.groupby([STAY, SIGNAL], sort=True)[VALUE]
    agg = pd.DataFrame({"count": g.size().astype(float), "mean": g.mean(), "min": g.min(), "max": g.max(),
                        "std": g.std(ddof=0), "last": g.last()})
    wide = agg.unstack(SIGNAL).reindex(index=list(ids),
                                       columns=pd.MultiIndex.from_tuples([(st, sig) for sig in signals
                                                                          for st in STATS]))
    out = np.array(wide.to_numpy(dtype=float), dtype=float)  # pandas may hand back a read-only view
    out[:, counts] = np.nan_to_num(out[:, counts], nan=0.0)
    return names, out


def vital_statistics(cohort: MimicCohort) -> tuple[list[str], np.ndarray]:
    """One row per sample: statistics of each available signal up to the prediction time, then age and sex.

    Reads only ``cohort.events`` (already cut at the prediction time) and ``cohort.static``, so no label
    or future column can reach it. Implausible values are dropped (counted by :func:`signal_values`).
    """
    ids = [s.stay_id for s in cohort.samples]
    values, _dropped = signal_values(cohort)
    names, block = _statistics(values, ids, available_signals(cohort))
    demo = cohort.static.reindex(ids)[list(DEMOGRAPHICS)].to_numpy(dtype=float)
    return [*names, *DEMOGRAPHICS], np.hstack([block, demo])
