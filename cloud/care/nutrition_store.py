"""Storage of the nutrition analysis's inputs (sync SQLAlchemy; the API runs it in a worker thread).

Values arrive here already validated and converted (:mod:`cardiogate.cloud.care.labs`); each write
is one transaction, so a batch is stored whole or not at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine, and_, delete, func, select

from cardiogate.cloud.care.labs import ANALYTES
from cardiogate.cloud.care.nutrition import LabValue, MealItem
from cardiogate.cloud.care.nutrition_tables import care_conditions, care_lab_results, care_meals


def to_ns(moment: datetime) -> int:
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return int(aware.timestamp()) * 10**9 + aware.microsecond * 1000


def from_ns(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, tz=UTC)


@dataclass(frozen=True)
class EnteredLab:
    """A lab value to store: canonical (``lab``) and as entered."""

    lab: LabValue
    entered_value: float
    entered_unit: str


@dataclass(frozen=True)
class CareInputs:
    labs: list[LabValue]  # the latest of each analyte
    conditions: list[str]
    medications: list[str]
    meals: list[MealItem]
    condition_source: str


def record_labs(engine: Engine, patient: str, labs: Sequence[EnteredLab], recorded_by: str, now_ns: int) -> int:
    rows = [{"patient": patient, "analyte": e.lab.analyte, "value": e.lab.value,
             "unit": ANALYTES[e.lab.analyte].unit, "entered_value": e.entered_value,
             "entered_unit": e.entered_unit[:16], "taken_ns": to_ns(e.lab.taken_at), "recorded_ns": now_ns,
             "recorded_by": recorded_by[:64], "source": e.lab.source[:80]} for e in labs]
    if rows:
        with engine.begin() as conn:
            conn.execute(care_lab_results.insert(), rows)
    return len(rows)


def set_conditions(engine: Engine, patient: str, conditions: Sequence[str], medications: Sequence[str],
                   recorded_by: str, source: str, now_ns: int) -> list[str]:
    """Replace the patient's conditions and medications; returns the conditions now held."""
    rows = [{"patient": patient, "kind": kind, "name": name, "recorded_ns": now_ns, "recorded_by": recorded_by[:64],
             "source": source[:80]}
            for kind, names in (("condition", conditions), ("medication", medications)) for name in sorted(set(names))]
    with engine.begin() as conn:
        conn.execute(delete(care_conditions).where(care_conditions.c.patient == patient))
        if rows:
            conn.execute(care_conditions.insert(), rows)
    return sorted(set(conditions))


def log_meal(engine: Engine, patient: str, items: Sequence[MealItem], recorded_by: str, now_ns: int) -> int:
    rows = [{"patient": patient, "ndb_no": m.ndb_no, "description": m.description[:200], "grams": m.grams,
             "sodium_mg": m.sodium_mg, "potassium_mg": m.potassium_mg, "eaten_ns": to_ns(m.eaten_at),
             "recorded_ns": now_ns, "recorded_by": recorded_by[:64]} for m in items]
    if rows:
        with engine.begin() as conn:
            conn.execute(care_meals.insert(), rows)
    return len(rows)


def load_inputs(engine: Engine, patient: str, meals_since_ns: int) -> CareInputs:
    """The latest lab of each analyte, the conditions and medications, and the meals since ``meals_since_ns``."""
    t = care_lab_results
    newest = (select(t.c.analyte, func.max(t.c.taken_ns).label("taken_ns")).where(t.c.patient == patient)
              .group_by(t.c.analyte).subquery())
    labs_query = (select(t).join(newest, and_(t.c.analyte == newest.c.analyte, t.c.taken_ns == newest.c.taken_ns))
                  .where(t.c.patient == patient).order_by(t.c.id))
    with engine.connect() as conn:
        labs = [LabValue(r.analyte, r.value, from_ns(r.taken_ns), r.source) for r in conn.execute(labs_query)
                if r.analyte in ANALYTES]
        held = conn.execute(select(care_conditions).where(care_conditions.c.patient == patient)
                            .order_by(care_conditions.c.kind, care_conditions.c.name)).all()
        meals = [MealItem(r.ndb_no, r.description, r.grams, r.sodium_mg, r.potassium_mg, from_ns(r.eaten_ns))
                 for r in conn.execute(select(care_meals).where(care_meals.c.patient == patient,
                                                                care_meals.c.eaten_ns >= meals_since_ns)
                                       .order_by(care_meals.c.eaten_ns, care_meals.c.id))]
    sources = sorted({r.source for r in held})
    return CareInputs(labs=labs, conditions=[r.name for r in held if r.kind == "condition"],
                      medications=[r.name for r in held if r.kind == "medication"], meals=meals,
                      condition_source=", ".join(sources) or "care record")
