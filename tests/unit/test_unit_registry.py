"""The `models` CLI and the artifact stores, on an embedded SQLite database; and the shipped rhythm
model taking the whole path: published, signed, fetched, verified, switched and run by cardiogate.edge.inference."""

from __future__ import annotations

import io
import json
import re
import shutil
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any, ClassVar

import pytest

from cardiogate.cloud.registry.artifacts import FilesystemArtifactStore, S3ArtifactStore
from cardiogate.cloud.registry.cli import main
from cardiogate.cloud.registry.fleet import FleetRegistry
from cardiogate.cloud.registry.migrate import open_database
from cardiogate.cloud.registry.models import ModelRegistry
from cardiogate.cloud.registry.signing import Signer
from cardiogate.cloud.rollout.controller import RolloutController
from cardiogate.edge.updater import EcgWindow, ModelStore, TrustedKeys, Updater, UpdaterConfig
from cardiogate.proto.v1 import rollout_pb2 as rpb
from tests.conftest import REPO

RHYTHM = REPO / "models" / "artifacts" / "rhythm" / "rhythm-v1.int8.onnx"


LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d\S* \[")


def run(*argv: str) -> tuple[int, str]:
    """Exit code and what the CLI printed (log lines, which the host CLI sends to stderr, left out)."""
    out = io.StringIO()
    with redirect_stdout(out):
        code = main(list(argv))
    return code, "".join(line for line in out.getvalue().splitlines(keepends=True) if not LOG_LINE.match(line))


@pytest.fixture
def cli(tmp_path: Path) -> list[str]:
    return ["--database-url", f"sqlite:///{tmp_path / 'cloud.sqlite3'}", "--artifact-root", str(tmp_path / "store"),
            "--key", str(tmp_path / "keys" / "signing.key"), "--actor", "tester"]


def test_cli_publish_promote_rollout_status(cli: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(*cli[:-4], "keygen", str(tmp_path / "keys" / "signing.key"))
    assert code == 0 and "key id" in out and json.loads(out[out.index("{"):])["keys"][0]["public_key"]
    assert main([*cli[:-4], "keygen", str(tmp_path / "keys" / "signing.key")]) == 1  # never overwrites
    assert "never overwritten" in capsys.readouterr().err
    v1 = tmp_path / "v1.json"
    v1.write_text(json.dumps({"kind": "rule", "threshold_bpm": 100}))
    code, out = run(*cli, "publish", str(v1), "--name", "rhythm", "--version", "1.0.0", "--task", "rhythm",
                    "--metrics", '{"f1": 0.8}', "--code-version", "git:abc")
    assert code == 0 and "published rhythm 1.0.0" in out
    assert run(*cli, "promote", "rhythm", "1.0.0")[0] == 0
    v2 = tmp_path / "v2.json"
    v2.write_text(json.dumps({"kind": "rule", "threshold_bpm": 104}))
    assert run(*cli, "publish", str(v2), "--name", "rhythm", "--version", "1.1.0", "--task", "rhythm")[0] == 0
    code, out = run(*cli, "list")
    assert "rhythm 1.0.0" in out and "[champion]" in out and "parent 1.0.0" in out

    engine = open_database(cli[1])
    fleet = FleetRegistry(engine)
    fleet.add_site("ward-a")
    for i in range(4):
        fleet.add_gateway(f"gw-{i}", "ward-a", ["pi5"])
    engine.dispose()
    code, out = run(*cli, "rollout", "start", "rhythm", "1.1.0", "--site", "ward-a", "--canary-share", "0.25",
                    "--min-devices", "1", "--bake-s", "600", "--min-agreement", "0.95", "--canary", "gw-3")
    assert code == 0 and "running" in out and "sizes [1, 2, 4]" in out
    rollout_id = out.split()[0]
    assert run(*cli, "rollout", "pause", rollout_id, "--reason", "night")[1].strip() == f"{rollout_id}: paused"
    assert run(*cli, "rollout", "resume", rollout_id)[0] == 0
    code, out = run(*cli, "status", rollout_id)
    assert "gw-3" in out and "history:" in out and "paused by tester" in out
    doc = json.loads(run(*cli, "status", "--json")[1])
    assert doc[0]["rollout_id"] == rollout_id and doc[0]["plan"]["gates"]["min_agreement"] == 0.95
    assert doc[0]["members"][0]["gateway_id"] == "gw-3"  # the named canary goes first
    assert [e["kind"] for e in doc[0]["history"]] == ["started", "paused", "resumed"]
    assert run(*cli, "rollout", "abort", rollout_id, "--reason", "changed my mind")[0] == 0
    assert main([*cli, "rollout", "abort", rollout_id]) == 1  # already aborted: an error, said plainly
    assert "is not running or paused" in capsys.readouterr().err
    assert main([*cli, "publish", str(v1), "--name", "rhythm", "--version", "1.0.5", "--task", "rhythm"]) == 1
    assert "not newer" in capsys.readouterr().err


def test_filesystem_store_reads_ranges_and_refuses_escapes(tmp_path: Path) -> None:
    store = FilesystemArtifactStore(tmp_path / "store")
    src = tmp_path / "a.bin"
    src.write_bytes(bytes(range(256)))
    uri = store.put("rhythm/1.0.0/a.bin", src)
    assert uri.startswith("file://") and store.exists("rhythm/1.0.0/a.bin") and store.size("rhythm/1.0.0/a.bin") == 256
    assert store.read("rhythm/1.0.0/a.bin", 250, 100) == bytes(range(250, 256))
    for bad in ("../x", "/etc/passwd", "a//b", ""):
        with pytest.raises(ValueError):
            store.put(bad, src)


class FakeS3:
    """Just enough of boto3's S3 client for the store's calls."""

    class NotFound(Exception):
        response: ClassVar[dict[str, dict[str, str]]] = {"Error": {"Code": "404"}}

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], bytes] = {}

    def put_object(self, Bucket: str, Key: str, Body: Any) -> None:  # boto3's argument names
        self.objects[(Bucket, Key)] = Body.read()

    def head_object(self, Bucket: str, Key: str) -> dict[str, int]:
        if (Bucket, Key) not in self.objects:
            raise self.NotFound()
        return {"ContentLength": len(self.objects[(Bucket, Key)])}

    def get_object(self, Bucket: str, Key: str, Range: str) -> dict[str, Any]:
        first, last = (int(x) for x in Range.removeprefix("bytes=").split("-"))
        return {"Body": io.BytesIO(self.objects[(Bucket, Key)][first:last + 1])}


def test_s3_store_behind_the_same_interface(tmp_path: Path) -> None:
    client = FakeS3()
    store = S3ArtifactStore(client, "models-bucket", prefix="prod/")
    src = tmp_path / "a.bin"
    src.write_bytes(b"0123456789")
    assert store.put("rhythm/2.0.0/a.bin", src) == "s3://models-bucket/prod/rhythm/2.0.0/a.bin"
    assert store.size("rhythm/2.0.0/a.bin") == 10 and store.read("rhythm/2.0.0/a.bin", 3, 4) == b"3456"
    assert store.exists("rhythm/2.0.0/a.bin") and not store.exists("rhythm/9/a.bin")
    assert store.read("rhythm/2.0.0/a.bin", 10, 0) == b""


@pytest.mark.skipif(not RHYTHM.is_file(), reason="the shipped rhythm artifact is not in this checkout")
def test_shipped_rhythm_model_through_registry_updater_and_runtime(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from cardiogate.sim.patient import PatientScenario, PatientSimulator

    artifact = tmp_path / RHYTHM.name
    shutil.copy(RHYTHM, artifact)
    sidecar = json.loads(RHYTHM.with_name(RHYTHM.name + ".json").read_text())
    engine = open_database(f"sqlite:///{tmp_path / 'cloud.sqlite3'}")
    signer = Signer(Ed25519PrivateKey.generate())
    models = ModelRegistry(engine, FilesystemArtifactStore(tmp_path / "store"))
    extra = {k: v for k, v in sidecar.items() if k not in ("name", "version", "task", "input", "sha256", "size_bytes",
                                                           "min_gateway_version", "training_data_hash", "metrics")}
    models.publish(artifact, signer=signer, name="rhythm", version=sidecar["version"], task="rhythm",
                   input_spec=sidecar["input"], min_gateway_version=sidecar["min_gateway_version"],
                   training_data_hash=sidecar["training_data_hash"], metrics=sidecar["metrics"], extra=extra)
    models.set_alias("rhythm", "champion", sidecar["version"])
    controller = RolloutController(engine, models, FleetRegistry(engine), signer)

    class Local:
        def get_assignment(self, r: rpb.AssignmentRequest) -> rpb.Assignment:
            a = controller.assignment(r.gateway_id, r.model, r.active_version, r.high_priority_alarm_active)
            action = rpb.UPDATE_ACTION_ACTIVATE if a.action == "activate" else rpb.UPDATE_ACTION_NONE
            return rpb.Assignment(action=action, version=a.version, signed_manifest=a.signed_manifest)

        def download_chunk(self, r: rpb.ChunkRequest) -> rpb.Chunk:
            data, total = controller.chunk(r.model, r.version, r.offset, r.max_bytes)
            return rpb.Chunk(data=data, offset=r.offset, total_size=total, eof=r.offset + len(data) >= total)

        def report(self, r: rpb.UpdaterReport) -> None:
            return None

    updater = Updater(UpdaterConfig("rhythm", "gw-1", "0.1.0", poll_s=0.0, chunk_bytes=64 * 1024),
                      ModelStore(tmp_path / "gateway" / "rhythm", TrustedKeys.of([signer.public_key])), Local())
    updater.start()
    for _ in range(20):
        updater.step()
        if updater.active:
            break
    assert updater.active == sidecar["version"]
    sim = PatientSimulator(PatientScenario(hr_bpm=70), seed=1, ecg_rate_hz=250)
    label = updater.observe(EcgWindow(sim.ecg_uv(0, 250 * 30), 250.0))
    assert label in ("N", "A", "O", "~")
    engine.dispose()
