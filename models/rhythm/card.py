"""MODEL_CARD.md for the rhythm artifacts, generated from the same numbers as the manifests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cardiogate.models.rhythm import CLASSES
from cardiogate.models.rhythm.manifest import INTENDED_USE

CLASS_NAMES = {"N": "Normal sinus", "A": "Atrial fibrillation", "O": "Other rhythm", "~": "Noisy"}


def _ci(metrics: dict[str, Any], key: str) -> str:
    low, high = metrics["ci95"][key]
    return f"{low:.3f}-{high:.3f}"


def _confusion(matrix: list[list[int]]) -> list[str]:
    lines = ["| reference \\ predicted | " + " | ".join(CLASSES) + " |", "|---|" + "---|" * len(CLASSES)]
    lines += [f"| {c} | " + " | ".join(str(v) for v in row) + " |" for c, row in zip(CLASSES, matrix, strict=True)]
    return lines


def model_card(artifacts: dict[str, dict[str, Any]], facts: dict[str, Any]) -> str:
    """``artifacts``: manifest per artifact name; ``facts``: data, split, training and network facts."""
    spec = facts["spec"]
    band = spec["bandpass"]
    lines = [
        "# Rhythm classifier v1 (cardiogate edge)", "",
        "## Intended use", "", INTENDED_USE,
        "It is a screening aid that puts a recording in front of a person; it never suppresses or replaces a "
        "physiological alarm and must not be used to make treatment decisions.", "",
        "## Data", "",
        f"PhysioNet/CinC Challenge 2017 training set as provided here: {facts['records']} single-lead AliveCor "
        f"recordings at 300 Hz, 9-61 s; labels " + ", ".join(f"{k} {v}" for k, v in facts["label_counts"].items())
        + f". REFERENCE.csv sha256 "
        f"`{facts['reference_sha256']}`.", "",
        "## Split", "",
        f"Stratified by class, by record, seeded (seed {facts['split_seed']}): {facts['train_records']} training, "
        f"{facts['validation_records']} validation records (20%). Every class's names are sorted, permuted by "
        "numpy's PCG64 generator and the first 20% go to validation; the list is in `split.json`. "
        f"Training-data hash (REFERENCE.csv + split): `{facts['training_data_hash']}`.", "",
        "## Preprocessing (carried in every manifest, applied by the gateway)", "",
        f"Polyphase resampling to {spec['sample_rate_hz']} Hz; Butterworth band-pass {band['low_hz']}-"
        f"{band['high_hz']} Hz, order {band['order']}, zero-phase; minus the median, divided by the "
        f"{spec['normalise']['percentile']}th percentile of |x|, clipped to +/-{spec['normalise']['clip']}; "
        f"windows of {spec['window_samples']} samples ({spec['window_samples'] / spec['sample_rate_hz']:.0f} s), "
        f"hop {spec['hop_samples']}, zero-padded at the end; a record's probabilities are the mean over its "
        f"windows; at least {spec['min_samples'] / spec['sample_rate_hz']:.0f} s of signal.", "",
        "## Model", "",
        f"1D residual CNN ({facts['parameters']} parameters): strided residual stages with dilated convolutions, "
        "global average + max pooling, linear head, softmax. Class-weighted cross-entropy (inverse square-root "
        "frequency), random 30 s crops with amplitude and noise augmentation, AdamW with a one-cycle schedule, "
        f"early stopping on validation mean F1 (best epoch {facts['best_epoch']} of {facts['epochs_run']}; over the "
        f"last 10 epochs run it ranged {min(facts['last_scores']):.3f}-{max(facts['last_scores']):.3f}, so the best "
        f"epoch is not an isolated spike). Training took {facts['train_seconds'] / 60:.1f} min on "
        f"{facts['device'].upper()} with {facts['threads']} thread(s).", "",
        "## Results on the validation split", "",
        "Challenge mean F1 is the mean of the N, A and O F1 scores. 95% intervals: 1,000 bootstrap resamples of "
        "validation records. Latency: one 30 s window per call, one thread, median (p99) on the training machine.",
        "",
        "| artifact | size | mean F1 (N,A,O) | 95% CI | F1 N | F1 A | F1 O | F1 ~ | p50 ms (p99) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, man in artifacts.items():
        m = man["metrics"]["validation"]
        f1 = m["f1"]
        lines.append(f"| {name} (`{man['artifact']}`) | {man['size_bytes'] / 1024:.0f} KB | {m['mean_f1_nao']:.3f} "
                     f"| {_ci(m, 'mean_f1_nao')} | {f1['N']:.3f} | {f1['A']:.3f} | {f1['O']:.3f} | {f1['~']:.3f} "
                     f"| {m['latency_ms_p50']:.2f} ({m['latency_ms_p99']:.2f}) |")
    first = next(iter(artifacts.values()))["metrics"]["validation"]
    lines += ["", "Per-class 95% intervals (fp32): " + ", ".join(f"{c} {_ci(first, c)}" for c in CLASSES) + ".", "",
              "Confusion matrix (fp32, validation records):", "", *_confusion(first["confusion"]), ""]
    for name, man in list(artifacts.items())[1:]:
        m = man["metrics"]["validation"]
        lines += [f"Confusion matrix ({name}):", "", *_confusion(m["confusion"]), ""]
    lines += [
        "Reference points: a gradient-boosting model on 26 RR and signal features scores 0.755 mean F1 in 5-fold "
        "CV on this data; the 2017 challenge winners scored 0.83 on the hidden test set.", "",
        "## Limits", "",
        "- The epoch was chosen on the validation split, so its scores are slightly optimistic; no separate test "
        "set exists in this data.",
        "- Trained on one device type (AliveCor, lead I-like, 300 Hz). Other leads, electrode placements and "
        "wearables (e.g. chest straps at 130 Hz) shift morphology; check agreement in shadow mode before use.",
        "- \"Other rhythm\" is a heterogeneous class; most errors are N vs O. AF shorter than a window, paced "
        "rhythms, flutter with regular block and paediatric ECG are not represented.",
        "- Probabilities are not calibrated risks. Recordings under "
        f"{spec['min_samples'] / spec['sample_rate_hz']:.0f} s are not classified.",
        "- int8 and TFLite artifacts are checked against fp32 on the validation split (table above).", "",
        "## Reproduce", "",
        "`cardiogate models train-edge --data DIR` (or `python -m cardiogate.models.rhythm.train_edge --data DIR`) "
        "rebuilds "
        "the artifacts, manifests and this card; `cardiogate eval rhythm --data DIR` re-scores the shipped "
        "artifacts through the gateway's inference path.", "",
    ]
    return "\n".join(lines)


def write_model_card(path: Path, artifacts: dict[str, dict[str, Any]], facts: dict[str, Any]) -> Path:
    path.write_text(model_card(artifacts, facts), encoding="utf-8")
    return path
