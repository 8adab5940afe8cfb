"""HAIM fusion, the teacher: XGBoost on the concatenated modality embeddings.

Hyperparameters are fixed here, chosen before looking at any held-out stay (no search):
shallow trees keep the model small (< 2 MB as JSON) and limit overfitting on ~800 training
stays. CPU only (``xgboost-cpu``), ``nthread`` 2, a fixed seed: identical results run to run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import xgboost as xgb

TEACHER_PARAMS: dict[str, Any] = {
    "objective": "binary:logistic", "eval_metric": "auc", "max_depth": 3, "eta": 0.03, "subsample": 0.8,
    "colsample_bytree": 0.4, "min_child_weight": 2.0, "lambda": 2.0, "tree_method": "hist", "nthread": 2,
}
TEACHER_ROUNDS = 400


def fit(x: np.ndarray, y: np.ndarray, seed: int, feature_names: list[str] | None = None,
        params: dict[str, Any] | None = None, rounds: int = TEACHER_ROUNDS) -> xgb.Booster:
    """Fit on (soft or hard) labels in [0, 1]."""
    chosen = {**TEACHER_PARAMS, **(params or {}), "seed": seed}
    dtrain = xgb.DMatrix(x, label=y, missing=np.nan, feature_names=_safe(feature_names))
    return xgb.train(chosen, dtrain, num_boost_round=rounds)


def predict(model: xgb.Booster, x: np.ndarray, feature_names: list[str] | None = None) -> np.ndarray:
    return np.asarray(model.predict(xgb.DMatrix(x, missing=np.nan, feature_names=_safe(feature_names))),
                      dtype=float)


def save(model: xgb.Booster, path: Path) -> None:
    model.save_model(str(path))


def load(path: Path) -> xgb.Booster:
    booster = xgb.Booster(params={"nthread": 2})
    booster.load_model(str(path))
    return booster


def _safe(names: list[str] | None) -> list[str] | None:
    """XGBoost rejects '[', ']' and '<' in feature names."""
    if names is None:
        return None
    return [n.replace("[", "(").replace("]", ")").replace("<", "lt") for n in names]
