"""Feature windows and risk reports as history tables, for the API: idempotent upserts.

Tables live on ``registry_metadata`` (Alembic-managed, migration 0002_history). A window may be
written again: a replay after a restart (the processor delivers at least once) or a revision
after late records. The row keyed by (patient, width_s, start_device_time_ns) keeps the highest
revision: an equal revision overwrites itself with the same values, a lower one changes nothing.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Column, Connection, Float, Index, Integer, LargeBinary, String, Table

from cardiogate.cloud.db import insert_for
from cardiogate.cloud.registry.schema import registry_metadata
from cardiogate.proto.v1 import features_pb2


def _key() -> list[Column[object]]:
    return [Column("patient", String(64), primary_key=True), Column("width_s", Integer, primary_key=True),
            Column("start_device_time_ns", BigInteger, primary_key=True)]


feature_windows = Table(
    "feature_windows", registry_metadata,
    *_key(),
    Column("end_device_time_ns", BigInteger, nullable=False),
    Column("revision", Integer, nullable=False),
    Column("computed_time_ns", BigInteger, nullable=False),
    Column("hr_mean", Float, nullable=True),
    Column("hr_min", Float, nullable=True),
    Column("hr_max", Float, nullable=True),
    Column("sdnn_ms", Float, nullable=True),
    Column("rmssd_ms", Float, nullable=True),
    Column("spo2_min", Float, nullable=True),
    Column("spo2_mean", Float, nullable=True),
    Column("systolic_mean", Float, nullable=True),
    Column("diastolic_mean", Float, nullable=True),
    Column("af_burden", Float, nullable=True),
    Column("signal_quality_mean", Float, nullable=True),
    Column("completeness", Float, nullable=True),
    Column("record_count", Integer, nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Index("ix_feature_windows_time", "width_s", "start_device_time_ns"),
)

risk_reports = Table(
    "risk_reports", registry_metadata,
    *_key(),
    Column("end_device_time_ns", BigInteger, nullable=False),
    Column("revision", Integer, nullable=False),
    Column("computed_time_ns", BigInteger, nullable=False),
    Column("score", Float, nullable=False),
    Column("confidence", Float, nullable=False),
    Column("news2", Integer, nullable=False),
    Column("level", String(16), nullable=False),
    Column("model_name", String(64), nullable=False),
    Column("model_version", String(40), nullable=False),
    Column("baseline", Integer, nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Index("ix_risk_reports_time", "width_s", "start_device_time_ns"),
)

_WINDOW_FLOATS = ("hr_mean", "hr_min", "hr_max", "sdnn_ms", "rmssd_ms", "spo2_min", "spo2_mean", "systolic_mean",
                  "diastolic_mean", "af_burden", "signal_quality_mean", "completeness")


def window_row(w: features_pb2.FeatureWindow) -> dict[str, Any]:
    row: dict[str, Any] = {
        "patient": w.patient, "width_s": w.width_s, "start_device_time_ns": w.start_device_time_ns,
        "end_device_time_ns": w.end_device_time_ns, "revision": w.revision, "computed_time_ns": w.computed_time_ns,
        "record_count": w.record_count, "payload": w.SerializeToString()}
    for name in _WINDOW_FLOATS:
        row[name] = getattr(w, name) if w.HasField(name) else None  # type: ignore[arg-type]
    return row


def report_row(r: features_pb2.RiskReport) -> dict[str, Any]:
    return {"patient": r.patient, "width_s": r.width_s, "start_device_time_ns": r.window_start_device_time_ns,
            "end_device_time_ns": r.window_end_device_time_ns, "revision": r.revision,
            "computed_time_ns": r.computed_time_ns, "score": r.score, "confidence": r.confidence, "news2": r.news2,
            "level": r.level, "model_name": r.model_name, "model_version": r.model_version,
            "baseline": int(r.baseline), "payload": r.SerializeToString()}


def _upsert(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    for row in rows:
        stmt = insert_for(conn, table).values(row)
        ex = stmt.excluded
        conn.execute(stmt.on_conflict_do_update(
            index_elements=[table.c.patient, table.c.width_s, table.c.start_device_time_ns],
            set_={c: ex[c] for c in row if c not in ("patient", "width_s", "start_device_time_ns")},
            where=table.c.revision <= ex.revision))


def save(conn: Connection, windows: list[features_pb2.FeatureWindow],
         reports: list[features_pb2.RiskReport]) -> None:
    """Upsert windows and reports inside the caller's transaction."""
    _upsert(conn, feature_windows, [window_row(w) for w in windows])
    _upsert(conn, risk_reports, [report_row(r) for r in reports])
