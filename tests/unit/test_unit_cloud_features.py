"""Feature windows from telemetry records: exact values, order independence, missing inputs."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from cardiogate.cloud.features import event_time_ns, finalize, fold, merge, new_accumulator, window_start
from cardiogate.proto.v1 import telemetry_pb2 as pb

S = 1_000_000_000
T0 = 1_800_000_000 * S


def vitals(t: int = T0, **fields: object) -> pb.Record:
    return pb.Record(stream_id="d/vitals", patient="p", kind=pb.STREAM_KIND_VITALS,
                     vitals=pb.VitalsRecord(device_time_ns=t, **fields))  # type: ignore[arg-type]


def alarm(state: pb.AlarmState.ValueType, priority: pb.AlarmPriority.ValueType) -> pb.Record:
    return pb.Record(stream_id="d/alarms", patient="p", kind=pb.STREAM_KIND_ALARMS,
                     alarm=pb.Alarm(state=state, priority=priority, trigger_sample_device_time_ns=T0))


def block(n: int, t: int = T0, corrected: int = 0) -> pb.Record:
    return pb.Record(stream_id="d/ecg", patient="p", kind=pb.STREAM_KIND_ECG,
                     samples=pb.SampleBlock(first_sample_device_time_ns=t, first_sample_corrected_time_ns=corrected,
                                            sample_count=n))


def gap(missing: int, start: int = T0) -> pb.Record:
    return pb.Record(stream_id="d/events", patient="p", kind=pb.STREAM_KIND_EVENTS,
                     event=pb.DeviceEvent(device_time_ns=start + 5 * S,
                                          gap=pb.Gap(start_device_time_ns=start, missing_samples=missing)))


def window(records: list[pb.Record], width_s: int = 60) -> object:
    acc = new_accumulator()
    for r in records:
        fold(acc, r)
    return finalize(json.loads(json.dumps(acc)), "p", width_s, window_start(T0, width_s))


def test_heart_rate_and_vitals_means_are_exact() -> None:
    w = window([vitals(heart_rate_bpm=60.0, spo2_percent=97.0, systolic_mmhg=120.0, diastolic_mmhg=80.0),
                vitals(heart_rate_bpm=75.0, spo2_percent=91.0, systolic_mmhg=110.0, mean_arterial_mmhg=90.0),
                vitals(heart_rate_bpm=90.0)])
    assert (w.hr_mean, w.hr_min, w.hr_max, w.hr_count) == (75.0, 60.0, 90.0, 3)
    assert (w.spo2_mean, w.spo2_min) == (94.0, 91.0)
    assert (w.systolic_mean, w.diastolic_mean, w.mean_arterial_mean, w.bp_count) == (115.0, 80.0, 90.0, 2)
    assert w.record_count == 3 and not w.HasField("respiratory_rate_mean")


def test_sdnn_and_rmssd_match_numpy() -> None:
    a, b = [812.0, 790.5, 845.0, 830.0], [700.0, 760.0, 740.0]
    w = window([vitals(rr_intervals_ms=a), vitals(rr_intervals_ms=b)])
    assert w.sdnn_ms == pytest.approx(float(np.std(a + b, ddof=1)), rel=1e-12)
    diffs = np.concatenate([np.diff(a), np.diff(b)])  # within each record, not across records
    assert w.rmssd_ms == pytest.approx(float(np.sqrt(np.mean(diffs ** 2))), rel=1e-12)
    assert w.rr_count == 7


def test_hrv_needs_three_intervals() -> None:
    w = window([vitals(rr_intervals_ms=[800.0, 810.0])])
    assert not w.HasField("sdnn_ms") and not w.HasField("rmssd_ms") and w.rr_count == 2


def test_completeness_counts_gap_samples() -> None:
    w = window([block(2500), block(2500), gap(1000)])
    assert (w.samples_received, w.samples_missing) == (5000, 1000)
    assert w.completeness == 5000 / 6000
    assert not window([vitals(heart_rate_bpm=70.0)]).HasField("completeness")  # no waveform news: unset


def test_only_raised_alarms_count_by_priority() -> None:
    w = window([alarm(pb.ALARM_STATE_RAISED, pb.ALARM_PRIORITY_HIGH), alarm(pb.ALARM_STATE_RAISED,
                                                                              pb.ALARM_PRIORITY_HIGH),
                alarm(pb.ALARM_STATE_RAISED, pb.ALARM_PRIORITY_TECHNICAL),
                alarm(pb.ALARM_STATE_CLEARED, pb.ALARM_PRIORITY_HIGH),
                alarm(pb.ALARM_STATE_ESCALATED, pb.ALARM_PRIORITY_MEDIUM),
                alarm(pb.ALARM_STATE_RAISED, pb.ALARM_PRIORITY_UNSPECIFIED)])
    assert dict(w.alarm_counts) == {"high": 2, "technical": 1}


def test_rhythm_shares_af_burden_and_signal_quality_from_ecg_records() -> None:
    w = window([vitals(source="ecg", rhythm="A", signal_quality=0.9), vitals(source="ecg", rhythm="N",
                                                                             signal_quality=0.7),
                vitals(source="ecg", rhythm="A"), vitals(source="ecg", rhythm="N"),
                vitals(source="ecg", rhythm=""), vitals(source="hrm", rhythm="A", signal_quality=0.1)])
    assert dict(w.rhythm_shares) == {"A": 0.5, "N": 0.5} and w.af_burden == 0.5
    assert w.signal_quality_mean == pytest.approx(0.8)
    assert not window([vitals(heart_rate_bpm=70.0)]).HasField("af_burden")


def test_merge_is_order_independent() -> None:
    rng = random.Random(7)
    records = [vitals(heart_rate_bpm=rng.uniform(50, 120), rr_intervals_ms=[rng.uniform(600, 900) for _ in range(4)],
                      spo2_percent=rng.uniform(90, 99)) for _ in range(40)]
    records += [block(250), gap(30), alarm(pb.ALARM_STATE_RAISED, pb.ALARM_PRIORITY_LOW)]
    acc = new_accumulator()
    for r in records:
        fold(acc, r)
    shuffled = records[:]
    rng.shuffle(shuffled)
    left, right = new_accumulator(), new_accumulator()
    for i, r in enumerate(shuffled):
        fold(left if i % 3 else right, r)
    one, two = finalize(acc, "p", 60, T0), finalize(merge(right, left), "p", 60, T0)
    for name in ("hr_mean", "sdnn_ms", "rmssd_ms", "spo2_mean", "completeness"):
        assert getattr(one, name) == pytest.approx(getattr(two, name), rel=1e-12)
    assert (one.hr_min, one.hr_max, one.spo2_min, dict(one.alarm_counts), one.record_count) == (
        two.hr_min, two.hr_max, two.spo2_min, dict(two.alarm_counts), two.record_count)


def test_window_start_is_aligned_to_the_epoch() -> None:
    assert window_start(T0 + 59 * S + 999, 60) == T0
    assert window_start(T0 + 60 * S, 60) == T0 + 60 * S
    assert window_start(T0 + 299 * S, 300) == T0 and window_start(T0 + 300 * S, 300) == T0 + 300 * S
    w = window([vitals(heart_rate_bpm=70.0)], width_s=300)
    assert (w.start_device_time_ns, w.end_device_time_ns, w.width_s) == (T0, T0 + 300 * S, 300)


def test_event_time_is_device_time() -> None:
    assert event_time_ns(block(1, t=T0, corrected=T0 + 5)) == T0 + 5
    assert event_time_ns(block(1, t=T0)) == T0
    assert event_time_ns(vitals(t=T0 + 7)) == T0 + 7
    assert event_time_ns(gap(1, start=T0 + 3)) == T0 + 3
    a = pb.Record(alarm=pb.Alarm(onset_sample_device_time_ns=T0 + 1, decision_time_ns=T0 + 2))
    assert event_time_ns(a) == T0 + 1
    assert event_time_ns(pb.Record(alarm=pb.Alarm(decision_time_ns=T0 + 2))) == T0 + 2
    assert event_time_ns(pb.Record(stream_id="x")) is None and event_time_ns(vitals(t=0)) is None


def test_malformed_values_leave_fields_unset() -> None:
    w = window([vitals(heart_rate_bpm=float("nan"), spo2_percent=float("inf"), rr_intervals_ms=[float("nan"), -5.0]),
                vitals(heart_rate_bpm=0.0), pb.Record(stream_id="x")])
    assert w.record_count == 3 and w.hr_count == 0
    for name in ("hr_mean", "hr_min", "sdnn_ms", "rmssd_ms", "spo2_mean", "spo2_min", "completeness", "af_burden"):
        assert not w.HasField(name)
