"""``cardiogate eval rhythm``: score the shipped rhythm artifacts on CinC 2017-layout records.

Every artifact runs through the gateway's own path (``cardiogate.edge.inference.RhythmClassifier``:
manifest check, preprocessing, runtime), one record at a time, so the numbers are what a
gateway would produce. ``--split validation`` keeps only the records the models were not
trained on (listed in ``split.json`` beside the artifacts); records in the same layout
from elsewhere are scored whole with ``--split all``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import cardiogate.models.rhythm
from cardiogate.app.evaluation import RHYTHM_DESCRIPTION, add_rhythm_arguments
from cardiogate.edge.inference import InferenceError, ModelError, RhythmClassifier, load_manifest, manifest_path_for
from cardiogate.models.rhythm import CLASSES
from cardiogate.models.rhythm.data import iter_records, read_reference
from cardiogate.models.rhythm.metrics import confusion, f1_per_class, mean_f1_nao

DEFAULT_ARTIFACTS = Path(cardiogate.models.rhythm.__file__).resolve().parent.parent / "artifacts" / "rhythm"
FALLBACK_LABEL = "~"
"""What a record too short or too broken to classify counts as: the gateway would call it unreadable."""


def find_artifacts(folder: Path) -> list[Path]:
    """Rhythm artifacts (.onnx, .tflite) that have a manifest, in a stable order."""
    found = []
    for path in sorted(folder.glob("*")):
        manifest = manifest_path_for(path)
        if path.suffix in (".onnx", ".tflite") and manifest.is_file() and load_manifest(manifest).task == "rhythm":
            found.append(path)
    return found


def select_records(data: Path, artifacts: Path, split: str, log: Callable[[str], None]) -> set[str]:
    labels = {n: lab for n, lab in read_reference(data).items() if lab in CLASSES}
    if split == "all":
        return set(labels)
    split_file = artifacts / "split.json"
    if not split_file.is_file():
        raise FileNotFoundError(f"{split_file} is missing; use --split all")
    chosen = set(json.loads(split_file.read_text(encoding="utf-8"))["validation"]) & set(labels)
    if not chosen:
        log("no record of the validation split is in this data; scoring all records")
        return set(labels)
    return chosen


def run(data_dir: Path | str, json_path: Path | str | None = None, artifacts_dir: Path | str | None = None,
        split: str = "validation", log: Callable[[str], None] = print, limit: int | None = None) -> dict[str, Any]:
    """Score each artifact; print a table and optionally write the JSON summary.

    ``limit`` stops after that many selected records, in the data's order (the tarball is read
    only as far as needed), for a quick check; the summary says how many were scored.
    """
    data = Path(data_dir)
    folder = Path(artifacts_dir) if artifacts_dir else DEFAULT_ARTIFACTS
    paths = find_artifacts(folder)
    if not paths:
        raise FileNotFoundError(f"no rhythm artifacts with manifests in {folder}")
    names = select_records(data, folder, split, log)
    classifiers = {}
    for path in paths:
        try:
            clf = RhythmClassifier.load(path, threads=1)
            classifiers[clf.model.name] = clf
        except ModelError as exc:
            log(f"{path.name}: not scored ({exc})")
    truth: list[int] = []
    predicted: dict[str, list[int]] = {name: [] for name in classifiers}
    unreadable = dict.fromkeys(classifiers, 0)
    for record in iter_records(data, names):
        if limit is not None and len(truth) >= limit:
            break
        truth.append(CLASSES.index(record.label))
        for name, clf in classifiers.items():
            try:
                label = clf.classify(record.ecg, record.fs).label
            except InferenceError:
                label, unreadable[name] = FALLBACK_LABEL, unreadable[name] + 1
            predicted[name].append(CLASSES.index(label))
    log(f"{len(truth)} records ({split}) from {data}")
    log(f"{'artifact':<22} {'N':>6} {'A':>6} {'O':>6} {'~':>6} {'mean NAO':>9} {'p50 ms':>8}")
    if not truth:
        raise FileNotFoundError(f"no labelled record of the {split} split could be read from {data}")
    summary: dict[str, Any] = {"records": len(truth), "split": split, "limit": limit, "artifacts": {}}
    for name, clf in classifiers.items():
        matrix = confusion(truth, predicted[name])
        f1 = f1_per_class(matrix)
        p50 = clf.model.latency.p50_ms
        entry = {"f1": f1, "mean_f1_nao": mean_f1_nao(f1), "latency_ms_p50": p50,
                 "latency_ms_p99": clf.model.latency.p99_ms, "confusion": matrix.tolist(),
                 "unreadable": unreadable[name], "file": clf.model.artifact.name}
        summary["artifacts"][name] = entry
        log(f"{name:<22} {f1['N']:6.3f} {f1['A']:6.3f} {f1['O']:6.3f} {f1['~']:6.3f} "
            f"{entry['mean_f1_nao']:9.3f} {np.nan if p50 is None else p50:8.2f}")
    if json_path:
        Path(json_path).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary


def run_cli(ns: argparse.Namespace) -> int:
    """``cardiogate eval rhythm``: exit 2 when the data or the artifacts cannot be used."""
    try:
        run(ns.data, ns.json, ns.artifacts, ns.split, limit=ns.limit)
    except (FileNotFoundError, ModelError) as exc:
        print(f"cardiogate eval rhythm: {exc}", file=sys.stderr)
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cardiogate eval rhythm", description=RHYTHM_DESCRIPTION)
    add_rhythm_arguments(parser)
    return run_cli(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
