"""The transparent rule baseline that turns a feature window into a risk report: pure functions.

It serves until a model from the registry replaces it behind :class:`RiskModel`; every report it
makes says ``baseline=true``, names ``news2-baseline`` version ``1`` and calls itself a rule
baseline in plain words, so nobody mistakes it for a trained model.

NEWS2 (Royal College of Physicians, 2017), SpO2 scale 1, from what wearables measure: pulse
(window mean heart rate), SpO2 (window mean), systolic BP (window mean) and respiration rate
when a window has one. Temperature, consciousness (ACVPU) and air-or-oxygen are never measured
by the wearables, so the subtotal is a lower bound of the charted NEWS2 and the band is read
from that subtotal. The scoring table is the kernel's (cardiogate.core.news2), the one the
gateway's alarm engine uses.

Score (0..1): the NEWS2 subtotal over 7 (where "high" starts) weighs 0.6, AF burden 0.2, a
rising heart rate against the previous window 0.1 and raised high-priority alarms 0.1;
confidence is the share of the expected inputs that were present.

Provisional reports (:func:`provisional_assessment`): a window's report comes only after the
window closes plus grace, minutes after a gateway raised an alarm. So a raised or escalated
physiological alarm of high or medium priority gets a report at once, from whatever the
processor knows (the open window so far, else the last closed one) with the alarm folded in,
and a floor: high priority is at least "medium" (score 0.5), medium priority at least
"low-medium" (score 0.3), an escalated alarm one level more. It says ``provisional = true``
and names the alarm in ``trigger``; the window's own report supersedes it.
"""

from __future__ import annotations

import math
from typing import Protocol

from cardiogate.core.news2 import band_of, score_pulse, score_respiration_rate, score_spo2_scale1, score_systolic
from cardiogate.proto.v1 import features_pb2
from cardiogate.proto.v1 import telemetry_pb2 as pb

MODEL_NAME = "news2-baseline"
MODEL_VERSION = "1"
NOT_MEASURED = ("temperature", "consciousness", "air_or_oxygen")
_EXPECTED = ("pulse", "spo2", "systolic", "respiration_rate", "af_burden")
_HIGH = 7
LEVELS = ("low", "low-medium", "medium", "high")
PROVISIONAL_STATES = (pb.ALARM_STATE_RAISED, pb.ALARM_STATE_ESCALATED)
# priority -> (level floor, score floor) of a provisional report
ALARM_FLOORS = {pb.ALARM_PRIORITY_HIGH: ("medium", 0.5), pb.ALARM_PRIORITY_MEDIUM: ("low-medium", 0.3)}


class RiskModel(Protocol):
    """What the processor calls for each closed window; a registry model implements the same."""

    def assess(self, window: features_pb2.FeatureWindow,
               previous: features_pb2.FeatureWindow | None = None) -> features_pb2.RiskReport: ...


def _value(w: features_pb2.FeatureWindow, field: str) -> float | None:
    if not w.HasField(field):  # type: ignore[arg-type]
        return None
    value = float(getattr(w, field))
    return value if math.isfinite(value) else None


def news2_subscores(w: features_pb2.FeatureWindow) -> dict[str, tuple[float, int]]:
    """Parameter -> (value, points) for the NEWS2 parameters the window has."""
    scorers = (("pulse", "hr_mean", score_pulse), ("spo2", "spo2_mean", score_spo2_scale1),
               ("systolic", "systolic_mean", score_systolic),
               ("respiration_rate", "respiratory_rate_mean", score_respiration_rate))
    out = {}
    for name, field, scorer in scorers:
        value = _value(w, field)
        if value is not None and value > 0:
            out[name] = (value, scorer(value))
    return out


class News2Baseline:
    """NEWS2 subtotal, AF burden, heart-rate trend and raised alarms, each reported as a factor."""

    def assess(self, window: features_pb2.FeatureWindow,
               previous: features_pb2.FeatureWindow | None = None) -> features_pb2.RiskReport:
        report = features_pb2.RiskReport(
            schema_version=1, patient=window.patient, width_s=window.width_s,
            window_start_device_time_ns=window.start_device_time_ns,
            window_end_device_time_ns=window.end_device_time_ns, model_name=MODEL_NAME, model_version=MODEL_VERSION,
            baseline=True, revision=window.revision, computed_time_ns=window.computed_time_ns)
        subs = news2_subscores(window)
        total = sum(points for _, points in subs.values())
        report.news2 = total if subs else -1
        report.level = band_of(total, any(points == 3 for _, points in subs.values()))
        news2_part = 0.6 * min(1.0, total / _HIGH)
        missing = [p for p in ("pulse", "spo2", "systolic", "respiration_rate") if p not in subs]
        described = ", ".join(f"{name} {value:.0f} -> {points}" for name, (value, points) in subs.items())
        report.factors.add(
            name="news2", value=float(total), contribution=news2_part,
            description=(f"rule baseline NEWS2 subtotal {total} from {described or 'no vitals'}; not measured by "
                         f"wearables: {', '.join(NOT_MEASURED)}"
                         + (f"; missing in this window: {', '.join(missing)}" if missing else "")))
        score = news2_part
        af = _value(window, "af_burden")
        if af is not None:
            part = 0.2 * min(1.0, max(0.0, af))
            score += part
            report.factors.add(name="af_burden", value=af, contribution=part,
                               description=f"{af:.0%} of classified ECG segments were atrial fibrillation")
        trend = self._trend(window, previous)
        if trend is not None:
            part = 0.1 * min(1.0, max(0.0, trend) / 30.0)
            score += part
            report.factors.add(name="hr_trend", value=trend, contribution=part,
                               description=f"mean heart rate changed by {trend:+.0f} bpm against the previous window")
        high_alarms = window.alarm_counts.get("high", 0)
        raised = sum(window.alarm_counts.values())
        if raised:
            part = 0.1 if high_alarms else 0.0
            score += part
            counts = ", ".join(f"{n} {p}" for p, n in sorted(window.alarm_counts.items()))
            report.factors.add(name="alarms", value=float(raised), contribution=part,
                               description=f"alarms raised in the window: {counts}")
        report.score = min(1.0, score)
        present = len(subs) + (af is not None)
        report.confidence = present / len(_EXPECTED)
        report.recommendations.extend(self._recommendations(report.level, af, high_alarms))
        return report

    @staticmethod
    def _trend(window: features_pb2.FeatureWindow, previous: features_pb2.FeatureWindow | None) -> float | None:
        if previous is None or previous.width_s != window.width_s:
            return None
        now, before = _value(window, "hr_mean"), _value(previous, "hr_mean")
        return None if now is None or before is None else now - before

    @staticmethod
    def _recommendations(level: str, af: float | None, high_alarms: int) -> list[str]:
        advice = {"high": "urgent clinical review (NEWS2 high)",
                  "medium": "urgent review by a clinician (NEWS2 medium)",
                  "low-medium": "review by a clinician: one parameter scores 3",
                  "low": "continue monitoring"}
        out = [advice[level]]
        if af is not None and af >= 0.3:
            out.append("review the ECG for atrial fibrillation")
        if high_alarms:
            out.append("high-priority alarms were raised in this window")
        out.append("rule baseline (news2-baseline 1): a transparent rule, not a trained model; temperature, "
                   "consciousness and oxygen therapy are not measured, so NEWS2 may be higher")
        return out


def triggers_provisional(alarm: pb.Alarm) -> bool:
    """A raised or escalated physiological alarm of high or medium priority."""
    return (alarm.state in PROVISIONAL_STATES and alarm.priority in ALARM_FLOORS
            and alarm.category != "technical")


def provisional_assessment(alarm: pb.Alarm, alarm_time_ns: int, assessed: features_pb2.RiskReport | None,
                           computed_time_ns: int) -> features_pb2.RiskReport:
    """The immediate report for ``alarm``: ``assessed`` (the model's report on the open or last window,
    if any) raised to the alarm's floor; width 0, from the alarm's 1-minute window start to its time."""
    report = features_pb2.RiskReport()
    if assessed is not None:
        report.CopyFrom(assessed)
    else:
        report.schema_version, report.news2, report.level = 1, -1, "low"
        report.model_name, report.model_version, report.baseline = MODEL_NAME, MODEL_VERSION, True
    floor_level, floor_score = ALARM_FLOORS[alarm.priority]
    if alarm.state == pb.ALARM_STATE_ESCALATED:
        floor_level = LEVELS[min(len(LEVELS) - 1, LEVELS.index(floor_level) + 1)]
        floor_score = min(1.0, floor_score + 0.2)
    level = report.level if report.level in LEVELS else "low"
    report.level = max(level, floor_level, key=LEVELS.index)
    part = max(0.0, floor_score - report.score)
    report.score = max(report.score, floor_score)
    report.width_s = 0
    report.window_start_device_time_ns = alarm_time_ns - alarm_time_ns % 60_000_000_000
    report.window_end_device_time_ns = alarm_time_ns
    report.revision = 0
    report.computed_time_ns = computed_time_ns
    report.provisional = True
    report.trigger = f"alarm:{alarm.condition}:{alarm.alarm_id}"
    priority = "high" if alarm.priority == pb.ALARM_PRIORITY_HIGH else "medium"
    state = "escalated" if alarm.state == pb.ALARM_STATE_ESCALATED else "raised"
    report.factors.add(name="alarm", value=alarm.value, contribution=part,
                       description=f"{priority}-priority {alarm.condition} alarm {state} (value {alarm.value:g}, "
                                   f"limit {alarm.limit:g}); provisional until the window's report")
    if assessed is None:
        report.confidence = 0.0
    report.recommendations.insert(0, f"provisional: {priority}-priority {alarm.condition} alarm {state}; "
                                     "check the patient now")
    if not report.recommendations or all("rule baseline" not in r for r in report.recommendations):
        report.recommendations.append("rule baseline (news2-baseline 1) floor for a raised alarm; not a trained "
                                      "model")
    return report
