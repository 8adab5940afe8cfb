"""The distilled rhythm student: the data cache, the splits, the shipped v2 artifacts, and (with torch) the
distillation loss and that one seed gives one result on the CPU."""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path

import numpy as np
import pytest

from cardiogate.edge.inference.manifest import manifest_path_for, sha256_file
from cardiogate.models.rhythm import CLASSES
from cardiogate.models.rhythm.cache import SCALE, CacheMismatch, SignalSet, load, save
from cardiogate.models.rhythm.data import read_reference
from cardiogate.models.rhythm.spec import default_spec
from cardiogate.models.rhythm.split import split_records, split_with_tune
from tests.conftest import REPO

pytestmark = pytest.mark.training

ARTIFACTS = REPO / "models" / "artifacts" / "rhythm"
DATA = Path(os.environ.get("CARDIOGATE_DATA_DIR", REPO.parent / "shared" / "data")) / "cinc2017"
INT8 = ARTIFACTS / "rhythm-v2.int8.onnx"
FP32 = ARTIFACTS / "rhythm-v2.fp32.onnx"


def synthetic_set(n: int = 40, seed: int = 0) -> SignalSet:
    rng = np.random.default_rng(seed)
    signals, labels = {}, {}
    for i in range(n):
        name = f"S{i:05d}"
        label = CLASSES[i % len(CLASSES)]
        t = np.arange(int(rng.integers(1200, 5000)))
        period = 100 if label != "A" else int(rng.integers(60, 140))
        x = np.sin(2 * np.pi * t / period) ** 15 + rng.normal(0, 0.05 if label != "~" else 0.8, t.size)
        signals[name] = np.clip(x / np.percentile(np.abs(x), 99), -8, 8)
        labels[name] = label
    return SignalSet(signals, labels, "0" * 64, default_spec())


def test_the_cache_round_trips_within_its_resolution_and_refuses_another_spec(tmp_path: Path) -> None:
    ds = synthetic_set()
    path = save(ds, tmp_path / "c.npz")
    back = load(path, reference="0" * 64)
    assert back.labels == ds.labels and set(back.signals) == set(ds.signals)
    worst = max(float(np.max(np.abs(back.signals[n] - ds.signals[n]))) for n in ds.signals)
    assert worst <= 0.5 / SCALE + 1e-12
    other = default_spec()
    other["sample_rate_hz"] = 250
    with pytest.raises(CacheMismatch, match="another spec"):
        load(path, spec=other)
    with pytest.raises(CacheMismatch, match="another REFERENCE"):
        load(path, reference="1" * 64)


def test_the_tune_split_is_carved_from_training_and_validation_is_v1s() -> None:
    labels = {f"A{i:05d}": CLASSES[i % 4] if i % 7 else "A" for i in range(900)}
    parts = split_with_tune(labels)
    outer = split_records(labels)
    assert parts["validation"] == outer["validation"]
    assert sorted(parts["fit"] + parts["tune"]) == outer["train"]
    assert not set(parts["tune"]) & set(parts["fit"])
    tune_classes = {labels[n] for n in parts["tune"]}
    assert tune_classes == set(CLASSES)  # stratified: every class is there to select on


@pytest.mark.skipif(not INT8.is_file(), reason="the v2 student is not built")
def test_the_shipped_student_fits_the_budget_and_says_how_it_was_selected() -> None:
    manifest = json.loads(manifest_path_for(INT8).read_text())
    assert manifest["sha256"] == sha256_file(INT8)
    assert manifest["size_bytes"] == INT8.stat().st_size <= 300 * 1024
    assert manifest["precision"] == "int8" and manifest["version"] == "2.0.0"
    assert manifest["split"]["epoch_selection"] == "tune"
    assert manifest["input"]["preprocess"] == default_spec()
    fp32 = json.loads(manifest_path_for(FP32).read_text())["metrics"]["validation"]
    int8 = manifest["metrics"]["validation"]
    assert abs(int8["mean_f1_nao"] - fp32["mean_f1_nao"]) < 0.02  # quantisation costs little
    assert fp32["latency_ms_p50"] / int8["latency_ms_p50"] >= 2.0  # as measured at export, one thread


@pytest.mark.skipif(not INT8.is_file(), reason="the v2 student is not built")
def test_int8_and_fp32_students_agree_on_ecg_like_windows() -> None:
    ort = pytest.importorskip("onnxruntime")
    width = default_spec()["window_samples"]
    ds = synthetic_set(12, seed=3)
    wins = np.stack([np.resize(x, width).astype(np.float32) for x in ds.signals.values()])[:, None, None, :]
    runs = {}
    for path in (FP32, INT8):
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        runs[path.name] = np.concatenate([session.run(None, {"ecg": w})[0] for w in wins])
    a, b = runs[FP32.name], runs[INT8.name]
    np.testing.assert_allclose(a.sum(axis=1), 1.0, atol=1e-4)
    assert np.max(np.abs(a - b)) < 0.15
    assert (a.argmax(axis=1) == b.argmax(axis=1)).mean() >= 0.9


@pytest.mark.skipif(not DATA.is_dir(), reason="CinC 2017 is not in ../shared/data")
def test_the_shipped_student_was_validated_on_v1s_validation_records() -> None:
    if not INT8.is_file():
        pytest.skip("the v2 student is not built")
    manifest = json.loads(manifest_path_for(INT8).read_text())
    parts = split_with_tune(read_reference(DATA))
    assert manifest["split"]["validation_records"] == len(parts["validation"])
    assert manifest["metrics"]["validation"]["records"] == len(parts["validation"])


def test_distillation_loss_is_the_label_loss_at_alpha_1_and_zero_kl_when_logits_match() -> None:
    torch = pytest.importorskip("torch")
    from cardiogate.models.rhythm.train import distillation_loss

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(8, 4, generator=g)
    target = torch.randint(0, 4, (8,), generator=g)
    ce = torch.nn.CrossEntropyLoss()
    assert torch.allclose(distillation_loss(logits, target, logits + 5.0, ce, 3.0, 1.0), ce(logits, target))
    assert float(distillation_loss(logits, target, logits, ce, 3.0, 0.0)) == pytest.approx(0.0, abs=1e-6)
    assert float(distillation_loss(logits, target, -logits, ce, 3.0, 0.0)) > 0.1


def test_one_cycle_schedule_warms_up_peaks_and_anneals() -> None:
    pytest.importorskip("torch")
    from cardiogate.models.rhythm.train import one_cycle_lr

    lrs = [one_cycle_lr(p / 100, 1e-3) for p in range(101)]
    assert lrs[0] == pytest.approx(1e-3 / 25)
    assert max(lrs) == pytest.approx(1e-3) and int(np.argmax(lrs)) == 15
    assert lrs[-1] < 1e-6 and all(b <= a for a, b in itertools.pairwise(lrs[15:]))
    assert one_cycle_lr(2.0, 1e-3) == lrs[-1]  # past the budget: stays at the floor


def test_the_same_seed_gives_the_same_student_on_the_cpu() -> None:
    torch = pytest.importorskip("torch")
    from cardiogate.models.rhythm.net import NetConfig, RhythmNet
    from cardiogate.models.rhythm.train import TrainConfig, train

    ds = synthetic_set(24)
    names = sorted(ds.signals)
    xs = [ds.signals[n] for n in names]
    ys = [CLASSES.index(ds.labels[n]) for n in names]
    tiny = NetConfig(stem_channels=4, widths=(4, 6), kernels=(5, 3), dilations=(1, 2))
    teacher = RhythmNet(tiny).eval()
    config = TrainConfig(epochs=2, batch_size=8, seed=7, flip_prob=0.5)
    cpu = torch.device("cpu")
    runs = [train(xs[:16], ys[:16], xs[16:], ys[16:], ds.spec, cpu, tiny, config, log=lambda _: None,
                  teacher=teacher) for _ in range(2)]
    assert [h["loss"] for h in runs[0].history] == [h["loss"] for h in runs[1].history]
    assert [h["mean_f1_nao"] for h in runs[0].history] == [h["mean_f1_nao"] for h in runs[1].history]
    for a, b in zip(runs[0].net.state_dict().values(), runs[1].net.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    other = train(xs[:16], ys[:16], xs[16:], ys[16:], ds.spec, cpu, tiny, TrainConfig(epochs=2, batch_size=8, seed=8),
                  log=lambda _: None, teacher=teacher)
    assert [h["loss"] for h in other.history] != [h["loss"] for h in runs[0].history]
