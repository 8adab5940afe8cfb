"""Model rollout end to end: registry -> signed artifact -> staged rollout -> shadow -> switch or roll back.

Ten gateway updaters (in-process ``Updater`` objects, each in its own thread with its own
gRPC channel) talk to a real Rollout gRPC server backed by the registries on SQLite.
Full BLE gateways are NOT needed for this test and are not started: the updaters are fed
4-second windows of ECG from firmware_sim's PatientSimulator (three patients per gateway,
one of them tachycardic), which is what a gateway's ECG pipeline would hand them.

The models are the tiny deterministic rule runner (a heart-rate threshold in a JSON
artifact): v1 and v2 agree on these patients; v3 calls every window tachycardia, so it
disagrees with the champion on two windows in three and would flood the ward with alarms.

    publish v1, promote -> all ten install it
    publish v2 -> 2-gateway canary -> stages 4, 8, 10 -> all ten on v2 (one waits for an alarm)
    publish v3 -> canary shadows it -> agreement gate breached -> aborted, discarded, no gateway on v3
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc.aio
import numpy as np
import pytest

from cardiogate.app.stack import free_port
from cardiogate.cloud.registry.migrate import open_database
from cardiogate.cloud.registry.models import CHAMPION
from cardiogate.cloud.registry.settings import ModelsSettings
from cardiogate.cloud.registry.signing import Signer
from cardiogate.cloud.registry.wiring import attach_rollout
from cardiogate.cloud.rollout.plan import Gates, RolloutPlan
from cardiogate.cloud.rollout.service import run_ticker
from cardiogate.edge.updater import EcgWindow, GrpcUpdateSource, ModelStore, TrustedKeys, Updater, UpdaterConfig
from cardiogate.sim.patient import PatientScenario, PatientSimulator

pytestmark = [pytest.mark.rollout, pytest.mark.timeout(180)]

GATEWAYS = [f"gw-{i:02d}" for i in range(10)]
RATE = 250
WINDOW = 4 * RATE


@dataclass
class Fleet:
    updaters: dict[str, Updater]
    alarms: dict[str, bool]
    switches: dict[str, list[str]] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)

    def active(self) -> dict[str, str | None]:
        return {g: u.active for g, u in self.updaters.items()}


def patient_windows(seed: int) -> list[EcgWindow]:
    """Windows from two normal patients and one tachycardic one, interleaved."""
    sims = [PatientSimulator(PatientScenario(hr_bpm=hr, snr_db=20), seed=seed * 10 + k, ecg_rate_hz=RATE)
            for k, hr in enumerate((62 + seed, 78 + seed, 122 + seed))]
    out = []
    for w in range(12):
        for k, sim in enumerate(sims):
            out.append(EcgWindow(sim.ecg_uv(w * WINDOW, WINDOW), RATE, patient=f"p-{seed}-{k}"))
    return out


def rule_artifact(tmp: Path, name: str, threshold: float) -> Path:
    path = tmp / name
    path.write_text(json.dumps({"kind": "rule", "threshold_bpm": threshold}))
    return path


async def eventually(check: Callable[[], bool], what: str, why: Callable[[], str] | None = None,
                     timeout_s: float = 60.0) -> float:
    began = time.monotonic()
    while not check():
        if time.monotonic() - began > timeout_s:
            raise AssertionError(f"timed out waiting for {what}" + (f" ({why()})" if why else ""))
        await asyncio.sleep(0.05)
    return time.monotonic() - began


@contextlib.asynccontextmanager
async def running_fleet(target: str, keys: TrustedKeys, root: Path) -> AsyncIterator[Fleet]:
    alarms = dict.fromkeys(GATEWAYS, False)
    fleet = Fleet({}, alarms)
    for gw in GATEWAYS:
        fleet.switches[gw] = []
        fleet.updaters[gw] = Updater(
            UpdaterConfig("rhythm", gw, "0.1.0", poll_s=0.1), ModelStore(root / gw / "rhythm", keys),
            GrpcUpdateSource(target, timeout_s=5), alarm_active=lambda gw=gw: alarms[gw],  # type: ignore[misc]
            on_switch=lambda version, _path, _runner, gw=gw: fleet.switches[gw].append(version))  # type: ignore[misc]
        fleet.threads.append(threading.Thread(target=fleet.updaters[gw].run, args=(fleet.stop,), name=gw))
    windows = {gw: patient_windows(i) for i, gw in enumerate(GATEWAYS)}

    def feed() -> None:  # live ECG: 10 windows/s per gateway
        i = 0
        while not fleet.stop.is_set():
            for gw, u in fleet.updaters.items():
                u.observe(windows[gw][i % len(windows[gw])])
            i += 1
            fleet.stop.wait(0.1)

    fleet.threads.append(threading.Thread(target=feed, name="ecg-feed"))
    for t in fleet.threads:
        t.start()
    try:
        yield fleet
    finally:
        fleet.stop.set()
        for t in fleet.threads:
            await asyncio.to_thread(t.join, 10)


async def test_canary_stages_all_then_bad_model_aborted_and_rolled_back(tmp_path: Path) -> None:
    engine = open_database(f"sqlite:///{tmp_path / 'cloud.sqlite3'}")
    signer = Signer.generate(tmp_path / "keys" / "model-signing.key")
    server = grpc.aio.server()
    target = f"127.0.0.1:{free_port()}"
    server.add_insecure_port(target)
    # the same wiring the cloud process uses
    registries = attach_rollout(server, engine, ModelsSettings(
        artifact_root=tmp_path / "artifacts", signing_key=tmp_path / "keys" / "model-signing.key", poll_s=0.1,
        chunk_bytes=64 * 1024), tls=False)
    fleet_registry, models, controller = registries.fleet, registries.models, registries.rollouts
    assert controller.signer is not None and controller.signer.key_id == signer.key_id
    fleet_registry.add_site("ward-a", "Cardiology ward A")
    for i, gw in enumerate(GATEWAYS):
        fleet_registry.add_gateway(gw, "ward-a", tags=["pi5" if i % 2 else "jetson"])
    publish = {"signer": signer, "name": "rhythm", "task": "rhythm", "input_spec": {"sample_rate_hz": RATE,
                                                                                    "window_samples": WINDOW},
               "min_gateway_version": "0.1.0", "extra": {"format": "rule"}}
    models.publish(rule_artifact(tmp_path, "v1.json", 100), version="1.0.0", **publish)  # type: ignore[arg-type]
    models.set_alias("rhythm", CHAMPION, "1.0.0", actor="test")
    await server.start()
    ticker = asyncio.create_task(run_ticker(controller, 0.2))
    began = time.monotonic()
    try:
        async with running_fleet(target, TrustedKeys.of([signer.public_key]), tmp_path / "gateways") as fleet:
            install_s = await eventually(lambda: set(fleet.active().values()) == {"1.0.0"}, "v1 everywhere")

            # -- v2: canary, stages, all ---------------------------------------------------------
            models.publish(rule_artifact(tmp_path, "v2.json", 98), version="2.0.0", metrics={"f1": 0.84},
                           **publish)  # type: ignore[arg-type]
            plan = RolloutPlan(sites=("ward-a",), canary_share=0.2, growth=2.0, min_devices_per_stage=2, bake_s=1.0,
                               stale_after_s=30.0,
                               # latency is judged loosely here: ten updaters share a couple of busy cores
                               gates=Gates(min_windows=8, min_agreement=0.9, max_latency_p99_ms=1000.0,
                                           latency_slack_ms=500.0))
            t0 = time.monotonic()
            rid = controller.start("rhythm", "2.0.0", plan, actor="test")

            def why() -> str:
                st = controller.status(rid)
                members = [(m.gateway_id, m.status) for m, _ in st.members]
                return f"{st.state}, stage {st.stage}: {st.decision}; members {members}"
            status = controller.status(rid)
            assert status.sizes == (2, 4, 8, 10)
            canary = [m.gateway_id for m, _ in status.members if m.stage == 0]
            late = next(m.gateway_id for m, _ in status.members if m.stage == 1)
            fleet.alarms[late] = True  # a patient on this stage-2 gateway has a high-priority alarm
            await eventually(lambda: all(fleet.updaters[g].phase == "shadow" for g in canary), "canary shadowing")
            assert all(fleet.updaters[g].target is None for g in GATEWAYS if g not in canary)  # only the canary
            # stage 2 passes; its other gateway switches but the alarmed one waits
            await eventually(lambda: controller.status(rid).stage >= 2, "stage 2 passed", why)
            mate = next(m.gateway_id for m, _ in status.members if m.stage == 1 and m.gateway_id != late)
            await eventually(lambda: fleet.updaters[mate].active == "2.0.0", "stage-2 mate switched")
            assert fleet.updaters[late].active == "1.0.0"
            await eventually(lambda: controller.status(rid).stage >= 4, "every stage passed", why)
            await asyncio.sleep(0.5)
            assert controller.status(rid).state == "running" and fleet.updaters[late].active == "1.0.0"
            assert "waiting for a high-priority alarm" in controller.status(rid).decision
            fleet.alarms[late] = False
            await eventually(lambda: controller.status(rid).state == "completed", "v2 rollout complete", why)
            v2_s = time.monotonic() - t0
            assert set(fleet.active().values()) == {"2.0.0"}
            assert models.alias("rhythm", CHAMPION) == "2.0.0"
            passed = [e for e in controller.history(rid) if e.kind == "stage_passed"]
            assert [len(e.detail["switching"]) for e in passed] == [2, 2, 4, 2]
            assert passed[0].detail["switching"] == canary

            # -- v3: bad model, aborted at the canary --------------------------------------------
            models.publish(rule_artifact(tmp_path, "v3.json", 40), version="3.0.0", metrics={"f1": 0.9},
                           **publish)  # type: ignore[arg-type]
            t1 = time.monotonic()
            rid3 = controller.start("rhythm", "3.0.0", plan, actor="test")
            canary3 = [m.gateway_id for m, _ in controller.status(rid3).members if m.stage == 0]
            await eventually(lambda: controller.status(rid3).state == "aborted", "v3 aborted")
            abort_s = time.monotonic() - t1
            final = controller.status(rid3)
            assert final.stage == 0 and "agreement with the champion" in final.decision
            await eventually(lambda: all(u.target is None for u in fleet.updaters.values()), "candidates dropped")
            assert set(fleet.active().values()) == {"2.0.0"}
            assert models.alias("rhythm", CHAMPION) == "2.0.0" and models.alias("rhythm", "challenger") is None
            assert all("3.0.0" not in s for s in fleet.switches.values())  # nobody ever ran v3 live
            touched = {e.gateway_id for e in controller.history(rid3)
                       if e.kind == "gateway" and e.detail["to"] in ("downloading", "verifying", "staged", "shadow")}
            assert touched and touched <= set(canary3)  # only the canary ever fetched or shadowed v3
            for gw in GATEWAYS:
                assert not (tmp_path / "gateways" / gw / "rhythm" / "versions" / "3.0.0").exists()
            print(f"\nrollout e2e: install v1 {install_s:.1f} s, v2 to all 10 {v2_s:.1f} s (4 stages, 1 s bake, "
                  f"one alarm wait), v3 aborted after {abort_s:.1f} s: {final.decision}; "
                  f"total {time.monotonic() - began:.1f} s")
    finally:
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker
        await server.stop(0)
        engine.dispose()


def test_patient_windows_label_as_expected() -> None:
    """The fixture the e2e relies on: v1/v2 agree, v3 disagrees on the normal patients."""
    from cardiogate.edge.updater import RuleRunner

    windows = patient_windows(3)
    v1, v2, v3 = (RuleRunner(t) for t in (100, 98, 40))
    a12 = np.mean([v1.predict(w) == v2.predict(w) for w in windows])
    a13 = np.mean([v1.predict(w) == v3.predict(w) for w in windows])
    assert a12 >= 0.95 and a13 <= 0.5
