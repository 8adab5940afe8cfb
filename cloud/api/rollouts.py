"""Model rollouts through the API: the same controller the CLI drives (``cardiogate models rollout``).

Reading rollouts needs the models permission (clinicians, operators, admins); starting, pausing,
resuming, promoting and aborting needs the rollout permission (operators, admins). Every action is
recorded in the rollout's own history with the user as actor, as the CLI's are. Plans are the JSON
document ``cardiogate models rollout start --plan`` takes, validated by the same code.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from datetime import datetime
from typing import Any, cast

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from cardiogate.cloud.api.access import MODELS_READ, ROLLOUT_MANAGE
from cardiogate.cloud.api.context import context_of, permitted
from cardiogate.cloud.api.objects import ns_time
from cardiogate.cloud.api.resolvers import bad_input, field, mutation, not_available
from cardiogate.cloud.registry.models import RegistryError
from cardiogate.cloud.rollout.controller import RolloutController, RolloutError, RolloutEvent, RolloutStatus
from cardiogate.cloud.rollout.plan import PlanError, RolloutPlan


@strawberry.type
class RolloutMember:
    """One gateway in a rollout with its shadow figures, as of its latest report."""

    gateway_id: str
    stage: int
    status: str
    active_version: str
    alarm_active: bool
    windows: int
    agreement: float | None
    shadow_s: float
    candidate_p99_ms: float
    live_p99_ms: float
    candidate_alarm_rate: float
    live_alarm_rate: float
    candidate_errors: int
    load_failures: int
    crashes: int
    refusal_code: str
    refusal_detail: str
    last_report_at: datetime | None


@strawberry.type
class RolloutHistoryEntry:
    at: datetime | None
    kind: str
    gateway_id: str | None
    actor: str
    detail: JSON


@strawberry.type
class Rollout:
    rollout_id: strawberry.ID
    model: str
    candidate_version: str
    baseline_version: str | None
    state: str
    stage: int = strawberry.field(description="index of the stage baking now; the number of stages once all passed")
    stage_sizes: list[int] = strawberry.field(description="cumulative gateways per stage")
    decision: str
    plan: JSON
    created_at: datetime | None
    finished_at: datetime | None
    members: list[RolloutMember]
    history: list[RolloutHistoryEntry]

    @classmethod
    def of(cls, s: RolloutStatus, events: list[RolloutEvent]) -> Rollout:
        members = [RolloutMember(gateway_id=m.gateway_id, stage=m.stage, status=m.status,
                                 active_version=m.active_version, alarm_active=m.alarm_active, windows=m.windows,
                                 agreement=m.agreements / m.windows if m.windows else None, shadow_s=m.shadow_s,
                                 candidate_p99_ms=m.candidate_p99_ms, live_p99_ms=m.live_p99_ms,
                                 candidate_alarm_rate=m.candidate_alarm_rate, live_alarm_rate=m.live_alarm_rate,
                                 candidate_errors=m.candidate_errors, load_failures=m.load_failures,
                                 crashes=m.crashes, refusal_code=m.refusal_code, refusal_detail=detail,
                                 last_report_at=ns_time(m.last_report_ns)) for m, detail in s.members]
        history = [RolloutHistoryEntry(at=ns_time(e.time_ns), kind=e.kind, gateway_id=e.gateway_id, actor=e.actor,
                                       detail=cast(JSON, e.detail)) for e in events]
        return cls(rollout_id=strawberry.ID(s.rollout_id), model=s.model, candidate_version=s.candidate_version,
                   baseline_version=s.baseline_version, state=s.state, stage=s.stage, stage_sizes=list(s.sizes),
                   decision=s.decision, plan=cast(JSON, _plan_doc(s.plan)), created_at=ns_time(s.created_ns),
                   finished_at=ns_time(s.finished_ns), members=members, history=history)


def _plan_doc(plan: RolloutPlan) -> dict[str, Any]:
    doc = asdict(plan)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in doc.items()}


def _controller(info: Info[Any, Any]) -> RolloutController:
    controller = context_of(info).services.rollouts
    if controller is None:
        raise not_available("rollouts (this API runs without the model registry)")
    return controller


def _view(controller: RolloutController, rollout_id: str) -> Rollout:
    return Rollout.of(controller.status(rollout_id), controller.history(rollout_id))


@strawberry.type
class RolloutQuery:
    @field("Rollouts, newest first (at most 50), optionally of one model.")
    async def rollouts(self, info: Info[Any, Any], model: str | None = None) -> list[Rollout]:
        permitted(info, MODELS_READ)
        controller = _controller(info)

        def load() -> list[Rollout]:
            return [Rollout.of(s, controller.history(s.rollout_id)) for s in controller.list_rollouts(model)[:50]]

        return await asyncio.to_thread(load)

    @field("One rollout: stages, each gateway's progress and shadow figures, history.")
    async def rollout(self, info: Info[Any, Any], rollout_id: strawberry.ID) -> Rollout | None:
        permitted(info, MODELS_READ)
        controller = _controller(info)
        try:
            return await asyncio.to_thread(_view, controller, str(rollout_id))
        except RolloutError:
            return None


async def _act(info: Info[Any, Any], action: str, rollout_id: str, reason: str) -> Rollout:
    caller = permitted(info, ROLLOUT_MANAGE)
    controller = _controller(info)

    def run() -> Rollout:
        getattr(controller, action)(rollout_id, actor=caller.principal.subject, reason=reason)
        return _view(controller, rollout_id)

    try:
        return await asyncio.to_thread(run)
    except (RolloutError, RegistryError) as exc:
        raise bad_input(str(exc)) from exc


@strawberry.type
class RolloutMutation:
    @mutation("Stage a registered version out to a cohort (plan: the JSON of `models rollout start --plan`).")
    async def start_rollout(self, info: Info[Any, Any], model: str, version: str, plan: JSON) -> Rollout:
        caller = permitted(info, ROLLOUT_MANAGE)
        controller = _controller(info)
        if not isinstance(plan, dict):
            raise bad_input("plan must be a JSON object")

        def run() -> Rollout:
            rollout_id = controller.start(model, version, RolloutPlan.from_dict(plan), actor=caller.principal.subject)
            return _view(controller, rollout_id)

        try:
            return await asyncio.to_thread(run)
        except (RolloutError, RegistryError, PlanError, TypeError, ValueError) as exc:
            raise bad_input(str(exc)) from exc

    @mutation("Hold a running rollout at its stage.")
    async def pause_rollout(self, info: Info[Any, Any], rollout_id: strawberry.ID, reason: str = "") -> Rollout:
        return await _act(info, "pause", str(rollout_id), reason)

    @mutation("Let a paused rollout go on.")
    async def resume_rollout(self, info: Info[Any, Any], rollout_id: strawberry.ID, reason: str = "") -> Rollout:
        return await _act(info, "resume", str(rollout_id), reason)

    @mutation("Skip the remaining stages: the candidate becomes champion everywhere.")
    async def promote_rollout(self, info: Info[Any, Any], rollout_id: strawberry.ID, reason: str = "") -> Rollout:
        return await _act(info, "promote", str(rollout_id), reason)

    @mutation("Stop and roll back: gateways that switched get a signed order back to the baseline.")
    async def abort_rollout(self, info: Info[Any, Any], rollout_id: strawberry.ID, reason: str = "") -> Rollout:
        return await _act(info, "abort", str(rollout_id), reason)
