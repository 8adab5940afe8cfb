"""The rhythm model's training side: preprocessing parity with the gateway, the split, the artifacts."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from cardiogate.edge.inference.manifest import manifest_path_for, sha256_file  # noqa: E402
from cardiogate.edge.inference.preprocess import to_windows  # noqa: E402
from cardiogate.models.rhythm.data import load_records, read_reference, reference_sha256  # noqa: E402
from cardiogate.models.rhythm.net import NetConfig, RhythmNet, WithSoftmax  # noqa: E402
from cardiogate.models.rhythm.preprocess import windows  # noqa: E402
from cardiogate.models.rhythm.spec import default_spec  # noqa: E402
from cardiogate.models.rhythm.split import split_records, split_with_tune, training_data_hash  # noqa: E402
from tests.conftest import REPO  # noqa: E402

DATA = Path(os.environ.get("CARDIOGATE_DATA_DIR", REPO.parent / "shared" / "data")) / "cinc2017"
HAVE_DATA = (DATA / "REFERENCE.csv").is_file() and (DATA / "training2017.tar.gz").is_file()
ARTIFACTS = REPO / "models" / "artifacts" / "rhythm"
MAX_BYTES = 300_000


def noisy_signal(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return (500 * np.sin(t / 40.0) ** 21 + rng.normal(0, 60, n) + 300 * np.sin(t / 900.0)).astype(np.int16)


@pytest.mark.parametrize("rate,seconds", [(300.0, 9.0), (300.0, 30.0), (300.0, 61.0), (250.0, 47.3), (130.0, 12.0)])
def test_training_and_gateway_preprocessing_agree_on_synthetic_signals(rate: float, seconds: float) -> None:
    x = noisy_signal(int(rate * seconds), seed=int(seconds))
    spec = default_spec()
    ours, gateway = windows(x, rate, spec), to_windows(x, rate, spec)
    assert ours.dtype == gateway.dtype == np.float32
    assert ours.shape == gateway.shape and ours.shape[1:] == (1, spec["window_samples"])
    # the gateway resamples without scipy.signal: its polyphase sums run in another order (~1e-14 apart)
    np.testing.assert_allclose(ours, gateway, rtol=0, atol=1e-6)


@pytest.mark.skipif(not HAVE_DATA, reason="CinC 2017 data not present")
def test_training_and_gateway_preprocessing_agree_on_records() -> None:
    names = {"A00001", "A00004", "A00005", "A00008", "A00022", "A00034"}
    records = load_records(DATA, names)
    assert {r.name for r in records} <= names and len(records) >= 3
    spec = default_spec()
    for record in records:
        np.testing.assert_allclose(windows(record.ecg, record.fs, spec), to_windows(record.ecg, record.fs, spec),
                                   rtol=0, atol=1e-6)


def fake_labels() -> dict[str, str]:
    rng = np.random.default_rng(1)
    return {f"R{i:05d}": str(rng.choice(["N", "N", "N", "A", "O", "O", "~"])) for i in range(700)}


@pytest.mark.parametrize("source", ["synthetic", "cinc2017"])
def test_split_is_deterministic_stratified_and_by_record(source: str) -> None:
    if source == "cinc2017" and not HAVE_DATA:
        pytest.skip("CinC 2017 data not present")
    labels = read_reference(DATA) if source == "cinc2017" else fake_labels()
    first = split_records(labels, seed=2017)
    again = split_records(dict(reversed(list(labels.items()))), seed=2017)
    assert first == again
    train, val = set(first["train"]), set(first["validation"])
    assert not train & val and train | val == set(labels)
    for label in set(labels.values()):
        n = sum(1 for v in labels.values() if v == label)
        assert sum(1 for name in val if labels[name] == label) == round(0.2 * n)
    assert split_records(labels, seed=7) != first
    assert training_data_hash("x", first) == training_data_hash("x", again) != training_data_hash("y", first)


def test_tflite_writer_matches_torch() -> None:
    pytest.importorskip("ai_edge_litert")
    from ai_edge_litert.interpreter import Interpreter

    from cardiogate.models.rhythm.tflite import rhythm_tflite

    torch.manual_seed(0)
    net = RhythmNet(NetConfig())
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm1d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    net.eval()
    window = 1000
    interp = Interpreter(model_content=rhythm_tflite(net, window), num_threads=1)
    interp.allocate_tensors()
    x = np.random.default_rng(0).normal(size=(1, 1, window)).astype(np.float32)
    interp.set_tensor(interp.get_input_details()[0]["index"], x)
    interp.invoke()
    got = interp.get_tensor(interp.get_output_details()[0]["index"])
    with torch.no_grad():
        want = WithSoftmax(net)(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, want, atol=1e-5)


def shipped() -> list[Path]:
    return sorted(p for p in ARTIFACTS.glob("*") if p.suffix in (".onnx", ".tflite"))


@pytest.mark.skipif(not shipped(), reason="rhythm artifacts not built")
def test_manifests_match_the_shipped_files_and_sizes_fit() -> None:
    found = shipped()
    assert {p.name for p in found} >= {"rhythm-v1.fp32.onnx", "rhythm-v1.int8.onnx", "rhythm-v1.tflite"}
    spec = default_spec()
    for artifact in found:
        manifest = json.loads(manifest_path_for(artifact).read_text())
        assert manifest["artifact"] == artifact.name
        assert manifest["size_bytes"] == artifact.stat().st_size
        if manifest["precision"] == "int8" or artifact.name.startswith("rhythm-v1"):
            assert manifest["size_bytes"] < MAX_BYTES
        assert manifest["sha256"] == sha256_file(artifact)
        assert manifest["task"] == "rhythm" and manifest["classes"] == ["N", "A", "O", "~"]
        assert manifest["input"]["preprocess"] == spec
        assert manifest["metrics"]["validation"]["mean_f1_nao"] > 0.5
        if HAVE_DATA:
            raw = json.loads((ARTIFACTS / "split.json").read_text())
            split = {"train": raw["train"], "validation": raw["validation"]}
            if manifest["split"].get("epoch_selection") == "tune":  # v2: fit / tune / validation
                split = split_with_tune(read_reference(DATA))
            assert manifest["training_data_hash"] == training_data_hash(reference_sha256(DATA), split)
