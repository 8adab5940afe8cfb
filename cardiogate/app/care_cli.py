"""``cardiogate care build-food-table|import-labs``: the nutrition analysis's data.

``build-food-table`` derives the compact food table from USDA SR28's ABBREV.csv (the shipped table
is its output). ``import-labs`` stores one MIMIC demo subject's labs, conditions and relevant
medications as a registered patient's care record, in the cloud database of ``--config``.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path


def _cmd_build_food_table(ns: argparse.Namespace) -> int:
    from cardiogate.cloud.care.build_food_table import SHIPPED_TABLE, FoodTableError, build

    out: Path = ns.out or SHIPPED_TABLE
    try:
        count = build(ns.abbrev, out)
    except (OSError, FoodTableError) as exc:
        print(f"cardiogate care build-food-table: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {count} foods to {out}")
    return 0


def _cmd_import_labs(ns: argparse.Namespace) -> int:
    import time

    from sqlalchemy import select

    from cardiogate.cloud.care.labs import ANALYTES
    from cardiogate.cloud.care.mimic import MimicError, read_subject, shift_to
    from cardiogate.cloud.care.nutrition_store import EnteredLab, record_labs, set_conditions
    from cardiogate.cloud.registry.migrate import open_database
    from cardiogate.cloud.registry.schema import patients
    from cardiogate.cloud.settings import load_cloud_settings

    settings = load_cloud_settings(ns.config)
    try:
        subject = read_subject(ns.mimic, ns.subject)
    except (OSError, MimicError) as exc:
        print(f"cardiogate care import-labs: {exc}", file=sys.stderr)
        return 2
    engine = open_database(settings.db_url)
    try:
        with engine.connect() as conn:
            known = conn.execute(select(patients.c.pseudonym).where(patients.c.pseudonym == ns.patient)).first()
        if known is None:
            print(f"cardiogate care import-labs: patient {ns.patient!r} is not registered in the cloud database",
                  file=sys.stderr)
            return 2
        labs = shift_to(subject.labs, datetime.now(UTC))
        entered = [EnteredLab(lab, lab.value, ANALYTES[lab.analyte].unit) for lab in labs]  # converted on reading
        now_ns = time.time_ns()
        actor = f"import {subject.edition} {subject.subject_id}"
        stored = record_labs(engine, ns.patient, entered, actor, now_ns)
        conditions = set_conditions(engine, ns.patient, subject.conditions, subject.medications, actor,
                                    f"{subject.edition} demo diagnoses_icd/prescriptions", now_ns)
    finally:
        engine.dispose()
    print(f"{ns.patient}: {stored} lab results from {subject.edition} subject {subject.subject_id} "
          f"(latest moved to now, intervals kept; {subject.skipped_labs} rows without a usable value skipped); "
          f"conditions: {', '.join(conditions) or 'none'}; medications: {', '.join(subject.medications) or 'none'}")
    return 0


def add_care_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``care`` on the main parser."""
    care = sub.add_parser("care", help="the nutrition analysis's data: the food table, MIMIC demo labs")
    csub = care.add_subparsers(dest="action", required=True, metavar="ACTION")
    build = csub.add_parser("build-food-table", help="derive the food table from USDA SR28 ABBREV.csv",
                            description="Keep whole, plain foods with their potassium, magnesium, sodium, calcium, "
                                        "iron, fibre, saturated fat, cholesterol and household serving; the rule "
                                        "is in cardiogate.cloud.care.build_food_table.")
    build.add_argument("--abbrev", type=Path, required=True, help="SR28's ABBREV.csv")
    build.add_argument("--out", type=Path, default=None, help="where to write (default: the table cardiogate ships)")
    build.set_defaults(func=_cmd_build_food_table)
    imp = csub.add_parser("import-labs", help="store a MIMIC demo subject's labs and conditions for a patient",
                          description="Read one subject of the MIMIC-IV (hosp/) or MIMIC-III (csv/) demo and store "
                                      "its labs (moved in time so the latest is now), mapped diagnoses and "
                                      "relevant medications as the care record of a registered patient.")
    imp.add_argument("--mimic", type=Path, required=True, help="the demo's folder")
    imp.add_argument("--subject", type=int, required=True, help="subject_id")
    imp.add_argument("--patient", required=True, help="the registered patient's pseudonym")
    imp.add_argument("--config", type=Path, default=None, help="cloud TOML settings file")
    imp.set_defaults(func=_cmd_import_labs)
