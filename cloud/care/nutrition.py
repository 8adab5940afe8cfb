"""The nutrition analysis: from a patient's labs, conditions, medications and meals to findings and foods.

Pure: the caller loads the inputs and passes ``now``. The latest value of each analyte wins; a
latest value older than ``max_age`` is listed as stale evidence and judged not at all, since a
month-old potassium says little about today's. Findings carry the reference they were judged
against and its source. Suggestions answer deficiencies (and a high LDL, with fibre) from the food
table, under the patient's constraints:

* heart failure or hypertension: low sodium, no suggested food above the FDA "low sodium" cap;
* renal failure, a potassium-sparing drug, or a high potassium: no potassium push, no food above
  the NKF "high potassium" portion, and a constraint line saying why;
* an ACE inhibitor or ARB: a caution line (they raise potassium), suggestions still made;
* LDL or total cholesterol above target: no suggested food above the FSA "low" saturated fat.

Meals logged in the last 24 h are summed against the daily sodium limit (and, where potassium must
be limited, the daily potassium limit). The report supports a dietitian or clinician; it is not a
diagnosis or a prescription.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from cardiogate.cloud.care.foods import (
    LOW_SAT_FAT_G,
    LOW_SAT_FAT_SOURCE,
    LOW_SODIUM_CAP_MG,
    LOW_SODIUM_SOURCE,
    NUTRIENT_FIELDS,
    POTASSIUM_RICH_MG,
    POTASSIUM_RICH_SOURCE,
    Food,
    FoodTable,
    Limits,
    rank,
)
from cardiogate.cloud.care.labs import (
    ACE_INHIBITORS,
    ANALYTES,
    ARBS,
    POTASSIUM_SPARING,
    Analyte,
    classify,
    drugs_in,
)

NOTICE = ("This analysis supports, and does not replace, the judgement of a dietitian or clinician. Reference "
          "ranges are general adult intervals or guideline targets; the laboratory's own ranges and the patient's "
          "full history take precedence. Not a diagnosis or a prescription.")
DEFAULT_MAX_AGE = timedelta(days=30)
MEAL_WINDOW = timedelta(hours=24)
SODIUM_DAY_MG = 2000.0
SODIUM_DAY_SOURCE = "WHO 2012 guideline 'Sodium intake for adults and children': less than 2,000 mg sodium a day"
SODIUM_DAY_SOURCE_HF = ("2021 ESC Guidelines for heart failure: salt below 5 g a day (2,000 mg sodium); "
                        "WHO 2012: less than 2,000 mg sodium a day")
POTASSIUM_DAY_MG = 2000.0
POTASSIUM_DAY_SOURCE = ("National Kidney Foundation, 'Potassium and Your CKD Diet': a low-potassium diet is about "
                        "2,000 mg a day (the renal team sets the patient's own limit)")
SUGGESTIONS_PER_NUTRIENT = 5

# the nutrient the food suggestions of a finding target
_FOOD_FOR: dict[tuple[str, str], str] = {
    ("potassium", "low"): "potassium", ("magnesium", "low"): "magnesium", ("calcium", "low"): "calcium",
    ("haemoglobin", "low"): "iron", ("ferritin", "low"): "iron", ("ldl", "high"): "fibre",
}


@dataclass(frozen=True)
class LabValue:
    analyte: str  # an ANALYTES key
    value: float  # in the analyte's canonical unit
    taken_at: datetime
    source: str  # "lab input by clin3", "MIMIC-IV labevents", ...


@dataclass(frozen=True)
class MealItem:
    ndb_no: str
    description: str
    grams: float
    sodium_mg: float
    potassium_mg: float
    eaten_at: datetime


@dataclass(frozen=True)
class Finding:
    name: str
    amount: float | None
    unit: str
    status: str  # low | high
    reference_low: float | None
    reference_high: float | None
    reference_source: str
    why: str
    measured_at: datetime | None
    evidence: str


@dataclass(frozen=True)
class Suggestion:
    food: Food
    nutrient: str
    reason: str
    amount_per_100g: float
    unit: str
    amount_per_serving: float | None


@dataclass(frozen=True)
class Evidence:
    kind: str  # lab | condition | medication | meal
    label: str
    value: str
    at: datetime | None
    source: str


@dataclass(frozen=True)
class NutritionAnalysis:
    deficiencies: list[Finding]
    excesses: list[Finding]
    suggestions: list[Suggestion]
    constraints: list[str]
    evidence: list[Evidence]
    generated_at: datetime
    notice: str = NOTICE


def latest_per_analyte(labs: Iterable[LabValue]) -> dict[str, LabValue]:
    """The newest value of each analyte (ties: the later one given wins)."""
    latest: dict[str, LabValue] = {}
    for lab in labs:
        held = latest.get(lab.analyte)
        if held is None or lab.taken_at >= held.taken_at:
            latest[lab.analyte] = lab
    return latest


def _finding(analyte: Analyte, lab: LabValue, status: str, conditions: Iterable[str]) -> Finding:
    reference = analyte.reference_for(conditions)
    return Finding(name=analyte.name, amount=lab.value, unit=analyte.unit, status=status,
                   reference_low=reference.low, reference_high=reference.high, reference_source=reference.source,
                   why=analyte.why_low if status == "low" else analyte.why_high, measured_at=lab.taken_at,
                   evidence=f"{analyte.name} {lab.value:g} {analyte.unit} on {lab.taken_at:%Y-%m-%d %H:%M} UTC "
                            f"({lab.source})")


@dataclass(frozen=True)
class _Plan:
    limits: Limits
    constraints: list[str]
    potassium_push: bool


def _plan(conditions: set[str], medications: Sequence[str], findings: dict[str, str]) -> _Plan:
    constraints: list[str] = []
    sodium_cap = None
    salt_reasons = [c.replace("_", " ") for c in ("heart_failure", "hypertension") if c in conditions]
    if salt_reasons:
        sodium_cap = LOW_SODIUM_CAP_MG
        constraints.append(f"Low sodium ({' and '.join(salt_reasons)}): no suggested food has more than "
                           f"{LOW_SODIUM_CAP_MG:g} mg sodium per 100 g or per serving ({LOW_SODIUM_SOURCE}).")
    no_push: list[str] = []
    if "renal_failure" in conditions:
        no_push.append("renal failure: the kidneys may not clear potassium")
    sparing = drugs_in(medications, POTASSIUM_SPARING)
    if sparing:
        no_push.append(f"potassium-sparing medication ({', '.join(sparing)})")
    if findings.get("potassium") == "high":
        no_push.append("the potassium is already high")
    if no_push:
        constraints.append(f"No potassium push ({'; '.join(no_push)}): no potassium-rich suggestions (more than "
                           f"{POTASSIUM_RICH_MG:g} mg per 100 g or per serving; {POTASSIUM_RICH_SOURCE}). A low "
                           "potassium is for the clinical team to correct.")
    raising = drugs_in(medications, (*ACE_INHIBITORS, *ARBS))
    if raising:
        constraints.append(f"Caution: {', '.join(raising)} (ACE inhibitor/ARB) raises potassium; check "
                           "potassium-rich suggestions against the next potassium result.")
    sat_cap = None
    if findings.get("ldl") == "high" or findings.get("total_cholesterol") == "high":
        sat_cap = LOW_SAT_FAT_G
        constraints.append(f"Low saturated fat (cholesterol above target): no suggested food has more than "
                           f"{LOW_SAT_FAT_G:g} g saturated fat per 100 g ({LOW_SAT_FAT_SOURCE}).")
    limits = Limits(sodium_cap_mg=sodium_cap, potassium_cap_mg=POTASSIUM_RICH_MG if no_push else None,
                    sat_fat_cap_g=sat_cap)
    return _Plan(limits, constraints, not no_push)


def _suggest(finding: Finding, nutrient: str, table: FoodTable, limits: Limits,
             taken: set[str]) -> list[Suggestion]:
    column, unit = NUTRIENT_FIELDS[nutrient]
    out = []
    for food in rank(table, nutrient, limits, SUGGESTIONS_PER_NUTRIENT, exclude=taken):
        taken.add(food.ndb_no)
        per_100 = food.amount(column) or 0.0
        serving = food.per_serving(column)
        portion = (f"{food.serving_desc} ({food.serving_g:g} g) gives {serving:.0f} {unit} {nutrient}"
                   if serving is not None and food.serving_g is not None else f"100 g gives {per_100:g} {unit}")
        sodium = food.amount("sodium_mg") or 0.0
        out.append(Suggestion(food, nutrient, f"{finding.name} {finding.status}: {portion}; "
                                              f"{per_100:g} {unit} per 100 g, sodium {sodium:g} mg per 100 g",
                              per_100, unit, serving))
    return out


def _meal_findings(meals: Sequence[MealItem], now: datetime, conditions: set[str],
                   limit_potassium: bool) -> tuple[list[Finding], list[Evidence]]:
    recent = [m for m in meals if now - MEAL_WINDOW <= m.eaten_at <= now]
    if not recent:
        return [], []
    sodium = sum(m.sodium_mg for m in recent)
    potassium = sum(m.potassium_mg for m in recent)
    last = max(m.eaten_at for m in recent)
    evidence = [Evidence("meal", "Meals logged in the last 24 h",
                         f"{len(recent)} items: sodium {sodium:.0f} mg, potassium {potassium:.0f} mg", last,
                         "meal log (USDA SR28 composition)")]
    described = ", ".join(f"{m.grams:g} g {m.description}" for m in recent[:5]) + (" ..." if len(recent) > 5 else "")
    findings = []
    if sodium > SODIUM_DAY_MG:
        salt = bool({"heart_failure", "hypertension"} & conditions)
        findings.append(Finding(
            "Sodium intake (24 h)", round(sodium, 1), "mg", "high", None, SODIUM_DAY_MG,
            SODIUM_DAY_SOURCE_HF if salt else SODIUM_DAY_SOURCE,
            "Sodium retains fluid and raises blood pressure; in heart failure it brings congestion and admissions."
            if salt else "Sodium raises blood pressure, the leading cardiovascular risk factor.",
            last, f"{len(recent)} logged items in the 24 h before {now:%Y-%m-%d %H:%M} UTC: {described}"))
    if limit_potassium and potassium > POTASSIUM_DAY_MG:
        findings.append(Finding(
            "Potassium intake (24 h)", round(potassium, 1), "mg", "high", None, POTASSIUM_DAY_MG,
            POTASSIUM_DAY_SOURCE, "Where potassium is not cleared or is kept by medication, a high intake can "
                                  "cause dangerous hyperkalaemia.",
            last, f"{len(recent)} logged items in the 24 h before {now:%Y-%m-%d %H:%M} UTC: {described}"))
    return findings, evidence


def analyse(labs: Iterable[LabValue], conditions: Iterable[str], medications: Sequence[str],
            meals: Sequence[MealItem], table: FoodTable, now: datetime,
            max_age: timedelta = DEFAULT_MAX_AGE, condition_source: str = "care record") -> NutritionAnalysis:
    """The report for one patient at ``now`` (see the module docstring for the rules)."""
    known = set(conditions)
    evidence: list[Evidence] = []
    current: dict[str, LabValue] = {}
    for key, lab in sorted(latest_per_analyte(labs).items()):
        analyte = ANALYTES[key]
        stale = now - lab.taken_at > max_age
        label = f"{analyte.name} (stale, older than {max_age.days} days: not used)" if stale else analyte.name
        evidence.append(Evidence("lab", label, f"{lab.value:g} {analyte.unit}", lab.taken_at, lab.source))
        if not stale:
            current[key] = lab
    evidence += [Evidence("condition", c.replace("_", " "), "known", None, condition_source) for c in sorted(known)]
    evidence += [Evidence("medication", m, "known", None, condition_source) for m in medications]

    statuses: dict[str, str] = {}
    deficiencies: list[Finding] = []
    excesses: list[Finding] = []
    for key, lab in current.items():
        status = classify(ANALYTES[key], lab.value, known)
        if status is None:
            continue
        statuses[key] = status
        (deficiencies if status == "low" else excesses).append(_finding(ANALYTES[key], lab, status, known))

    plan = _plan(known, medications, statuses)
    meal_excesses, meal_evidence = _meal_findings(meals, now, known, plan.limits.potassium_cap_mg is not None)
    excesses += meal_excesses
    evidence += meal_evidence

    suggestions: list[Suggestion] = []
    taken: set[str] = set()
    targeted: set[str] = set()
    for finding_key, direction in sorted(statuses.items()):
        nutrient = _FOOD_FOR.get((finding_key, direction))
        if nutrient is None or nutrient in targeted or (nutrient == "potassium" and not plan.potassium_push):
            continue
        targeted.add(nutrient)
        finding = next(f for f in (*deficiencies, *excesses) if f.name == ANALYTES[finding_key].name)
        suggestions += _suggest(finding, nutrient, table, plan.limits, taken)
    return NutritionAnalysis(deficiencies=deficiencies, excesses=excesses, suggestions=suggestions,
                             constraints=plan.constraints, evidence=evidence, generated_at=now)
