"""Value types the alarm engine emits: notices (for MQTT), audit entries (for the record), views (retained state).

All times are integers in ns. Device times come from the triggering samples; decision times are the
gateway clock the caller passed in, so the sample-to-decision latency can be proven from the record.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

from cardiogate.edge.dsp.vf import VfVerdict as VfVerdict  # the engine takes the DSP verdict as is

Priority = Literal["low", "medium", "high"]
PRIORITIES: tuple[Priority, ...] = ("low", "medium", "high")
Category = Literal["physiological", "technical"]

PhysiologicalCondition = Literal["hr_high", "hr_low", "spo2_low", "sbp_high", "sbp_low", "asystole", "vt", "af",
                                 "news2", "vt_unconfirmed", "risk", "vf", "vf_unconfirmed"]
TechnicalCondition = Literal["lead_off", "poor_signal", "device_lost", "battery_low", "outbox_near_full",
                             "model_failure", "uplink_refused"]
Condition = PhysiologicalCondition | TechnicalCondition
PHYSIOLOGICAL: tuple[PhysiologicalCondition, ...] = ("hr_high", "hr_low", "spo2_low", "sbp_high", "sbp_low",
                                                     "asystole", "vt", "af", "news2", "vt_unconfirmed", "risk",
                                                     "vf", "vf_unconfirmed")
TECHNICAL: tuple[TechnicalCondition, ...] = ("lead_off", "poor_signal", "device_lost", "battery_low",
                                             "outbox_near_full", "model_failure", "uplink_refused")
CONDITIONS: tuple[Condition, ...] = (*PHYSIOLOGICAL, *TECHNICAL)

NoticeState = Literal["raised", "escalated", "acknowledged", "silenced", "unsilenced", "latched", "cleared"]
AlarmStatus = Literal["inactive", "pending", "active", "latched"]
AuditOutcome = Literal["applied", "no_change", "rejected", "duplicate"]
ENGINE_ACTOR = "engine"


def rank(priority: Priority) -> int:
    """Order of priorities (low < medium < high), for escalation and sorting."""
    return PRIORITIES.index(priority)


@dataclass(frozen=True, slots=True)
class AlarmNotice:
    """One alarm state change, ready to publish (QoS 1). ``alarm_id`` is stable for the whole episode."""

    alarm_id: str
    patient: str
    condition: Condition
    category: Category
    priority: Priority
    state: NoticeState
    value: float
    limit: float
    onset_sample_device_time_ns: int
    trigger_sample_device_time_ns: int
    decision_time_ns: int
    acknowledged: bool
    silenced_until_ns: int | None
    by: str
    reason: str

    def to_dict(self) -> dict[str, object]:
        """JSON-ready fields (the caller adds schema, site, device and publish time)."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """Who did what, when and why: one per command and one per alarm state transition."""

    time_ns: int
    actor: str
    action: str
    outcome: AuditOutcome
    patient: str | None
    alarm_id: str | None
    condition: str | None
    reason: str
    command_id: str | None = None
    priority: Priority | None = None
    value: float | None = None

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class AlarmView:
    """A currently visible alarm (active, or latched awaiting acknowledgement), for the retained state topic."""

    alarm_id: str
    patient: str
    condition: Condition
    category: Category
    priority: Priority
    status: Literal["active", "latched"]
    acknowledged: bool
    silenced_until_ns: int | None
    value: float
    limit: float
    onset_sample_device_time_ns: int
    raised_time_ns: int

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one engine call produced. ``error`` is set only when a command was rejected."""

    notices: tuple[AlarmNotice, ...] = ()
    audit: tuple[AuditEntry, ...] = ()
    error: str | None = None

    @property
    def accepted(self) -> bool:
        return self.error is None
