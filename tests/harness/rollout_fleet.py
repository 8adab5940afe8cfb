"""A rollout test bed without full gateways: the Rollout gRPC server on the registries (SQLite) with its
ticker, and a fleet of in-process gateway ``Updater``s fed live ECG windows.

Each updater runs in its own thread with its own gRPC channel, as separate gateways would; one feeder
thread hands every updater a 4-second window of ECG from firmware_sim's PatientSimulator ten times a
second (three patients per gateway, one of them tachycardic), which is what a gateway's ECG pipeline
would hand it. The models are the tiny deterministic rule runner (a heart-rate threshold in a JSON
artifact), so a "good" and a "bad" version differ only in their threshold.

Used by tests/e2e/test_rollout.py (the controller driven directly) and by the dashboard's rollout
browser test (the controller driven from the web app through the API).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc.aio
from sqlalchemy import Engine

from cardiogate.app.stack import free_port
from cardiogate.cloud.registry.migrate import open_database
from cardiogate.cloud.registry.settings import ModelsSettings
from cardiogate.cloud.registry.signing import Signer
from cardiogate.cloud.registry.wiring import Registries, attach_rollout
from cardiogate.cloud.rollout.service import run_ticker
from cardiogate.edge.updater import EcgWindow, GrpcUpdateSource, ModelStore, TrustedKeys, Updater, UpdaterConfig
from cardiogate.edge.updater.runners import Window
from cardiogate.sim.patient import PatientScenario, PatientSimulator

MODEL = "rhythm"
RATE = 250
WINDOW = 4 * RATE
GATEWAY_VERSION = "0.1.0"


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
    """Seconds until ``check()`` held; fails naming ``what`` (and ``why()``, the state that explains it)."""
    began = time.monotonic()
    while not check():
        if time.monotonic() - began > timeout_s:
            raise AssertionError(f"timed out waiting for {what}" + (f" ({why()})" if why else ""))
        await asyncio.sleep(0.05)
    return time.monotonic() - began


@dataclass
class RolloutBackend:
    """The cloud side of a rollout: registries on SQLite behind a Rollout gRPC server at ``target``."""

    engine: Engine
    signer: Signer
    target: str
    registries: Registries
    root: Path

    def trusted_keys(self) -> TrustedKeys:
        return TrustedKeys.of([self.signer.public_key])

    def register_gateways(self, site: str, gateways: Sequence[str], site_name: str = "") -> None:
        self.registries.fleet.add_site(site, site_name or site)
        for i, gw in enumerate(gateways):
            # mixed hardware tags, as a real ward has; the plans here select by site
            self.registries.fleet.add_gateway(gw, site, tags=["pi5" if i % 2 else "jetson"])

    def publish_artifact(self, artifact: Path, *, name: str, version: str, metrics: dict[str, Any] | None = None
                         ) -> None:
        """Publish (signed) an artifact with the manifest beside it (``<artifact>.json``): its task, input, format."""
        manifest = json.loads(artifact.with_name(artifact.name + ".json").read_text(encoding="utf-8"))
        self.registries.models.publish(
            artifact, signer=self.signer, name=name, version=version, task=manifest["task"],
            input_spec=manifest["input"], min_gateway_version=GATEWAY_VERSION, metrics=metrics,
            extra={"format": manifest["format"], "classes": manifest.get("classes", [])})

    def publish_rule(self, version: str, threshold_bpm: float, metrics: dict[str, Any] | None = None) -> None:
        """Publish (signed) a rule model that calls tachycardia above ``threshold_bpm``."""
        artifacts = self.root / "published"
        artifacts.mkdir(parents=True, exist_ok=True)
        self.registries.models.publish(
            rule_artifact(artifacts, f"{version}.json", threshold_bpm), signer=self.signer, name=MODEL,
            version=version, task=MODEL, input_spec={"sample_rate_hz": RATE, "window_samples": WINDOW},
            min_gateway_version=GATEWAY_VERSION, metrics=metrics, extra={"format": "rule"})


@contextlib.asynccontextmanager
async def rollout_backend(root: Path, tick_s: float = 0.2) -> AsyncIterator[RolloutBackend]:
    """Registries, the Rollout gRPC server and the controller's ticker, on the running event loop."""
    engine = open_database(f"sqlite:///{root / 'cloud.sqlite3'}")
    key = root / "keys" / "model-signing.key"
    signer = Signer.generate(key)
    server = grpc.aio.server()
    target = f"127.0.0.1:{free_port()}"
    server.add_insecure_port(target)
    # the same wiring the cloud process uses; it finds the signing key made above
    registries = attach_rollout(server, engine, ModelsSettings(
        artifact_root=root / "artifacts", signing_key=key, poll_s=0.1, chunk_bytes=64 * 1024), tls=False)
    await server.start()
    ticker = asyncio.create_task(run_ticker(registries.rollouts, tick_s))
    try:
        yield RolloutBackend(engine, signer, target, registries, root)
    finally:
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker
        await server.stop(0)
        engine.dispose()


@contextlib.asynccontextmanager
async def running_fleet(target: str, keys: TrustedKeys, root: Path, gateways: Sequence[str], *, model: str = MODEL,
                        windows_for: Callable[[int], Sequence[Window]] = patient_windows) -> AsyncIterator[Fleet]:
    """One updater thread per gateway polling ``target`` for the ``model`` line, and a feeder of live windows
    (``windows_for(gateway index)``, ECG by default); stopped and joined on exit."""
    alarms = dict.fromkeys(gateways, False)
    fleet = Fleet({}, alarms)
    for gw in gateways:
        fleet.switches[gw] = []
        fleet.updaters[gw] = Updater(
            UpdaterConfig(model, gw, GATEWAY_VERSION, poll_s=0.1), ModelStore(root / gw / model, keys),
            GrpcUpdateSource(target, timeout_s=5), alarm_active=lambda gw=gw: alarms[gw],  # type: ignore[misc]
            on_switch=lambda version, _path, _runner, gw=gw: fleet.switches[gw].append(version))  # type: ignore[misc]
        fleet.threads.append(threading.Thread(target=fleet.updaters[gw].run, args=(fleet.stop,), name=gw))
    windows = {gw: windows_for(i) for i, gw in enumerate(gateways)}

    def feed() -> None:  # live windows: 10/s per gateway
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
