"""Rhythm classification on the gateway: raw device ECG in, advisory N/A/O/~ label out."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from cardiogate.edge.gateway_metrics import INFERENCE_LATENCY
from cardiogate.edge.inference.errors import InferenceError, ModelLoadError
from cardiogate.edge.inference.model import EdgeModel
from cardiogate.edge.inference.preprocess import model_samples, to_windows

LABEL_NAMES = {"N": "normal", "A": "atrial_fibrillation", "O": "other_rhythm", "~": "noisy"}


@dataclass(frozen=True)
class RhythmResult:
    label: str
    probabilities: dict[str, float]
    windows: int
    latency_ms: float
    model: str

    @property
    def label_name(self) -> str:
        return LABEL_NAMES.get(self.label, self.label)


class RhythmClassifier:
    """Preprocesses a stretch of raw ECG per the model's manifest and averages window probabilities.

    ``samples`` are the device's integers (e.g. int16) at ``sample_rate_hz``; ``scale_uv``
    converts them to microvolts. A signal longer than the model window is covered by
    hop-spaced windows whose probabilities are averaged, exactly as in validation.
    """

    def __init__(self, model: EdgeModel, label: str | None = None) -> None:
        if model.manifest.task != "rhythm":
            raise ModelLoadError("manifest_invalid", f"task '{model.manifest.task}' is not rhythm", model.artifact)
        self.model = model
        # What results name as their model: the artifact's name, plus the registry version when the
        # updater installed it, so every classification can be traced to the version that made it.
        self.label = label or model.name
        self.classes = model.manifest.classes
        self.spec: dict[str, Any] = model.manifest.preprocess

    @classmethod
    def load(cls, artifact: Path | str, threads: int = 1) -> RhythmClassifier:
        return cls(EdgeModel.load(artifact, threads=threads))

    def min_device_samples(self, sample_rate_hz: float) -> int:
        """The fewest device samples that can be classified (the manifest's minimum duration)."""
        return int(np.ceil(int(self.spec["min_samples"]) * sample_rate_hz / float(self.spec["sample_rate_hz"])))

    def classify(self, samples: NDArray[Any], sample_rate_hz: float, scale_uv: float = 1.0) -> RhythmResult:
        x = np.asarray(samples).ravel()
        if x.size == 0 or not np.all(np.isfinite(x)):
            raise InferenceError("bad_input", "empty or non-finite ECG")
        if model_samples(x.size, sample_rate_hz, self.spec) < int(self.spec["min_samples"]):
            raise InferenceError("input_too_short", f"{x.size} samples at {sample_rate_hz} Hz is too short")
        windows = to_windows(x.astype(np.float64) * scale_uv, sample_rate_hz, self.spec)
        began = time.perf_counter()
        probs = self.model.predict(windows).mean(axis=0)
        spent_ms = (time.perf_counter() - began) * 1000.0
        INFERENCE_LATENCY.observe(spent_ms / 1000.0)
        best = int(np.argmax(probs))
        return RhythmResult(self.classes[best], {c: float(p) for c, p in zip(self.classes, probs, strict=True)},
                            windows.shape[0], spent_ms, self.label)
