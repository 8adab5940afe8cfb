"""HAIM-MIMIC-MM (Soenksen et al., npj Digit. Med. 2022) -> one :class:`HaimStay` per (patient, ICU stay).

The published layout (github.com/lrsoenksen/HAIM: ``MIMIC_IV_HAIM_API.py``, ``1_2-Generate Embeddings.py``):
``<root>/pickle/haim_mimiciv_key_ids.csv`` lists (subject_id, hadm_id, stay_id) triples, and triple ``i`` is
``<root>/pickle/{i:08d}.pkl`` (the embedding script reads ``pickle/folderNN/{i:08d}.pkl``: any depth under
``pickle/`` is found). Each file is one ``Patient_ICU`` object (pickle protocol 4, Python 3.6, pandas 1.1.5)
whose 29 attributes (:data:`PATIENT_ICU_FIELDS`) are MIMIC-IV tables cut to the triple: hospital tables to
the admission, ICU tables and notes to the stay, chest X-rays to the subject, and ``imcxr`` a list of
images aligned with the rows of ``cxr``. The data are credentialed (PhysioNet), so the tests run on
:func:`write_synthetic_miniature`, which writes that layout.

Security: a pickle runs whatever it names when loaded. Files are read only by :func:`read_patient_pickle`,
whose unpickler resolves the globals in :data:`ALLOWED_GLOBALS` (pandas/numpy containers and their
reconstruction helpers, datetime, a few builtins), maps ``Patient_ICU`` from any module to
:class:`HaimPatientRecord` (plain data, never HAIM's class) and refuses everything else before it runs.

Prediction time: ``prediction_hours`` after ICU admission (``icustays.intime``), or after hospital admission
with ``anchor="admittime"`` (HAIM's ``end_hr`` counts from ``admittime``; HAIM's own samples are anchored
at each chest X-ray). Stricter than HAIM's ``get_timebound_patient_icustay``, which keeps rows by
``charttime`` alone and keeps rows without a time: here a row is known at the LATEST of its time
columns (a lab drawn before the prediction time but resulted after it is dropped), date-only columns
count from the end of their day, rows with no time are dropped, and the billing and detail tables
(:data:`NEVER_FEATURES`: coded after discharge, or untimed) never reach the features. Every drop is
counted. Only the columns in :data:`EVENT_TABLES` / :data:`STATIC_COLUMNS` are kept, so the columns that
describe the future (:data:`FUTURE_COLUMNS`) never reach a feature.

Labels (on the sample, never in the tables): in-hospital mortality (``admissions.hospital_expire_flag``;
where empty, a ``deathtime``), ICU length of stay, and hours from the prediction time to discharge and to
death (HAIM's 48-h mortality is ``died and hours_to_discharge < 48``).

Unreadable files: :func:`load_haim_mm` FAILS by default with :class:`HaimPickleError` (a ValueError naming
the file), because a silently skipped file silently changes the cohort; ``skip_unreadable=True`` skips,
counts (``unreadable_files``) and lists them (``HaimCohort.unreadable``). A refused pickle
(:class:`RefusedPickleError`) always fails: it may be an attack, not damage.
"""

from __future__ import annotations

import functools
import importlib
import io
import pickle
import re
import sys
import types
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
import pandas as pd

PATIENT_ICU_FIELDS = (
    "admissions", "demographics", "transfers", "core", "diagnoses_icd", "drgcodes", "emar", "emar_detail",
    "hcpcsevents", "labevents", "microbiologyevents", "poe", "poe_detail", "prescriptions", "procedures_icd",
    "services", "procedureevents", "outputevents", "inputevents", "icustays", "datetimeevents", "chartevents",
    "cxr", "imcxr", "noteevents", "dsnotes", "ecgnotes", "echonotes", "radnotes")
"""The attributes of HAIM's ``Patient_ICU``, in its constructor's order."""
PUBLISHED_MODULE = "MIMIC_IV_HAIM_API"
PUBLISHED_CLASS = "Patient_ICU"
KEY_IDS_FILE = "haim_mimiciv_key_ids.csv"
FILE_NAME = re.compile(r"^\d{8}\.pkl$")
PICKLE_PROTOCOL = 4
"""Python 3.6's HIGHEST_PROTOCOL, which HAIM's ``save_patient_object`` used."""

STAY = "stay_id"
KNOWN = "known_time"
"""Column the loader adds to each event table: when the row became known."""
TIME = "datetime64[us]"
"""Every time the loader computes: microseconds, so no date a corrupt row holds overflows (ns stops at 2262)."""


class TableSpec(NamedTuple):
    times: tuple[str, ...]
    """Datetime columns: a row is known at the latest of them."""
    days: tuple[str, ...]
    """Date-only columns: known at the end of their day."""
    keep: tuple[str, ...]
    """The only columns the features may read."""


_CHART = ("charttime", "storetime")
_NOTE = TableSpec(_CHART, (), ("note_type", "text"))
# Intervals (inputs, procedures) are complete, hence known, at their end.
EVENT_TABLES: dict[str, TableSpec] = {
    "transfers": TableSpec(("intime",), (), ("eventtype", "careunit")),
    "emar": TableSpec(_CHART, (), ("medication", "event_txt")),
    "labevents": TableSpec(_CHART, (), ("charttime", "itemid", "label", "fluid", "category", "value", "valuenum",
                                        "valueuom", "flag")),
    "microbiologyevents": TableSpec(_CHART, ("chartdate", "storedate"), ("spec_type_desc", "test_name",
                                                                         "org_name", "interpretation")),
    "poe": TableSpec(("ordertime",), (), ("order_type", "order_subtype")),
    "prescriptions": TableSpec(("starttime",), (), ("drug", "drug_type", "route", "dose_val_rx", "dose_unit_rx")),
    "services": TableSpec(("transfertime",), (), ("prev_service", "curr_service")),
    "procedureevents": TableSpec(("endtime", "storetime"), (), ("itemid", "label", "value", "valueuom")),
    "outputevents": TableSpec(_CHART, (), ("itemid", "label", "value", "valueuom")),
    "inputevents": TableSpec(("endtime", "storetime"), (), ("itemid", "label", "amount", "amountuom", "rate",
                                                            "rateuom")),
    "datetimeevents": TableSpec(_CHART, (), ("itemid", "label", "value")),
    "chartevents": TableSpec(_CHART, (), ("charttime", "itemid", "label", "value", "valuenum", "valueuom")),
    "cxr": TableSpec(("charttime",), (), ("dicom_id", "study_id", "ViewPosition",
                                          "PerformedProcedureStepDescription", "Rows", "Columns")),
    "noteevents": TableSpec(_CHART, ("chartdate",), ("category", "description", "text")),
    "dsnotes": _NOTE, "ecgnotes": _NOTE, "echonotes": _NOTE, "radnotes": _NOTE,
}
"""Event tables: when a row became known, and what of it features may read. ``cxr`` is also known no
earlier than its exact study time (StudyDate + StudyTime; HAIM floors ``charttime`` to the minute)."""
NEVER_FEATURES = ("diagnoses_icd", "drgcodes", "procedures_icd", "hcpcsevents", "emar_detail", "poe_detail")
"""Billing codes (assigned after discharge) and detail tables without a time of their own."""
STATIC_TABLES = ("admissions", "demographics", "core", "icustays")
STATIC_COLUMNS: dict[str, tuple[str, ...]] = {
    "admissions": ("admittime", "admission_type", "insurance", "marital_status"),
    "demographics": ("gender", "anchor_age"),
    "icustays": ("intime", "first_careunit"),
}
"""Known at ICU admission. ``core`` (admissions + patients + transfers) stands in where admissions is empty."""
FUTURE_COLUMNS = ("dischtime", "deathtime", "discharge_location", "hospital_expire_flag", "dod", "outtime", "los",
                  "last_careunit")
"""Columns that describe what happens after admission: labels at most, never features."""

CHART_SIGNALS: dict[str, tuple[int, ...]] = {
    "hr": (220045,), "spo2": (220277,), "sbp": (220179, 220050), "dbp": (220180, 220051),
    "mbp": (220181, 220052), "rr": (220210,)}
"""MIMIC-IV d_items: heart rate, SpO2, non-invasive and arterial BP, respiratory rate."""
LAB_SIGNALS: dict[str, tuple[int, ...]] = {
    "lactate": (50813,), "creatinine": (50912,), "potassium": (50971,), "sodium": (50983,),
    "hemoglobin": (51222,), "wbc": (51301,)}
"""MIMIC-IV d_labitems."""
STATS = ("n", "mean", "min", "max", "std", "last")
NOTE_TABLES = ("noteevents", "radnotes", "ecgnotes", "echonotes", "dsnotes")
CARE_UNITS = ("MICU", "SICU", "MICU/SICU", "CVICU", "CCU", "TSICU", "Neuro SICU")
INSURANCE = ("Medicare", "Medicaid", "Other")
MARITAL = ("MARRIED", "SINGLE", "WIDOWED", "DIVORCED")


class HaimPickleError(ValueError):
    """A HAIM-MIMIC-MM pickle that cannot be used (truncated, corrupt, or not a ``Patient_ICU``)."""


class RefusedPickleError(HaimPickleError):
    """A pickle that names a global outside the allowlist: refused before anything it names runs."""


# ---------------------------------------------------------------------------------------------------------------
# The restricted unpickler


def _at(target: str, *older: str) -> dict[tuple[str, str], str]:
    """``target`` ("module:name") as pickled from its own module and from the modules of older versions."""
    module, name = target.split(":")
    return {(m, name): target for m in (module, *older)}


ALLOWED_GLOBALS: dict[tuple[str, str], str] = {
    # builtins beyond what pickle opcodes build (list, dict, tuple, set, str, bytes, numbers)
    **_at("builtins:slice"), **_at("builtins:bytearray"),
    **{("datetime", n): f"datetime:{n}" for n in ("date", "datetime", "time", "timedelta", "timezone")},
    # numpy (1.x pickles, like the published ones, say numpy.core)
    **_at("numpy:ndarray"), **_at("numpy:dtype"),
    **_at("numpy._core.multiarray:_reconstruct", "numpy.core.multiarray"),
    **_at("numpy._core.multiarray:scalar", "numpy.core.multiarray"),
    **_at("numpy._core.numeric:_frombuffer", "numpy.core.numeric"),
    # pandas classes: pandas 3 pickles say "pandas"/"pandas.arrays", pandas 1.1-2.x the defining module
    **_at("pandas:DataFrame", "pandas.core.frame"), **_at("pandas:Series", "pandas.core.series"),
    **_at("pandas:Index", "pandas.core.indexes.base"), **_at("pandas:RangeIndex", "pandas.core.indexes.range"),
    **_at("pandas:DatetimeIndex", "pandas.core.indexes.datetimes"),
    **_at("pandas:MultiIndex", "pandas.core.indexes.multi"),
    **_at("pandas:Categorical", "pandas.core.arrays.categorical"),
    **_at("pandas:CategoricalDtype", "pandas.core.dtypes.dtypes"),
    **_at("pandas:DatetimeTZDtype", "pandas.core.dtypes.dtypes"),
    **_at("pandas:StringDtype", "pandas.core.arrays.string_"), **_at("pandas:Int64Dtype", "pandas.core.arrays.integer"),
    **_at("pandas:Timestamp", "pandas._libs.tslibs.timestamps"),
    **_at("pandas.arrays:DatetimeArray", "pandas.core.arrays.datetimes"),
    **_at("pandas.arrays:TimedeltaArray", "pandas.core.arrays.timedeltas"),
    **_at("pandas.arrays:IntegerArray", "pandas.core.arrays.integer"),
    **_at("pandas.arrays:StringArray", "pandas.core.arrays.string_"),
    **_at("pandas.arrays:ArrowStringArray", "pandas.core.arrays.string_arrow"),
    **{("pandas.core.indexes.numeric", n): "pandas:Index" for n in ("Int64Index", "UInt64Index", "Float64Index")},
    # pandas' reconstruction helpers
    **_at("pandas.core.indexes.base:_new_Index"), **_at("pandas.core.indexes.datetimes:_new_DatetimeIndex"),
    **_at("pandas.core.internals.managers:BlockManager"), **_at("pandas.core.internals.managers:SingleBlockManager"),
    **_at("pandas._libs.internals:_unpickle_block"), **_at("pandas._libs.arrays:__pyx_unpickle_NDArrayBacked"),
    **_at("pandas._libs.tslibs.timestamps:_unpickle_timestamp"),
    **_at("pandas._libs.tslibs.timedeltas:_timedelta_unpickle"), **_at("pandas._libs.tslibs.nattype:_nat_unpickle"),
    ("pandas._libs.tslibs.nattype", "__nat_unpickle"): "pandas._libs.tslibs.nattype:_nat_unpickle",
    # pyarrow-backed strings (pandas 3's default with pyarrow installed); arrays are validated as they are rebuilt
    **_at("pyarrow.lib:_restore_array"), **_at("pyarrow.lib:py_buffer"), **_at("pyarrow.lib:type_for_alias"),
}
"""(module, name) as found in a pickle -> the object it may resolve to ("module:name"). Found by recording
``find_class`` while unpickling DataFrames (int, float, bool, object, datetime, timedelta, tz-aware,
category, nullable int, str, a time-of-day object column, empty frames, Series, Datetime/Multi/Range
indexes) written by pandas 1.1.5/numpy 1.19.5/Python 3.6 (HAIM's environment, protocol 4), pandas 2.2.3/
numpy 2.2 and pandas 3.1.1/numpy 2.4 (protocols 4 and 5). Protocol 2 files, which spell bytes as
``_codecs.encode``, are refused; so is everything else, e.g. ``os.system`` or ``pandas.read_pickle``."""


class HaimPatientRecord:
    """The attributes of one HAIM ``Patient_ICU``, as plain data: the published class is never imported."""

    fields: dict[str, object]

    def __init__(self, fields: Mapping[str, object] | None = None) -> None:
        self.fields = dict(fields or {})

    def __setstate__(self, state: object) -> None:
        if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
            raise HaimPickleError(f"the {PUBLISHED_CLASS} state is a {type(state).__name__}, not a dict of fields")
        self.fields = dict(state)


def _validated_arrow(restore: Callable[..., Any]) -> Callable[..., Any]:
    """pyarrow rebuilds arrays from pickled buffers without checking them: check offsets and lengths here."""
    def rebuild(*args: Any) -> Any:
        array = restore(*args)
        array.validate(full=True)
        return array
    return rebuild


@functools.cache
def _resolve(target: str) -> Any:
    module, name = target.split(":")
    try:
        obj = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise HaimPickleError(f"{target} is allowed but not available here ({exc})") from exc
    return _validated_arrow(obj) if target == "pyarrow.lib:_restore_array" else obj


def allowed_global(module: str, name: str) -> Any:
    """``find_class`` of both unpicklers: the allowlist, and ``Patient_ICU`` (any module) -> the record."""
    if name == PUBLISHED_CLASS:
        return HaimPatientRecord
    target = ALLOWED_GLOBALS.get((module, name))
    if target is None:
        raise RefusedPickleError(f"refused {module}.{name}: not on the HAIM-MIMIC-MM allowlist "
                                 "(a pickle runs what it names)")
    return _resolve(target)


class _RestrictedUnpickler(pickle.Unpickler):
    """The C unpickler with :func:`allowed_global` as its only way to reach a global. The aliases in
    :data:`ALLOWED_GLOBALS` are enough for pandas 1.1.5 files (checked on a file written there), so
    pandas' pure-Python ``pickle_compat`` unpickler, which ``pd.read_pickle`` falls back to, is not used."""

    def find_class(self, module: str, name: str, /) -> Any:
        return allowed_global(module, name)


def _unpickle(data: bytes, file: Path) -> object:
    try:
        return _RestrictedUnpickler(io.BytesIO(data)).load()
    except RefusedPickleError as exc:
        raise RefusedPickleError(f"{file}: {exc}") from None
    except Exception as exc:  # truncated or corrupt: EOFError, UnpicklingError, or whatever a rebuild raised
        raise HaimPickleError(f"{file}: not a readable HAIM-MIMIC-MM pickle ({type(exc).__name__}: {exc})") from exc


def read_patient_pickle(path: Path | str) -> HaimPatientRecord:
    """One HAIM pickle through the allowlist (never ``pickle.load``); raises :class:`HaimPickleError`."""
    file = Path(path)
    obj = _unpickle(file.read_bytes(), file)
    if not isinstance(obj, HaimPatientRecord):
        raise HaimPickleError(f"{file}: holds a {type(obj).__name__}, not a {PUBLISHED_CLASS}")
    return obj


@contextmanager
def _published_class(module: str) -> Iterator[type]:
    """A stand-in ``Patient_ICU`` importable as ``module.Patient_ICU`` while it is pickled, so the file names
    the class exactly as the published files do. Not thread-safe (it registers ``module`` in sys.modules)."""
    if module in sys.modules:
        raise ValueError(f"module {module!r} is already imported: cannot stand in for it")
    stand_in = types.ModuleType(module)
    cls = type(PUBLISHED_CLASS, (), {"__module__": module})
    setattr(stand_in, PUBLISHED_CLASS, cls)
    sys.modules[module] = stand_in
    try:
        yield cls
    finally:
        del sys.modules[module]


def write_patient_pickle(path: Path, fields: Mapping[str, object], module: str = PUBLISHED_MODULE) -> Path:
    """Write ``fields`` as a ``module.Patient_ICU`` pickle (protocol 4), as HAIM's ``save_patient_object`` did."""
    with _published_class(module) as cls:
        obj = cls()
        obj.__dict__.update(fields)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as fh:
            pickle.dump(obj, fh, protocol=PICKLE_PROTOCOL)
    return path


# ---------------------------------------------------------------------------------------------------------------
# When a row became known


def _as_time(values: pd.Series) -> pd.Series:
    """Naive datetimes (microseconds); numbers and unparsable text are not times (NaT)."""
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_datetime64_any_dtype(values):
        return pd.Series(pd.NaT, index=values.index, dtype=TIME)
    out = pd.to_datetime(values, errors="coerce", format="mixed")
    if getattr(out.dt, "tz", None) is not None:
        out = out.dt.tz_convert(None)
    return out.astype(TIME)


def cxr_study_time(frame: pd.DataFrame) -> pd.Series:
    """The exact acquisition time: ``StudyDate`` (YYYYMMDD) + ``StudyTime`` (HHMMSS.fff), NaT if absent."""
    if "StudyDate" not in frame.columns or "StudyTime" not in frame.columns:
        return pd.Series(pd.NaT, index=frame.index, dtype=TIME)
    digits = pd.to_numeric(frame["StudyDate"], errors="coerce").astype("Int64").astype("string")
    day = pd.to_datetime(digits, format="%Y%m%d", errors="coerce")
    t = pd.to_numeric(frame["StudyTime"], errors="coerce")
    seconds = (t // 10000) * 3600 + (t // 100 % 100) * 60 + t % 100
    return (day + pd.to_timedelta(seconds, unit="s")).astype(TIME)


def row_known_time(frame: pd.DataFrame, table: str) -> pd.Series:
    """When each row of an event table became known: the latest of its times (NaT: unknown)."""
    spec = EVENT_TABLES[table]
    parts = [_as_time(frame[c]) for c in spec.times if c in frame.columns]
    parts += [_as_time(frame[c]).dt.normalize() + pd.Timedelta(days=1) for c in spec.days if c in frame.columns]
    if table == "cxr":
        parts.append(cxr_study_time(frame))
    if not parts:
        return pd.Series(pd.NaT, index=frame.index, dtype=TIME)
    stacked = np.stack([p.to_numpy(dtype=TIME) for p in parts])
    return pd.Series(np.fmax.reduce(stacked, axis=0), index=frame.index)  # fmax skips NaT


# ---------------------------------------------------------------------------------------------------------------
# Samples and the cohort


@dataclass(frozen=True)
class StayLabels:
    """Outcomes: what the models predict, never what they read."""

    died_in_hospital: bool | None
    icu_los_hours: float | None
    hours_to_discharge: float | None
    """From the prediction time to hospital discharge (HAIM's ``img_length_of_stay``)."""
    hours_to_death: float | None


@dataclass(frozen=True)
class HaimStay:
    """One ICU stay at its prediction time."""

    haim_id: int
    file: str
    subject_id: int
    """Splits are by patient, never by stay."""
    hadm_id: int
    stay_id: int
    intime: datetime
    prediction_time: datetime
    in_icu_at_prediction: bool
    alive_at_prediction: bool
    labels: StayLabels

    @property
    def eligible(self) -> bool:
        """Still in the ICU and alive at the prediction time, with a known hospital outcome."""
        return self.in_icu_at_prediction and self.alive_at_prediction and self.labels.died_in_hospital is not None


@dataclass
class HaimCohort:
    """The samples plus the tables they read, every event row known at or before its stay's prediction time."""

    samples: list[HaimStay]
    static: pd.DataFrame
    """:data:`STATIC_COLUMNS`, one row per stay (index ``stay_id``)."""
    events: dict[str, pd.DataFrame]
    """Event table -> ``stay_id``, ``known_time`` and the table's ``keep`` columns."""
    images: dict[int, list[np.ndarray]]
    """The ``imcxr`` arrays of the kept ``cxr`` rows, by stay."""
    counts: dict[str, int] = field(default_factory=dict)
    unreadable: list[str] = field(default_factory=list)

    def prediction_times(self, ids: Sequence[int]) -> pd.Series:
        when = {s.stay_id: s.prediction_time for s in self.samples}
        return pd.Series([when.get(i) for i in ids], index=list(ids), dtype=TIME)


def haim_files(folder: Path | str) -> list[Path]:
    """The ``NNNNNNNN.pkl`` files under ``folder/pickle`` (or ``folder`` itself), in name order."""
    root = Path(folder)
    root = root / "pickle" if (root / "pickle").is_dir() else root
    files = sorted((p for p in root.rglob("*.pkl") if FILE_NAME.match(p.name)), key=lambda p: (p.name, str(p)))
    if not files:
        raise FileNotFoundError(f"no HAIM-MIMIC-MM pickles (pickle/NNNNNNNN.pkl) under {folder}")
    return files


def patient_tables(record: HaimPatientRecord, file: Path) -> tuple[dict[str, pd.DataFrame], list[np.ndarray]]:
    """Every published table (absent ones empty) and the ``imcxr`` images; wrong types raise."""
    tables: dict[str, pd.DataFrame] = {}
    for name in PATIENT_ICU_FIELDS:
        if name == "imcxr":
            continue
        value = record.fields.get(name)
        if value is not None and not isinstance(value, pd.DataFrame):
            raise HaimPickleError(f"{file}: {name} is a {type(value).__name__}, not a DataFrame")
        tables[name] = pd.DataFrame() if value is None else value
    images = record.fields.get("imcxr")
    images = [] if images is None else images
    if not isinstance(images, list | tuple) or not all(isinstance(a, np.ndarray) for a in images):
        raise HaimPickleError(f"{file}: imcxr is not a list of arrays")
    return tables, list(images)


def _int(value: Any) -> int | None:
    number = pd.to_numeric(pd.Series([value]), errors="coerce").iloc[0]
    return int(number) if pd.notna(number) else None


def _time(value: Any) -> pd.Timestamp | None:
    t = _as_time(pd.Series([value], dtype="object")).iloc[0]
    return None if pd.isna(t) else pd.Timestamp(t)


def _row(frame: pd.DataFrame, hadm_id: int | None = None) -> dict[str, Any]:
    """The first row (of the admission, where the table has ``hadm_id``), as a dict; {} if none: another
    admission's row would lend this stay its outcome."""
    if hadm_id is not None and "hadm_id" in frame.columns:
        frame = frame[pd.to_numeric(frame["hadm_id"], errors="coerce") == hadm_id]
    return {str(k): v for k, v in frame.iloc[0].items()} if len(frame) else {}


def _hours(later: pd.Timestamp | None, earlier: pd.Timestamp | None) -> float | None:
    return None if later is None or earlier is None else (later - earlier).total_seconds() / 3600.0


def _died(admission: Mapping[str, Any]) -> bool | None:
    flag = pd.to_numeric(pd.Series([admission.get("hospital_expire_flag")]), errors="coerce").iloc[0]
    if pd.notna(flag):
        return bool(flag)
    if _time(admission.get("deathtime")) is not None:
        return True
    return False if _time(admission.get("dischtime")) is not None else None


def _labels(admission: Mapping[str, Any], stay: Mapping[str, Any], at: pd.Timestamp) -> StayLabels:
    intime, outtime = _time(stay.get("intime")), _time(stay.get("outtime"))
    icu_los = _hours(outtime, intime)
    if icu_los is None and pd.notna(pd.to_numeric(pd.Series([stay.get("los")]), errors="coerce").iloc[0]):
        icu_los = float(stay["los"]) * 24.0
    return StayLabels(died_in_hospital=_died(admission), icu_los_hours=icu_los,
                      hours_to_discharge=_hours(_time(admission.get("dischtime")), at),
                      hours_to_death=_hours(_time(admission.get("deathtime")), at))


def _own_stay(frame: pd.DataFrame, stay_id: int) -> pd.Series:
    """Rows of this stay, or of no stay (hospital-level rows); rows of another stay are not ours."""
    if STAY not in frame.columns:
        return pd.Series(True, index=frame.index)
    ids = pd.to_numeric(frame[STAY], errors="coerce")
    return ids.isna() | (ids == stay_id)


def cut_table(frame: pd.DataFrame, table: str, stay_id: int,
              limit: pd.Timestamp) -> tuple[pd.DataFrame, np.ndarray, dict[str, int]]:
    """A table's rows of this stay known at or before ``limit`` (``keep`` columns only), the kept-row mask,
    and how many rows went: known after the limit, no time at all, another stay's."""
    own = _own_stay(frame, stay_id)
    known = row_known_time(frame, table)
    keep = own & known.notna() & (known <= limit)
    counts = {"rows_dropped_after_prediction": int((own & (known > limit)).sum()),
              "rows_dropped_untimed": int((own & known.isna()).sum()),
              "rows_of_other_stays": int((~own).sum())}
    mask = keep.to_numpy(dtype=bool)
    kept = frame[mask].reindex(columns=list(EVENT_TABLES[table].keep)).reset_index(drop=True)
    kept.insert(0, KNOWN, known.to_numpy()[mask])
    kept.insert(0, STAY, stay_id)
    return kept, mask, counts


def _static(tables: Mapping[str, pd.DataFrame], stay: Mapping[str, Any], hadm_id: int) -> dict[str, Any]:
    admission = _row(tables["admissions"], hadm_id) or _row(tables["core"], hadm_id)
    patient = _row(tables["demographics"]) or _row(tables["core"], hadm_id)
    sources = {"admissions": admission, "demographics": patient, "icustays": stay}
    return {c: sources[t].get(c) for t, cols in STATIC_COLUMNS.items() for c in cols}


@dataclass
class _Loaded:
    sample: HaimStay
    static: dict[str, Any]
    events: dict[str, pd.DataFrame]
    images: list[np.ndarray]
    counts: Counter[str]


def _load_stay(tables: Mapping[str, pd.DataFrame], images: list[np.ndarray], stay: Mapping[str, Any], file: Path,
               hours: float, anchor: Literal["intime", "admittime"]) -> _Loaded | None:
    subject_id, hadm_id, stay_id = (_int(stay.get(k)) for k in ("subject_id", "hadm_id", STAY))
    admission = _row(tables["admissions"], hadm_id) or _row(tables["core"], hadm_id)
    intime, start = _time(stay.get("intime")), _time((stay if anchor == "intime" else admission).get(anchor))
    if subject_id is None or hadm_id is None or stay_id is None or intime is None or start is None:
        return None
    at = start + pd.Timedelta(hours=hours)
    events, kept_images, counts = _cut_all(tables, images, stay_id, at)
    outtime, death = _time(stay.get("outtime")), _time(admission.get("deathtime"))
    sample = HaimStay(haim_id=int(file.stem), file=file.name, subject_id=subject_id, hadm_id=hadm_id,
                      stay_id=stay_id, intime=intime, prediction_time=at,
                      in_icu_at_prediction=outtime is not None and outtime > at,
                      alive_at_prediction=death is None or death > at, labels=_labels(admission, stay, at))
    return _Loaded(sample, _static(tables, stay, hadm_id), events, kept_images, counts)


def _cut_all(tables: Mapping[str, pd.DataFrame], images: list[np.ndarray], stay_id: int,
             at: pd.Timestamp) -> tuple[dict[str, pd.DataFrame], list[np.ndarray], Counter[str]]:
    """Every event table cut at ``at``; the images of the kept ``cxr`` rows (``imcxr`` is aligned by position)."""
    counts: Counter[str] = Counter()
    events: dict[str, pd.DataFrame] = {}
    masks: dict[str, np.ndarray] = {}
    for table in EVENT_TABLES:
        events[table], masks[table], dropped = cut_table(tables[table], table, stay_id, at)
        counts.update({f"{table}_{k}": v for k, v in dropped.items()})
    counts.update({f"{t}_rows_never_features": len(tables[t]) for t in NEVER_FEATURES})
    if len(images) == len(tables["cxr"]):
        return events, [a for a, k in zip(images, masks["cxr"], strict=True) if k], counts
    counts["imcxr_not_aligned_with_cxr"] += bool(images)
    return events, [], counts


def _tally(cohort: HaimCohort) -> None:
    c = cohort.counts
    c["stays"] = len(cohort.samples)
    c["patients"] = len({s.subject_id for s in cohort.samples})
    c["left_icu_before_prediction"] = sum(not s.in_icu_at_prediction for s in cohort.samples)
    c["died_before_prediction"] = sum(not s.alive_at_prediction for s in cohort.samples)
    c["no_hospital_outcome"] = sum(s.labels.died_in_hospital is None for s in cohort.samples)
    c["eligible"] = sum(s.eligible for s in cohort.samples)
    c["eligible_died_in_hospital"] = sum(s.eligible and bool(s.labels.died_in_hospital) for s in cohort.samples)


def _read(file: Path, skip_unreadable: bool,
          unreadable: list[str]) -> tuple[dict[str, pd.DataFrame], list[np.ndarray]] | None:
    try:
        return patient_tables(read_patient_pickle(file), file)
    except RefusedPickleError:
        raise
    except HaimPickleError:
        if not skip_unreadable:
            raise
        unreadable.append(str(file))
        return None


def load_haim_mm(folder: Path | str, prediction_hours: float = 24.0, anchor: Literal["intime", "admittime"] = "intime",
                 skip_unreadable: bool = False, log: Callable[[str], None] = lambda _m: None) -> HaimCohort:
    """A HAIM-MIMIC-MM folder -> one :class:`HaimStay` per ICU stay, tables cut at each prediction time.

    Fails on the first unreadable file (:class:`HaimPickleError` naming it) unless ``skip_unreadable``,
    which skips, counts and lists such files instead; a refused pickle always fails. A stay found in two
    files fails too: which one is right cannot be told.
    """
    files = haim_files(folder)
    counts: Counter[str] = Counter(files=len(files))
    loaded: list[_Loaded] = []
    unreadable: list[str] = []
    seen: dict[int, str] = {}
    for file in files:
        read = _read(file, skip_unreadable, unreadable)
        if read is None:
            continue
        tables, images = read
        stays = [_row(tables["icustays"].iloc[[i]]) for i in range(len(tables["icustays"]))]
        counts["files_without_icu_stay"] += not stays
        for stay in stays:
            one = _load_stay(tables, images, stay, file, prediction_hours, anchor)
            if one is None:
                counts["stays_without_ids_or_times"] += 1
                continue
            if one.sample.stay_id in seen:
                raise HaimPickleError(f"{file}: stay {one.sample.stay_id} is also in {seen[one.sample.stay_id]}")
            seen[one.sample.stay_id] = str(file)
            counts.update(one.counts)
            loaded.append(one)
    counts["unreadable_files"] = len(unreadable)
    cohort = _assemble(loaded, dict(counts), unreadable)
    log(f"HAIM-MIMIC-MM: {cohort.counts['stays']} stays of {cohort.counts['patients']} patients, "
        f"{cohort.counts['eligible']} eligible at {prediction_hours:g} h after {anchor}; "
        f"{len(unreadable)} unreadable files skipped")
    return cohort


def _assemble(loaded: list[_Loaded], counts: dict[str, int], unreadable: list[str]) -> HaimCohort:
    static = pd.DataFrame([x.static for x in loaded], index=pd.Index([x.sample.stay_id for x in loaded], name=STAY),
                          columns=[c for cols in STATIC_COLUMNS.values() for c in cols])
    events = {t: pd.concat([x.events[t] for x in loaded], ignore_index=True) if loaded else
              pd.DataFrame(columns=[STAY, KNOWN, *spec.keep]) for t, spec in EVENT_TABLES.items()}
    cohort = HaimCohort([x.sample for x in loaded], static, events,
                        {x.sample.stay_id: x.images for x in loaded}, counts, unreadable)
    _tally(cohort)
    return cohort


# ---------------------------------------------------------------------------------------------------------------
# Features: pure functions, one per modality, each -> (names, matrix with one row per id)


def _text(values: pd.Series) -> pd.Series:
    """Stripped text, "" where missing, whatever the column's dtype (an all-missing column is float)."""
    return values.astype(object).where(values.notna(), "").astype(str).str.strip()


def _onehot(values: pd.Series, cats: Sequence[str], prefix: str) -> tuple[list[str], np.ndarray]:
    text = _text(values)
    out = np.zeros((len(values), len(cats) + 1))
    index = {c: i for i, c in enumerate(cats)}
    for r, v in enumerate(text):
        out[r, index.get(v, len(cats))] = 1.0
    return [f"{prefix}={c}" for c in cats] + [f"{prefix}=other"], out


def _unit(careunit: Any) -> str:
    """'Medical Intensive Care Unit (MICU)' -> 'MICU'."""
    found = re.search(r"\(([^)]+)\)\s*$", str(careunit))
    return found.group(1) if found else str(careunit)


def demographics(cohort: HaimCohort, ids: Sequence[int]) -> tuple[list[str], np.ndarray]:
    """Age, sex, hours from hospital to ICU admission, emergency admission, insurance, marital status, unit."""
    st = cohort.static.reindex(list(ids))
    gender = st["gender"].astype("object")
    male = np.where(gender.isna(), np.nan, (gender.astype(str).str.upper() == "M").astype(float))
    to_icu = (_as_time(st["intime"]) - _as_time(st["admittime"])).dt.total_seconds() / 3600.0
    emergency = _text(st["admission_type"]).str.upper().str.contains("EMER|URGENT")
    names = ["anchor_age", "male", "hours_admission_to_icu", "emergency_admission"]
    cols = [pd.to_numeric(st["anchor_age"], errors="coerce").to_numpy(float), male, to_icu.to_numpy(float),
            np.where(st["admission_type"].isna(), np.nan, emergency.astype(float))]
    blocks = [_onehot(st["insurance"], INSURANCE, "insurance"), _onehot(st["marital_status"], MARITAL, "marital"),
              _onehot(st["first_careunit"].map(_unit, na_action="ignore"), CARE_UNITS, "unit")]
    names += [n for b in blocks for n in b[0]]
    return names, np.hstack([np.column_stack(cols), *[b[1] for b in blocks]])


def _signal_stats(frame: pd.DataFrame, ids: Sequence[int], signals: Mapping[str, tuple[int, ...]],
                  prefix: str) -> tuple[list[str], np.ndarray]:
    """count/mean/min/max/std/last of ``valuenum`` per (stay, signal); NaN (count 0) where none."""
    names = [f"{prefix}_{s}_{st}" for s in signals for st in STATS]
    out = np.full((len(ids), len(names)), np.nan)
    out[:, [i for i, n in enumerate(names) if n.endswith("_n")]] = 0.0
    lookup = {float(i): s for s, items in signals.items() for i in items}
    f = pd.DataFrame({STAY: frame[STAY], KNOWN: frame[KNOWN],
                      "signal": pd.to_numeric(frame["itemid"], errors="coerce").astype(float).map(lookup),
                      "value": pd.to_numeric(frame["valuenum"], errors="coerce")}).dropna(subset=["signal", "value"])
    g = f.sort_values([STAY, "signal", KNOWN], kind="mergesort").groupby([STAY, "signal"], sort=False)["value"]
    agg = pd.DataFrame({"n": g.size(), "mean": g.mean(), "min": g.min(), "max": g.max(), "std": g.std(ddof=0),
                        "last": g.last()})
    row, col = {s: i for i, s in enumerate(ids)}, {n: i for i, n in enumerate(names)}
    for (stay, sig), values in agg.iterrows():
        if int(stay) in row:
            for st in STATS:
                out[row[int(stay)], col[f"{prefix}_{sig}_{st}"]] = float(values[st])
    return names, out


def time_series(cohort: HaimCohort, ids: Sequence[int]) -> tuple[list[str], np.ndarray]:
    """Per-signal statistics of chartevents (vitals) and labevents up to the prediction time."""
    parts = [_signal_stats(cohort.events["chartevents"], ids, CHART_SIGNALS, "chart"),
             _signal_stats(cohort.events["labevents"], ids, LAB_SIGNALS, "lab")]
    return [n for p in parts for n in p[0]], np.hstack([p[1] for p in parts])


def _notes(cohort: HaimCohort) -> pd.DataFrame:
    frames = [cohort.events[t][[STAY, KNOWN, "text"]].assign(source=t) for t in NOTE_TABLES]
    notes = pd.concat(frames, ignore_index=True)
    notes = notes[notes["text"].notna() & (notes["text"].astype(str).str.strip() != "")]
    return notes.sort_values([STAY, KNOWN], kind="mergesort")


def notes_text(cohort: HaimCohort, ids: Sequence[int]) -> list[str]:
    """Each stay's notes known by the prediction time, oldest first, for a text encoder (TF-IDF, a BERT)."""
    notes = _notes(cohort)
    lines = "[" + notes["source"] + "] " + notes["text"].astype(str)
    joined = lines.groupby(notes[STAY]).agg("\n".join)
    return [str(joined.get(i, "")) for i in ids]


def note_counts(cohort: HaimCohort, ids: Sequence[int]) -> tuple[list[str], np.ndarray]:
    """How many notes of each kind are known by the prediction time, and their total length."""
    notes = _notes(cohort)
    counts = notes.groupby([STAY, "source"]).size().unstack(fill_value=0).reindex(index=list(ids), columns=list(
        NOTE_TABLES), fill_value=0)
    chars = notes["text"].astype(str).str.len().groupby(notes[STAY]).sum().reindex(list(ids), fill_value=0)
    names = [f"n_{t}" for t in NOTE_TABLES] + ["note_chars"]
    return names, np.column_stack([counts.to_numpy(float), chars.to_numpy(float)])


def image_metadata(cohort: HaimCohort, ids: Sequence[int]) -> tuple[list[str], np.ndarray]:
    """Chest X-rays known by the prediction time: how many, with pixels, per view, hours since the last."""
    cxr = cohort.events["cxr"]
    view = _text(cxr["ViewPosition"]).str.upper()
    per = pd.DataFrame({STAY: cxr[STAY], "n": 1.0, "ap": (view == "AP") * 1.0, "pa": (view == "PA") * 1.0,
                        "lateral": view.isin(["LATERAL", "LL"]) * 1.0}).groupby(STAY).sum()
    per = per.reindex(list(ids), fill_value=0.0)
    last = cxr.groupby(STAY)[KNOWN].max().reindex(list(ids))
    since = (cohort.prediction_times(ids) - last.astype(TIME)).dt.total_seconds() / 3600.0
    arrays = [float(len(cohort.images.get(i, []))) for i in ids]
    names = ["n_cxr", "n_cxr_arrays", "n_ap", "n_pa", "n_lateral", "hours_since_last_cxr"]
    return names, np.column_stack([per["n"].to_numpy(float), arrays, per["ap"].to_numpy(float),
                                   per["pa"].to_numpy(float), per["lateral"].to_numpy(float), since.to_numpy(float)])


MODALITIES: dict[str, Callable[[HaimCohort, Sequence[int]], tuple[list[str], np.ndarray]]] = {
    "demo": demographics, "ts": time_series, "notes": note_counts, "img": image_metadata}


def features(cohort: HaimCohort, ids: Sequence[int]) -> tuple[list[str], np.ndarray]:
    """Every modality side by side, names prefixed ``modality:`` (the notes' text: :func:`notes_text`)."""
    blocks = {m: fn(cohort, ids) for m, fn in MODALITIES.items()}
    names = [f"{m}:{n}" for m, (ns, _) in blocks.items() for n in ns]
    return names, np.hstack([x for _, x in blocks.values()])


# ---------------------------------------------------------------------------------------------------------------
# A synthetic miniature in the published layout


@dataclass(frozen=True)
class Miniature:
    """What :func:`write_synthetic_miniature` wrote."""

    folder: Path
    files: list[Path]
    expected_counts: dict[str, int]
    """Rows the loader must drop at ``prediction_hours`` after ICU admission, tallied while writing."""


LOS_HOURS = (70.0, 18.0, 52.0, 96.0, 40.0, 30.0)
"""ICU length of stay by patient index; the second patient leaves (dies) before 24 h."""


def _published(rows: list[dict[str, Any]], table: str) -> pd.DataFrame:
    """A frame as pandas 1.1 wrote them: text and column names as ``object``, ids as float (dask's assume_missing)."""
    frame = pd.DataFrame(rows) if rows else pd.DataFrame({c: pd.Series(dtype=object) for c in _columns(table)})
    for c in frame.columns:
        if c in ("subject_id", "hadm_id", STAY, "itemid", "study_id", "hospital_expire_flag"):
            frame[c] = pd.to_numeric(frame[c], errors="coerce").astype(float)
        elif c in _DATETIMES:
            frame[c] = pd.to_datetime(frame[c]).astype("datetime64[ns]")
        elif frame[c].dtype.kind not in "fiubM":
            frame[c] = frame[c].astype(object)
    frame.columns = pd.Index([str(c) for c in frame.columns], dtype=object)
    return frame


_DATETIMES = {c for spec in EVENT_TABLES.values() for c in (*spec.times, *spec.days)} | {
    "admittime", "dischtime", "deathtime", "intime", "outtime", "StudyDateForm"}
"""Columns HAIM's ``load_mimiciv`` parsed to datetime64 (``dod`` it left as text)."""


def _columns(table: str) -> list[str]:
    spec = EVENT_TABLES.get(table)
    ids = ["subject_id", "hadm_id", STAY]
    return ids + list(dict.fromkeys([*spec.times, *spec.days, *spec.keep])) if spec else [*ids, "seq_num", "icd_code"]


class _Writer:
    """Rows of one pickle, with when each became known, for the expected counts."""

    def __init__(self) -> None:
        self.rows: dict[str, list[dict[str, Any]]] = {t: [] for t in PATIENT_ICU_FIELDS if t != "imcxr"}
        self.known: dict[str, list[datetime | None]] = {t: [] for t in self.rows}

    def add(self, table: str, row: dict[str, Any], known: datetime | None) -> None:
        self.rows[table].append(row)
        self.known[table].append(known)

    def expect(self, counts: Counter[str], at: datetime) -> None:
        for table, known in self.known.items():
            if table in EVENT_TABLES:
                counts[f"{table}_rows_dropped_after_prediction"] += sum(k is not None and k > at for k in known)
                counts[f"{table}_rows_dropped_untimed"] += sum(k is None for k in known)
            elif table in NEVER_FEATURES:
                counts[f"{table}_rows_never_features"] += len(known)


@dataclass(frozen=True)
class _Stay:
    subject_id: int
    hadm_id: int
    stay_id: int
    intime: datetime
    outtime: datetime


@dataclass(frozen=True)
class _Admission:
    index: int
    subject_id: int
    hadm_id: int
    admittime: datetime
    dischtime: datetime
    deathtime: datetime | None
    stays: tuple[_Stay, ...]


def _plan(index: int, rng: np.random.Generator) -> _Admission:
    """One patient's admission: the third patient has two ICU stays, odd-numbered patients die in the ICU."""
    subject, hadm = 10_000_000 + 1000 * index, 20_000_000 + 1000 * index
    admittime = datetime(2150, 1, 1, 6) + timedelta(days=40 * index, hours=int(rng.integers(0, 12)))
    los = LOS_HOURS[index % len(LOS_HOURS)]
    intime = admittime + timedelta(hours=int(rng.integers(2, 10)))
    stays = [_Stay(subject, hadm, 30_000_000 + 1000 * index, intime, intime + timedelta(hours=los))]
    if index % len(LOS_HOURS) == 2:
        second = stays[0].outtime + timedelta(hours=20)
        stays.append(_Stay(subject, hadm, stays[0].stay_id + 1, second, second + timedelta(hours=40)))
    death = stays[-1].outtime if index % 2 == 1 else None
    discharge = death or stays[-1].outtime + timedelta(hours=int(rng.integers(24, 72)))
    return _Admission(index, subject, hadm, admittime, discharge, death, tuple(stays))


def _static_rows(w: _Writer, adm: _Admission, stay: _Stay) -> None:
    died = adm.deathtime is not None
    ids = {"subject_id": adm.subject_id, "hadm_id": adm.hadm_id}
    w.add("admissions", {**ids, "admittime": adm.admittime, "dischtime": adm.dischtime, "deathtime": adm.deathtime,
                         "admission_type": ("EW EMER.", "URGENT", "ELECTIVE")[adm.index % 3],
                         "admission_location": "EMERGENCY ROOM", "discharge_location": "DIED" if died else "HOME",
                         "insurance": INSURANCE[adm.index % 3], "language": "ENGLISH",
                         "marital_status": MARITAL[adm.index % 4], "ethnicity": "UNKNOWN",
                         "hospital_expire_flag": int(died)}, None)
    w.add("demographics", {"subject_id": adm.subject_id, "gender": "MF"[adm.index % 2],
                           "anchor_age": 50 + 7 * adm.index, "anchor_year": 2150, "anchor_year_group": "2008 - 2010",
                           "dod": adm.deathtime.date().isoformat() if adm.deathtime else None}, None)
    w.add("icustays", {**ids, STAY: stay.stay_id, "first_careunit": "Medical Intensive Care Unit (MICU)",
                       "last_careunit": "Coronary Care Unit (CCU)", "intime": stay.intime, "outtime": stay.outtime,
                       "los": (stay.outtime - stay.intime).total_seconds() / 86400.0}, None)
    for other in adm.stays:
        w.add("transfers", {**ids, "eventtype": "admit", "careunit": "Medical Intensive Care Unit (MICU)",
                            "intime": other.intime, "outtime": other.outtime}, other.intime)
    for code in ("I214", "J9601"):  # drgcodes too: the published get_patient_icustay assigns diagnoses to it
        for table in ("diagnoses_icd", "drgcodes"):
            w.add(table, {**ids, "seq_num": 1, "icd_code": code, "icd_version": "10"}, None)


_VITALS = {220045: ("Heart Rate", 85.0, 12.0), 220277: ("O2 saturation pulseoxymetry", 96.0, 2.0),
           220179: ("Non Invasive Blood Pressure systolic", 118.0, 15.0),
           220180: ("Non Invasive Blood Pressure diastolic", 65.0, 9.0),
           220181: ("Non Invasive Blood Pressure mean", 82.0, 10.0), 220210: ("Respiratory Rate", 18.0, 4.0)}
_LABS = {50813: ("Lactate", 1.8, 0.8), 50912: ("Creatinine", 1.1, 0.4), 50971: ("Potassium", 4.1, 0.4),
         50983: ("Sodium", 139.0, 3.0), 51222: ("Hemoglobin", 11.0, 1.5), 51301: ("White Blood Cells", 9.0, 3.0)}


def _chart(w: _Writer, stay: _Stay, at: datetime, rng: np.random.Generator) -> None:
    """Vitals every 2 h of the stay, plus two rows at the edge: one charted before but stored after the
    prediction time (dropped), one stored exactly at it (kept)."""
    edges = [(at - timedelta(minutes=10), at + timedelta(minutes=10)), (at - timedelta(minutes=5), at)]
    edges = edges if at < stay.outtime else []
    times = [(stay.intime + timedelta(hours=h), None) for h in np.arange(1.0, (stay.outtime - stay.intime)
                                                                         .total_seconds() / 3600.0, 2.0)]
    for chart, stored in [*times, *edges]:
        for item, (label, mean, sd) in _VITALS.items():
            if stored is not None and item != 220045:
                continue
            value = round(float(rng.normal(mean, sd)), 1)
            store = stored or chart + timedelta(minutes=int(rng.integers(1, 30)))
            w.add("chartevents", {"subject_id": stay.subject_id, "hadm_id": stay.hadm_id, STAY: stay.stay_id,
                                  "charttime": chart, "storetime": store, "itemid": item, "label": label,
                                  "value": str(value), "valuenum": value}, max(chart, store))


def _labs(w: _Writer, adm: _Admission, stay: _Stay, at: datetime, rng: np.random.Generator) -> None:
    """Labs every 8 h of the admission (resulted 1-3 h later), a lactate drawn before the prediction time and
    resulted after it, and one row with no time."""
    draws = [adm.admittime + timedelta(hours=h) for h in range(1, int((adm.dischtime - adm.admittime)
                                                                       .total_seconds() // 3600), 8)]
    ids = {"subject_id": adm.subject_id, "hadm_id": adm.hadm_id}
    for draw in draws:
        for item, (label, mean, sd) in _LABS.items():
            value, store = round(float(rng.normal(mean, sd)), 2), draw + timedelta(hours=int(rng.integers(1, 4)))
            w.add("labevents", {**ids, "charttime": draw, "storetime": store, "itemid": item, "label": label,
                                "fluid": "Blood", "value": str(value), "valuenum": value}, store)
    late = (at - timedelta(minutes=30), at + timedelta(minutes=90))
    if late[1] < adm.dischtime:
        w.add("labevents", {**ids, "charttime": late[0], "storetime": late[1], "itemid": 50813, "label": "Lactate",
                            "fluid": "Blood", "value": "9.9", "valuenum": 9.9}, late[1])
    w.add("labevents", {**ids, "charttime": None, "storetime": None, "itemid": 50912, "label": "Creatinine",
                        "fluid": "Blood", "value": "0.9", "valuenum": 0.9}, None)


def _cxr_row(stay: _Stay, when: datetime, view: str, k: int) -> dict[str, Any]:
    return {"dicom_id": f"d{stay.stay_id}-{k}", "subject_id": stay.subject_id, "study_id": 50_000_000 + k,
            "split": "train", "ViewPosition": view, "Rows": 8, "Columns": 8,
            "PerformedProcedureStepDescription": "CHEST (PORTABLE AP)",
            "StudyDate": int(when.strftime("%Y%m%d")), "StudyTime": float(when.strftime("%H%M%S.%f")[:-3]),
            "StudyDateForm": pd.Timestamp(when.date()), "StudyTimeForm": when.time(),
            "charttime": when.replace(second=0, microsecond=0), "Cardiomegaly": 1.0, "Edema": 0.0,
            "No Finding": float("nan")}


def _images_and_notes(w: _Writer, adm: _Admission, stay: _Stay, at: datetime) -> list[np.ndarray]:
    """Chest X-rays (one from months before, one early in the stay, one after the prediction time), their
    reports, an ECG note and the discharge summary; pixel arrays only for even-numbered patients."""
    shots = [(adm.admittime - timedelta(days=100, seconds=-17), "PA"),
             (stay.intime + timedelta(hours=2, seconds=31), "AP"), (stay.intime + timedelta(hours=30), "AP")]
    shots = [(when, view) for when, view in shots if when < adm.dischtime]
    ids = {"subject_id": stay.subject_id, "hadm_id": stay.hadm_id, STAY: stay.stay_id}
    for k, (when, view) in enumerate(shots):
        w.add("cxr", _cxr_row(stay, when, view, k), when)
        report = when + timedelta(hours=1)
        w.add("radnotes", {**ids, "note_type": "RR", "charttime": when, "storetime": report,
                           "text": f"{view} chest radiograph {k}: lines and tubes in place, mild edema."}, report)
    ecg = stay.intime + timedelta(minutes=30)
    w.add("ecgnotes", {**ids, "note_type": "ECG", "charttime": ecg, "storetime": ecg, "text": "Sinus rhythm."}, ecg)
    summary = "Patient expired." if adm.deathtime else "Discharged home in stable condition."
    w.add("dsnotes", {**ids, "note_type": "DS", "charttime": adm.dischtime, "storetime": adm.dischtime,
                      "text": summary}, adm.dischtime)
    if adm.index % 2:
        return []
    return [np.full((8, 8), 16 * k + adm.index, dtype=np.uint8) for k in range(len(shots))]


def _fields(w: _Writer, images: list[np.ndarray]) -> dict[str, object]:
    """The 29 attributes; ``core`` is admissions + patients + transfers, merged as get_patient_icustay does."""
    tables = {t: _published(rows, t) for t, rows in w.rows.items()}
    tables["core"] = tables["admissions"].merge(tables["demographics"], how="left").merge(tables["transfers"],
                                                                                         how="left")
    fields: dict[str, object] = {**tables, "imcxr": images}
    return {name: fields[name] for name in PATIENT_ICU_FIELDS}


def write_synthetic_miniature(folder: Path | str, patients: int = 4, seed: int = 0,
                              prediction_hours: float = 24.0) -> Miniature:
    """A few synthetic patients in the published layout: ``pickle/{i:08d}.pkl`` (``MIMIC_IV_HAIM_API.Patient_ICU``,
    protocol 4, pandas-1.1-style dtypes) plus ``pickle/haim_mimiciv_key_ids.csv``. Rows fall on both sides of
    ``prediction_hours`` after each ICU admission, some deliberately at its edge; odd-numbered patients die."""
    root = Path(folder)
    rng = np.random.default_rng(seed)
    expected: Counter[str] = Counter()
    files: list[Path] = []
    keys: list[dict[str, int]] = []
    for adm in (_plan(i, rng) for i in range(patients)):
        for stay in adm.stays:
            w, at = _Writer(), stay.intime + timedelta(hours=prediction_hours)
            _static_rows(w, adm, stay)
            _chart(w, stay, at, rng)
            _labs(w, adm, stay, at, rng)
            images = _images_and_notes(w, adm, stay, at)
            w.expect(expected, at)
            files.append(write_patient_pickle(root / "pickle" / f"{len(files):08d}.pkl", _fields(w, images)))
            keys.append({"subject_id": stay.subject_id, "hadm_id": stay.hadm_id, STAY: stay.stay_id})
    pd.DataFrame(keys).to_csv(root / "pickle" / KEY_IDS_FILE, index=False)
    return Miniature(root, files, dict(expected))
