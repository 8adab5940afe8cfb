"""eICU (Collaborative Research Database, demo layout) -> one :class:`StaySample` per ICU stay.

The prediction time of every stay is ``PREDICTION_OFFSET_MIN`` (24 h) after unit admission.
eICU times are minutes from unit admission (``*offset`` columns). A row of an event table is
known at the latest of its offset columns (when it happened and, where the table has one, when
it was entered); every row known after the prediction time is dropped here, before any feature
is computed, and columns that describe the future (discharge status, "active upon discharge",
stop times, cancellations) are never read into the features at all.

Labels: in-hospital mortality (``patient.hospitaldischargestatus``; where empty, APACHE's
``actualhospitalmortality``) and prolonged unit stay (unit LOS > 7 days,
``patient.unitdischargeoffset``). APACHE IVa's own predicted hospital mortality
(``apachePatientResult``, ``apacheversion == 'IVa'``, ``-1`` = not predicted) is kept beside the
sample for the baseline only and never reaches the features.

A 24-h prediction is only meaningful for a patient still in the unit at 24 h: stays that
left the unit earlier (death or discharge) are loaded but not ``eligible``; the loader counts
every exclusion.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cardiogate.core.artifacts import sha256_file

PREDICTION_OFFSET_MIN = 24 * 60
"""Prediction time: minutes after unit admission."""
PROLONGED_STAY_MIN = 7 * 24 * 60
"""Prolonged stay: unit length of stay above 7 days."""

STAY = "patientunitstayid"
ROW_TIME = "known_offset"
"""Column the loader adds to each event table: when the row became known (minutes from unit admission)."""

# table -> (offset columns that say when a row became known, the columns the features may read)
EVENT_TABLES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "vitalAperiodic": (("observationoffset",), ("noninvasivesystolic", "noninvasivediastolic", "noninvasivemean")),
    "intakeOutput": (("intakeoutputoffset", "intakeoutputentryoffset"), ("cellpath", "celllabel",
                                                                          "cellvaluenumeric")),
    "respiratoryCharting": (("respchartoffset", "respchartentryoffset"), ("respchartvaluelabel", "respchartvalue")),
    "diagnosis": (("diagnosisoffset",), ("diagnosisstring",)),
    "admissionDx": (("admitdxenteredoffset",), ("admitdxpath",)),
    "treatment": (("treatmentoffset",), ("treatmentstring",)),
    "medication": (("drugorderoffset", "drugstartoffset"), ("drugname", "drughiclseqno", "routeadmin")),
    "pastHistory": (("pasthistoryoffset", "pasthistoryenteredoffset"), ("pasthistorypath",)),
    "note": (("noteoffset", "noteenteredoffset"), ("notetype", "notepath", "notevalue", "notetext")),
}

# patient: only what is known at unit admission (never discharge columns)
PATIENT_FEATURES = ("gender", "age", "ethnicity", "admissionheight", "admissionweight", "unittype",
                    "unitadmitsource", "unitvisitnumber", "unitstaytype", "hospitaladmitsource",
                    "hospitaladmitoffset", "apacheadmissiondx")
PATIENT_LABELS = ("uniquepid", "hospitaldischargestatus", "unitdischargeoffset")
# apacheApsVar: APACHE IV physiology, the worst values of the first 24 h (allowed: all before the prediction time)
APS_FEATURES = ("intubated", "vent", "dialysis", "eyes", "motor", "verbal", "meds", "urine", "wbc", "temperature",
                "respiratoryrate", "sodium", "heartrate", "meanbp", "ph", "hematocrit", "creatinine", "albumin",
                "pao2", "pco2", "bun", "glucose", "bilirubin", "fio2")
# apachePredVar: admission and day-1 facts only; never diedinhospital, dischargelocation, LOS or day-N columns
PREDVAR_FEATURES = ("electivesurgery", "readmit", "aids", "hepaticfailure", "lymphoma", "metastaticcancer",
                    "leukemia", "immunosuppression", "cirrhosis", "diabetes", "thrombolytics", "ventday1",
                    "oobventday1", "oobintubday1", "ima", "midur", "graftcount", "admitsource", "admitdiagnosis",
                    "day1meds", "day1verbal", "day1motor", "day1eyes", "day1pao2", "day1fio2", "ejectfx")
APACHE_RESULT_COLUMNS = ("apacheversion", "predictedhospitalmortality", "actualhospitalmortality")
"""Read for the baseline and the fallback label only."""

STATIC_TABLES: dict[str, tuple[str, ...]] = {
    "patient": PATIENT_FEATURES + PATIENT_LABELS,
    "apacheApsVar": APS_FEATURES,
    "apachePredVar": PREDVAR_FEATURES,
    "apachePatientResult": APACHE_RESULT_COLUMNS,
}


@dataclass(frozen=True)
class StaySample:
    """One ICU stay at its prediction time."""

    stay_id: int
    patient_id: str
    """``uniquepid``: splits are by patient, never by stay."""
    prediction_offset_min: int
    unit_los_min: float
    in_unit_at_prediction: bool
    died_in_hospital: bool | None
    prolonged_stay: bool | None
    """Unit length of stay > 7 days."""
    apache_iva_mortality: float | None
    """APACHE IVa's predicted hospital mortality: the baseline, NEVER a feature (None: not predicted)."""

    @property
    def eligible(self) -> bool:
        """Still in the unit at the prediction time and with a known hospital outcome."""
        return self.in_unit_at_prediction and self.died_in_hospital is not None


@dataclass
class EicuCohort:
    """The samples plus the tables they read, cut at each stay's prediction time."""

    samples: list[StaySample]
    static: dict[str, pd.DataFrame]
    """patient / apacheApsVar / apachePredVar feature columns, indexed by stay (one row each)."""
    events: dict[str, pd.DataFrame]
    """Event tables, only rows known at or before their stay's prediction time."""
    file_sha256: dict[str, str] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def subset(self, stay_ids: Sequence[int]) -> EicuCohort:
        keep = set(int(s) for s in stay_ids)
        samples = [s for s in self.samples if s.stay_id in keep]
        static = {k: v[v.index.isin(keep)] for k, v in self.static.items()}
        events = {k: v[v[STAY].isin(keep)] for k, v in self.events.items()}
        return EicuCohort(samples, static, events, dict(self.file_sha256), dict(self.counts))

    def stay_events(self, stay_id: int, table: str) -> pd.DataFrame:
        """One stay's rows of an event table (all at or before its prediction time)."""
        frame = self.events[table]
        return frame[frame[STAY] == stay_id]


def row_time(frame: pd.DataFrame, table: str) -> pd.Series:
    """When each row of an event table became known: the latest of its offset columns (NaN: unknown)."""
    cols = [c for c in EVENT_TABLES[table][0] if c in frame.columns]
    if not cols:
        return pd.Series(np.nan, index=frame.index)
    return frame[cols].apply(pd.to_numeric, errors="coerce").max(axis=1, skipna=True)


def _find(folder: Path, table: str) -> Path | None:
    for name in (f"{table}.csv.gz", f"{table}.csv"):
        if (folder / name).is_file():
            return folder / name
    return None


def read_table(folder: Path, table: str, columns: Sequence[str]) -> tuple[pd.DataFrame, str | None]:
    """The table's stay id and the given columns (missing ones empty), and the file's sha256."""
    wanted = [STAY, *columns]
    path = _find(folder, table)
    if path is None:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in wanted}), None
    frame = pd.read_csv(path, usecols=lambda c: c in wanted, low_memory=False)
    for c in wanted:
        if c not in frame.columns:
            frame[c] = np.nan
    return frame[wanted], sha256_file(path)


def _died(status: Any, apache_actual: Any) -> bool | None:
    s = str(status).strip().lower() if isinstance(status, str) else ""
    if s in ("expired", "alive"):
        return s == "expired"
    a = str(apache_actual).strip().upper() if isinstance(apache_actual, str) else ""
    if a in ("EXPIRED", "ALIVE"):
        return a == "EXPIRED"
    return None


def load_cohort(folder: Path | str, prediction_offset_min: int = PREDICTION_OFFSET_MIN,
                log: Callable[[str], None] = lambda _m: None) -> EicuCohort:
    """Read an eICU-layout folder (``*.csv.gz``) into samples and tables cut at the prediction time."""
    data = Path(folder)
    if _find(data, "patient") is None:
        raise FileNotFoundError(f"no patient.csv.gz in {data}: not an eICU-layout folder")
    hashes: dict[str, str] = {}
    static: dict[str, pd.DataFrame] = {}
    for table, cols in STATIC_TABLES.items():
        frame, digest = read_table(data, table, cols)
        if digest:
            hashes[table] = digest
        static[table] = frame
    patient = static["patient"].drop_duplicates(STAY).set_index(STAY)
    result = static.pop("apachePatientResult")
    iva = result[result["apacheversion"].astype(str).str.strip() == "IVa"].drop_duplicates(STAY).set_index(STAY)
    counts: dict[str, int] = {"stays": len(patient)}
    samples = []
    for stay, row in patient.iterrows():
        los = float(pd.to_numeric(row["unitdischargeoffset"], errors="coerce"))
        pred: float | None = None
        actual: Any = None
        if stay in iva.index:
            value = float(pd.to_numeric(iva.at[stay, "predictedhospitalmortality"], errors="coerce"))
            pred = value if np.isfinite(value) and value >= 0 else None
            actual = iva.at[stay, "actualhospitalmortality"]
        samples.append(StaySample(
            stay_id=int(str(stay)), patient_id=str(row["uniquepid"]), prediction_offset_min=prediction_offset_min,
            unit_los_min=los, in_unit_at_prediction=bool(np.isfinite(los) and los >= prediction_offset_min),
            died_in_hospital=_died(row["hospitaldischargestatus"], actual),
            prolonged_stay=bool(los > PROLONGED_STAY_MIN) if np.isfinite(los) else None,
            apache_iva_mortality=pred))
    counts["left_unit_before_prediction"] = sum(not s.in_unit_at_prediction for s in samples)
    counts["no_hospital_outcome"] = sum(s.died_in_hospital is None for s in samples)
    counts["eligible"] = sum(s.eligible for s in samples)
    counts["eligible_without_apache_iva"] = sum(s.eligible and s.apache_iva_mortality is None for s in samples)
    counts["eligible_with_apache_iva"] = counts["eligible"] - counts["eligible_without_apache_iva"]
    static_out = {"patient": patient[list(PATIENT_FEATURES)]}
    for table in ("apacheApsVar", "apachePredVar"):
        static_out[table] = static[table].drop_duplicates(STAY).set_index(STAY)
    cut = pd.Series({s.stay_id: s.prediction_offset_min for s in samples}, dtype="float64")
    events: dict[str, pd.DataFrame] = {}
    for table, (offsets, cols) in EVENT_TABLES.items():
        frame, digest = read_table(data, table, (*offsets, *cols))
        if digest:
            hashes[table] = digest
        known = row_time(frame, table)
        limit = frame[STAY].map(cut)
        keep = known.notna() & limit.notna() & (known <= limit)
        counts[f"{table}_rows_dropped_after_prediction"] = int((known > limit).sum())
        kept = frame.loc[keep, [STAY, *cols]].assign(**{ROW_TIME: known[keep]})
        events[table] = kept.sort_values([STAY, ROW_TIME], kind="mergesort").reset_index(drop=True)
    log(f"eICU: {counts['stays']} stays; {counts['left_unit_before_prediction']} left the unit before "
        f"{prediction_offset_min // 60} h, {counts['no_hospital_outcome']} without a hospital outcome; "
        f"{counts['eligible']} eligible, {counts['eligible_without_apache_iva']} of them without an APACHE IVa "
        "prediction")
    return EicuCohort(samples, static_out, events, hashes, counts)


def stay_ids(cohort: EicuCohort, predicate: Callable[[StaySample], bool]) -> list[int]:
    return [s.stay_id for s in cohort.samples if predicate(s)]
