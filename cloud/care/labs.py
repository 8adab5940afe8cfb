"""Lab analytes the nutrition analysis reads: names, units, reference ranges with their sources, and rules.

Every value is converted to one canonical unit per analyte before it is judged or stored, so a
potassium of 3.4 mEq/L and one of 3.4 mmol/L are the same finding, and a calcium in mmol/L is
compared with the mg/dL range correctly. Values outside physiologic bounds are refused rather than
judged: they are entry errors (a unit mix-up, a misplaced decimal point), not findings.

The ranges are general adult reference intervals or guideline targets, each with its source.
Laboratories' own intervals differ a little (method, population); the analysis supports a clinician
or dietitian and says so. The rule is inclusive: a value exactly at a limit is within the range;
just below the lower limit is low, just above the upper limit is high.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

Status = Literal["low", "high"]

# the conditions the analysis knows (recordCareConditions accepts exactly these)
CONDITIONS: tuple[str, ...] = (
    "heart_failure", "renal_failure", "hypertension", "diabetes", "coronary_artery_disease",
    "atrial_fibrillation", "anaemia",
)


class LabError(ValueError):
    """An analyte, unit or value the analysis cannot accept."""


@dataclass(frozen=True)
class Reference:
    """A reference interval or target in the canonical unit; a missing side has no limit."""

    low: float | None
    high: float | None
    source: str


@dataclass(frozen=True)
class Analyte:
    key: str
    name: str
    unit: str  # canonical
    units: Mapping[str, tuple[float, float]]  # accepted unit (normalised) -> (scale, offset) to canonical
    bounds: tuple[float, float]  # physiologically possible, canonical unit
    reference: Reference
    why_low: str = ""
    why_high: str = ""
    # a condition that changes the reference (e.g. ferritin in heart failure), first match wins
    by_condition: tuple[tuple[str, Reference], ...] = field(default=())

    def reference_for(self, conditions: Iterable[str]) -> Reference:
        known = set(conditions)
        for condition, reference in self.by_condition:
            if condition in known:
                return reference
        return self.reference


_MEDLINEPLUS = "MedlinePlus (U.S. National Library of Medicine), '{}' normal range for adults"
_MERCK = "Merck Manual Professional Version, 'Normal Laboratory Values: Blood, Plasma, and Serum'"
_ESC_EAS = ("2019 ESC/EAS Guidelines for the management of dyslipidaemias (Eur Heart J 2020;41:111-188), "
            "LDL-C goal for {} risk")

ANALYTES: dict[str, Analyte] = {a.key: a for a in (
    Analyte("potassium", "Potassium", "mmol/L", {"mmol/l": (1.0, 0.0), "meq/l": (1.0, 0.0)}, (1.0, 10.0),
            Reference(3.5, 5.0, _MERCK + ": potassium 3.5-5.0 mEq/L"),
            why_low="Low potassium prolongs repolarisation and raises the risk of ventricular arrhythmias "
                    "and of digoxin toxicity.",
            why_high="High potassium slows conduction and can cause bradycardia, heart block or cardiac arrest."),
    Analyte("magnesium", "Magnesium", "mg/dL", {"mg/dl": (1.0, 0.0), "mmol/l": (2.4305, 0.0),
                                                "meq/l": (1.21525, 0.0)}, (0.3, 10.0),
            Reference(1.7, 2.2, _MEDLINEPLUS.format("Magnesium blood test") + ": 1.7-2.2 mg/dL"),
            why_low="Low magnesium raises the risk of arrhythmias (torsades de pointes, atrial fibrillation) "
                    "and makes low potassium hard to correct.",
            why_high="High magnesium can cause bradycardia, hypotension and conduction block."),
    Analyte("sodium", "Sodium", "mmol/L", {"mmol/l": (1.0, 0.0), "meq/l": (1.0, 0.0)}, (100.0, 180.0),
            Reference(135.0, 145.0, _MEDLINEPLUS.format("Sodium blood test") + ": 135-145 mEq/L"),
            why_low="Low sodium in heart failure marks advanced disease and fluid overload; it is managed by "
                    "fluid restriction, not by eating more salt.",
            why_high="High sodium signals water deficit; salt intake matters for blood pressure and fluid "
                     "retention in heart failure."),
    Analyte("calcium", "Calcium (total)", "mg/dL", {"mg/dl": (1.0, 0.0), "mmol/l": (4.008, 0.0)}, (3.0, 20.0),
            Reference(8.5, 10.2, _MEDLINEPLUS.format("Calcium blood test") + ": 8.5-10.2 mg/dL"),
            why_low="Low calcium prolongs the QT interval and weakens contraction.",
            why_high="High calcium shortens the QT interval and can cause arrhythmias."),
    Analyte("haemoglobin", "Haemoglobin", "g/dL", {"g/dl": (1.0, 0.0), "g/l": (0.1, 0.0),
                                                   "mmol/l": (1.6114, 0.0)}, (2.0, 25.0),
            Reference(12.0, 17.2, "WHO 2011 haemoglobin thresholds for anaemia (below 12 g/dL in non-pregnant "
                                  "women, 13 g/dL in men; the lower one is used as sex is not recorded); upper "
                                  "limit from " + _MEDLINEPLUS.format("Complete blood count") + " (men, 17.2 g/dL)"),
            why_low="Anaemia raises the heart's workload, worsens angina and heart-failure symptoms.",
            why_high="A high haemoglobin thickens the blood and raises the risk of thrombosis."),
    Analyte("ferritin", "Ferritin", "ng/mL", {"ng/ml": (1.0, 0.0), "ug/l": (1.0, 0.0)}, (1.0, 100_000.0),
            Reference(15.0, None, "WHO 2020 guideline on ferritin concentrations: iron deficiency below 15 ug/L "
                                  "in apparently healthy adults"),
            why_low="Iron deficiency limits exercise capacity and worsens outcomes in heart failure, with or "
                    "without anaemia.",
            by_condition=(("heart_failure", Reference(100.0, None, "2021 ESC Guidelines for heart failure (Eur "
                                                                   "Heart J 2021;42:3599-3726): iron deficiency is "
                                                                   "ferritin < 100 ng/mL (or 100-299 with TSAT < "
                                                                   "20%)")),)),
    Analyte("ldl", "LDL cholesterol", "mg/dL", {"mg/dl": (1.0, 0.0), "mmol/l": (38.67, 0.0)}, (5.0, 1000.0),
            Reference(None, 116.0, _ESC_EAS.format("low") + ": < 3.0 mmol/L (116 mg/dL)"),
            why_high="LDL cholesterol causes atherosclerosis; lowering it lowers the risk of infarction and stroke.",
            by_condition=(
                ("coronary_artery_disease", Reference(None, 55.0, _ESC_EAS.format("very high") +
                                                      " (established ASCVD): < 1.4 mmol/L (55 mg/dL)")),
                ("diabetes", Reference(None, 70.0, _ESC_EAS.format("high") + " (diabetes): < 1.8 mmol/L (70 mg/dL)")),
                ("heart_failure", Reference(None, 100.0, _ESC_EAS.format("moderate") + ": < 2.6 mmol/L (100 mg/dL)")),
                ("hypertension", Reference(None, 100.0, _ESC_EAS.format("moderate") + ": < 2.6 mmol/L (100 mg/dL)")),
            )),
    Analyte("hdl", "HDL cholesterol", "mg/dL", {"mg/dl": (1.0, 0.0), "mmol/l": (38.67, 0.0)}, (5.0, 250.0),
            Reference(40.0, None, "NCEP ATP III (NHLBI 2002): HDL cholesterol below 40 mg/dL is low"),
            why_low="A low HDL cholesterol is a marker of raised cardiovascular risk."),
    Analyte("total_cholesterol", "Total cholesterol", "mg/dL", {"mg/dl": (1.0, 0.0), "mmol/l": (38.67, 0.0)},
            (30.0, 1500.0),
            Reference(None, 200.0, "NCEP ATP III (NHLBI 2002): desirable total cholesterol below 200 mg/dL"),
            why_high="A high total cholesterol, mostly LDL, raises the risk of coronary disease."),
    Analyte("triglycerides", "Triglycerides", "mg/dL", {"mg/dl": (1.0, 0.0), "mmol/l": (88.57, 0.0)},
            (10.0, 10_000.0),
            Reference(None, 150.0, "2019 ESC/EAS dyslipidaemia guidelines and NCEP ATP III: fasting triglycerides "
                                   "below 1.7 mmol/L (150 mg/dL)"),
            why_high="High triglycerides add to cardiovascular risk (remnant cholesterol)."),
    Analyte("glucose", "Glucose", "mg/dL", {"mg/dl": (1.0, 0.0), "mmol/l": (18.016, 0.0)}, (10.0, 2000.0),
            Reference(70.0, 180.0, "ADA Standards of Care in Diabetes: hypoglycaemia below 70 mg/dL (level 1); "
                                   "140-180 mg/dL target for patients in hospital. Samples are not known to be "
                                   "fasting, so the fasting limit (below 100 mg/dL) is not applied"),
            why_low="Hypoglycaemia triggers adrenergic surges, arrhythmias and ischaemia.",
            why_high="Hyperglycaemia worsens outcomes after infarction and in heart failure."),
    Analyte("hba1c", "HbA1c", "%", {"%": (1.0, 0.0), "mmol/mol": (0.09148, 2.152)}, (3.0, 20.0),
            Reference(None, 5.6, "ADA Standards of Care in Diabetes: HbA1c below 5.7% is normal (5.7-6.4% "
                                 "prediabetes, 6.5% or more diabetes)"),
            why_high="A raised HbA1c means sustained hyperglycaemia, a major coronary risk factor.",
            by_condition=(("diabetes", Reference(None, 7.0, "ADA Standards of Care in Diabetes: HbA1c goal "
                                                             "of about 7% for most non-pregnant adults")),)),
)}

_ALIASES: dict[str, str] = {
    "k": "potassium", "mg": "magnesium", "na": "sodium", "ca": "calcium", "hb": "haemoglobin", "hgb": "haemoglobin",
    "hemoglobin": "haemoglobin", "ldl_cholesterol": "ldl", "hdl_cholesterol": "hdl", "cholesterol": "total_cholesterol",
    "tg": "triglycerides", "a1c": "hba1c", "hemoglobin_a1c": "hba1c",
}


def analyte_of(name: str) -> Analyte:
    """The analyte a name (or common alias) denotes; raises :class:`LabError` for anything else."""
    key = "_".join(name.strip().lower().replace("-", " ").split())
    key = _ALIASES.get(key, key)
    analyte = ANALYTES.get(key)
    if analyte is None:
        raise LabError(f"unknown analyte {name!r}; known: {', '.join(sorted(ANALYTES))}")
    return analyte


def normalise_unit(unit: str) -> str:
    """One spelling per unit: lower case, no spaces, micro as 'u'."""
    return "".join(unit.split()).lower().replace("µ", "u").replace("μ", "u")


def to_canonical(analyte: Analyte, value: float, unit: str) -> float:
    """``value`` in ``unit`` converted to the analyte's canonical unit, checked to be finite and plausible."""
    if not math.isfinite(value):
        raise LabError(f"{analyte.key}: the value must be a finite number")
    conversion = analyte.units.get(normalise_unit(unit))
    if conversion is None:
        raise LabError(f"{analyte.key}: unknown unit {unit!r}; accepted: {', '.join(analyte.units)}")
    scale, offset = conversion
    canonical = round(value * scale + offset, 6)
    low, high = analyte.bounds
    if not low <= canonical <= high:
        raise LabError(f"{analyte.key}: {value:g} {unit} is outside physiologic bounds "
                       f"({low:g}-{high:g} {analyte.unit})")
    return canonical


def classify(analyte: Analyte, value: float, conditions: Iterable[str] = ()) -> Status | None:
    """low, high, or None within the range (inclusive at both limits); ``value`` in the canonical unit."""
    reference = analyte.reference_for(conditions)
    if reference.low is not None and value < reference.low:
        return "low"
    if reference.high is not None and value > reference.high:
        return "high"
    return None


# medications that keep potassium in the body
POTASSIUM_SPARING: tuple[str, ...] = ("spironolactone", "eplerenone", "amiloride", "triamterene", "finerenone")
ACE_INHIBITORS: tuple[str, ...] = ("benazepril", "captopril", "enalapril", "fosinopril", "lisinopril", "moexipril",
                                   "perindopril", "quinapril", "ramipril", "trandolapril")
ARBS: tuple[str, ...] = ("azilsartan", "candesartan", "eprosartan", "irbesartan", "losartan", "olmesartan",
                         "telmisartan", "valsartan")


def drugs_in(medications: Iterable[str], names: Iterable[str]) -> list[str]:
    """The names of ``names`` that occur in any of the medication texts (case-insensitive), sorted."""
    texts = [m.lower() for m in medications]
    return sorted({n for n in names if any(n in t for t in texts)})


def condition_of(name: str) -> str:
    """A condition of the vocabulary; raises :class:`LabError` for anything else."""
    key = "_".join(name.strip().lower().replace("-", " ").split())
    key = {"anemia": "anaemia", "kidney_failure": "renal_failure", "ckd": "renal_failure",
           "cad": "coronary_artery_disease", "af": "atrial_fibrillation"}.get(key, key)
    if key not in CONDITIONS:
        raise LabError(f"unknown condition {name!r}; known: {', '.join(CONDITIONS)}")
    return key
