"""The fleet-history loader on a SQLite database with the cloud's real schema (migrated by the cloud's own
``open_database``, written through the processor's ``history.save``): rows recorded after a sample's prediction
time never move its features while an earlier window does, the label rule, exact drop counts, and clear answers
for an empty database and for one without the history tables."""

from __future__ import annotations

import itertools
import math
import re
import sqlite3
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import Engine, event, select, update

from cardiogate.cloud import history
from cardiogate.cloud.db import alarm_comments, alarm_events, alarm_labels, insert_for
from cardiogate.cloud.registry.migrate import open_database
from cardiogate.models.haim.fleet_history import (
    REQUIRED,
    FleetHistoryError,
    LabelAnswer,
    load_fleet_history,
    resolve_label,
)
from cardiogate.proto.v1 import features_pb2

S = 10**9
MIN = 60 * S
T0 = 1_700_000_040 * S  # a whole minute, device time
LABELLED_AT = T0 + 3 * 3600 * S  # the clinicians answer hours later (cloud clock)
T_A1 = T0 + 40 * MIN + 10 * S  # p-a's labelled alarm, inside the minute starting at T0+40 min
_SEQ = itertools.count(1)
FLOATS = ("hr_mean", "hr_min", "hr_max", "sdnn_ms", "rmssd_ms", "spo2_min", "spo2_mean", "systolic_mean",
          "diastolic_mean", "af_burden", "signal_quality_mean", "completeness", "mean_arterial_mean",
          "respiratory_rate_mean")


def window(patient: str, start: int, width_s: int = 60, hr: float = 70.0, revision: int = 0,
           computed: int | None = None) -> features_pb2.FeatureWindow:
    """A window as the processor publishes it: computed 90 s after its end (within the 120-s grace)."""
    end = start + width_s * S
    w = features_pb2.FeatureWindow(
        schema_version=1, patient=patient, width_s=width_s, start_device_time_ns=start, end_device_time_ns=end,
        revision=revision, computed_time_ns=end + 90 * S if computed is None else computed, record_count=12)
    w.hr_mean, w.hr_min, w.hr_max = hr, hr - 4, hr + 5
    w.sdnn_ms, w.rmssd_ms, w.spo2_min, w.spo2_mean = 40 + hr / 10, 30.0, 93.0, 96.0 - hr / 100
    w.systolic_mean, w.diastolic_mean, w.mean_arterial_mean = 120 + hr / 7, 80.0, 93.0
    w.respiratory_rate_mean, w.af_burden, w.signal_quality_mean, w.completeness = 16.0, 0.1, 0.9, 0.98
    return w


def save(engine: Engine, windows: list[features_pb2.FeatureWindow]) -> None:
    with engine.begin() as conn:
        history.save(conn, windows, [])


def alarm(engine: Engine, patient: str, alarm_id: str, state: str, at: int, condition: str = "hr_high",
          priority: str = "high", publish: int | None = None, value: float = 140.0) -> None:
    """An ``alarm_events`` row as the ingest stores it (device times; decision and publish on the gateway clock)."""
    with engine.begin() as conn:
        conn.execute(alarm_events.insert().values(
            gateway="gw-1", stream_id=f"{patient}/alarms", sequence=next(_SEQ), alarm_id=alarm_id, patient=patient,
            device_id="dev-1", condition=condition, priority=priority, state=state, message="", value=value,
            limit=130.0, onset_sample_device_time_ns=at - 5 * S, trigger_sample_device_time_ns=at,
            decision_time_ns=at + S // 10, publish_time_ns=at + S if publish is None else publish))


def label(engine: Engine, alarm_id: str, patient: str, username: str, is_true: bool, at: int) -> None:
    """The API's labelAlarm write: one row per (alarm, clinician), a second answer replaces the first."""
    values = {"alarm_id": alarm_id, "username": username, "patient": patient, "is_true": is_true, "note": "",
              "client": "test", "time_ns": at}
    with engine.begin() as conn:
        stmt = insert_for(conn, alarm_labels).values(**values)
        conn.execute(stmt.on_conflict_do_update(index_elements=["alarm_id", "username"],
                                                set_={"is_true": is_true, "time_ns": at}))


def hr_at(k: int) -> float:
    return 70.0 + 0.5 * k + 3 * math.sin(k)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    eng = open_database(f"sqlite:///{tmp_path / 'cloud.sqlite3'}")
    yield eng
    eng.dispose()


@pytest.fixture
def fleet(engine: Engine) -> Engine:
    """Three patients: p-a (an alarm two clinicians disagree on), p-b (two labelled alarms), p-c (a label on an
    alarm with no raise event)."""
    for p in ("p-a", "p-b"):
        save(engine, [window(p, T0 + k * MIN, hr=hr_at(k)) for k in range(60)]
             + [window(p, T0 + j * 5 * MIN, width_s=300, hr=hr_at(5 * j)) for j in range(12)])
    alarm(engine, "p-a", "A0", "raised", T0 + 25 * MIN, condition="spo2_low", priority="medium")
    alarm(engine, "p-a", "A0", "escalated", T0 + 27 * MIN, condition="spo2_low", priority="high")
    alarm(engine, "p-a", "A1", "raised", T_A1)
    label(engine, "A1", "p-a", "dr-1", True, LABELLED_AT)
    label(engine, "A1", "p-a", "dr-2", False, LABELLED_AT + 3600 * S)
    alarm(engine, "p-b", "B1", "raised", T0 + 20 * MIN + 30 * S)
    alarm(engine, "p-b", "B2", "raised", T0 + 50 * MIN, condition="af")
    label(engine, "B1", "p-b", "dr-1", True, LABELLED_AT)
    label(engine, "B2", "p-b", "dr-2", False, LABELLED_AT)
    label(engine, "C9", "p-c", "dr-1", True, LABELLED_AT)
    return engine


def by_alarm(engine: Engine, **kwargs: Any) -> dict[str | None, Any]:
    return {s.alarm_id: s for s in load_fleet_history(engine, **kwargs).samples}


def assert_same(a: Mapping[str, float], b: Mapping[str, float]) -> None:
    assert sorted(a) == sorted(b)
    names = sorted(a)
    assert np.array_equal(np.array([a[n] for n in names]), np.array([b[n] for n in names]), equal_nan=True)


def scramble_after(engine: Engine, t: int) -> None:
    """Change every row recorded after ``t`` and add more: windows (ending or computed after ``t``), alarm events,
    labels (a later answer flips A1's label), comments."""
    with engine.connect() as conn:
        stored = [features_pb2.FeatureWindow.FromString(r.payload) for r in conn.execute(
            select(history.feature_windows.c.payload).where(
                (history.feature_windows.c.end_device_time_ns > t) | (history.feature_windows.c.computed_time_ns > t)))]
    for w in stored:
        for name in FLOATS:
            setattr(w, name, getattr(w, name) * 1.7 + 3)
    assert len(stored) > 20
    save(engine, stored + [window("p-a", t + k * MIN, hr=200.0) for k in range(1, 40)])
    with engine.begin() as conn:
        conn.execute(update(alarm_events).where(alarm_events.c.trigger_sample_device_time_ns > t)
                     .values(value=999.0, priority="low", condition="changed"))
    alarm(engine, "p-a", "A1", "escalated", t + 2 * MIN, priority="high")
    alarm(engine, "p-a", "A1", "acknowledged", t + 3 * MIN)
    alarm(engine, "p-a", "A7", "raised", t + 4 * MIN, condition="brady")
    alarm(engine, "p-a", "A8", "raised", t - 10 * MIN, condition="brady", publish=t + 30 * S)  # a gateway backlog
    label(engine, "A1", "p-a", "dr-3", True, LABELLED_AT + 7200 * S)
    label(engine, "A7", "p-a", "dr-1", True, LABELLED_AT)
    with engine.begin() as conn:
        conn.execute(alarm_comments.insert().values(comment_id="c1", alarm_id="A1", patient="p-a", username="dr-1",
                                                    role="clinician", client="t", time_ns=LABELLED_AT, text="real"))


def test_rows_after_the_prediction_time_never_move_the_features(fleet: Engine) -> None:
    before = by_alarm(fleet)
    a1 = before["A1"]
    assert a1.prediction_time_ns == T_A1 and a1.label is False
    assert a1.features["w60s_windows"] == 27 and a1.features["w300s_windows"] == 4
    scramble_after(fleet, T_A1)
    after = by_alarm(fleet)
    assert_same(a1.features, after["A1"].features)
    assert after["A1"].label is True  # the later answer moved the label, and only the label
    assert after["A1"].priority == "high" and after["A1"].condition == "hr_high"  # as raised, not as escalated
    save(fleet, [window("p-a", T0 + 30 * MIN, hr=95.0)])  # a window known before T_A1
    moved = by_alarm(fleet)["A1"].features
    assert moved["w60s_hr_mean_max"] == 95.0 != a1.features["w60s_hr_mean_max"]
    assert moved["w60s_hr_mean_slope"] != a1.features["w60s_hr_mean_slope"]


def test_a_window_revised_after_the_prediction_time_is_dropped_not_read(fleet: Engine) -> None:
    """Only the newest revision is stored: one written after t replaces what was known at t, so it is left out."""
    base = load_fleet_history(fleet)
    save(fleet, [window("p-a", T0 + 30 * MIN, hr=150.0, revision=1, computed=T_A1 + 600 * S)])
    revised = load_fleet_history(fleet)
    a1 = next(s for s in revised.samples if s.alarm_id == "A1")
    assert a1.features["w60s_windows"] == 26 and a1.features["w60s_hr_mean_max"] < 150
    gained = {k: v - base.counts.get(k, 0) for k, v in revised.counts.items() if v != base.counts.get(k, 0)}
    assert gained == {"dropped_windows_revised_after_prediction": 1}  # for A1 (p-b's samples never read p-a's rows)


def test_alarm_features_and_the_samples(fleet: Engine) -> None:
    result = load_fleet_history(fleet)
    s = {x.alarm_id: x for x in result.samples}
    assert sorted(s) == ["A1", "B1", "B2"] and all(x.patient in ("p-a", "p-b") for x in result.samples)
    a1 = s["A1"].features
    assert (a1["alarms_before_total"], a1["alarms_30m_raised"], a1["alarms_30m_escalated"]) == (1, 1, 1)
    assert a1["alarms_30m_priority_medium"] == 1 and a1["alarms_30m_condition_spo2_low"] == 1
    assert a1["alarms_30m_priority_high"] == 0 and a1["alarm_value"] == 140.0
    assert s["B2"].features["alarms_30m_condition_hr_high"] == 1 and s["B1"].features["alarms_before_total"] == 0
    assert a1["w60s_newest_age_s"] == 130.0  # the minutes ending after T_A1 - 90 s were not published at T_A1
    assert a1["w60s_hr_mean_last"] == hr_at(37) and a1["w60s_respiratory_rate_mean_mean"] == 16.0
    ks = np.arange(11, 38)
    slope = np.polyfit(ks, [hr_at(k) for k in ks], 1)[0]
    assert a1["w60s_hr_mean_slope"] == pytest.approx(slope)
    names, x = result.matrix()
    assert x.shape == (3, len(names)) and "alarms_30m_condition_af" not in names  # B2's own condition: the anchor
    _, fixed = result.matrix(["alarms_30m_condition_af", "w60s_unknown", "alarms_30m_raised"])
    assert np.array_equal(fixed, [[0, np.nan, 1], [0, np.nan, 0], [0, np.nan, 1]], equal_nan=True)
    assert result.labels().tolist() == [0.0, 1.0, 0.0]


def test_label_rule_latest_answer_and_disagreement(fleet: Engine) -> None:
    s = by_alarm(fleet)
    assert (s["A1"].label, s["A1"].label_answers, s["A1"].label_disagreement) == (False, 2, True)
    assert (s["B1"].label, s["B1"].label_disagreement) == (True, False)
    dropped = load_fleet_history(fleet, on_disagreement="drop")
    assert {x.alarm_id: x.label for x in dropped.samples} == {"A1": None, "B1": True, "B2": False}
    assert dropped.counts["dropped_labels_disagreeing"] == 1 and dropped.counts["samples_unlabelled"] == 1
    label(fleet, "A1", "p-a", "dr-2", True, LABELLED_AT + 2 * 3600 * S)  # dr-2 changes their mind: no disagreement
    assert (by_alarm(fleet)["A1"].label, by_alarm(fleet)["A1"].label_disagreement) == (True, False)
    tie = [LabelAnswer("X", "p", "dr-b", False, 5), LabelAnswer("X", "p", "dr-a", True, 5)]
    assert resolve_label(tie).label is False  # same time: the username decides, so reruns agree


def test_explicit_prediction_times_label_the_horizon(fleet: Engine) -> None:
    times = {"p-a": T_A1 - 5 * MIN, "p-b": T0 + 15 * MIN, "p-z": T0 + 30 * MIN}
    result = load_fleet_history(fleet, times, label_horizon_s=10 * 60)
    s = {x.patient: x for x in result.samples}
    assert s["p-a"].alarm_id is None and s["p-a"].label is False  # A1's latest answer is false
    assert s["p-b"].label is True and s["p-z"].label is None and s["p-z"].features["w60s_windows"] == 0
    assert math.isnan(s["p-a"].features["alarm_value"]) and s["p-a"].prediction_time_ns == T_A1 - 5 * MIN
    assert load_fleet_history(fleet, {"p-b": T0 + 51 * MIN}, 600).samples[0].label is None  # no alarm in horizon
    with pytest.raises(ValueError, match="positive device time"):
        load_fleet_history(fleet, {"p-a": -1})


def test_every_dropped_row_is_counted_by_reason(engine: Engine) -> None:
    """One alarm at t; 45 one-minute windows from t - 40 min; alarms before, backlogged and after."""
    t = T_A1
    save(engine, [window("p-x", T0 + k * MIN) for k in range(45)])
    save(engine, [window("p-x", T0 + 20 * MIN, revision=1, computed=t + 3600 * S)])
    alarm(engine, "p-x", "W", "raised", T0 + MIN)
    alarm(engine, "p-x", "X", "raised", T0 + 30 * MIN)
    alarm(engine, "p-x", "X", "escalated", T0 + 35 * MIN)
    alarm(engine, "p-x", "Y", "raised", T0 + 38 * MIN, publish=t + 10 * S)
    alarm(engine, "p-x", "A", "raised", t)
    alarm(engine, "p-x", "A", "escalated", t + 2 * MIN)
    alarm(engine, "p-x", "A", "acknowledged", t + MIN)
    alarm(engine, "p-x", "Z", "raised", t + 3 * MIN)
    label(engine, "A", "p-x", "dr-1", True, LABELLED_AT)
    result = load_fleet_history(engine)
    assert {k: v for k, v in result.counts.items() if k.startswith("dropped_")} == {
        "dropped_alarm_events_after_prediction": 2, "dropped_alarm_events_published_after_prediction": 1,
        "dropped_labelled_alarms_without_raise_event": 0, "dropped_windows_before_lookback": 11,
        "dropped_windows_computed_after_prediction": 2, "dropped_windows_ending_after_prediction": 5,
        "dropped_windows_revised_after_prediction": 1}
    f = result.samples[0].features
    assert (f["w60s_windows"], f["alarms_before_total"], f["alarms_30m_raised"], f["alarms_30m_escalated"]) == (
        26, 2, 1, 1)


def test_labels_without_a_raise_event_are_counted(fleet: Engine) -> None:
    result = load_fleet_history(fleet)
    assert result.counts["dropped_labelled_alarms_without_raise_event"] == 1  # C9
    assert (result.counts["label_answers"], result.counts["labelled_alarms"]) == (5, 4)
    assert "3 samples (1 true, 2 false, 0 unlabelled)" in result.message


def test_an_empty_database_gives_no_samples_and_says_why(engine: Engine) -> None:
    said: list[str] = []
    result = load_fleet_history(engine, log=said.append)
    assert result.samples == [] and result.counts["samples"] == 0
    assert "no labelled alarms" in result.message and "labelAlarm" in result.message and said == [result.message]
    names, x = result.matrix()
    assert names == [] and x.shape == (0, 0)


def test_a_database_without_the_history_tables_names_what_is_missing(tmp_path: Path) -> None:
    path = tmp_path / "other.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE alarm_labels (alarm_id TEXT, username TEXT, patient TEXT, time_ns INTEGER)")
    with pytest.raises(FleetHistoryError) as err:
        load_fleet_history(f"sqlite:///{path}")
    message = str(err.value)
    assert "table feature_windows" in message and "table alarm_events" in message
    assert "column alarm_labels.is_true" in message and "0002_history" in message
    with pytest.raises(FleetHistoryError, match="no database file"):
        load_fleet_history(f"sqlite:///{tmp_path / 'typo.sqlite3'}")
    assert not (tmp_path / "typo.sqlite3").exists()  # read only: a wrong path creates nothing


def test_the_declared_columns_are_the_clouds_and_no_identity_table_is_read(fleet: Engine) -> None:
    real = {t.name: set(t.c.keys()) for t in (history.feature_windows, alarm_events, alarm_labels)}
    assert [f"{name}.{c}" for name, cols in REQUIRED.items() for c in cols if c not in real[name]] == []
    statements: list[str] = []
    event.listen(fleet, "before_cursor_execute", lambda *a: statements.append(str(a[2])))
    load_fleet_history(fleet)
    load_fleet_history(fleet, {"p-a": T_A1})
    read = {m.lower() for s in statements for m in re.findall(r"\bFROM\s+\"?(\w+)", s, re.IGNORECASE)}
    assert read - {"sqlite_master", "sqlite_temp_master"} <= {"feature_windows", "alarm_events", "alarm_labels"}
    assert not any(re.search(r"\b(patients|api_users|alarm_comments|gateway_commands|latest_vitals)\b", s)
                   for s in statements)
