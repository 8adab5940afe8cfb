"""The nutrition analysis on the API: the report, lab and condition records, meal logging, food search.

Reading the report is a read of patient data (role, site, audit row). Recording labs, conditions
and medications is a clinician's act (CARE_RECORD); logging a meal a nurse's or clinician's
(MEAL_LOG). Every input is checked before anything is stored: an unknown analyte or unit, a value
that is not finite or not physiologically possible, a time in the future or an unknown food
refuses the whole batch with BAD_USER_INPUT. The rules themselves live in
:mod:`cardiogate.cloud.care.nutrition`.
"""

from __future__ import annotations

import asyncio
import math
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.types import Info

from cardiogate.cloud.api.access import CARE_RECORD, MEAL_LOG, PATIENT_READ
from cardiogate.cloud.api.context import context_of, patient_access, patient_action, permitted
from cardiogate.cloud.api.resolvers import bad_input, field, mutation
from cardiogate.cloud.care import foods as food_rules
from cardiogate.cloud.care.labs import LabError, analyte_of, condition_of, to_canonical
from cardiogate.cloud.care.nutrition import (
    MEAL_WINDOW,
    Evidence,
    Finding,
    LabValue,
    MealItem,
    NutritionAnalysis,
    Suggestion,
    analyse,
)
from cardiogate.cloud.care.nutrition_store import EnteredLab, load_inputs, log_meal, record_labs, set_conditions

MAX_LABS = 100
MAX_MEAL_ITEMS = 50
MAX_GRAMS = 2000.0
MAX_NAMES = 30
MAX_NAME_CHARS = 100
MAX_SEARCH_CHARS = 100
MAX_SEARCH_RESULTS = 50
CLOCK_SKEW = timedelta(minutes=5)
MEAL_MAX_AGE = timedelta(days=7)


@strawberry.type(description="A lab finding outside its reference range, or an intake above its daily limit.")
class Nutrient:
    name: str
    amount: float | None
    unit: str
    status: str = strawberry.field(description="low or high")
    reference_low: float | None
    reference_high: float | None
    reference_source: str
    why: str = strawberry.field(description="why it matters for the heart")
    measured_at: datetime | None
    evidence: str

    @classmethod
    def of(cls, f: Finding) -> Nutrient:
        return cls(name=f.name, amount=f.amount, unit=f.unit, status=f.status, reference_low=f.reference_low,
                   reference_high=f.reference_high, reference_source=f.reference_source, why=f.why,
                   measured_at=f.measured_at, evidence=f.evidence)


@strawberry.type(description="A food of the USDA SR28 table, with the nutrient it is suggested for (or, from "
                             "searchFoods, its potassium).")
class FoodItem:
    name: str
    reason: str
    ndb_no: str
    nutrient: str
    amount_per_100g: float
    unit: str
    serving_description: str | None
    serving_grams: float | None
    amount_per_serving: float | None
    sodium_mg_per_100g: float

    @classmethod
    def of(cls, s: Suggestion) -> FoodItem:
        return cls._make(s.food, s.reason, s.nutrient, s.amount_per_100g, s.unit, s.amount_per_serving)

    @classmethod
    def _make(cls, food: food_rules.Food, reason: str, nutrient: str, per_100g: float, unit: str,
              per_serving: float | None) -> FoodItem:
        return cls(name=food.name, reason=reason, ndb_no=food.ndb_no, nutrient=nutrient, amount_per_100g=per_100g,
                   unit=unit, serving_description=food.serving_desc or None, serving_grams=food.serving_g,
                   amount_per_serving=None if per_serving is None else round(per_serving, 2),
                   sodium_mg_per_100g=food.amount("sodium_mg") or 0.0)

    @classmethod
    def found(cls, food: food_rules.Food) -> FoodItem:
        potassium = food.amount("potassium_mg") or 0.0
        reason = (f"per 100 g: sodium {food.amount('sodium_mg') or 0.0:g} mg, potassium {potassium:g} mg"
                  + (f"; one serving is {food.serving_desc} ({food.serving_g:g} g)" if food.serving_g else ""))
        return cls._make(food, reason, "potassium", potassium, "mg", food.per_serving("potassium_mg"))


@strawberry.type(description="What the analysis used: a lab value (stale ones say so), a condition, a medication "
                             "or the day's meals.")
class NutritionEvidence:
    kind: str = strawberry.field(description="lab, condition, medication or meal")
    label: str
    value: str
    at: datetime | None
    source: str

    @classmethod
    def of(cls, e: Evidence) -> NutritionEvidence:
        return cls(kind=e.kind, label=e.label, value=e.value, at=e.at, source=e.source)


@strawberry.type
class NutritionReport:
    deficiencies: list[Nutrient]
    suggested_foods: list[FoodItem]
    excesses: list[Nutrient]
    constraints: list[str]
    evidence: list[NutritionEvidence]
    generated_at: datetime
    notice: str

    @classmethod
    def of(cls, a: NutritionAnalysis) -> NutritionReport:
        return cls(deficiencies=[Nutrient.of(f) for f in a.deficiencies],
                   suggested_foods=[FoodItem.of(s) for s in a.suggestions],
                   excesses=[Nutrient.of(f) for f in a.excesses], constraints=list(a.constraints),
                   evidence=[NutritionEvidence.of(e) for e in a.evidence], generated_at=a.generated_at,
                   notice=a.notice)


@strawberry.input(description="One lab result: analyte (potassium, magnesium, sodium, calcium, haemoglobin, "
                              "ferritin, ldl, hdl, total_cholesterol, triglycerides, glucose, hba1c), value and "
                              "unit (e.g. mmol/L, mEq/L, mg/dL, g/dL, ng/mL, %); takenAt defaults to now.")
class LabInput:
    analyte: str
    value: float
    unit: str
    taken_at: datetime | None = None


@strawberry.input(description="One food eaten: its USDA SR28 number (from searchFoods) and the grams eaten.")
class MealItemInput:
    ndb_no: str
    grams: float


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _food_table(info: Info[Any, Any]) -> food_rules.FoodTable:
    path = context_of(info).services.settings.care.food_table
    try:
        return food_rules.load_food_table(path)
    except food_rules.FoodTableError as exc:
        raise GraphQLError(f"the food table is not available: {exc}", extensions={"code": "NOT_AVAILABLE"}) from exc


def _max_age(info: Info[Any, Any]) -> timedelta:
    return timedelta(days=context_of(info).services.settings.care.lab_max_age_days)




def parse_labs(labs: list[LabInput], now: datetime, source: str) -> list[EnteredLab]:
    """The batch converted to canonical units, or BAD_USER_INPUT naming the first bad entry."""
    if not 1 <= len(labs) <= MAX_LABS:
        raise bad_input(f"give 1 to {MAX_LABS} lab results")
    out = []
    for i, lab in enumerate(labs):
        try:
            analyte = analyte_of(lab.analyte)
            value = to_canonical(analyte, lab.value, lab.unit)
        except LabError as exc:
            raise bad_input(f"labs[{i}]: {exc}") from exc
        taken = _aware(lab.taken_at) if lab.taken_at is not None else now
        if taken > now + CLOCK_SKEW:
            raise bad_input(f"labs[{i}]: takenAt is in the future")
        out.append(EnteredLab(LabValue(analyte.key, value, taken, source), lab.value, lab.unit.strip()))
    return out


def _names(values: list[str], what: str) -> list[str]:
    if len(values) > MAX_NAMES:
        raise bad_input(f"at most {MAX_NAMES} {what}")
    out = []
    for value in values:
        text = " ".join(value.split())
        if not text or len(text) > MAX_NAME_CHARS or not text.isprintable():
            raise bad_input(f"each of the {what} must be 1 to {MAX_NAME_CHARS} printable characters")
        out.append(text.lower())
    return out


def parse_meal(table: food_rules.FoodTable, items: list[MealItemInput], eaten: datetime,
               now: datetime) -> list[MealItem]:
    if not 1 <= len(items) <= MAX_MEAL_ITEMS:
        raise bad_input(f"give 1 to {MAX_MEAL_ITEMS} meal items")
    if eaten > now + CLOCK_SKEW:
        raise bad_input("eatenAt is in the future")
    if now - eaten > MEAL_MAX_AGE:
        raise bad_input(f"eatenAt is more than {MEAL_MAX_AGE.days} days ago")
    out = []
    for i, item in enumerate(items):
        food = table.get(item.ndb_no)
        if food is None:
            raise bad_input(f"items[{i}]: no food {item.ndb_no!r} in the food table (see searchFoods)")
        if not math.isfinite(item.grams) or not 0 < item.grams <= MAX_GRAMS:
            raise bad_input(f"items[{i}]: grams must be above 0 and at most {MAX_GRAMS:g}")
        share = item.grams / 100.0
        out.append(MealItem(food.ndb_no, food.name, item.grams, round((food.amount("sodium_mg") or 0.0) * share, 2),
                            round((food.amount("potassium_mg") or 0.0) * share, 2), eaten))
    return out


@strawberry.type
class NutritionQuery:
    @field("Deficiencies and excesses that matter for the heart (each with its reference and source), foods "
           "suggested under the patient's constraints, the evidence used, and a notice: it supports, and does "
           "not replace, a dietitian or clinician.")
    async def get_nutrition_analysis(self, info: Info[Any, Any], user_id: strawberry.ID) -> NutritionReport | None:
        patient = str(user_id)
        await patient_access(info, patient, "getNutritionAnalysis")
        table = _food_table(info)
        now = datetime.now(UTC)
        engine = context_of(info).services.data.engine
        since = int((now - MEAL_WINDOW).timestamp()) * 10**9
        inputs = await asyncio.to_thread(load_inputs, engine, patient, since)
        analysis = analyse(inputs.labs, inputs.conditions, inputs.medications, inputs.meals, table, now,
                           _max_age(info), inputs.condition_source)
        return NutritionReport.of(analysis)

    @field("Foods of the USDA SR28 table whose description holds every word of `text` (for meal logging).")
    async def search_foods(self, info: Info[Any, Any], text: str, limit: int = 10) -> list[FoodItem]:
        permitted(info, PATIENT_READ)
        words = " ".join(text.split())
        if not 2 <= len(words) <= MAX_SEARCH_CHARS or not words.isprintable():
            raise bad_input(f"text must be 2 to {MAX_SEARCH_CHARS} printable characters")
        if not 1 <= limit <= MAX_SEARCH_RESULTS:
            raise bad_input(f"limit must be 1 to {MAX_SEARCH_RESULTS}")
        return [FoodItem.found(f) for f in food_rules.search(_food_table(info), words, limit)]


@strawberry.type
class NutritionMutation:
    @mutation("Store lab results (clinicians). Returns the number stored; a bad entry refuses the whole batch.")
    async def record_lab_results(self, info: Info[Any, Any], user_id: strawberry.ID, labs: list[LabInput]) -> int:
        patient = str(user_id)
        caller = await patient_action(info, patient, "recordLabResults", CARE_RECORD)
        now = datetime.now(UTC)
        entered = parse_labs(labs, now, f"lab input by {caller.principal.subject}"[:80])
        engine = context_of(info).services.data.engine
        return await asyncio.to_thread(record_labs, engine, patient, entered, caller.principal.subject, time.time_ns())

    @mutation("Set the patient's known conditions (heart_failure, renal_failure, hypertension, diabetes, "
              "coronary_artery_disease, atrial_fibrillation, anaemia) and medications, replacing the previous "
              "lists (clinicians). Returns the conditions now held.")
    async def record_care_conditions(self, info: Info[Any, Any], user_id: strawberry.ID, conditions: list[str],
                                     medications: list[str]) -> list[str]:
        patient = str(user_id)
        caller = await patient_action(info, patient, "recordCareConditions", CARE_RECORD)
        if len(conditions) > MAX_NAMES:
            raise bad_input(f"at most {MAX_NAMES} conditions")
        try:
            known = [condition_of(c) for c in conditions]
        except LabError as exc:
            raise bad_input(str(exc)) from exc
        drugs = _names(medications, "medications")
        engine = context_of(info).services.data.engine
        return await asyncio.to_thread(set_conditions, engine, patient, known, drugs, caller.principal.subject,
                                       f"care record by {caller.principal.subject}", time.time_ns())

    @mutation("Log foods eaten (nurses, clinicians): SR28 numbers and grams; eatenAt defaults to now. Returns the "
              "number of items stored.")
    async def log_meal(self, info: Info[Any, Any], user_id: strawberry.ID, items: list[MealItemInput],
                       eaten_at: datetime | None = None) -> int:
        patient = str(user_id)
        caller = await patient_action(info, patient, "logMeal", MEAL_LOG)
        now = datetime.now(UTC)
        meal = parse_meal(_food_table(info), items, _aware(eaten_at) if eaten_at is not None else now, now)
        engine = context_of(info).services.data.engine
        return await asyncio.to_thread(log_meal, engine, patient, meal, caller.principal.subject, time.time_ns())
