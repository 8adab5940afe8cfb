"""Manifests written beside each artifact (``<artifact>.json``) and the split they were validated on."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from cardiogate.models.rhythm import CLASSES

VERSION = "1.0.0"
MIN_GATEWAY_VERSION = "0.1.0"
FORMATS = {".onnx": ("onnx", "onnxruntime"), ".tflite": ("tflite", "ai_edge_litert")}
INTENDED_USE = ("Advisory rhythm classification (normal, AF, other, noisy) of single-lead ECG on a gateway; "
                "flags recordings for clinician review. Not a diagnosis.")


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build_manifest(artifact: Path, name: str, precision: str, spec: dict[str, Any], data_hash: str,
                   reference_sha256: str, split_info: dict[str, Any], metrics: dict[str, Any]) -> dict[str, Any]:
    fmt, runtime = FORMATS[artifact.suffix]
    return {
        "name": name,
        "version": VERSION,
        "task": "rhythm",
        "artifact": artifact.name,
        "format": fmt,
        "runtime": runtime,
        "precision": precision,
        "classes": list(CLASSES),
        "input": {"name": "ecg", "shape": [1, 1, int(spec["window_samples"])], "dtype": "float32",
                  "preprocess": spec},
        "output": {"name": "probabilities", "shape": [1, len(CLASSES)], "dtype": "float32"},
        "sha256": sha256_of(artifact),
        "size_bytes": artifact.stat().st_size,
        "training_data_hash": data_hash,
        "reference_sha256": reference_sha256,
        "split": split_info,
        "metrics": metrics,
        "min_gateway_version": MIN_GATEWAY_VERSION,
        "intended_use": INTENDED_USE,
    }


def write_json(path: Path, payload: dict[str, Any]) -> Path:
    path.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    return path
