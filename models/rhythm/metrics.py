"""CinC 2017 scoring: per-class F1, the challenge mean over N, A and O, bootstrap intervals."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from cardiogate.models.rhythm import CLASSES

CHALLENGE_CLASSES = ("N", "A", "O")


def confusion(truth: ArrayLike, predicted: ArrayLike, n: int = len(CLASSES)) -> NDArray[np.int64]:
    """Rows are the reference label, columns the prediction."""
    matrix = np.zeros((n, n), dtype=np.int64)
    np.add.at(matrix, (np.asarray(truth, dtype=np.int64), np.asarray(predicted, dtype=np.int64)), 1)
    return matrix


def f1_per_class(matrix: NDArray[np.int64]) -> dict[str, float]:
    """F1 = 2 TP / (row total + column total), as the challenge defines it."""
    out = {}
    for i, name in enumerate(CLASSES):
        denom = matrix[i, :].sum() + matrix[:, i].sum()
        out[name] = float(2 * matrix[i, i] / denom) if denom else 0.0
    return out


def mean_f1_nao(f1: dict[str, float]) -> float:
    return float(np.mean([f1[c] for c in CHALLENGE_CLASSES]))


def score(truth: Sequence[int], predicted: Sequence[int]) -> dict[str, object]:
    matrix = confusion(truth, predicted)
    f1 = f1_per_class(matrix)
    return {"f1": f1, "mean_f1_nao": mean_f1_nao(f1), "confusion": matrix.tolist()}


def bootstrap_ci(truth: Sequence[int], predicted: Sequence[int], rounds: int = 1000,
                 seed: int = 0) -> dict[str, tuple[float, float]]:
    """95% percentile intervals of each class F1 and the mean F1, resampling records with replacement."""
    t, p = np.asarray(truth), np.asarray(predicted)
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {name: [] for name in (*CLASSES, "mean_f1_nao")}
    for _ in range(rounds):
        idx = rng.integers(0, t.size, t.size)
        f1 = f1_per_class(confusion(t[idx], p[idx]))
        for name in CLASSES:
            draws[name].append(f1[name])
        draws["mean_f1_nao"].append(mean_f1_nao(f1))
    return {k: (float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))) for k, v in draws.items()}
