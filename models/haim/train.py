"""Train the HAIM-style teacher and the gateway student on eICU; write ``models/artifacts/risk/``.

``cardiogate models train-risk --data DIR --out DIR [--seed N]``

Split by patient (``uniquepid``): a patient is held out when the first 8 hex digits of
``sha256(f"{seed}:{uniquepid}")`` read as a fraction of 2**32 fall below ``holdout_fraction``.
The held-out stays are never used to fit or choose anything; hyperparameters are fixed in
``fusion`` and ``student``. The student learns from the teacher's out-of-fold probabilities on
the training split (5 folds, again by patient), so it never copies the teacher's in-sample fit.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xgboost as xgb

from cardiogate.models.haim import ARTIFACTS_DIR, fusion, student
from cardiogate.models.haim.eicu import (
    PREDICTION_OFFSET_MIN,
    PROLONGED_STAY_MIN,
    EicuCohort,
    StaySample,
    load_cohort,
)
from cardiogate.models.haim.embeddings import Vocab, embed, fit_vocab
from cardiogate.models.haim.metrics import summary

DEFAULT_SEED = 13
HOLDOUT_FRACTION = 0.3
OOF_FOLDS = 5
TEACHER_FILE, STUDENT_FILE, MANIFEST_FILE, CARD_FILE = "teacher.json", "student.json", "manifest.json", "MODEL_CARD.md"


def _unit(seed: int, patient_id: str, salt: str = "") -> float:
    digest = hashlib.sha256(f"{seed}:{salt}{patient_id}".encode()).hexdigest()
    return int(digest[:8], 16) / 2**32


def is_held_out(patient_id: str, seed: int, fraction: float = HOLDOUT_FRACTION) -> bool:
    """The split rule (by patient, deterministic given the seed)."""
    return _unit(seed, patient_id) < fraction


def fold_of(patient_id: str, seed: int, folds: int = OOF_FOLDS) -> int:
    return int(_unit(seed, patient_id, "fold:") * folds)


@dataclass
class RiskModels:
    vocab: Vocab
    teacher: xgb.Booster
    student: dict[str, Any]
    manifest: dict[str, Any]

    @classmethod
    def load(cls, folder: Path | None = None) -> RiskModels:
        f = folder or ARTIFACTS_DIR
        for name in (TEACHER_FILE, STUDENT_FILE, MANIFEST_FILE, "embeddings.json", "embeddings.npz"):
            if not (f / name).is_file():
                raise FileNotFoundError(f"{f / name} is missing: train with `cardiogate models train-risk`")
        return cls(Vocab.load(f), fusion.load(f / TEACHER_FILE), student.load(f / STUDENT_FILE),
                   json.loads((f / MANIFEST_FILE).read_text(encoding="utf-8")))

    def score(self, cohort: EicuCohort, ids: list[int]) -> dict[str, np.ndarray]:
        """Teacher and student probabilities for these stays (rows in that order)."""
        x, _names = embed(cohort, ids, self.vocab).matrix()
        _gn, g = student.gateway_features(cohort, ids)
        return {"teacher": fusion.predict(self.teacher, x), "student": student.predict(self.student, g)}


def held_out_ids(cohort: EicuCohort, seed: int, fraction: float) -> list[int]:
    return [s.stay_id for s in cohort.samples if s.eligible and is_held_out(s.patient_id, seed, fraction)]


def compare(cohort: EicuCohort, ids: list[int], models: RiskModels) -> dict[str, Any]:
    """APACHE IVa, teacher and student on the same stays: those of ``ids`` with an APACHE IVa prediction."""
    by_id = {s.stay_id: s for s in cohort.samples}
    chosen = [i for i in ids if by_id[i].eligible and by_id[i].apache_iva_mortality is not None]
    excluded = [i for i in ids if by_id[i].eligible and by_id[i].apache_iva_mortality is None]
    y = np.array([float(bool(by_id[i].died_in_hospital)) for i in chosen])
    result: dict[str, Any] = {"stays": len(chosen), "deaths": int(y.sum()),
                              "excluded_without_apache_iva": len(excluded)}
    if not chosen:
        return result
    apache = np.array([float(by_id[i].apache_iva_mortality or 0.0) for i in chosen])
    probs = models.score(cohort, chosen)
    result["apache_iva"] = summary(y, apache)
    result["teacher"] = summary(y, probs["teacher"])
    result["student"] = summary(y, probs["student"])
    return result


def code_version() -> str:
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty", "--tags"], cwd=Path(__file__).parent,
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def training_stays(cohort: EicuCohort, seed: int, fraction: float = HOLDOUT_FRACTION) -> list[StaySample]:
    """The eligible stays of the patients not held out."""
    return [s for s in cohort.samples if s.eligible and not is_held_out(s.patient_id, seed, fraction)]


@dataclass
class Fitted:
    """The output of one teacher -> out-of-fold soft labels -> student fit."""

    vocab: Vocab
    teacher: xgb.Booster
    student: dict[str, Any]
    oof: np.ndarray
    """The teacher's out-of-fold probabilities on the training stays: the student's soft labels."""
    teacher_features: list[str]
    student_features: list[str]


def fit_teacher_and_student(cohort: EicuCohort, train_s: list[StaySample], y: np.ndarray, seed: int,
                            rounds: int = fusion.TEACHER_ROUNDS, log: Callable[[str], None] = print) -> Fitted:
    """The teacher on the embeddings of ``train_s`` (labels ``y``), its out-of-fold probabilities (folds by
    patient) and the student fitted to them. Nothing outside ``train_s`` is read."""
    train_ids = [s.stay_id for s in train_s]
    vocab = fit_vocab(cohort, train_ids, seed)
    x, names = embed(cohort, train_ids, vocab).matrix()
    log(f"embeddings: {x.shape[1]} columns; fitting the teacher (XGBoost)")
    teacher = fusion.fit(x, y, seed, rounds=rounds)
    folds = np.array([fold_of(s.patient_id, seed) for s in train_s])
    oof = np.zeros(len(train_ids))
    for k in range(OOF_FOLDS):
        inner = folds != k
        oof[~inner] = fusion.predict(fusion.fit(x[inner], y[inner], seed, rounds=rounds), x[~inner])
    log("fitting the student on the teacher's out-of-fold probabilities")
    gnames, g = student.gateway_features(cohort, train_ids)
    return Fitted(vocab, teacher, student.fit(gnames, g, oof), oof, names, gnames)


def train(data: Path | str, out: Path | str, seed: int = DEFAULT_SEED, holdout_fraction: float = HOLDOUT_FRACTION,
          log: Callable[[str], None] = print, write: bool = True) -> dict[str, Any]:
    """Fit everything on the training split, measure on the held-out split, write the artifacts."""
    started = time.perf_counter()
    folder = Path(out)
    cohort = load_cohort(data, log=log)
    train_s = training_stays(cohort, seed, holdout_fraction)
    test_ids = held_out_ids(cohort, seed, holdout_fraction)
    train_ids = [s.stay_id for s in train_s]
    y = np.array([float(bool(s.died_in_hospital)) for s in train_s])
    log(f"split by patient (seed {seed}): {len(train_ids)} training stays ({int(y.sum())} deaths), "
        f"{len(test_ids)} held-out stays")
    fitted = fit_teacher_and_student(cohort, train_s, y, seed, log=log)
    vocab, teacher, spec, oof = fitted.vocab, fitted.teacher, fitted.student, fitted.oof
    names, gnames = fitted.teacher_features, fitted.student_features
    models = RiskModels(vocab, teacher, spec, {})
    metrics = {"held_out": compare(cohort, test_ids, models), "training_oof_teacher": summary(y, oof)}
    seconds = time.perf_counter() - started
    held_pids = sorted({s.patient_id for s in cohort.samples if is_held_out(s.patient_id, seed, holdout_fraction)})
    manifest: dict[str, Any] = {
        "task": "in-hospital mortality, predicted 24 h after unit admission",
        "prediction_offset_min": PREDICTION_OFFSET_MIN,
        "labels": {"mortality": "patient.hospitaldischargestatus == Expired (else apachePatientResult."
                                "actualhospitalmortality)",
                   "prolonged_stay": f"patient.unitdischargeoffset > {PROLONGED_STAY_MIN} min (7 days); loaded, "
                                     "not modelled yet"},
        "cohort_rule": "stays still in the unit at the prediction time with a known hospital outcome; the "
                       "comparison uses those with an APACHE IVa prediction (predictedhospitalmortality != -1)",
        "data": {"sha256": cohort.file_sha256, "counts": cohort.counts},
        "code_version": code_version(), "seed": seed,
        "split": {"rule": "held out iff int(sha256(f'{seed}:{uniquepid}').hexdigest()[:8], 16) / 2**32 < fraction",
                  "holdout_fraction": holdout_fraction, "held_out_patients": len(held_pids),
                  "held_out_patients_sha256": hashlib.sha256("\n".join(held_pids).encode()).hexdigest(),
                  "training_stays": len(train_ids), "held_out_stays": len(test_ids),
                  "oof_folds": OOF_FOLDS},
        "hyperparameters": {"teacher": {**fusion.TEACHER_PARAMS, "rounds": fusion.TEACHER_ROUNDS, "seed": seed},
                            "student": {"model": "logistic_regression", "l2": student.L2},
                            "embeddings": vocab.meta},
        "features": {"teacher": names, "student": gnames},
        "metrics": metrics, "train_seconds_cpu": round(seconds, 1),
        "versions": {"xgboost": xgb.__version__, "numpy": np.__version__},
    }
    models.manifest = manifest
    if write:
        folder.mkdir(parents=True, exist_ok=True)
        vocab.save(folder)
        fusion.save(teacher, folder / TEACHER_FILE)
        student.save(spec, folder / STUDENT_FILE)
        (folder / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
        (folder / CARD_FILE).write_text(model_card(manifest), encoding="utf-8")
        log(f"wrote {folder}")
    report(metrics["held_out"], log)
    log(f"trained in {seconds:.1f} s")
    return manifest


def _fmt(m: dict[str, Any]) -> str:
    return (f"{m['auroc']:.3f} ({m['auroc_ci'][0]:.3f}-{m['auroc_ci'][1]:.3f}) | "
            f"{m['auprc']:.3f} ({m['auprc_ci'][0]:.3f}-{m['auprc_ci'][1]:.3f})")


def report(result: dict[str, Any], log: Callable[[str], None] = print) -> None:
    log(f"{result['stays']} stays, {result['deaths']} deaths ({result['excluded_without_apache_iva']} without an "
        "APACHE IVa prediction left out)")
    log(f"{'model':<12} {'AUROC (95% CI)':<22}   {'AUPRC (95% CI)':<22}")
    for key in ("apache_iva", "teacher", "student"):
        if key in result:
            log(f"{key:<12} {_fmt(result[key])}")


def model_card(m: dict[str, Any]) -> str:
    held = m["metrics"]["held_out"]
    rows = "\n".join(f"| {name} | {_fmt(held[key]).replace(' | ', ' | ')} |" for key, name in
                     (("apache_iva", "APACHE IVa (baseline)"), ("teacher", "HAIM-style teacher (XGBoost)"),
                      ("student", "gateway student (logistic regression, vitals only)")) if key in held)
    counts = m["data"]["counts"]
    return f"""# Risk models: in-hospital mortality at 24 h (eICU)

Generated by `cardiogate models train-risk` (code {m['code_version']}, seed {m['seed']}); every number below is
measured on the held-out patients of this training run. Re-score with `cardiogate eval risk`.

## Intended use
Research and engineering baseline for the cloud's risk scoring; not a clinical device, not validated for care
decisions.

## Data
eICU Collaborative Research Database demo 2.0.1 (Pollard et al., Sci Data 2018; Goldberger et al., Circulation
2000; PhysioNet, ODbL 1.0), the {counts['stays']} stays of the local copy. Prediction time: 24 h after unit
admission; every row known after it is dropped before features are computed. {counts['left_unit_before_prediction']}
stays left the unit before 24 h and {counts['no_hospital_outcome']} have no hospital outcome: excluded
({counts['eligible']} eligible). Split by patient ({m['split']['holdout_fraction']:.0%} of patients held out,
rule in `manifest.json`): {m['split']['training_stays']} training stays, {m['split']['held_out_stays']} held-out
stays; the comparison uses the {held['stays']} held-out stays with an APACHE IVa prediction ({held['deaths']} deaths;
{held['excluded_without_apache_iva']} held-out stays without one are left out of it).

## Models
- Teacher: HAIM-style fusion (one embedding per modality: demographics, time-series statistics, codes,
  TF-IDF+SVD of notes, APACHE physiology; concatenated) -> XGBoost (depth 3, {m['hyperparameters']['teacher']['rounds']}
  rounds, eta {m['hyperparameters']['teacher']['eta']}; fixed, not tuned on the held-out split).
- Student: logistic regression on what a gateway sees (worst HR/RR/temperature/MAP of the first 24 h, NIBP
  statistics, charted RR and SaO2), fitted to the teacher's out-of-fold probabilities; a JSON of coefficients.
- APACHE IVa's predicted hospital mortality is the baseline only; no feature derives from apachePatientResult.

## Held-out results (95% CI: percentile bootstrap over stays, 1000 rounds, fixed seed)

| model | AUROC (95% CI) | AUPRC (95% CI) |
|---|---|---|
{rows}

Teacher out-of-fold AUROC on the training split: {m['metrics']['training_oof_teacher']['auroc']:.3f}.
Training time on CPU (2 threads): {m['train_seconds_cpu']} s.

## Limitations
- Small: ~{held['deaths']} deaths in the held-out comparison; the CIs are wide and overlap, so no ranking of the
  models is established by this data alone.
- eICU demo only (a subset of 2014-2015 US hospitals); no lab table, no vitalPeriodic (continuous HR/SpO2), no
  nurse charting in this copy; APACHE physiology stands in for labs.
- The 24-h cohort excludes the patients who died or left the unit in the first day.
- The student's "worst vitals" come from APACHE's first-day worst values, which a gateway would compute from its
  own streams; it has not been validated on gateway data.
- Prolonged stay (unit LOS > 7 days) is loaded as a label but not modelled yet.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cardiogate models train-risk",
                                     description="Train the eICU mortality teacher (HAIM-style XGBoost) and the "
                                                 "gateway student; write the artifacts, manifest and model card.")
    parser.add_argument("--data", type=Path, required=True, metavar="DIR", help="eICU-layout folder (*.csv.gz)")
    parser.add_argument("--out", type=Path, default=ARTIFACTS_DIR, metavar="DIR",
                        help=f"artifact folder (default {ARTIFACTS_DIR})")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"split and model seed (default {DEFAULT_SEED})")
    parser.add_argument("--holdout-fraction", type=float, default=HOLDOUT_FRACTION,
                        help=f"fraction of patients held out (default {HOLDOUT_FRACTION})")
    return parser


def main(argv: list[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    try:
        train(ns.data, ns.out, ns.seed, ns.holdout_fraction)
    except FileNotFoundError as exc:
        print(f"cardiogate models train-risk: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
