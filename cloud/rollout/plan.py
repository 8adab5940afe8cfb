"""A rollout plan: who gets the candidate, in which stages, and what it must show to move on."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from cardiogate.core.errors import PermanentError


class PlanError(PermanentError, ValueError):
    """The plan is inconsistent (a share above 1, growth below 1, ...)."""


@dataclass(frozen=True)
class Gates:
    """Limits the candidate must stay within; any breach aborts the rollout and rolls it back.

    Figures count from a gateway once it has shadowed ``min_windows`` windows, so one odd
    window cannot abort a rollout; load failures, crashes and integrity refusals count at once.
    """

    max_load_failures: int = 0
    max_crashes: int = 0
    max_integrity_refusals: int = 0
    min_agreement: float = 0.90
    max_latency_p99_ms: float = 250.0
    max_latency_ratio: float = 3.0
    latency_slack_ms: float = 10.0  # the ratio gate ignores slow-downs smaller than this (jitter on tiny models)
    max_alarm_rate_increase: float = 0.05
    min_windows: int = 20

    def check(self) -> None:
        if not 0.0 <= self.min_agreement <= 1.0:
            raise PlanError("min_agreement must lie within 0..1")
        if min(self.max_load_failures, self.max_crashes, self.max_integrity_refusals, self.min_windows) < 0:
            raise PlanError("counts must not be negative")
        if self.max_latency_p99_ms <= 0 or self.max_latency_ratio < 1.0 or self.latency_slack_ms < 0:
            raise PlanError("latency limits must be positive (ratio >= 1, slack >= 0)")
        if self.max_alarm_rate_increase < 0:
            raise PlanError("max_alarm_rate_increase must not be negative")


@dataclass(frozen=True)
class RolloutPlan:
    """Cohort (by site and/or tag), stage sizes and timing.

    Stage k covers ``ceil(cohort * canary_share * growth**k)`` gateways in total (never
    fewer than ``min_devices_per_stage``, the devices here being gateways), until all.
    Each stage bakes in shadow for ``bake_s`` before its gateways switch and the next
    stage starts. Gateways named in ``canary`` go first.
    """

    sites: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    canary: tuple[str, ...] = ()
    canary_share: float = 0.1
    growth: float = 2.0
    min_devices_per_stage: int = 2
    bake_s: float = 3600.0
    stale_after_s: float = 900.0
    gates: Gates = field(default_factory=Gates)

    def check(self) -> None:
        if not 0.0 < self.canary_share <= 1.0:
            raise PlanError("canary_share must lie within (0, 1]")
        if self.growth <= 1.0:
            raise PlanError("growth must be above 1 (stages must grow)")
        if self.min_devices_per_stage < 1:
            raise PlanError("min_devices_per_stage must be at least 1")
        if self.bake_s < 0 or self.stale_after_s <= 0:
            raise PlanError("bake_s must not be negative and stale_after_s must be positive")
        self.gates.check()

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> RolloutPlan:
        known = {f.name for f in fields(cls)}
        unknown = set(doc) - known
        if unknown:
            raise PlanError(f"unknown plan fields: {', '.join(sorted(unknown))}")
        gate_doc = dict(doc.get("gates", {}))
        gate_unknown = set(gate_doc) - {f.name for f in fields(Gates)}
        if gate_unknown:
            raise PlanError(f"unknown gate fields: {', '.join(sorted(gate_unknown))}")
        values: dict[str, Any] = {k: v for k, v in doc.items() if k != "gates"}
        for name in ("sites", "tags", "canary"):
            if name in values:
                values[name] = tuple(values[name])
        plan = cls(**values, gates=Gates(**gate_doc))
        plan.check()
        return plan

    @classmethod
    def from_json(cls, text: str) -> RolloutPlan:
        return cls.from_dict(json.loads(text))


def stage_sizes(cohort: int, plan: RolloutPlan) -> list[int]:
    """Cumulative gateways per stage, e.g. 10 gateways, 20% canary, growth 2 -> [2, 4, 8, 10]."""
    sizes: list[int] = []
    share = plan.canary_share
    while cohort > 0:
        size = min(cohort, max(plan.min_devices_per_stage, math.ceil(cohort * share - 1e-9)))
        if not sizes or size > sizes[-1]:
            sizes.append(size)
        if size >= cohort:
            break
        share *= plan.growth
    return sizes
