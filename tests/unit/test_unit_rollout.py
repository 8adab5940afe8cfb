"""The rollout's pure decisions: stages, gates, holds and what each gateway is told."""

from __future__ import annotations

from dataclasses import replace

import pytest

from cardiogate.cloud.rollout.decide import (
    MemberView,
    RolloutView,
    evaluate,
    gate_breach,
    member_action,
    order_cohort,
    stage_of,
)
from cardiogate.cloud.rollout.plan import Gates, PlanError, RolloutPlan, stage_sizes

S = 10**9
PLAN = RolloutPlan(canary_share=0.2, growth=2.0, min_devices_per_stage=2, bake_s=60.0, stale_after_s=120.0,
                   gates=Gates(min_windows=20))
SIZES = tuple(stage_sizes(10, PLAN))


def good(gateway: str, stage: int, now: int, **over: object) -> MemberView:
    """A gateway that shadowed long enough and agreed with the champion."""
    base = MemberView(gateway, stage, "shadow", "1.0.0", False, windows=100, agreements=98, shadow_s=61.0,
                      candidate_p99_ms=4.0, live_p99_ms=3.5, candidate_alarm_rate=0.10, live_alarm_rate=0.10,
                      last_report_ns=now)
    return replace(base, **over)  # type: ignore[arg-type]


def view(members: list[MemberView], stage: int = 0, started: int = 0, state: str = "running") -> RolloutView:
    return RolloutView("ro-1", state, stage, started, "1.1.0", PLAN, SIZES, tuple(members))


def cohort(now: int, stage: int, **over: object) -> list[MemberView]:
    """Ten gateways; those of stages <= ``stage`` report good figures, later ones nothing yet."""
    out = []
    for i in range(10):
        s = stage_of(i, SIZES)
        if s < stage:
            out.append(good(f"gw-{i}", s, now, status="active", active_version="1.1.0", windows=0, agreements=0))
        elif s == stage:
            out.append(good(f"gw-{i}", s, now, **over))
        else:
            out.append(MemberView(f"gw-{i}", s))
    return out


def test_exponential_stages_from_a_canary() -> None:
    assert SIZES == (2, 4, 8, 10)
    assert stage_sizes(100, RolloutPlan(canary_share=0.05, growth=2.0, min_devices_per_stage=2)) == \
        [5, 10, 20, 40, 80, 100]
    assert stage_sizes(3, RolloutPlan(canary_share=0.1, min_devices_per_stage=2)) == [2, 3]
    assert stage_sizes(1, RolloutPlan()) == [1]
    assert stage_sizes(0, RolloutPlan()) == []
    assert [stage_of(i, SIZES) for i in range(10)] == [0, 0, 1, 1, 2, 2, 2, 2, 3, 3]


def test_cohort_order_is_stable_per_rollout_and_canaries_go_first() -> None:
    gws = [f"gw-{i}" for i in range(10)]
    assert order_cohort("ro-1", gws) == order_cohort("ro-1", list(reversed(gws)))
    assert order_cohort("ro-1", gws) != order_cohort("ro-2", gws)
    assert order_cohort("ro-1", gws, canary=["gw-7", "gw-3", "nope"])[:2] == ["gw-7", "gw-3"]


def test_canary_then_stages_then_all() -> None:
    now = 1000 * S
    # canary baking: hold until the bake time has passed
    assert evaluate(view(cohort(now, 0), 0, started=now - 30 * S), now).action == "hold"
    d = evaluate(view(cohort(now, 0), 0, started=now - 61 * S), now)
    assert d.action == "advance" and "stage 1/4 passed" in d.reason
    for stage in (1, 2, 3):
        assert evaluate(view(cohort(now, stage), stage, started=now - 61 * S), now).action == "advance"
    # every stage passed: complete once all ten run the candidate
    switching = cohort(now, 4)
    switching[9] = replace(switching[9], active_version="1.0.0", status="shadow")
    assert evaluate(view(switching, 4), now).action == "hold"
    assert evaluate(view(cohort(now, 4), 4), now).action == "complete"


def test_stage_waits_for_every_reporting_gateway_to_bake() -> None:
    now = 1000 * S
    members = cohort(now, 0)
    members[1] = replace(members[1], shadow_s=10.0)  # joined late
    d = evaluate(view(members, 0, started=now - 61 * S), now)
    assert d.action == "hold" and "1/2" in d.reason
    members[1] = replace(members[1], windows=5)  # baked long enough but too few windows to judge
    members[1] = replace(members[1], shadow_s=70.0)
    assert evaluate(view(members, 0, started=now - 61 * S), now).action == "hold"


def test_silent_gateway_does_not_block_but_the_minimum_does() -> None:
    now = 1000 * S
    members = cohort(now, 1)
    members[3] = replace(members[3], last_report_ns=now - 500 * S)  # gone quiet
    members[2] = replace(members[2], last_report_ns=now)
    d = evaluate(view(members, 1, started=now - 61 * S), now)
    assert d.action == "hold" and "not reporting" in d.reason  # 1 baked < min_devices_per_stage 2
    big = cohort(now, 2)  # stage 3 has four gateways; one silent still leaves three
    big[4] = replace(big[4], last_report_ns=None)
    assert evaluate(view(big, 2, started=now - 61 * S), now).action == "advance"


@pytest.mark.parametrize(("over", "needle"), [
    ({"agreements": 40}, "agreement with the champion 69.0% < 90.0% over 200 windows"),
    ({"candidate_p99_ms": 900.0}, "latency p99 900.0 ms > 250.0 ms"),
    ({"candidate_p99_ms": 40.0, "live_p99_ms": 5.0}, "over 3x the champion"),
    ({"candidate_p99_ms": 5.0, "live_p99_ms": 0.1, "crashes": 1}, "crashes"),  # 50x, but within the slack
    ({"candidate_alarm_rate": 0.30}, "alarm rate would rise from 10.0% to 20.0%"),
    ({"load_failures": 1}, "artifact load failures"),
    ({"crashes": 1}, "crashes with the candidate loaded"),
    ({"refusal_code": "sha256_mismatch", "status": "refused"}, "refused the artifact: gw-0 (sha256_mismatch)"),
])
def test_bad_canary_aborts(over: dict[str, object], needle: str) -> None:
    now = 1000 * S
    members = cohort(now, 0)
    members[0] = replace(members[0], **over)  # type: ignore[arg-type]
    d = evaluate(view(members, 0, started=now - 5 * S), now)  # long before the bake ends
    assert d.action == "abort"
    assert needle in d.reason


def test_figures_count_only_once_enough_windows_are_in() -> None:
    now = 1000 * S
    members = cohort(now, 0)
    members[0] = replace(members[0], windows=5, agreements=0)
    members[1] = replace(members[1], windows=5, agreements=0)
    assert evaluate(view(members, 0, started=now - 5 * S), now).action == "hold"


def test_incompatible_gateway_is_skipped_not_fatal() -> None:
    now = 1000 * S
    members = cohort(now, 0)
    members[1] = replace(members[1], refusal_code="incompatible", status="skipped", windows=0, shadow_s=0.0)
    assert gate_breach(members[:2], PLAN.gates) is None
    assert evaluate(view(members, 0, started=now - 61 * S), now).action == "advance"
    assert member_action(view(members, 1), members[1], False)[0] == "baseline"


def test_skipped_gateways_do_not_block_completion() -> None:
    now = 1000 * S
    members = cohort(now, 4)
    members[5] = replace(members[5], active_version="1.0.0", refusal_code="incompatible")
    assert evaluate(view(members, 4), now).action == "complete"


def test_member_actions_follow_the_stages() -> None:
    now = 1000 * S
    members = cohort(now, 1)
    v = view(members, 1)
    assert member_action(v, members[0], False)[0] == "activate"  # canary: stage passed
    assert member_action(v, members[2], False)[0] == "shadow"    # stage 2 baking
    assert member_action(v, members[9], False)[0] == "baseline"  # stage 4: not yet


def test_switch_waits_for_a_high_priority_alarm_to_clear() -> None:
    now = 1000 * S
    members = cohort(now, 1)
    members[0] = replace(members[0], active_version="1.0.0", status="shadow")
    v = view(members, 1)
    action, reason = member_action(v, members[0], alarm_active=True)
    assert action == "shadow" and "alarm" in reason
    assert member_action(v, members[0], alarm_active=False)[0] == "activate"
    # the rollout cannot complete while a gateway waits, and says who
    final = cohort(now, 4)
    final[3] = replace(final[3], active_version="1.0.0", status="shadow", alarm_active=True)
    d = evaluate(view(final, 4), now)
    assert d.action == "hold" and "gw-3 waiting for a high-priority alarm" in d.reason


def test_paused_rollout_holds_and_switches_nobody_new() -> None:
    now = 1000 * S
    members = cohort(now, 1)
    members[0] = replace(members[0], active_version="1.0.0", status="shadow")
    v = view(members, 1, started=now - 500 * S, state="paused")
    assert evaluate(v, now).action == "hold"
    assert member_action(v, members[0], False) == ("shadow", "rollout paused: no new switches")
    assert member_action(v, members[1], False)[0] == "activate"  # already switched: stays


def test_aborted_rollout_sends_everyone_to_the_baseline() -> None:
    now = 1000 * S
    members = cohort(now, 2)
    v = view(members, 2, state="aborted")
    assert {member_action(v, m, False)[0] for m in members} == {"baseline"}
    assert evaluate(v, now).action == "hold"


def test_activated_gateways_stay_watched() -> None:
    now = 1000 * S
    members = cohort(now, 2)
    members[0] = replace(members[0], crashes=1)  # a canary crashed after switching
    assert evaluate(view(members, 2, started=now), now).action == "abort"


def test_plan_validation_and_json_round_trip() -> None:
    plan = RolloutPlan(sites=("ward-a",), tags=("pi5",), canary=("gw-1",), gates=Gates(min_agreement=0.95))
    assert RolloutPlan.from_json(plan.to_json()) == plan
    for bad in ({"canary_share": 0}, {"growth": 1.0}, {"min_devices_per_stage": 0}, {"bake_s": -1},
                {"gates": {"min_agreement": 1.5}}, {"surprise": 1}, {"gates": {"surprise": 1}}):
        with pytest.raises(PlanError):
            RolloutPlan.from_dict(bad)
