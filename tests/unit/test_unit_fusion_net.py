"""HAIM's torch fusion network (models/haim/fusion_net.py): seeds, the scaler fitted on training rows only,
one encoder per modality block, NaNs, probabilities, torch imported lazily, and one short real-data run."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO

MODULE = REPO / "models" / "haim" / "fusion_net.py"
EICU = Path(os.environ.get("CARDIOGATE_DATA_DIR", REPO.parent / "shared" / "data")) / "eicu-demo"
pytestmark = pytest.mark.training


def test_the_module_has_no_top_level_torch_import() -> None:
    tree = ast.parse(MODULE.read_text(encoding="utf-8"))
    top = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
    names = {a.name for n in top if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module or "" for n in top if isinstance(n, ast.ImportFrom)}
    assert not any(n == "torch" or n.startswith("torch.") for n in names)


def test_the_module_imports_without_torch() -> None:
    code = ("import sys\nsys.modules['torch'] = None\n"  # `import torch` now raises ImportError
            "import cardiogate.models.haim.fusion_net as f\n"
            "assert 'torch' not in [m for m in sys.modules if sys.modules[m] is not None]\n"
            "print(f.NetConfig().loss)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO.parent, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "class-weighted BCE" in out.stdout
    no_torch = subprocess.run([sys.executable, "-c", "import sys; sys.modules['torch'] = None\n"
                               "from cardiogate.models.haim.fusion_net import main\n"
                               "sys.exit(main(['--data', '.']))"], cwd=REPO.parent, capture_output=True, text=True)
    assert no_torch.returncode == 2 and "torch is not installed" in no_torch.stderr


torch = pytest.importorskip("torch", reason="torch is not installed (the [models] extra)")

from cardiogate.models.haim.fusion_net import (  # noqa: E402
    NetConfig,
    encode,
    fit_net,
    fit_scaler,
    predict_net,
)

FAST = NetConfig(hidden_per_block=4, head_hidden=8, max_epochs=15, patience=5, batch_size=32)


def synthetic(n: int = 240, seed: int = 0) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Three blocks, the label driven by a and b; some NaNs in a and c."""
    rng = np.random.default_rng(seed)
    a, b, c = rng.normal(size=(n, 3)) * [1, 10, 100] + [0, 50, -3], rng.normal(size=(n, 5)), rng.normal(size=(n, 2))
    y = (a[:, 0] / 1 + b[:, 1] + rng.normal(size=n) > 1.0).astype(float)
    a[rng.random((n, 3)) < 0.2] = np.nan
    c[:, 1] = np.nan
    return {"a": a, "b": b, "c": c}, y


ROWS = np.arange(240)
FIT, TUNE, HELD = ROWS[:150], ROWS[150:190], ROWS[190:]


def test_same_seed_same_predictions_and_other_seed_differs() -> None:
    blocks, y = synthetic()
    p1 = predict_net(fit_net(blocks, y, FIT, TUNE, 7, FAST, "cpu"), blocks)
    p2 = predict_net(fit_net(blocks, y, FIT, TUNE, 7, FAST, "cpu"), blocks)
    p3 = predict_net(fit_net(blocks, y, FIT, TUNE, 8, FAST, "cpu"), blocks)
    np.testing.assert_array_equal(p1, p2)
    assert not np.array_equal(p1, p3)


def test_probabilities_in_the_unit_interval_and_nans_handled() -> None:
    blocks, y = synthetic()
    p = predict_net(fit_net(blocks, y, FIT, TUNE, 1, FAST, "cpu"), blocks)
    assert p.shape == (240,) and np.all(np.isfinite(p)) and np.all((p >= 0) & (p <= 1))
    all_nan = {k: np.full_like(v, np.nan) for k, v in blocks.items()}
    q = predict_net(fit_net(blocks, y, FIT, TUNE, 1, FAST, "cpu"), all_nan)
    assert np.all(np.isfinite(q)) and np.all((q >= 0) & (q <= 1))


def test_the_scaler_is_fitted_on_the_training_rows_only() -> None:
    blocks, y = synthetic()
    s = fit_scaler(blocks["a"], FIT)
    changed = blocks["a"].copy()
    changed[HELD] = 1e6
    changed[TUNE[0]] = np.nan
    t = fit_scaler(changed, FIT)
    for field in ("mean", "scale", "indicator_columns"):
        np.testing.assert_array_equal(getattr(s, field), getattr(t, field))
    np.testing.assert_allclose(s.mean, np.nanmean(blocks["a"][FIT], axis=0))
    z, seen = s.transform(blocks["a"][FIT]), ~np.isnan(blocks["a"][FIT])
    assert z.shape == (len(FIT), 6) and np.all(z[:, :3][~seen] == 0) and np.all(z[:, 3:] == ~seen)
    for col in range(3):
        assert abs(z[seen[:, col], col].mean()) < 1e-5 and abs(z[seen[:, col], col].std() - 1) < 1e-5
    # the net's own scalers ignore held-out rows: changing them changes neither the fit nor the training predictions
    net1 = fit_net(blocks, y, FIT, TUNE, 3, FAST, "cpu")
    other = {**blocks, "a": changed, "b": blocks["b"].copy()}
    other["b"][HELD] = -1e6
    other["a"][TUNE[0]] = blocks["a"][TUNE[0]]
    net2 = fit_net(other, y, FIT, TUNE, 3, FAST, "cpu")
    for b in ("a", "b", "c"):
        np.testing.assert_array_equal(net1.scalers[b].mean, net2.scalers[b].mean)
        np.testing.assert_array_equal(net1.scalers[b].scale, net2.scalers[b].scale)
    np.testing.assert_array_equal(predict_net(net1, blocks)[FIT], predict_net(net2, other)[FIT])


def test_each_block_has_its_own_encoder() -> None:
    blocks, y = synthetic()
    net = fit_net(blocks, y, FIT, TUNE, 2, FAST, "cpu")
    # a: 3 columns + 3 indicators (NaNs on the fitting rows); b: 5, no NaN; c: 2 + 1 indicator (column 1 all NaN)
    assert net.encoder_inputs == {"a": 6, "b": 5, "c": 3}
    assert net.module["head"][1].in_features == 3 * FAST.hidden_per_block
    dropped = fit_net({"a": blocks["a"], "b": blocks["b"]}, y, FIT, TUNE, 2, FAST, "cpu")
    assert dropped.encoder_inputs == {"a": 6, "b": 5}
    assert dropped.module["head"][1].in_features == 2 * FAST.hidden_per_block
    # changing one block's input changes only that block's encoding
    changed = {**blocks, "b": blocks["b"] + 1.0}
    e1, e2 = encode(net, blocks), encode(net, changed)
    np.testing.assert_array_equal(e1["a"], e2["a"])
    np.testing.assert_array_equal(e1["c"], e2["c"])
    assert not np.array_equal(e1["b"], e2["b"])


def test_it_learns_and_stops_early_on_the_tune_rows() -> None:
    blocks, y = synthetic(600, seed=4)
    fit, tune, held = np.arange(400), np.arange(400, 500), np.arange(500, 600)
    net = fit_net(blocks, y, fit, tune, 0, NetConfig(max_epochs=200, patience=10), "cpu")
    assert 1 <= net.best_epoch <= net.epochs_run < 200
    from cardiogate.models.haim.metrics import auroc

    assert auroc(y[held], predict_net(net, blocks)[held]) > 0.8


def test_overlapping_rows_and_a_single_class_are_refused() -> None:
    blocks, y = synthetic()
    with pytest.raises(ValueError, match="overlap"):
        fit_net(blocks, y, FIT, FIT[:5], 0, FAST, "cpu")
    with pytest.raises(ValueError, match="single class"):
        fit_net(blocks, np.zeros_like(y), FIT, TUNE, 0, FAST, "cpu")


@pytest.mark.skipif(not (EICU / "patient.csv.gz").is_file(),
                    reason=f"the eICU demo is not in {EICU} (set CARDIOGATE_DATA_DIR)")
def test_a_short_run_on_the_eicu_demo() -> None:
    pytest.importorskip("xgboost", reason="the [learn] extra is not installed")
    pytest.importorskip("sklearn", reason="the [learn] extra is not installed")
    from cardiogate.models.haim.eicu import load_cohort
    from cardiogate.models.haim.fusion_net import train_fusion_net
    from cardiogate.models.haim.train import held_out_ids

    cohort = load_cohort(EICU, log=lambda _m: None)
    result = train_fusion_net(cohort, 13, config=NetConfig(max_epochs=3, patience=3), device="cpu",
                              log=lambda _m: None)
    held = result["held_out"]
    assert held["stays"] + held["excluded_without_apache_iva"] == len(held_out_ids(cohort, 13, 0.3))
    assert result["split"]["fit_stays"] + result["split"]["tune_stays"] == result["split"]["training_stays"]
    assert result["probabilities_in_unit_interval"] and result["net"]["epochs_run"] == 3
    for key in ("fusion_net", "teacher", "apache_iva"):
        assert held[key]["n"] == held["stays"] and 0.0 <= held[key]["auroc"] <= 1.0
    assert set(result["net"]["encoder_inputs"]) == {"demo", "ts", "codes", "notes", "aps"}
