"""SIGKILL the gateway updater during download, verification, staging and the switch: every
restart must come up on a valid, verified model, and finish the update.

The updater runs in a real subprocess (this file, run as a module with ``child``) against
a file-backed rollout source; it announces each step and can park at one so the kill
lands exactly there. Random-time kills cover the spaces between the named steps.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cardiogate.cloud.registry.signing import Signer, build_manifest, sign_manifest, trusted_keys_document
from cardiogate.edge.updater import ModelStore, RuleRunner, TrustedKeys, Updater, UpdaterConfig
from cardiogate.proto.v1 import rollout_pb2 as rpb
from tests.conftest import REPO

MODULE = "tests.integration.test_registry_updater_crash"
V1, V2 = "1.0.0", "2.0.0"
CHUNK = 4096


class FileSource:
    """An UpdateSource over files: ``assignment.pb`` and ``<version>.bin``."""

    def __init__(self, root: Path, verbose: bool = False) -> None:
        self.root = root
        self.verbose = verbose

    def get_assignment(self, request: rpb.AssignmentRequest) -> rpb.Assignment:
        return rpb.Assignment.FromString((self.root / "assignment.pb").read_bytes())

    def download_chunk(self, request: rpb.ChunkRequest) -> rpb.Chunk:
        if self.verbose:
            print(f"CHUNK {request.offset}", flush=True)
        data = (self.root / f"{request.version}.bin").read_bytes()
        piece = data[request.offset:request.offset + request.max_bytes]
        return rpb.Chunk(data=piece, offset=request.offset, total_size=len(data),
                         eof=request.offset + len(piece) >= len(data))

    def report(self, report: rpb.UpdaterReport) -> None:
        return None


def _updater(cloud: Path, models: Path, source: FileSource, hook: object = None) -> Updater:
    trusted = TrustedKeys.load(cloud / "trusted_keys.json")
    kwargs = {"step_hook": hook} if hook is not None else {}
    return Updater(UpdaterConfig("rhythm", "gw-1", "0.1.0", poll_s=0.05, chunk_bytes=CHUNK),
                   ModelStore(models / "rhythm", trusted), source, **kwargs)  # type: ignore[arg-type]


def child(cloud: Path, models: Path, pause_at: str) -> int:
    """Run the updater until the assigned version is live; park forever at ``pause_at``."""
    chunks = 0

    def hook(name: str) -> None:
        nonlocal chunks
        print(f"STEP {name}", flush=True)
        if name == "download:chunk":
            chunks += 1
            time.sleep(0.01)
        if name == pause_at and (name != "download:chunk" or chunks >= 5):
            print("PAUSED", flush=True)
            time.sleep(3600)

    target = rpb.Assignment.FromString((cloud / "assignment.pb").read_bytes()).version
    updater = _updater(cloud, models, FileSource(cloud, verbose=True), hook)
    updater.start()
    print(f"STARTED {updater.active}", flush=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        updater.step()
        if updater.active == target and updater.phase == "idle":
            updater.close()
            print(f"DONE {updater.active}", flush=True)
            return 0
        time.sleep(0.002)
    return 1


# -- the parent side ----------------------------------------------------------------------------


def _publish(cloud: Path, signer: Signer, version: str, threshold: float, padding: int) -> bytes:
    data = json.dumps({"kind": "rule", "threshold_bpm": threshold, "padding": "x" * padding}).encode()
    (cloud / f"{version}.bin").write_bytes(data)
    body = build_manifest(name="rhythm", version=version, task="rhythm", input_spec={},
                          sha256=hashlib.sha256(data).hexdigest(), size_bytes=len(data), min_gateway_version="0.1.0",
                          training_data_hash="", metrics={}, extra={"format": "rule", "artifact": "rule.json"})
    return sign_manifest(signer, body)


def _assign(cloud: Path, action: rpb.UpdateAction.ValueType, version: str, manifest: bytes) -> None:
    (cloud / "assignment.pb").write_bytes(rpb.Assignment(action=action, version=version, rollout_id="ro-1",
                                                         signed_manifest=manifest).SerializeToString())


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A cloud folder assigning v2, and a gateway models folder with v1 live."""
    root = tmp_path_factory.mktemp("crash")
    cloud, template = root / "cloud", root / "template"
    cloud.mkdir()
    signer = Signer(Ed25519PrivateKey.generate())
    (cloud / "trusted_keys.json").write_text(json.dumps(trusted_keys_document([signer.public_key])))
    m1 = _publish(cloud, signer, V1, 100, 10)
    m2 = _publish(cloud, signer, V2, 105, 60_000)  # ~15 chunks
    _assign(cloud, rpb.UPDATE_ACTION_ACTIVATE, V1, m1)
    updater = _updater(cloud, template, FileSource(cloud))
    updater.start()
    for _ in range(200):
        updater.step()
        if updater.active == V1:
            break
    updater.close()
    assert updater.active == V1
    _assign(cloud, rpb.UPDATE_ACTION_ACTIVATE, V2, m2)
    return cloud, template


def _spawn(cloud: Path, models: Path, pause_at: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", MODULE, "child", str(cloud), str(models), pause_at], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})


def _read_until(proc: subprocess.Popen[str], marker: str, timeout_s: float = 30.0) -> list[str]:
    lines: list[str] = []
    deadline = time.monotonic() + timeout_s
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line.strip())
        if line.startswith(marker):
            return lines
    raise AssertionError(f"no {marker!r} from the updater; saw {lines[-5:]}")


def _live_model_is_valid(cloud: Path, models: Path) -> str:
    """What a restarted gateway would run: recovered, verified, and loadable by the runtime."""
    store = ModelStore(models / "rhythm", TrustedKeys.load(cloud / "trusted_keys.json"))
    active = store.recover()
    assert active in (V1, V2)
    manifest = store.installed(active)
    assert manifest is not None
    RuleRunner.from_file(store.artifact_path(manifest))
    return active


def _finish(cloud: Path, models: Path) -> list[str]:
    proc = _spawn(cloud, models, "")
    try:
        lines = _read_until(proc, "DONE")
    finally:
        proc.kill()
        proc.wait()
    assert lines[-1] == f"DONE {V2}"
    return lines


KILL_POINTS = [
    ("download:chunk", V1), ("verify:start", V1), ("verify:done", V1), ("stage:artifact_moved", V1),
    ("stage:files_written", V1), ("stage:done", V1), ("switch:start", V1), ("switch:last_good_written", V1),
    ("switch:current_written", V2),
]


@pytest.mark.parametrize(("step", "live_after_kill"), KILL_POINTS)
def test_sigkill_at_each_step_restarts_on_a_valid_model(world: tuple[Path, Path], tmp_path: Path, step: str,
                                                        live_after_kill: str) -> None:
    cloud, template = world
    models = tmp_path / "models"
    shutil.copytree(template, models)
    proc = _spawn(cloud, models, step)
    try:
        lines = _read_until(proc, "PAUSED")
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert f"STEP {step}" in lines
    assert _live_model_is_valid(cloud, models) == live_after_kill
    restarted = _finish(cloud, models)
    assert next(line for line in restarted if line.startswith("STARTED")) in (f"STARTED {V1}", f"STARTED {V2}")
    if step == "download:chunk":  # resumed from the bytes already on disk, not from zero
        first = next(line for line in restarted if line.startswith("CHUNK"))
        assert first != "CHUNK 0"
    store = ModelStore(models / "rhythm", TrustedKeys.load(cloud / "trusted_keys.json"))
    assert store.current == V2 and store.last_good == V1 and store.installed(V2) is not None
    assert list((models / "rhythm" / "staging").iterdir()) == []


def test_sigkill_at_random_moments(world: tuple[Path, Path], tmp_path: Path) -> None:
    cloud, template = world
    rng = random.Random(7)
    models = tmp_path / "models"
    shutil.copytree(template, models)
    for _ in range(6):
        proc = _spawn(cloud, models, "")
        try:
            _read_until(proc, "STARTED")
            time.sleep(rng.uniform(0.0, 0.15))
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            proc.wait()
        _live_model_is_valid(cloud, models)
    _finish(cloud, models)
    assert _live_model_is_valid(cloud, models) == V2


if __name__ == "__main__" and len(sys.argv) == 5 and sys.argv[1] == "child":
    sys.exit(child(Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]))
