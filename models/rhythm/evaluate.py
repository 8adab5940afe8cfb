"""Score exported artifacts on validation records, one window per call on one thread, as a gateway runs them."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from cardiogate.models.rhythm import CLASSES
from cardiogate.models.rhythm.preprocess import fit_window, window_starts


class ArtifactRunner:
    """A minimal single-threaded runner for .onnx (onnxruntime) and .tflite (ai_edge_litert)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        if path.suffix == ".onnx":
            import onnxruntime as ort  # type: ignore[import-untyped]

            opts = ort.SessionOptions()
            opts.intra_op_num_threads = opts.inter_op_num_threads = 1
            self._session: Any = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
            self._name = self._session.get_inputs()[0].name
        else:
            from ai_edge_litert.interpreter import Interpreter  # type: ignore[import-untyped]

            self._interp: Any = Interpreter(model_path=str(path), num_threads=1)
            self._interp.allocate_tensors()
            self._in = self._interp.get_input_details()[0]["index"]
            self._out = self._interp.get_output_details()[0]["index"]

    def __call__(self, x: NDArray[np.float32]) -> NDArray[np.float32]:
        if self.path.suffix == ".onnx":
            return np.asarray(self._session.run(None, {self._name: x})[0], dtype=np.float32)
        self._interp.set_tensor(self._in, x)
        self._interp.invoke()
        return np.array(self._interp.get_tensor(self._out), dtype=np.float32)


def score_artifact(path: Path, signals: Sequence[NDArray[np.float64]], spec: dict[str, Any],
                   warmup: int = 5) -> tuple[NDArray[np.float32], NDArray[np.float64]]:
    """(per-record probabilities averaged over windows, per-window latencies in ms)."""
    run = ArtifactRunner(path)
    width = int(spec["window_samples"])
    for _ in range(warmup):
        run(np.zeros((1, 1, width), dtype=np.float32))
    probs = np.zeros((len(signals), len(CLASSES)), dtype=np.float32)
    latencies: list[float] = []
    for i, x in enumerate(signals):
        acc = np.zeros(len(CLASSES), dtype=np.float64)
        starts = window_starts(x.size, spec)
        for s in starts:
            window = fit_window(x, s, spec)[None, None, :]
            began = time.perf_counter()
            acc += run(window).reshape(-1)
            latencies.append((time.perf_counter() - began) * 1000.0)
        probs[i] = acc / len(starts)
    return probs, np.asarray(latencies)
