"""The lab-to-finding rules at their limits, unit conversion, refusals, and the analysis's constraints."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from cardiogate.cloud.care.foods import LOW_SODIUM_CAP_MG, POTASSIUM_RICH_MG, Food, FoodTable, load_food_table
from cardiogate.cloud.care.labs import ANALYTES, LabError, analyte_of, classify, condition_of, to_canonical
from cardiogate.cloud.care.nutrition import LabValue, MealItem, analyse, latest_per_analyte

pytestmark = pytest.mark.care

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
STEP = 0.01


def _limits() -> list[tuple[str, str, float]]:
    out = []
    for key, analyte in sorted(ANALYTES.items()):
        if analyte.reference.low is not None:
            out.append((key, "low", analyte.reference.low))
        if analyte.reference.high is not None:
            out.append((key, "high", analyte.reference.high))
    return out


@pytest.mark.parametrize(("key", "side", "limit"), _limits())
def test_a_value_at_the_limit_is_normal_and_just_beyond_it_is_not(key: str, side: str, limit: float) -> None:
    analyte = ANALYTES[key]
    assert classify(analyte, limit) is None
    beyond = limit - STEP if side == "low" else limit + STEP
    assert classify(analyte, beyond) == side
    inside = limit + STEP if side == "low" else limit - STEP
    assert classify(analyte, inside) is None


@pytest.mark.parametrize(("key", "low", "high"), [
    ("potassium", 3.5, 5.0), ("magnesium", 1.7, 2.2), ("sodium", 135.0, 145.0), ("calcium", 8.5, 10.2),
    ("haemoglobin", 12.0, 17.2), ("ferritin", 15.0, None), ("ldl", None, 116.0), ("hdl", 40.0, None),
    ("total_cholesterol", None, 200.0), ("triglycerides", None, 150.0), ("glucose", 70.0, 180.0),
    ("hba1c", None, 5.6),
])
def test_the_ranges_are_the_documented_ones_with_a_source(key: str, low: float | None, high: float | None) -> None:
    reference = ANALYTES[key].reference
    assert (reference.low, reference.high) == (low, high)
    assert len(reference.source) > 20


def test_potassium_boundaries_in_both_spellings_of_the_unit() -> None:
    k = analyte_of("K")
    assert classify(k, to_canonical(k, 3.5, "mmol/L")) is None
    assert classify(k, to_canonical(k, 3.49, "mEq/L")) == "low"
    assert classify(k, to_canonical(k, 5.01, "meq/l")) == "high"


@pytest.mark.parametrize(("analyte", "value", "unit", "canonical"), [
    ("magnesium", 0.70, "mmol/L", 1.70135), ("magnesium", 1.7, "mg/dL", 1.7), ("magnesium", 1.4, "mEq/L", 1.70135),
    ("calcium", 2.5, "mmol/L", 10.02), ("glucose", 5.0, "mmol/L", 90.08), ("ldl", 3.0, "mmol/L", 116.01),
    ("triglycerides", 1.7, "mmol/L", 150.569), ("haemoglobin", 120, "g/L", 12.0), ("ferritin", 30, "µg/L", 30.0),
    ("hba1c", 48, "mmol/mol", 6.54304),
])
def test_units_convert_to_the_canonical_one(analyte: str, value: float, unit: str, canonical: float) -> None:
    assert to_canonical(analyte_of(analyte), value, unit) == pytest.approx(canonical, abs=1e-3)


def test_conversion_changes_the_finding() -> None:
    mg = analyte_of("magnesium")
    assert classify(mg, to_canonical(mg, 0.69, "mmol/L")) == "low"   # 1.68 mg/dL
    assert classify(mg, to_canonical(mg, 0.70, "mmol/L")) is None    # 1.70 mg/dL: at the limit
    ca = analyte_of("calcium")
    assert classify(ca, to_canonical(ca, 2.1, "mmol/L")) == "low"    # 8.42 mg/dL
    glucose = analyte_of("glucose")
    assert classify(glucose, to_canonical(glucose, 3.8, "mmol/L")) == "low"  # 68.5 mg/dL


@pytest.mark.parametrize(("analyte", "value", "unit", "message"), [
    ("vitamin_x", 1.0, "mg/dL", "unknown analyte"),
    ("potassium", 3.5, "mg/dL", "unknown unit"),
    ("potassium", math.nan, "mmol/L", "finite"),
    ("potassium", math.inf, "mmol/L", "finite"),
    ("potassium", 35.0, "mmol/L", "physiologic"),
    ("potassium", 0.2, "mmol/L", "physiologic"),
    ("calcium", 2.1, "mg/dL", "physiologic"),  # a mmol/L value entered as mg/dL
    ("sodium", 14.0, "mmol/L", "physiologic"),
])
def test_bad_lab_input_is_refused(analyte: str, value: float, unit: str, message: str) -> None:
    with pytest.raises(LabError, match=message):
        to_canonical(analyte_of(analyte), value, unit)


def test_conditions_are_a_fixed_vocabulary() -> None:
    assert condition_of("Heart failure") == "heart_failure"
    assert condition_of("CKD") == "renal_failure"
    with pytest.raises(LabError, match="unknown condition"):
        condition_of("broken heart")


def test_ferritin_and_ldl_limits_follow_the_conditions() -> None:
    ferritin, ldl = ANALYTES["ferritin"], ANALYTES["ldl"]
    assert classify(ferritin, 80.0) is None
    assert classify(ferritin, 80.0, ["heart_failure"]) == "low"  # ESC 2021: iron deficiency below 100 ng/mL
    assert classify(ferritin, 100.0, ["heart_failure"]) is None
    assert classify(ldl, 80.0) is None
    assert classify(ldl, 80.0, ["coronary_artery_disease"]) == "high"
    assert classify(ldl, 55.0, ["coronary_artery_disease"]) is None
    assert classify(ANALYTES["hba1c"], 6.8, ["diabetes"]) is None
    assert classify(ANALYTES["hba1c"], 6.8) == "high"


def lab(key: str, value: float, days_ago: float = 1.0) -> LabValue:
    return LabValue(key, value, NOW - timedelta(days=days_ago), "test")


def test_the_latest_value_of_an_analyte_wins() -> None:
    latest = latest_per_analyte([lab("potassium", 3.0, 2), lab("potassium", 4.0, 1), lab("potassium", 2.8, 3)])
    assert latest["potassium"].value == 4.0
    report = analyse([lab("potassium", 3.0, 2), lab("potassium", 4.0, 1)], [], [], [], load_food_table(), NOW)
    assert report.deficiencies == []


def test_a_stale_lab_is_evidence_but_no_finding() -> None:
    report = analyse([lab("potassium", 2.9, 31)], [], [], [], load_food_table(), NOW)
    assert report.deficiencies == [] and report.suggestions == []
    [evidence] = report.evidence
    assert "stale" in evidence.label and evidence.kind == "lab"
    fresh = analyse([lab("potassium", 2.9, 29)], [], [], [], load_food_table(), NOW)
    assert [f.name for f in fresh.deficiencies] == ["Potassium"]
    shorter = analyse([lab("potassium", 2.9, 29)], [], [], [], load_food_table(), NOW, max_age=timedelta(days=7))
    assert shorter.deficiencies == []


def test_low_potassium_in_heart_failure_suggests_potassium_rich_low_sodium_foods() -> None:
    report = analyse([lab("potassium", 3.2)], ["heart_failure"], [], [], load_food_table(), NOW)
    [finding] = report.deficiencies
    assert finding.status == "low" and finding.reference_low == 3.5 and "Merck" in finding.reference_source
    potassium = [s for s in report.suggestions if s.nutrient == "potassium"]
    assert len(potassium) == 5
    for s in potassium:
        assert s.food.worst("sodium_mg") <= LOW_SODIUM_CAP_MG
        assert s.amount_per_100g >= 200
    assert any("Low sodium" in c for c in report.constraints)


def test_no_potassium_push_in_renal_failure_or_with_potassium_sparing_drugs() -> None:
    table = load_food_table()
    for conditions, medications, reason in ((["renal_failure"], [], "renal failure"),
                                            ([], ["Spironolactone 25 mg"], "spironolactone"),
                                            ([], ["amiloride/hydrochlorothiazide"], "amiloride")):
        report = analyse([lab("potassium", 3.1), lab("magnesium", 1.5)], conditions, medications, [], table, NOW)
        assert [f.name for f in report.deficiencies] == ["Magnesium", "Potassium"]  # still reported
        assert not any(s.nutrient == "potassium" for s in report.suggestions)
        assert report.suggestions, "magnesium is still suggested"
        for s in report.suggestions:  # and no magnesium food is potassium-rich either
            assert s.food.worst("potassium_mg") <= POTASSIUM_RICH_MG
        [line] = [c for c in report.constraints if c.startswith("No potassium push")]
        assert reason in line


def test_an_ace_inhibitor_is_a_caution_not_a_block() -> None:
    report = analyse([lab("potassium", 3.1)], [], ["lisinopril 10 mg"], [], load_food_table(), NOW)
    assert any(s.nutrient == "potassium" for s in report.suggestions)
    assert any(c.startswith("Caution: lisinopril") for c in report.constraints)


def test_a_high_ldl_suggests_fibre_without_saturated_fat() -> None:
    report = analyse([lab("ldl", 190.0)], [], [], [], load_food_table(), NOW)
    [finding] = report.excesses
    assert finding.status == "high" and "ESC/EAS" in finding.reference_source
    assert report.suggestions and all(s.nutrient == "fibre" for s in report.suggestions)
    assert all((s.food.amount("sat_fat_g") or 0.0) <= 1.5 for s in report.suggestions)


def meal(sodium: float, potassium: float, hours_ago: float) -> MealItem:
    return MealItem("11111", "food", 100.0, sodium, potassium, NOW - timedelta(hours=hours_ago))


def test_the_last_24_hours_of_sodium_are_summed_against_the_daily_limit() -> None:
    table = load_food_table()
    meals = [meal(1200, 300, 2), meal(900, 300, 20), meal(5000, 300, 30)]  # the last is outside the window
    report = analyse([], ["heart_failure"], [], meals, table, NOW)
    [excess] = report.excesses
    assert excess.name == "Sodium intake (24 h)" and excess.amount == 2100.0 and excess.reference_high == 2000.0
    assert "ESC" in excess.reference_source
    assert [e.kind for e in report.evidence] == ["condition", "meal"]
    under = analyse([], ["heart_failure"], [], [meal(1000, 300, 2), meal(1000, 300, 3)], table, NOW)
    assert under.excesses == []  # exactly at the limit


def test_potassium_intake_is_limited_only_where_potassium_must_not_be_pushed() -> None:
    table = load_food_table()
    meals = [meal(100, 1500, 2), meal(100, 1000, 3)]
    assert analyse([], [], [], meals, table, NOW).excesses == []
    [excess] = analyse([], ["renal_failure"], [], meals, table, NOW).excesses
    assert excess.name == "Potassium intake (24 h)" and excess.amount == 2500.0


def test_every_report_carries_the_notice() -> None:
    report = analyse([], [], [], [], FoodTable(()), NOW)
    assert "does not replace" in report.notice and report.generated_at == NOW


def test_suggestions_are_never_from_foods_without_the_nutrient() -> None:
    food = Food("99999", "ZERO,FOOD", "", {"potassium_mg": 0.0, "sodium_mg": 0.0}, 100.0, "1 cup")
    report = analyse([lab("potassium", 3.0)], [], [], [], FoodTable((food,)), NOW)
    assert report.suggestions == []
