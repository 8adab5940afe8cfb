"""The eICU risk models (issue 13): metrics, leakage at the prediction time, determinism, APACHE IVa kept out
of the features, and ``cardiogate eval risk`` on the committed artifacts."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO

pytest.importorskip("xgboost", reason="the [learn] extra is not installed")
pytest.importorskip("sklearn", reason="the [learn] extra is not installed")
pd = pytest.importorskip("pandas", reason="the [learn] extra is not installed")

from cardiogate.models.haim import ARTIFACTS_DIR  # noqa: E402
from cardiogate.models.haim.eicu import EVENT_TABLES, STAY, load_cohort, row_time  # noqa: E402
from cardiogate.models.haim.embeddings import MODALITIES, embed, fit_vocab  # noqa: E402
from cardiogate.models.haim.metrics import auprc, auroc, bootstrap_ci, summary  # noqa: E402
from cardiogate.models.haim.train import RiskModels, train  # noqa: E402

pytestmark = pytest.mark.training
EICU = Path(os.environ.get("CARDIOGATE_DATA_DIR", REPO.parent / "shared" / "data")) / "eicu-demo"
needs_data = pytest.mark.skipif(not (EICU / "patient.csv.gz").is_file(),
                                reason=f"the eICU demo is not in {EICU} (set CARDIOGATE_DATA_DIR)")
PREDICTED = ("predictedicumortality", "predictediculos", "predictedhospitalmortality", "predictedhospitallos",
             "acutephysiologyscore", "apachescore", "predventdays")


def test_metrics_on_a_known_ranking() -> None:
    y = np.array([0, 0, 1, 0, 1, 1])
    assert auroc(y, [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]) == pytest.approx(8 / 9)
    assert auroc(y, [0.1, 0.1, 0.9, 0.1, 0.9, 0.9]) == 1.0
    assert auroc(y, [0.5] * 6) == 0.5
    assert auprc([0, 1, 1], [0.1, 0.9, 0.8]) == 1.0
    assert auprc([1, 0, 1], [0.9, 0.8, 0.1]) == pytest.approx((1.0 + 2 / 3) / 2)
    rng = np.random.default_rng(0)
    yy = rng.integers(0, 2, 300)
    pp = yy * 0.6 + rng.random(300)
    point, (lo, hi) = auroc(yy, pp), bootstrap_ci(yy, pp, auroc)
    assert lo < point < hi and hi - lo < 0.2
    assert bootstrap_ci(yy, pp, auroc) == (lo, hi)  # fixed seed
    s = summary(yy, pp)
    assert s["auprc_ci"][0] < s["auprc"] < s["auprc_ci"][1] and s["n"] == 300


def _copy(src: Path, dst: Path) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    for f in src.glob("*.csv.gz"):
        os.symlink(f, dst / f.name)
    return dst


def _rewrite(folder: Path, table: str, frame: pd.DataFrame) -> None:
    (folder / f"{table}.csv.gz").unlink()
    frame.to_csv(folder / f"{table}.csv.gz", index=False)


@pytest.fixture(scope="module")
def chosen() -> list[int]:
    """Stays still in the unit at 24 h (so they have rows on both sides of the prediction time)."""
    cohort = load_cohort(EICU)
    return [s.stay_id for s in cohort.samples if s.eligible][::9]


def _all_embeddings(folder: Path) -> tuple[dict[str, np.ndarray], list[int]]:
    cohort = load_cohort(folder)
    ids = [s.stay_id for s in cohort.samples if s.eligible and s.apache_iva_mortality is not None]
    vocab = fit_vocab(cohort, ids, seed=0)  # fitted on the (possibly perturbed) data itself: it must not move
    emb = embed(cohort, ids, vocab)
    return {m: emb.blocks[m][1] for m in MODALITIES}, ids


@needs_data
def test_rows_after_the_prediction_time_never_move_the_features(tmp_path: Path, chosen: list[int]) -> None:
    base, ids = _all_embeddings(EICU)
    folder = _copy(EICU, tmp_path / "after")
    rng = np.random.default_rng(1)
    changed = 0
    for table, (offsets, _cols) in EVENT_TABLES.items():
        frame = pd.read_csv(EICU / f"{table}.csv.gz", low_memory=False)
        limit = frame[STAY].map(dict.fromkeys(chosen, 1440))
        after = (row_time(frame, table) > limit).to_numpy()
        if not after.any():
            continue
        for col in frame.columns:
            if col in (STAY, *offsets) or col.endswith("id"):
                continue
            if pd.api.types.is_numeric_dtype(frame[col]) and not pd.api.types.is_bool_dtype(frame[col]):
                frame.loc[after, col] = frame.loc[after, col].fillna(0) * 3 + rng.integers(1, 50, after.sum())
            else:
                frame[col] = frame[col].astype(object)
                frame.loc[after, col] = [f"perturbed {i} sepsis arrest" for i in range(after.sum())]
        added = frame[after].copy()  # and new rows, after the prediction time, for the same stays
        for o in offsets:
            added[o] = 1441 + rng.integers(0, 5000, len(added))
        frame = pd.concat([frame, added], ignore_index=True)
        changed += int(after.sum())
        _rewrite(folder, table, frame)
    # the future in the patient table: discharge status, place, weight, time
    pat = pd.read_csv(EICU / "patient.csv.gz")
    sel = pat[STAY].isin(chosen)
    for col in ("hospitaldischargestatus", "unitdischargestatus", "hospitaldischargelocation",
                "unitdischargelocation"):
        pat.loc[sel, col] = "Expired"
    pat.loc[sel, "dischargeweight"] = 1.0
    pat.loc[sel, "hospitaldischargeoffset"] = 99999
    _rewrite(folder, "patient", pat)
    assert changed > 1000
    moved, ids2 = _all_embeddings(folder)
    assert ids2 == ids
    for m in MODALITIES:
        np.testing.assert_array_equal(moved[m], base[m], err_msg=f"modality {m} moved")


@needs_data
def test_a_row_before_the_prediction_time_does_move_them(tmp_path: Path, chosen: list[int]) -> None:
    base, _ids = _all_embeddings(EICU)
    folder = _copy(EICU, tmp_path / "before")
    vitals = pd.read_csv(EICU / "vitalAperiodic.csv.gz")
    before = (vitals[STAY].isin(chosen) & (vitals["observationoffset"] <= 1440)).to_numpy()
    vitals.loc[before, "noninvasivesystolic"] = vitals.loc[before, "noninvasivesystolic"] + 40
    _rewrite(folder, "vitalAperiodic", vitals)
    dx = pd.read_csv(EICU / "diagnosis.csv.gz")
    early = (dx[STAY].isin(chosen) & (dx["diagnosisoffset"] <= 1440)).to_numpy()
    dx.loc[early, "diagnosisstring"] = "cardiovascular|shock|septic shock"
    _rewrite(folder, "diagnosis", dx)
    moved, _ = _all_embeddings(folder)
    assert not np.array_equal(moved["ts"], base["ts"])
    assert not np.array_equal(moved["codes"], base["codes"])


@needs_data
def test_apache_predictions_never_reach_the_features(tmp_path: Path) -> None:
    models = RiskModels.load()
    for name in models.manifest["features"]["teacher"] + models.manifest["features"]["student"]:
        assert not any(p in name.lower() for p in PREDICTED), name
    cohort = load_cohort(EICU)
    ids = [s.stay_id for s in cohort.samples if s.eligible]
    before = models.score(cohort, ids)
    folder = _copy(EICU, tmp_path / "apache")
    apr = pd.read_csv(EICU / "apachePatientResult.csv.gz")
    rng = np.random.default_rng(2)
    for col in PREDICTED:
        apr[col] = rng.random(len(apr))
    _rewrite(folder, "apachePatientResult", apr)
    perturbed = load_cohort(folder)
    assert [s.apache_iva_mortality for s in perturbed.samples] != [s.apache_iva_mortality for s in cohort.samples]
    after = models.score(perturbed, ids)
    np.testing.assert_array_equal(after["teacher"], before["teacher"])
    np.testing.assert_array_equal(after["student"], before["student"])


@pytest.fixture(scope="module")
def small_eicu(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About a third of the patients, every table cut to their stays (for a quick training run)."""
    out = tmp_path_factory.mktemp("eicu-small")
    pat = pd.read_csv(EICU / "patient.csv.gz")
    pids = sorted(pat["uniquepid"].unique())[::3]
    stays = set(pat.loc[pat["uniquepid"].isin(pids), STAY])
    for f in EICU.glob("*.csv.gz"):
        frame = pd.read_csv(f, low_memory=False)
        if STAY in frame.columns:
            frame = frame[frame[STAY].isin(stays)]
        frame.to_csv(out / f.name, index=False)
    return out


@needs_data
def test_the_same_seed_gives_identical_metrics(small_eicu: Path, tmp_path: Path) -> None:
    first = train(small_eicu, tmp_path / "a", seed=5, log=lambda _m: None)
    second = train(small_eicu, tmp_path / "b", seed=5, log=lambda _m: None)
    assert first["metrics"] == second["metrics"]
    assert (tmp_path / "a" / "teacher.json").read_bytes() == (tmp_path / "b" / "teacher.json").read_bytes()
    assert (tmp_path / "a" / "student.json").read_bytes() == (tmp_path / "b" / "student.json").read_bytes()
    assert first["metrics"]["held_out"]["stays"] > 30


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    from cardiogate.app.cli import main

    out = tmp_path_factory.mktemp("eval") / "risk.json"
    assert main(["eval", "risk", "--data", str(EICU), "--json", str(out), "--split", "held-out"]) == 0
    result: dict[str, object] = json.loads(out.read_text())
    return result


@needs_data
def test_eval_risk_scores_the_committed_artifacts(evaluated: dict[str, object]) -> None:
    manifest = json.loads((ARTIFACTS_DIR / "manifest.json").read_text())
    assert (ARTIFACTS_DIR / "teacher.json").stat().st_size < 2_000_000
    for key in ("apache_iva", "teacher", "student"):
        entry = evaluated[key]
        assert isinstance(entry, dict)
        assert {"auroc", "auroc_ci", "auprc", "auprc_ci", "n"} <= set(entry)
        assert entry["n"] == evaluated["stays"]
        # the committed artifacts reproduce the numbers the training run measured on its held-out split
        assert entry["auroc"] == pytest.approx(manifest["metrics"]["held_out"][key]["auroc"], abs=1e-9)
    assert evaluated["stays"] == manifest["metrics"]["held_out"]["stays"] > 100


@needs_data
@pytest.mark.xfail(strict=True, reason="measured on the held-out split: teacher AUROC 0.750 < APACHE IVa 0.819 "
                                      "(20 deaths; CIs overlap); see models/artifacts/risk/MODEL_CARD.md")
def test_the_teacher_matches_apache_iva_on_held_out_stays(evaluated: dict[str, dict[str, float]]) -> None:
    assert evaluated["teacher"]["auroc"] >= evaluated["apache_iva"]["auroc"]


@needs_data
@pytest.mark.xfail(strict=True, reason="measured on the held-out split: student AUROC 0.649 vs teacher 0.750")
def test_the_student_is_within_0_05_auroc_of_the_teacher(evaluated: dict[str, dict[str, float]]) -> None:
    assert evaluated["student"]["auroc"] >= evaluated["teacher"]["auroc"] - 0.05


@needs_data
def test_train_risk_is_registered() -> None:
    from cardiogate.app.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["models", "train-risk", "--help"])
    assert exc.value.code == 0  # the command parsed; nothing trained
