"""Alarm conditions, their default limits, and per-patient overrides.

Every condition is a numeric test on one value stream (flags are 0/1 values) with one or more priority
tiers. A tier must hold for its onset delay of device time before it alarms, so one noisy sample never
pages anyone; the alarm clears only once the value is back beyond a separate clear threshold (the least
severe limit moved by ``hysteresis``) for ``clear_delay_s``. docs/alarms.md explains each default.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

from cardiogate.edge.alarm_engine.model import CONDITIONS, TECHNICAL, Category, Condition, Priority, rank

Direction = Literal["above", "at_least", "below"]
# Pairs whose limits must not cross, or the patient would alarm for ever.
LOW_HIGH_PAIRS: tuple[tuple[Condition, Condition], ...] = (("hr_low", "hr_high"), ("sbp_low", "sbp_high"))


@dataclass(frozen=True, slots=True)
class Tier:
    """One priority level of a condition: the limit and how long it must be exceeded."""

    priority: Priority
    limit: float
    onset_delay_s: float


@dataclass(frozen=True, slots=True)
class ConditionSpec:
    """How one condition is detected, cleared, latched and escalated."""

    condition: Condition
    category: Category
    direction: Direction
    unit: str
    tiers: tuple[Tier, ...]  # least severe first
    hysteresis: float = 0.0
    clear_delay_s: float = 0.0
    latch_from: Priority | None = None  # episodes reaching this priority stay until acknowledged
    escalate_after_s: float | None = None  # unacknowledged for this long: one priority step up
    adjustable: tuple[float, float] | None = None  # physiological range for per-patient limits

    def __post_init__(self) -> None:
        name = self.condition
        if not self.tiers:
            raise ValueError(f"{name}: at least one tier is needed")
        ranks = [rank(t.priority) for t in self.tiers]
        if ranks != sorted(set(ranks)):
            raise ValueError(f"{name}: tiers must go from least to most severe priority, each once")
        for tier in self.tiers:
            if not math.isfinite(tier.limit) or not (0 <= tier.onset_delay_s <= 600):
                raise ValueError(f"{name}: bad {tier.priority} tier (limit must be finite, onset 0..600 s)")
            if self.adjustable is not None and not self.adjustable[0] <= tier.limit <= self.adjustable[1]:
                lo, hi = self.adjustable
                raise ValueError(f"{name}: {tier.priority} limit {tier.limit:g} {self.unit} is outside the "
                                 f"physiological range {lo:g}..{hi:g}")
        limits = [t.limit for t in self.tiers]
        ordered = limits == sorted(limits, reverse=self.direction == "below")
        if not ordered:
            worse = "lower" if self.direction == "below" else "higher"
            raise ValueError(f"{name}: a more severe tier needs a {worse} (or equal) limit")
        if not (math.isfinite(self.hysteresis) and self.hysteresis >= 0):
            raise ValueError(f"{name}: hysteresis must be >= 0")
        if self.adjustable is not None and not self.adjustable[0] <= self.clear_threshold <= self.adjustable[1]:
            raise ValueError(f"{name}: hysteresis {self.hysteresis:g} puts the clear threshold "
                             f"{self.clear_threshold:g} outside {self.adjustable[0]:g}..{self.adjustable[1]:g}")
        if not 0 <= self.clear_delay_s <= 600:
            raise ValueError(f"{name}: clear delay must be 0..600 s")
        if self.escalate_after_s is not None and not self.escalate_after_s > 0:
            raise ValueError(f"{name}: escalate_after_s must be > 0")

    @property
    def clear_threshold(self) -> float:
        """The least severe limit moved back by the hysteresis."""
        base = self.tiers[0].limit
        return base + self.hysteresis if self.direction == "below" else base - self.hysteresis

    def beyond(self, value: float, limit: float) -> bool:
        """Whether ``value`` violates ``limit`` in this condition's direction."""
        if self.direction == "above":
            return value > limit
        if self.direction == "at_least":
            return value >= limit
        return value < limit

    def cleared_by(self, value: float) -> bool:
        """Whether ``value`` is on the safe side of the clear threshold (strictly, so the gap is real)."""
        if self.direction == "below":
            return value > self.clear_threshold
        return value < self.clear_threshold

    def tier(self, priority: Priority) -> Tier | None:
        return next((t for t in self.tiers if t.priority == priority), None)

    def latches(self, priority: Priority) -> bool:
        return self.latch_from is not None and rank(priority) >= rank(self.latch_from)

    def with_limits(self, limits: Mapping[Priority, float], hysteresis: float | None = None) -> ConditionSpec:
        """A copy with some tier limits (and the hysteresis) replaced; ValueError says what is wrong."""
        if self.adjustable is None:
            raise ValueError(f"{self.condition} has no adjustable limits")
        unknown = sorted(set(limits) - {t.priority for t in self.tiers})
        if unknown:
            have = ", ".join(t.priority for t in self.tiers)
            raise ValueError(f"{self.condition} has no {'/'.join(unknown)} tier (its tiers: {have})")
        tiers = tuple(replace(t, limit=float(limits[t.priority])) if t.priority in limits else t for t in self.tiers)
        return replace(self, tiers=tiers, hysteresis=self.hysteresis if hysteresis is None else float(hysteresis))


def _tech(condition: Condition, priority: Priority, onset_s: float, clear_s: float,
          escalate_after_s: float | None = None) -> ConditionSpec:
    return ConditionSpec(condition, "technical", "at_least", "flag", (Tier(priority, 1.0, onset_s),),
                         clear_delay_s=clear_s, escalate_after_s=escalate_after_s)


def default_specs() -> dict[Condition, ConditionSpec]:
    """The shipped defaults (docs/alarms.md gives the reasons)."""
    specs = [
        ConditionSpec("hr_high", "physiological", "above", "bpm", (Tier("medium", 120, 5), Tier("high", 150, 5)),
                      hysteresis=10, clear_delay_s=5, latch_from="high", escalate_after_s=60, adjustable=(60, 250)),
        ConditionSpec("hr_low", "physiological", "below", "bpm", (Tier("medium", 50, 5), Tier("high", 40, 5)),
                      hysteresis=5, clear_delay_s=5, latch_from="high", escalate_after_s=60, adjustable=(25, 120)),
        ConditionSpec("spo2_low", "physiological", "below", "%", (Tier("medium", 90, 15), Tier("high", 85, 10)),
                      hysteresis=2, clear_delay_s=10, latch_from="high", escalate_after_s=60, adjustable=(70, 99)),
        ConditionSpec("sbp_high", "physiological", "above", "mmHg", (Tier("medium", 180, 0), Tier("high", 220, 0)),
                      hysteresis=10, latch_from="high", escalate_after_s=60, adjustable=(100, 280)),
        ConditionSpec("sbp_low", "physiological", "below", "mmHg", (Tier("medium", 90, 0), Tier("high", 70, 0)),
                      hysteresis=10, latch_from="high", escalate_after_s=60, adjustable=(50, 150)),
        ConditionSpec("asystole", "physiological", "above", "s", (Tier("high", 3.0, 0),),
                      hysteresis=1.0, clear_delay_s=3, latch_from="high", adjustable=(2, 10)),
        # 4 beats: on real bedside VT alarms (CinC 2015) the detector splits or shortens true runs; 6 beats missed
        # 13 of 36 true VTs, 4 misses 3, 3 misses none but raises 1.6 false VT alarms per patient-hour on simulated
        # noisy single-lead ECG (4: 0.2). docs/alarms.md "The VT limit".
        ConditionSpec("vt", "physiological", "at_least", "beats", (Tier("high", 4, 0),),
                      latch_from="high", adjustable=(3, 30)),
        # ventricular flutter/fibrillation from the waveform (cardiogate.edge.dsp.vf), judged every second on 4 s:
        # the flag must hold for 2 s more (three windows in a row), so one odd window never pages anyone
        ConditionSpec("vf", "physiological", "at_least", "flag", (Tier("high", 1.0, 2.0),), clear_delay_s=5,
                      latch_from="high"),
        # VF on one lead that a second lead or a continuing pulse argues against: an advisory, never nothing
        ConditionSpec("vf_unconfirmed", "physiological", "at_least", "flag", (Tier("low", 1.0, 2.0),),
                      clear_delay_s=10),
        ConditionSpec("af", "physiological", "at_least", "flag", (Tier("low", 1.0, 30),), clear_delay_s=30),
        # a VT run the evidence argues against (vt_rejection): shown as an advisory, never dropped silently
        ConditionSpec("vt_unconfirmed", "physiological", "at_least", "flag", (Tier("low", 1.0, 0),), clear_delay_s=10),
        ConditionSpec("news2", "physiological", "at_least", "points", (Tier("medium", 5, 60), Tier("high", 7, 60)),
                      hysteresis=1, clear_delay_s=60, latch_from="high", adjustable=(1, 20)),
        # the gateway risk model's score (docs/alarms.md "Risk advisory"): advisory only, beside NEWS2, never latched;
        # 0.10 flags 3.7 % of eICU demo stays by the shipped student's score, 2.7x the base death rate (docs/alarms.md)
        ConditionSpec("risk", "physiological", "at_least", "probability", (Tier("low", 0.10, 0),),
                      hysteresis=0.01, clear_delay_s=600, adjustable=(0.01, 0.99)),
        _tech("lead_off", "medium", 10, 2),
        _tech("poor_signal", "low", 10, 5),
        _tech("device_lost", "medium", 0, 0, escalate_after_s=60),
        _tech("battery_low", "low", 0, 0),
        _tech("outbox_near_full", "low", 0, 0),
        _tech("model_failure", "low", 0, 0),
        _tech("uplink_refused", "medium", 0, 0),
    ]
    return {s.condition: s for s in specs}


def check_pairs(specs: Mapping[Condition, ConditionSpec]) -> None:
    """Low limits must stay below the matching high limits (ValueError otherwise)."""
    for low, high in LOW_HIGH_PAIRS:
        lo, hi = specs[low].tiers[0].limit, specs[high].tiers[0].limit
        if not lo < hi:
            raise ValueError(f"{low} limit {lo:g} must be below {high} limit {hi:g}")


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """Default condition specs, per-patient overrides and command limits."""

    specs: Mapping[Condition, ConditionSpec] = field(default_factory=default_specs)
    patient_specs: Mapping[str, Mapping[Condition, ConditionSpec]] = field(default_factory=dict)
    max_silence_s: float = 300.0  # longest audio pause a command may ask for
    default_silence_s: float = 120.0  # when a silence command gives no duration (IEC 60601-1-8 typical 2 min)
    news2_max_age_s: float = 3600.0  # an intermittent reading (BP, temperature...) older than this is missing
    vt_min_rate_bpm: float = 100.0  # a ventricular run slower than this is idioventricular, not VT
    remembered_command_ids: int = 1024  # MQTT QoS 1 redelivers; ids seen recently are ignored

    def __post_init__(self) -> None:
        missing = [c for c in CONDITIONS if c not in self.specs]
        if missing:
            raise ValueError(f"no spec for {', '.join(missing)}")
        for key, spec in self.specs.items():
            if key != spec.condition:
                raise ValueError(f"spec for {spec.condition} filed under {key}")
            if (key in TECHNICAL) != (spec.category == "technical"):
                raise ValueError(f"{key}: wrong category {spec.category}")
        check_pairs(self.specs)
        for patient, overrides in self.patient_specs.items():
            for key, spec in overrides.items():
                if key != spec.condition or spec.category != self.specs[key].category:
                    raise ValueError(f"{patient}: override for {key} does not match")
            check_pairs({**self.specs, **overrides})
        if not 0 < self.default_silence_s <= self.max_silence_s:
            raise ValueError("default_silence_s must be in (0, max_silence_s]")

    def specs_for(self, patient: str) -> dict[Condition, ConditionSpec]:
        """The defaults with this patient's overrides applied."""
        return {**self.specs, **self.patient_specs.get(patient, {})}
