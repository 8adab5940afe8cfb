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

from sqlalchemy import Engine, column, select, table
from sqlalchemy.exc import OperationalError, ProgrammingError

from cardiogate.cloud.db import alarms_current, latest_vitals
from cardiogate.cloud.registry.schema import gateways, model_aliases, model_versions, sites
from cardiogate.proto.v1 import features_pb2

feature_windows = table("feature_windows", column("patient"), column("width_s"), column("start_device_time_ns"),
                        column("end_device_time_ns"), column("revision"), column("payload"))
risk_reports = table("risk_reports", column("patient"), column("width_s"), column("start_device_time_ns"),
                     column("revision"), column("computed_time_ns"), column("payload"))
MAX_WINDOWS = 2000


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

    def alarms(self, pseudonym: str, active_only: bool) -> list[AlarmRow]:
        t = alarms_current.c
        query = select(alarms_current).where(t.patient == pseudonym).order_by(t.updated_time_ns.desc())
        if active_only:
            query = query.where(t.state == "active")
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
