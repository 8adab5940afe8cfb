"""Hyperparameter search for the eICU teacher: Ray Tune with the ASHA scheduler.

    cardiogate models search-risk --data ../shared/data/eicu-demo --trials 16 --json search.json
    cardiogate models search-risk --data DIR --address ray://head:10001     # on a Ray cluster (KubeRay)

Only training patients take part: the held-out patients of ``train.py``'s split (same seed) are
never loaded into a trial. Within them, one fold of five (by patient, ``fold_of``) is the search's
validation set; embeddings' vocabularies are fitted on the other four. Each trial grows its
XGBoost model ``step_rounds`` at a time and reports the validation AUROC after each step, so ASHA
stops weak configurations after a few steps and spends the rounds on promising ones.

Reproducible: the configurations are drawn by a seeded generator, every trial fits with the same
XGBoost seed, and every step of every trial is in the JSON report (configuration, AUROC per step,
rounds reached, whether ASHA stopped it). Trials run in the local Ray instance by default (one CPU
each) or on the cluster at ``--address``. ``xgboost-cpu`` has no CUDA; with the full ``xgboost``
wheel on a GPU node, ``--gpu`` gives each trial a GPU and ``device="cuda"``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from cardiogate.models.haim import fusion
from cardiogate.models.haim.eicu import load_cohort
from cardiogate.models.haim.embeddings import embed, fit_vocab
from cardiogate.models.haim.metrics import auroc
from cardiogate.models.haim.train import DEFAULT_SEED, HOLDOUT_FRACTION, fold_of, is_held_out

VALIDATION_FOLD = 0


def space(seed: int) -> dict[str, Any]:
    """The search space (Ray Tune sample functions)."""
    from ray import tune

    return {
        "max_depth": tune.choice([2, 3, 4, 5]),
        "eta": tune.loguniform(0.01, 0.2),
        "subsample": tune.uniform(0.6, 1.0),
        "colsample_bytree": tune.uniform(0.2, 0.8),
        "min_child_weight": tune.choice([1.0, 2.0, 5.0, 10.0]),
        "lambda": tune.loguniform(0.5, 10.0),
        "seed": seed,
    }


def grow(config: dict[str, Any], x_fit: np.ndarray, y_fit: np.ndarray, x_val: np.ndarray, y_val: np.ndarray,
         step_rounds: int, max_rounds: int, use_gpu: bool = False) -> Iterator[tuple[int, float]]:
    """Grow one configuration's model ``step_rounds`` at a time: (rounds so far, validation AUROC) after each step."""
    import xgboost as xgb

    params = {k: v for k, v in config.items() if k != "seed"}
    params.update({"nthread": 1, **({"device": "cuda"} if use_gpu else {})})
    dtrain = xgb.DMatrix(x_fit, label=y_fit, missing=np.nan)
    dval = xgb.DMatrix(x_val, missing=np.nan)
    booster: xgb.Booster | None = None
    for rounds in range(step_rounds, max_rounds + 1, step_rounds):
        booster = xgb.train({**fusion.TEACHER_PARAMS, **params, "seed": config["seed"]}, dtrain,
                            num_boost_round=step_rounds, xgb_model=booster)
        yield rounds, float(auroc(y_val, booster.predict(dval)))


def _trainable(config: dict[str, Any], *, x_fit: np.ndarray, y_fit: np.ndarray, x_val: np.ndarray,
               y_val: np.ndarray, step_rounds: int, max_rounds: int, use_gpu: bool) -> None:
    from ray import tune

    for rounds, value in grow(config, x_fit, y_fit, x_val, y_val, step_rounds, max_rounds, use_gpu):
        tune.report({"auroc": value, "rounds": rounds})


def search_data(data: Path, seed: int, log: Any = print) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_fit, y_fit, x_val, y_val): the training patients only, one fold of five (by patient) for validation."""
    cohort = load_cohort(data, log=log)
    training = [s for s in cohort.samples if s.eligible and not is_held_out(s.patient_id, seed, HOLDOUT_FRACTION)]
    fit_s = [s for s in training if fold_of(s.patient_id, seed) != VALIDATION_FOLD]
    val_s = [s for s in training if fold_of(s.patient_id, seed) == VALIDATION_FOLD]
    vocab = fit_vocab(cohort, [s.stay_id for s in fit_s], seed)
    x_fit, _ = embed(cohort, [s.stay_id for s in fit_s], vocab).matrix()
    x_val, _ = embed(cohort, [s.stay_id for s in val_s], vocab).matrix()
    y_fit = np.array([float(bool(s.died_in_hospital)) for s in fit_s])
    y_val = np.array([float(bool(s.died_in_hospital)) for s in val_s])
    return x_fit, y_fit, x_val, y_val


def search(data: Path, *, seed: int = DEFAULT_SEED, trials: int = 16, max_rounds: int = 400, step_rounds: int = 25,
           address: str | None = None, use_gpu: bool = False, storage: Path | None = None,
           log: Any = print) -> dict[str, Any]:
    """Run the search; returns the JSON-able report (best configuration and every trial)."""
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search import BasicVariantGenerator

    began = time.perf_counter()
    x_fit, y_fit, x_val, y_val = search_data(data, seed, log)
    log(f"search on training patients only: {len(y_fit)} fit / {len(y_val)} validation stays "
        f"({int(y_val.sum())} validation deaths); {trials} trials, ASHA over {max_rounds} rounds in steps of "
        f"{step_rounds}; Ray {'at ' + address if address else 'local'}")
    if not ray.is_initialized():
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(num_cpus=max(1, min(4, os.cpu_count() or 1)), include_dashboard=False, log_to_driver=False,
                     object_store_memory=128 * 1024 * 1024, configure_logging=False)
    trainable = tune.with_resources(
        tune.with_parameters(_trainable, x_fit=x_fit, y_fit=y_fit, x_val=x_val, y_val=y_val,
                             step_rounds=step_rounds, max_rounds=max_rounds, use_gpu=use_gpu),
        {"cpu": 1, "gpu": 1} if use_gpu else {"cpu": 1})
    scheduler = ASHAScheduler(time_attr="training_iteration", max_t=max_rounds // step_rounds, grace_period=2,
                              reduction_factor=3)
    tuner = tune.Tuner(
        trainable, param_space=space(seed),
        tune_config=tune.TuneConfig(metric="auroc", mode="max", num_samples=trials, scheduler=scheduler,
                                    search_alg=BasicVariantGenerator(random_state=seed)),
        run_config=tune.RunConfig(name=f"risk-teacher-seed{seed}", verbose=0,
                                  storage_path=str((storage or Path("ray-results")).resolve())))
    grid = tuner.fit()
    rows: list[dict[str, Any]] = []
    for result in (grid[i] for i in range(len(grid))):
        history = result.metrics_dataframe
        curve = [] if history is None else [round(float(v), 4) for v in history["auroc"]]
        config, metrics = dict(result.config or {}), dict(result.metrics or {})
        rows.append({"config": config, "auroc_per_step": curve,
                     "rounds": int(metrics.get("rounds", 0)), "best_auroc": max(curve) if curve else None,
                     "stopped_early": int(metrics.get("rounds", 0)) < max_rounds,
                     "error": str(result.error) if result.error else None})
    rows.sort(key=lambda r: -(r["best_auroc"] or 0.0))
    best = rows[0] if rows else None
    seconds = time.perf_counter() - began
    report = {"seed": seed, "trials": trials, "max_rounds": max_rounds, "step_rounds": step_rounds,
              "scheduler": {"name": "ASHA", "grace_period_steps": 2, "reduction_factor": 3},
              "fit_stays": len(y_fit), "validation_stays": len(y_val), "validation_deaths": int(y_val.sum()),
              "device": "cuda" if use_gpu else "cpu", "address": address or "local", "seconds": round(seconds, 1),
              "rounds_trained": sum(r["rounds"] for r in rows), "rounds_without_asha": trials * max_rounds,
              "best": best, "trials_log": rows,
              "fixed_teacher_validation_auroc": _fixed_baseline(x_fit, y_fit, x_val, y_val, seed)}
    if best is not None:
        log(f"best validation AUROC {best['best_auroc']:.3f} at {best['rounds']} rounds: "
            + ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in best["config"].items()))
    log(f"fixed teacher settings on the same split: AUROC {report['fixed_teacher_validation_auroc']:.3f}; "
        f"ASHA trained {report['rounds_trained']} of {report['rounds_without_asha']} rounds; {seconds:.0f} s")
    return report


def _fixed_baseline(x_fit: np.ndarray, y_fit: np.ndarray, x_val: np.ndarray, y_val: np.ndarray, seed: int) -> float:
    return float(auroc(y_val, fusion.predict(fusion.fit(x_fit, y_fit, seed), x_val)))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cardiogate models search-risk", description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, required=True, help="an eICU-layout folder")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help="split, sampler and XGBoost seed")
    p.add_argument("--trials", type=int, default=16)
    p.add_argument("--max-rounds", type=int, default=400)
    p.add_argument("--step-rounds", type=int, default=25, help="rounds between reports (ASHA's time unit)")
    p.add_argument("--address", default=None, help="a Ray cluster (ray://host:10001); default: a local Ray")
    p.add_argument("--gpu", action="store_true", help="one GPU per trial (needs the full xgboost wheel)")
    p.add_argument("--storage", type=Path, default=Path("ray-results"), help="Ray Tune's trial folders")
    p.add_argument("--json", type=Path, default=None, help="write the report here")
    return p


def main(argv: list[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    if ns.trials < 1 or ns.step_rounds < 1 or ns.max_rounds < ns.step_rounds:
        print("search-risk: --trials and --step-rounds must be >= 1 and --max-rounds >= --step-rounds",
              file=sys.stderr)
        return 2
    report = search(ns.data, seed=ns.seed, trials=ns.trials, max_rounds=ns.max_rounds, step_rounds=ns.step_rounds,
                    address=ns.address, use_gpu=ns.gpu, storage=ns.storage)
    if ns.json is not None:
        ns.json.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {ns.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
