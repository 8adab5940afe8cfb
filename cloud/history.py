"""Feature windows and risk reports as history tables, for the API: idempotent upserts.

Tables live on ``registry_metadata`` (Alembic-managed, migration 0002_history). A window may be
written again: a replay after a restart (the processor delivers at least once) or a revision
after late records. The row keyed by (patient, width_s, start_device_time_ns) keeps the highest
revision: an equal revision overwrites itself with the same values, a lower one changes nothing.

Provisional risk reports (an alarm's immediate report, ``provisional = true``) are rows with
``width_s = 0``, keyed by their 1-minute window's start: they never overwrite a window's report,
a later alarm in the same minute replaces the earlier one, and the window's own report for that
minute (same start, computed later) reads as the newer one.

Raw ECG blocks (migration 0004_ecg_blocks) are kept exactly as received, keyed by (gateway,
stream_id, sequence) like every telemetry table, so a replayed record adds nothing; they are
written in batches (one multi-row insert per processor checkpoint) and pruned by device time
once older than the retention period.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Column, Connection, Float, Index, Integer, LargeBinary, String, Table, delete

from cardiogate.cloud.db import insert_for
from cardiogate.cloud.registry.schema import registry_metadata
from cardiogate.proto.v1 import features_pb2
from cardiogate.proto.v1 import telemetry_pb2 as pb


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

ecg_blocks = Table(
    "ecg_blocks", registry_metadata,
    Column("gateway", String(64), primary_key=True),
    Column("stream_id", String(160), primary_key=True),
    Column("sequence", BigInteger, primary_key=True),
    Column("patient", String(64), nullable=False),
    Column("device_id", String(64), nullable=False),
    Column("first_sample_device_time_ns", BigInteger, nullable=False),
    Column("sample_rate_hz", Float, nullable=False),
    Column("scale", Float, nullable=False),
    Column("unit", String(16), nullable=False),
    Column("encoding", String(16), nullable=False),
    Column("sample_count", Integer, nullable=False),
    Column("samples", LargeBinary, nullable=False),
    Index("ix_ecg_blocks_patient_time", "patient", "first_sample_device_time_ns"),
)

ENCODINGS = {pb.SAMPLE_ENCODING_INT16_LE: "int16_le", pb.SAMPLE_ENCODING_INT32_LE: "int32_le"}

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


_KEY_COLUMNS = ("patient", "width_s", "start_device_time_ns")
_upserts: dict[tuple[str, str, tuple[str, ...]], Any] = {}


def _upsert_statement(conn: Connection, table: Table, columns: tuple[str, ...]) -> Any:
    """One upsert per (dialect, table, columns), built once: building it per row was a third of the
    stream processor's CPU."""
    key = (conn.dialect.name, table.name, columns)
    stmt = _upserts.get(key)
    if stmt is None:
        insert = insert_for(conn, table)
        ex = insert.excluded
        stmt = insert.on_conflict_do_update(
            index_elements=[table.c[c] for c in _KEY_COLUMNS],
            set_={c: ex[c] for c in columns if c not in _KEY_COLUMNS},
            where=table.c.revision <= ex.revision)
        _upserts[key] = stmt
    return stmt


def _upsert(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Rows with the same columns go in one executemany (the row builders give every row all of them).

    One row per key first, the one a row-by-row upsert would have kept (the highest revision, the later
    of equals): PostgreSQL refuses a multi-row upsert that touches one row twice.
    """
    kept: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        key = tuple(row[c] for c in _KEY_COLUMNS)
        if key not in kept or row["revision"] >= kept[key]["revision"]:
            kept[key] = row
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in kept.values():
        groups.setdefault(tuple(row), []).append(row)
    for columns, same in groups.items():
        conn.execute(_upsert_statement(conn, table, columns), same)


def save(conn: Connection, windows: list[features_pb2.FeatureWindow],
         reports: list[features_pb2.RiskReport]) -> None:
    """Upsert windows and reports inside the caller's transaction."""
    _upsert(conn, feature_windows, [window_row(w) for w in windows])
    _upsert(conn, risk_reports, [report_row(r) for r in reports])


def ecg_row(record: pb.Record, gateway: str) -> dict[str, Any] | None:
    """The ``ecg_blocks`` row of an ECG record, timed like its features; None without a device time."""
    s = record.samples
    first = s.first_sample_corrected_time_ns or s.first_sample_device_time_ns
    if first <= 0 or s.sample_rate_hz <= 0 or s.encoding not in ENCODINGS:
        return None
    return {"gateway": gateway, "stream_id": record.stream_id, "sequence": record.sequence,
            "patient": record.patient, "device_id": record.device_id, "first_sample_device_time_ns": first,
            "sample_rate_hz": s.sample_rate_hz, "scale": s.scale, "unit": s.unit[:16],
            "encoding": ENCODINGS[s.encoding], "sample_count": s.sample_count, "samples": s.samples}


def save_ecg(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Insert blocks in one statement per call (executemany); a block already stored is left alone."""
    if rows:
        stmt = insert_for(conn, ecg_blocks).on_conflict_do_nothing(
            index_elements=[ecg_blocks.c.gateway, ecg_blocks.c.stream_id, ecg_blocks.c.sequence])
        conn.execute(stmt, rows)


def prune_ecg(conn: Connection, before_ns: int) -> int:
    """Delete blocks whose first sample is older than ``before_ns`` (device time); returns how many."""
    result = conn.execute(delete(ecg_blocks).where(ecg_blocks.c.first_sample_device_time_ns < before_ns))
    return int(result.rowcount or 0)
