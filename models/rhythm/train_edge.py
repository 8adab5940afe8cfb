"""One command from CinC 2017 records to the shipped edge artifacts, manifests and model card.

    python -m cardiogate.models.rhythm.train_edge --data ../shared/data/cinc2017 --out models/artifacts/rhythm

Steps: read REFERENCE.csv and the records (folder or tarball), split by record, preprocess
with the manifest's spec, train with early stopping on validation mean F1, export ONNX fp32,
ONNX int8 (static, QDQ) and TFLite, score every artifact on the validation records with its
own runtime on one thread, then write a manifest per artifact, ``split.json`` and
``MODEL_CARD.md``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cardiogate.models.rhythm import CLASSES
from cardiogate.models.rhythm.card import write_model_card
from cardiogate.models.rhythm.data import load_records, read_reference, reference_sha256
from cardiogate.models.rhythm.evaluate import score_artifact
from cardiogate.models.rhythm.export import export_all
from cardiogate.models.rhythm.manifest import build_manifest, write_json
from cardiogate.models.rhythm.metrics import bootstrap_ci, score
from cardiogate.models.rhythm.net import NetConfig, parameter_count
from cardiogate.models.rhythm.preprocess import to_model_rate
from cardiogate.models.rhythm.spec import default_spec
from cardiogate.models.rhythm.split import split_records, training_data_hash
from cardiogate.models.rhythm.train import TrainConfig, random_window, train

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "artifacts" / "rhythm"
STEM = "rhythm-v1"
CALIBRATION_WINDOWS = 300
VALIDATION_FRACTION = 0.2


def pick_device(choice: str) -> torch.device:
    if choice == "cuda" or (choice == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise SystemExit("--device cuda: no CUDA device is available")
        return torch.device("cuda")
    return torch.device("cpu")


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="cardiogate models train-edge", description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, required=True, help="folder with REFERENCE.csv + training2017/, or the tarball")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"artifact folder (default {DEFAULT_OUT})")
    p.add_argument("--epochs", type=int, default=TrainConfig.epochs)
    p.add_argument("--patience", type=int, default=TrainConfig.patience)
    p.add_argument("--seed", type=int, default=TrainConfig.seed, help="training seed (weights, crops, order)")
    p.add_argument("--split-seed", type=int, default=2017, help="seed of the train/validation split")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--threads", type=int, default=1, help="CPU threads for torch and the runtimes")
    return p.parse_args(argv)


def artifact_metrics(truth: list[int], probs: np.ndarray, latencies: np.ndarray, seed: int) -> dict[str, Any]:
    predicted = probs.argmax(axis=1).tolist()
    result = score(truth, predicted)
    return {"records": len(truth), **result, "ci95": bootstrap_ci(truth, predicted, seed=seed),
            "latency_ms_p50": float(np.percentile(latencies, 50)),
            "latency_ms_p99": float(np.percentile(latencies, 99))}


def main(argv: list[str] | None = None) -> int:
    ns = parse(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(ns.threads))
    torch.set_num_threads(ns.threads)
    device = pick_device(ns.device)
    spec = default_spec()
    began = time.perf_counter()

    labels = {n: lab for n, lab in read_reference(ns.data).items() if lab in CLASSES}
    split = split_records(labels, seed=ns.split_seed, validation_fraction=VALIDATION_FRACTION)
    ref_hash = reference_sha256(ns.data)
    data_hash = training_data_hash(ref_hash, split)
    records = {r.name: r for r in load_records(ns.data, set(labels))}
    missing = set(labels) - set(records)
    if missing:
        print(f"warning: {len(missing)} labelled records have no .mat file", flush=True)
    signals = {name: to_model_rate(r.ecg, r.fs, spec) for name, r in records.items()}
    train_names = [n for n in split["train"] if n in signals]
    val_names = [n for n in split["validation"] if n in signals]
    print(f"{len(train_names)} training / {len(val_names)} validation records, preprocessed in "
          f"{time.perf_counter() - began:.0f}s; device {device}, {ns.threads} thread(s)", flush=True)

    train_y = [CLASSES.index(labels[n]) for n in train_names]
    val_y = [CLASSES.index(labels[n]) for n in val_names]
    config = TrainConfig(epochs=ns.epochs, patience=ns.patience, seed=ns.seed)
    net_config = NetConfig()
    result = train([signals[n] for n in train_names], train_y, [signals[n] for n in val_names], val_y, spec, device,
                   net_config, config, log=lambda line: print(line, flush=True))
    print(f"best epoch {result.best_epoch}: validation mean F1 {result.best_mean_f1:.4f} "
          f"({result.seconds / 60:.1f} min)", flush=True)

    rng = np.random.default_rng(ns.seed)
    picks = rng.choice(len(train_names), size=min(CALIBRATION_WINDOWS, len(train_names)), replace=False)
    calibration = np.stack([random_window(signals[train_names[i]], spec, rng) for i in picks])[:, None, :]
    paths = export_all(result.net, int(spec["window_samples"]), ns.out, STEM, calibration)

    split_info = {"seed": ns.split_seed, "validation_fraction": VALIDATION_FRACTION, "stratified": True,
                  "by": "record", "train_records": len(train_names), "validation_records": len(val_names)}
    write_json(ns.out / "split.json", {**split_info, "reference_sha256": ref_hash, **split})
    manifests: dict[str, dict[str, Any]] = {}
    val_signals = [signals[n] for n in val_names]
    for precision, path in paths.items():
        probs, latencies = score_artifact(path, val_signals, spec)
        metrics = {"validation": artifact_metrics(val_y, probs, latencies, ns.seed)}
        name = f"{STEM}.{precision}"
        manifest = build_manifest(path, name, "fp32" if precision == "tflite" else precision, spec, data_hash,
                                  ref_hash, split_info, metrics)
        write_json(path.with_name(path.name + ".json"), manifest)
        manifests[name] = manifest
        m = metrics["validation"]
        f1 = m["f1"]
        print(f"{path.name}: {manifest['size_bytes'] / 1024:.0f} KB, mean F1 {m['mean_f1_nao']:.4f} "
              f"(N {f1['N']:.3f} A {f1['A']:.3f} O {f1['O']:.3f} ~ {f1['~']:.3f}), "
              f"p50 {m['latency_ms_p50']:.2f} ms", flush=True)
    facts = {"spec": spec, "records": len(records), "label_counts": dict(sorted(Counter(labels.values()).items())),
             "reference_sha256": ref_hash, "split_seed": ns.split_seed, "train_records": len(train_names),
             "validation_records": len(val_names), "training_data_hash": data_hash,
             "parameters": parameter_count(result.net), "best_epoch": result.best_epoch,
             "epochs_run": len(result.history), "last_scores": [h["mean_f1_nao"] for h in result.history[-10:]],
             "train_seconds": result.seconds, "device": str(device),
             "threads": ns.threads}
    write_model_card(ns.out / "MODEL_CARD.md", manifests, facts)
    fp32 = manifests[f"{STEM}.fp32"]["metrics"]["validation"]
    int8 = manifests[f"{STEM}.int8"]["metrics"]["validation"]
    print(f"int8 vs fp32: mean F1 {int8['mean_f1_nao'] - fp32['mean_f1_nao']:+.4f}, latency p50 ratio "
          f"{fp32['latency_ms_p50'] / int8['latency_ms_p50']:.2f}x; total {(time.perf_counter() - began) / 60:.1f} min",
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
