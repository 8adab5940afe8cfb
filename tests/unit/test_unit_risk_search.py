"""The teacher's hyperparameter search (Ray Tune + ASHA): training patients only, every trial logged,
ASHA stopping weak trials, and one seed giving one result on the CPU."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest.importorskip("ray", reason="the [learn] extra is not installed")

from cardiogate.models.haim.eicu import load_cohort
from cardiogate.models.haim.search import grow, search, search_data
from cardiogate.models.haim.train import HOLDOUT_FRACTION, is_held_out
from tests.conftest import REPO

pytestmark = [pytest.mark.training, pytest.mark.timeout(300)]

DATA = Path(os.environ.get("CARDIOGATE_DATA_DIR", REPO.parent / "shared" / "data")) / "eicu-demo"


@pytest.fixture(scope="module")
def ray_local() -> object:
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=128 * 1024 * 1024,
             configure_logging=False)
    yield ray
    ray.shutdown()


@pytest.mark.skipif(not DATA.is_dir(), reason="the eICU demo is not in ../shared/data")
def test_search_logs_every_trial_stops_weak_ones_and_repeats_itself(ray_local: object, tmp_path: Path) -> None:
    first = search(DATA, seed=13, trials=4, max_rounds=100, step_rounds=25, storage=tmp_path / "r",
                   log=lambda _: None)
    cohort = load_cohort(DATA, log=lambda _: None)
    training = [s for s in cohort.samples if s.eligible and not is_held_out(s.patient_id, 13, HOLDOUT_FRACTION)]
    assert first["fit_stays"] + first["validation_stays"] == len(training)  # no held-out stay in any trial
    assert len(first["trials_log"]) == 4 and all(t["error"] is None for t in first["trials_log"])
    assert all(len(t["auroc_per_step"]) == t["rounds"] // 25 for t in first["trials_log"])
    assert any(t["stopped_early"] for t in first["trials_log"])  # ASHA cut at least one at its grace period
    assert first["rounds_trained"] < first["rounds_without_asha"]
    assert first["best"]["best_auroc"] == max(t["best_auroc"] for t in first["trials_log"])
    # one seed, one result: the best trial regrown outside Ray gives the same validation curve
    best = first["best"]
    again = [round(v, 4) for _, v in grow(best["config"], *search_data(DATA, 13, log=lambda _: None), 25,
                                          best["rounds"])]
    assert again == best["auroc_per_step"]
