"""UpperLimitAlarm: onset delay, reset on dips, hysteresis, clear delay, alarm ids."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.alarms import AlarmEvent, UpperLimitAlarm, UpperLimitRule

S = 1_000_000_000
T0 = 1_700_000_000 * S
NOW = 42  # the gateway clock is passed through as the decision time

RULE = UpperLimitRule("tachycardia", limit=120.0, clear_below=110.0, onset_delay_s=5.0, priority="medium")


def make(rule: UpperLimitRule = RULE) -> UpperLimitAlarm:
    return UpperLimitAlarm(rule, "pt-0001")


def feed(alarm: UpperLimitAlarm, samples: list[tuple[int, float]]) -> list[tuple[int, AlarmEvent]]:
    """Feed (sample_time_ns, value) pairs; return (index, event) for every event."""
    out = []
    for i, (t, v) in enumerate(samples):
        ev = alarm.update(v, t, NOW + i)
        if ev is not None:
            out.append((i, ev))
    return out


def raise_alarm(alarm: UpperLimitAlarm, start: int = T0) -> AlarmEvent:
    assert alarm.update(130.0, start, NOW) is None
    ev = alarm.update(130.0, start + 5 * S, NOW)
    assert ev is not None
    assert ev.raised
    return ev


def test_no_raise_before_onset_delay() -> None:
    alarm = make()
    samples = [(T0 + k * S // 4, 130.0) for k in range(20)]  # 0 .. 4.75 s above the limit
    assert feed(alarm, samples) == []
    assert not alarm.active
    assert alarm.active_id is None


def test_raises_exactly_when_onset_delay_reached() -> None:
    alarm = make()
    assert alarm.update(125.0, T0, 1) is None
    assert alarm.update(140.0, T0 + 5 * S - 1, 2) is None
    ev = alarm.update(135.0, T0 + 5 * S, 3)
    assert ev is not None
    assert ev.raised is True
    assert ev.condition == "tachycardia"
    assert ev.priority == "medium"
    assert ev.value == 135.0
    assert ev.limit == 120.0
    assert ev.onset_sample_time_ns == T0
    assert ev.trigger_sample_time_ns == T0 + 5 * S
    assert ev.decision_time_ns == 3
    assert ev.alarm_id
    assert alarm.active
    assert alarm.active_id == ev.alarm_id


def test_raises_on_first_sample_past_the_delay_with_sparse_samples() -> None:
    alarm = make()
    ev = feed(alarm, [(T0, 130.0), (T0 + 3 * S, 130.0), (T0 + 7 * S, 131.0)])
    assert len(ev) == 1
    i, e = ev[0]
    assert i == 2
    assert (e.onset_sample_time_ns, e.trigger_sample_time_ns, e.value) == (T0, T0 + 7 * S, 131.0)


def test_value_equal_to_limit_is_not_over() -> None:
    alarm = make()
    assert feed(alarm, [(T0 + k * S, 120.0) for k in range(20)]) == []
    assert not alarm.active


def test_zero_delay_raises_on_first_sample_over() -> None:
    alarm = make(UpperLimitRule("tachycardia", 120.0, 110.0, 0.0, "high"))
    assert alarm.update(120.0, T0, NOW) is None
    ev = alarm.update(120.5, T0 + 1, NOW)
    assert ev is not None
    assert ev.raised
    assert ev.onset_sample_time_ns == ev.trigger_sample_time_ns == T0 + 1
    assert ev.priority == "high"


@pytest.mark.parametrize("dip", [119.0, 120.0, 50.0])
def test_single_dip_resets_onset(dip: float) -> None:
    alarm = make()
    samples = [(T0, 130.0), (T0 + 3 * S, 130.0), (T0 + 3 * S + S // 2, dip), (T0 + 4 * S, 130.0),
               (T0 + 6 * S, 130.0), (T0 + 9 * S - 1, 130.0), (T0 + 9 * S, 130.0)]
    events = feed(alarm, samples)
    assert [i for i, _ in events] == [6]
    assert events[0][1].onset_sample_time_ns == T0 + 4 * S
    assert events[0][1].trigger_sample_time_ns == T0 + 9 * S


def test_no_duplicate_raise_while_active() -> None:
    alarm = make()
    first = raise_alarm(alarm)
    assert feed(alarm, [(T0 + k * S, 150.0) for k in range(6, 60)]) == []
    assert alarm.active_id == first.alarm_id


@pytest.mark.parametrize("value", [110.0, 115.0, 119.9, 120.0])
def test_hysteresis_values_at_or_above_clear_below_never_clear(value: float) -> None:
    alarm = make()
    raised = raise_alarm(alarm)
    assert feed(alarm, [(T0 + k * S, value) for k in range(6, 120)]) == []
    assert alarm.active
    assert alarm.active_id == raised.alarm_id


def test_clears_only_after_clear_below_held_for_the_delay() -> None:
    alarm = make()
    raised = raise_alarm(alarm)
    t1 = T0 + 20 * S
    assert alarm.update(115.0, t1 - S, NOW) is None
    assert alarm.update(100.0, t1, NOW) is None
    assert alarm.update(105.0, t1 + 2 * S, NOW) is None
    assert alarm.update(109.9, t1 + 5 * S - 1, NOW) is None
    assert alarm.active
    ev = alarm.update(101.0, t1 + 5 * S, 99)
    assert ev is not None
    assert ev.raised is False
    assert ev.alarm_id == raised.alarm_id
    assert ev.condition == "tachycardia"
    assert ev.value == 101.0
    assert ev.onset_sample_time_ns == t1
    assert ev.trigger_sample_time_ns == t1 + 5 * S
    assert ev.decision_time_ns == 99
    assert not alarm.active
    assert alarm.active_id is None
    # Once cleared, nothing more while the value stays low.
    assert feed(alarm, [(t1 + k * S, 80.0) for k in range(6, 30)]) == []


@pytest.mark.parametrize("interruption", [115.0, 110.0, 125.0])
def test_clear_countdown_restarts_after_interruption(interruption: float) -> None:
    alarm = make()
    raise_alarm(alarm)
    t1 = T0 + 20 * S
    samples = [(t1, 100.0), (t1 + 4 * S, 100.0), (t1 + 4 * S + 1, interruption), (t1 + 6 * S, 100.0),
               (t1 + 11 * S - 1, 100.0), (t1 + 11 * S, 100.0)]
    events = feed(alarm, samples)
    assert [i for i, _ in events] == [5]
    assert events[0][1].raised is False
    assert events[0][1].onset_sample_time_ns == t1 + 6 * S


def test_over_limit_during_clearing_does_not_reraise() -> None:
    alarm = make()
    raised = raise_alarm(alarm)
    events = feed(alarm, [(T0 + 10 * S, 100.0), (T0 + 11 * S, 130.0), (T0 + 30 * S, 130.0)])
    assert events == []
    assert alarm.active_id == raised.alarm_id


def test_reraise_gets_a_new_alarm_id() -> None:
    alarm = make()
    first = raise_alarm(alarm, T0)
    cleared = feed(alarm, [(T0 + 10 * S, 90.0), (T0 + 15 * S, 90.0)])
    assert len(cleared) == 1
    assert cleared[0][1].alarm_id == first.alarm_id
    second = raise_alarm(alarm, T0 + 20 * S)
    assert second.alarm_id != first.alarm_id
    assert second.onset_sample_time_ns == T0 + 20 * S
    cleared2 = feed(alarm, [(T0 + 30 * S, 90.0), (T0 + 35 * S, 90.0)])
    assert [e.alarm_id for _, e in cleared2] == [second.alarm_id]


def test_alarm_ids_unique_across_instances_and_scopes() -> None:
    a, b = UpperLimitAlarm(RULE, "pt-0001"), UpperLimitAlarm(RULE, "pt-0002")
    c = UpperLimitAlarm(RULE, "pt-0001")
    ids = {raise_alarm(x).alarm_id for x in (a, b, c)}
    assert len(ids) == 3


def test_rule_rejects_clear_below_above_limit() -> None:
    with pytest.raises(ValueError):
        UpperLimitRule("tachycardia", limit=120.0, clear_below=121.0, onset_delay_s=5.0, priority="medium")
    # Equal is allowed (no hysteresis band).
    UpperLimitRule("tachycardia", limit=120.0, clear_below=120.0, onset_delay_s=5.0, priority="medium")


def test_fractional_delay_not_shortened_by_float_truncation() -> None:
    alarm = make(UpperLimitRule("tachycardia", 120.0, 110.0, 4.1, "medium"))
    assert alarm.update(130.0, T0, NOW) is None
    assert alarm.update(130.0, T0 + 4_100_000_000 - 1, NOW) is None


# -- property: events agree with the rule as stated in the module docstring ------------------------

VALUES = st.sampled_from([90.0, 109.0, 110.0, 115.0, 120.0, 121.0, 140.0])


@settings(max_examples=400, deadline=None, database=None)
@given(st.lists(st.tuples(st.integers(1, 3 * S), VALUES), min_size=1, max_size=60))
def test_events_match_spec(steps: list[tuple[int, float]]) -> None:
    delay = 5 * S
    alarm = make()
    t = T0
    active = False
    over_since: int | None = None
    under_since: int | None = None
    current_id: str | None = None
    ids: set[str] = set()
    for dt, v in steps:
        t += dt
        ev = alarm.update(v, t, NOW)
        # Runs of consecutive samples strictly above the limit / strictly below clear_below.
        over_since = (over_since if over_since is not None else t) if v > 120.0 else None
        under_since = (under_since if under_since is not None else t) if v < 110.0 else None
        if not active and over_since is not None and t - over_since >= delay:
            assert ev is not None
            assert ev.raised
            assert (ev.onset_sample_time_ns, ev.trigger_sample_time_ns, ev.value) == (over_since, t, v)
            assert ev.alarm_id not in ids
            ids.add(ev.alarm_id)
            current_id, active = ev.alarm_id, True
            under_since = None
        elif active and under_since is not None and t - under_since >= delay:
            assert ev is not None
            assert not ev.raised
            assert (ev.onset_sample_time_ns, ev.trigger_sample_time_ns, ev.value) == (under_since, t, v)
            assert ev.alarm_id == current_id
            active, current_id = False, None
            over_since = None
        else:
            assert ev is None
        assert alarm.active == active
