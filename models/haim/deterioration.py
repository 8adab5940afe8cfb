"""Deterioration within the next hours, from trailing windows of vitals (MIMIC-III clinical database demo).

The question a gateway could answer every hour: from the bedside vitals it has seen, will this patient
deteriorate within the next ``horizon_h`` hours? The 24-h cohort of :mod:`.mimic` gives one sample per
stay; here each ICU stay gives one sample per hour from ``FIRST_SAMPLE_H`` (6 h) after ICU ``intime``
while the patient is in the ICU and alive, and the prediction time is the sample's own time.

Leakage rule, per sample: a chartevents row reaches a sample's features only if it was known (the
latest of ``charttime`` and ``storetime``, as :func:`.mimic.known_time` defines it) at or before the
sample's time, and was charted in the trailing window ``(t - window_h, t]``. The events are loaded
through :func:`.mimic.load_mimic_cohort` with a prediction time far in the future (so nothing is cut
there) and every sample applies its own cut in :func:`window_features`, the only function that reads
the events.

Label: in-hospital death (``admissions.deathtime``) within ``(t, t + horizon_h]``. Death is a hard
and rare endpoint: it misses the deteriorations that were treated in time (vasopressors, intubation,
transfer to a higher level of care are not in this definition), and it counts deaths after a decision
to withdraw treatment, which vitals may predict for other reasons. ``deathtime`` is read for the label
only, never for the features.

Samples of one stay are correlated (hourly neighbours share most of their window), so the split is by
subject and the confidence intervals come from a cluster bootstrap that resamples subjects.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cardiogate.core.news2 import news2
from cardiogate.models.haim.metrics import BOOTSTRAP_ROUNDS, BOOTSTRAP_SEED, auprc, auroc
from cardiogate.models.haim.mimic import (
    EVENT_TIME,
    KNOWN_TIME,
    SIGNAL,
    STAY,
    SUBJECT,
    VALUE,
    MimicLayoutError,
    detect_layout,
    load_mimic_cohort,
    read_columns,
    signal_values,
    timestamps,
)

HORIZON_H = 12.0
"""Label: death within this many hours after the prediction time."""
WINDOW_H = 6.0
"""Features: vitals charted in this many hours before the prediction time."""
FIRST_SAMPLE_H = 6.0
"""The first sample of a stay, hours after ICU ``intime`` (a window's worth of data first)."""
STEP_H = 1.0
"""One sample per hour."""
MAX_SAMPLES_PER_STAY = 72
"""Long stays are thinned to this many evenly spaced samples, so they do not dominate."""
SEED = 13
TEST_SHARE = 0.3
LOGISTIC_C = 0.1
"""Inverse L2 strength, fixed before any evaluation: ~70 training subjects, 44 features."""
TREE_PARAMS: dict[str, Any] = {"n_estimators": 100, "max_depth": 3, "learning_rate": 0.05, "subsample": 0.8,
                               "colsample_bytree": 0.8, "min_child_weight": 5.0, "tree_method": "hist", "n_jobs": 2}
"""Small and untuned (fixed once, never searched on these splits): ~70 training subjects."""
UNCUT_HOURS = 1e6
"""A prediction time ~114 years after intime: the loader keeps every timed row; each sample cuts its own."""

VITALS = ("hr", "spo2", "sbp", "dbp", "mbp", "rr", "temp_c")
WINDOW_STATS = ("count", "mean", "min", "max", "last", "slope")
NEWS2_FROM = {"pulse": "hr", "spo2": "spo2", "systolic": "sbp", "respiration_rate": "rr", "temperature": "temp_c"}
"""NEWS2 parameter -> the signal whose last value scores it (air/oxygen and consciousness are not vitals)."""
NEWS2_FEATURES = ("news2", "news2_parameters")
TIME = "time"
LABEL = "label"
_NS_PER_H = 3_600_000_000_000


@dataclass(frozen=True)
class VitalsData:
    """ICU stays with the times that make samples and labels, and every timed, plausible vital."""

    version: str
    stays: pd.DataFrame
    """stay_id, subject_id, intime, outtime, deathtime (deathtime: labels and the end of sampling only)."""
    vitals: pd.DataFrame
    """Long rows: stay_id, signal, value, event_time, known_time (not cut: samples cut them)."""
    file_sha256: dict[str, str]


def _stay_times(folder: Path | str) -> tuple[str, pd.DataFrame]:
    """intime/outtime per stay and the admission's deathtime, which :mod:`.mimic` deliberately never reads."""
    layout = detect_layout(folder)
    key = "icustay_id" if layout.version == "iii" else STAY
    icu = read_columns(layout.require("icustays"), (key, SUBJECT, "hadm_id", "intime", "outtime"))
    adm = read_columns(layout.require("admissions"), ("hadm_id",), ("deathtime",))
    stays = icu.rename(columns={key: STAY}).drop_duplicates(STAY).merge(
        adm.drop_duplicates("hadm_id"), on="hadm_id", how="left")
    for col in ("intime", "outtime", "deathtime"):
        stays[col] = timestamps(stays[col])
    stays = stays[stays["intime"].notna() & stays["outtime"].notna()]
    return layout.version, stays[[STAY, SUBJECT, "intime", "outtime", "deathtime"]].sort_values(
        STAY, kind="mergesort").reset_index(drop=True)


def load_vitals(folder: Path | str, log: Callable[[str], None] = lambda _m: None) -> VitalsData:
    """The stays and their chartevents vitals; a clear :class:`MimicLayoutError` when there are none."""
    version, stays = _stay_times(folder)
    cohort = load_mimic_cohort(folder, prediction_hours=UNCUT_HOURS, log=log)
    if "chartevents" not in cohort.events:
        raise MimicLayoutError(f"{folder} has no chartevents table: this task needs bedside vitals "
                               "(the MIMIC-IV demo 2.2 has none; use the MIMIC-III demo)")
    values, _dropped = signal_values(cohort)
    vitals = values[values[SIGNAL].isin(VITALS)].reset_index(drop=True)
    vitals = vitals.assign(**{VALUE: pd.to_numeric(vitals[VALUE]).astype(float)})
    return VitalsData(version, stays, vitals, dict(cohort.file_sha256))


def sample_times(stays: pd.DataFrame, first_h: float = FIRST_SAMPLE_H, step_h: float = STEP_H,
                 cap: int = MAX_SAMPLES_PER_STAY) -> pd.DataFrame:
    """Hourly prediction times in [intime + first_h, min(outtime, deathtime)); evenly thinned beyond ``cap``.

    Thinning keeps the first and last hours of a long stay, so its share of positives (the hours before a
    death) stays as it was, where keeping only the first ``cap`` hours would drop every late death.
    """
    rows: list[tuple[int, int, pd.Timestamp]] = []
    for stay in stays.itertuples(index=False):
        end = stay.outtime if pd.isna(stay.deathtime) else min(stay.outtime, stay.deathtime)
        start = stay.intime + pd.Timedelta(hours=first_h)
        times = pd.date_range(start, end, freq=pd.Timedelta(hours=step_h), inclusive="left") if start < end else []
        picked = _thin(len(times), cap)
        rows.extend((int(stay.stay_id), int(stay.subject_id), times[i]) for i in picked)
    return pd.DataFrame(rows, columns=[STAY, SUBJECT, TIME]).astype({TIME: "datetime64[ns]"})


def _thin(n: int, cap: int) -> np.ndarray:
    """Indices of ``cap`` evenly spaced items out of ``n`` (all of them when ``n <= cap``)."""
    if n <= cap:
        return np.arange(n)
    picked: np.ndarray = np.unique(np.round(np.linspace(0, n - 1, cap)).astype(int))
    return picked


def labels(samples: pd.DataFrame, stays: pd.DataFrame, horizon_h: float = HORIZON_H) -> np.ndarray:
    """1 where the stay's in-hospital death falls in ``(time, time + horizon_h]``, else 0."""
    death = samples[STAY].map(stays.set_index(STAY)["deathtime"])
    hours = (death - samples[TIME]) / pd.Timedelta(hours=1)
    return np.asarray((hours > 0) & (hours <= horizon_h), dtype=int)


def feature_names() -> list[str]:
    """Per vital its window statistics, then the NEWS2 partial total and how many parameters it scored."""
    return [*(f"{v}_{s}" for v in VITALS for s in WINDOW_STATS), *NEWS2_FEATURES]


def _sum(masked: np.ndarray) -> np.ndarray:
    """Row sums added left to right: a masked row adds an exact 0.0, so the sum of a sample's visible rows is
    bit-identical whatever rows it cannot see (numpy's pairwise ``sum`` would regroup them)."""
    total: np.ndarray = np.cumsum(masked, axis=1)[:, -1]
    return total


def _stats(mask: np.ndarray, event_ns: np.ndarray, values: np.ndarray, times_ns: np.ndarray) -> np.ndarray:
    """count/mean/min/max/last/slope (per hour) of the masked rows, one row per sample; NaN where none."""
    n = mask.sum(axis=1).astype(float)
    some = n > 0
    safe_n = np.where(some, n, 1.0)
    hours = (event_ns[None, :] - times_ns[:, None]) / _NS_PER_H
    mean = _sum(np.where(mask, values, 0.0)) / safe_n
    x_mean = _sum(np.where(mask, hours, 0.0)) / safe_n
    dx = np.where(mask, hours - x_mean[:, None], 0.0)
    sxx = _sum(dx * dx)
    sxy = _sum(dx * (values[None, :] - mean[:, None]))
    slope = np.where(sxx > 1e-12, sxy / np.where(sxx > 1e-12, sxx, 1.0), np.nan)
    last_index = mask.shape[1] - 1 - np.argmax(mask[:, ::-1], axis=1)
    out = np.column_stack([n, mean, np.where(mask, values, np.inf).min(axis=1),
                           np.where(mask, values, -np.inf).max(axis=1), values[last_index], slope])
    out[~some, 1:] = np.nan
    return out


def _stay_block(rows: pd.DataFrame, times_ns: np.ndarray, window_h: float) -> np.ndarray:
    """One stay's samples x (vitals x stats): each sample sees only rows known by it, charted in its window."""
    block = np.full((len(times_ns), len(VITALS) * len(WINDOW_STATS)), np.nan)
    block[:, ::len(WINDOW_STATS)] = 0.0
    for j, signal in enumerate(VITALS):
        part = rows[rows[SIGNAL] == signal]
        if part.empty:
            continue
        event = part[EVENT_TIME].to_numpy(dtype="datetime64[ns]").astype(np.int64)
        known = part[KNOWN_TIME].to_numpy(dtype="datetime64[ns]").astype(np.int64)
        start = times_ns - int(window_h * _NS_PER_H)
        mask = ((known[None, :] <= times_ns[:, None]) & (event[None, :] <= times_ns[:, None])
                & (event[None, :] > start[:, None]))
        stats = _stats(mask, event, part[VALUE].to_numpy(dtype=float), times_ns)
        block[:, j * len(WINDOW_STATS):(j + 1) * len(WINDOW_STATS)] = stats
    return block


def news2_of_last(last: dict[str, float]) -> tuple[float, int]:
    """NEWS2 (scale 1) partial total from the last values, and how many of its 5 vital parameters were known.

    Air/oxygen and consciousness are not gateway vitals, so the total is the lower bound the gateway's
    alarm engine also scores; NaN when none of the five is known.
    """
    known = {p: _finite(last.get(s, np.nan)) for p, s in NEWS2_FROM.items()}
    scored = sum(v is not None for v in known.values())
    if scored == 0:
        return float("nan"), 0
    total = news2(pulse=known["pulse"], spo2=known["spo2"], systolic=known["systolic"],
                  respiration_rate=known["respiration_rate"], temperature=known["temperature"]).total
    return float(total), scored


def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def window_features(vitals: pd.DataFrame, samples: pd.DataFrame, window_h: float = WINDOW_H
                    ) -> tuple[list[str], np.ndarray]:
    """One row per sample (in the order of ``samples``): window statistics of each vital, then NEWS2.

    Pure: reads only ``vitals`` (stay, signal, value, event_time, known_time) and the samples' stay and
    time, and each sample's rows are cut at its own time, so a row known later cannot reach it.
    """
    names = feature_names()
    out = np.full((len(samples), len(names)), np.nan)
    ordered = vitals.sort_values([STAY, SIGNAL, EVENT_TIME, KNOWN_TIME, VALUE], kind="mergesort")
    by_stay = dict(iter(ordered.groupby(STAY, sort=False)))
    positions = samples.reset_index(drop=True).groupby(STAY, sort=False).indices
    times = samples[TIME].to_numpy(dtype="datetime64[ns]").astype(np.int64)
    width = len(VITALS) * len(WINDOW_STATS)
    out[:, :width:len(WINDOW_STATS)] = 0.0
    for stay, idx in positions.items():
        if stay in by_stay:
            out[idx, :width] = _stay_block(by_stay[stay], times[idx], window_h)
    last = [names.index(f"{v}_last") for v in VITALS]
    for i in range(len(samples)):
        out[i, width:] = news2_of_last(dict(zip(VITALS, out[i, last], strict=True)))
    return names, out


def subject_split(subjects: np.ndarray, positive: np.ndarray, seed: int = SEED,
                  test_share: float = TEST_SHARE) -> np.ndarray:
    """True for samples of held-out subjects; subjects with and without a positive sample are split apart.

    Stratifying keeps both sides with positives when only a few dozen subjects die.
    """
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"s": subjects, "y": positive}).groupby("s")["y"].max()
    held: list[Any] = []
    for flag in (0, 1):
        group = np.sort(frame.index[frame == flag].to_numpy())
        rng.shuffle(group)
        held.extend(group[:round(test_share * len(group))])
    return np.isin(subjects, held)


def fit_model(x: np.ndarray, y: np.ndarray, seed: int = SEED) -> Any:
    """Median imputation, standardisation and L2 logistic regression: small and stable on ~70 subjects."""
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True), StandardScaler(),
                          LogisticRegression(C=LOGISTIC_C, max_iter=2000, random_state=seed))
    return model.fit(x, y)


def fit_trees(x: np.ndarray, y: np.ndarray, seed: int = SEED) -> Any:
    """A small gradient-boosted tree model (:data:`TREE_PARAMS`, untuned): missing values handled natively."""
    from xgboost import XGBClassifier

    return XGBClassifier(**TREE_PARAMS, random_state=seed).fit(x, y)


FITTERS: dict[str, Callable[[np.ndarray, np.ndarray, int], Any]] = {"logistic": fit_model, "xgboost": fit_trees}
BASELINE = "news2"


def cluster_bootstrap(y: np.ndarray, scores: dict[str, np.ndarray], groups: np.ndarray,
                      rounds: int = BOOTSTRAP_ROUNDS, seed: int = BOOTSTRAP_SEED) -> dict[str, dict[str, Any]]:
    """AUROC/AUPRC with 95% percentile CIs from resampling whole subjects (metrics.py resamples samples).

    Every score is evaluated on the same resamples, so each score minus :data:`BASELINE` has a paired CI.
    Resamples with a single class are skipped.
    """
    members = list(pd.Series(np.arange(len(y))).groupby(groups).indices.values())
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {f"{n}.{m}": [] for n in scores for m in ("auroc", "auprc")}
    for _ in range(rounds):
        idx = np.concatenate([members[k] for k in rng.integers(0, len(members), len(members))])
        if 0 < y[idx].sum() < len(idx):
            for name, score in scores.items():
                draws[f"{name}.auroc"].append(auroc(y[idx], score[idx]))
                draws[f"{name}.auprc"].append(auprc(y[idx], score[idx]))
    out = {name: {"auroc": auroc(y, score), "auroc_ci": _ci(draws[f"{name}.auroc"]),
                  "auprc": auprc(y, score), "auprc_ci": _ci(draws[f"{name}.auprc"])} for name, score in scores.items()}
    for name in scores:
        if name != BASELINE and BASELINE in scores:
            out[f"{name}_minus_{BASELINE}"] = {f"{m}_ci": _ci(np.subtract(draws[f"{name}.{m}"],
                                                                          draws[f"{BASELINE}.{m}"]).tolist())
                                               for m in ("auroc", "auprc")}
    return out


def _ci(values: Sequence[float]) -> list[float]:
    if not values:
        return [float("nan"), float("nan")]
    return [float(v) for v in np.quantile(values, [0.025, 0.975])]


def counts(samples: pd.DataFrame, y: np.ndarray) -> dict[str, int]:
    """Samples, positives, stays and subjects, and how many stays / subjects have a positive sample."""
    pos = samples[y == 1]
    return {"samples": len(samples), "positive_samples": int(y.sum()), "stays": int(samples[STAY].nunique()),
            "subjects": int(samples[SUBJECT].nunique()), "positive_stays": int(pos[STAY].nunique()),
            "positive_subjects": int(pos[SUBJECT].nunique())}


@dataclass(frozen=True)
class Dataset:
    """Every sample with its label and features, before any split."""

    data: VitalsData
    samples: pd.DataFrame
    y: np.ndarray
    names: list[str]
    x: np.ndarray
    horizon_h: float
    window_h: float


def prepare(folder: Path | str, horizon_h: float = HORIZON_H, window_h: float = WINDOW_H) -> Dataset:
    """Load the folder once; samples, labels and features do not depend on the split."""
    data = load_vitals(folder)
    samples = sample_times(data.stays)
    names, x = window_features(data.vitals, samples, window_h)
    return Dataset(data, samples, labels(samples, data.stays, horizon_h), names, x, horizon_h, window_h)


def held_out_scores(ds: Dataset, seed: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The test mask and, on its samples, each model's probability and NEWS2 (nothing measured scores 0)."""
    test = subject_split(ds.samples[SUBJECT].to_numpy(), ds.y, seed)
    if len(np.unique(ds.y[~test])) < 2 or len(np.unique(ds.y[test])) < 2:
        raise ValueError(f"a side of the split of seed {seed} has a single class at {ds.horizon_h:g} h")
    scores = {name: fit(ds.x[~test], ds.y[~test], seed).predict_proba(ds.x[test])[:, 1]
              for name, fit in FITTERS.items()}
    scores[BASELINE] = np.nan_to_num(ds.x[test, ds.names.index("news2")], nan=0.0)
    return test, scores


def evaluate(ds: Dataset, seed: int = SEED, rounds: int = BOOTSTRAP_ROUNDS) -> dict[str, Any]:
    """Held-out AUROC/AUPRC with cluster-bootstrap CIs for each model and NEWS2, with the counts."""
    test, scores = held_out_scores(ds, seed)
    metrics = cluster_bootstrap(ds.y[test], scores, ds.samples[SUBJECT].to_numpy()[test], rounds, seed)
    known = ds.x[test, ds.names.index("news2_parameters")]
    return {
        "task": f"in-hospital death within {ds.horizon_h:g} h of an hourly prediction time",
        "data": {"version": ds.data.version, "file_sha256": ds.data.file_sha256},
        "settings": {"horizon_h": ds.horizon_h, "window_h": ds.window_h, "seed": seed, "bootstrap_rounds": rounds,
                     "bootstrap": "cluster bootstrap: held-out subjects resampled with replacement",
                     "first_sample_h": FIRST_SAMPLE_H, "step_h": STEP_H,
                     "max_samples_per_stay": MAX_SAMPLES_PER_STAY, "test_share": TEST_SHARE,
                     "logistic": f"median imputation + standardisation + L2 logistic regression, C={LOGISTIC_C}",
                     "xgboost": TREE_PARAMS, "features": ds.names},
        "counts": {"stays_loaded": len(ds.data.stays), "all": counts(ds.samples, ds.y),
                   "train": counts(ds.samples[~test], ds.y[~test]), "test": counts(ds.samples[test], ds.y[test])},
        "test_news2_parameters": {"none": int((known == 0).sum()), "all_five": int((known == len(NEWS2_FROM)).sum())},
        "metrics": metrics,
    }


def run(folder: Path | str, horizon_h: float = HORIZON_H, window_h: float = WINDOW_H, seed: int = SEED,
        rounds: int = BOOTSTRAP_ROUNDS) -> dict[str, Any]:
    """The report of one subject split: counts, and held-out AUROC/AUPRC of the models and of NEWS2."""
    return evaluate(prepare(folder, horizon_h, window_h), seed, rounds)


def repeated_splits(ds: Dataset, seeds: Sequence[int]) -> dict[str, Any]:
    """Point AUROC/AUPRC over many subject splits: how much one split's numbers owe to which subjects it drew."""
    per: dict[str, list[float]] = {}
    for seed in seeds:
        test, scores = held_out_scores(ds, seed)
        for name, score in scores.items():
            per.setdefault(f"{name}.auroc", []).append(auroc(ds.y[test], score))
            per.setdefault(f"{name}.auprc", []).append(auprc(ds.y[test], score))
    wins = {n: int(np.sum(np.greater(per[f"{n}.auroc"], per[f"{BASELINE}.auroc"]))) for n in FITTERS}
    return {"seeds": list(seeds), "per_seed": per, "auroc_above_news2": wins,
            "mean": {k: float(np.mean(v)) for k, v in per.items()},
            "min": {k: float(np.min(v)) for k, v in per.items()}, "max": {k: float(np.max(v)) for k, v in per.items()}}


def format_report(report: dict[str, Any]) -> str:
    """A small table: held-out counts, then AUROC / AUPRC with 95% CIs for the models and for NEWS2."""
    c, s, m = report["counts"]["test"], report["settings"], report["metrics"]
    lines = [f"{report['task']} (MIMIC-{report['data']['version'].upper()} demo, window {s['window_h']:g} h, "
             f"seed {s['seed']})",
             f"held out: {c['samples']} samples ({c['positive_samples']} positive), {c['stays']} stays, "
             f"{c['subjects']} subjects ({c['positive_subjects']} with a positive sample)",
             f"{'score':<22}{'AUROC (95% CI)':>24}{'AUPRC (95% CI)':>24}"]
    for name in (*FITTERS, BASELINE):
        lines.append(f"{name:<22}{_fmt(m[name]['auroc'], m[name]['auroc_ci']):>24}"
                     f"{_fmt(m[name]['auprc'], m[name]['auprc_ci']):>24}")
    for name in FITTERS:
        d = m[f"{name}_minus_{BASELINE}"]
        lines.append(f"{name + ' - news2':<22}{_diff(d['auroc_ci']):>24}{_diff(d['auprc_ci']):>24}")
    return "\n".join(lines)


def format_repeats(rep: dict[str, Any]) -> str:
    """Mean (min-max) point AUROC/AUPRC over the seeds, and how often each model's AUROC beat NEWS2's."""
    lines = [f"over {len(rep['seeds'])} subject splits (seeds {rep['seeds'][0]}-{rep['seeds'][-1]}), "
             "point estimates, mean (min-max):"]
    for name in (*FITTERS, BASELINE):
        cells = [f"{rep['mean'][f'{name}.{m}']:.3f} ({rep['min'][f'{name}.{m}']:.3f}-{rep['max'][f'{name}.{m}']:.3f})"
                 for m in ("auroc", "auprc")]
        wins = f"  AUROC above NEWS2 in {rep['auroc_above_news2'][name]}" if name in FITTERS else ""
        lines.append(f"{name:<22}{cells[0]:>24}{cells[1]:>24}{wins}")
    return "\n".join(lines)


def _fmt(point: float, ci: Sequence[float]) -> str:
    return f"{point:.3f} ({ci[0]:.3f}-{ci[1]:.3f})"


def _diff(ci: Sequence[float]) -> str:
    return f"CI {ci[0]:+.3f} to {ci[1]:+.3f}"


def main(argv: list[str] | None = None) -> int:
    """Deterioration within hours on the MIMIC-III demo: print the held-out table, optionally write the JSON."""
    p = argparse.ArgumentParser(prog="python -m cardiogate.models.haim.deterioration", description=main.__doc__)
    p.add_argument("--data", type=Path, required=True, help="the MIMIC-III demo folder (or its csv/)")
    p.add_argument("--json", type=Path, help="write the full report here")
    p.add_argument("--horizon", type=float, default=HORIZON_H, help="label horizon, hours")
    p.add_argument("--window", type=float, default=WINDOW_H, help="trailing feature window, hours")
    p.add_argument("--seed", type=int, default=SEED)
    p.add_argument("--repeat", type=int, default=0, help="also report point estimates over seeds 1..N")
    ns = p.parse_args(argv)
    try:
        ds = prepare(ns.data, ns.horizon, ns.window)
    except MimicLayoutError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    report = evaluate(ds, ns.seed)
    print(format_report(report))
    if ns.repeat > 0:
        report["repeated_splits"] = repeated_splits(ds, range(1, ns.repeat + 1))
        print(format_repeats(report["repeated_splits"]))
    if ns.json is not None:
        ns.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
