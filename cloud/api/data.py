"""What the API reads, in one place: synchronous SQLAlchemy Core over the cloud database.

The stream processor owns ``feature_windows`` and ``risk_reports``; they are named here as
lightweight tables with only the key columns and the serialized ``payload``, so a change on
their side is a one-line change here. Rows come back as protobuf messages (the same bytes
Kafka and Redis carry), and the GraphQL layer maps them. Callers on the event loop run these
in a worker thread.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, column, func, select, table
from sqlalchemy.exc import OperationalError, ProgrammingError

from cardiogate.cloud.db import alarms_current, device_status, latest_vitals
from cardiogate.cloud.registry.schema import gateways, model_aliases, model_versions, sites
from cardiogate.proto.v1 import features_pb2

feature_windows = table("feature_windows", column("patient"), column("width_s"), column("start_device_time_ns"),
                        column("end_device_time_ns"), column("revision"), column("payload"))
risk_reports = table("risk_reports", column("patient"), column("width_s"), column("start_device_time_ns"),
                     column("revision"), column("computed_time_ns"), column("score"), column("payload"))
ecg_blocks = table("ecg_blocks", column("patient"), column("device_id"), column("first_sample_device_time_ns"),
                   column("sample_rate_hz"), column("scale"), column("unit"), column("encoding"),
                   column("sample_count"), column("samples"))
MAX_WINDOWS = 2000
CLEARED = "cleared"  # every other state (raised, escalated, acknowledged, silenced, unsilenced, latched) is active
RISK_TREND_POINTS = 12
ECG_LOOKBACK_NS = 900 * 10**9  # the longest block served: 65536 samples (the ingest's limit) at 73 Hz or more


@dataclass(frozen=True)
class VitalRow:
    name: str
    value: float
    device_time_ns: int
    device_id: str


@dataclass(frozen=True)
class AlarmRow:
    alarm_id: str
    device_id: str
    gateway: str
    condition: str
    priority: str
    state: str
    value: float
    limit: float
    raised_time_ns: int | None
    cleared_time_ns: int | None
    updated_time_ns: int


@dataclass(frozen=True)
class StatusRow:
    """A patient's wearables at a glance: any link up, the lowest battery, the newest rhythm class."""

    connected: bool | None = None
    battery_percent: float | None = None
    rhythm: str | None = None


@dataclass(frozen=True)
class PatientRows:
    """Everything a ward tile shows of one patient, read in one pass over many patients."""

    pseudonym: str
    site: str | None
    vitals: list[VitalRow]
    alarms: list[AlarmRow]
    risk: features_pb2.RiskReport | None
    status: StatusRow
    window: features_pb2.FeatureWindow | None
    risk_trend: list[float]


@dataclass(frozen=True)
class EcgBlockRow:
    device_id: str
    first_ns: int
    sample_rate_hz: float
    scale: float
    unit: str
    encoding: str
    sample_count: int
    samples: bytes


@dataclass(frozen=True)
class ModelRow:
    name: str
    version: str
    task: str
    sha256: str
    metrics: dict[str, Any]
    model_card: str
    created_ns: int
    aliases: tuple[str, ...]


def _payload(value: Any) -> bytes:
    return bytes(value) if not isinstance(value, str) else value.encode("latin-1")


class ApiData:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(select(1))

    def vitals(self, pseudonym: str) -> list[VitalRow]:
        t = latest_vitals.c
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.vital, t.value, t.device_time_ns, t.device_id)
                                .where(t.patient == pseudonym).order_by(t.vital)).all()
        return [VitalRow(r.vital, r.value, r.device_time_ns, r.device_id) for r in rows]

    def vitals_of(self, pseudonyms: Sequence[str]) -> dict[str, list[VitalRow]]:
        """:meth:`vitals` of many patients in one query (the ward list)."""
        t = latest_vitals.c
        out: dict[str, list[VitalRow]] = {p: [] for p in pseudonyms}
        with self.engine.connect() as conn:
            for r in conn.execute(select(t.patient, t.vital, t.value, t.device_time_ns, t.device_id)
                                  .where(t.patient.in_(list(pseudonyms))).order_by(t.patient, t.vital)):
                out[r.patient].append(VitalRow(r.vital, r.value, r.device_time_ns, r.device_id))
        return out

    def active_alarms_of(self, pseudonyms: Sequence[str]) -> dict[str, list[AlarmRow]]:
        """The active alarms of many patients in one query, newest first."""
        t = alarms_current.c
        out: dict[str, list[AlarmRow]] = {p: [] for p in pseudonyms}
        with self.engine.connect() as conn:
            for r in conn.execute(select(alarms_current).where(t.patient.in_(list(pseudonyms)), t.state != CLEARED)
                                  .order_by(t.updated_time_ns.desc())):
                out[r.patient].append(AlarmRow(r.alarm_id, r.device_id, r.gateway, r.condition, r.priority, r.state,
                                               r.value, r.limit, r.raised_time_ns, r.cleared_time_ns,
                                               r.updated_time_ns))
        return out

    def latest_risks_of(self, pseudonyms: Sequence[str]) -> dict[str, features_pb2.RiskReport]:
        """:meth:`latest_risk` of many patients in one query (the newest row per patient by a window function)."""
        t = risk_reports.c
        rank = func.row_number().over(partition_by=t.patient, order_by=(
            t.start_device_time_ns.desc(), t.revision.desc(), t.computed_time_ns.desc())).label("rank")
        ranked = select(t.patient, t.payload, rank).where(t.patient.in_(list(pseudonyms))).subquery()
        try:
            with self.engine.connect() as conn:
                rows = conn.execute(select(ranked.c.patient, ranked.c.payload).where(ranked.c.rank == 1)).all()
        except (OperationalError, ProgrammingError):
            return {}
        return {r.patient: features_pb2.RiskReport.FromString(_payload(r.payload)) for r in rows}

    def status_of(self, pseudonyms: Sequence[str]) -> dict[str, StatusRow]:
        """Per patient over its wearables: connected if any link is up (None: no link event yet), the lowest
        battery (the one that needs changing first), the rhythm class reported last."""
        t = device_status.c
        rows: dict[str, list[Any]] = {p: [] for p in pseudonyms}
        with self.engine.connect() as conn:
            for r in conn.execute(select(device_status).where(t.patient.in_(list(pseudonyms)))):
                rows[r.patient].append(r)
        out = {}
        for patient, devices in rows.items():
            links = [r.connected for r in devices if r.connected is not None]
            batteries = [r.battery_percent for r in devices if r.battery_percent is not None]
            rhythms = sorted((r.rhythm_time_ns, r.rhythm) for r in devices if r.rhythm is not None)
            out[patient] = StatusRow(connected=any(links) if links else None,
                                     battery_percent=min(batteries) if batteries else None,
                                     rhythm=rhythms[-1][1] if rhythms else None)
        return out

    def latest_windows_of(self, pseudonyms: Sequence[str], width_s: int) -> dict[str, features_pb2.FeatureWindow]:
        """Each patient's newest closed window of ``width_s`` (its highest revision)."""
        t = feature_windows.c
        rank = func.row_number().over(partition_by=t.patient, order_by=(
            t.start_device_time_ns.desc(), t.revision.desc())).label("rank")
        ranked = (select(t.patient, t.payload, rank)
                  .where(t.patient.in_(list(pseudonyms)), t.width_s == width_s).subquery())
        try:
            with self.engine.connect() as conn:
                rows = conn.execute(select(ranked.c.patient, ranked.c.payload).where(ranked.c.rank == 1)).all()
        except (OperationalError, ProgrammingError):
            return {}
        return {r.patient: features_pb2.FeatureWindow.FromString(_payload(r.payload)) for r in rows}

    def risk_trends_of(self, pseudonyms: Sequence[str], points: int = RISK_TREND_POINTS,
                       width_s: int = 60) -> dict[str, list[float]]:
        """The scores of each patient's last ``points`` windows of ``width_s`` (highest revision), oldest first."""
        t = risk_reports.c
        rank = func.row_number().over(partition_by=t.patient, order_by=(
            t.start_device_time_ns.desc(), t.revision.desc())).label("rank")
        ranked = (select(t.patient, t.start_device_time_ns, t.revision, t.score, rank)
                  .where(t.patient.in_(list(pseudonyms)), t.width_s == width_s).subquery())
        # Revisions of a window share its start: taking ``points`` starts may need a few more rows than that.
        query = (select(ranked).where(ranked.c.rank <= points * 3)
                 .order_by(ranked.c.patient, ranked.c.start_device_time_ns, ranked.c.revision))
        try:
            with self.engine.connect() as conn:
                rows = conn.execute(query).all()
        except (OperationalError, ProgrammingError):
            return {p: [] for p in pseudonyms}
        latest: dict[str, dict[int, float]] = {p: {} for p in pseudonyms}
        for r in rows:  # ascending revision: the highest one of a window is written last
            latest[r.patient][r.start_device_time_ns] = float(r.score)
        return {p: [score for _, score in sorted(by_start.items())][-points:] for p, by_start in latest.items()}

    def alarms(self, pseudonym: str, active_only: bool) -> list[AlarmRow]:
        t = alarms_current.c
        query = select(alarms_current).where(t.patient == pseudonym).order_by(t.updated_time_ns.desc())
        if active_only:
            query = query.where(t.state != CLEARED)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [AlarmRow(r.alarm_id, r.device_id, r.gateway, r.condition, r.priority, r.state, r.value, r.limit,
                         r.raised_time_ns, r.cleared_time_ns, r.updated_time_ns) for r in rows]

    def latest_risk(self, pseudonym: str) -> features_pb2.RiskReport | None:
        """The newest window's report (its highest revision); None before the processor wrote one."""
        t = risk_reports.c
        query = (select(t.payload).where(t.patient == pseudonym)
                 .order_by(t.start_device_time_ns.desc(), t.revision.desc(), t.computed_time_ns.desc())
                 .limit(1))
        try:
            with self.engine.connect() as conn:
                row = conn.execute(query).first()
        except (OperationalError, ProgrammingError):  # the processor's tables are not there (yet)
            return None
        return features_pb2.RiskReport.FromString(_payload(row.payload)) if row is not None else None

    def windows(self, pseudonym: str, width_s: int, from_ns: int, to_ns: int) -> list[features_pb2.FeatureWindow]:
        t = feature_windows.c
        query = (select(t.payload).where(t.patient == pseudonym, t.width_s == width_s,
                                         t.start_device_time_ns >= from_ns, t.start_device_time_ns < to_ns)
                 .order_by(t.start_device_time_ns).limit(MAX_WINDOWS))
        try:
            with self.engine.connect() as conn:
                rows = conn.execute(query).all()
        except (OperationalError, ProgrammingError):
            return []
        return [features_pb2.FeatureWindow.FromString(_payload(r.payload)) for r in rows]

    def recent_windows(self, pseudonym: str, width_s: int, from_ns: int | None, to_ns: int | None,
                       limit: int) -> list[features_pb2.FeatureWindow]:
        """The newest ``limit`` windows starting in [from_ns, to_ns) (either bound open), newest first."""
        t = feature_windows.c
        query = select(t.payload).where(t.patient == pseudonym, t.width_s == width_s)
        if from_ns is not None:
            query = query.where(t.start_device_time_ns >= from_ns)
        if to_ns is not None:
            query = query.where(t.start_device_time_ns < to_ns)
        query = query.order_by(t.start_device_time_ns.desc()).limit(min(limit, MAX_WINDOWS))
        try:
            with self.engine.connect() as conn:
                rows = conn.execute(query).all()
        except (OperationalError, ProgrammingError):
            return []
        return [features_pb2.FeatureWindow.FromString(_payload(r.payload)) for r in rows]

    def ecg_blocks(self, pseudonym: str, from_ns: int, to_ns: int) -> list[EcgBlockRow]:
        """Stored ECG blocks that may overlap [from_ns, to_ns), oldest first (the caller trims)."""
        t = ecg_blocks.c
        query = (select(ecg_blocks).where(t.patient == pseudonym, t.first_sample_device_time_ns < to_ns,
                                          t.first_sample_device_time_ns >= from_ns - ECG_LOOKBACK_NS)
                 .order_by(t.first_sample_device_time_ns))
        try:
            with self.engine.connect() as conn:
                rows = conn.execute(query).all()
        except (OperationalError, ProgrammingError):
            return []
        return [EcgBlockRow(r.device_id, r.first_sample_device_time_ns, r.sample_rate_hz, r.scale, r.unit,
                            r.encoding, r.sample_count, _payload(r.samples)) for r in rows]

    def sites(self, only: Sequence[str] | None) -> list[tuple[str, str]]:
        query = select(sites.c.site_id, sites.c.name).order_by(sites.c.site_id)
        if only is not None:
            query = query.where(sites.c.site_id.in_(sorted(only)))
        with self.engine.connect() as conn:
            return [(r.site_id, r.name) for r in conn.execute(query)]

    def gateways(self, only_sites: Sequence[str] | None) -> list[Any]:
        query = select(gateways).order_by(gateways.c.gateway_id)
        if only_sites is not None:
            query = query.where(gateways.c.site_id.in_(sorted(only_sites)))
        with self.engine.connect() as conn:
            return list(conn.execute(query).all())

    def models(self, name: str | None = None) -> list[ModelRow]:
        query = select(model_versions).order_by(model_versions.c.name, model_versions.c.created_ns)
        if name is not None:
            query = query.where(model_versions.c.name == name)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
            aliases: dict[tuple[str, str], list[str]] = {}
            for a in conn.execute(select(model_aliases)):
                aliases.setdefault((a.name, a.version), []).append(a.alias)
        return [ModelRow(r.name, r.version, r.task, r.sha256, json.loads(r.metrics or "{}"), r.model_card,
                         r.created_ns, tuple(sorted(aliases.get((r.name, r.version), [])))) for r in rows]
