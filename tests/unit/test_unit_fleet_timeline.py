"""A gateway's timeline shows what changed, silences and returns, and rollout events, in time order."""

from __future__ import annotations

from cardiogate.cloud.api.fleet_timeline import Beat, RolloutEvent, timeline

S = 10**9


def beat(t_s: float, health: str = "ok", software: str = "0.3.1", rhythm: str = "1.0.0") -> Beat:
    return Beat(int(t_s * S), health, software, {"rhythm": rhythm})


def test_only_changes_silences_and_rollout_events_become_entries() -> None:
    beats = [beat(0), beat(30), beat(60, health="degraded"), beat(90, health="degraded"),
             beat(300, health="ok", software="0.3.2"), beat(330, software="0.3.2", rhythm="1.1.0")]
    events = [RolloutEvent(int(320 * S), "r1", "switched", "", {"version": "1.1.0"}),
              RolloutEvent(int(10 * S), "r0", "started", "oper", {})]
    got = [(e.time_ns // S, e.kind, e.summary) for e in timeline(beats, events)]
    assert got == [
        (0, "first_heartbeat", "first heartbeat: ok, software 0.3.1"),
        (10, "rollout", "rollout r0: started by oper"),
        (60, "health", "health ok -> degraded"),
        (90, "silent", "no heartbeat for 210 s"),
        (300, "back", "heartbeats again (restart or link back)"),
        (300, "health", "health degraded -> ok"),
        (300, "software", "software 0.3.1 -> 0.3.2"),
        (320, "rollout", "rollout r1: switched"),
        (330, "model", "model rhythm: 1.0.0 -> 1.1.0"),
    ]


def test_a_steady_gateway_has_one_entry_and_a_gap_under_the_limit_is_no_silence() -> None:
    assert [e.kind for e in timeline([beat(0), beat(30), beat(115)], [])] == ["first_heartbeat"]
    assert [e.kind for e in timeline([beat(0), beat(91)], [], silence_s=90)] == ["first_heartbeat", "silent", "back"]
    assert timeline([], []) == []
