"""IEC 60601-1-8 style alarm engine: prioritised physiological and technical alarms, audited commands, NEWS2.

Pure core (no I/O, no clocks): the caller passes device and gateway times in ns and publishes what comes out.
"""

from cardiogate.core.news2 import News2Result, news2
from cardiogate.edge.alarm_engine.commands import (
    Acknowledge,
    Command,
    CommandError,
    SetLimits,
    Silence,
    Unsilence,
    parse_command,
)
from cardiogate.edge.alarm_engine.config import ConditionSpec, EngineConfig, Tier, default_specs
from cardiogate.edge.alarm_engine.engine import AlarmEngine, Beat
from cardiogate.edge.alarm_engine.model import (
    CONDITIONS,
    PHYSIOLOGICAL,
    TECHNICAL,
    AlarmNotice,
    AlarmView,
    AuditEntry,
    Condition,
    Outcome,
    Priority,
    VfVerdict,
)

__all__ = [
    "CONDITIONS", "PHYSIOLOGICAL", "TECHNICAL", "Acknowledge", "AlarmEngine", "AlarmNotice", "AlarmView",
    "AuditEntry", "Beat", "Command", "CommandError", "Condition", "ConditionSpec", "EngineConfig", "News2Result",
    "Outcome", "Priority", "SetLimits", "Silence", "Tier", "Unsilence", "VfVerdict", "default_specs", "news2",
    "parse_command",
]
