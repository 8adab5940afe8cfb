"""The risk student on the gateway: 24 h of each patient's vitals -> an advisory risk beside NEWS2.

``RiskModel`` loads an int8 ONNX artifact whose manifest says ``task: risk`` and lists its input
features; the artifact's size and sha256 are checked against the manifest before onnxruntime
sees it, and a model asking for an input this gateway cannot compute is refused at load.
``RiskMonitor`` keeps a ``VitalsHistory`` per patient and scores each patient at most once per
``every_s`` of device time (the window), so the cost is one tiny graph run per patient-minute.

The score never drives an IEC alarm: it feeds the engine's ``risk`` condition, whose only tier
is a low-priority advisory by default (``[alarms.conditions.risk]`` changes it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cardiogate.core.artifacts import sha256_file
from cardiogate.core.risk_window import NS_PER_MIN, VitalsHistory, known_feature, risk_features
from cardiogate.edge.inference.errors import InferenceError, ModelLoadError
from cardiogate.edge.inference.manifest import manifest_path_for
from cardiogate.edge.inference.runtimes import OnnxRuntime

NS = 1_000_000_000
SWEEP_NS = 3600 * NS  # how often (device time) patients silent for a whole horizon are dropped


@dataclass(frozen=True, slots=True)
class RiskScore:
    score: float
    model: str
    """``name@version`` of the artifact that produced it."""
    minutes_of_data: int
    features: tuple[float, ...] = ()
    """The inputs it was computed from (what a candidate model in shadow scores too)."""


class RiskModel:
    """A verified risk artifact on onnxruntime, one thread."""

    def __init__(self, path: Path, name: str, version: str, features: tuple[str, ...], runtime: OnnxRuntime) -> None:
        self.path, self.name, self.version, self.features = path, name, version, features
        self._runtime = runtime

    @property
    def model_id(self) -> str:
        return f"{self.name}@{self.version}"

    @classmethod
    def load(cls, path: Path) -> RiskModel:
        manifest_file = manifest_path_for(path)
        try:
            raw: dict[str, Any] = json.loads(manifest_file.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ModelLoadError("missing_file", "manifest not found", manifest_file) from exc
        except (OSError, ValueError) as exc:
            raise ModelLoadError("manifest_invalid", f"unreadable manifest: {exc}", manifest_file) from exc
        try:
            if raw["task"] != "risk" or raw["format"] != "onnx":
                raise ValueError(f"task {raw['task']!r} / format {raw['format']!r} is not an ONNX risk model")
            features = tuple(str(f) for f in raw["input"]["features"])
            shape = [int(d) for d in raw["input"]["shape"]]
            name, version, sha, size = str(raw["name"]), str(raw["version"]), str(raw["sha256"]), int(raw["size_bytes"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelLoadError("manifest_invalid", f"bad or missing field: {exc}", manifest_file) from exc
        if shape != [1, len(features)] or not features:
            raise ModelLoadError("manifest_invalid", f"input shape {shape} disagrees with {len(features)} features",
                                 manifest_file)
        unknown = [f for f in features if not known_feature(f)]
        if unknown:
            raise ModelLoadError("input_mismatch", f"this gateway cannot compute {', '.join(unknown)}", path)
        try:
            actual_size = path.stat().st_size
        except FileNotFoundError as exc:
            raise ModelLoadError("missing_file", "artifact not found", path) from exc
        if actual_size != size or sha256_file(path) != sha:
            raise ModelLoadError("checksum_mismatch", "size or sha256 differs from the manifest", path)
        return cls(path, name, version, features, OnnxRuntime(path))

    def predict(self, features: list[float]) -> float:
        x = np.asarray(features, dtype=np.float32).reshape(1, -1)
        if x.shape[1] != len(self.features):
            raise InferenceError("bad_input", f"{x.shape[1]} features, the model takes {len(self.features)}")
        out = self._runtime.run(x)
        value = float(np.asarray(out).reshape(-1)[0])
        if not 0.0 <= value <= 1.0:
            raise InferenceError("runtime_failure", f"risk {value} outside [0, 1]")
        return value


class RiskMonitor:
    """Per-patient vitals histories and their latest risk, scored once per window."""

    def __init__(self, model: RiskModel, every_s: float = 60.0, min_minutes: int = 5,
                 advisory_at: float = 0.10) -> None:
        self.model = model
        self.advisory_at = advisory_at
        """Where the live label turns "advisory" for shadow comparison (the ``risk`` condition's default limit)."""
        self.every_ns = round(every_s * NS)
        self.min_minutes = min_minutes
        self._history: dict[str, VitalsHistory] = {}
        self._last: dict[str, tuple[int, RiskScore]] = {}
        self._covered: dict[str, tuple[tuple[int, int], int]] = {}
        self._swept_ns = 0
        self.scored = 0

    def observe(self, patient: str, device_ns: int, **values: float | None) -> RiskScore | None:
        """Add readings (hr, spo2, sys, dia, map); a new score when this patient's window has passed, else None."""
        if device_ns - self._swept_ns > SWEEP_NS:
            self._sweep(device_ns)
        history = self._history.setdefault(patient, VitalsHistory())
        for signal, value in values.items():
            history.add(signal, value, device_ns)
        last = self._last.get(patient)
        if last is not None and device_ns - last[0] < self.every_ns:
            return None
        # Coverage only changes when a minute entry starts or the horizon moves on a minute: counted once per
        # such change, not at every reading (that count was a visible share of the gateway's CPU).
        key = (history.new_minutes, history.latest_ns // NS_PER_MIN)
        cached = self._covered.get(patient)
        if cached is not None and cached[0] == key:
            covered = cached[1]
        else:
            covered = max(history.minutes(s) for s in ("hr", "spo2", "sys", "map"))
            self._covered[patient] = (key, covered)
        if covered < self.min_minutes:
            return None  # a few readings are not a day's picture: no score rather than a misleading one
        features = risk_features(history, self.model.features)
        score = RiskScore(self.model.predict(features), self.model.model_id, covered, tuple(features))
        self._last[patient] = (device_ns, score)
        self.scored += 1
        return score

    def latest(self, patient: str) -> RiskScore | None:
        last = self._last.get(patient)
        return None if last is None else last[1]

    def patients(self) -> int:
        return len(self._history)

    def _sweep(self, device_ns: int) -> None:
        """Drop patients with no reading for a whole horizon (unpaired, discharged): their summaries are stale,
        and a gateway that serves a ward for months must not keep every past patient's ring."""
        self._swept_ns = device_ns
        for patient in [p for p, h in self._history.items() if device_ns - h.latest_ns > h.horizon_min * NS * 60]:
            del self._history[patient]
            self._last.pop(patient, None)
            self._covered.pop(patient, None)
