"""AUROC, AUPRC (average precision) and percentile-bootstrap 95% CIs with a fixed seed."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy.stats import rankdata  # type: ignore[import-untyped]

BOOTSTRAP_SEED = 20240613
BOOTSTRAP_ROUNDS = 1000


def auroc(y: Sequence[float] | np.ndarray, p: Sequence[float] | np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney, ties count half); NaN with a single class."""
    yt, score = np.asarray(y, dtype=bool), np.asarray(p, dtype=float)
    npos, nneg = int(yt.sum()), int((~yt).sum())
    if npos == 0 or nneg == 0:
        return float("nan")
    ranks = rankdata(score)
    return float((ranks[yt].sum() - npos * (npos + 1) / 2) / (npos * nneg))


def auprc(y: Sequence[float] | np.ndarray, p: Sequence[float] | np.ndarray) -> float:
    """Average precision (step-wise area under precision-recall, as scikit-learn computes it)."""
    yt, score = np.asarray(y, dtype=bool), np.asarray(p, dtype=float)
    npos = int(yt.sum())
    if npos == 0:
        return float("nan")
    order = np.argsort(-score, kind="mergesort")
    ys, ss = yt[order], score[order]
    last = np.r_[np.flatnonzero(np.diff(ss)), len(ss) - 1]  # the end of each group of tied scores
    tp = np.cumsum(ys)[last]
    precision = tp / (last + 1)
    recall = tp / npos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def bootstrap_ci(y: Sequence[float] | np.ndarray, p: Sequence[float] | np.ndarray,
                 metric: Callable[[np.ndarray, np.ndarray], float], rounds: int = BOOTSTRAP_ROUNDS,
                 seed: int = BOOTSTRAP_SEED, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap over stays; resamples with a single class are skipped."""
    yt, score = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(rounds):
        idx = rng.integers(0, len(yt), len(yt))
        if 0 < yt[idx].sum() < len(idx):
            values.append(metric(yt[idx], score[idx]))
    if not values:
        return float("nan"), float("nan")
    lo, hi = np.quantile(values, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)


def summary(y: Sequence[float] | np.ndarray, p: Sequence[float] | np.ndarray, seed: int = BOOTSTRAP_SEED,
            rounds: int = BOOTSTRAP_ROUNDS) -> dict[str, object]:
    """AUROC and AUPRC with 95% CIs, the count and the positives."""
    yt, score = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    return {"auroc": auroc(yt, score), "auroc_ci": list(bootstrap_ci(yt, score, auroc, rounds, seed)),
            "auprc": auprc(yt, score), "auprc_ci": list(bootstrap_ci(yt, score, auprc, rounds, seed)),
            "n": len(yt), "positives": int(yt.sum())}
