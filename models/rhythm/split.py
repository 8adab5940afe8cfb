"""A deterministic, stratified train/validation split by record.

Each class's record names are sorted, shuffled with a seeded generator and the first
``round(fraction * n)`` go to validation, so the split depends only on REFERENCE.csv,
the seed and the fraction, never on file order or the machine. A record is in exactly
one side; CinC 2017 has one record per recording, so no recording leaks across.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np


def split_records(labels: dict[str, str], seed: int = 2017, validation_fraction: float = 0.2) -> dict[str, list[str]]:
    """{"train": [...], "validation": [...]}, each sorted by name."""
    train: list[str] = []
    validation: list[str] = []
    rng = np.random.default_rng(seed)
    for label in sorted(set(labels.values())):
        names = sorted(n for n, lab in labels.items() if lab == label)
        order = rng.permutation(len(names))
        n_val = round(validation_fraction * len(names))
        validation.extend(names[i] for i in order[:n_val])
        train.extend(names[i] for i in order[n_val:])
    return {"train": sorted(train), "validation": sorted(validation)}


def training_data_hash(reference_sha256: str, split: dict[str, list[str]]) -> str:
    """sha256 over REFERENCE.csv's hash and the split, identifying what a model was trained on."""
    blob = json.dumps({"reference_sha256": reference_sha256, "split": split}, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()


def split_with_tune(labels: dict[str, str], seed: int = 2017, validation_fraction: float = 0.2, tune_seed: int = 2018,
                    tune_fraction: float = 0.1) -> dict[str, list[str]]:
    """{"fit", "tune", "validation"}: ``split_records``' validation side, and its training side split again.

    Epochs are chosen on "tune", so "validation" is only ever reported.
    """
    outer = split_records(labels, seed=seed, validation_fraction=validation_fraction)
    inner = split_records({n: labels[n] for n in outer["train"]}, seed=tune_seed, validation_fraction=tune_fraction)
    return {"fit": inner["train"], "tune": inner["validation"], "validation": outer["validation"]}
