"""The gateway risk student: vitals a gateway sees, distilled from the teacher's soft labels.

Inputs: heart rate, respiratory rate, temperature and mean arterial pressure as their most
abnormal value of the first 24 h (APACHE's "worst" values, which a gateway that watched the
patient for 24 h computes from its own streams), the NIBP series statistics (a gateway with a
cuff), charted respiratory rate and SaO2/SpO2 where present. Not age: a cardiogate gateway's
patient assignment carries a patient id and bed, no demographics, so the student does not use
what the gateway would not have.

Model: logistic regression (median imputation, standardisation, L2), fitted to the teacher's
out-of-fold probabilities on the training split (soft labels; cross-entropy against a
probability). It saves as a small JSON of coefficients and runs with numpy alone (no torch,
no xgboost, no scikit-learn).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import minimize  # type: ignore[import-untyped]

from cardiogate.models.haim.eicu import EicuCohort
from cardiogate.models.haim.embeddings import resp_series, vital_series

WORST = {"heartrate": 80.0, "respiratoryrate": 16.0, "temperature": 37.0, "meanbp": 85.0}
"""APACHE 'worst' vitals and a normal value: the student also sees the distance from it."""
NIBP_STATS = ("mean", "min", "max", "std", "last")
RESP = ("rr", "spo2")
RESP_STATS = ("mean", "min", "max")
L2 = 1.0


def gateway_features(cohort: EicuCohort, ids: list[int]) -> tuple[list[str], np.ndarray]:
    """What a gateway could compute for these stays at the prediction time."""
    aps = cohort.static["apacheApsVar"].reindex(ids)
    names: list[str] = []
    cols: list[np.ndarray] = []
    for c, normal in WORST.items():
        v = np.asarray(np.array(aps[c].tolist(), dtype=float))
        v = np.where(v <= 0, np.nan, v)
        names += [f"worst_{c}", f"worst_{c}_dev"]
        cols += [v[:, None], np.abs(v - normal)[:, None]]
    vn, vm = vital_series(cohort, ids)
    rn, rm = resp_series(cohort, ids, only=RESP)
    for prefixes, stats, (n, m) in ((("nibp_sys", "nibp_dia", "nibp_mean"), NIBP_STATS, (vn, vm)),
                                    (RESP, RESP_STATS, (rn, rm))):
        index = {name: i for i, name in enumerate(n)}
        for p in prefixes:
            for st in stats:
                names.append(f"{p}_{st}")
                cols.append(m[:, index[f"{p}_{st}"]][:, None])
    return names, np.hstack(cols)


def _design(x: np.ndarray, spec: dict[str, Any]) -> np.ndarray:
    med, mean, scale = (np.asarray(spec[k], dtype=float) for k in ("median", "mean", "scale"))
    filled = np.where(np.isnan(x), med, x)
    return np.asarray(np.clip((filled - mean) / scale, -5.0, 5.0), dtype=float)


def fit(names: list[str], x: np.ndarray, soft: np.ndarray, l2: float = L2) -> dict[str, Any]:
    """Logistic regression on soft labels in [0, 1]; returns the JSON-able model."""
    med = np.nanmedian(np.where(np.isnan(x).all(axis=0), 0.0, x), axis=0)
    med = np.where(np.isnan(med), 0.0, med)
    filled = np.where(np.isnan(x), med, x)
    mean, scale = filled.mean(axis=0), filled.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    spec: dict[str, Any] = {"features": names, "median": med.tolist(), "mean": mean.tolist(),
                            "scale": scale.tolist()}
    z = _design(x, spec)
    t = np.clip(soft, 1e-6, 1 - 1e-6)
    n = len(t)

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        logit = z @ w[1:] + w[0]
        p = 1.0 / (1.0 + np.exp(-logit))
        ce = np.sum(np.logaddexp(0.0, logit) - t * logit) / n + 0.5 * l2 * np.sum(w[1:] ** 2) / n
        grad = np.r_[np.sum(p - t), z.T @ (p - t) + l2 * w[1:]] / n
        return float(ce), grad

    start = np.zeros(z.shape[1] + 1)
    start[0] = np.log(t.mean() / (1 - t.mean()))
    result = minimize(loss, start, jac=True, method="L-BFGS-B", options={"maxiter": 2000, "gtol": 1e-9})
    spec.update({"intercept": float(result.x[0]), "coef": result.x[1:].tolist(), "model": "logistic_regression",
                 "l2": l2, "trained_on": "teacher out-of-fold probabilities (soft labels)"})
    return spec


def predict(spec: dict[str, Any], x: np.ndarray) -> np.ndarray:
    logit = _design(x, spec) @ np.asarray(spec["coef"], dtype=float) + float(spec["intercept"])
    return np.asarray(1.0 / (1.0 + np.exp(-logit)), dtype=float)


def save(spec: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(spec, indent=1) + "\n", encoding="utf-8")


def load(path: Path) -> dict[str, Any]:
    spec: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return spec
