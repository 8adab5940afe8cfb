"""One subject's labs, diagnoses and prescriptions from the MIMIC-IV or MIMIC-III demo, for the nutrition analysis.

Both layouts are read: MIMIC-IV (``hosp/labevents.csv.gz``, ``hosp/d_labitems.csv.gz``,
``hosp/diagnoses_icd.csv.gz`` with ``icd_code``/``icd_version``, ``hosp/prescriptions.csv.gz``) and
the MIMIC-III demo as converted here (``csv/*.csv.gz``, lower-case columns, ``icd9_code``). The
files are streamed row by row and only the subject's rows are kept; the lab dictionary decides
which items are which analyte (by label, blood only), so no item number is assumed.

Diagnoses become conditions by ICD prefix (ICD-9 and ICD-10):

=====================  ===================  ============================
condition              ICD-9                ICD-10
=====================  ===================  ============================
heart_failure          428                  I50
renal_failure          584, 585, 586        N17, N18, N19
hypertension           401-405              I10-I13, I15, I16
diabetes               250                  E08-E11, E13
coronary_artery_dis.   410-414              I20-I25
atrial_fibrillation    42731                I48
anaemia                280-285              D50-D64
=====================  ===================  ============================

Only prescriptions the rules look at are kept (potassium-sparing drugs, ACE inhibitors, ARBs).
MIMIC's dates are shifted into the future for de-identification; :func:`shift_to` moves a
subject's timeline so its latest lab lands at a chosen moment, keeping every interval.
"""

from __future__ import annotations

import csv
import gzip
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from cardiogate.cloud.care.labs import ACE_INHIBITORS, ARBS, POTASSIUM_SPARING, LabError, analyte_of, to_canonical
from cardiogate.cloud.care.nutrition import LabValue

# d_labitems label (lower case) -> analyte key; fluid must be blood
LAB_LABELS: dict[str, str] = {
    "potassium": "potassium", "potassium, whole blood": "potassium", "magnesium": "magnesium",
    "sodium": "sodium", "sodium, whole blood": "sodium", "calcium, total": "calcium", "hemoglobin": "haemoglobin",
    "ferritin": "ferritin", "cholesterol, ldl, calculated": "ldl", "cholesterol, ldl, measured": "ldl",
    "cholesterol, hdl": "hdl", "cholesterol, total": "total_cholesterol", "triglycerides": "triglycerides",
    "glucose": "glucose", "glucose, whole blood": "glucose", "% hemoglobin a1c": "hba1c",
}

ICD9: dict[str, tuple[str, ...]] = {
    "heart_failure": ("428",), "renal_failure": ("584", "585", "586"),
    "hypertension": ("401", "402", "403", "404", "405"), "diabetes": ("250",),
    "coronary_artery_disease": ("410", "411", "412", "413", "414"), "atrial_fibrillation": ("42731",),
    "anaemia": ("280", "281", "282", "283", "284", "285"),
}
ICD10: dict[str, tuple[str, ...]] = {
    "heart_failure": ("I50",), "renal_failure": ("N17", "N18", "N19"),
    "hypertension": ("I10", "I11", "I12", "I13", "I15", "I16"), "diabetes": ("E08", "E09", "E10", "E11", "E13"),
    "coronary_artery_disease": ("I20", "I21", "I22", "I23", "I24", "I25"), "atrial_fibrillation": ("I48",),
    "anaemia": tuple(f"D{n}" for n in range(50, 65)),
}
RELEVANT_DRUGS: tuple[str, ...] = (*POTASSIUM_SPARING, *ACE_INHIBITORS, *ARBS)


class MimicError(ValueError):
    """A folder that is not a MIMIC demo, or a subject it does not hold."""


@dataclass(frozen=True)
class Layout:
    edition: str  # MIMIC-IV | MIMIC-III
    folder: Path  # where the tables are

    def table(self, name: str) -> Path:
        path = self.folder / f"{name}.csv.gz"
        if not path.is_file():
            raise MimicError(f"{self.edition}: {path} is missing")
        return path


@dataclass(frozen=True)
class Diagnosis:
    code: str
    version: int
    condition: str


@dataclass(frozen=True)
class MimicSubject:
    subject_id: int
    edition: str
    labs: list[LabValue]
    diagnoses: list[Diagnosis]
    medications: list[str]
    skipped_labs: int  # rows of a known analyte without a usable value or unit

    @property
    def conditions(self) -> list[str]:
        return sorted({d.condition for d in self.diagnoses})


def layout_of(folder: Path) -> Layout:
    """Which demo ``folder`` holds (its top folder, or the ``hosp``/``csv`` folder itself)."""
    for edition, sub in (("MIMIC-IV", "hosp"), ("MIMIC-III", "csv")):
        for candidate in (folder / sub, folder):
            tables = (candidate / "labevents.csv.gz").is_file() and (candidate / "d_labitems.csv.gz").is_file()
            # a MIMIC-III csv/ folder also has labevents: MIMIC-IV is told by its hosp/ folder or its omr table
            if tables and (edition == "MIMIC-III" or candidate.name == "hosp" or (candidate / "omr.csv.gz").is_file()):
                return Layout(edition, candidate)
    raise MimicError(f"{folder} holds neither the MIMIC-IV (hosp/) nor the MIMIC-III (csv/) demo tables")


def _rows(path: Path) -> Iterator[dict[str, str]]:
    with gzip.open(path, "rt", encoding="utf-8", newline="") as fh:
        yield from csv.DictReader(fh)


def _subject_rows(path: Path, subject: str) -> Iterator[dict[str, str]]:
    for row in _rows(path):
        if row.get("subject_id") == subject:
            yield row


def _time(text: str) -> datetime:
    moment = datetime.fromisoformat(text.strip())
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def lab_items(layout: Layout) -> dict[str, str]:
    """itemid -> analyte key, from the lab dictionary."""
    items = {}
    for row in _rows(layout.table("d_labitems")):
        analyte = LAB_LABELS.get(row.get("label", "").strip().lower())
        if analyte is not None and row.get("fluid", "").strip().lower() == "blood":
            items[row["itemid"]] = analyte
    return items


def condition_of_code(code: str, version: int) -> str | None:
    table = ICD9 if version == 9 else ICD10
    normal = code.strip().upper().replace(".", "")
    for condition, prefixes in table.items():
        if normal.startswith(prefixes):
            return condition
    return None


def read_subject(folder: Path, subject_id: int) -> MimicSubject:
    """The subject's labs (canonical units), mapped diagnoses and relevant prescriptions."""
    layout = layout_of(folder)
    subject = str(subject_id)
    items = lab_items(layout)
    source = f"{layout.edition} demo labevents"
    labs: list[LabValue] = []
    skipped = 0
    seen = False
    for row in _subject_rows(layout.table("labevents"), subject):
        seen = True
        analyte = items.get(row.get("itemid", ""))
        if analyte is None:
            continue
        try:
            value = to_canonical(analyte_of(analyte), float(row["valuenum"]), row.get("valueuom") or "")
            labs.append(LabValue(analyte, value, _time(row["charttime"]), source))
        except (LabError, ValueError, KeyError):
            skipped += 1
    diagnoses: list[Diagnosis] = []
    for row in _subject_rows(layout.table("diagnoses_icd"), subject):
        seen = True
        code = row.get("icd_code") or row.get("icd9_code") or ""
        version = int(row.get("icd_version") or 9)
        condition = condition_of_code(code, version)
        if condition is not None:
            diagnoses.append(Diagnosis(code.strip(), version, condition))
    medications: set[str] = set()
    for row in _subject_rows(layout.table("prescriptions"), subject):
        seen = True
        drug = (row.get("drug") or "").strip().lower()
        medications.update(name for name in RELEVANT_DRUGS if name in drug)
    if not seen:
        raise MimicError(f"subject {subject_id} is not in the {layout.edition} demo at {layout.folder}")
    labs.sort(key=lambda lab: lab.taken_at)
    unique = sorted({(d.code, d.version): d for d in diagnoses}.values(), key=lambda d: (d.condition, d.code))
    return MimicSubject(subject_id, layout.edition, labs, unique, sorted(medications), skipped)


def shift_to(labs: list[LabValue], latest: datetime) -> list[LabValue]:
    """The labs moved in time so the newest lands at ``latest``, intervals kept (MIMIC's dates are shifted)."""
    if not labs:
        return []
    offset = latest - max(lab.taken_at for lab in labs)
    return [replace(lab, taken_at=lab.taken_at + offset) for lab in labs]
