"""What the dashboards read, derived from Kafka records: latest vitals, alarms, gaps.

Every write is idempotent by (gateway, stream, sequence), because Kafka can hold a
record twice (an ingest that died between Kafka's confirmation and its ledger update
resends it): alarm events and gaps are keyed by it and inserted at most once; the
current alarm state changes only when its event was new; a latest vital is replaced
only by a strictly newer device time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Connection, case, func, or_

from cardiogate.cloud.db import (
    alarm_events,
    alarms_current,
    consumer_offsets,
    device_status,
    gaps,
    insert_for,
    latest_vitals,
)
from cardiogate.proto.v1 import telemetry_pb2 as pb

_TIER_STATES = ("raised", "escalated")
VITAL_FIELDS = ("heart_rate_bpm", "spo2_percent", "systolic_mmhg", "diastolic_mmhg", "pulse_rate_bpm",
                "mean_arterial_mmhg", "perfusion_index", "signal_quality")


@dataclass(frozen=True, slots=True)
class Delivered:
    """A record as read from Kafka, with the gateway that sent it (from the headers)."""

    gateway: str
    record: pb.Record

    @property
    def key(self) -> dict[str, object]:
        return {"gateway": self.gateway, "stream_id": self.record.stream_id, "sequence": self.record.sequence}


def decode(value: bytes | None, headers: list[tuple[str, bytes | None]] | None) -> Delivered | None:
    """None for a message that is not a cardiogate record (counted and skipped, never retried)."""
    record = pb.Record()
    try:
        record.ParseFromString(value or b"")
    except Exception:
        return None
    if not record.stream_id:
        return None
    gateway = next((v.decode(errors="replace") for k, v in headers or [] if k == "gateway" and v is not None), "")
    return Delivered(gateway, record)


def _enum(enum: type, prefix: str, value: int) -> str:
    try:
        name: str = enum.Name(value)  # type: ignore[attr-defined]
    except ValueError:
        return str(value)
    return name.removeprefix(prefix).lower()


def apply(conn: Connection, d: Delivered) -> str:
    """Apply one record inside the caller's transaction; returns what it was (for metrics)."""
    r = d.record
    which = r.WhichOneof("body")
    if which == "vitals":
        _vitals(conn, d)
        if d.record.vitals.rhythm:
            _status(conn, d, "rhythm_time_ns", d.record.vitals.device_time_ns, rhythm=d.record.vitals.rhythm[:8])
        return "vitals"
    if which == "alarm":
        return "alarm" if _alarm(conn, d) else "duplicate"
    if which == "event" and r.event.HasField("gap"):
        stmt = insert_for(conn, gaps).values(_gap_row(d)).on_conflict_do_nothing()
        return "gap" if _inserted(conn, stmt, gaps.c.sequence) else "duplicate"
    if which == "event" and r.event.HasField("link"):
        _status(conn, d, "link_time_ns", r.event.device_time_ns, connected=r.event.link.connected)
        return "device"
    if which == "event" and r.event.HasField("health") and r.event.health.HasField("battery_percent"):
        _status(conn, d, "health_time_ns", r.event.device_time_ns,
                battery_percent=float(r.event.health.battery_percent))
        return "device"
    return "ignored"


def _status(conn: Connection, d: Delivered, time_column: str, time_ns: int, **values: object) -> None:
    """One part of a wearable's status (link, battery or rhythm), replaced only by a newer one."""
    stmt = insert_for(conn, device_status).values(patient=d.record.patient, device_id=d.record.device_id,
                                                  gateway=d.gateway, **{time_column: time_ns}, **values)
    current = device_status.c[time_column]
    conn.execute(stmt.on_conflict_do_update(
        index_elements=[device_status.c.patient, device_status.c.device_id],
        set_={"gateway": stmt.excluded.gateway, time_column: stmt.excluded[time_column],
              **{name: stmt.excluded[name] for name in values}},
        where=or_(current.is_(None), current < stmt.excluded[time_column])))


def _vitals(conn: Connection, d: Delivered) -> None:
    r, v = d.record, d.record.vitals
    for name in VITAL_FIELDS:
        if not v.HasField(name):  # type: ignore[arg-type]
            continue
        stmt = insert_for(conn, latest_vitals).values(
            patient=r.patient, vital=name, value=getattr(v, name), device_time_ns=v.device_time_ns,
            receive_time_ns=v.receive_time_ns, device_id=r.device_id, gateway=d.gateway, stream_id=r.stream_id,
            sequence=r.sequence)
        ex = stmt.excluded
        conn.execute(stmt.on_conflict_do_update(
            index_elements=[latest_vitals.c.patient, latest_vitals.c.vital],
            set_={c: ex[c] for c in ("value", "device_time_ns", "receive_time_ns", "device_id", "gateway",
                                     "stream_id", "sequence")},
            where=latest_vitals.c.device_time_ns < ex.device_time_ns))


def _alarm(conn: Connection, d: Delivered) -> bool:
    r, a = d.record, d.record.alarm
    priority = _enum(pb.AlarmPriority, "ALARM_PRIORITY_", a.priority)
    state = _enum(pb.AlarmState, "ALARM_STATE_", a.state)
    history = insert_for(conn, alarm_events).values(
        **d.key, alarm_id=a.alarm_id, patient=r.patient, device_id=r.device_id, condition=a.condition,
        priority=priority, state=state, message=a.message, value=a.value, limit=a.limit,
        onset_sample_device_time_ns=a.onset_sample_device_time_ns,
        trigger_sample_device_time_ns=a.trigger_sample_device_time_ns, decision_time_ns=a.decision_time_ns,
        publish_time_ns=a.publish_time_ns)
    if not _inserted(conn, history.on_conflict_do_nothing(), alarm_events.c.sequence):
        return False
    raised = state == "raised"
    stmt = insert_for(conn, alarms_current).values(
        alarm_id=a.alarm_id, patient=r.patient, device_id=r.device_id, gateway=d.gateway, condition=a.condition,
        priority=priority, state=state, value=a.value, limit=a.limit,
        raised_time_ns=a.decision_time_ns if raised else None,
        cleared_time_ns=a.decision_time_ns if state == "cleared" else None, updated_time_ns=a.decision_time_ns)
    ex, cur = stmt.excluded, alarms_current.c
    updates = {"state": ex.state, "updated_time_ns": ex.updated_time_ns,
               "raised_time_ns": func.coalesce(cur.raised_time_ns, ex.raised_time_ns),
               "cleared_time_ns": case((ex.state == "cleared", ex.cleared_time_ns), else_=cur.cleared_time_ns)}
    if state in _TIER_STATES:  # the triggering value and tier change only when raised or escalated
        updates.update(priority=ex.priority, value=ex.value, limit=ex.limit)
    # An older event arriving late (a replay) must not move the alarm back in time.
    conn.execute(stmt.on_conflict_do_update(index_elements=[cur.alarm_id], set_=updates,
                                            where=cur.updated_time_ns <= ex.updated_time_ns))
    return True


def _inserted(conn: Connection, stmt: Any, column: ColumnElement[Any]) -> bool:
    """Whether an INSERT ... ON CONFLICT DO NOTHING added its row (rowcount is not reliable here)."""
    return conn.execute(stmt.returning(column)).first() is not None


def _gap_row(d: Delivered) -> dict[str, object]:
    r, e = d.record, d.record.event
    g = e.gap
    return {**d.key, "patient": r.patient, "device_id": r.device_id,
            "stream_kind": _enum(pb.StreamKind, "STREAM_KIND_", g.stream),
            "cause": _enum(pb.GapCause, "GAP_CAUSE_", g.cause),
            "device_sequence_first": g.device_sequence_first, "device_sequence_last": g.device_sequence_last,
            "start_device_time_ns": g.start_device_time_ns, "end_device_time_ns": g.end_device_time_ns,
            "missing_samples": g.missing_samples, "sample_rate_hz": g.sample_rate_hz,
            "receive_time_ns": e.receive_time_ns}


def save_offsets(conn: Connection, consumer: str, offsets: dict[tuple[str, int], int]) -> None:
    """Positions to resume from, in the same transaction as the rows they produced."""
    for (topic, partition), next_offset in offsets.items():
        stmt = insert_for(conn, consumer_offsets).values(consumer=consumer, topic=topic, partition=partition,
                                                         next_offset=next_offset)
        conn.execute(stmt.on_conflict_do_update(
            index_elements=[consumer_offsets.c.consumer, consumer_offsets.c.topic, consumer_offsets.c.partition],
            set_={"next_offset": stmt.excluded.next_offset},
            where=consumer_offsets.c.next_offset < stmt.excluded.next_offset))
