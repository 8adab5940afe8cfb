"""What the updater needs from a model runtime: load an artifact, label a window.

The updater never depends on one runtime. ``Runner`` is the whole contract; the real
rhythm model (cardiogate.edge.inference, onnxruntime/LiteRT) is adapted by ``RhythmRunner``, the
risk student by ``RiskRunner`` (its windows are a patient's feature vectors, its labels
"normal"/"advisory"), and ``RuleRunner`` is a tiny deterministic model (a JSON artifact) for
tests and demos.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from cardiogate.core.errors import PermanentError
from cardiogate.edge.updater.manifest import Manifest


@dataclass(frozen=True)
class EcgWindow:
    """A stretch of one patient's ECG as the live model sees it."""

    samples: NDArray[Any]
    sample_rate_hz: float
    patient: str = ""


@dataclass(frozen=True)
class FeatureWindow:
    """One patient's risk-model inputs at the end of a risk window, as the live risk model saw them."""

    features: tuple[float, ...]
    patient: str = ""


Window = EcgWindow | FeatureWindow


class Runner(Protocol):
    def predict(self, window: Window) -> str:
        """The label for one window; raising counts against the model in shadow."""
        ...


RunnerFactory = Callable[[Path, Manifest], Runner]


class RunnerLoadError(PermanentError):
    """The runtime cannot load this artifact (reported as a load failure)."""


def estimate_bpm(samples: NDArray[Any], sample_rate_hz: float) -> float:
    """Heart rate from R peaks: local maxima above 60% of the window's range, 250 ms refractory."""
    x = np.asarray(samples, dtype=np.float64).ravel()
    if x.size < 3 or sample_rate_hz <= 0:
        return 0.0
    x = x - np.median(x)
    threshold = 0.6 * float(np.max(x))
    if threshold <= 0:
        return 0.0
    refractory = int(0.25 * sample_rate_hz)
    candidates = np.flatnonzero((x[1:-1] > threshold) & (x[1:-1] >= x[:-2]) & (x[1:-1] > x[2:])) + 1
    peaks = 0
    last = -refractory - 1
    for i in candidates:
        if i - last > refractory:
            peaks += 1
            last = int(i)
    return peaks * 60.0 * sample_rate_hz / x.size


@dataclass(frozen=True)
class RuleRunner:
    """A deterministic stand-in model: "T" (tachycardia) above ``threshold_bpm``, else "N".

    Its artifact is JSON, e.g. ``{"kind": "rule", "threshold_bpm": 100, "delay_ms": 0}``;
    ``delay_ms`` makes a deliberately slow model, ``invert`` a deliberately wrong one.
    """

    threshold_bpm: float = 100.0
    above: str = "T"
    below: str = "N"
    delay_ms: float = 0.0
    invert: bool = False

    @classmethod
    def from_file(cls, path: Path) -> RuleRunner:
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            if doc.get("kind") != "rule":
                raise ValueError("not a rule model")
            return cls(float(doc.get("threshold_bpm", 100.0)), str(doc.get("above", "T")),
                       str(doc.get("below", "N")), float(doc.get("delay_ms", 0.0)), bool(doc.get("invert", False)))
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            raise RunnerLoadError(f"{path}: {exc}") from exc

    def predict(self, window: Window) -> str:
        if not isinstance(window, EcgWindow):
            raise TypeError("a rule model labels ECG windows")
        if self.delay_ms > 0:
            time.sleep(self.delay_ms / 1000.0)
        high = estimate_bpm(window.samples, window.sample_rate_hz) > self.threshold_bpm
        return self.above if high != self.invert else self.below


class RhythmRunner:
    """The on-device rhythm classifier (cardiogate.edge.inference) behind the Runner protocol."""

    def __init__(self, artifact: Path, threads: int = 1) -> None:
        from cardiogate.edge.inference import ModelError, RhythmClassifier

        try:
            self._classifier = RhythmClassifier.load(artifact, threads=threads)
        except ModelError as exc:
            raise RunnerLoadError(str(exc)) from exc

    def predict(self, window: Window) -> str:
        if not isinstance(window, EcgWindow):
            raise TypeError("the rhythm model labels ECG windows")
        return self._classifier.classify(window.samples, window.sample_rate_hz).label


RISK_ADVISORY_AT = 0.10
"""The default ``risk`` advisory limit (cardiogate.edge.alarm_engine.config): the label boundary in shadow."""


class RiskRunner:
    """The gateway risk student behind the Runner protocol: "advisory" at or above the limit, else "normal".

    In shadow the candidate scores the very features the live model scored, so agreement is
    agreement on which patients would carry the advisory, and the alarm-rate gate catches a
    model that would flag many more of them.
    """

    def __init__(self, artifact: Path, advisory_at: float = RISK_ADVISORY_AT) -> None:
        from cardiogate.edge.inference import ModelError
        from cardiogate.edge.inference.risk import RiskModel

        try:
            self.model = RiskModel.load(artifact)
        except ModelError as exc:
            raise RunnerLoadError(str(exc)) from exc
        self.advisory_at = advisory_at

    def predict(self, window: Window) -> str:
        if not isinstance(window, FeatureWindow):
            raise TypeError("the risk model labels feature windows")
        return "advisory" if self.model.predict(list(window.features)) >= self.advisory_at else "normal"


def default_runner_factory(artifact: Path, manifest: Manifest, risk_advisory_at: float = RISK_ADVISORY_AT) -> Runner:
    """Pick the runtime from the manifest's ``format`` (``rule``, ``onnx``, ``tflite``) and ``task``."""
    if manifest.format == "rule":
        return RuleRunner.from_file(artifact)
    if manifest.format == "onnx" and manifest.task == "risk":
        return RiskRunner(artifact, risk_advisory_at)
    if manifest.format in ("onnx", "tflite"):
        return RhythmRunner(artifact)
    raise RunnerLoadError(f"no runtime for format {manifest.format!r}")
