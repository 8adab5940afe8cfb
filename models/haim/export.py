"""The gateway risk student as an int8 ONNX artifact with its manifest, for the registry and the gateway.

The student is a logistic regression on vitals a gateway sees (``student.py``). Its whole
evaluation (median imputation of missing inputs, standardisation, clipping, the linear layer
and the sigmoid) is written into the graph, so the gateway feeds raw feature values with NaN
for what it has not measured and needs nothing but onnxruntime, exactly like the rhythm model.
The linear layer is quantised to int8 (dynamic quantisation: int8 weights, activations
quantised per call); a unit test bounds the difference from the float evaluation.

Manifest (``<artifact>.json``): ``task`` ``"risk"``, the feature names in input order, the
24-hour horizon the features summarise, the output's meaning, metrics and lineage.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

INPUT_NAME = "features"
OUTPUT_NAME = "risk"
OPSET = 17
HORIZON_H = 24.0
MIN_GATEWAY_VERSION = "0.1.0"
INTENDED_USE = ("Advisory deterioration risk beside NEWS2: the probability of in-hospital death that the eICU "
                "student assigns to the last 24 h of a patient's gateway vitals. It raises at most a low-priority "
                "advisory and never replaces, delays or silences a rule-based alarm.")


def _graph(spec: dict[str, Any]) -> Any:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    n = len(spec["features"])

    def const(name: str, values: Any, shape: tuple[int, ...]) -> Any:
        return numpy_helper.from_array(np.asarray(values, dtype=np.float32).reshape(shape), name)

    initializers = [
        const("median", spec["median"], (1, n)), const("mean", spec["mean"], (1, n)),
        const("scale", spec["scale"], (1, n)), const("lo", -5.0, ()), const("hi", 5.0, ()),
        const("coef", spec["coef"], (n, 1)), const("intercept", [spec["intercept"]], (1, 1)),
    ]
    nodes = [
        helper.make_node("IsNaN", [INPUT_NAME], ["missing"]),
        helper.make_node("Where", ["missing", "median", INPUT_NAME], ["filled"]),
        helper.make_node("Sub", ["filled", "mean"], ["centred"]),
        helper.make_node("Div", ["centred", "scale"], ["z_raw"]),
        helper.make_node("Clip", ["z_raw", "lo", "hi"], ["z"]),
        helper.make_node("MatMul", ["z", "coef"], ["linear"]),
        helper.make_node("Add", ["linear", "intercept"], ["logit"]),
        helper.make_node("Sigmoid", ["logit"], [OUTPUT_NAME]),
    ]
    graph = helper.make_graph(nodes, "gateway_risk_student",
                              [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [1, n])],
                              [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, [1, 1])],
                              initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="cardiogate")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def write_gateway_risk_artifact(student: dict[str, Any], out_dir: Path, *, name: str = "risk-student",
                                version: str = "1.0.0", metrics: dict[str, Any] | None = None,
                                training_data_hash: str = "", lineage: dict[str, Any] | None = None) -> Path:
    """Write ``<name>-<version>.int8.onnx`` and its manifest into ``out_dir``; returns the artifact's path."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic  # type: ignore[import-untyped]

    out_dir.mkdir(parents=True, exist_ok=True)
    artifact = out_dir / f"{name}-{version}.int8.onnx"
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        onnx.save(_graph(student), str(fp32))
        quantize_dynamic(str(fp32), str(artifact), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"])
    blob = artifact.read_bytes()
    manifest = {
        "name": name, "version": version, "task": "risk", "artifact": artifact.name, "format": "onnx",
        "runtime": "onnxruntime", "precision": "int8",
        "classes": ["risk"],
        "input": {"name": INPUT_NAME, "shape": [1, len(student["features"])], "dtype": "float32",
                  "features": list(student["features"]), "horizon_h": HORIZON_H, "missing": "NaN",
                  "preprocess": {"kind": "gateway_vitals", "horizon_h": HORIZON_H}},
        "output": {"name": OUTPUT_NAME, "shape": [1, 1], "dtype": "float32",
                   "meaning": "probability of in-hospital death (eICU), from the last 24 h of vitals"},
        "sha256": hashlib.sha256(blob).hexdigest(), "size_bytes": len(blob),
        "training_data_hash": training_data_hash, "metrics": metrics or {}, "lineage": lineage or {},
        "min_gateway_version": MIN_GATEWAY_VERSION, "intended_use": INTENDED_USE,
    }
    artifact.with_name(artifact.name + ".json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return artifact


def main(argv: list[str] | None = None) -> int:
    """Export a trained student (``student.json``) with the metrics and lineage of its ``manifest.json``."""
    p = argparse.ArgumentParser(prog="python -m cardiogate.models.haim.export", description=main.__doc__)
    p.add_argument("--student", type=Path, required=True, help="student.json written by `models train-risk`")
    p.add_argument("--out", type=Path, required=True, help="folder for the .int8.onnx and its manifest")
    p.add_argument("--version", default="1.0.0")
    ns = p.parse_args(argv)
    student = json.loads(ns.student.read_text(encoding="utf-8"))
    trained = ns.student.with_name("manifest.json")
    facts = json.loads(trained.read_text(encoding="utf-8")) if trained.is_file() else {}
    metrics = {k: v for k, v in facts.get("metrics", {}).items() if "student" in k or k == "held_out"}
    lineage = {k: facts[k] for k in ("data", "code_version", "seed", "split", "hyperparameters") if k in facts}
    data_hash = hashlib.sha256(json.dumps(facts.get("data", {}), sort_keys=True).encode()).hexdigest()
    artifact = write_gateway_risk_artifact(student, ns.out, version=ns.version, metrics=metrics,
                                           training_data_hash=data_hash, lineage=lineage)
    print(f"{artifact} ({artifact.stat().st_size} B)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
