"""Real MIMIC demo patients through the loader and the analysis, and ``cardiogate care`` end to end.

MIMIC-IV demo subject 10018328 has heart failure (I50.31) and hypertension, takes enalapril, and a
last potassium of 2.9 mEq/L; subject 10015931 has heart failure and chronic kidney disease (N18.4,
N17.0) with a last potassium of 3.3 mEq/L. MIMIC-III demo subject 41795 (heart failure, 428.x) ends
on a potassium of 3.2 mEq/L. Skips when the demos are not in CARDIOGATE_DATA_DIR (or ../shared/data).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from cardiogate.app.cli import main
from cardiogate.cloud.care.build_food_table import SHIPPED_TABLE
from cardiogate.cloud.care.foods import LOW_SODIUM_CAP_MG, POTASSIUM_RICH_MG, load_food_table
from cardiogate.cloud.care.mimic import MimicError, layout_of, read_subject, shift_to
from cardiogate.cloud.care.nutrition import analyse
from cardiogate.cloud.care.nutrition_store import load_inputs
from cardiogate.cloud.care.nutrition_tables import care_conditions, care_lab_results
from cardiogate.cloud.registry.fleet import FleetRegistry
from cardiogate.cloud.registry.migrate import open_database

pytestmark = [pytest.mark.care, pytest.mark.timeout(120)]

REPO = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("CARDIOGATE_DATA_DIR", REPO.parent / "shared" / "data"))
MIMIC_IV = DATA / "mimic-iv-demo"
MIMIC_III = DATA / "mimic-iii-demo"
ABBREV = DATA / "usda-sr28" / "ABBREV.csv"
NOW = datetime(2026, 3, 1, tzinfo=UTC)


def need(folder: Path) -> Path:
    if not folder.is_dir():
        pytest.skip(f"{folder.name} is not in {DATA} (set CARDIOGATE_DATA_DIR)")
    return folder


def test_a_heart_failure_patient_with_low_potassium_gets_low_sodium_potassium_foods() -> None:
    subject = read_subject(need(MIMIC_IV), 10018328)
    assert subject.edition == "MIMIC-IV"
    assert {"heart_failure", "hypertension"} <= set(subject.conditions)
    assert any(d.code == "I5031" and d.version == 10 for d in subject.diagnoses)
    assert subject.medications == ["enalapril"]
    potassium = [lab for lab in subject.labs if lab.analyte == "potassium"]
    assert potassium[-1].value == 2.9 and potassium[-1].taken_at == datetime(2154, 8, 3, 17, 50, tzinfo=UTC)

    report = analyse(shift_to(subject.labs, NOW), subject.conditions, subject.medications, [], load_food_table(), NOW)
    low = {f.name: f for f in report.deficiencies}
    assert low["Potassium"].amount == 2.9 and low["Potassium"].measured_at == NOW
    foods = [s for s in report.suggestions if s.nutrient == "potassium"]
    assert len(foods) == 5
    for s in foods:
        assert s.amount_per_100g > POTASSIUM_RICH_MG  # potassium-rich
        assert s.food.worst("sodium_mg") <= LOW_SODIUM_CAP_MG  # and low in sodium
    assert any(c.startswith("Low sodium (heart failure and hypertension)") for c in report.constraints)
    assert any(c.startswith("Caution: enalapril") for c in report.constraints)


def test_a_renal_failure_patient_gets_no_potassium_push() -> None:
    subject = read_subject(need(MIMIC_IV), 10015931)
    assert "renal_failure" in subject.conditions and "heart_failure" in subject.conditions
    assert {d.code for d in subject.diagnoses if d.condition == "renal_failure"} >= {"N184", "N170"}
    report = analyse(shift_to(subject.labs, NOW), subject.conditions, subject.medications, [], load_food_table(), NOW)
    assert "Potassium" in {f.name for f in report.deficiencies}  # the low value is still reported
    assert not any(s.nutrient == "potassium" for s in report.suggestions)
    assert all(s.food.worst("potassium_mg") <= POTASSIUM_RICH_MG for s in report.suggestions)
    assert any(c.startswith("No potassium push (renal failure") for c in report.constraints)


def test_the_mimic_iii_layout_reads_the_same_way() -> None:
    subject = read_subject(need(MIMIC_III), 41795)
    assert subject.edition == "MIMIC-III" and layout_of(MIMIC_III / "csv").edition == "MIMIC-III"
    assert "heart_failure" in subject.conditions and all(d.version == 9 for d in subject.diagnoses)
    last = [lab for lab in subject.labs if lab.analyte == "potassium"][-1]
    assert last.value == 3.2
    analytes = {lab.analyte for lab in subject.labs}
    assert {"ldl", "hdl", "total_cholesterol", "triglycerides", "ferritin", "hba1c"} <= analytes
    with pytest.raises(MimicError, match="not in the MIMIC-III demo"):
        read_subject(MIMIC_III, 1)


def test_a_folder_that_is_not_a_demo_is_refused(tmp_path: Path) -> None:
    with pytest.raises(MimicError, match="neither"):
        layout_of(tmp_path)


def test_import_labs_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    need(MIMIC_IV)
    database = tmp_path / "cloud.sqlite3"
    config = tmp_path / "cloud.toml"
    config.write_text(f'database = "{database}"\n', encoding="utf-8")
    engine = open_database(f"sqlite:///{database}")
    fleet = FleetRegistry(engine)
    fleet.add_site("ward-3", "Ward 3")
    fleet.add_patient("pt-mimic", "ward-3")

    args = ["care", "import-labs", "--mimic", str(MIMIC_IV), "--subject", "10018328", "--config", str(config)]
    assert main([*args, "--patient", "pt-unknown"]) == 2
    assert "not registered" in capsys.readouterr().err
    assert main([*args, "--patient", "pt-mimic"]) == 0
    out = capsys.readouterr().out
    assert "pt-mimic: 122 lab results from MIMIC-IV subject 10018328" in out and "heart_failure" in out

    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(care_lab_results)).scalar() == 122
        held = {(r.kind, r.name) for r in conn.execute(select(care_conditions))}
    assert {("condition", "heart_failure"), ("condition", "hypertension"), ("medication", "enalapril")} <= held
    now = datetime.now(UTC)
    inputs = load_inputs(engine, "pt-mimic", 0)
    engine.dispose()
    latest = {lab.analyte: lab for lab in inputs.labs}
    assert latest["potassium"].value == 2.9 and abs(latest["potassium"].taken_at - now) < timedelta(minutes=5)
    report = analyse(inputs.labs, inputs.conditions, inputs.medications, inputs.meals, load_food_table(), now)
    assert "Potassium" in {f.name for f in report.deficiencies}
    assert any(s.nutrient == "potassium" for s in report.suggestions)
    assert main(["care", "import-labs", "--mimic", str(tmp_path), "--subject", "1", "--patient", "pt-mimic",
                 "--config", str(config)]) == 2


def test_build_food_table_command_reproduces_the_shipped_table(tmp_path: Path) -> None:
    if not ABBREV.is_file():
        pytest.skip(f"USDA SR28 ABBREV.csv is not in {DATA}")
    out = tmp_path / "foods.csv"
    assert main(["care", "build-food-table", "--abbrev", str(ABBREV), "--out", str(out)]) == 0
    assert out.read_bytes() == SHIPPED_TABLE.read_bytes()
    assert main(["care", "build-food-table", "--abbrev", str(tmp_path / "missing.csv"), "--out", str(out)]) == 2
