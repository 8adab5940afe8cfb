"""Dashboard tables from Kafka records (SQLite): idempotent by (gateway, stream, sequence), and
late or replayed records never move state back in time."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from cardiogate.cloud.db import alarm_events, alarms_current, latest_vitals, make_engine
from cardiogate.cloud.store import Delivered, apply, decode
from cardiogate.proto.v1 import telemetry_pb2 as pb

DEV = "C0:00:00:00:05:01"


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    return make_engine(f"sqlite:///{tmp_path / 'c.sqlite3'}")


def alarm(seq: int, state: int, t: int, value: float = 130.0, priority: int = pb.ALARM_PRIORITY_MEDIUM) -> Delivered:
    rec = pb.Record(stream_id=f"{DEV}/alarms", sequence=seq, device_id=DEV, patient="pt-0501",
                    kind=pb.STREAM_KIND_ALARMS)
    rec.alarm.alarm_id = "pt-0501:hr_high:1"
    rec.alarm.condition = "hr_high"
    rec.alarm.priority = priority  # type: ignore[assignment]
    rec.alarm.state = state  # type: ignore[assignment]
    rec.alarm.value = value
    rec.alarm.decision_time_ns = t
    return Delivered("gw-s", rec)


def hr(seq: int, t: int, bpm: float) -> Delivered:
    return Delivered("gw-s", pb.Record(stream_id=f"{DEV}/vitals", sequence=seq, device_id=DEV, patient="pt-0501",
                                       kind=pb.STREAM_KIND_VITALS,
                                       vitals=pb.VitalsRecord(device_time_ns=t, receive_time_ns=t, heart_rate_bpm=bpm)))


def current(engine: Engine) -> tuple[object, ...]:
    with engine.connect() as conn:
        return tuple(conn.execute(select(alarms_current.c.state, alarms_current.c.priority, alarms_current.c.value,
                                         alarms_current.c.raised_time_ns, alarms_current.c.cleared_time_ns)).one())


def test_alarm_state_follows_new_events_only(engine: Engine) -> None:
    with engine.begin() as conn:
        assert apply(conn, alarm(0, pb.ALARM_STATE_RAISED, 100)) == "alarm"
        assert apply(conn, alarm(0, pb.ALARM_STATE_RAISED, 100)) == "duplicate"
        # a later state this consumer has no special meaning for (escalated, acknowledged, ...)
        assert apply(conn, alarm(1, 3, 200, value=155.0, priority=pb.ALARM_PRIORITY_HIGH)) == "alarm"
    state, priority, value, raised, cleared = current(engine)
    assert state != "cleared" and raised == 100 and cleared is None
    if state == "escalated":  # a tier change carries the new priority and value
        assert (priority, value) == ("high", 155.0)
    with engine.begin() as conn:
        apply(conn, alarm(2, pb.ALARM_STATE_CLEARED, 300))
        apply(conn, alarm(9, pb.ALARM_STATE_RAISED, 50))  # a late event from before: history only
    assert current(engine)[0] == "cleared" and current(engine)[3:] == (100, 300)
    with engine.connect() as conn:
        assert len(conn.execute(select(alarm_events.c.sequence)).all()) == 4


def test_latest_vital_only_moves_forward(engine: Engine) -> None:
    with engine.begin() as conn:
        for d in (hr(0, 100, 70.0), hr(2, 300, 90.0), hr(1, 200, 80.0), hr(2, 300, 90.0)):
            apply(conn, d)
    with engine.connect() as conn:
        assert conn.execute(select(latest_vitals.c.value, latest_vitals.c.sequence)).one() == (90.0, 2)


def test_decode_skips_what_is_not_a_record() -> None:
    rec = hr(5, 1, 60.0).record
    got = decode(rec.SerializeToString(), [("gateway", b"gw-x"), ("seq", b"5")])
    assert got is not None and got.gateway == "gw-x" and got.record == rec
    assert decode(b"\xff\x00garbage", []) is None
    assert decode(None, None) is None
