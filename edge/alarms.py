"""Alarm rules as pure state machines: values and sample times in, alarm events out.

An upper-limit rule raises when every sample for ``onset_delay_s`` of device time is
above the limit (so one noisy beat pages no one) and clears only after the value has
stayed below a lower ``clear_below`` level for the same delay (hysteresis).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Literal

Priority = Literal["low", "medium", "high", "technical"]
_ids = itertools.count(1)


@dataclass(frozen=True, slots=True)
class UpperLimitRule:
    condition: str
    limit: float
    clear_below: float
    onset_delay_s: float
    priority: Priority

    def __post_init__(self) -> None:
        if self.clear_below > self.limit:
            raise ValueError(f"{self.condition}: clear_below must not exceed the limit")


@dataclass(frozen=True, slots=True)
class AlarmEvent:
    """A raise or clear decision, with the sample times that justify it."""

    alarm_id: str
    condition: str
    priority: Priority
    raised: bool
    value: float
    limit: float
    onset_sample_time_ns: int
    trigger_sample_time_ns: int
    decision_time_ns: int


class UpperLimitAlarm:
    """The state of one rule for one patient."""

    def __init__(self, rule: UpperLimitRule, scope: str) -> None:
        self.rule = rule
        self.scope = scope
        self._above_since: int | None = None
        self._below_since: int | None = None
        self.active_id: str | None = None

    @property
    def active(self) -> bool:
        return self.active_id is not None

    def update(self, value: float, sample_time_ns: int, now_ns: int) -> AlarmEvent | None:
        """Feed one sample (device time); returns an event when the alarm raises or clears."""
        rule = self.rule
        delay_ns = round(rule.onset_delay_s * 1e9)
        if value > rule.limit:
            self._below_since = None
            if self._above_since is None:
                self._above_since = sample_time_ns
            if not self.active and sample_time_ns - self._above_since >= delay_ns:
                self.active_id = f"{self.scope}:{rule.condition}:{next(_ids)}:{sample_time_ns}"
                return AlarmEvent(self.active_id, rule.condition, rule.priority, True, value, rule.limit,
                                  self._above_since, sample_time_ns, now_ns)
            return None
        self._above_since = None
        if not self.active:
            return None
        if value >= rule.clear_below:
            self._below_since = None
            return None
        if self._below_since is None:
            self._below_since = sample_time_ns
        if sample_time_ns - self._below_since >= delay_ns:
            alarm_id, self.active_id = self.active_id, None
            assert alarm_id is not None
            below = self._below_since
            self._below_since = None
            return AlarmEvent(alarm_id, rule.condition, rule.priority, False, value, rule.clear_below,
                              below, sample_time_ns, now_ns)
        return None


class TechnicalAlarm:
    """A technical condition (lead off, battery low, device lost) that must persist ``onset_delay_s``.

    It raises with priority "technical" and clears as soon as the condition is gone.
    """

    def __init__(self, condition: str, scope: str, onset_delay_s: float) -> None:
        self.condition = condition
        self.scope = scope
        self._delay_ns = round(onset_delay_s * 1e9)
        self._since: int | None = None
        self.active_id: str | None = None

    @property
    def active(self) -> bool:
        return self.active_id is not None

    def update(self, present: bool, sample_time_ns: int, now_ns: int, value: float = 1.0,
               limit: float = 0.0) -> AlarmEvent | None:
        if present:
            if self._since is None:
                self._since = sample_time_ns
            if not self.active and sample_time_ns - self._since >= self._delay_ns:
                self.active_id = f"{self.scope}:{self.condition}:{next(_ids)}:{sample_time_ns}"
                return AlarmEvent(self.active_id, self.condition, "technical", True, value, limit, self._since,
                                  sample_time_ns, now_ns)
            return None
        since, self._since = self._since, None
        if self.active_id is None:
            return None
        alarm_id, self.active_id = self.active_id, None
        return AlarmEvent(alarm_id, self.condition, "technical", False, value, limit, since or sample_time_ns,
                          sample_time_ns, now_ns)
