"""The nutrition analysis over GraphQL on a seeded database: who may read and record what, the report built
from recorded labs, conditions and meals, refusals of bad input (nothing stored), and audit rows."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from cardiogate.cloud.api.tables import api_audit
from cardiogate.cloud.care.foods import LOW_SODIUM_CAP_MG
from cardiogate.cloud.care.nutrition_tables import care_conditions, care_lab_results, care_meals
from tests.integration.api_testkit import USERS, Seeded, api_settings, client_for, database, gql, login, seed

pytestmark = [pytest.mark.api, pytest.mark.care, pytest.mark.timeout(120)]

OK, FORBIDDEN = "ok", "FORBIDDEN"
READ_3 = {"nurse3": OK, "clin3": OK, "admin": OK, "nurse4": FORBIDDEN, "oper": FORBIDDEN}
CLINICIAN_3 = {"clin3": OK, "nurse3": FORBIDDEN, "admin": FORBIDDEN, "nurse4": FORBIDDEN, "oper": FORBIDDEN}
CARE_3 = {"nurse3": OK, "clin3": OK, "admin": FORBIDDEN, "nurse4": FORBIDDEN, "oper": FORBIDDEN}

MATRIX: dict[str, tuple[str, dict[str, str]]] = {
    "getNutritionAnalysis": ('{ getNutritionAnalysis(userId: "$p3") { notice } }', READ_3),
    "searchFoods": ('{ searchFoods(text: "banana") { ndbNo } }', {**dict.fromkeys(USERS, OK), "oper": FORBIDDEN}),
    "recordLabResults": ('mutation { recordLabResults(userId: "$p3", labs: [{analyte: "potassium", value: 4.1, '
                         'unit: "mmol/L"}]) }', CLINICIAN_3),
    "recordCareConditions": ('mutation { recordCareConditions(userId: "$p3", conditions: ["hypertension"], '
                             'medications: []) }', CLINICIAN_3),
    "logMeal": ('mutation { logMeal(userId: "$p3", items: [{ndbNo: "09040", grams: 118}]) }', CARE_3),
}

REPORT = """query($p: ID!) { getNutritionAnalysis(userId: $p) {
  deficiencies { name amount unit status referenceLow referenceHigh referenceSource why measuredAt evidence }
  excesses { name amount unit status referenceHigh referenceSource evidence }
  suggestedFoods { name reason ndbNo nutrient amountPer100g unit servingDescription servingGrams amountPerServing
                   sodiumMgPer100g }
  constraints evidence { kind label value at source } generatedAt notice } }"""
LABS = "mutation($p: ID!, $labs: [LabInput!]!) { recordLabResults(userId: $p, labs: $labs) }"
CONDITIONS = """mutation($p: ID!, $c: [String!]!, $m: [String!]!) {
  recordCareConditions(userId: $p, conditions: $c, medications: $m) }"""
MEAL = """mutation($p: ID!, $items: [MealItemInput!]!, $at: DateTime) {
  logMeal(userId: $p, items: $items, eatenAt: $at) }"""
SEARCH = "query($t: String!, $n: Int) { searchFoods(text: $t, limit: $n) { name ndbNo sodiumMgPer100g nutrient } }"


def outcome(response: Any) -> str:
    body = response.json()
    if body.get("errors"):
        return str(body["errors"][0]["extensions"]["code"])
    return OK


def data(response: Any) -> Any:
    body = response.json()
    assert not body.get("errors"), body["errors"]
    return body["data"]


def code(response: Any) -> str:
    body = response.json()
    assert body.get("errors"), body
    return str(body["errors"][0]["extensions"]["code"])


@pytest.fixture
def seeded_sqlite(tmp_path: Path) -> Iterator[Seeded]:
    with database("sqlite", tmp_path) as engine:
        yield seed(engine)


@pytest.fixture
def client(seeded_sqlite: Seeded, tmp_path: Path) -> Iterator[TestClient]:
    with client_for(seeded_sqlite.engine, api_settings(tmp_path, rate_per_s=0)) as c:
        yield c


def test_authorization_of_the_nutrition_operations(client: TestClient, seeded_sqlite: Seeded) -> None:
    tokens = {u: login(client, u) for u in USERS}
    got, want = {}, {}
    for operation, (document, expected) in MATRIX.items():
        query = document.replace("$p3", seeded_sqlite.p3)
        for user, token in tokens.items():
            got[operation, user] = outcome(gql(client, token, query))
            want[operation, user] = expected[user]
    assert got == want
    # another site's patient: refused like an unknown one, for reads and writes alike
    for user, query in (("nurse4", MATRIX["getNutritionAnalysis"][0]), ("nurse4", MATRIX["logMeal"][0])):
        assert code(gql(client, tokens[user], query.replace("$p3", seeded_sqlite.p3))) == FORBIDDEN
    clin_other = MATRIX["recordLabResults"][0].replace("$p3", seeded_sqlite.p4)
    assert code(gql(client, tokens["clin3"], clin_other)) == FORBIDDEN
    assert gql(client, None, MATRIX["searchFoods"][0]).status_code == 401
    with seeded_sqlite.engine.connect() as conn:
        stored = conn.execute(select(care_lab_results.c.patient, care_lab_results.c.recorded_by)).all()
    assert [tuple(r) for r in stored] == [(seeded_sqlite.p3, "clin3")]  # only the clinician's one batch


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_recorded_labs_conditions_and_meals_make_the_report(kind: str, tmp_path: Path) -> None:
    with database(kind, tmp_path) as engine:
        seeded = seed(engine)
        p3 = seeded.p3
        with client_for(engine, api_settings(tmp_path, rate_per_s=0)) as client:
            clin, nurse = login(client, "clin3"), login(client, "nurse3")
            assert data(gql(client, clin, CONDITIONS, {"p": p3, "c": ["heart_failure", "Hypertension"],
                                                       "m": ["Enalapril 5 mg"]})) == {
                "recordCareConditions": ["heart_failure", "hypertension"]}
            now = datetime.now(UTC)
            labs = [{"analyte": "potassium", "value": 3.6, "unit": "mmol/L",
                     "takenAt": (now - timedelta(days=3)).isoformat()},
                    {"analyte": "K", "value": 3.1, "unit": "mEq/L", "takenAt": (now - timedelta(hours=2)).isoformat()},
                    {"analyte": "magnesium", "value": 0.6, "unit": "mmol/L"},
                    {"analyte": "ferritin", "value": 10, "unit": "ng/mL",
                     "takenAt": (now - timedelta(days=45)).isoformat()}]
            assert data(gql(client, clin, LABS, {"p": p3, "labs": labs})) == {"recordLabResults": 4}
            parmesan = data(gql(client, nurse, SEARCH, {"t": "cheese parmesan", "n": 3}))["searchFoods"][0]
            assert parmesan["sodiumMgPer100g"] > 1000
            assert data(gql(client, nurse, MEAL, {"p": p3, "items": [{"ndbNo": parmesan["ndbNo"], "grams": 150}]})) \
                == {"logMeal": 1}

            report = data(gql(client, nurse, REPORT, {"p": p3}))["getNutritionAnalysis"]
    deficiencies = {d["name"]: d for d in report["deficiencies"]}
    assert set(deficiencies) == {"Potassium", "Magnesium"}  # the stale ferritin is not judged
    potassium = deficiencies["Potassium"]
    assert potassium["amount"] == 3.1 and potassium["status"] == "low" and potassium["referenceLow"] == 3.5
    assert "Merck" in potassium["referenceSource"] and "arrhythmia" in potassium["why"]
    assert deficiencies["Magnesium"]["unit"] == "mg/dL" and deficiencies["Magnesium"]["amount"] == pytest.approx(1.4583)
    foods = report["suggestedFoods"]
    assert {f["nutrient"] for f in foods} == {"potassium", "magnesium"}
    for food in foods:  # heart failure: every suggestion under the low-sodium cap, per 100 g and per serving
        assert food["sodiumMgPer100g"] <= LOW_SODIUM_CAP_MG
        if food["servingGrams"] is not None:
            assert food["sodiumMgPer100g"] * food["servingGrams"] / 100 <= LOW_SODIUM_CAP_MG
    assert any(f["nutrient"] == "potassium" and f["amountPerServing"] > 400 for f in foods)
    [salt] = report["excesses"]
    assert salt["name"] == "Sodium intake (24 h)" and salt["amount"] > 2000 and salt["referenceHigh"] == 2000
    assert any(c.startswith("Low sodium (heart failure and hypertension)") for c in report["constraints"])
    assert any(c.startswith("Caution: enalapril") for c in report["constraints"])
    kinds = [e["kind"] for e in report["evidence"]]
    assert kinds.count("lab") == 3 and "condition" in kinds and "medication" in kinds and "meal" in kinds
    assert any("stale" in e["label"] and e["label"].startswith("Ferritin") for e in report["evidence"])
    assert "does not replace" in report["notice"]


def test_renal_failure_stops_the_potassium_push(client: TestClient, seeded_sqlite: Seeded) -> None:
    clin = login(client, "clin3")
    p3 = seeded_sqlite.p3
    data(gql(client, clin, CONDITIONS, {"p": p3, "c": ["renal_failure"], "m": []}))
    data(gql(client, clin, LABS, {"p": p3, "labs": [{"analyte": "potassium", "value": 3.0, "unit": "mmol/L"}]}))
    report = data(gql(client, clin, REPORT, {"p": p3}))["getNutritionAnalysis"]
    assert [d["name"] for d in report["deficiencies"]] == ["Potassium"]
    assert report["suggestedFoods"] == []
    assert any(c.startswith("No potassium push (renal failure") for c in report["constraints"])
    # replacing the conditions lifts it
    assert data(gql(client, clin, CONDITIONS, {"p": p3, "c": [], "m": []})) == {"recordCareConditions": []}
    report = data(gql(client, clin, REPORT, {"p": p3}))["getNutritionAnalysis"]
    assert {f["nutrient"] for f in report["suggestedFoods"]} == {"potassium"}


@pytest.mark.parametrize(("labs", "message"), [
    ([{"analyte": "vitamin_q", "value": 1, "unit": "mg/dL"}], "unknown analyte"),
    ([{"analyte": "potassium", "value": 3.5, "unit": "mg/dL"}], "unknown unit"),
    ([{"analyte": "potassium", "value": 4.0, "unit": "mmol/L"},
      {"analyte": "sodium", "value": 1400, "unit": "mmol/L"}], "labs\\[1\\].*physiologic"),
    ([{"analyte": "calcium", "value": 2.2, "unit": "mg/dL"}], "physiologic"),
    ([{"analyte": "potassium", "value": 4.0, "unit": "mmol/L", "takenAt": "2099-01-01T00:00:00Z"}], "future"),
    ([], "1 to 100"),
])
def test_bad_labs_are_refused_and_nothing_is_stored(client: TestClient, seeded_sqlite: Seeded,
                                                     labs: list[dict[str, Any]], message: str) -> None:
    response = gql(client, login(client, "clin3"), LABS, {"p": seeded_sqlite.p3, "labs": labs})
    assert code(response) == "BAD_USER_INPUT"
    assert re.search(message, response.json()["errors"][0]["message"])
    with seeded_sqlite.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(care_lab_results)).scalar() == 0


def test_non_finite_values_are_refused(client: TestClient, seeded_sqlite: Seeded) -> None:
    # JSON has no NaN or infinity: an overflowing literal is the way one reaches the API
    query = (f'mutation {{ recordLabResults(userId: "{seeded_sqlite.p3}", labs: [{{analyte: "potassium", '
             f'value: 1e400, unit: "mmol/L"}}]) }}')
    response = gql(client, login(client, "clin3"), query)
    assert response.json().get("errors")
    with seeded_sqlite.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(care_lab_results)).scalar() == 0


def test_bad_conditions_meals_and_searches_are_refused(client: TestClient, seeded_sqlite: Seeded) -> None:
    clin, nurse = login(client, "clin3"), login(client, "nurse3")
    p3 = seeded_sqlite.p3
    for conditions, medications in ((["heartache"], []), (["heart_failure"], ["  "]), ([], ["x" * 101]),
                                    (["heart_failure"], ["bad\u0000drug"])):
        response = gql(client, clin, CONDITIONS, {"p": p3, "c": conditions, "m": medications})
        assert code(response) == "BAD_USER_INPUT", conditions
    soon = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    long_ago = (datetime.now(UTC) - timedelta(days=8)).isoformat()
    for items, at in (([{"ndbNo": "00000", "grams": 100}], None), ([{"ndbNo": "09040", "grams": 0}], None),
                      ([{"ndbNo": "09040", "grams": 5000}], None), ([{"ndbNo": "09040", "grams": 100}], soon),
                      ([{"ndbNo": "09040", "grams": 100}], long_ago), ([], None)):
        assert code(gql(client, nurse, MEAL, {"p": p3, "items": items, "at": at})) == "BAD_USER_INPUT", items
    for text, limit in (("a", 10), ("banana", 0), ("banana", 51), ("x" * 101, 10)):
        assert code(gql(client, nurse, SEARCH, {"t": text, "n": limit})) == "BAD_USER_INPUT", (text, limit)
    with seeded_sqlite.engine.connect() as conn:
        for table in (care_conditions, care_meals):
            assert conn.execute(select(func.count()).select_from(table)).scalar() == 0


def test_reads_and_writes_of_the_patient_are_audited(client: TestClient, seeded_sqlite: Seeded) -> None:
    clin, nurse4 = login(client, "clin3"), login(client, "nurse4")
    p3 = seeded_sqlite.p3
    data(gql(client, clin, CONDITIONS, {"p": p3, "c": ["diabetes"], "m": []}))
    data(gql(client, clin, LABS, {"p": p3, "labs": [{"analyte": "hba1c", "value": 58, "unit": "mmol/mol"}]}))
    data(gql(client, clin, MEAL, {"p": p3, "items": [{"ndbNo": "9040", "grams": 120}]}))
    report = data(gql(client, clin, REPORT, {"p": p3}))["getNutritionAnalysis"]
    [hba1c] = report["excesses"]
    assert hba1c["name"] == "HbA1c" and hba1c["referenceHigh"] == 7.0 and "ADA" in hba1c["referenceSource"]
    gql(client, nurse4, REPORT, {"p": p3})  # refused: no audit row
    data(gql(client, clin, SEARCH, {"t": "banana", "n": 2}))  # no patient: no audit row
    with seeded_sqlite.engine.connect() as conn:
        rows = [(r.username, r.action, r.patient) for r in conn.execute(select(api_audit).order_by(api_audit.c.id))]
    assert rows == [("clin3", "recordCareConditions", p3), ("clin3", "recordLabResults", p3),
                    ("clin3", "logMeal", p3), ("clin3", "getNutritionAnalysis", p3)]
