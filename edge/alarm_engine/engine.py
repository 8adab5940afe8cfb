"""The alarm engine: one state machine per (patient, condition), commands, timers and the audit trail.

Pure core: inputs carry device times (of the samples) and decision times (the gateway clock, read by the
caller), so the engine is deterministic and every notice can prove its sample-to-decision latency.

Life of one alarm episode::

    inactive -> pending (limit exceeded, onset delay running) -> active (notice "raised")
    active   -> "escalated" (a more severe tier held its onset delay, or unacknowledged too long)
    active   -> "cleared" once the value stays past the clear threshold for the clear delay,
                or "latched" instead when the episode reached the condition's latch priority
                and was not acknowledged: it stays visible until acknowledged ("acknowledged", "cleared")
    any      -> "silenced" / "unsilenced" (audio pause, expires by itself in tick())

A notice is emitted only on a transition, so repeated or stale inputs never repeat a notice; an episode
keeps its ``alarm_id`` from raise to clear, and a latched alarm whose condition returns stays the same alarm.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from cardiogate.core.news2 import Consciousness, News2Result, Rhythm, news2
from cardiogate.edge.alarm_engine.commands import (
    Acknowledge,
    Command,
    CommandError,
    SetLimits,
    Silence,
    command_name,
)
from cardiogate.edge.alarm_engine.config import ConditionSpec, EngineConfig, check_pairs
from cardiogate.edge.alarm_engine.model import (
    ENGINE_ACTOR,
    PRIORITIES,
    AlarmNotice,
    AlarmStatus,
    AlarmView,
    AuditEntry,
    AuditOutcome,
    Condition,
    NoticeState,
    Outcome,
    Priority,
    TechnicalCondition,
    VfVerdict,
    rank,
)

NS = 1_000_000_000
BeatLabel = Literal["N", "S", "V", "F", "Q"]  # AAMI EC57 beat classes
_SIGNAL_INOPS: tuple[TechnicalCondition, ...] = ("lead_off", "poor_signal")  # no ECG analysis possible
_AVPU: tuple[Consciousness, ...] = ("A", "C", "V", "P", "U")
_OPS = {"above": ">", "at_least": ">=", "below": "<"}


@dataclass(frozen=True, slots=True)
class Beat:
    """One detected beat from the ECG analyser, at its device time, with its class.

    ``vt_confirmed`` is the analyser's VT check for a ventricular beat: False means the evidence argues
    against a VT (``vt_reason`` says why), so a run reaching the VT limit raises the "vt_unconfirmed"
    advisory instead of the VT alarm; None (no check) and True alarm as usual. ``vt_corroborated``: a
    second lead or the pulse shows the run too, so it counts even while the primary lead's quality is poor.
    ``vt_run``: the longest ventricular run the check saw in any lead; it counts like this stream's own run
    (a wide run can make one lead's detector miss every other beat).
    ``vt_pending_until_ns``: the check waits for the pulse that covers this (one-lead) run, until this device
    time at the latest: a run reaching the limit on such a beat is counted but its alarm is held (from that
    beat, its trigger) until the decision comes. ``vt_decision``: not a new beat but the check's final verdict
    on a held run (``vt_confirmed``, ``vt_reason``), restating the beat that brought it to the limit.
    """

    device_time_ns: int
    label: BeatLabel = "N"
    vt_confirmed: bool | None = None
    vt_reason: str = ""
    vt_corroborated: bool = False
    vt_run: int = 0
    vt_pending_until_ns: int | None = None
    vt_decision: bool = False


@dataclass(slots=True)
class _Episode:
    alarm_id: str
    priority: Priority
    onset_ns: int
    trigger_ns: int
    value: float
    limit: float
    raised_ns: int
    priority_since_ns: int  # the escalation clock: raise or last escalation, gateway time
    present: bool = True  # False: condition gone, alarm latched until acknowledged
    acknowledged: bool = False
    silenced_until_ns: int | None = None
    latched_noticed: bool = False


@dataclass(slots=True)
class _VtHold:
    """A VT run at the limit whose alarm waits for the check's decision (``Beat.vt_pending_until_ns``)."""

    trigger_ns: int  # the beat that reached the limit: the alarm's trigger and onset when confirmed
    value: float  # the run's length at that beat
    until_ns: int  # device time by which the check decides at the latest
    opened_ns: int  # decision time when the hold opened (the gateway clock, for tick())
    reason: str
    latest_ns: int  # the run goes on (or ends) while the decision waits: its last beat ...
    latest_value: float  # ... and length then


@dataclass(slots=True)
class _Tracker:
    since: dict[Priority, int] = field(default_factory=dict)  # tier -> first sample beyond its limit
    clear_since: int | None = None
    last_sample_ns: int | None = None
    episode: _Episode | None = None
    episodes: int = 0


@dataclass(slots=True)
class _Patient:
    specs: dict[Condition, ConditionSpec]
    trackers: dict[Condition, _Tracker] = field(default_factory=dict)
    latest: dict[str, tuple[float | bool | str, int]] = field(default_factory=dict)  # NEWS2 inputs
    rhythm: Rhythm | None = None
    technical_inputs: set[TechnicalCondition] = field(default_factory=set)
    last_beat_ns: int | None = None
    v_run: tuple[int, int, int] | None = None  # (first V beat, last V beat, count)
    vt_hold: _VtHold | None = None

    def tracker(self, condition: Condition) -> _Tracker:
        return self.trackers.setdefault(condition, _Tracker())


class _Sink:
    """Collects notices and their audit entries during one engine call."""

    def __init__(self) -> None:
        self.notices: list[AlarmNotice] = []
        self.audit: list[AuditEntry] = []

    def outcome(self, error: str | None = None) -> Outcome:
        return Outcome(tuple(self.notices), tuple(self.audit), error)


class AlarmEngine:
    """Alarm state for every patient of one gateway."""

    def __init__(self, config: EngineConfig | None = None) -> None:
        self.config = config or EngineConfig()
        self._patients: dict[str, _Patient] = {}
        self._seen_ids: deque[str] = deque(maxlen=self.config.remembered_command_ids)

    # ---- inputs -------------------------------------------------------------------------------

    def observe_vitals(self, patient: str, device_time_ns: int, decision_time_ns: int, *, hr: float | None = None,
                       spo2: float | None = None, systolic: float | None = None,
                       respiration_rate: float | None = None, temperature: float | None = None,
                       consciousness: Consciousness | None = None, on_oxygen: bool | None = None) -> Outcome:
        """Vital signs measured at ``device_time_ns``; absent (or NaN) ones were not measured."""
        hr, spo2, systolic, respiration_rate, temperature = (
            v if v is not None and math.isfinite(v) else None
            for v in (hr, spo2, systolic, respiration_rate, temperature))
        p, sink, t = self._patient(patient), _Sink(), device_time_ns
        if hr is not None:
            self._feed(sink, patient, p, "hr_high", hr, t, decision_time_ns)
            self._feed(sink, patient, p, "hr_low", hr, t, decision_time_ns)
        if spo2 is not None:
            self._feed(sink, patient, p, "spo2_low", spo2, t, decision_time_ns)
        if systolic is not None:
            self._feed(sink, patient, p, "sbp_high", systolic, t, decision_time_ns)
            self._feed(sink, patient, p, "sbp_low", systolic, t, decision_time_ns)
        given = {"pulse": hr, "spo2": spo2, "systolic": systolic, "respiration_rate": respiration_rate,
                 "temperature": temperature, "consciousness": consciousness, "on_oxygen": on_oxygen}
        fresh = {k: v for k, v in given.items() if v is not None}
        if fresh:
            for key, value in fresh.items():
                if key not in p.latest or p.latest[key][1] <= t:
                    p.latest[key] = (value, t)
            score = self.news2(patient, t)
            self._feed(sink, patient, p, "news2", float(score.total), t, decision_time_ns, _news2_note(score))
        return sink.outcome()

    def observe_beats(self, patient: str, device_time_ns: int, beats: Sequence[Beat], decision_time_ns: int) -> Outcome:
        """Beats from the ECG analyser; ``device_time_ns`` is how far beat detection is complete.

        The pause since the last beat drives asystole, the current run of ventricular beats drives VT.
        While the leads are off or the signal is poor nothing is evaluated: a flat or noisy trace is not
        asystole, and the pause is measured again from when the signal returns. The one exception: with a
        poor (not absent) signal, ventricular beats that a second lead or the pulse corroborates still
        count towards VT, because a VT itself degrades the quality index of the lead it distorts.
        """
        p, sink, now = self._patient(patient), _Sink(), decision_time_ns
        for decided in (b for b in beats if b.vt_decision):  # a held run is decided whatever the signal does now
            if p.vt_hold is not None:
                self._decide_vt(sink, patient, p, decided.vt_confirmed is not False, decided.vt_reason, now)
        beats = [b for b in beats if not b.vt_decision]
        inops = p.technical_inputs.intersection(_SIGNAL_INOPS)
        if inops == {"poor_signal"} and any(b.vt_corroborated for b in beats):
            self._corroborated_run(sink, patient, p, beats, now)
            return self._vt_hold_due(sink, patient, p, device_time_ns, now)
        if inops:
            p.last_beat_ns, p.v_run = None, None
            beat_conditions: tuple[Condition, ...] = ("asystole", "vt")
            for condition in beat_conditions:
                tracker = p.tracker(condition)
                tracker.since.clear()
                tracker.clear_since = None
            return self._vt_hold_due(sink, patient, p, device_time_ns, now)
        for beat in sorted(beats, key=lambda b: b.device_time_ns):
            b = beat.device_time_ns
            if p.last_beat_ns is not None and b <= p.last_beat_ns:
                continue  # already seen (overlapping analysis windows)
            if p.last_beat_ns is not None:
                self._feed(sink, patient, p, "asystole", (b - p.last_beat_ns) / NS, b, now)
            p.last_beat_ns = b
            if beat.label == "V":
                first, _, count = p.v_run or (b, b, 0)
                p.v_run = (first, b, count + 1)
            else:
                p.v_run = None
            self._feed_vt(sink, patient, p, beat, now)
        if p.last_beat_ns is None:
            p.last_beat_ns = device_time_ns  # no beat yet: count the pause from the first analysed time
        if device_time_ns >= p.last_beat_ns:
            self._feed(sink, patient, p, "asystole", (device_time_ns - p.last_beat_ns) / NS, device_time_ns, now)
        return self._vt_hold_due(sink, patient, p, device_time_ns, now)

    def observe_risk(self, patient: str, device_time_ns: int, score: float, model: str,
                     decision_time_ns: int) -> Outcome:
        """The gateway risk model's score for the window ending at ``device_time_ns`` (the ``risk`` advisory).

        It feeds only its own condition: the rule-based alarms neither wait for nor depend on it.
        """
        p, sink = self._patient(patient), _Sink()
        if math.isfinite(score):
            self._feed(sink, patient, p, "risk", score, device_time_ns, decision_time_ns, f"risk {score:.2f} ({model})")
        return sink.outcome()

    def observe_rhythm(self, patient: str, device_time_ns: int, rhythm: Rhythm, decision_time_ns: int) -> Outcome:
        """The rhythm model's class for the window ending at ``device_time_ns`` (drives the AF advisory).

        A noisy window neither confirms nor refutes AF: it restarts a pending onset but never clears.
        """
        p, sink = self._patient(patient), _Sink()
        p.rhythm = rhythm
        if rhythm == "noisy":
            p.tracker("af").since.clear()
            return sink.outcome()
        self._feed(sink, patient, p, "af", 1.0 if rhythm == "af" else 0.0, device_time_ns, decision_time_ns)
        return sink.outcome()

    def observe_vf(self, patient: str, device_time_ns: int, verdict: VfVerdict, reason: str,
                   decision_time_ns: int) -> Outcome:
        """One VF window's verdict (``"vf"``, ``"doubted"`` or ``"none"``) for the window ending at ``device_time_ns``.

        Unlike the beat-based conditions, a poor signal quality index does not stop it: fibrillation itself is
        what makes the quality index poor. Leads off do: a trace with no electrode on the skin says nothing.
        """
        p, sink = self._patient(patient), _Sink()
        if "lead_off" in p.technical_inputs:
            verdict, reason = "none", ""
            for condition in ("vf", "vf_unconfirmed"):
                p.tracker(condition).since.clear()  # an onset never spans a time with the leads off
        self._feed(sink, patient, p, "vf", 1.0 if verdict == "vf" else 0.0, device_time_ns, decision_time_ns,
                   reason if verdict == "vf" else "")
        self._feed(sink, patient, p, "vf_unconfirmed", 1.0 if verdict == "doubted" else 0.0, device_time_ns,
                   decision_time_ns, f"VF unconfirmed: {reason}" if verdict == "doubted" else "")
        return sink.outcome()

    def signal_interrupted(self, patient: str) -> None:
        """The ECG stream had a gap (link loss, restart): the time since the last beat is unknown, not a pause.

        A held VT decision can no longer come from the analysis (it restarts): the next input confirms it.
        """
        p = self._patient(patient)
        p.last_beat_ns, p.v_run = None, None
        if p.vt_hold is not None:
            p.vt_hold.until_ns = min(p.vt_hold.until_ns, p.vt_hold.trigger_ns)

    def technical(self, patient: str, kind: TechnicalCondition, active: bool, device_time_ns: int,
                  decision_time_ns: int) -> Outcome:
        """A technical condition seen (``active``) or gone, as detected by the caller at ``device_time_ns``."""
        p, sink = self._patient(patient), _Sink()
        if active:
            p.technical_inputs.add(kind)
        else:
            p.technical_inputs.discard(kind)
        self._feed(sink, patient, p, kind, 1.0 if active else 0.0, device_time_ns, decision_time_ns)
        return sink.outcome()

    def tick(self, now_ns: int) -> Outcome:
        """Time-driven transitions on the gateway clock: silences expire, unacknowledged alarms escalate."""
        sink = _Sink()
        for patient, p in self._patients.items():
            hold = p.vt_hold  # the ECG stopped while a VT decision waited: its wait ends on the gateway clock too
            if hold is not None and now_ns - hold.opened_ns >= hold.until_ns - hold.trigger_ns:
                self._decide_vt(sink, patient, p, True, f"{hold.reason}: no decision within the wait, so confirmed",
                                now_ns)
            for condition, tracker in p.trackers.items():
                ep = tracker.episode
                if ep is None:
                    continue
                if ep.silenced_until_ns is not None and now_ns >= ep.silenced_until_ns:
                    ep.silenced_until_ns = None
                    self._notify(sink, patient, p, condition, ep, "unsilenced", now_ns, "silence expired")
                after = p.specs[condition].escalate_after_s
                while (after is not None and not ep.acknowledged and ep.priority != "high"
                       and now_ns - ep.priority_since_ns >= round(after * NS)):
                    old = ep.priority
                    ep.priority = PRIORITIES[rank(ep.priority) + 1]
                    ep.priority_since_ns += round(after * NS)
                    ep.silenced_until_ns = None  # the higher priority must be heard
                    self._notify(sink, patient, p, condition, ep, "escalated", now_ns,
                                 f"unacknowledged for {after:g} s: {old} -> {ep.priority}")
        return sink.outcome()

    # ---- commands -----------------------------------------------------------------------------

    def apply(self, command: Command | CommandError, now_ns: int) -> Outcome:
        """Apply a parsed command (or record a rejected one); every command leaves an audit entry."""
        sink = _Sink()
        if isinstance(command, CommandError):
            self._audit_command(sink, now_ns, command.by, command.command or "unknown", "rejected",
                                command.patient, None, None, command.message, command.command_id)
            return sink.outcome(command.message)
        cid = command.command_id
        if cid is not None and cid in self._seen_ids:
            self._audit_command(sink, now_ns, command.by, command_name(command), "duplicate", command.patient, None,
                                None, f"command id {cid} already applied", cid)
            return sink.outcome()
        outcome = self._apply(sink, command, now_ns)
        if cid is not None and outcome.accepted:  # a rejected command may be retried under the same id
            self._seen_ids.append(cid)
        return outcome

    def _apply(self, sink: _Sink, command: Command, now_ns: int) -> Outcome:
        name, cid = command_name(command), command.command_id
        p = self._patient(command.patient)
        if isinstance(command, SetLimits):
            return self._set_limits(sink, p, command, now_ns)
        targets = self._targets(p, command.alarm_id, command.condition)
        if not targets:
            what = command.alarm_id or command.condition or "alarm"
            error = f"patient {command.patient} has no current {what}"
            self._audit_command(sink, now_ns, command.by, name, "rejected", command.patient, command.alarm_id,
                                command.condition, error, cid)
            return sink.outcome(error)
        changed = 0
        for condition, ep in targets:
            if isinstance(command, Acknowledge):
                changed += self._acknowledge(sink, command, p, condition, ep, now_ns)
            elif isinstance(command, Silence):
                until = now_ns + round(command.duration_s * NS)
                if ep.acknowledged or ep.silenced_until_ns == until:
                    continue  # acknowledged alarms are already audio-off
                ep.silenced_until_ns = until
                self._notify(sink, command.patient, p, condition, ep, "silenced", now_ns,
                             _with_reason(f"audio paused for {command.duration_s:g} s", command.reason), command.by)
                changed += 1
            elif ep.silenced_until_ns is not None:
                ep.silenced_until_ns = None
                self._notify(sink, command.patient, p, condition, ep, "unsilenced", now_ns,
                             _with_reason("audio pause ended by user", command.reason), command.by)
                changed += 1
        one = targets[0] if len(targets) == 1 else None
        self._audit_command(sink, now_ns, command.by, name, "applied" if changed else "no_change", command.patient,
                            one[1].alarm_id if one else None, one[0] if one else None,
                            _with_reason(f"{name} {len(targets)} alarm(s), {changed} changed", command.reason), cid)
        return sink.outcome()

    def _acknowledge(self, sink: _Sink, command: Acknowledge, p: _Patient, condition: Condition, ep: _Episode,
                     now_ns: int) -> int:
        if ep.acknowledged:
            return 0
        ep.acknowledged, ep.silenced_until_ns = True, None
        self._notify(sink, command.patient, p, condition, ep, "acknowledged", now_ns,
                     _with_reason("acknowledged", command.reason), command.by)
        if not ep.present:
            p.tracker(condition).episode = None
            self._notify(sink, command.patient, p, condition, ep, "cleared", now_ns,
                         "latched alarm acknowledged after its condition ended", command.by)
        return 1

    def _set_limits(self, sink: _Sink, p: _Patient, command: SetLimits, now_ns: int) -> Outcome:
        old = p.specs[command.condition]
        try:
            new = old.with_limits(command.limits, command.hysteresis)
            check_pairs({**p.specs, command.condition: new})
        except ValueError as exc:
            error = f"limits rejected: {exc}"
            self._audit_command(sink, now_ns, command.by, "set_limits", "rejected", command.patient, None,
                                command.condition, error, command.command_id)
            return sink.outcome(error)
        p.specs[command.condition] = new
        outcome: AuditOutcome = "no_change" if new == old else "applied"
        self._audit_command(sink, now_ns, command.by, "set_limits", outcome, command.patient, None, command.condition,
                            _with_reason(f"{_describe(old)} -> {_describe(new)}", command.reason), command.command_id)
        return sink.outcome()

    # ---- queries ------------------------------------------------------------------------------

    def active(self, patient: str) -> list[AlarmView]:
        """Visible alarms (active or latched), most severe first, for the retained state topic."""
        p = self._patients.get(patient)
        if p is None:
            return []
        views = [AlarmView(ep.alarm_id, patient, c, p.specs[c].category, ep.priority,
                           "active" if ep.present else "latched", ep.acknowledged, ep.silenced_until_ns, ep.value,
                           ep.limit, ep.onset_ns, ep.raised_ns)
                 for c, ep in self._targets(p, None, None)]
        return sorted(views, key=lambda v: (-rank(v.priority), v.raised_time_ns, v.alarm_id))

    def status(self, patient: str, condition: Condition) -> AlarmStatus:
        p = self._patients.get(patient)
        tracker = p.trackers.get(condition) if p else None
        if tracker is None:
            return "inactive"
        if tracker.episode is not None:
            return "active" if tracker.episode.present else "latched"
        held = condition == "vt" and p is not None and p.vt_hold is not None
        return "pending" if tracker.since or held else "inactive"

    def limits(self, patient: str) -> dict[Condition, ConditionSpec]:
        """The specs in force for this patient (defaults, config overrides, then set_limits commands)."""
        return dict(self._patient(patient).specs)

    def news2(self, patient: str, device_time_ns: int) -> News2Result:
        """NEWS2 from the latest readings no older than ``news2_max_age_s`` at ``device_time_ns``."""
        p = self._patient(patient)
        max_age = round(self.config.news2_max_age_s * NS)
        vals = {k: v for k, (v, t) in p.latest.items() if 0 <= device_time_ns - t <= max_age}

        def num(key: str) -> float | None:
            v = vals.get(key)
            return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None

        avpu = vals.get("consciousness")
        oxygen = vals.get("on_oxygen")
        return news2(pulse=num("pulse"), spo2=num("spo2"), systolic=num("systolic"),
                     respiration_rate=num("respiration_rate"), temperature=num("temperature"),
                     consciousness=next((c for c in _AVPU if c == avpu), None),
                     on_oxygen=oxygen if isinstance(oxygen, bool) else None, rhythm=p.rhythm)

    # ---- internals ----------------------------------------------------------------------------

    def _patient(self, patient: str) -> _Patient:
        p = self._patients.get(patient)
        if p is None:
            p = self._patients[patient] = _Patient(self.config.specs_for(patient))
        return p

    def _corroborated_run(self, sink: _Sink, patient: str, p: _Patient, beats: Sequence[Beat], now: int) -> Outcome:
        """Poor signal, but a corroborated ventricular run: VT only (no pause is measured on a poor signal)."""
        for beat in sorted(beats, key=lambda b: b.device_time_ns):
            if p.last_beat_ns is not None and beat.device_time_ns <= p.last_beat_ns:
                continue
            if beat.label == "V" and beat.vt_corroborated:
                first, _, count = p.v_run or (beat.device_time_ns, beat.device_time_ns, 0)
                p.v_run = (first, beat.device_time_ns, count + 1)
            else:
                p.v_run = None
            self._feed_vt(sink, patient, p, beat, now)
        p.last_beat_ns = None  # the pause restarts from good signal
        return sink.outcome()

    def _feed_vt(self, sink: _Sink, patient: str, p: _Patient, beat: Beat, now: int) -> None:
        """The VT run, or the advisory when the analyser's evidence argues against it.

        Never withdraws a VT alarm that is already showing: doubt only ever stops a new one.
        """
        value, b = self._vt_value(p.v_run), beat.device_time_ns
        if beat.label == "V" and (beat.vt_confirmed is not None or beat.vt_pending_until_ns is not None):
            value = max(value, float(beat.vt_run))
        spec, episode = p.specs["vt"], p.tracker("vt").episode
        hold = p.vt_hold
        if hold is not None:  # the decision waits: count the run on, feed nothing (the alarm's trigger is earlier)
            hold.latest_ns, hold.latest_value = b, value
            if beat.vt_confirmed is None:
                return
            self._decide_vt(sink, patient, p, beat.vt_confirmed, beat.vt_reason, now)  # a later verdict decides
            episode = p.tracker("vt").episode
        showing = episode is not None and episode.present
        if (beat.label == "V" and beat.vt_pending_until_ns is not None and not showing
                and spec.beyond(value, spec.tiers[0].limit)):
            p.vt_hold = _VtHold(b, value, beat.vt_pending_until_ns, now, beat.vt_reason, b, value)
            return
        doubted = (beat.vt_confirmed is False and spec.beyond(value, spec.tiers[0].limit)
                   and (episode is None or not episode.present))
        if doubted:
            self._feed(sink, patient, p, "vt", 0.0, b, now)
            self._feed(sink, patient, p, "vt_unconfirmed", 1.0, b, now, f"VT unconfirmed: {beat.vt_reason}")
            return
        note = f"{beat.vt_reason}" if beat.vt_confirmed and beat.vt_reason else ""
        self._feed(sink, patient, p, "vt", value, b, now, note)
        self._feed(sink, patient, p, "vt_unconfirmed", 0.0, b, now)

    def _decide_vt(self, sink: _Sink, patient: str, p: _Patient, confirmed: bool, reason: str, now: int) -> None:
        """End a held run: the alarm (trigger: the beat that reached the limit) or the advisory, then catch up
        with the beats seen while it waited."""
        hold, p.vt_hold = p.vt_hold, None
        assert hold is not None
        spec, limit = p.specs["vt"], p.specs["vt"].tiers[0].limit
        steps = [(hold.trigger_ns, hold.value)]
        if hold.latest_ns > hold.trigger_ns:
            steps.append((hold.latest_ns, hold.latest_value))
        for t, value in steps:
            episode = p.tracker("vt").episode
            if not confirmed and spec.beyond(value, limit) and (episode is None or not episode.present):
                self._feed(sink, patient, p, "vt", 0.0, t, now)
                self._feed(sink, patient, p, "vt_unconfirmed", 1.0, t, now, f"VT unconfirmed: {reason}")
            else:
                self._feed(sink, patient, p, "vt", value, t, now, reason if confirmed else "")
                self._feed(sink, patient, p, "vt_unconfirmed", 0.0, t, now)

    def _vt_hold_due(self, sink: _Sink, patient: str, p: _Patient, device_time_ns: int, now: int) -> Outcome:
        """Never forget a held run: once the stream has passed its wait, it is confirmed (in doubt, never reject)."""
        hold = p.vt_hold
        if hold is not None and device_time_ns >= hold.until_ns:
            self._decide_vt(sink, patient, p, True, f"{hold.reason}: no decision within the wait, so confirmed", now)
        return sink.outcome()

    def _vt_value(self, run: tuple[int, int, int] | None) -> float:
        """Length of the current ventricular run, or 0 when it is slower than the VT rate."""
        if run is None:
            return 0.0
        first, last, count = run
        if count < 2:
            return float(count)
        rate = 60 * NS * (count - 1) / max(last - first, 1)
        return float(count) if rate > self.config.vt_min_rate_bpm else 0.0

    @staticmethod
    def _targets(p: _Patient, alarm_id: str | None, condition: Condition | None) -> list[tuple[Condition, _Episode]]:
        found = []
        for c, tracker in p.trackers.items():
            ep = tracker.episode
            if ep is None or (alarm_id is not None and ep.alarm_id != alarm_id):
                continue
            if condition is not None and c != condition:
                continue
            found.append((c, ep))
        return found

    def _feed(self, sink: _Sink, patient: str, p: _Patient, condition: Condition, value: float, t: int, now: int,
              note: str = "") -> None:
        """One sample of one condition's value stream: the onset/hysteresis state machine."""
        spec, tracker, value = p.specs[condition], p.tracker(condition), float(value)
        if tracker.last_sample_ns is not None and t < tracker.last_sample_ns:
            return  # stale or reordered sample: device time never runs backwards within a stream
        tracker.last_sample_ns = t
        confirmed = None
        for tier in spec.tiers:
            if spec.beyond(value, tier.limit):
                start = tracker.since.setdefault(tier.priority, t)
                if t - start >= round(tier.onset_delay_s * NS):
                    confirmed = tier
            else:
                tracker.since.pop(tier.priority, None)
        ep = tracker.episode
        if ep is None:
            if confirmed is None:
                return
            tracker.episodes += 1
            onset = tracker.since[confirmed.priority]
            ep = tracker.episode = _Episode(f"{patient}:{condition}:{tracker.episodes}:{onset}", confirmed.priority,
                                            onset, t, value, confirmed.limit, now, now)
            self._notify(sink, patient, p, condition, ep, "raised", now,
                         _with_reason(_crossing(spec, value, confirmed.limit, confirmed.onset_delay_s), note))
            return
        ep.value = value
        if confirmed is not None:
            tracker.clear_since = None
            ep.present = True  # a latched alarm whose condition returns stays the same alarm
            if rank(confirmed.priority) > rank(ep.priority):
                old = ep.priority
                ep.priority, ep.priority_since_ns = confirmed.priority, now
                ep.onset_ns, ep.trigger_ns, ep.limit = tracker.since[confirmed.priority], t, confirmed.limit
                ep.silenced_until_ns = None
                self._notify(sink, patient, p, condition, ep, "escalated", now, _with_reason(
                    f"{old} -> {confirmed.priority}: "
                    f"{_crossing(spec, value, confirmed.limit, confirmed.onset_delay_s)}", note))
            return
        if not ep.present or not spec.cleared_by(value):
            tracker.clear_since = None
            return
        start = tracker.clear_since = t if tracker.clear_since is None else tracker.clear_since
        if t - start < round(spec.clear_delay_s * NS):
            return
        tracker.clear_since = None
        ep.onset_ns, ep.trigger_ns, ep.limit = start, t, spec.clear_threshold
        why = _with_reason(f"back past {spec.clear_threshold:g} {spec.unit} for {spec.clear_delay_s:g} s", note)
        if spec.latches(ep.priority) and not ep.acknowledged:
            ep.present = False
            if not ep.latched_noticed:
                ep.latched_noticed = True
                self._notify(sink, patient, p, condition, ep, "latched", now,
                             f"{why}; stays until acknowledged")
            return
        tracker.episode = None
        self._notify(sink, patient, p, condition, ep, "cleared", now, why)

    def _notify(self, sink: _Sink, patient: str, p: _Patient, condition: Condition, ep: _Episode,
                state: NoticeState, now: int, reason: str, by: str = ENGINE_ACTOR) -> None:
        spec = p.specs[condition]
        sink.notices.append(AlarmNotice(ep.alarm_id, patient, condition, spec.category, ep.priority, state, ep.value,
                                        ep.limit, ep.onset_ns, ep.trigger_ns, now, ep.acknowledged,
                                        ep.silenced_until_ns, by, reason))
        sink.audit.append(AuditEntry(now, by, f"alarm.{state}", "applied", patient, ep.alarm_id, condition, reason,
                                     priority=ep.priority, value=ep.value))

    @staticmethod
    def _audit_command(sink: _Sink, now: int, by: str | None, name: str, outcome: AuditOutcome, patient: str | None,
                       alarm_id: str | None, condition: str | None, reason: str, command_id: str | None) -> None:
        """The command's own entry goes first: it is the cause of the transitions recorded after it."""
        sink.audit.insert(0, AuditEntry(now, by or "unknown", f"command.{name}", outcome, patient, alarm_id,
                                        condition, reason, command_id))



def _crossing(spec: ConditionSpec, value: float, limit: float, delay_s: float) -> str:
    return f"{spec.condition} {value:g} {_OPS[spec.direction]} {limit:g} {spec.unit} for >= {delay_s:g} s"


def _with_reason(text: str, reason: str) -> str:
    return f"{text} ({reason})" if reason else text


def _describe(spec: ConditionSpec) -> str:
    tiers = ", ".join(f"{t.priority} {_OPS[spec.direction]} {t.limit:g}" for t in spec.tiers)
    return f"[{tiers}; hysteresis {spec.hysteresis:g} {spec.unit}]"


def _news2_note(score: News2Result) -> str:
    parts: Iterable[str] = (f"{k}={v}" for k, v in score.subscores.items() if v is not None)
    note = f"NEWS2 {score.band}: " + " ".join(parts)
    if score.partial:
        note += f"; partial, missing {', '.join(score.missing)}"
    return note
