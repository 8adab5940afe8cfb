"""A loaded, verified, warmed-up artifact with its manifest and latency record."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from cardiogate.edge.inference.errors import InferenceError, ModelLoadError
from cardiogate.edge.inference.latency import LatencyRecorder
from cardiogate.edge.inference.manifest import ArtifactManifest, load_manifest, manifest_path_for, verify_artifact
from cardiogate.edge.inference.runtimes import Float32Array, Runtime, open_runtime


class EdgeModel:
    """One artifact ready to run: checked against its manifest, shape-checked and warmed up.

    Warm-up runs a few zero inputs on load so the first real window (the one an alarm may
    wait on) does not pay for lazy allocation; those runs are not counted in the latency.
    """

    def __init__(self, artifact: Path, manifest: ArtifactManifest, runtime: Runtime) -> None:
        self.artifact = artifact
        self.manifest = manifest
        self.runtime = runtime
        self.latency = LatencyRecorder()

    @classmethod
    def load(cls, artifact: Path | str, manifest_path: Path | str | None = None, threads: int = 1,
             warmup: int = 3) -> EdgeModel:
        path = Path(artifact)
        manifest = load_manifest(Path(manifest_path) if manifest_path else manifest_path_for(path))
        verify_artifact(path, manifest)
        runtime = open_runtime(path, threads)
        expected_in, expected_out = tuple(manifest.input_shape), (1, len(manifest.classes))
        if tuple(runtime.input_shape) != expected_in:
            raise ModelLoadError("input_mismatch", f"artifact input {runtime.input_shape} != manifest {expected_in}",
                                 path)
        if tuple(runtime.output_shape) != expected_out:
            raise ModelLoadError("input_mismatch", f"artifact output {runtime.output_shape} != {expected_out}", path)
        model = cls(path, manifest, runtime)
        try:
            for _ in range(warmup):
                model.runtime.run(np.zeros(expected_in, dtype=np.float32))
        except InferenceError as exc:
            raise ModelLoadError("corrupt_artifact", f"warm-up failed: {exc.detail}", path) from exc
        return model

    @property
    def name(self) -> str:
        return self.manifest.name

    def predict(self, windows: Float32Array) -> Float32Array:
        """Class probabilities for a stack of windows shaped (n, *input_shape[1:]); one timed call each."""
        x = np.asarray(windows, dtype=np.float32)
        if x.ndim != len(self.manifest.input_shape) or x.shape[1:] != self.manifest.input_shape[1:] or not len(x):
            raise InferenceError("bad_input", f"windows {x.shape} do not fit input {self.manifest.input_shape}")
        out = np.empty((x.shape[0], len(self.manifest.classes)), dtype=np.float32)
        for i in range(x.shape[0]):
            began = time.perf_counter()
            out[i] = self.runtime.run(np.ascontiguousarray(x[i:i + 1])).reshape(-1)
            self.latency.record((time.perf_counter() - began) * 1000.0)
        if not np.all(np.isfinite(out)):
            raise InferenceError("runtime_failure", "non-finite model output")
        return out
