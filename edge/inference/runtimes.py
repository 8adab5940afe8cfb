"""Two runtimes behind one interface, chosen by the artifact's suffix.

``.onnx`` runs on onnxruntime, ``.tflite`` on ai_edge_litert. The runtime packages are
imported only when an artifact of their kind is opened, so a gateway without one of them
still starts and reports ``missing_runtime`` for that artifact alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from cardiogate.edge.inference.errors import InferenceError, ModelLoadError

Float32Array = NDArray[np.float32]


class Runtime(Protocol):
    """Runs one float32 batch of the artifact's fixed input shape and returns its first output."""

    kind: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]

    def run(self, x: Float32Array) -> Float32Array: ...


class OnnxRuntime:
    kind = "onnxruntime"

    def __init__(self, path: Path, threads: int = 1) -> None:
        try:
            import onnxruntime as ort  # type: ignore[import-untyped]
        except ImportError as exc:
            raise ModelLoadError("missing_runtime", "onnxruntime is not installed", path) from exc
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own untyped exception classes
            raise ModelLoadError("corrupt_artifact", f"onnxruntime cannot load it: {exc}", path) from exc
        inp, out = self._session.get_inputs()[0], self._session.get_outputs()[0]
        self._input_name: str = inp.name
        self.input_shape = tuple(d if isinstance(d, int) else 1 for d in inp.shape)
        self.output_shape = tuple(d if isinstance(d, int) else 1 for d in out.shape)

    def run(self, x: Float32Array) -> Float32Array:
        try:
            result: Any = self._session.run(None, {self._input_name: x})
        except Exception as exc:
            raise InferenceError("runtime_failure", str(exc)) from exc
        return np.asarray(result[0], dtype=np.float32)


class LiteRtRuntime:
    kind = "ai_edge_litert"

    def __init__(self, path: Path, threads: int = 1) -> None:
        try:
            from ai_edge_litert.interpreter import Interpreter  # type: ignore[import-untyped]
        except ImportError as exc:
            raise ModelLoadError("missing_runtime", "ai_edge_litert is not installed", path) from exc
        try:
            self._interp = Interpreter(model_path=str(path), num_threads=threads)
            self._interp.allocate_tensors()
        except Exception as exc:  # the interpreter raises ValueError/RuntimeError for bad flatbuffers
            raise ModelLoadError("corrupt_artifact", f"LiteRT cannot load it: {exc}", path) from exc
        inp, out = self._interp.get_input_details()[0], self._interp.get_output_details()[0]
        self._input_index: int = int(inp["index"])
        self._output_index: int = int(out["index"])
        self.input_shape = tuple(int(d) for d in inp["shape"])
        self.output_shape = tuple(int(d) for d in out["shape"])

    def run(self, x: Float32Array) -> Float32Array:
        try:
            self._interp.set_tensor(self._input_index, x)
            self._interp.invoke()
            return np.array(self._interp.get_tensor(self._output_index), dtype=np.float32)
        except Exception as exc:
            raise InferenceError("runtime_failure", str(exc)) from exc


RUNTIMES: dict[str, type[OnnxRuntime] | type[LiteRtRuntime]] = {".onnx": OnnxRuntime, ".tflite": LiteRtRuntime}


def open_runtime(path: Path, threads: int = 1) -> Runtime:
    factory = RUNTIMES.get(path.suffix.lower())
    if factory is None:
        raise ModelLoadError("unsupported_format", f"no runtime for '{path.suffix}' (use .onnx or .tflite)", path)
    if not path.is_file():
        raise ModelLoadError("missing_file", "artifact not found", path)
    return factory(path, threads)
