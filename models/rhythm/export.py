"""Export a trained RhythmNet: ONNX fp32, ONNX static int8 (QDQ) and TFLite fp32."""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
from numpy.typing import NDArray
from onnxruntime.quantization import (  # type: ignore[import-untyped]
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process  # type: ignore[import-untyped]

from cardiogate.models.rhythm.net import RhythmNet, WithSoftmax
from cardiogate.models.rhythm.tflite import write_rhythm_tflite

INPUT_NAME = "ecg"
OUTPUT_NAME = "probabilities"
OPSET = 17


def export_onnx(net: RhythmNet, window: int, path: Path) -> Path:
    """fp32 ONNX with a fixed (1, 1, window) input: the gateway runs one window per call."""
    example = torch.zeros(1, 1, window)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(WithSoftmax(net.eval()), (example,), str(path), input_names=[INPUT_NAME],
                          output_names=[OUTPUT_NAME], opset_version=OPSET, dynamo=False, do_constant_folding=True)
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    return path


class WindowReader(CalibrationDataReader):  # type: ignore[misc]
    """Feeds calibration windows one at a time, in the input shape of the artifact."""

    def __init__(self, windows: NDArray[np.float32]) -> None:
        self._items = iter(windows[:, None, :, :] if windows.ndim == 3 else windows)

    def get_next(self) -> dict[str, NDArray[np.float32]] | None:
        item = next(self._items, None)
        return None if item is None else {INPUT_NAME: np.ascontiguousarray(item, dtype=np.float32)}


def quantize_int8(fp32: Path, int8: Path, calibration: NDArray[np.float32]) -> Path:
    """Static int8 in QDQ format: per-channel int8 weights, uint8 activations, calibrated by percentile.

    The softmax stays float: it is one tiny op and quantizing probabilities costs resolution.
    """
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
        softmax = [n.name for n in onnx.load(str(prepared)).graph.node if n.op_type == "Softmax"]
        quantize_static(str(prepared), str(int8), WindowReader(calibration), quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
                        calibrate_method=CalibrationMethod.Percentile, nodes_to_exclude=softmax,
                        extra_options={"CalibPercentile": 99.999})
    return int8


def export_all(net: RhythmNet, window: int, out: Path, stem: str,
               calibration: NDArray[np.float32]) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    fp32 = export_onnx(net, window, out / f"{stem}.fp32.onnx")
    int8 = quantize_int8(fp32, out / f"{stem}.int8.onnx", calibration)
    tflite = write_rhythm_tflite(net, window, out / f"{stem}.tflite")
    return {"fp32": fp32, "int8": int8, "tflite": tflite}
