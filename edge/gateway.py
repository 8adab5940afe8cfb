"""The gateway daemon: wires sessions, processors, outbox, uplink and MQTT together."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import ValidationError

from cardiogate import __version__
from cardiogate.core import metrics as prometheus
from cardiogate.core.logs import get_logger
from cardiogate.core.settings import ConfigError
from cardiogate.core.tracing import setup_tracing
from cardiogate.edge import gateway_metrics
from cardiogate.edge.alarm_bridge import AlarmBridge
from cardiogate.edge.alarm_engine.config import default_specs
from cardiogate.edge.alarm_engine.model import TechnicalCondition, VfVerdict
from cardiogate.edge.cloud_commands import run_cloud_commands
from cardiogate.edge.device_manager import DeviceManager, ManagedDevice
from cardiogate.edge.ecg_assembler import EcgTail
from cardiogate.edge.ecg_monitor import MonitoredBeat
from cardiogate.edge.enrollment import load_certificate
from cardiogate.edge.heartbeat import run_heartbeats
from cardiogate.edge.inference import ModelError, RhythmClassifier, RhythmResult
from cardiogate.edge.inference.risk import RiskModel, RiskMonitor
from cardiogate.edge.loop_lag import LoopLagMonitor
from cardiogate.edge.mqtt import MqttPublisher, Outgoing
from cardiogate.edge.mqtt_auth import Refusal, open_identity_file, sender
from cardiogate.edge.outbox import Outbox
from cardiogate.edge.pairing import PairingError, PairingRegistry, authorize_pairing
from cardiogate.edge.service_notify import ServiceNotifier
from cardiogate.edge.settings import GatewaySettings, PairedDevice
from cardiogate.edge.updater import build_updaters
from cardiogate.edge.updater.runners import EcgWindow, FeatureWindow, Runner, default_runner_factory
from cardiogate.edge.updater.updater import run_updater
from cardiogate.edge.uplink import Uplink
from cardiogate.proto.v1 import fleet_pb2
from cardiogate.proto.v1 import telemetry_pb2 as pb

log = get_logger(__name__)


def load_rhythm_model(settings: GatewaySettings) -> tuple[RhythmClassifier | None, ModelError | None]:
    """The configured rhythm model, or the reason it cannot run (the gateway keeps going without it)."""
    path = settings.analysis.rhythm_model
    if path is None or not settings.analysis.enabled:
        return None, None
    try:
        model = RhythmClassifier.load(path)
    except ModelError as exc:
        log.error("rhythm model unavailable", artifact=str(path), reason=exc.reason, error=str(exc))
        return None, exc
    log.info("rhythm model loaded", artifact=str(path), model=model.model.name)
    return model, None


def load_risk_model(settings: GatewaySettings) -> tuple[RiskMonitor | None, ModelError | None]:
    """The configured risk student and its per-patient monitor, or why it cannot run (the rules go on without it)."""
    path = settings.analysis.risk_model
    if path is None or not settings.analysis.enabled:
        return None, None
    try:
        model = RiskModel.load(path)
    except ModelError as exc:
        log.error("risk model unavailable", artifact=str(path), reason=exc.reason, error=str(exc))
        return None, exc
    log.info("risk model loaded", artifact=str(path), model=model.model_id)
    return RiskMonitor(model, every_s=settings.analysis.risk_every_s, advisory_at=risk_advisory_limit(settings)), None


def risk_advisory_limit(settings: GatewaySettings) -> float:
    """The ``risk`` advisory's limit on this gateway: a live score and a shadow candidate's label at the same place."""
    override = settings.alarms.conditions.get("risk")
    configured = override.low if override is not None else None
    return configured if configured is not None else default_specs()["risk"].tiers[0].limit


def _manifest_task(artifact: Path) -> str:
    """The ``task`` in the manifest beside an installed artifact ("" when unreadable: the loader says why)."""
    try:
        return str(json.loads(artifact.with_name(artifact.name + ".json").read_text(encoding="utf-8"))["task"])
    except (OSError, ValueError, KeyError, TypeError):
        return ""


def check_identity(settings: GatewaySettings) -> None:
    """Refuse to start with a missing identity, or one issued to another gateway (ConfigError says what to do)."""
    if not settings.uplink.tls:
        log.warning("uplink without TLS: no gateway identity; for a local demo ingest only")
        return
    try:
        cert = load_certificate(settings.uplink.identity_dir)
    except FileNotFoundError:
        raise ConfigError(f"uplink.identity_dir: no gateway identity in {settings.uplink.identity_dir}; run "
                          "`cardiogate gateway enroll` with a token from the cloud") from None
    except ValueError as exc:
        raise ConfigError(f"uplink.identity_dir: unreadable certificate: {exc}") from None
    if cert.gateway_id != settings.gateway_id:
        raise ConfigError(f"uplink.identity_dir: the certificate is for {cert.gateway_id!r}, but gateway_id is "
                          f"{settings.gateway_id!r}")


class Gateway:
    """One gateway process."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        check_identity(settings)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        # Outbox callbacks come from its writer thread once it runs; they are handed to the loop.
        self.outbox = Outbox.from_settings(settings.outbox, on_evicted=lambda *a: self._on_loop(self._on_evicted, *a),
                                           on_full=lambda full: self._on_loop(self._on_outbox_full, full))
        self.loop_lag = LoopLagMonitor()
        self.service = ServiceNotifier()
        self._evicting: set[tuple[str, str]] = set()
        self.uplink = Uplink(settings.gateway_id, self.outbox, settings.uplink, on_refused=self._on_uplink_refused)
        self.mqtt = MqttPublisher(settings.mqtt, client_id=f"cardiogate-{settings.gateway_id}")
        self.registry = PairingRegistry(settings.devices, settings.state.pairings_path)
        self.alarms = AlarmBridge(settings.alarms, settings.site, self._publish_patient, self.emit_record,
                                  lambda patient: any(d.patient == patient for d in self.registry.devices()))
        self.rhythm, self.rhythm_error = load_rhythm_model(settings)
        self.risk, self.risk_error = load_risk_model(settings)
        advisory_at = risk_advisory_limit(settings)
        self.devices = DeviceManager(self.registry, settings.ble, self, settings.ecg_block_samples,
                                     on_state=self._on_device_state, analysis=settings.analysis, rhythm=self.rhythm)
        if self.rhythm_error is not None or self.risk_error is not None:  # a technical alarm, not a crash
            for device in self.registry.devices():
                self.alarms.observe_technical(device.patient, device.address, "model_failure", True, time.time_ns())
        self.gateway_commands_rejected = 0
        self._high_alarm = False
        self.updaters = build_updaters(settings.updater, settings.gateway_id, __version__, settings.uplink.target,
                                       alarm_active=lambda: self._high_alarm, on_switch=self._on_model_switch,
                                       default_identity_dir=settings.uplink.identity_dir,
                                       server_name=settings.uplink.server_name,
                                       runner_factory=lambda path, manifest: default_runner_factory(
                                           path, manifest, risk_advisory_at=advisory_at))
        self._risk_updaters = [u for u in self.updaters if u.config.model == settings.updater.risk_line]
        self._ecg_updaters = [u for u in self.updaters if u.config.model != settings.updater.risk_line]
        site, prefix = settings.site, settings.mqtt.topic_prefix
        self._gateway_topic = f"{prefix}/{site}/gateway/{settings.gateway_id}"
        # A locked plane (mqtt.identities_file) also listens on the old topics, only to refuse and audit.
        self.identities = open_identity_file(settings.mqtt.identities_file, settings.gateway_id,
                                             settings.mqtt.username)
        for suffix in ("", "/+") if self.identities is not None else ("",):
            self.mqtt.subscribe(f"{prefix}/{site}/+/commands{suffix}", self._on_patient_command)
            self.mqtt.subscribe(f"{self._gateway_topic}/commands{suffix}", self._on_gateway_command)
        if self.identities is None:
            log.warning("mqtt commands judged by their payload: no mqtt.identities_file (local tests only)")

    @property
    def alarms_raised(self) -> int:
        return self.alarms.raised

    def _publish_patient(self, patient: str, leaf: str, payload: dict[str, Any], qos: int, retain: bool,
                         stamp: bool) -> None:
        self.mqtt.publish(Outgoing(self.mqtt.topic(self.settings.site, patient, leaf), payload, qos=qos,
                                   retain=retain, stamp_publish_time=stamp))

    # -- RecordSink ---------------------------------------------------------
    def emit_record(self, record: pb.Record) -> None:
        self.emit_records([record])

    def emit_records(self, records: Sequence[pb.Record], ecg_tails: Mapping[str, EcgTail] | None = None) -> None:
        """Queue records for one outbox transaction, with the ECG tails they carry (EcgTailStore).

        Never waits for the disk: the outbox writer commits them moments later (and tells the
        uplink); an alarm's or vitals' MQTT message goes out meanwhile."""
        if self.risk is not None:
            for record in records:
                if record.kind == pb.STREAM_KIND_VITALS:
                    self._score_risk(record)
        self.outbox.writer.submit(records, ecg_tails).add_done_callback(_log_append_failure)
        if not self.outbox.writer.running:
            self.uplink.notify()
        for record in records:
            if record.kind == pb.STREAM_KIND_VITALS:
                self._publish_vitals(record)

    def load_ecg_tail(self, device_id: str) -> EcgTail | None:
        """Where the device's ECG stream stood when the last gateway process stored it (EcgTailStore)."""
        return self.outbox.ecg_tail(device_id)

    def _score_risk(self, record: pb.Record) -> None:
        """Feed the risk monitor; when the patient's window has passed, the new score rides in this record."""
        assert self.risk is not None
        v = record.vitals
        hr = v.heart_rate_bpm if v.HasField("heart_rate_bpm") else (
            v.pulse_rate_bpm if v.HasField("pulse_rate_bpm") else None)
        mean_ap = v.mean_arterial_mmhg if v.HasField("mean_arterial_mmhg") else (
            (v.systolic_mmhg + 2 * v.diastolic_mmhg) / 3
            if v.HasField("systolic_mmhg") and v.HasField("diastolic_mmhg") else None)
        try:
            score = self.risk.observe(
                record.patient, v.device_time_ns, hr=hr,
                spo2=v.spo2_percent if v.HasField("spo2_percent") else None,
                sys=v.systolic_mmhg if v.HasField("systolic_mmhg") else None,
                dia=v.diastolic_mmhg if v.HasField("diastolic_mmhg") else None, map=mean_ap)
        except ModelError as exc:  # measured, never trusted: the rule-based alarms go on regardless
            gateway_metrics.RISK_FAILURES.inc()
            log.warning("risk model failed", patient=record.patient, reason=exc.reason, error=str(exc))
            return
        if score is None:
            return
        gateway_metrics.RISK_SCORED.inc()
        v.risk_score, v.risk_model = score.score, score.model
        if score.features:
            window = FeatureWindow(score.features, record.patient)
            live = "advisory" if score.score >= self.risk.advisory_at else "normal"
            for updater in self._risk_updaters:  # a risk candidate in shadow scores the same features
                try:
                    updater.observe(window, live_label=live)
                except Exception:  # the shadow is measured, never trusted
                    log.exception("shadow model observation failed", model=updater.config.model)
        self.alarms.observe_risk(record.patient, record.device_id, v.device_time_ns, score.score, score.model)

    def _publish_vitals(self, record: pb.Record) -> None:
        v = record.vitals
        body: dict[str, Any] = {"schema": 1, "patient": record.patient, "device": record.device_id,
                                "source": v.source, "device_time_ns": v.device_time_ns,
                                "receive_time_ns": v.receive_time_ns}
        for name in ("heart_rate_bpm", "spo2_percent", "pulse_rate_bpm", "systolic_mmhg", "diastolic_mmhg",
                     "mean_arterial_mmhg", "sensor_contact", "signal_quality"):
            if v.HasField(name):
                body[name] = getattr(v, name)
        if v.rr_intervals_ms:
            body["rr_intervals_ms"] = list(v.rr_intervals_ms)
        if v.rhythm:
            body.update(rhythm=v.rhythm, rhythm_confidence=v.rhythm_confidence, rhythm_model=v.rhythm_model)
        body["news2"] = self.alarms.news2(record.patient, v.device_time_ns)
        latest = self.risk.latest(record.patient) if self.risk is not None else None
        if latest is not None:  # the advisory score beside NEWS2, with the model that made it
            body["risk"] = {"score": round(latest.score, 4), "model": latest.model, "advisory": True,
                            "fresh": v.HasField("risk_score")}
        self._publish_patient(record.patient, "vitals", body, 0, False, False)

    def observe_vitals(self, patient: str, device_id: str, device_ns: int, *, hr: float | None = None,
                       spo2: float | None = None, systolic: float | None = None) -> None:
        self.alarms.observe_vitals(patient, device_id, device_ns, hr=hr, spo2=spo2, systolic=systolic)

    def observe_technical(self, patient: str, device_id: str, kind: TechnicalCondition, active: bool,
                          device_ns: int) -> None:
        self.alarms.observe_technical(patient, device_id, kind, active, device_ns)

    def observe_beats(self, patient: str, device_id: str, complete_ns: int, beats: list[MonitoredBeat],
                      interrupted: bool = False) -> None:
        self.alarms.observe_beats(patient, device_id, complete_ns, beats, interrupted)

    def observe_vf(self, patient: str, device_id: str, end_ns: int, verdict: VfVerdict, reason: str) -> None:
        self.alarms.observe_vf(patient, device_id, end_ns, verdict, reason)

    def observe_rhythm(self, patient: str, device_id: str, end_ns: int, rhythm: RhythmResult,
                       window_uv: npt.NDArray[np.float64] | None = None, sample_rate_hz: float = 0.0) -> None:
        self.alarms.observe_rhythm(patient, device_id, end_ns, rhythm)
        if window_uv is not None and sample_rate_hz > 0:
            for updater in self._ecg_updaters:  # a candidate model in shadow sees exactly what the live one saw
                try:
                    updater.observe(EcgWindow(window_uv, sample_rate_hz, patient), live_label=rhythm.label,
                                    live_ms=rhythm.latency_ms)
                except Exception:  # the shadow is measured, never trusted: its failure must not stop the live path
                    log.exception("shadow model observation failed", model=updater.config.model)

    # -- model updates ------------------------------------------------------
    def _on_model_switch(self, version: str, artifact: Path, _runner: Runner) -> None:
        """The updater switched versions (from its worker thread): load the new artifact on the event loop."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._load_switched_model, version, artifact)

    def _load_switched_model(self, version: str, artifact: Path) -> None:
        if _manifest_task(artifact) == "risk":
            self._load_switched_risk_model(version, artifact)
            return
        try:
            model = RhythmClassifier.load(artifact)
        except ModelError as exc:
            log.error("switched model failed to load; keeping the previous one", version=version, reason=exc.reason)
            return
        model.label = f"{model.label}@{version}"  # vitals name the registry version that classified them
        self.rhythm = model
        for managed in self.devices.devices.values():
            managed.processor.set_rhythm_model(model)
        log.info("rhythm model switched", version=version, artifact=str(artifact), label=model.label)

    def _load_switched_risk_model(self, version: str, artifact: Path) -> None:
        try:
            model = RiskModel.load(artifact)
        except ModelError as exc:
            log.error("switched model failed to load; keeping the previous one", version=version, reason=exc.reason)
            return
        if self.risk is None:
            self.risk = RiskMonitor(model, every_s=self.settings.analysis.risk_every_s,
                                    advisory_at=risk_advisory_limit(self.settings))
        else:
            self.risk.model = model  # the patients' 24-h histories carry over
        log.info("risk model switched", version=version, artifact=str(artifact), model=model.model_id)

    # -- outbox pressure ----------------------------------------------------
    def _on_loop(self, fn: Callable[..., None], *args: Any) -> None:
        """Run ``fn`` on the event loop: now if called there (or before it runs), else handed over."""
        loop = self._loop
        if loop is None or loop.is_closed() or threading.get_ident() == self._loop_thread:
            fn(*args)
        else:
            loop.call_soon_threadsafe(fn, *args)

    def _on_evicted(self, device_id: str, patient: str, samples: int) -> None:
        """The disk budget forced raw ECG out (a gap record says exactly what): a technical alarm, never silence."""
        log.warning("outbox evicted raw ECG", device=device_id, patient=patient, samples=samples)
        if (patient, device_id) not in self._evicting:
            self._evicting.add((patient, device_id))
            self.alarms.observe_technical(patient, device_id, "outbox_near_full", True, time.time_ns())

    def _on_outbox_full(self, full: bool) -> None:
        log.error("outbox over budget with nothing evictable" if full else "outbox back under budget")
        for device in self.registry.devices():
            self.alarms.observe_technical(device.patient, device.address, "outbox_near_full", full, time.time_ns())

    def _on_uplink_refused(self, refused: bool) -> None:
        """The cloud refuses this gateway's identity (revoked, unknown) or lets it back in: a technical alarm for
        every monitored patient, since none of their data leaves the gateway meanwhile, and a gateway event."""
        now = time.time_ns()
        for device in self.registry.devices():
            self.alarms.observe_technical(device.patient, device.address, "uplink_refused", refused, now)
        reason = self.uplink.refused.detail if refused and self.uplink.refused is not None else ""
        self.mqtt.publish(Outgoing(f"{self._gateway_topic}/events", {
            "schema": 1, "event": "uplink_refused", "active": refused, "reason": reason, "time_ns": now}, qos=1))

    def _check_outbox_pressure(self) -> None:
        """Clear the eviction alarms once the queue has drained below half the budget."""
        if self._evicting and self.outbox.metrics().fill_ratio < 0.5:
            for patient, device_id in self._evicting:
                self.alarms.observe_technical(patient, device_id, "outbox_near_full", False, time.time_ns())
            self._evicting.clear()

    # -- commands -----------------------------------------------------------
    def _on_patient_command(self, topic: str, payload: bytes) -> None:
        patient = topic.split("/")[2]  # <prefix>/<site>/<patient>/commands[/<identity>]
        if patient == "gateway":
            return
        self.alarms.handle_command(patient, payload, sender(self.identities, topic))

    def _on_cloud_command(self, patient: str, payload: bytes, by: tuple[str, Refusal]) -> tuple[bool, str]:
        error = self.alarms.handle_command(patient, payload, by)
        return error is None, error or ""

    def _on_gateway_command(self, topic: str, payload: bytes) -> None:
        """pair / unpair: {"schema": 1, "command": "pair", "address": ..., "patient": ..., "by": ...}."""
        result: dict[str, Any] = {"schema": 1, "time_ns": time.time_ns()}
        try:
            doc = json.loads(payload)
            if not isinstance(doc, dict) or doc.get("schema") != 1:
                raise ValueError("expected a JSON object with schema 1")
            command, by = doc.get("command"), doc.get("by")
            result.update(command=command, by=by)
            if not isinstance(by, str) or not by:
                raise ValueError("'by' must name who sent the command")
            who = sender(self.identities, topic)
            if who is not None:
                result.update(by=authorize_pairing(str(command), who))
            if command == "pair":
                device = PairedDevice.model_validate({k: doc[k] for k in ("address", "patient", "name", "adapter")
                                                      if k in doc})
                self.registry.pair(device)
                result.update(outcome="applied", address=device.address, patient=device.patient)
            elif command == "unpair":
                removed = self.registry.unpair(str(doc.get("address", "")))
                result.update(outcome="applied", address=removed.address, patient=removed.patient)
            else:
                raise ValueError(f"unknown command {command!r} (pair, unpair)")
            log.info("gateway command applied", **{k: v for k, v in result.items() if k != "schema"})
        except (ValueError, ValidationError, PairingError) as exc:
            self.gateway_commands_rejected += 1
            if isinstance(exc, ValidationError):
                message = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            else:
                message = str(exc).splitlines()[0]
            result.update(outcome="rejected", error=message)
            log.warning("gateway command rejected", error=message)
        self.mqtt.publish(Outgoing(f"{self._gateway_topic}/events", result, qos=1))

    def _on_device_state(self, managed: ManagedDevice) -> None:
        self.publish_device_state(managed)

    def publish_device_state(self, managed: ManagedDevice) -> None:
        """Retained per-patient device state: a late subscriber sees the current health at once."""
        session, state = managed.session, managed.processor.state
        patient = managed.device.patient
        self.mqtt.publish(Outgoing(self.mqtt.topic(self.settings.site, patient, "state"), {
            "schema": 1, "patient": patient, "device": managed.device.address, "connected": session.connected,
            "adapter": session.adapter, "rssi_dbm": session.rssi, "battery_percent": state.battery_percent,
            "sensor_contact": state.sensor_contact, "last_seen_ns": state.last_seen_ns,
            "time_ns": time.time_ns()}, qos=1, retain=True))

    # -- lifecycle ----------------------------------------------------------
    async def run(self, status_interval_s: float = 10.0) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self.outbox.writer.start(on_commit=lambda: self._on_loop(self.uplink.notify))
        tasks = [asyncio.create_task(run_updater(u), name=f"updater-{u.config.model}") for u in self.updaters]
        tasks.append(asyncio.create_task(run_heartbeats(self.settings.uplink, self.heartbeat,
                                                        self.settings.ble.health_interval_s), name="heartbeats"))
        tasks.append(asyncio.create_task(run_cloud_commands(self.settings.uplink, self.settings.gateway_id,
                                                            self._on_cloud_command), name="cloud-commands"))
        tasks += [asyncio.create_task(self.uplink.run(), name="uplink"),
                 asyncio.create_task(self.mqtt.run(), name="mqtt"),
                 asyncio.create_task(self._tick_alarms(), name="alarm-ticks")]
        tasks.append(asyncio.create_task(self.devices.run(), name="devices"))
        metrics_server = self._start_metrics()
        tasks.append(asyncio.create_task(self._refresh_metrics(), name="metrics"))
        tasks.append(asyncio.create_task(self.loop_lag.run(), name="loop-lag"))
        tasks.append(asyncio.create_task(self.service.keep_alive(), name="service-watchdog"))
        log.info("gateway started", gateway=self.settings.gateway_id, devices=len(self.devices.devices),
                 outbox_depth=self.outbox.depth())
        self.service.ready(self._service_status())
        try:
            while True:
                await asyncio.sleep(status_interval_s)
                self._log_status()
                self.service.status(self._service_status())
        finally:
            self.service.stopping()
            for task in tasks:
                task.cancel()
            # A dead radio can make each cleanup command wait for its timeout: shutdown is bounded anyway
            # (everything accepted is already committed in the outbox).
            _, stuck = await asyncio.wait(tasks, timeout=SHUTDOWN_GRACE_S)
            if stuck:
                log.warning("shutdown: tasks still stopping; leaving them", tasks=sorted(t.get_name() for t in stuck))
            if metrics_server is not None:
                metrics_server.close()
            self._log_status()
            self.outbox.close()
            bumble_backend = sys.modules.get("cardiogate.edge.ble.bumble_backend")  # only loaded off BlueZ
            if bumble_backend is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(bumble_backend.BumbleRadio.close_all(), SHUTDOWN_GRACE_S)

    def _service_status(self) -> str:
        """One line for ``systemctl status``: devices connected, outbox depth, uplink."""
        connected = sum(m.session.connected for m in self.devices.devices.values())
        return (f"{connected}/{len(self.devices.devices)} devices connected, outbox {self.outbox.depth()} records, "
                f"uplink {'up' if self.uplink.connected else 'down'}")

    def heartbeat(self) -> fleet_pb2.GatewayHeartbeat:
        """This gateway as the fleet registry sees it."""
        om = self.outbox.metrics()
        oldest = max((lane.oldest_age_s for lane in om.lanes.values()), default=0.0)
        devices = []
        for managed in self.devices.devices.values():
            d = fleet_pb2.ConnectedDevice(device_id=managed.device.address, patient=managed.device.patient,
                                          connected=managed.session.connected,
                                          last_seen_ns=managed.processor.state.last_seen_ns or 0)
            if managed.session.rssi is not None:
                d.rssi_dbm = managed.session.rssi
            if managed.processor.state.battery_percent is not None:
                d.battery_percent = managed.processor.state.battery_percent
            devices.append(d)
        connected = sum(d.connected for d in devices)
        health = "ok" if om.fill_ratio < 0.8 and (not devices or connected) else "degraded"
        return fleet_pb2.GatewayHeartbeat(
            gateway_id=self.settings.gateway_id, time_ns=time.time_ns(), software_version=__version__,
            model_versions={u.config.model: u.active or "" for u in self.updaters}, outbox_records=om.records,
            outbox_bytes=om.bytes, oldest_unsent_age_ms=int(oldest * 1000), devices=devices, health=health)

    def _start_metrics(self) -> prometheus.MetricsServer | None:
        """``/metrics`` (127.0.0.1 unless configured otherwise), every series labelled with site and gateway."""
        prometheus.set_constant_labels(site=self.settings.site, gateway=self.settings.gateway_id)
        gateway_metrics.BUILD_INFO.labels(__version__).set(1)
        return prometheus.start(self.settings.metrics, "gateway")

    async def _refresh_metrics(self, interval_s: float = 1.0) -> None:
        """The gauges, from the gateway's own state, on the event loop (the outbox is not for other threads)."""
        while True:
            try:
                om = self.outbox.metrics()
                managed = list(self.devices.devices.values())
                gateway_metrics.refresh(
                    ((m.processor.device_kind, m.session.connected) for m in managed), len(managed),
                    {lane: (s.records, s.bytes, s.oldest_age_s) for lane, s in om.lanes.items()}, om.fill_ratio,
                    self.uplink.connected, self.mqtt.connected)
            except Exception:  # stale gauges are no reason to stop the gateway
                log.exception("metrics refresh failed")
            await asyncio.sleep(interval_s)

    async def _tick_alarms(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            self.alarms.tick()
            self._check_outbox_pressure()
            # Model switches wait while any patient has an active high-priority alarm (a cached flag: the
            # updater's thread must not walk the alarm engine).
            self._high_alarm = any(v.priority == "high" and v.status == "active"
                                   for d in self.registry.devices() for v in self.alarms.engine.active(d.patient))

    def _log_status(self) -> None:
        for managed in self.devices.devices.values():
            s, c = managed.session, managed.processor.counters
            log.info("device status", device=s.address, connected=s.connected, adapter=s.adapter, hr=c.last_heart_rate,
                     ecg_samples=c.ecg_samples, decode_errors=c.decode_errors, ecg_gaps=c.ecg_gaps,
                     missing_samples=c.ecg_missing_samples, reconnects=max(0, s.connects - 1))
            self.publish_device_state(managed)
        om = self.outbox.metrics()
        log.info("uplink status", connected=self.uplink.connected, outbox_records=om.records, outbox_bytes=om.bytes,
                 outbox_fill=round(om.fill_ratio, 3), evicted_samples=om.evicted_samples,
                 acked=self.uplink.records_acked, mqtt_published=self.mqtt.published,
                 commands_rejected=self.alarms.commands_rejected + self.gateway_commands_rejected)
        lag = self.loop_lag.summary()
        log.info("loop lag", samples=lag.samples, p50_ms=round(lag.p50_s * 1e3, 2), p99_ms=round(lag.p99_s * 1e3, 2),
                 max_ms=round(self.loop_lag.max_s * 1e3, 2), outbox_queued=self.outbox.writer.queued)


SHUTDOWN_GRACE_S = 5.0


def _log_append_failure(future: Future[list[int]]) -> None:
    """A queued append that failed (a full or broken disk) is logged loudly, never lost in silence."""
    exc = None if future.cancelled() else future.exception()
    if exc is not None:
        log.error("outbox append failed: records not stored", error=repr(exc))


async def run_gateway(settings: GatewaySettings) -> None:
    """Run until SIGTERM/SIGINT, then flush and close cleanly."""
    setup_tracing(settings.tracing, "cardiogate-gateway")
    gateway = Gateway(settings)
    task = asyncio.create_task(gateway.run())
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await task
    log.info("gateway stopped")
