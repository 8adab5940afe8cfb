"""``cardiogate models retrain``: the gateway risk student's retrain loop against a real registry database.

Ten alarms are labelled false by a clinician through the API's own ``labelAlarm`` mutation (the app runs
in-process, no server); a retrain (``--fast``) beats the committed student and publishes a signed 1.1.0 whose
lineage counts them; once that version is the champion, a drill challenger trained on shuffled labels is
refused (exit 3) and nothing is added; the same retrain again publishes nothing (byte-identical).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

from tests.conftest import REPO

pytest.importorskip("xgboost", reason="the [learn] extra is not installed")
pytest.importorskip("onnx", reason="the [learn] extra is not installed")
pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
pytest.importorskip("sqlalchemy", reason="the [cloud] extra is not installed")
pytest.importorskip("fastapi", reason="the [cloud] extra is not installed")

from cardiogate.app.cli import main
from cardiogate.cloud.db import alarms_current
from cardiogate.cloud.registry.artifacts import FilesystemArtifactStore
from cardiogate.cloud.registry.models import CHAMPION, ModelRegistry
from cardiogate.cloud.registry.retrain import read_labels
from cardiogate.cloud.registry.signing import Signer, verify_envelope
from cardiogate.core.artifacts import MANIFEST_FORMAT, sha256_file
from cardiogate.models.haim.retrain import (
    EXIT_REFUSED,
    REPORT_FILE,
    ClinicianLabel,
    label_lineage,
    next_version,
    refused,
)
from tests.integration.api_testkit import T0, api_settings, client_for, database, gql, login, seed

pytestmark = [pytest.mark.training, pytest.mark.timeout(300)]
EICU = Path(os.environ.get("CARDIOGATE_DATA_DIR", REPO.parent / "shared" / "data")) / "eicu-demo"
needs_data = pytest.mark.skipif(not (EICU / "patient.csv.gz").is_file(),
                                reason=f"the eICU demo is not in {EICU} (set CARDIOGATE_DATA_DIR)")
NAME = "risk-student"
LABEL = 'mutation($p: ID!, $a: ID!) { labelAlarm(userId: $p, alarmId: $a, isTrue: false, note: "artefact") { isTrue } }'


def test_the_refusal_rule_the_versions_and_the_label_hash() -> None:
    assert refused(0.70, 0.69, 0.0) and not refused(0.70, 0.70, 0.0) and not refused(0.70, 0.69, 0.02)
    assert refused(0.70, float("nan"), 0.1) and not refused(float("nan"), 0.6, 0.0)
    assert (next_version(None), next_version("1.0.0"), next_version("1.4.2"), next_version("2")) == (
        "1.0.0", "1.1.0", "1.5.0", "2.1.0")
    labels = [ClinicianLabel("a1", "clin", False, 5, "tachycardia"), ClinicianLabel("a2", "clin", True, 6)]
    one, other = label_lineage(labels), label_lineage(labels[::-1])
    assert one == other and (one["true"], one["false"], one["alarms"]) == (1, 1, 2)
    assert one["by_condition"] == {"tachycardia": 1, "unknown": 1} and one["used_as_training_rows"] == 0
    assert label_lineage(labels[:1])["sha256"] != one["sha256"]


def test_the_retrain_cronjob_runs_a_command_that_parses() -> None:
    yaml = pytest.importorskip("yaml")
    from cardiogate.app.cli import parse_command
    from cardiogate.models.haim.retrain import build_parser

    docs = yaml.safe_load_all((REPO / "deploy" / "k8s" / "base" / "training.yaml").read_text(encoding="utf-8"))
    (job,) = [d for d in docs if d and d["kind"] == "CronJob" and d["metadata"]["name"] == "retrain"]
    (container,) = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    command = container["command"]
    assert command[0] == "cardiogate"
    ns = parse_command(command[1:])
    assert (ns.action, ns.func.__name__) == ("retrain", "_cmd_models_train")
    args = build_parser().parse_args(ns.args)
    assert not args.dry_run and not args.drill_shuffle_labels and not args.fast and args.tolerance == 0.0
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert {str(args.cloud_config), "/data/training", "/scratch"} <= mounts


def _label_ten_alarms_false(tmp_path: Path) -> list[str]:
    """Ten alarms of a ward-3 patient, each marked false by the ward's clinician through labelAlarm."""
    with database("sqlite", tmp_path) as engine:  # tmp_path/cloud.sqlite3, migrated to head
        seeded = seed(engine)
        alarms = [f"a-{seeded.p3}"] + [f"r{i}-{seeded.p3}" for i in range(9)]
        with engine.begin() as conn:
            for i, alarm in enumerate(alarms[1:]):
                conn.execute(alarms_current.insert().values(
                    alarm_id=alarm, patient=seeded.p3, device_id="w1", gateway="gw-3", condition="tachycardia",
                    priority="high", state="cleared", value=131.0 + i, limit=130.0, raised_time_ns=T0 - 10**12 + i,
                    cleared_time_ns=T0 - 10**11, updated_time_ns=T0 - 10**11))
        with client_for(engine, api_settings(tmp_path, rate_per_s=0)) as client:
            token = login(client, "clin3")
            for alarm in alarms:
                done = gql(client, token, LABEL, {"p": seeded.p3, "a": alarm}).json()
                assert "errors" not in done, done
        stored = read_labels(engine)
    assert len(stored) == 10 and not any(lab.is_true for lab in stored)
    return sorted(alarms)


@needs_data
def test_retrain_publishes_a_signed_version_with_label_lineage_and_the_drill_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    alarms = _label_ten_alarms_false(tmp_path)
    url, key, store = f"sqlite:///{tmp_path / 'cloud.sqlite3'}", tmp_path / "model-signing.key", tmp_path / "store"
    assert main(["models", "keygen", str(key)]) == 0
    common = ["models", "retrain", "--data", str(EICU), "--db", url, "--artifact-root", str(store), "--key", str(key),
              "--name", NAME, "--seed", "13", "--tolerance", "0.0", "--fast"]

    # 1. No champion in the registry: the committed risk-student-1.0.0 (the gateway's default model) is the one to
    #    beat, and the challenger is published as 1.1.0 (gateways refuse a version not newer than what they run).
    assert main([*common, "--work", str(tmp_path / "run1")]) == 0
    out = capsys.readouterr().out
    assert f"published {NAME} 1.1.0" in out and f"cardiogate models rollout start {NAME} 1.1.0" in out
    from cardiogate.cloud.registry.migrate import open_database

    engine = open_database(url)
    try:
        registry = ModelRegistry(engine, FilesystemArtifactStore(store))
        (record,) = registry.versions(NAME)
        body = verify_envelope(record.manifest, MANIFEST_FORMAT, [Signer.load(key).public_key])
        assert (record.version, record.task, body["task"], body["format"]) == ("1.1.0", "risk", "risk", "onnx")
        labels = body["lineage"]["labels"]
        assert (labels["labels"], labels["false"], labels["true"], labels["alarms"]) == (10, 10, 0, 10)
        assert labels["alarm_ids"] == alarms and len(labels["sha256"]) == 64 and labels["used_as_training_rows"] == 0
        assert len(body["lineage"]["data"]["sha256"]["patient"]) == 64 and body["lineage"]["seed"] == 13
        assert body["lineage"]["hyperparameters"]["teacher"]["rounds"] == 100  # --fast
        assert math.isfinite(body["metrics"]["auroc"]) and body["metrics"]["evaluation_set"]["stays"] > 300
        report = json.loads((tmp_path / "run1" / REPORT_FILE).read_text())
        assert report["decision"] == "published"
        assert (report["champion"]["version"], report["champion"]["source"]) == ("1.0.0", "committed")
        assert body["lineage"]["parent_version"] == "1.0.0" and body["lineage"]["champion_source"] == "committed"
        assert report["challenger"]["gate"]["auroc"] >= report["champion"]["metrics"]["auroc"]
        assert sha256_file(Path(report["artifact"])) == record.sha256
        first = report

        # 2. As a completed rollout would, 1.1.0 becomes the champion; the drill's noise model must be refused.
        registry.set_alias(NAME, CHAMPION, "1.1.0", actor="test", reason="rollout completed")
        assert main([*common, "--work", str(tmp_path / "drill"), "--drill-shuffle-labels"]) == EXIT_REFUSED
        out = capsys.readouterr().out
        assert "REFUSED" in out and "nothing published" in out
        assert [v.version for v in registry.versions(NAME)] == ["1.1.0"]
        assert registry.aliases(NAME) == {CHAMPION: "1.1.0"}
        drill = json.loads((tmp_path / "drill" / REPORT_FILE).read_text())
        assert drill["decision"] == "refused (drill)" and drill["exit_code"] == EXIT_REFUSED
        assert (drill["champion"]["version"], drill["champion"]["source"]) == ("1.1.0", "registry")
        assert "signature verified" in drill["champion"]["signature"]
        assert drill["challenger"]["gate"]["auroc"] < drill["champion"]["metrics"]["auroc"]
        assert drill["evaluation_set"] == first["evaluation_set"]  # the same fixed evaluation set
        assert not (tmp_path / "drill" / "artifact").exists()

        # 3. The same data and code again: byte-identical to the champion, so nothing new is published.
        assert main([*common, "--work", str(tmp_path / "again")]) == 0
        assert "unchanged" in capsys.readouterr().out
        assert [v.version for v in registry.versions(NAME)] == ["1.1.0"]
    finally:
        engine.dispose()
