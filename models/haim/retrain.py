"""The retrain loop of the gateway risk student: train a challenger, compare it with the champion on the
same fixed evaluation set, and publish it (signed, with its lineage) only if it is not worse.

``cardiogate models retrain --data DIR --cloud-config FILE [--db URL] [--work DIR] [--seed N] [--tolerance T]
[--dry-run] [--drill-shuffle-labels]``

1. Dataset: the eICU cohort's training split (patients not held out by ``train.is_held_out``) and the
   clinicians' true/false alarm labels from the cloud database. The labels say whether a gateway alarm was
   real, not whether a patient died, and carry no 24-hour gateway vitals: they are **recorded in the
   lineage (counts, alarm ids, a sha256 over them) but are not training rows yet**.
2. Challenger: teacher -> out-of-fold soft labels -> student, through ``train.fit_teacher_and_student``
   (the code ``train-risk`` runs), exported with ``export.write_gateway_risk_artifact``.
3. Champion: the registry's version of ``--name`` under the alias ``champion`` (its int8 ONNX artifact,
   run with onnxruntime); with none, the int8 ONNX committed in ``models/artifacts/risk`` (the gateway's
   default model, ``risk-student-1.0.0``); with neither, ``models/artifacts/risk/student.json``
   (``student.predict``). Both are scored on the same evaluation set: the eligible held-out stays of the
   same split rule and seed, with the gateway features; the challenger is scored in the champion's form
   (int8 ONNX against an ONNX champion, float against the JSON), and both forms are reported.
4. Rule: the challenger is refused (exit 3, nothing published) when its AUROC is below the champion's
   minus ``--tolerance``. A challenger byte-identical to the champion (same data, same code) is not published
   again. Otherwise the next version (the newest known version, published or committed, with the minor part
   + 1, or 1.0.0) is exported, signed and registered with task ``risk``: never a version gateways already
   run. A staged rollout is a separate, human step (``cardiogate models rollout start``).

``--drill-shuffle-labels`` is a drill of the refusal: the training labels are permuted before the teacher
is fitted, so the challenger learns noise and must be refused. A drill never publishes, whatever the gate
says (it exits 1 if the gate let the noise model through). ``--fast`` fits the XGBoost teachers with 100
rounds instead of 400 (tests, smoke runs).

This module holds everything but the cloud: the database and the registry come in through
:class:`RetrainRegistry` (``cardiogate.cloud.registry.retrain`` implements it and is the command's entry
point; ``cardiogate.models`` never imports the cloud). Needs the ``[learn]`` extra; never torch.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import math
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from cardiogate.models.haim import ARTIFACTS_DIR, fusion, student
from cardiogate.models.haim.eicu import EicuCohort, load_cohort
from cardiogate.models.haim.export import write_gateway_risk_artifact
from cardiogate.models.haim.metrics import BOOTSTRAP_ROUNDS, BOOTSTRAP_SEED, auroc, summary
from cardiogate.models.haim.train import (
    DEFAULT_SEED,
    HOLDOUT_FRACTION,
    OOF_FOLDS,
    STUDENT_FILE,
    code_version,
    fit_teacher_and_student,
    held_out_ids,
    is_held_out,
    training_stays,
)

DEFAULT_NAME = "risk-student"
DEFAULT_WORK = Path("retrain-work")
FAST_ROUNDS = 100
EXIT_REFUSED = 3
EXIT_DRILL_FAILED = 1
REPORT_FILE = "retrain-report.json"
MAX_LINEAGE_IDS = 1000
"""At most this many alarm ids go into the signed manifest's lineage (the sha256 always covers all)."""
LABELS_NOT_USED = ("recorded, not used as training rows: a label says whether a gateway alarm was real, not "
                   "whether the patient died in hospital, and comes with no 24-hour gateway vitals to pair with it")


@dataclass(frozen=True)
class ClinicianLabel:
    """One clinician's true/false answer on one alarm (the cloud's ``alarm_labels`` row, without the note)."""

    alarm_id: str
    username: str
    is_true: bool
    time_ns: int
    condition: str | None = None


@dataclass(frozen=True)
class Champion:
    """The model to beat: its version, its int8 ONNX artifact as a local file, its manifest body."""

    version: str
    artifact: Path
    manifest: dict[str, Any]
    signature: str
    """How its manifest's signature was checked (or why not)."""
    source: str = "registry"
    """``registry`` (the alias champion) or ``committed`` (shipped with the code: the gateway's default model)."""


def _version_key(version: str) -> tuple[int, ...]:
    parts = tuple(int(p) for p in version.split("."))
    return parts + (0,) * (4 - len(parts))


def committed_champion(name: str, folder: Path = ARTIFACTS_DIR) -> Champion | None:
    """The newest ``<name>-<version>.int8.onnx`` committed in ``folder`` (what gateways run until the registry
    sends another), if its manifest is for task risk and its sha256 matches; else None."""
    found: list[tuple[tuple[int, ...], Champion]] = []
    for path in folder.glob(f"{name}-*.int8.onnx.json"):
        body: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        artifact = path.with_name(Path(str(body.get("artifact", ""))).name)
        if (body.get("name") == name and body.get("task") == "risk" and artifact.is_file()
                and hashlib.sha256(artifact.read_bytes()).hexdigest() == body.get("sha256")):
            version = str(body["version"])
            found.append((_version_key(version), Champion(version, artifact, body, "committed with the code (the "
                                                                              "gateway's default model), unsigned",
                                                          "committed")))
    return max(found, key=lambda f: f[0])[1] if found else None


class RetrainRegistry(Protocol):
    """What the loop needs from the cloud: the labels, the champion, the versions, and publishing."""

    def labels(self) -> list[ClinicianLabel]: ...

    def champion(self, name: str, into: Path) -> Champion | None: ...

    def newest_version(self, name: str) -> str | None: ...

    def check_can_publish(self) -> None:
        """Raise (before any training) when publishing would fail, e.g. no signing key."""
        ...

    def publish(self, artifact: Path, manifest: dict[str, Any], model_card: str) -> dict[str, Any]:
        """Sign and register ``artifact`` with ``manifest`` (its ``<artifact>.json``); what was published."""
        ...

    def rollout_hint(self) -> str:
        """The options a ``cardiogate models`` command needs to reach the same registry (passwords hidden)."""
        ...


# -- evaluation -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EvaluationSet:
    """The fixed evaluation set: eligible held-out stays, their outcome and their gateway features."""

    stay_ids: list[int]
    y: np.ndarray
    features: list[str]
    x: np.ndarray
    seed: int
    fraction: float

    @property
    def sha256(self) -> str:
        return hashlib.sha256("\n".join(str(i) for i in self.stay_ids).encode()).hexdigest()

    def columns(self, names: Sequence[str]) -> np.ndarray:
        """The feature matrix in the order a model expects; ValueError for a feature the gateway lacks."""
        index = {n: i for i, n in enumerate(self.features)}
        missing = [n for n in names if n not in index]
        if missing:
            raise ValueError(f"the model expects features the gateway feature set lacks: {missing}")
        return self.x[:, [index[n] for n in names]]

    def describe(self) -> dict[str, Any]:
        return {"what": "eICU eligible held-out stays (in the unit 24 h after admission, known hospital outcome), "
                        "gateway features", "split_seed": self.seed, "holdout_fraction": self.fraction,
                "stays": len(self.stay_ids), "deaths": int(self.y.sum()), "stay_ids_sha256": self.sha256}


def evaluation_set(cohort: EicuCohort, seed: int, fraction: float = HOLDOUT_FRACTION) -> EvaluationSet:
    ids = held_out_ids(cohort, seed, fraction)
    by_id = {s.stay_id: s for s in cohort.samples}
    y = np.array([float(bool(by_id[i].died_in_hospital)) for i in ids])
    names, x = student.gateway_features(cohort, ids)
    return EvaluationSet(ids, y, names, x, seed, fraction)


def score_student(spec: dict[str, Any], ev: EvaluationSet) -> np.ndarray:
    """A student JSON evaluated with numpy (``student.predict``)."""
    return student.predict(spec, ev.columns(list(spec["features"])))


def score_onnx(artifact: Path, features: Sequence[str], ev: EvaluationSet) -> np.ndarray:
    """A gateway risk artifact run with onnxruntime, one stay per call as on a gateway (input [1, n])."""
    import onnxruntime as ort  # type: ignore[import-untyped]

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(artifact), sess_options=options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    x = ev.columns(features).astype(np.float32)
    out = np.empty(len(x))
    for i in range(len(x)):
        out[i] = float(np.asarray(session.run(None, {name: x[i:i + 1]})[0]).reshape(-1)[0])
    return out


def paired_delta_ci(y: np.ndarray, champion: np.ndarray, challenger: np.ndarray, rounds: int = BOOTSTRAP_ROUNDS,
                    seed: int = BOOTSTRAP_SEED) -> tuple[float, float]:
    """Percentile bootstrap 95% CI of AUROC(challenger) - AUROC(champion), both on the same resampled stays."""
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(rounds):
        idx = rng.integers(0, len(y), len(y))
        if 0 < y[idx].sum() < len(idx):
            values.append(auroc(y[idx], challenger[idx]) - auroc(y[idx], champion[idx]))
    if not values:
        return float("nan"), float("nan")
    lo, hi = np.quantile(values, [0.025, 0.975])
    return float(lo), float(hi)


def refused(champion_auroc: float, challenger_auroc: float, tolerance: float) -> bool:
    """The rule: refuse a challenger whose AUROC is below the champion's minus the tolerance (or undefined)."""
    if not math.isfinite(challenger_auroc):
        return True
    return math.isfinite(champion_auroc) and challenger_auroc < champion_auroc - tolerance


def next_version(newest: str | None) -> str:
    """The newest known version with the minor part + 1 (patch 0), or 1.0.0 for a new model line."""
    if newest is None:
        return "1.0.0"
    parts = _version_key(newest)
    return f"{parts[0]}.{parts[1] + 1}.0"


# -- lineage --------------------------------------------------------------------------------------------


def label_lineage(labels: Sequence[ClinicianLabel]) -> dict[str, Any]:
    """Counts, alarm ids and a sha256 over the label set (order-independent; notes and patients left out)."""
    lines = sorted(f"{lab.alarm_id}\t{lab.username}\t{int(lab.is_true)}\t{lab.time_ns}" for lab in labels)
    alarm_ids = sorted({lab.alarm_id for lab in labels})
    conditions: dict[str, int] = {}
    for lab in labels:
        key = lab.condition or "unknown"
        conditions[key] = conditions.get(key, 0) + 1
    return {"source": "cloud table alarm_labels (clinicians' true/false answers on alarms)",
            "labels": len(labels), "true": sum(lab.is_true for lab in labels),
            "false": sum(not lab.is_true for lab in labels), "alarms": len(alarm_ids),
            "by_condition": dict(sorted(conditions.items())),
            "alarm_ids": alarm_ids[:MAX_LINEAGE_IDS], "alarm_ids_truncated": len(alarm_ids) > MAX_LINEAGE_IDS,
            "sha256": hashlib.sha256("\n".join(lines).encode()).hexdigest(),
            "hash_covers": "sorted lines alarm_id TAB username TAB is_true TAB time_ns",
            "used_as_training_rows": 0, "use": LABELS_NOT_USED}


def _finite(value: Any) -> Any:
    """JSON a signature can cover: NaN and infinities become null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _sha256_json(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


# -- the loop -------------------------------------------------------------------------------------------


def train_challenger(cohort: EicuCohort, seed: int, *, rounds: int, drill_shuffle_labels: bool,
                     fraction: float = HOLDOUT_FRACTION, log: Callable[[str], None] = print) -> tuple[
                         dict[str, Any], dict[str, Any]]:
    """The student of a fresh teacher on the training split; (its JSON spec, facts for the lineage)."""
    train_s = training_stays(cohort, seed, fraction)
    y = np.array([float(bool(s.died_in_hospital)) for s in train_s])
    if drill_shuffle_labels:
        y = np.random.default_rng(seed).permutation(y)
        log("DRILL: the training labels are shuffled; this challenger must be refused")
    log(f"training split (seed {seed}): {len(train_s)} stays, {int(y.sum())} deaths")
    fitted = fit_teacher_and_student(cohort, train_s, y, seed, rounds=rounds, log=log)
    held_pids = sorted({s.patient_id for s in cohort.samples if is_held_out(s.patient_id, seed, fraction)})
    info = {"training_stays": len(train_s), "training_deaths": int(y.sum()),
            "training_oof_teacher": summary(y, fitted.oof),
            "held_out_patients_sha256": hashlib.sha256("\n".join(held_pids).encode()).hexdigest(),
            "hyperparameters": {"teacher": {**fusion.TEACHER_PARAMS, "rounds": rounds, "seed": seed},
                                "student": {"model": "logistic_regression", "l2": student.L2},
                                "oof_folds": OOF_FOLDS, "embeddings": fitted.vocab.meta}}
    return fitted.student, info


def _fmt(m: dict[str, Any]) -> str:
    lo, hi = m["auroc_ci"]
    return f"AUROC {m['auroc']:.3f} (95% CI {lo:.3f}-{hi:.3f})"


def model_card(name: str, version: str, report: dict[str, Any]) -> str:
    ch, cm, lab = report["challenger"], report["champion"], report["lineage"]["labels"]
    ev = report["evaluation_set"]
    return f"""# {name} {version}: gateway risk student, retrained

Made by `cardiogate models retrain` (code {report['lineage']['code_version']}, seed {report['seed']}).
Teacher (XGBoost on HAIM-style eICU embeddings) -> out-of-fold soft labels -> logistic-regression student on
the vitals a gateway sees; int8 ONNX. Intended use: advisory only, beside NEWS2; never replaces an alarm.

Evaluation: {ev['stays']} eICU held-out stays ({ev['deaths']} deaths), split seed {ev['split_seed']}.
- this version: {_fmt(ch['gate'])} ({ch['gate_form']})
- champion {cm['version'] or '(committed student.json)'} ({cm['source']}): {_fmt(cm['metrics'])} ({cm['form']})

Clinicians' alarm labels at training time: {lab['labels']} ({lab['true']} true, {lab['false']} false), recorded in
the lineage, not used as training rows. eICU demo only; not validated on gateway data; not a clinical device.
"""


def run(ns: argparse.Namespace, registry: RetrainRegistry, log: Callable[[str], None] = print) -> int:
    """The whole loop; returns the exit code (0 published, unchanged or a dry run that passed, 3 refused, 1 a drill
    the gate let through)."""
    work: Path = ns.work
    work.mkdir(parents=True, exist_ok=True)
    publishing = not (ns.dry_run or ns.drill_shuffle_labels)
    if publishing:
        registry.check_can_publish()
    cohort = load_cohort(ns.data, log=log)
    ev = evaluation_set(cohort, ns.seed)
    log(f"evaluation set: {len(ev.stay_ids)} held-out stays, {int(ev.y.sum())} deaths (split seed {ns.seed})")
    labels = registry.labels()
    labs = label_lineage(labels)
    log(f"clinician labels: {labs['labels']} ({labs['true']} true, {labs['false']} false) on {labs['alarms']} "
        f"alarms, sha256 {labs['sha256'][:16]}; {LABELS_NOT_USED}")

    rounds = FAST_ROUNDS if ns.fast else fusion.TEACHER_ROUNDS
    spec, info = train_challenger(cohort, ns.seed, rounds=rounds, drill_shuffle_labels=ns.drill_shuffle_labels,
                                  log=log)
    champion = registry.champion(ns.name, work / "champion") or committed_champion(ns.name)
    known = [v for v in (registry.newest_version(ns.name), champion.version if champion else None) if v]
    version = next_version(max(known, key=_version_key) if known else None)
    with tempfile.TemporaryDirectory() as tmp:
        candidate = write_gateway_risk_artifact(spec, Path(tmp), name=ns.name, version=version)
        candidate_sha = hashlib.sha256(candidate.read_bytes()).hexdigest()
        challenger_int8 = score_onnx(candidate, spec["features"], ev)
    challenger_float = score_student(spec, ev)

    if champion is not None:
        features = list(champion.manifest.get("input", {}).get("features", []))
        champion_scores = score_onnx(champion.artifact, features, ev)
        champion_form = ("int8 ONNX from the registry, onnxruntime" if champion.source == "registry" else
                         f"committed {champion.artifact.name} (no champion in the registry), onnxruntime")
        gate_scores, gate_form = challenger_int8, "int8 ONNX, onnxruntime"
        champ_split = champion.manifest.get("lineage", {}).get("seed")
        if champ_split is not None and int(champ_split) != ns.seed:
            log(f"warning: the champion was trained with split seed {champ_split}, this evaluation uses {ns.seed}: "
                "its training stays may overlap the evaluation set, which favours the champion")
        where = "alias champion" if champion.source == "registry" else "no champion in the registry"
        log(f"champion: {ns.name} {champion.version} ({where}; {champion.signature})")
    else:
        committed = student.load(ARTIFACTS_DIR / STUDENT_FILE)
        champion_scores = score_student(committed, ev)
        champion_form = f"committed models/artifacts/risk/{STUDENT_FILE}, student.predict (no champion anywhere)"
        gate_scores, gate_form = challenger_float, "float, student.predict"
        log(f"champion: no {ns.name} champion in the registry nor an exported one committed; comparing with the "
            f"committed {STUDENT_FILE}")

    champion_m = summary(ev.y, champion_scores)
    gate_m = summary(ev.y, gate_scores)
    delta_ci = paired_delta_ci(ev.y, champion_scores, gate_scores)
    champ_auroc, chall_auroc = auroc(ev.y, champion_scores), auroc(ev.y, gate_scores)
    is_refused = refused(champ_auroc, chall_auroc, ns.tolerance)
    metrics = _finite({**summary(ev.y, challenger_int8), "form": "int8 ONNX, onnxruntime",
                       "auroc_float": auroc(ev.y, challenger_float), "evaluation_set": ev.describe(),
                       "champion_version": champion.version if champion else None, "champion_auroc": champ_auroc,
                       "gate_form": gate_form, "auroc_delta_vs_champion": chall_auroc - champ_auroc,
                       "auroc_delta_ci": list(delta_ci)})
    data_hash = _sha256_json({"eicu_files": cohort.file_sha256, "labels": labs["sha256"]})
    lineage = _finite({
        "kind": "retrain", "parent_version": champion.version if champion else None,
        "champion_source": champion.source if champion else "committed student.json",
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "code_version": code_version(), "seed": ns.seed,
        "data": {"eicu": str(ns.data), "sha256": cohort.file_sha256, "counts": cohort.counts},
        "labels": labs,
        "split": {"rule": "held out iff int(sha256(f'{seed}:{uniquepid}').hexdigest()[:8], 16) / 2**32 < fraction",
                  "holdout_fraction": ev.fraction, "training_stays": info["training_stays"],
                  "held_out_patients_sha256": info["held_out_patients_sha256"], "evaluation": ev.describe()},
        "hyperparameters": info["hyperparameters"],
        "training_oof_teacher_auroc": info["training_oof_teacher"]["auroc"],
        "drill": "training labels shuffled" if ns.drill_shuffle_labels else None,
        "gate": {"rule": "refuse when challenger AUROC < champion AUROC - tolerance", "tolerance": ns.tolerance},
        "metrics": {"challenger": metrics, "champion": champion_m},
    })
    report: dict[str, Any] = {
        "name": ns.name, "version": version, "seed": ns.seed, "tolerance": ns.tolerance,
        "dry_run": ns.dry_run, "drill_shuffle_labels": ns.drill_shuffle_labels, "fast": ns.fast,
        "evaluation_set": ev.describe(),
        "champion": {"version": champion.version if champion else None, "form": champion_form,
                     "source": champion.source if champion else "committed student.json",
                     "signature": champion.signature if champion else None, "metrics": _finite(champion_m)},
        "challenger": {"gate": _finite(gate_m), "gate_form": gate_form, "int8_onnx": metrics,
                       "float_auroc": _finite(auroc(ev.y, challenger_float))},
        "auroc_delta": _finite(chall_auroc - champ_auroc), "auroc_delta_ci": _finite(list(delta_ci)),
        "lineage": lineage, "training_data_hash": data_hash,
    }
    champ_name = f"champion {champion.version}" if champion else "committed student"
    log(f"{champ_name}: {_fmt(champion_m)} [{champion_form}]")
    log(f"challenger:  {_fmt(gate_m)} [{gate_form}]; difference {chall_auroc - champ_auroc:+.3f} "
        f"(paired 95% CI {delta_ci[0]:+.3f} to {delta_ci[1]:+.3f}); tolerance {ns.tolerance}")

    def finish(decision: str, code: int) -> int:
        report["decision"], report["exit_code"] = decision, code
        path = work / REPORT_FILE
        path.write_text(json.dumps(_finite(report), indent=1) + "\n", encoding="utf-8")
        log(f"report: {path}")
        return code

    if is_refused:
        log(f"REFUSED: challenger AUROC {chall_auroc:.3f} < {champ_name} AUROC {champ_auroc:.3f} - tolerance "
            f"{ns.tolerance} = {champ_auroc - ns.tolerance:.3f}; nothing published")
        return finish("refused" + (" (drill)" if ns.drill_shuffle_labels else ""), EXIT_REFUSED)
    if ns.drill_shuffle_labels:
        log("DRILL FAILED: the gate accepted a challenger trained on shuffled labels; nothing published")
        return finish("drill failed: not refused", EXIT_DRILL_FAILED)
    if champion is not None and champion.manifest.get("sha256") == candidate_sha:
        log(f"unchanged: the challenger is byte-identical to the champion {champion.version}; nothing published")
        return finish("unchanged (identical to the champion)", 0)

    artifact = write_gateway_risk_artifact(spec, work / "artifact", name=ns.name, version=version, metrics=metrics,
                                           training_data_hash=data_hash, lineage=lineage)
    if hashlib.sha256(artifact.read_bytes()).hexdigest() != candidate_sha:
        raise RuntimeError("the exported artifact differs from the one evaluated (non-deterministic export)")
    manifest: dict[str, Any] = json.loads(artifact.with_name(artifact.name + ".json").read_text(encoding="utf-8"))
    report["artifact"] = str(artifact)
    if ns.dry_run:
        log(f"dry run: would publish {ns.name} {version} ({artifact}); nothing published")
        return finish("accepted (dry run, not published)", 0)
    published = registry.publish(artifact, manifest, model_card(ns.name, version, report))
    report["published"] = published
    log(f"published {ns.name} {version}: sha256 {published['sha256']}, {published['size_bytes']} bytes, signed by "
        f"key {published['key_id']}, parent {published.get('parent_version') or '-'}, task risk")
    hint = registry.rollout_hint()
    command = (f"cardiogate models rollout start {ns.name} {version}{hint} --site SITE --canary GATEWAY")
    report["rollout_command"] = command
    log(f"start a staged rollout (docs/rollout.md): {command}")
    return finish("published", 0)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cardiogate models retrain",
        description="Retrain the gateway risk student on eICU, compare it with the registry's champion on the "
                    "fixed held-out set, and publish it (signed, with lineage) only if its AUROC is not below the "
                    "champion's minus --tolerance (exit 3 when refused). Needs the [learn] and [cloud] extras.")
    parser.add_argument("--data", type=Path, required=True, metavar="DIR", help="eICU-layout folder (*.csv.gz)")
    parser.add_argument("--cloud-config", type=Path, metavar="FILE",
                        help="cloud TOML: database, [models] artifact_root and signing_key "
                             "(default: CARDIOGATE_CLOUD__* variables)")
    parser.add_argument("--db", metavar="URL", help="SQLAlchemy URL of the cloud database (overrides the config)")
    parser.add_argument("--artifact-root", type=Path, metavar="DIR", help="artifact store (overrides the config)")
    parser.add_argument("--key", type=Path, metavar="FILE", help="Ed25519 signing key (overrides the config)")
    parser.add_argument("--actor", default="retrain", help="who publishes, for the registry's audit (default retrain)")
    parser.add_argument("--name", default=DEFAULT_NAME, help=f"model line in the registry (default {DEFAULT_NAME})")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED,
                        help=f"split and model seed; the evaluation set follows it (default {DEFAULT_SEED})")
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK, metavar="DIR",
                        help=f"scratch folder: the artifact, the champion's copy, {REPORT_FILE} "
                             f"(default {DEFAULT_WORK})")
    parser.add_argument("--tolerance", type=float, default=0.0,
                        help="AUROC the challenger may lose against the champion and still be published (default 0)")
    parser.add_argument("--dry-run", action="store_true", help="train, compare and export, never publish")
    parser.add_argument("--drill-shuffle-labels", action="store_true",
                        help="DRILL: shuffle the training labels so the challenger is worse; it must be refused "
                             "(exit 3). A drill never publishes.")
    parser.add_argument("--fast", action="store_true",
                        help=f"{FAST_ROUNDS} XGBoost rounds instead of {fusion.TEACHER_ROUNDS} (tests, smoke runs)")
    return parser
