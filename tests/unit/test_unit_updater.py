"""The gateway updater's state machine against an in-memory rollout service."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import grpc.aio
import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cardiogate.cloud.registry.signing import Signer, build_manifest, sign_manifest, sign_rollback_order
from cardiogate.core.backoff import PERMANENT_RETRY
from cardiogate.edge.updater import EcgWindow, Manifest, ModelStore, RuleRunner, TrustedKeys, Updater, UpdaterConfig
from cardiogate.edge.updater.runners import Runner, estimate_bpm
from cardiogate.edge.updater.store import write_atomic
from cardiogate.proto.v1 import rollout_pb2 as rpb

NONE, SHADOW, ACTIVATE, ROLLBACK = (rpb.UPDATE_ACTION_NONE, rpb.UPDATE_ACTION_SHADOW, rpb.UPDATE_ACTION_ACTIVATE,
                                    rpb.UPDATE_ACTION_ROLLBACK)


def rule(threshold: float = 100.0, **extra: object) -> bytes:
    return json.dumps({"kind": "rule", "threshold_bpm": threshold, **extra}).encode()


def ecg(bpm: float, seconds: float = 4.0, rate: float = 250.0) -> EcgWindow:
    x = np.zeros(int(seconds * rate))
    step = 60.0 / bpm * rate
    for k in np.arange(step / 2, x.size, step):
        x[int(k)] = 1000.0
    return EcgWindow(x, rate)


@dataclass
class FakeCloud:
    """Holds artifacts and signed manifests, hands out one assignment, records what the updater says."""

    signer: Signer
    artifacts: dict[str, bytes] = field(default_factory=dict)
    manifests: dict[str, bytes] = field(default_factory=dict)
    assignment: rpb.Assignment = field(default_factory=lambda: rpb.Assignment(action=NONE))
    reports: list[rpb.UpdaterReport] = field(default_factory=list)
    requests: list[rpb.AssignmentRequest] = field(default_factory=list)
    chunk_offsets: list[int] = field(default_factory=list)
    serve_bytes: dict[str, bytes] = field(default_factory=dict)  # what is actually sent (tampering)
    fail_after_chunks: int | None = None

    def publish(self, version: str, data: bytes, signer: Signer | None = None, **over: object) -> bytes:
        body = build_manifest(name="rhythm", version=version, task="rhythm", input_spec={"window_s": 4},
                              sha256=hashlib.sha256(data).hexdigest(), size_bytes=len(data),
                              min_gateway_version="0.1.0", training_data_hash="0" * 64, metrics={"f1": 0.8},
                              extra={"format": "rule", "artifact": "model.json"})
        body.update(over)
        self.artifacts[version] = data
        self.manifests[version] = sign_manifest(signer or self.signer, body)
        return self.manifests[version]

    def assign(self, action: rpb.UpdateAction.ValueType, version: str, rollout_id: str = "ro-1", order: bytes = b"",
               manifest: bytes | None = None) -> None:
        self.assignment = rpb.Assignment(action=action, version=version, rollout_id=rollout_id,
                                         signed_manifest=manifest if manifest is not None else self.manifests[version],
                                         rollback_order=order, bake_s=1.0, chunk_bytes=4, poll_s=1.0)

    def get_assignment(self, request: rpb.AssignmentRequest) -> rpb.Assignment:
        self.requests.append(request)
        return self.assignment

    def download_chunk(self, request: rpb.ChunkRequest) -> rpb.Chunk:
        if self.fail_after_chunks is not None:
            if self.fail_after_chunks <= 0:
                raise ConnectionError("link down")
            self.fail_after_chunks -= 1
        self.chunk_offsets.append(request.offset)
        data = self.serve_bytes.get(request.version, self.artifacts[request.version])
        piece = data[request.offset:request.offset + request.max_bytes]
        return rpb.Chunk(data=piece, offset=request.offset, total_size=len(data),
                         eof=request.offset + len(piece) >= len(data))

    def report(self, report: rpb.UpdaterReport) -> None:
        self.reports.append(report)

    @property
    def last(self) -> rpb.UpdaterReport:
        return self.reports[-1]


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


@dataclass
class Rig:
    cloud: FakeCloud
    store: ModelStore
    clock: Clock
    alarm: list[bool]
    switches: list[str]
    updater: Updater

    def new_updater(self) -> Updater:
        """A fresh process on the same disk (after a crash or restart)."""
        self.updater = Updater(self.updater.config, ModelStore(self.store.root, self.store.trusted), self.cloud,
                               alarm_active=lambda: self.alarm[0], clock=self.clock,
                               on_switch=lambda v, _p, _r: self.switches.append(v))
        self.updater.start()
        return self.updater

    def drive(self, steps: int = 50) -> None:
        """Step with every call a poll, until there is nothing to do right now."""
        for _ in range(steps):
            self.clock.t += 1.0
            self.updater.step()
            if self.updater.phase not in ("downloading", "verifying"):
                self.clock.t += 1.0
                self.updater.step()
                if self.updater.phase not in ("downloading", "verifying"):
                    return


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    signer = Signer(Ed25519PrivateKey.generate())
    cloud = FakeCloud(signer)
    store = ModelStore(tmp_path / "rhythm", TrustedKeys.of([signer.public_key]))
    clock = Clock()
    alarm = [False]
    switches: list[str] = []
    updater = Updater(UpdaterConfig("rhythm", "gw-1", "0.1.0", poll_s=1.0, chunk_bytes=4), store, cloud,
                      alarm_active=lambda: alarm[0], clock=clock, on_switch=lambda v, _p, _r: switches.append(v))
    updater.start()
    return Rig(cloud, store, clock, alarm, switches, updater)


def install_v1(rig: Rig) -> None:
    rig.cloud.publish("1.0.0", rule(100))
    rig.cloud.assign(ACTIVATE, "1.0.0", rollout_id="")
    rig.drive()
    assert rig.updater.active == "1.0.0"


def test_bootstrap_installs_the_champion(rig: Rig) -> None:
    assert rig.updater.active is None and rig.updater.observe(ecg(70)) is None
    install_v1(rig)
    assert rig.store.current == "1.0.0" and rig.store.last_good is None
    assert rig.switches == ["1.0.0"]
    assert rig.updater.observe(ecg(70)) == "N" and rig.updater.observe(ecg(130)) == "T"
    assert rig.cloud.last.state == "idle" and rig.cloud.last.active_version == "1.0.0"
    assert rig.cloud.chunk_offsets[:3] == [0, 4, 8]  # chunked
    assert (rig.store.version_dir("1.0.0") / "model.json.json").is_file()  # plain manifest for edge inference


def test_shadow_then_activate(rig: Rig) -> None:
    install_v1(rig)
    rig.cloud.publish("1.1.0", rule(105))
    rig.cloud.assign(SHADOW, "1.1.0")
    rig.drive()
    assert rig.updater.phase == "shadow" and rig.updater.active == "1.0.0"
    for bpm in (60, 70, 80, 120, 140, 103):  # 103 bpm: v1 says T, v2 says N
        assert rig.updater.observe(ecg(bpm)) == ("T" if bpm > 100 else "N")  # live labels only from v1
    f = rig.updater.figures()
    assert (f.windows, f.agreements) == (6, 5)
    assert f.live_alarm_rate == pytest.approx(3 / 6) and f.candidate_alarm_rate == pytest.approx(2 / 6)
    rig.drive()
    assert rig.cloud.last.state == "shadow" and rig.cloud.last.shadow.windows == 6
    assert rig.cloud.last.phase == rpb.UPDATER_PHASE_SHADOW and rig.cloud.last.refusal == rpb.REFUSAL_CODE_UNSPECIFIED
    rig.cloud.assign(ACTIVATE, "1.1.0")
    rig.drive()
    assert rig.updater.active == "1.1.0" and rig.store.current == "1.1.0" and rig.store.last_good == "1.0.0"
    assert rig.switches == ["1.0.0", "1.1.0"]
    assert rig.updater.observe(ecg(103)) == "N"
    assert rig.cloud.last.active_version == "1.1.0" and rig.cloud.last.rollout_id == "ro-1"


@pytest.mark.parametrize("case", ["tampered", "unsigned", "unknown_key", "older"])
def test_refusals_are_reported_and_nothing_is_fetched(rig: Rig, case: str) -> None:
    install_v1(rig)
    fetched = len(rig.cloud.chunk_offsets)
    if case == "older":
        rig.cloud.publish("0.9.0", rule(90))
        rig.cloud.assign(SHADOW, "0.9.0")
        expected = "older_version"
    elif case == "unknown_key":
        rig.cloud.publish("1.1.0", rule(90), signer=Signer(Ed25519PrivateKey.generate()))
        rig.cloud.assign(SHADOW, "1.1.0")
        expected = "unknown_key"
    else:
        envelope = json.loads(rig.cloud.publish("1.1.0", rule(90)))
        if case == "tampered":
            envelope["body"]["metrics"] = {"f1": 0.99}
            expected = "bad_signature"
        else:
            envelope = envelope["body"]
            expected = "unsigned"
        rig.cloud.assign(SHADOW, "1.1.0", manifest=json.dumps(envelope).encode())
    rig.drive()
    assert rig.updater.phase == "refused"
    assert rig.cloud.last.refusal_code == expected and rig.cloud.last.refusal_detail
    assert len(rig.cloud.chunk_offsets) == fetched
    assert rig.cloud.last.phase == rpb.UPDATER_PHASE_REFUSED  # the enums beside the text fields
    assert rpb.RefusalCode.Name(rig.cloud.last.refusal) == "REFUSAL_CODE_" + expected.upper()
    rig.drive()  # asked again: the same refusal, no retry
    assert rig.cloud.last.refusal_code == expected and len(rig.cloud.chunk_offsets) == fetched
    assert rig.updater.active == "1.0.0" and rig.updater.observe(ecg(130)) == "T"
    rig.new_updater()  # the refusal survives a restart
    rig.drive()
    assert rig.cloud.last.refusal_code == expected and len(rig.cloud.chunk_offsets) == fetched


def test_tampered_artifact_is_fetched_again_then_refused(rig: Rig) -> None:
    install_v1(rig)
    rig.cloud.publish("1.1.0", rule(105))
    rig.cloud.serve_bytes["1.1.0"] = rule(5)[: len(rule(105))].ljust(len(rule(105)), b" ")
    rig.cloud.assign(SHADOW, "1.1.0")
    rig.drive(200)
    assert rig.updater.phase == "refused" and rig.cloud.last.refusal_code == "sha256_mismatch"
    assert rig.cloud.chunk_offsets.count(0) == 1 + 3  # install + three attempts
    assert not rig.store.partial_path("1.1.0").exists() and not rig.store.version_dir("1.1.0").exists()


def test_download_resumes_after_a_restart(rig: Rig) -> None:
    install_v1(rig)
    rig.cloud.publish("1.1.0", rule(105, padding="x" * 40))
    rig.cloud.assign(SHADOW, "1.1.0")
    rig.cloud.fail_after_chunks = 5
    rig.cloud.chunk_offsets.clear()
    with pytest.raises(ConnectionError):
        for _ in range(20):
            rig.clock.t += 1
            rig.updater.step()
    assert rig.store.partial_size("1.1.0") == 20
    rig.cloud.fail_after_chunks = None
    rig.new_updater()
    rig.drive(100)
    assert rig.updater.phase == "shadow"
    assert rig.cloud.chunk_offsets[5] == 20  # resumed, not restarted
    assert rig.cloud.chunk_offsets.count(0) == 1


def test_switch_waits_for_a_high_priority_alarm(rig: Rig) -> None:
    install_v1(rig)
    rig.cloud.publish("1.1.0", rule(105))
    rig.cloud.assign(ACTIVATE, "1.1.0")
    rig.alarm[0] = True
    rig.drive()
    rig.drive()
    assert rig.updater.active == "1.0.0" and rig.updater.phase == "staged"
    assert rig.cloud.requests[-1].high_priority_alarm_active and rig.cloud.last.high_priority_alarm_active
    rig.alarm[0] = False
    rig.drive()
    assert rig.updater.active == "1.1.0"


def test_rollback_needs_a_signed_order_and_uses_the_local_copy(rig: Rig) -> None:
    install_v1(rig)
    rig.cloud.publish("1.1.0", rule(105))
    rig.cloud.assign(ACTIVATE, "1.1.0")
    rig.drive()
    assert rig.updater.active == "1.1.0"
    fetched = len(rig.cloud.chunk_offsets)
    rig.cloud.assign(ROLLBACK, "1.0.0")  # no order
    rig.drive()
    assert rig.cloud.last.refusal_code == "bad_rollback_order" and rig.updater.active == "1.1.0"
    order = sign_rollback_order(rig.cloud.signer, model="rhythm", rollout_id="ro-1", from_version="1.1.0",
                                to_version="1.0.0", issued_ns=time.time_ns(), ttl_s=3600)
    rig.cloud.assign(ROLLBACK, "1.0.0", order=order)
    rig.drive()
    assert rig.updater.active == "1.0.0" and rig.store.current == "1.0.0"
    assert len(rig.cloud.chunk_offsets) == fetched  # the last good version was still on disk
    assert rig.cloud.last.refusal_code == ""


def test_none_discards_a_shadowed_candidate(rig: Rig) -> None:
    install_v1(rig)
    rig.cloud.publish("1.1.0", rule(105))
    rig.cloud.assign(SHADOW, "1.1.0")
    rig.drive()
    assert rig.store.version_dir("1.1.0").exists()
    rig.cloud.assignment = rpb.Assignment(action=NONE, reason="rollout aborted")
    rig.drive()
    assert rig.updater.phase == "idle" and rig.updater.active == "1.0.0"
    assert not rig.store.version_dir("1.1.0").exists() and rig.store.version_dir("1.0.0").exists()
    assert rig.cloud.last.candidate_version == ""


def test_candidate_that_will_not_load_is_reported(rig: Rig) -> None:
    install_v1(rig)
    rig.cloud.publish("1.1.0", b"not a rule model")
    rig.cloud.assign(SHADOW, "1.1.0")
    rig.drive()
    assert rig.updater.phase == "failed"
    assert rig.cloud.last.load_failures == 1 and rig.cloud.last.refusal_code == "load_failed"
    assert rig.updater.observe(ecg(70)) == "N"


def test_candidate_that_raises_counts_against_it_not_the_gateway(rig: Rig) -> None:
    class Broken:
        def predict(self, window: EcgWindow) -> str:
            raise RuntimeError("boom")

    def factory(path: Path, manifest: Manifest) -> Runner:
        return Broken() if "1.1.0" in str(path) else RuleRunner.from_file(path)

    install_v1(rig)
    rig.updater._factory = factory
    rig.cloud.publish("1.1.0", rule(105))
    rig.cloud.assign(SHADOW, "1.1.0")
    rig.drive()
    assert rig.updater.observe(ecg(70)) == "N"
    rig.drive()
    assert rig.cloud.last.crashes == 1 and rig.cloud.last.shadow.candidate_errors == 1


def test_dying_with_a_candidate_loaded_counts_a_crash(rig: Rig) -> None:
    install_v1(rig)
    rig.cloud.publish("1.1.0", rule(105))
    rig.cloud.assign(SHADOW, "1.1.0")
    rig.drive()
    assert rig.updater.phase == "shadow"
    rig.new_updater()  # no close(): as after SIGKILL
    rig.drive()
    assert rig.updater.phase == "shadow" and rig.cloud.last.crashes == 1
    rig.updater.close()
    rig.new_updater()  # a clean restart is not a crash
    rig.drive()
    assert rig.cloud.last.crashes == 1


def test_corrupt_live_model_falls_back_to_last_good(rig: Rig) -> None:
    install_v1(rig)
    rig.cloud.publish("1.1.0", rule(105))
    rig.cloud.assign(ACTIVATE, "1.1.0")
    rig.drive()
    artifact = rig.store.version_dir("1.1.0") / "model.json"
    artifact.write_bytes(artifact.read_bytes()[:-1] + b" ")  # bit rot on the SD card
    rig.cloud.assignment = rpb.Assignment(action=NONE)
    rig.new_updater()
    assert rig.updater.active == "1.0.0" and rig.store.current == "1.0.0"
    assert rig.updater.observe(ecg(103)) == "T"  # v1 behaviour


def test_pointer_files_are_replaced_atomically(tmp_path: Path) -> None:
    path = tmp_path / "current"
    write_atomic(path, b"1.0.0\n")
    write_atomic(path, b"1.1.0\n")
    assert path.read_bytes() == b"1.1.0\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["current"]


def test_rule_runner_and_bpm_estimate() -> None:
    for bpm in (50, 72, 100, 150):
        assert estimate_bpm(ecg(bpm).samples, 250.0) == pytest.approx(bpm, abs=15)
    assert RuleRunner(100).predict(ecg(130)) == "T"
    assert RuleRunner(100, invert=True).predict(ecg(130)) == "N"
    assert estimate_bpm(np.zeros(10), 250.0) == 0.0


def test_a_refused_identity_slows_polling_an_outage_does_not(rig: Rig) -> None:
    install_v1(rig)
    calls: list[str] = []

    def failing(status: grpc.StatusCode) -> Callable[[rpb.AssignmentRequest], rpb.Assignment]:
        def get_assignment(_request: rpb.AssignmentRequest) -> rpb.Assignment:
            calls.append(status.name)
            raise grpc.aio.AioRpcError(status, grpc.aio.Metadata(), grpc.aio.Metadata(), "certificate revoked")
        return get_assignment

    working = rig.cloud.get_assignment
    rig.cloud.get_assignment = failing(grpc.StatusCode.UNAVAILABLE)  # type: ignore[method-assign]
    rig.clock.t += 10.0
    assert rig.updater.step() == 1.0  # the outage: the assignment's poll interval
    rig.cloud.get_assignment = failing(grpc.StatusCode.UNAUTHENTICATED)  # type: ignore[method-assign]
    waits = []
    for _ in range(4):
        rig.clock.t += 1000.0
        waits.append(rig.updater.step())
    assert min(waits) >= PERMANENT_RETRY.initial_s / 2 and waits[-1] > PERMANENT_RETRY.initial_s  # minutes, growing
    rig.clock.t += 1.0
    assert rig.updater.step() > 0 and calls[-1] == "UNAUTHENTICATED" and len(calls) == 5  # no poll before it is due
    rig.cloud.get_assignment = working  # type: ignore[method-assign]
    rig.clock.t += 1000.0
    rig.updater.step()
    assert rig.updater.phase == "idle" and rig.updater.active == "1.0.0"  # nothing lost while refused
    rig.cloud.get_assignment = failing(grpc.StatusCode.UNAUTHENTICATED)  # type: ignore[method-assign]
    rig.clock.t += 1000.0
    assert rig.updater.step() <= PERMANENT_RETRY.initial_s  # an answer reset the slow backoff
