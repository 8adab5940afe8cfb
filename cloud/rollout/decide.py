"""The rollout's decisions, as pure functions of what gateways reported and the clock.

``evaluate`` says advance / hold / abort / complete for a rollout; ``member_action``
says what one gateway should do. The controller persists and applies them; nothing here
touches a database or the network, so every rule is tested directly.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from cardiogate.cloud.rollout.plan import Gates, RolloutPlan
from cardiogate.proto.contracts import RefusalCode, UpdateAction, UpdaterPhase

# Refusals that mean "this gateway cannot take this model" rather than "this artifact is bad".
SKIP_CODES = frozenset({RefusalCode.INCOMPATIBLE, RefusalCode.OLDER_VERSION, RefusalCode.WRONG_MODEL})
RUNNING, PAUSED, COMPLETED, ABORTED = "running", "paused", "completed", "aborted"


@dataclass(frozen=True)
class MemberView:
    """One gateway in a rollout, as of its latest report."""

    gateway_id: str
    stage: int
    status: str = "pending"
    active_version: str = ""
    alarm_active: bool = False
    windows: int = 0
    agreements: int = 0
    shadow_s: float = 0.0
    candidate_p99_ms: float = 0.0
    live_p99_ms: float = 0.0
    candidate_alarm_rate: float = 0.0
    live_alarm_rate: float = 0.0
    candidate_errors: int = 0
    load_failures: int = 0
    crashes: int = 0
    refusal_code: str = ""
    last_report_ns: int | None = None

    @property
    def skipped(self) -> bool:
        return self.refusal_code in SKIP_CODES


@dataclass(frozen=True)
class RolloutView:
    rollout_id: str
    state: str
    stage: int                      # index of the stage baking now; len(sizes) once every stage passed
    stage_started_ns: int
    candidate_version: str
    plan: RolloutPlan
    sizes: tuple[int, ...]
    members: tuple[MemberView, ...]

    @property
    def final(self) -> bool:
        return self.stage >= len(self.sizes)


@dataclass(frozen=True)
class Decision:
    action: Literal["advance", "hold", "abort", "complete"]
    reason: str


def order_cohort(rollout_id: str, gateway_ids: Sequence[str], canary: Sequence[str] = ()) -> list[str]:
    """Named canaries first, then a shuffle that is stable for this rollout and differs between rollouts."""
    first = [g for g in canary if g in gateway_ids]
    rest = sorted((g for g in gateway_ids if g not in first),
                  key=lambda g: hashlib.sha256(f"{rollout_id}/{g}".encode()).hexdigest())
    return first + rest


def stage_of(position: int, sizes: Sequence[int]) -> int:
    """The stage whose cumulative size first covers ``position`` (0-based)."""
    for stage, size in enumerate(sizes):
        if position < size:
            return stage
    raise ValueError(f"position {position} lies outside the cohort ({sizes[-1] if sizes else 0})")


def exposed(view: RolloutView) -> list[MemberView]:
    """Gateways that have the candidate in shadow or live: those of the current and passed stages."""
    return [m for m in view.members if m.stage <= view.stage]


def gate_breach(members: Sequence[MemberView], gates: Gates) -> str | None:
    """The first gate the candidate breaks on these gateways' figures, in words, or None."""
    load = sum(m.load_failures for m in members)
    if load > gates.max_load_failures:
        who = ", ".join(m.gateway_id for m in members if m.load_failures)
        return f"artifact load failures: {load} > {gates.max_load_failures} ({who})"
    crashes = sum(m.crashes for m in members)
    if crashes > gates.max_crashes:
        who = ", ".join(m.gateway_id for m in members if m.crashes)
        return f"crashes with the candidate loaded: {crashes} > {gates.max_crashes} ({who})"
    refused = [m for m in members if m.refusal_code and not m.skipped and m.refusal_code != RefusalCode.LOAD_FAILED]
    if len(refused) > gates.max_integrity_refusals:
        return "gateways refused the artifact: " + ", ".join(f"{m.gateway_id} ({m.refusal_code})" for m in refused)
    judged = [m for m in members if m.windows >= gates.min_windows]
    windows = sum(m.windows for m in judged)
    if not windows:
        return None
    agreement = sum(m.agreements for m in judged) / windows
    if agreement < gates.min_agreement:
        return f"agreement with the champion {agreement:.1%} < {gates.min_agreement:.1%} over {windows} windows"
    slowest = max(judged, key=lambda m: m.candidate_p99_ms)
    if slowest.candidate_p99_ms > gates.max_latency_p99_ms:
        return (f"inference latency p99 {slowest.candidate_p99_ms:.1f} ms > {gates.max_latency_p99_ms:.1f} ms "
                f"on {slowest.gateway_id}")
    for m in judged:
        if (m.live_p99_ms > 0 and m.candidate_p99_ms > gates.max_latency_ratio * m.live_p99_ms
                and m.candidate_p99_ms - m.live_p99_ms > gates.latency_slack_ms):
            return (f"inference latency p99 {m.candidate_p99_ms:.1f} ms is over {gates.max_latency_ratio:g}x the "
                    f"champion's {m.live_p99_ms:.1f} ms on {m.gateway_id}")
    cand = sum(m.candidate_alarm_rate * m.windows for m in judged) / windows
    live = sum(m.live_alarm_rate * m.windows for m in judged) / windows
    if cand - live > gates.max_alarm_rate_increase:
        return (f"alarm rate would rise from {live:.1%} to {cand:.1%} of windows "
                f"(limit +{gates.max_alarm_rate_increase:.1%})")
    return None


def _baked(m: MemberView, view: RolloutView) -> bool:
    if m.active_version == view.candidate_version:
        return True
    return (m.status == UpdaterPhase.SHADOW and m.shadow_s >= view.plan.bake_s
            and m.windows >= view.plan.gates.min_windows)


def _stale(m: MemberView, view: RolloutView, now_ns: int) -> bool:
    return m.last_report_ns is None or now_ns - m.last_report_ns > view.plan.stale_after_s * 1e9


def evaluate(view: RolloutView, now_ns: int) -> Decision:
    """Advance when the baking stage has baked on enough gateways within the gates; abort on any breach;
    complete once every gateway runs the candidate; otherwise hold, saying why."""
    if view.state != RUNNING:
        return Decision("hold", f"rollout is {view.state}")
    breach = gate_breach(exposed(view), view.plan.gates)
    if breach is not None:
        return Decision("abort", breach)
    if view.final:
        pending = [m for m in view.members if not m.skipped and m.active_version != view.candidate_version]
        if not pending:
            return Decision("complete", "every gateway in the cohort runs the candidate")
        waiting = [m.gateway_id for m in pending if m.alarm_active]
        why = f"; {', '.join(waiting)} waiting for a high-priority alarm to clear" if waiting else ""
        return Decision("hold", f"switching: {len(view.members) - len(pending)}/{len(view.members)} done{why}")
    stage = [m for m in view.members if m.stage == view.stage and not m.skipped]
    fresh = [m for m in stage if not _stale(m, view, now_ns)]
    baked = [m for m in fresh if _baked(m, view)]
    needed = min(view.plan.min_devices_per_stage, len(stage))
    left_s = view.plan.bake_s - (now_ns - view.stage_started_ns) / 1e9
    label = f"stage {view.stage + 1}/{len(view.sizes)}"
    if not stage:
        return Decision("advance", f"{label} has no gateway that can take the candidate")
    if left_s > 0:
        return Decision("hold", f"{label} baking: {len(baked)}/{len(stage)} gateways baked, {left_s:.0f} s left")
    if len(baked) < len(fresh) or len(baked) < needed:
        return Decision("hold", f"{label} waiting: {len(baked)}/{len(stage)} gateways baked "
                                f"({len(stage) - len(fresh)} not reporting; at least {needed} needed)")
    return Decision("advance", f"{label} passed on {len(baked)} gateways")


MemberAction = Literal["baseline", UpdateAction.SHADOW, UpdateAction.ACTIVATE]  # baseline: champion rules


def member_action(view: RolloutView, member: MemberView, alarm_active: bool) -> tuple[MemberAction, str]:
    """What one gateway should run now. Gateways of passed stages switch, but not while paused and
    not while one of their patients has an active high-priority alarm: they keep shadowing meanwhile."""
    if view.state not in (RUNNING, PAUSED) or member.skipped:
        return "baseline", f"not in a running rollout ({view.state})"
    if member.stage > view.stage:
        return "baseline", f"joins at stage {member.stage + 1}"
    if member.stage == view.stage:
        return UpdateAction.SHADOW, f"stage {member.stage + 1} baking"
    if member.active_version == view.candidate_version:
        return UpdateAction.ACTIVATE, "stage passed"
    if view.state == PAUSED:
        return UpdateAction.SHADOW, "rollout paused: no new switches"
    if alarm_active:
        return UpdateAction.SHADOW, "waiting for the active high-priority alarm to clear"
    return UpdateAction.ACTIVATE, f"stage {member.stage + 1} passed"
