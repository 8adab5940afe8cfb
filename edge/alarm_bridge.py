"""The gateway's side of the alarm engine: settings in, notices out to MQTT and the outbox, commands back in.

The engine (cardiogate.edge.alarm_engine) is pure. This module builds its configuration from the
gateway settings, feeds it observations, and turns every notice into an MQTT message
(QoS 1, with the publish time) plus an Alarm record for the cloud, every audit entry
into an MQTT audit message, and the visible alarms into a retained per-patient state.
Commands arrive on ``<prefix>/<site>/<patient>/commands/<identity>`` and are judged by that identity's
role (cardiogate.edge.mqtt_auth); a bad or unpermitted one is answered on the audit topic with the
reason, counted, and changes nothing.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

from cardiogate.core.logs import get_logger
from cardiogate.core.settings import ConfigError
from cardiogate.core.tracing import child_span
from cardiogate.edge.alarm_engine import AlarmEngine, Beat, EngineConfig, parse_command
from cardiogate.edge.alarm_engine.commands import CommandError, Refusal, authorize
from cardiogate.edge.alarm_engine.config import ConditionSpec, default_specs
from cardiogate.edge.alarm_engine.model import (
    AlarmNotice,
    AuditEntry,
    Condition,
    Outcome,
    Priority,
    TechnicalCondition,
    VfVerdict,
)
from cardiogate.edge.ecg_monitor import RHYTHM_NAMES, MonitoredBeat
from cardiogate.edge.gateway_metrics import ALARM_LATENCY, ALARMS_RAISED
from cardiogate.edge.inference import RhythmResult
from cardiogate.edge.settings import AlarmSettings, ConditionOverride
from cardiogate.proto.contracts import stream_id_for
from cardiogate.proto.v1 import telemetry_pb2 as pb

log = get_logger(__name__)
SCHEMA_VERSION = 1
_PRIORITY = {"low": pb.ALARM_PRIORITY_LOW, "medium": pb.ALARM_PRIORITY_MEDIUM, "high": pb.ALARM_PRIORITY_HIGH}
_STATE = {"raised": pb.ALARM_STATE_RAISED, "cleared": pb.ALARM_STATE_CLEARED, "escalated": pb.ALARM_STATE_ESCALATED,
          "acknowledged": pb.ALARM_STATE_ACKNOWLEDGED, "silenced": pb.ALARM_STATE_SILENCED,
          "unsilenced": pb.ALARM_STATE_UNSILENCED, "latched": pb.ALARM_STATE_LATCHED}


def _override(spec: ConditionSpec, o: ConditionOverride, where: str) -> ConditionSpec:
    given: tuple[tuple[Priority, float | None], ...] = (("low", o.low), ("medium", o.medium), ("high", o.high))
    limits: dict[Priority, float] = {p: v for p, v in given if v is not None}
    try:
        if limits or o.hysteresis is not None:
            spec = spec.with_limits(limits, o.hysteresis)
        if o.onset_delay_s is not None:
            spec = dataclasses.replace(spec, tiers=tuple(dataclasses.replace(t, onset_delay_s=o.onset_delay_s)
                                                         for t in spec.tiers))
    except ValueError as exc:
        raise ConfigError(f"alarms.{where}: {exc}") from exc
    return spec


def engine_config(settings: AlarmSettings) -> EngineConfig:
    """The engine configuration for these settings (ConfigError names the bad entry)."""
    specs: dict[Condition, ConditionSpec] = default_specs()
    if settings.risk_priority != "low":
        risk = specs["risk"]
        specs["risk"] = dataclasses.replace(risk, tiers=tuple(dataclasses.replace(t, priority=settings.risk_priority)
                                                              for t in risk.tiers))
    for condition, o in settings.conditions.items():
        specs[condition] = _override(specs[condition], o, f"conditions.{condition}")
    per_patient = {patient: {c: _override(specs[c], o, f"patients.{patient}.{c}") for c, o in overrides.items()}
                   for patient, overrides in settings.patients.items()}
    try:
        return EngineConfig(specs=specs, patient_specs=per_patient, max_silence_s=settings.max_silence_s,
                            default_silence_s=settings.default_silence_s)
    except ValueError as exc:
        raise ConfigError(f"alarms: {exc}") from exc


Publish = Callable[[str, str, dict[str, Any], int, bool, bool], None]  # patient, leaf, payload, qos, retain, stamp


class AlarmBridge:
    """Owns the engine for all of the gateway's patients."""

    def __init__(self, settings: AlarmSettings, site: str, publish: Publish,
                 emit_record: Callable[[pb.Record], None], known_patient: Callable[[str], bool]) -> None:
        self.engine = AlarmEngine(engine_config(settings))
        self._site = site
        self._publish = publish  # (patient, leaf, payload, qos, retain, stamp_publish_time)
        self._emit_record = emit_record
        self._known_patient = known_patient
        self._device_of: dict[str, str] = {}
        self._rhythm_of: dict[str, RhythmResult] = {}
        self.raised = 0
        self.commands_applied = 0
        self.commands_rejected = 0

    # -- inputs -------------------------------------------------------------
    def observe_vitals(self, patient: str, device_id: str, device_ns: int, *, hr: float | None = None,
                       spo2: float | None = None, systolic: float | None = None) -> None:
        self._device_of[patient] = device_id
        self._deliver(self.engine.observe_vitals(patient, device_ns, time.time_ns(), hr=hr, spo2=spo2,
                                                 systolic=systolic))

    def observe_risk(self, patient: str, device_id: str, device_ns: int, score: float, model: str) -> None:
        self._device_of.setdefault(patient, device_id)
        self._deliver(self.engine.observe_risk(patient, device_ns, score, model, time.time_ns()))

    def observe_technical(self, patient: str, device_id: str, kind: TechnicalCondition, active: bool,
                          device_ns: int) -> None:
        self._device_of.setdefault(patient, device_id)
        self._deliver(self.engine.technical(patient, kind, active, device_ns, time.time_ns()))

    def observe_beats(self, patient: str, device_id: str, complete_ns: int, beats: list[MonitoredBeat],
                      interrupted: bool = False) -> None:
        self._device_of.setdefault(patient, device_id)
        if interrupted:  # a gap in the ECG is not a pause of the heart
            self.engine.signal_interrupted(patient)
        mapped = [Beat(b.device_time_ns, "V" if b.label == "V" else "N", b.vt_confirmed, b.vt_reason,
                       b.vt_corroborated, b.vt_run, b.vt_pending_until_ns, b.vt_decision) for b in beats]
        self._deliver(self.engine.observe_beats(patient, complete_ns, mapped, time.time_ns()))

    def observe_rhythm(self, patient: str, device_id: str, end_ns: int, rhythm: RhythmResult) -> None:
        self._device_of.setdefault(patient, device_id)
        self._rhythm_of[patient] = rhythm
        name = RHYTHM_NAMES.get(rhythm.label, "other")
        self._deliver(self.engine.observe_rhythm(patient, end_ns, name, time.time_ns()))  # type: ignore[arg-type]

    def observe_vf(self, patient: str, device_id: str, end_ns: int, verdict: VfVerdict, reason: str) -> None:
        self._device_of.setdefault(patient, device_id)
        self._deliver(self.engine.observe_vf(patient, end_ns, verdict, reason, time.time_ns()))

    def news2(self, patient: str, device_ns: int) -> dict[str, Any]:
        """The early-warning score, with the rhythm model's latest class as an advisory flag beside it."""
        score = self.engine.news2(patient, device_ns)
        out: dict[str, Any] = {"total": score.total, "band": score.band, "partial": score.partial,
                               "flags": list(score.flags)}
        rhythm = self._rhythm_of.get(patient)
        if rhythm is not None:
            out["rhythm"] = RHYTHM_NAMES.get(rhythm.label, rhythm.label)
        return out

    def tick(self) -> None:
        """Silence expiry and escalation (call about once a second)."""
        self._deliver(self.engine.tick(time.time_ns()))

    def handle_command(self, patient: str, payload: bytes, sender: tuple[str, Refusal] | None = None) -> str | None:
        """A command from ``<prefix>/<site>/<patient>/commands[/<identity>]`` or from the cloud; answered on the
        patient's audit topic. ``sender``: the authenticated identity and what it may not do (None: the payload's
        ``by`` stands). Returns why it was rejected, or None when it was applied (or was a repeat of one that was)."""
        now = time.time_ns()
        command = parse_command(payload, self.engine.config)
        if not isinstance(command, CommandError) and command.patient != patient:
            command = CommandError(f"the command names patient {command.patient!r} but was sent on {patient!r}'s "
                                   "topic", patient=patient)
        elif not isinstance(command, CommandError) and not self._known_patient(patient):
            command = CommandError(f"patient {patient!r} is not monitored by this gateway", patient=patient)
        if sender is not None:
            command = authorize(command, *sender)
        outcome = self.engine.apply(command, now)
        if outcome.accepted:
            self.commands_applied += 1
        else:
            self.commands_rejected += 1
            log.warning("alarm command rejected", patient=patient, error=outcome.error)
            self._publish(patient, "audit", {"schema": SCHEMA_VERSION, "patient": patient, "outcome": "rejected",
                                             "error": outcome.error, "time_ns": now}, 1, False, False)
        self._deliver(outcome, patient)
        return outcome.error

    # -- outputs ------------------------------------------------------------
    def _deliver(self, outcome: Outcome, patient_hint: str | None = None) -> None:
        touched: set[str] = set()
        for notice in outcome.notices:
            self._notice(notice)
            touched.add(notice.patient)
        for entry in outcome.audit:
            self._audit(entry)
            if entry.patient:
                touched.add(entry.patient)
        for patient in touched:
            self._publish(patient, "alarm_state", {
                "schema": SCHEMA_VERSION, "patient": patient, "time_ns": time.time_ns(),
                "alarms": [v.to_dict() for v in self.engine.active(patient)]}, 1, True, False)

    def _notice(self, n: AlarmNotice) -> None:
        if n.state not in ("raised", "escalated"):
            self._send_notice(n, "")
            return
        # The root of the alarm's trace, from the engine's decision to the record in the outbox; the
        # record carries it on to the cloud (nothing happens when tracing is off).
        decided = n.decision_time_ns if abs(time.time_ns() - n.decision_time_ns) < 60 * 10**9 else None
        with child_span("gateway.alarm", kind="producer", start_time_ns=decided, attributes={
                "alarm.condition": n.condition, "alarm.priority": n.priority, "alarm.state": n.state,
                "alarm.id": n.alarm_id}) as traceparent:
            self._send_notice(n, traceparent)

    def _send_notice(self, n: AlarmNotice, traceparent: str) -> None:
        if n.state == "raised":
            self.raised += 1
            ALARMS_RAISED.labels(n.priority, n.category).inc()
        device = self._device_of.get(n.patient, "")
        level = "warning" if n.state in ("raised", "escalated") else "info"
        getattr(log, level)("alarm", patient=n.patient, condition=n.condition, priority=n.priority, state=n.state,
                            value=n.value, limit=n.limit, by=n.by)
        payload: dict[str, Any] = {"schema": SCHEMA_VERSION, "site": self._site, "device": device, **n.to_dict()}
        self._publish(n.patient, "alarms", payload, 1, False, True)
        if n.state in ("raised", "escalated"):
            ALARM_LATENCY.labels(n.priority).observe(max(0.0, (time.time_ns() - n.trigger_sample_device_time_ns) / 1e9))
        alarm = pb.Alarm(alarm_id=n.alarm_id, condition=n.condition, priority=_PRIORITY[n.priority],
                         state=_STATE[n.state], message=f"{n.condition} {n.state}: {n.value:g} (limit {n.limit:g})",
                         value=n.value, limit=n.limit, onset_sample_device_time_ns=n.onset_sample_device_time_ns,
                         trigger_sample_device_time_ns=n.trigger_sample_device_time_ns,
                         decision_time_ns=n.decision_time_ns, category=n.category, actor=n.by, reason=n.reason,
                         acknowledged=n.acknowledged, silenced_until_ns=n.silenced_until_ns or 0)
        if device:
            record = pb.Record(stream_id=str(stream_id_for(device, pb.STREAM_KIND_ALARMS)), device_id=device,
                               patient=n.patient, kind=pb.STREAM_KIND_ALARMS, alarm=alarm, trace_parent=traceparent)
            self._emit_record(record)

    def _audit(self, entry: AuditEntry) -> None:
        if entry.patient is None:
            return
        self._publish(entry.patient, "audit", {"schema": SCHEMA_VERSION, **entry.to_dict()}, 1, False, False)
