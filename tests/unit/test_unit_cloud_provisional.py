"""Provisional risk reports on raised alarms: which alarms trigger one, and the floor they set."""

from __future__ import annotations

import pytest

from cardiogate.cloud.risk import LEVELS, MODEL_NAME, News2Baseline, provisional_assessment, triggers_provisional
from cardiogate.proto.v1 import features_pb2
from cardiogate.proto.v1 import telemetry_pb2 as pb

S = 1_000_000_000
T = 1_800_000_000 * S + 42 * S + 5


def alarm(priority: pb.AlarmPriority.ValueType = pb.ALARM_PRIORITY_HIGH,
          state: pb.AlarmState.ValueType = pb.ALARM_STATE_RAISED, category: str = "physiological") -> pb.Alarm:
    return pb.Alarm(alarm_id="a-1", condition="tachycardia", priority=priority, state=state, value=142.0,
                    limit=130.0, category=category, trigger_sample_device_time_ns=T)


@pytest.mark.parametrize(("a", "fires"), [
    (alarm(), True),
    (alarm(pb.ALARM_PRIORITY_MEDIUM), True),
    (alarm(state=pb.ALARM_STATE_ESCALATED), True),
    (alarm(pb.ALARM_PRIORITY_LOW), False),
    (alarm(pb.ALARM_PRIORITY_TECHNICAL), False),
    (alarm(category="technical"), False),
    (alarm(state=pb.ALARM_STATE_CLEARED), False),
    (alarm(state=pb.ALARM_STATE_ACKNOWLEDGED), False),
])
def test_which_alarms_trigger(a: pb.Alarm, fires: bool) -> None:
    assert triggers_provisional(a) is fires


def test_alarm_alone_high_priority_is_at_least_medium() -> None:
    r = provisional_assessment(alarm(), T, None, computed_time_ns=7)
    assert (r.provisional, r.trigger, r.level, r.score) == (True, "alarm:tachycardia:a-1", "medium", 0.5)
    assert (r.width_s, r.window_start_device_time_ns, r.window_end_device_time_ns) == (0, T - 42 * S - 5, T)
    assert (r.model_name, r.baseline, r.news2, r.confidence, r.computed_time_ns) == (MODEL_NAME, True, -1, 0.0, 7)
    assert r.factors[-1].name == "alarm" and r.factors[-1].contribution == 0.5
    assert r.recommendations[0].startswith("provisional: high-priority tachycardia alarm raised")


@pytest.mark.parametrize(("priority", "state", "level", "score"), [
    (pb.ALARM_PRIORITY_MEDIUM, pb.ALARM_STATE_RAISED, "low-medium", 0.3),
    (pb.ALARM_PRIORITY_HIGH, pb.ALARM_STATE_ESCALATED, "high", 0.7),
    (pb.ALARM_PRIORITY_MEDIUM, pb.ALARM_STATE_ESCALATED, "medium", 0.5),
])
def test_floors(priority: pb.AlarmPriority.ValueType, state: pb.AlarmState.ValueType, level: str,
                score: float) -> None:
    r = provisional_assessment(alarm(priority, state), T, None, 0)
    assert (r.level, r.score) == pytest.approx((level, score))


def test_keeps_a_higher_assessment_and_its_factors() -> None:
    window = features_pb2.FeatureWindow(patient="p", width_s=60, start_device_time_ns=T - 42 * S - 5,
                                        end_device_time_ns=T + 18 * S - 5, hr_mean=142.0, spo2_mean=88.0,
                                        systolic_mean=85.0)
    assessed = News2Baseline().assess(window)
    assert assessed.level == "high"
    r = provisional_assessment(alarm(), T, assessed, 9)
    assert (r.level, r.score, r.news2) == ("high", assessed.score, assessed.news2)
    assert [f.name for f in r.factors] == [*(f.name for f in assessed.factors), "alarm"]
    assert r.factors[-1].contribution == 0.0  # the window already scored above the floor
    assert (r.width_s, r.provisional, r.revision) == (0, True, 0)
    assert LEVELS.index(r.level) >= LEVELS.index("medium")


def test_raises_a_low_assessment_to_the_floor() -> None:
    window = features_pb2.FeatureWindow(patient="p", width_s=60, hr_mean=75.0, spo2_mean=98.0)
    assessed = News2Baseline().assess(window)
    assert assessed.level == "low"
    r = provisional_assessment(alarm(), T, assessed, 9)
    assert (r.level, r.score) == ("medium", 0.5)
    assert r.confidence == assessed.confidence
    assert any("rule baseline" in s for s in r.recommendations)
