"""GraphQL types. The seed's names and shapes are kept as designed (RiskReport, NutritionReport,
ChatMessage, ...); everything else extends them. Times are ISO date-times (UTC): nanosecond
integers do not fit GraphQL's 32-bit Int.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

import strawberry
from strawberry.scalars import JSON

from cardiogate.cloud.api.data import AlarmRow, ModelRow, PatientRows, VitalRow
from cardiogate.proto.v1 import features_pb2


def ns_time(ns: int | None) -> datetime | None:
    return datetime.fromtimestamp(ns / 1e9, tz=UTC) if ns else None


def time_ns(value: datetime) -> int:
    moment = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return int(moment.timestamp()) * 10**9 + moment.microsecond * 1000


@strawberry.type
class RiskFactor:
    name: str
    value: float
    contribution: float
    description: str


@strawberry.type
class RiskReport:
    score: float
    confidence: float
    factors: list[RiskFactor]
    recommendations: list[str]
    level: str
    news2: int | None
    model_name: str
    model_version: str
    baseline: bool
    width_s: int
    window_start: datetime | None
    computed_at: datetime | None
    revision: int
    provisional: bool = strawberry.field(
        default=False, description="an alarm's immediate report; the window's own report supersedes it")
    trigger: str = ""

    @classmethod
    def of(cls, r: features_pb2.RiskReport) -> RiskReport:
        return cls(score=r.score, confidence=r.confidence,
                   factors=[RiskFactor(name=f.name, value=f.value, contribution=f.contribution,
                                       description=f.description) for f in r.factors],
                   recommendations=list(r.recommendations), level=r.level, news2=r.news2 if r.news2 >= 0 else None,
                   model_name=r.model_name, model_version=r.model_version, baseline=r.baseline, width_s=r.width_s,
                   window_start=ns_time(r.window_start_device_time_ns), computed_at=ns_time(r.computed_time_ns),
                   revision=r.revision, provisional=r.provisional, trigger=r.trigger)


@strawberry.type
class RiskUpdate:
    user_id: strawberry.ID
    score: float
    confidence: float
    level: str
    report: RiskReport


@strawberry.input(description="One phone-direct watch reading. `userId` is the patient's pseudonym, `time` the "
                               "watch's clock, `sequence` counts up per device (a resent sequence is not written "
                               "again). `steps` is not carried yet and must be left out.")
class SmartwatchInput:
    device_id: strawberry.ID
    user_id: strawberry.ID
    sequence: int
    time: datetime
    heart_rate: float | None = None
    spo2: float | None = None
    steps: int | None = None
    systolic: float | None = None
    diastolic: float | None = None
    rr_intervals_ms: list[float] | None = None


@strawberry.type
class Vital:
    name: str
    value: float
    time: datetime | None
    device_id: str

    @classmethod
    def of(cls, v: VitalRow) -> Vital:
        return cls(name=v.name, value=v.value, time=ns_time(v.device_time_ns), device_id=v.device_id)


@strawberry.type
class Alarm:
    alarm_id: strawberry.ID
    device_id: str
    gateway: str
    condition: str
    priority: str
    state: str
    value: float
    limit: float
    raised_at: datetime | None
    cleared_at: datetime | None
    updated_at: datetime | None

    @classmethod
    def of(cls, a: AlarmRow) -> Alarm:
        return cls(alarm_id=strawberry.ID(a.alarm_id), device_id=a.device_id, gateway=a.gateway, condition=a.condition,
                   priority=a.priority, state=a.state, value=a.value, limit=a.limit,
                   raised_at=ns_time(a.raised_time_ns), cleared_at=ns_time(a.cleared_time_ns),
                   updated_at=ns_time(a.updated_time_ns))


@strawberry.type
class Patient:
    pseudonym: strawberry.ID
    site: str | None
    vitals: list[Vital]
    risk: RiskReport | None
    news2: int | None
    active_alarms: list[Alarm]
    connected: bool | None = strawberry.field(description="any of the patient's wearables linked; null: not known yet")
    battery_percent: float | None = strawberry.field(description="the lowest battery among the patient's wearables")
    signal_quality: float | None = strawberry.field(description="the ECG's latest signal quality, 0..1")
    af_burden: float | None = strawberry.field(description="the AF share of the newest closed 1-minute window")
    rhythm: str | None = strawberry.field(description="the latest rhythm class: N normal, A AF, O other, ~ noisy")
    risk_trend: list[float] = strawberry.field(description="risk scores of the last 1-minute windows, oldest first")
    audio_paused: bool = strawberry.field(description="an active alarm's audio is silenced")

    @classmethod
    def of(cls, rows: PatientRows, risk: features_pb2.RiskReport | None) -> Patient:
        quality = next((v.value for v in rows.vitals if v.name == "signal_quality"), None)
        window = rows.window
        return cls(pseudonym=strawberry.ID(rows.pseudonym), site=rows.site, vitals=[Vital.of(v) for v in rows.vitals],
                   risk=RiskReport.of(risk) if risk else None,
                   news2=risk.news2 if risk is not None and risk.news2 >= 0 else None,
                   active_alarms=[Alarm.of(a) for a in rows.alarms], connected=rows.status.connected,
                   battery_percent=rows.status.battery_percent,
                   signal_quality=quality if quality is not None else (
                       window.signal_quality_mean if window is not None and window.HasField("signal_quality_mean")
                       else None),
                   af_burden=window.af_burden if window is not None and window.HasField("af_burden") else None,
                   rhythm=rows.status.rhythm, risk_trend=rows.risk_trend,
                   audio_paused=any(a.state == "silenced" for a in rows.alarms))


def _opt(msg: Any, name: str) -> float | None:
    return getattr(msg, name) if msg.HasField(name) else None


@strawberry.type
class FeatureWindow:
    start: datetime | None
    end: datetime | None
    width_s: int
    revision: int
    hr_mean: float | None
    hr_min: float | None
    hr_max: float | None
    sdnn_ms: float | None
    rmssd_ms: float | None
    spo2_min: float | None
    spo2_mean: float | None
    respiratory_rate_mean: float | None
    af_burden: float | None
    completeness: float | None
    samples_received: int
    samples_missing: int
    hr_count: int
    systolic_mean: float | None
    diastolic_mean: float | None
    signal_quality_mean: float | None
    alarm_counts: JSON
    rhythm_shares: JSON
    record_count: int
    late_record_count: int

    @classmethod
    def of(cls, w: features_pb2.FeatureWindow) -> FeatureWindow:
        return cls(start=ns_time(w.start_device_time_ns), end=ns_time(w.end_device_time_ns), width_s=w.width_s,
                   revision=w.revision, hr_mean=_opt(w, "hr_mean"), hr_min=_opt(w, "hr_min"),
                   hr_max=_opt(w, "hr_max"), sdnn_ms=_opt(w, "sdnn_ms"), rmssd_ms=_opt(w, "rmssd_ms"),
                   spo2_min=_opt(w, "spo2_min"), spo2_mean=_opt(w, "spo2_mean"),
                   respiratory_rate_mean=_opt(w, "respiratory_rate_mean"), af_burden=_opt(w, "af_burden"),
                   completeness=_opt(w, "completeness"), samples_received=w.samples_received,
                   samples_missing=w.samples_missing, hr_count=w.hr_count, systolic_mean=_opt(w, "systolic_mean"),
                   diastolic_mean=_opt(w, "diastolic_mean"), signal_quality_mean=_opt(w, "signal_quality_mean"),
                   alarm_counts=cast(JSON, dict(w.alarm_counts)), rhythm_shares=cast(JSON, dict(w.rhythm_shares)),
                   record_count=w.record_count, late_record_count=w.late_record_count)


@strawberry.type
class Site:
    site_id: strawberry.ID
    name: str


@strawberry.type
class Gateway:
    gateway_id: strawberry.ID
    site: str | None
    health: str
    software_version: str
    model_versions: JSON
    outbox_records: int
    outbox_bytes: int
    oldest_unsent_age_ms: int
    last_heartbeat: datetime | None
    connected_devices: int


@strawberry.type
class Model:
    name: str
    version: str
    task: str
    sha256: str
    metrics: JSON
    card: str
    created_at: datetime | None
    aliases: list[str]

    @classmethod
    def of(cls, m: ModelRow) -> Model:
        return cls(name=m.name, version=m.version, task=m.task, sha256=m.sha256, metrics=cast(JSON, m.metrics),
                   card=m.model_card, created_at=ns_time(m.created_ns), aliases=list(m.aliases))
