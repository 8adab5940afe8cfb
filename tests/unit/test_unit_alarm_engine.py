"""AlarmEngine: onset delay, hysteresis, tiers, latch, acknowledge, silence, escalation, technical alarms,
de-duplication, per-patient limits, command validation and the audit trail."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cardiogate.core.news2 import Rhythm
from cardiogate.edge.alarm_engine import (
    Acknowledge,
    AlarmEngine,
    AlarmNotice,
    Beat,
    CommandError,
    EngineConfig,
    Outcome,
    SetLimits,
    Silence,
    Unsilence,
    default_specs,
    parse_command,
)
from cardiogate.edge.alarm_engine.config import ConditionSpec, Tier
from cardiogate.edge.alarm_engine.engine import BeatLabel
from cardiogate.edge.alarm_engine.model import TechnicalCondition

S = 1_000_000_000
PT = "pt-0001"
OTHER = "pt-0002"


def hr_run(engine: AlarmEngine, values: list[float], start_s: float = 0, step_s: float = 1,
           patient: str = PT) -> list[AlarmNotice]:
    """Feed one HR value per step (device time), decision time = device time + 1 ms; return all notices."""
    out: list[AlarmNotice] = []
    for k, v in enumerate(values):
        t = round((start_s + k * step_s) * S)
        out += engine.observe_vitals(patient, t, t + 1_000_000, hr=v).notices
    return out


def states(notices: list[AlarmNotice]) -> list[tuple[str, str, str]]:
    return [(n.condition, n.state, n.priority) for n in notices]


def cmd(payload: dict[str, object]) -> Acknowledge | Silence | Unsilence | SetLimits:
    parsed = parse_command(json.dumps({"schema": 1, "patient": PT, "by": "nurse-7", **payload}))
    assert not isinstance(parsed, CommandError), parsed
    return parsed


def raise_hr_medium(engine: AlarmEngine) -> AlarmNotice:
    notices = hr_run(engine, [130.0] * 6)  # 0..5 s above 120
    assert states(notices) == [("hr_high", "raised", "medium")]
    return notices[0]


# ---- onset delay, tiers, hysteresis --------------------------------------------------------------

def test_a_single_noisy_sample_never_alarms() -> None:
    engine = AlarmEngine()
    assert hr_run(engine, [80, 80, 230, 80, 80, 80, 80, 80, 80, 80]) == []
    assert engine.active(PT) == []


def test_raise_exactly_when_onset_delay_elapsed_with_sample_times() -> None:
    engine = AlarmEngine()
    assert hr_run(engine, [130.0] * 5) == []  # 0..4 s
    assert engine.status(PT, "hr_high") == "pending"
    assert engine.observe_vitals(PT, 4_999_999_999, 5 * S, hr=130).notices == ()
    n = engine.observe_vitals(PT, 5 * S, 5 * S + 7, hr=131).notices[0]
    assert (n.state, n.priority, n.value, n.limit) == ("raised", "medium", 131.0, 120.0)
    assert n.onset_sample_device_time_ns == 0
    assert n.trigger_sample_device_time_ns == 5 * S
    assert n.decision_time_ns == 5 * S + 7
    assert engine.status(PT, "hr_high") == "active"


def test_a_dip_restarts_the_onset_delay() -> None:
    engine = AlarmEngine()
    assert hr_run(engine, [130, 130, 130, 130, 115, 130, 130, 130, 130, 130]) == []  # dip at 4 s
    notices = hr_run(engine, [130], start_s=10)
    assert [n.onset_sample_device_time_ns for n in notices] == [5 * S]


def test_goes_straight_to_high_when_the_high_tier_holds() -> None:
    notices = hr_run(AlarmEngine(), [160.0] * 6)
    assert states(notices) == [("hr_high", "raised", "high")]
    assert notices[0].limit == 150


def test_medium_escalates_by_limit_to_high_keeping_its_id() -> None:
    engine = AlarmEngine()
    first = raise_hr_medium(engine)
    notices = hr_run(engine, [155.0] * 6, start_s=6)
    assert states(notices) == [("hr_high", "escalated", "high")]
    assert notices[0].alarm_id == first.alarm_id
    assert notices[0].onset_sample_device_time_ns == 6 * S
    assert notices[0].trigger_sample_device_time_ns == 11 * S


def test_hysteresis_clears_only_below_the_clear_threshold_for_the_clear_delay() -> None:
    engine = AlarmEngine()
    raised = raise_hr_medium(engine)
    assert hr_run(engine, [115.0] * 20, start_s=6) == []  # below the limit, above 110: stays
    assert hr_run(engine, [105, 105, 105, 115, 105, 105, 105, 105], start_s=26) == []  # 115 restarts clear delay
    assert hr_run(engine, [105], start_s=34) == []  # 4 s below 110
    notices = hr_run(engine, [105], start_s=35)
    assert states(notices) == [("hr_high", "cleared", "medium")]
    cleared = notices[0]
    assert cleared.alarm_id == raised.alarm_id
    assert (cleared.limit, cleared.onset_sample_device_time_ns, cleared.trigger_sample_device_time_ns) == (
        110, 30 * S, 35 * S)
    assert engine.active(PT) == []
    assert engine.status(PT, "hr_high") == "inactive"


def test_low_direction_and_spo2_defaults() -> None:
    engine = AlarmEngine()
    notices: list[AlarmNotice] = []
    for k in range(16):
        notices += engine.observe_vitals(PT, k * S, k * S, spo2=89).notices
    assert states(notices) == [("spo2_low", "raised", "medium")]
    assert notices[0].trigger_sample_device_time_ns == 15 * S
    for k in range(16, 27):
        notices += engine.observe_vitals(PT, k * S, k * S, spo2=84).notices
    assert states(notices)[1:] == [("spo2_low", "escalated", "high")]
    hr_low: list[AlarmNotice] = hr_run(engine, [38.0] * 6, start_s=100)
    assert ("hr_low", "raised", "high") in states(hr_low)


def test_new_episode_gets_a_new_alarm_id() -> None:
    engine = AlarmEngine()
    first = raise_hr_medium(engine)
    hr_run(engine, [100.0] * 6, start_s=6)
    assert engine.active(PT) == []
    second = hr_run(engine, [130.0] * 6, start_s=20)[0]
    assert second.state == "raised"
    assert second.alarm_id != first.alarm_id


# ---- latch, acknowledge --------------------------------------------------------------------------

def test_high_alarm_latches_until_acknowledged() -> None:
    engine = AlarmEngine()
    raised = hr_run(engine, [160.0] * 6)[0]
    notices = hr_run(engine, [80.0] * 6, start_s=6)
    assert states(notices) == [("hr_high", "latched", "high")]
    assert hr_run(engine, [80.0] * 30, start_s=12) == []  # stays latched, no repeat
    [view] = engine.active(PT)
    assert (view.alarm_id, view.status, view.priority) == (raised.alarm_id, "latched", "high")
    out = engine.apply(cmd({"command": "acknowledge", "alarm_id": raised.alarm_id}), 100 * S)
    assert [(n.state, n.by) for n in out.notices] == [("acknowledged", "nurse-7"), ("cleared", "nurse-7")]
    assert engine.active(PT) == []


def test_acknowledged_high_alarm_clears_without_latching() -> None:
    engine = AlarmEngine()
    hr_run(engine, [160.0] * 6)
    out = engine.apply(cmd({"command": "acknowledge", "condition": "hr_high"}), 6 * S)
    assert [n.state for n in out.notices] == ["acknowledged"]
    assert engine.active(PT)[0].acknowledged
    notices = hr_run(engine, [80.0] * 6, start_s=6)
    assert states(notices) == [("hr_high", "cleared", "high")]


def test_latched_alarm_whose_condition_returns_is_the_same_alarm() -> None:
    engine = AlarmEngine()
    raised = hr_run(engine, [160.0] * 6)[0]
    hr_run(engine, [80.0] * 6, start_s=6)
    assert hr_run(engine, [160.0] * 10, start_s=12) == []
    [view] = engine.active(PT)
    assert (view.alarm_id, view.status) == (raised.alarm_id, "active")


def test_medium_alarm_does_not_latch() -> None:
    engine = AlarmEngine()
    raise_hr_medium(engine)
    assert states(hr_run(engine, [80.0] * 6, start_s=6)) == [("hr_high", "cleared", "medium")]


def test_repeated_acknowledge_is_no_change_and_unknown_alarm_is_rejected() -> None:
    engine = AlarmEngine()
    raised = raise_hr_medium(engine)
    first = engine.apply(cmd({"command": "acknowledge", "alarm_id": raised.alarm_id}), 10 * S)
    again = engine.apply(cmd({"command": "acknowledge", "alarm_id": raised.alarm_id}), 11 * S)
    assert len(first.notices) == 1
    assert again.notices == ()
    assert again.audit[0].outcome == "no_change"
    missing = engine.apply(cmd({"command": "acknowledge", "alarm_id": "nope"}), 12 * S)
    assert not missing.accepted
    assert missing.error is not None and "no current nope" in missing.error
    assert [(a.action, a.outcome) for a in missing.audit] == [("command.acknowledge", "rejected")]
    other = engine.apply(Acknowledge(OTHER, "nurse-7", alarm_id=raised.alarm_id), 13 * S)
    assert not other.accepted  # an alarm id of another patient is not found


# ---- silence, escalation (tick) ------------------------------------------------------------------

def test_silence_expires_automatically_once() -> None:
    engine = AlarmEngine()
    raise_hr_medium(engine)
    out = engine.apply(cmd({"command": "silence", "condition": "hr_high", "duration_s": 30}), 10 * S)
    [n] = out.notices
    assert (n.state, n.silenced_until_ns, n.by) == ("silenced", 40 * S, "nurse-7")
    assert engine.active(PT)[0].silenced_until_ns == 40 * S
    assert engine.tick(39 * S).notices == ()
    [u] = engine.tick(40 * S).notices
    assert (u.state, u.by, u.silenced_until_ns) == ("unsilenced", "engine", None)
    assert engine.tick(41 * S).notices == ()


def test_manual_unsilence_and_patient_wide_silence() -> None:
    engine = AlarmEngine()
    raise_hr_medium(engine)
    for k in range(16):
        engine.observe_vitals(PT, (20 + k) * S, (20 + k) * S, spo2=89)
    out = engine.apply(cmd({"command": "silence"}), 40 * S)  # no target: every alarm, default 120 s
    assert sorted((n.condition, n.silenced_until_ns) for n in out.notices) == [
        ("hr_high", 160 * S), ("spo2_low", 160 * S)]
    out = engine.apply(cmd({"command": "unsilence", "condition": "spo2_low"}), 50 * S)
    assert [(n.condition, n.state) for n in out.notices] == [("spo2_low", "unsilenced")]
    assert engine.apply(cmd({"command": "unsilence", "condition": "spo2_low"}), 51 * S).notices == ()
    nothing = engine.apply(Silence(OTHER, "nurse-7", 60), 52 * S)
    assert not nothing.accepted


def test_unacknowledged_medium_escalates_after_60_s_and_silence_ends() -> None:
    engine = AlarmEngine()
    raised = raise_hr_medium(engine)  # decision time 5 s + 1 ms
    engine.apply(cmd({"command": "silence", "condition": "hr_high", "duration_s": 300}), 10 * S)
    assert engine.tick(raised.decision_time_ns + 60 * S - 1).notices == ()
    [n] = engine.tick(raised.decision_time_ns + 60 * S).notices
    assert (n.state, n.priority, n.silenced_until_ns, n.alarm_id) == ("escalated", "high", None, raised.alarm_id)
    assert engine.tick(raised.decision_time_ns + 200 * S).notices == ()  # already high
    # escalated to high, it now latches when the condition ends
    assert states(hr_run(engine, [80.0] * 6, start_s=70)) == [("hr_high", "latched", "high")]


def test_acknowledged_alarm_never_escalates() -> None:
    engine = AlarmEngine()
    raise_hr_medium(engine)
    engine.apply(cmd({"command": "acknowledge", "condition": "hr_high"}), 10 * S)
    assert engine.tick(1000 * S).notices == ()
    assert engine.active(PT)[0].priority == "medium"


def test_silencing_an_acknowledged_alarm_changes_nothing() -> None:
    engine = AlarmEngine()
    raise_hr_medium(engine)
    engine.apply(cmd({"command": "acknowledge", "condition": "hr_high"}), 10 * S)
    out = engine.apply(cmd({"command": "silence", "condition": "hr_high"}), 11 * S)
    assert out.notices == ()
    assert out.audit[0].outcome == "no_change"


# ---- technical alarms, beats, rhythm ----------------------------------------------------------------

def test_technical_alarm_onset_and_clear() -> None:
    engine = AlarmEngine()
    assert engine.technical(PT, "lead_off", True, 0, 0).notices == ()
    assert engine.technical(PT, "lead_off", True, 9 * S, 9 * S).notices == ()
    [n] = engine.technical(PT, "lead_off", True, 10 * S, 10 * S).notices
    assert (n.condition, n.category, n.priority, n.state) == ("lead_off", "technical", "medium", "raised")
    assert engine.technical(PT, "lead_off", False, 11 * S, 11 * S).notices == ()
    [c] = engine.technical(PT, "lead_off", False, 13 * S, 13 * S).notices
    assert c.state == "cleared"


def test_brief_lead_off_does_not_alarm() -> None:
    engine = AlarmEngine()
    engine.technical(PT, "lead_off", True, 0, 0)
    assert engine.technical(PT, "lead_off", False, 3 * S, 3 * S).notices == ()
    assert engine.status(PT, "lead_off") == "inactive"


def test_device_lost_is_immediate_and_escalates() -> None:
    engine = AlarmEngine()
    [n] = engine.technical(PT, "device_lost", True, 0, 0).notices
    assert (n.state, n.priority) == ("raised", "medium")
    [e] = engine.tick(60 * S).notices
    assert (e.state, e.priority) == ("escalated", "high")
    [c] = engine.technical(PT, "device_lost", False, 70 * S, 70 * S).notices
    assert c.state == "cleared"  # technical alarms never latch


@pytest.mark.parametrize("kind", ["battery_low", "outbox_near_full", "model_failure"])
def test_low_priority_technical_alarms(kind: TechnicalCondition) -> None:
    engine = AlarmEngine()
    [n] = engine.technical(PT, kind, True, 0, 0).notices
    assert (n.condition, n.priority, n.category) == (kind, "low", "technical")
    assert engine.technical(PT, kind, True, S, S).notices == ()


def test_uplink_refused_is_a_medium_technical_alarm_that_clears_at_once() -> None:
    engine = AlarmEngine()
    [n] = engine.technical(PT, "uplink_refused", True, 0, 0).notices
    assert (n.condition, n.priority, n.category, n.state) == ("uplink_refused", "medium", "technical", "raised")
    assert engine.technical(PT, "uplink_refused", True, S, S).notices == ()  # raised once per episode
    assert engine.tick(600 * S).notices == ()  # no escalation: it needs a person, not a louder alarm
    [c] = engine.technical(PT, "uplink_refused", False, 600 * S, 600 * S).notices
    assert c.state == "cleared" and c.priority == "medium"


def beats_every(start_s: float, stop_s: float, step_s: float, label: BeatLabel = "N") -> list[Beat]:
    out = []
    t = start_s
    while t < stop_s - 1e-9:
        out.append(Beat(round(t * S), label))
        t += step_s
    return out


def test_asystole_from_the_beat_stream_latches() -> None:
    engine = AlarmEngine()
    assert engine.observe_beats(PT, 10 * S, beats_every(0, 10, 0.8), 10 * S).notices == ()
    last_beat = beats_every(0, 10, 0.8)[-1].device_time_ns  # 9.6 s
    assert engine.observe_beats(PT, 12 * S, [], 12 * S).notices == ()
    [n] = engine.observe_beats(PT, 13 * S, [], 13 * S).notices
    assert (n.condition, n.priority, n.state) == ("asystole", "high", "raised")
    assert n.value == pytest.approx((13 * S - last_beat) / S)
    assert engine.observe_beats(PT, 14 * S, [], 14 * S).notices == ()  # the pause grows: no repeat
    resumed = engine.observe_beats(PT, 20 * S, beats_every(14.5, 20, 0.8), 20 * S).notices
    assert [x.state for x in resumed] == ["latched"]


def test_lead_off_suppresses_asystole() -> None:
    engine = AlarmEngine()
    engine.observe_beats(PT, 5 * S, beats_every(0, 5, 0.8), 5 * S)
    engine.technical(PT, "lead_off", True, 5 * S, 5 * S)
    for k in range(6, 20):
        assert engine.observe_beats(PT, k * S, [], k * S).notices == ()
    engine.technical(PT, "lead_off", False, 20 * S, 20 * S)
    assert engine.observe_beats(PT, 21 * S, [], 21 * S).notices == ()  # pause counted from signal return
    assert engine.observe_beats(PT, 23 * S, beats_every(21.5, 23, 0.8), 23 * S).notices == ()
    assert engine.status(PT, "asystole") == "inactive"


def six_beat_vt() -> EngineConfig:
    """A site that set the VT limit to 6 beats (the run counting is the same at any limit)."""
    vt = replace(default_specs()["vt"], tiers=(Tier("high", 6, 0),))
    return EngineConfig(patient_specs={PT: {"vt": vt}})


def test_shipped_vt_limit_is_four_fast_ventricular_beats() -> None:
    engine = AlarmEngine()
    normal = beats_every(0, 4, 0.8)
    three_v = beats_every(4, 5.2, 0.4, "V")  # 150 bpm, 3 beats
    assert engine.observe_beats(PT, 5_200_000_000, normal + three_v, 5_200_000_000).notices == ()
    [n] = engine.observe_beats(PT, 5_600_000_000, [Beat(5_200_000_000, "V")], 5_600_000_000).notices
    assert (n.condition, n.priority, n.value, n.limit) == ("vt", "high", 4.0, 4.0)
    assert n.onset_sample_device_time_ns == n.trigger_sample_device_time_ns == 5_200_000_000


def test_vt_run_needs_six_fast_ventricular_beats() -> None:
    engine = AlarmEngine(six_beat_vt())
    normal = beats_every(0, 4, 0.8)
    five_v = beats_every(4, 6, 0.4, "V")  # 150 bpm, 5 beats
    assert engine.observe_beats(PT, 6 * S, normal + five_v, 6 * S).notices == ()
    [n] = engine.observe_beats(PT, 6_500_000_000, [Beat(6 * S, "V")], 6_500_000_000).notices
    assert (n.condition, n.priority, n.value, n.limit) == ("vt", "high", 6.0, 6.0)
    assert n.onset_sample_device_time_ns == n.trigger_sample_device_time_ns == 6 * S


def test_slow_ventricular_run_is_not_vt() -> None:
    engine = AlarmEngine()
    assert engine.observe_beats(PT, 10 * S, beats_every(0, 10, 1.0, "V"), 10 * S).notices == ()  # 60 bpm


def test_duplicate_beats_from_overlapping_windows_are_ignored() -> None:
    engine = AlarmEngine(six_beat_vt())
    run = beats_every(0, 2, 0.4, "V")  # 5 V beats
    engine.observe_beats(PT, 2 * S, run, 2 * S)
    assert engine.observe_beats(PT, 2 * S, run, 2 * S).notices == ()  # the same 5 again do not make 10
    [n] = engine.observe_beats(PT, 2 * S, [*run, Beat(2 * S, "V")], 2 * S).notices
    assert (n.condition, n.value) == ("vt", 6.0)


def test_af_advisory_needs_30_s_and_noisy_windows_restart_it() -> None:
    engine = AlarmEngine()
    labels: list[Rhythm] = ["af", "af", "noisy", "af", "af", "af", "af"]  # one window every 10 s
    notices: list[AlarmNotice] = []
    for k, label in enumerate(labels):
        notices += engine.observe_rhythm(PT, k * 10 * S, label, k * 10 * S).notices
    assert states(notices) == [("af", "raised", "low")]
    assert notices[0].onset_sample_device_time_ns == 30 * S
    assert engine.observe_rhythm(PT, 70 * S, "normal", 70 * S).notices == ()
    [c] = engine.observe_rhythm(PT, 100 * S, "normal", 100 * S).notices
    assert c.state == "cleared"


def test_news2_alarm_from_vitals_is_partial_and_delayed() -> None:
    engine = AlarmEngine()
    notices: list[AlarmNotice] = []
    for k in range(61):  # pulse 118 -> 2, SpO2 91 -> 3: total 5 (medium); RR etc. unknown
        notices += engine.observe_vitals(PT, k * S, k * S, hr=118, spo2=91.0).notices
    news = [n for n in notices if n.condition == "news2"]
    assert [(n.state, n.priority, n.value) for n in news] == [("raised", "medium", 5.0)]
    assert "partial" in news[0].reason
    assert engine.news2(PT, 60 * S).subscores["pulse"] == 2


def test_news2_uses_recent_intermittent_readings_only() -> None:
    engine = AlarmEngine(EngineConfig(news2_max_age_s=600))
    engine.observe_vitals(PT, 0, 0, systolic=95, respiration_rate=26)
    assert engine.news2(PT, 100 * S).total == 5
    assert engine.news2(PT, 601 * S).total == 0


# ---- de-duplication ----------------------------------------------------------------------------------

def test_repeated_and_stale_inputs_produce_no_new_notices() -> None:
    engine = AlarmEngine()
    raise_hr_medium(engine)
    assert engine.observe_vitals(PT, 5 * S, 5 * S, hr=130).notices == ()  # exact repeat
    assert engine.observe_vitals(PT, 2 * S, 6 * S, hr=80).notices == ()  # stale sample
    assert engine.observe_vitals(PT, 5 * S, 7 * S, hr=130).notices == ()


def test_duplicate_command_id_is_applied_once() -> None:
    engine = AlarmEngine()
    raise_hr_medium(engine)
    first = engine.apply(cmd({"command": "silence", "condition": "hr_high", "duration_s": 60, "id": "c-1"}), 10 * S)
    again = engine.apply(cmd({"command": "silence", "condition": "hr_high", "duration_s": 60, "id": "c-1"}), 12 * S)
    assert len(first.notices) == 1
    assert again.notices == ()
    assert again.accepted
    assert [(a.outcome, a.command_id) for a in again.audit] == [("duplicate", "c-1")]


Sample = tuple[int, float]  # (ms since the previous sample, HR)
HR_LEVELS = [80.0, 105.0, 115.0, 125.0, 145.0, 155.0, 45.0, 38.0]  # around every limit and clear threshold
# Runs of one level, so that onset and clear delays are actually reached, plus the odd single noisy value.
hr_streams = st.lists(st.tuples(st.integers(1, 2500), st.sampled_from(HR_LEVELS), st.integers(1, 12)),
                      max_size=25).map(lambda runs: [(dt, v) for dt, v, n in runs for _ in range(n)])


@settings(max_examples=150, deadline=None)
@given(hr_streams, st.lists(st.sampled_from(["ack", "silence", "unsilence", "tick", "none", "none", "none"]),
                            min_size=300, max_size=300))
def test_no_notice_is_ever_repeated_within_an_episode(steps: list[Sample], actions: list[str]) -> None:
    engine = AlarmEngine()
    seen: list[AlarmNotice] = []
    t = 0
    for (dt_ms, hr), action in zip(steps, actions, strict=False):
        t += dt_ms * 1_000_000
        seen += engine.observe_vitals(PT, t, t, hr=hr).notices
        seen += engine.observe_vitals(PT, t, t, hr=hr).notices  # every input delivered twice
        if action == "tick":
            seen += engine.tick(t).notices
        elif action != "none":
            for view in engine.active(PT):
                command: Acknowledge | Silence | Unsilence
                if action == "ack":
                    command = Acknowledge(PT, "n", alarm_id=view.alarm_id)
                elif action == "silence":
                    command = Silence(PT, "n", 30, alarm_id=view.alarm_id)
                else:
                    command = Unsilence(PT, "n", alarm_id=view.alarm_id)
                seen += engine.apply(command, t).notices
    per_episode: dict[str, list[str]] = {}
    for n in seen:
        per_episode.setdefault(n.alarm_id, []).append(n.state)
    for ep_states in per_episode.values():
        counts = Counter(ep_states)
        assert ep_states[0] == "raised"
        assert counts["raised"] == 1
        assert counts["acknowledged"] <= 1
        assert counts["latched"] <= 1
        assert counts["cleared"] <= 1
        assert "cleared" not in ep_states[:-1]  # nothing after the clear
    pairs = [(n.alarm_id, n.state, n.priority) for n in seen if n.state in ("raised", "escalated")]
    assert len(pairs) == len(set(pairs))
    visible = {v.alarm_id for v in engine.active(PT)}
    closed = {i for i, ep_states in per_episode.items() if ep_states[-1] == "cleared"}
    assert visible == set(per_episode) - closed  # what is on screen is exactly what was raised and not cleared


@settings(max_examples=200, deadline=None)
@given(hr_streams)
def test_never_raised_before_the_onset_delay_elapsed(steps: list[Sample]) -> None:
    engine = AlarmEngine()
    samples: list[tuple[int, float]] = []
    t = 0
    for dt_ms, hr in steps:
        t += dt_ms * 1_000_000
        samples.append((t, hr))
        for n in engine.observe_vitals(PT, t, t, hr=hr).notices:
            if n.state not in ("raised", "escalated") or n.condition not in ("hr_high", "hr_low"):
                continue
            assert n.trigger_sample_device_time_ns - n.onset_sample_device_time_ns >= 5 * S
            window = [v for (ts, v) in samples
                      if n.onset_sample_device_time_ns <= ts <= n.trigger_sample_device_time_ns]
            sign = 1 if n.condition == "hr_high" else -1
            assert all(sign * (v - n.limit) > 0 for v in window)  # every sample of the window was beyond the limit


# ---- per-patient limits ---------------------------------------------------------------------------------

def test_per_patient_limits_from_config() -> None:
    athlete = default_specs()["hr_low"].with_limits({"medium": 38, "high": 30})
    engine = AlarmEngine(EngineConfig(patient_specs={PT: {"hr_low": athlete}}))
    assert hr_run(engine, [42.0] * 10) == []
    assert states(hr_run(engine, [42.0] * 10, patient=OTHER)) == [("hr_low", "raised", "medium")]


def test_set_limits_command_changes_one_patient_and_is_audited() -> None:
    engine = AlarmEngine()
    out = engine.apply(cmd({"command": "set_limits", "condition": "hr_high", "limits": {"medium": 140},
                            "reason": "post-op, agreed with dr-2"}), 0)
    assert out.accepted
    [entry] = out.audit
    assert (entry.action, entry.outcome, entry.actor, entry.condition) == (
        "command.set_limits", "applied", "nurse-7", "hr_high")
    assert "medium > 120" in entry.reason and "medium > 140" in entry.reason and "post-op" in entry.reason
    assert engine.limits(PT)["hr_high"].tiers[0].limit == 140
    assert hr_run(engine, [135.0] * 10) == []
    assert states(hr_run(engine, [135.0] * 10, patient=OTHER)) == [("hr_high", "raised", "medium")]


def test_set_limits_that_cross_the_opposite_limit_are_rejected() -> None:
    engine = AlarmEngine()
    engine.apply(cmd({"command": "set_limits", "condition": "hr_high", "limits": {"medium": 100, "high": 120}}), 0)
    out = engine.apply(cmd({"command": "set_limits", "condition": "hr_low", "limits": {"medium": 110,
                                                                                      "high": 90}}), 1)
    assert not out.accepted
    assert out.error is not None and "hr_low limit 110 must be below hr_high limit 100" in out.error
    assert out.audit[0].outcome == "rejected"


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="more severe tier"):
        ConditionSpec("hr_high", "physiological", "above", "bpm", (Tier("medium", 150, 5), Tier("high", 120, 5)))
    with pytest.raises(ValueError, match="least to most severe"):
        ConditionSpec("hr_high", "physiological", "above", "bpm", (Tier("high", 120, 5), Tier("medium", 150, 5)))
    specs = default_specs()
    specs["hr_low"] = specs["hr_low"].with_limits({"medium": 105, "high": 40})
    specs["hr_high"] = specs["hr_high"].with_limits({"medium": 100})
    with pytest.raises(ValueError, match="must be below"):
        EngineConfig(specs=specs)


# ---- command parsing --------------------------------------------------------------------------------------

BASE = {"schema": 1, "patient": PT, "by": "nurse-7"}


@pytest.mark.parametrize(("payload", "message"), [
    ("not json", "not valid JSON"),
    ("[1, 2]", "must be a JSON object"),
    ({"command": "acknowledge", "patient": PT, "by": "n", "condition": "hr_high"}, "missing field 'schema'"),
    ({**BASE, "schema": 2, "command": "acknowledge", "condition": "hr_high"}, "unsupported schema 2"),
    ({**BASE, "command": "reboot"}, "unknown command 'reboot'"),
    ({**BASE, "command": "acknowledge"}, "needs 'alarm_id' or 'condition'"),
    ({**BASE, "command": "acknowledge", "alarm_id": "a", "condition": "hr_high"}, "not both"),
    ({**BASE, "command": "acknowledge", "condition": "hr_hi"}, "unknown condition 'hr_hi'"),
    ({"schema": 1, "command": "acknowledge", "patient": PT, "condition": "hr_high"}, "missing field 'by'"),
    ({**BASE, "patient": "Jane Doe", "command": "acknowledge", "condition": "hr_high"}, "not a patient pseudonym"),
    ({**BASE, "by": 7, "command": "acknowledge", "condition": "hr_high"}, "field 'by' must be a non-empty string"),
    ({**BASE, "command": "silence", "duration": 60}, "unknown field(s) for silence: duration"),
    ({**BASE, "command": "silence", "duration_s": "60"}, "'duration_s' must be a number"),
    ({**BASE, "command": "silence", "duration_s": True}, "'duration_s' must be a number"),
    ({**BASE, "command": "silence", "duration_s": 0}, "must be > 0"),
    ({**BASE, "command": "silence", "duration_s": 301}, "silence too long: 301 s (at most 300 s)"),
    ({**BASE, "command": "set_limits", "limits": {"medium": 130}}, "missing field 'condition'"),
    ({**BASE, "command": "set_limits", "condition": "hr_high"}, "missing field 'limits'"),
    ({**BASE, "command": "set_limits", "condition": "hr_high", "limits": {}}, "non-empty object"),
    ({**BASE, "command": "set_limits", "condition": "hr_high", "limits": {"urgent": 130}}, "unknown priority"),
    ({**BASE, "command": "set_limits", "condition": "hr_high", "limits": {"low": 100}}, "has no low tier"),
    ({**BASE, "command": "set_limits", "condition": "hr_high", "limits": {"medium": 400}},
     "outside the physiological range 60..250"),
    ({**BASE, "command": "set_limits", "condition": "spo2_low", "limits": {"medium": 101}},
     "outside the physiological range 70..99"),
    ({**BASE, "command": "set_limits", "condition": "hr_high", "limits": {"medium": 170}}, "more severe tier"),
    ({**BASE, "command": "set_limits", "condition": "af", "limits": {"low": 1}}, "no adjustable limits"),
    ({**BASE, "command": "set_limits", "condition": "lead_off", "limits": {"medium": 1}}, "no adjustable limits"),
    ({**BASE, "command": "set_limits", "condition": "hr_high", "limits": {"medium": 130}, "hysteresis": -1},
     "'hysteresis' must be >= 0"),
])
def test_command_validation_errors(payload: str | dict[str, object], message: str) -> None:
    raw = payload if isinstance(payload, str) else json.dumps(payload)
    result = parse_command(raw)
    assert isinstance(result, CommandError)
    assert message in result.message


def test_rejected_command_is_audited_with_what_could_be_read() -> None:
    error = parse_command(json.dumps({**BASE, "command": "silence", "duration_s": 9000, "id": "c-9"}))
    assert isinstance(error, CommandError)
    out = AlarmEngine().apply(error, 5)
    [entry] = out.audit
    assert (entry.actor, entry.action, entry.outcome, entry.patient, entry.command_id, entry.time_ns) == (
        "nurse-7", "command.silence", "rejected", PT, "c-9", 5)
    assert out.error == error.message


def test_valid_commands_parse_to_typed_commands() -> None:
    assert parse_command({**BASE, "command": "silence"}) == Silence(PT, "nurse-7", 120.0)
    assert parse_command(json.dumps({**BASE, "command": "acknowledge", "alarm_id": "x", "id": "c-1"}).encode()) == (
        Acknowledge(PT, "nurse-7", alarm_id="x", command_id="c-1"))
    assert parse_command({**BASE, "command": "unsilence"}) == Unsilence(PT, "nurse-7")
    limits = parse_command({**BASE, "command": "set_limits", "condition": "vt", "limits": {"high": 4}})
    assert limits == SetLimits(PT, "nurse-7", "vt", {"high": 4.0})


# ---- audit trail -----------------------------------------------------------------------------------------

def test_every_transition_and_command_is_audited() -> None:
    engine = AlarmEngine()
    outcomes: list[Outcome] = []
    for k in range(6):
        outcomes.append(engine.observe_vitals(PT, k * S, k * S + 3, hr=160))
    raised = outcomes[-1].notices[0]
    outcomes.append(engine.apply(cmd({"command": "silence", "alarm_id": raised.alarm_id, "duration_s": 10,
                                      "reason": "at bedside"}), 6 * S))
    outcomes.append(engine.tick(16 * S))
    for k in range(6, 12):
        outcomes.append(engine.observe_vitals(PT, k * S, k * S + 3, hr=70))
    outcomes.append(engine.apply(cmd({"command": "acknowledge", "alarm_id": raised.alarm_id}), 20 * S))
    audit = [a for o in outcomes for a in o.audit]
    notices = [n for o in outcomes for n in o.notices]
    transitions = [a for a in audit if a.action.startswith("alarm.")]
    assert [a.action for a in transitions] == [f"alarm.{n.state}" for n in notices]
    assert [a.action for a in transitions] == ["alarm.raised", "alarm.silenced", "alarm.unsilenced", "alarm.latched",
                                               "alarm.acknowledged", "alarm.cleared"]
    assert [(a.actor, a.time_ns) for a in transitions] == [
        ("engine", 5 * S + 3), ("nurse-7", 6 * S), ("engine", 16 * S), ("engine", 11 * S + 3), ("nurse-7", 20 * S),
        ("nurse-7", 20 * S)]
    silence_entry = next(a for a in audit if a.action == "command.silence")
    assert silence_entry.outcome == "applied" and "at bedside" in silence_entry.reason
    for entry in audit:
        json.dumps(entry.to_dict())
    json.dumps([n.to_dict() for n in notices])
    json.dumps([v.to_dict() for v in engine.active(PT)])


def test_nan_readings_count_as_not_measured() -> None:
    engine = AlarmEngine()
    raise_hr_medium(engine)
    assert hr_run(engine, [float("nan")] * 10, start_s=6) == []
    assert engine.status(PT, "hr_high") == "active"
    assert engine.news2(PT, 15 * S).subscores["pulse"] == 2  # the last real reading, 130


def test_a_rejected_command_may_be_retried_under_the_same_id() -> None:
    engine = AlarmEngine()
    ack = cmd({"command": "acknowledge", "condition": "hr_high", "id": "c-2"})
    assert not engine.apply(ack, 0).accepted  # nothing to acknowledge yet
    raise_hr_medium(engine)
    assert [n.state for n in engine.apply(ack, 10 * S).notices] == ["acknowledged"]
    assert engine.apply(ack, 11 * S).audit[0].outcome == "duplicate"
