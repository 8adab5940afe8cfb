"""Gateway inference: both runtimes agree, latency is recorded, and every failure is a typed error."""

from __future__ import annotations

import builtins
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cardiogate.edge.inference import EdgeModel, InferenceError, ModelLoadError, RhythmClassifier, manifest_path_for
from cardiogate.edge.inference.manifest import sha256_file
from tests.conftest import REPO

ARTIFACTS = REPO / "models" / "artifacts" / "rhythm"
FP32 = ARTIFACTS / "rhythm-v1.fp32.onnx"
INT8 = ARTIFACTS / "rhythm-v1.int8.onnx"
TFLITE = ARTIFACTS / "rhythm-v1.tflite"

pytestmark = pytest.mark.skipif(not FP32.is_file(), reason="rhythm artifacts not built")

try:
    import ai_edge_litert.interpreter  # noqa: F401

    HAVE_LITERT = True
except ImportError:
    HAVE_LITERT = False


def synthetic_ecg(seconds: float = 20.0, rate: float = 250.0, rr_jitter: float = 0.0, seed: int = 0) -> np.ndarray:
    """int16 microvolts: Gaussian QRS-like spikes and T waves on a slow baseline."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    x = 80.0 * np.sin(2 * np.pi * 0.25 * t)
    beat = 0.3
    while beat < seconds:
        x += 1000.0 * np.exp(-0.5 * ((t - beat) / 0.012) ** 2) + 250.0 * np.exp(-0.5 * ((t - beat - 0.25) / 0.05) ** 2)
        beat += 0.8 * (1.0 + rr_jitter * rng.uniform(-1, 1))
    return (x + rng.normal(0, 15, t.size)).astype(np.int16)


def copy_artifact(src: Path, dst_dir: Path) -> Path:
    dst = dst_dir / src.name
    shutil.copy(src, dst)
    shutil.copy(manifest_path_for(src), manifest_path_for(dst))
    return dst


def rewrite_manifest(artifact: Path, **changes: Any) -> None:
    path = manifest_path_for(artifact)
    raw = json.loads(path.read_text())
    for key, value in changes.items():
        if key == "window_samples":
            raw["input"]["shape"][-1] = value
            raw["input"]["preprocess"]["window_samples"] = value
        else:
            raw[key] = value
    path.write_text(json.dumps(raw))


@pytest.mark.parametrize("seed,jitter", [(0, 0.0), (1, 0.35)])
def test_onnx_and_tflite_give_the_same_label(seed: int, jitter: float) -> None:
    if not HAVE_LITERT:
        pytest.skip("ai_edge_litert is not installed")
    ecg = synthetic_ecg(rr_jitter=jitter, seed=seed)
    onnx_result = RhythmClassifier.load(FP32).classify(ecg, 250.0, scale_uv=1.0)
    tflite_result = RhythmClassifier.load(TFLITE).classify(ecg, 250.0, scale_uv=1.0)
    assert onnx_result.label == tflite_result.label
    p_onnx = np.array(list(onnx_result.probabilities.values()))
    p_tflite = np.array(list(tflite_result.probabilities.values()))
    np.testing.assert_allclose(p_onnx, p_tflite, atol=1e-4)
    assert abs(p_onnx.sum() - 1.0) < 1e-4


def test_int8_runs_and_stays_close_to_fp32() -> None:
    ecg = synthetic_ecg(seconds=45.0, seed=2)
    fp32 = RhythmClassifier.load(FP32).classify(ecg, 250.0)
    int8 = RhythmClassifier.load(INT8).classify(ecg, 250.0)
    assert int8.windows == fp32.windows == 2
    diff = max(abs(fp32.probabilities[c] - int8.probabilities[c]) for c in fp32.probabilities)
    assert diff < 0.25


def test_latency_is_recorded_per_window_after_warm_up() -> None:
    clf = RhythmClassifier.load(FP32)
    assert clf.model.latency.count == 0 and clf.model.latency.p50_ms is None
    result = clf.classify(synthetic_ecg(seconds=60.0), 250.0)
    assert result.windows == clf.model.latency.count == 3
    p50, p99 = clf.model.latency.p50_ms, clf.model.latency.p99_ms
    assert p50 is not None and p99 is not None and 0 < p50 <= p99
    assert result.label in clf.classes and result.label_name


def test_manifest_drives_the_input_spec() -> None:
    model = EdgeModel.load(FP32)
    assert model.manifest.task == "rhythm"
    assert model.manifest.classes == ("N", "A", "O", "~")
    assert model.runtime.input_shape == model.manifest.input_shape
    assert model.manifest.input_shape[-1] == model.manifest.preprocess["window_samples"]


def test_corrupt_file_is_a_checksum_error(tmp_path: Path) -> None:
    art = copy_artifact(FP32, tmp_path)
    blob = bytearray(art.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    art.write_bytes(bytes(blob))
    with pytest.raises(ModelLoadError) as err:
        EdgeModel.load(art)
    assert err.value.reason == "checksum_mismatch"


@pytest.mark.parametrize("source", [FP32, TFLITE])
def test_garbage_with_a_matching_manifest_is_a_corrupt_artifact(tmp_path: Path, source: Path) -> None:
    if source.suffix == ".tflite" and not HAVE_LITERT:
        pytest.skip("ai_edge_litert is not installed")
    art = copy_artifact(source, tmp_path)
    art.write_bytes(b"\x00not a model at all" * 64)
    rewrite_manifest(art, sha256=sha256_file(art), size_bytes=art.stat().st_size)
    with pytest.raises(ModelLoadError) as err:
        EdgeModel.load(art)
    assert err.value.reason == "corrupt_artifact"


@pytest.mark.parametrize("source", [FP32, TFLITE])
def test_wrong_input_shape_is_a_mismatch(tmp_path: Path, source: Path) -> None:
    if source.suffix == ".tflite" and not HAVE_LITERT:
        pytest.skip("ai_edge_litert is not installed")
    art = copy_artifact(source, tmp_path)
    rewrite_manifest(art, window_samples=1000)
    with pytest.raises(ModelLoadError) as err:
        EdgeModel.load(art)
    assert err.value.reason == "input_mismatch"


def test_wrong_window_shape_at_inference_is_an_inference_error() -> None:
    model = EdgeModel.load(FP32)
    with pytest.raises(InferenceError) as err:
        model.predict(np.zeros((1, 1, 123), dtype=np.float32))
    assert err.value.reason == "bad_input"


def test_too_short_or_empty_signal_is_an_inference_error() -> None:
    clf = RhythmClassifier.load(FP32)
    with pytest.raises(InferenceError) as err:
        clf.classify(synthetic_ecg(seconds=2.0), 250.0)
    assert err.value.reason == "input_too_short"
    with pytest.raises(InferenceError):
        clf.classify(np.array([], dtype=np.int16), 250.0)
    assert clf.min_device_samples(250.0) == 1250


def block_import(monkeypatch: pytest.MonkeyPatch, blocked: str) -> None:
    real = builtins.__import__

    def fake(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == blocked or name.startswith(blocked + "."):
            raise ImportError(f"No module named {name!r}")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake)


@pytest.mark.parametrize("source,module", [(FP32, "onnxruntime"), (TFLITE, "ai_edge_litert")])
def test_missing_runtime_is_a_typed_error(monkeypatch: pytest.MonkeyPatch, source: Path, module: str) -> None:
    block_import(monkeypatch, module)
    with pytest.raises(ModelLoadError) as err:
        EdgeModel.load(source)
    assert err.value.reason == "missing_runtime"


def test_missing_and_unknown_files_are_typed_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError) as err:
        EdgeModel.load(tmp_path / "absent.onnx")
    assert err.value.reason == "missing_file"
    art = copy_artifact(FP32, tmp_path)
    odd = art.rename(tmp_path / "rhythm.pt")
    shutil.copy(manifest_path_for(FP32), manifest_path_for(odd))
    rewrite_manifest(odd, sha256=sha256_file(odd), size_bytes=odd.stat().st_size)
    with pytest.raises(ModelLoadError) as err:
        EdgeModel.load(odd)
    assert err.value.reason == "unsupported_format"
    manifest_path_for(art).write_text("{not json")
    shutil.copy(FP32, art)
    with pytest.raises(ModelLoadError) as err:
        EdgeModel.load(art)
    assert err.value.reason == "manifest_invalid"
