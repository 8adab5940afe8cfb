"""Rhythm teacher -> int8 student: a large CNN trained on CinC 2017, distilled into a gateway-sized one.

    cardiogate models distill-rhythm train --data ../shared/data/cinc2017 --work DIR [--device auto]
    cardiogate models distill-rhythm export --data ../shared/data/cinc2017 --work DIR [--out models/artifacts/rhythm]

``train`` fits the teacher (about 1 M parameters), then the student (about 200 k, <= 300 KB
as int8) on the teacher's soft labels, and writes both weight files and ``distill-report.json``
(every epoch of both, throughput, device, seeds, splits). It runs on a CUDA GPU with bf16
autocast when one is present, on the CPU otherwise; ``--data`` may also be a cache made by
``python -m cardiogate.models.rhythm.cache``, so the job can run where the raw data is not.
``export`` writes the student as ONNX fp32, ONNX int8 (static QDQ) and TFLite, scores each
with its own runtime on one thread, and writes manifests and ``MODEL_CARD-v2.md``.

Splits: the validation split is v1's (seed 2017, 20 %, stratified by record), and it is only
ever *reported*. Epochs are selected on a tune split carved from the training records
(10 %, seed 2018), for the teacher and the student alike.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from cardiogate.models.rhythm import CLASSES
from cardiogate.models.rhythm.cache import SignalSet
from cardiogate.models.rhythm.cache import build as build_signals
from cardiogate.models.rhythm.cache import load as load_cache
from cardiogate.models.rhythm.manifest import build_manifest, write_json
from cardiogate.models.rhythm.metrics import bootstrap_ci, score
from cardiogate.models.rhythm.net import NetConfig, RhythmNet, parameter_count
from cardiogate.models.rhythm.split import split_with_tune, training_data_hash
from cardiogate.models.rhythm.train import TrainConfig, TrainResult, predict_records, random_window, train
from cardiogate.models.rhythm.train_edge import pick_device

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "artifacts" / "rhythm"
STEM = "rhythm-v2"
VERSION = "2.0.0"
VALIDATION_FRACTION = 0.2
TUNE_FRACTION = 0.1
SPLIT_SEED = 2017
TUNE_SEED = 2018
CALIBRATION_WINDOWS = 300
MAX_STUDENT_INT8_BYTES = 300 * 1024

TEACHER_NET = NetConfig(stem_channels=32, stem_kernel=15, widths=(32, 48, 64, 96, 128, 160, 192),
                        kernels=(9, 9, 7, 7, 5, 5, 5), dilations=(1, 2, 2, 2, 2, 1, 1), dropout=0.4)
STUDENT_NET = NetConfig(stem_channels=16, stem_kernel=15, widths=(24, 32, 48, 64, 80, 96),
                        kernels=(7, 7, 5, 5, 5, 3), dilations=(1, 2, 2, 2, 2, 1), dropout=0.3)


@dataclass(frozen=True)
class Splits:
    fit: list[str]
    tune: list[str]
    validation: list[str]

    def as_dict(self) -> dict[str, list[str]]:
        return {"fit": self.fit, "tune": self.tune, "validation": self.validation}


def make_splits(labels: dict[str, str]) -> Splits:
    """v1's validation split, and a tune split out of its training side (both stratified by class)."""
    parts = split_with_tune(labels, SPLIT_SEED, VALIDATION_FRACTION, TUNE_SEED, TUNE_FRACTION)
    return Splits(parts["fit"], parts["tune"], parts["validation"])


def read_signals(data: Path) -> SignalSet:
    if data.suffix == ".npz":
        return load_cache(data)
    return build_signals(data)


def _scores(net: torch.nn.Module, names: list[str], ds: SignalSet, device: torch.device) -> dict[str, Any]:
    truth = [CLASSES.index(ds.labels[n]) for n in names]
    probs = predict_records(net.to(device), [ds.signals[n] for n in names], ds.spec, device)
    predicted = probs.argmax(axis=1).tolist()
    return {"records": len(names), **score(truth, predicted), "ci95": bootstrap_ci(truth, predicted, seed=0)}


def _summary(result: TrainResult) -> dict[str, Any]:
    return {"best_epoch": result.best_epoch, "best_tune_mean_f1": result.best_mean_f1,
            "epochs_run": len(result.history), "seconds": result.seconds,
            "train_samples_per_second": result.samples_per_second, "history": result.history}


def run_training(ns: argparse.Namespace) -> int:
    torch.set_num_threads(ns.threads)
    device = pick_device(ns.device)
    began = time.perf_counter()
    ds = read_signals(ns.data)
    ds = SignalSet({n: x for n, x in ds.signals.items() if ds.labels[n] in CLASSES},
                   {n: lab for n, lab in ds.labels.items() if lab in CLASSES}, ds.reference_sha256, ds.spec)
    splits = make_splits(ds.labels)
    device_name = torch.cuda.get_device_name(0) if device.type == "cuda" else platform.processor() or "cpu"
    print(f"{len(splits.fit)} fit / {len(splits.tune)} tune / {len(splits.validation)} validation records "
          f"({time.perf_counter() - began:.0f}s to load); device {device} ({device_name}), {ns.threads} thread(s)",
          flush=True)
    fit_x = [ds.signals[n] for n in splits.fit]
    fit_y = [CLASSES.index(ds.labels[n]) for n in splits.fit]
    tune_x = [ds.signals[n] for n in splits.tune]
    tune_y = [CLASSES.index(ds.labels[n]) for n in splits.tune]
    amp = device.type == "cuda" and not ns.no_amp
    ns.work.mkdir(parents=True, exist_ok=True)

    def log(line: str) -> None:
        print(line, flush=True)

    teacher_cfg = TrainConfig(epochs=ns.teacher_epochs, patience=ns.patience, batch_size=ns.batch_size, lr=ns.lr,
                              weight_decay=ns.weight_decay, seed=ns.seed, flip_prob=ns.flip_prob, mixed_precision=amp,
                              time_budget_s=ns.teacher_budget_s)
    print(f"teacher: {parameter_count(RhythmNet(TEACHER_NET))} parameters, {asdict(teacher_cfg)}", flush=True)
    teacher = train(fit_x, fit_y, tune_x, tune_y, ds.spec, device, TEACHER_NET, teacher_cfg, log=log)
    torch.save(teacher.net.state_dict(), ns.work / "teacher.pt")
    student_cfg = TrainConfig(epochs=ns.student_epochs, patience=ns.patience, batch_size=ns.batch_size, lr=ns.lr,
                              weight_decay=ns.weight_decay, seed=ns.seed + 1, flip_prob=ns.flip_prob,
                              mixed_precision=amp, time_budget_s=ns.student_budget_s)
    print(f"student: {parameter_count(RhythmNet(STUDENT_NET))} parameters, distilled from the teacher, "
          f"{asdict(student_cfg)}", flush=True)
    student = train(fit_x, fit_y, tune_x, tune_y, ds.spec, device, STUDENT_NET, student_cfg, log=log,
                    teacher=teacher.net)
    torch.save(student.net.state_dict(), ns.work / "student.pt")

    report: dict[str, Any] = {
        "device": str(device), "device_name": device_name, "mixed_precision": amp, "threads": ns.threads,
        "torch": torch.__version__, "spec": ds.spec, "reference_sha256": ds.reference_sha256,
        "label_counts": dict(sorted(Counter(ds.labels.values()).items())),
        "splits": {"validation_seed": SPLIT_SEED, "validation_fraction": VALIDATION_FRACTION,
                   "tune_seed": TUNE_SEED, "tune_fraction": TUNE_FRACTION,
                   **{k: len(v) for k, v in splits.as_dict().items()}},
        "training_data_hash": training_data_hash(ds.reference_sha256, splits.as_dict()),
        "teacher": {"net": asdict(TEACHER_NET), "parameters": parameter_count(teacher.net),
                    "config": asdict(teacher_cfg), **_summary(teacher)},
        "student": {"net": asdict(STUDENT_NET), "parameters": parameter_count(student.net),
                    "config": asdict(student_cfg), **_summary(student)},
    }
    for role, result in (("teacher", teacher), ("student", student)):
        report[role]["validation"] = _scores(result.net, splits.validation, ds, device)
        v = report[role]["validation"]
        print(f"{role}: validation mean F1 {v['mean_f1_nao']:.4f} (N {v['f1']['N']:.3f} A {v['f1']['A']:.3f} "
              f"O {v['f1']['O']:.3f} ~ {v['f1']['~']:.3f}); {result.samples_per_second:.0f} training crops/s",
              flush=True)
    write_json(ns.work / "distill-report.json", report)
    print(f"done in {(time.perf_counter() - began) / 60:.1f} min -> {ns.work}", flush=True)
    return 0


def _artifact_metrics(truth: list[int], probs: NDArray[np.float32], latencies: NDArray[np.float64]) -> dict[str, Any]:
    predicted = probs.argmax(axis=1).tolist()
    return {"records": len(truth), **score(truth, predicted), "ci95": bootstrap_ci(truth, predicted, seed=0),
            "latency_ms_p50": float(np.percentile(latencies, 50)),
            "latency_ms_p99": float(np.percentile(latencies, 99))}


def run_export(ns: argparse.Namespace) -> int:
    from cardiogate.models.rhythm.evaluate import score_artifact
    from cardiogate.models.rhythm.export import export_all

    torch.set_num_threads(1)
    report = json.loads((ns.work / "distill-report.json").read_text(encoding="utf-8"))
    student = RhythmNet(NetConfig(**{k: tuple(v) if isinstance(v, list) else v
                                     for k, v in report["student"]["net"].items()}))
    student.load_state_dict(torch.load(ns.work / "student.pt", map_location="cpu", weights_only=True))
    student.eval()
    ds = read_signals(ns.data)
    if ds.reference_sha256 != report["reference_sha256"]:
        raise SystemExit("export: --data is not the data the student was trained on (REFERENCE.csv differs)")
    labels = {n: lab for n, lab in ds.labels.items() if lab in CLASSES}
    splits = make_splits(labels)
    rng = np.random.default_rng(report["student"]["config"]["seed"])
    picks = rng.choice(len(splits.fit), size=min(CALIBRATION_WINDOWS, len(splits.fit)), replace=False)
    calibration = np.stack([random_window(ds.signals[splits.fit[i]], ds.spec, rng) for i in picks])[:, None, :]
    paths = export_all(student, int(ds.spec["window_samples"]), ns.out, STEM, calibration)
    if paths["int8"].stat().st_size > MAX_STUDENT_INT8_BYTES:
        print(f"warning: the int8 student is {paths['int8'].stat().st_size / 1024:.0f} KB, over the 300 KB budget",
              flush=True)
    split_info = {"seed": SPLIT_SEED, "validation_fraction": VALIDATION_FRACTION, "stratified": True, "by": "record",
                  "tune_seed": TUNE_SEED, "tune_fraction": TUNE_FRACTION, "epoch_selection": "tune",
                  "train_records": len(splits.fit) + len(splits.tune), "validation_records": len(splits.validation)}
    truth = [CLASSES.index(labels[n]) for n in splits.validation]
    val_signals = [ds.signals[n] for n in splits.validation]
    manifests: dict[str, dict[str, Any]] = {}
    for precision, path in paths.items():
        probs, latencies = score_artifact(path, val_signals, ds.spec)
        metrics = {"validation": _artifact_metrics(truth, probs, latencies),
                   "teacher_validation": {k: report["teacher"]["validation"][k] for k in ("mean_f1_nao", "f1")}}
        name = f"{STEM}.{precision}"
        manifest = build_manifest(path, name, "fp32" if precision == "tflite" else precision, ds.spec,
                                  report["training_data_hash"], ds.reference_sha256, split_info, metrics)
        manifest["version"] = VERSION
        manifest["distilled_from"] = {"parameters": report["teacher"]["parameters"],
                                      "net": report["teacher"]["net"]}
        write_json(path.with_name(path.name + ".json"), manifest)
        manifests[name] = manifest
        m = metrics["validation"]
        print(f"{path.name}: {manifest['size_bytes'] / 1024:.0f} KB, mean F1 {m['mean_f1_nao']:.4f} "
              f"(N {m['f1']['N']:.3f} A {m['f1']['A']:.3f} O {m['f1']['O']:.3f} ~ {m['f1']['~']:.3f}), "
              f"p50 {m['latency_ms_p50']:.2f} ms", flush=True)
    (ns.out / "MODEL_CARD-v2.md").write_text(model_card(manifests, report), encoding="utf-8")
    fp32 = manifests[f"{STEM}.fp32"]["metrics"]["validation"]
    int8 = manifests[f"{STEM}.int8"]["metrics"]["validation"]
    print(f"int8 vs fp32: mean F1 {int8['mean_f1_nao'] - fp32['mean_f1_nao']:+.4f}, latency p50 ratio "
          f"{fp32['latency_ms_p50'] / int8['latency_ms_p50']:.2f}x", flush=True)
    return 0


def _row(name: str, size: str, m: dict[str, Any], latency: str) -> str:
    f1 = m["f1"]
    low, high = m["ci95"]["mean_f1_nao"]
    return (f"| {name} | {size} | {m['mean_f1_nao']:.3f} | {low:.3f}-{high:.3f} | {f1['N']:.3f} | {f1['A']:.3f} "
            f"({m['ci95']['A'][0]:.3f}-{m['ci95']['A'][1]:.3f}) | {f1['O']:.3f} | {f1['~']:.3f} | {latency} |")


def model_card(manifests: dict[str, dict[str, Any]], report: dict[str, Any]) -> str:
    """MODEL_CARD-v2.md: the student's artifacts beside the teacher, all on the reported validation split."""
    t, s = report["teacher"], report["student"]
    lines = [
        "# Rhythm classifier v2 (distilled student, cardiogate edge)", "",
        "## Intended use", "", manifests[next(iter(manifests))]["intended_use"],
        "It never suppresses or replaces a physiological alarm.", "",
        "## Data and splits", "",
        f"CinC 2017 as provided here ({sum(report['label_counts'].values())} records: "
        + ", ".join(f"{k} {v}" for k, v in report["label_counts"].items()) + "). "
        f"Validation: v1's split (seed {report['splits']['validation_seed']}, 20 %, stratified, by record; "
        f"{report['splits']['validation']} records), reported only. Epochs of both networks were selected on a "
        f"tune split of {report['splits']['tune']} training records (seed {report['splits']['tune_seed']}); "
        f"{report['splits']['fit']} records were fitted. Training-data hash `{report['training_data_hash']}`.", "",
        "## Networks and training", "",
        f"- Teacher: 1D residual CNN, {t['parameters']:,} parameters, {len(t['net']['widths'])} residual stages; "
        f"best tune epoch {t['best_epoch']} of {t['epochs_run']}.",
        f"- Student: same family, {s['parameters']:,} parameters; trained on 0.3 x class-weighted cross-entropy + "
        f"0.7 x T^2 KL to the teacher's output at T = {s['config']['kd_temperature']} on the same augmented crop; "
        f"best tune epoch {s['best_epoch']} of {s['epochs_run']}.",
        "- Both: random 30 s crops, gain, noise and polarity inversion; AdamW, one-cycle schedule; fixed seeds.",
        f"- Run on {report['device_name']} ({report['device']}"
        + (", bf16 autocast" if report["mixed_precision"] else "")
        + f"), torch {report['torch']}: teacher {t['seconds'] / 60:.1f} min at "
        f"{t['train_samples_per_second']:.0f} crops/s, student {s['seconds'] / 60:.1f} min at "
        f"{s['train_samples_per_second']:.0f} crops/s.", "",
        "## Results on the validation split", "",
        "Mean F1 over N, A and O (the challenge's score); 95 % intervals from 1,000 bootstrap resamples of records. "
        "Latency: one 30 s window per call, one thread, median on the machine that ran the export.", "",
        "| model | size | mean F1 (N,A,O) | 95% CI | F1 N | F1 A (95% CI) | F1 O | F1 ~ | p50 latency |",
        "|---|---|---|---|---|---|---|---|---|",
        _row("teacher (torch fp32)", f"{t['parameters'] * 4 / 1024:.0f} KB fp32", t["validation"], "-"),
    ]
    for name, man in manifests.items():
        m = man["metrics"]["validation"]
        lines.append(_row(f"{name} (`{man['artifact']}`)", f"{man['size_bytes'] / 1024:.0f} KB", m,
                          f"{m['latency_ms_p50']:.2f} ms"))
    lines += [
        "", "## Limits", "",
        "- No separate test set exists in this data; the validation split was never used to choose anything: "
        "epochs and the settings compared across runs (weight decay, polarity inversion; docs/benchmarks.md) were "
        "chosen by the student's tune score, and the tune split is small (about 50 AF records), so its score is "
        "noisy and above the validation score.",
        "- The teacher overfits (training loss near 0.03 by the end) and scores below its student on validation: "
        "the soft labels on augmented crops regularise the student more than they transfer accuracy.",
        "- Trained on one device type (AliveCor, 300 Hz); other leads and wearables shift morphology: run it in "
        "shadow mode through the staged rollout before promoting it.",
        "- Probabilities are not calibrated risks.", "",
        "## Reproduce", "",
        "`cardiogate models distill-rhythm train --data DIR --work W` then "
        "`cardiogate models distill-rhythm export --data DIR --work W`.", "",
    ]
    return "\n".join(lines)


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="cardiogate models distill-rhythm", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="stage", required=True)
    t = sub.add_parser("train", help="train the teacher and distil the student; writes weights and a report")
    t.add_argument("--data", type=Path, required=True, help="CinC 2017 folder or tarball, or a .npz cache")
    t.add_argument("--work", type=Path, required=True, help="folder for teacher.pt, student.pt, distill-report.json")
    t.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    t.add_argument("--threads", type=int, default=max(1, min(8, os.cpu_count() or 1)))
    t.add_argument("--teacher-epochs", type=int, default=60)
    t.add_argument("--student-epochs", type=int, default=80)
    t.add_argument("--patience", type=int, default=20)
    t.add_argument("--batch-size", type=int, default=64)
    t.add_argument("--lr", type=float, default=2e-3)
    t.add_argument("--flip-prob", type=float, default=0.5, help="chance of inverting a training crop's polarity")
    t.add_argument("--weight-decay", type=float, default=1e-3, help="AdamW weight decay of both networks")
    t.add_argument("--seed", type=int, default=2017)
    t.add_argument("--teacher-budget-s", type=float, default=None, help="stop the teacher after this long")
    t.add_argument("--student-budget-s", type=float, default=None, help="stop the student after this long")
    t.add_argument("--no-amp", action="store_true", help="no bf16 autocast on CUDA")
    e = sub.add_parser("export", help="export the student (ONNX fp32/int8, TFLite), score it, write manifests")
    e.add_argument("--data", type=Path, required=True, help="the data `train` used (folder, tarball or cache)")
    e.add_argument("--work", type=Path, required=True, help="the folder `train` wrote")
    e.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"artifact folder (default {DEFAULT_OUT})")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    ns = parse(argv)
    if ns.stage == "train":
        return run_training(ns)
    return run_export(ns)


if __name__ == "__main__":
    sys.exit(main())
