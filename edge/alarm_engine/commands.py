"""Parse and validate alarm commands from the MQTT command topic (pure: a payload in, a command or an error out).

Payload (JSON object, schema 1)::

    {"schema": 1, "command": "acknowledge", "patient": "pt-0001", "by": "nurse-7", "alarm_id": "..."}
    {"schema": 1, "command": "silence", "patient": "pt-0001", "by": "nurse-7", "condition": "hr_high",
     "duration_s": 120}
    {"schema": 1, "command": "set_limits", "patient": "pt-0001", "by": "dr-2", "condition": "hr_high",
     "limits": {"medium": 130, "high": 160}, "hysteresis": 8, "reason": "athlete, resting HR 45"}

On a locked command plane (docs/security.md) the payload's ``by`` is only a claim: :func:`authorize`
judges the command by the identity the broker authenticated, records that identity as the actor,
and keeps the claim in the reason when it differs.

Unknown fields are rejected rather than ignored: a mistyped ``duration`` must not silently become the
default silence. Optional ``id`` lets the engine drop MQTT QoS 1 redeliveries; optional ``reason`` goes
into the audit trail.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from cardiogate.edge.alarm_engine.config import EngineConfig
from cardiogate.edge.alarm_engine.model import CONDITIONS, PRIORITIES, Condition, Priority

SCHEMA_VERSION = 1
CommandName = Literal["acknowledge", "silence", "unsilence", "set_limits"]
COMMANDS: tuple[CommandName, ...] = ("acknowledge", "silence", "unsilence", "set_limits")
_PATIENT = re.compile(r"[a-z0-9][a-z0-9-]{2,63}")  # the pseudonym rule of cardiogate.edge.settings
_ACTOR = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
_COMMON = {"schema", "command", "patient", "by", "id", "reason"}
_FIELDS: dict[CommandName, set[str]] = {
    "acknowledge": _COMMON | {"alarm_id", "condition"},
    "silence": _COMMON | {"alarm_id", "condition", "duration_s"},
    "unsilence": _COMMON | {"alarm_id", "condition"},
    "set_limits": _COMMON | {"condition", "limits", "hysteresis"},
}


@dataclass(frozen=True, slots=True)
class Acknowledge:
    """Acknowledge one alarm: audio off for the episode, escalation stops, a latched alarm clears."""

    patient: str
    by: str
    alarm_id: str | None = None
    condition: Condition | None = None
    reason: str = ""
    command_id: str | None = None


@dataclass(frozen=True, slots=True)
class Silence:
    """Pause the audio of one alarm (or of all the patient's alarms when no target is given) for a while."""

    patient: str
    by: str
    duration_s: float
    alarm_id: str | None = None
    condition: Condition | None = None
    reason: str = ""
    command_id: str | None = None


@dataclass(frozen=True, slots=True)
class Unsilence:
    """End an audio pause early (of one alarm, or of all the patient's alarms when no target is given)."""

    patient: str
    by: str
    alarm_id: str | None = None
    condition: Condition | None = None
    reason: str = ""
    command_id: str | None = None


@dataclass(frozen=True, slots=True)
class SetLimits:
    """Per-patient limits for one condition (only the tiers named change)."""

    patient: str
    by: str
    condition: Condition
    limits: Mapping[Priority, float]
    hysteresis: float | None = None
    reason: str = ""
    command_id: str | None = None


Command = Acknowledge | Silence | Unsilence | SetLimits


@dataclass(frozen=True, slots=True)
class CommandError:
    """Why a payload was refused, plus whatever could be read of it (for the audit entry)."""

    message: str
    command: str | None = None
    patient: str | None = None
    by: str | None = None
    command_id: str | None = None


class _Invalid(Exception):
    pass


def _number(name: str, raw: object) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
        raise _Invalid(f"field '{name}' must be a number, got {json.dumps(raw)}")
    return float(raw)


def _text(doc: Mapping[str, object], name: str, *, required: bool, max_len: int = 200) -> str | None:
    if name not in doc:
        if required:
            raise _Invalid(f"missing field '{name}'")
        return None
    raw = doc[name]
    if not isinstance(raw, str) or not raw or len(raw) > max_len:
        raise _Invalid(f"field '{name}' must be a non-empty string of at most {max_len} characters")
    return raw


def _condition(doc: Mapping[str, object], *, required: bool) -> Condition | None:
    raw = _text(doc, "condition", required=required, max_len=64)
    if raw is None:
        return None
    for c in CONDITIONS:
        if c == raw:
            return c
    raise _Invalid(f"unknown condition '{raw}' (expected one of {', '.join(CONDITIONS)})")


def _limits(raw: object) -> dict[Priority, float]:
    if not isinstance(raw, dict) or not raw:
        raise _Invalid("field 'limits' must be a non-empty object like {\"medium\": 130, \"high\": 160}")
    out: dict[Priority, float] = {}
    for key, value in raw.items():
        priority = next((p for p in PRIORITIES if p == key), None)
        if priority is None:
            raise _Invalid(f"limits: unknown priority '{key}' (expected low, medium or high)")
        out[priority] = _number(f"limits.{key}", value)
    return out


def _decode(payload: str | bytes | Mapping[str, object]) -> Mapping[str, object]:
    if isinstance(payload, Mapping):
        return payload
    try:
        doc = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _Invalid(f"payload is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise _Invalid("payload must be a JSON object")
    return doc


def parse_command(payload: str | bytes | Mapping[str, object],
                  config: EngineConfig | None = None) -> Command | CommandError:
    """A typed command, or a CommandError whose message says exactly what is wrong."""
    config = config or EngineConfig()
    seen: dict[str, str | None] = {"command": None, "patient": None, "by": None, "id": None}
    try:
        doc = _decode(payload)
        for key in seen:  # best effort, so even a rejection is attributed in the audit trail
            value = doc.get(key)
            seen[key] = value if isinstance(value, str) and len(value) <= 200 else None
        return _parse(doc, config)
    except _Invalid as exc:
        return CommandError(str(exc), seen["command"], seen["patient"], seen["by"], seen["id"])


def _parse(doc: Mapping[str, object], config: EngineConfig) -> Command:
    if "schema" not in doc:
        raise _Invalid("missing field 'schema'")
    if doc["schema"] != SCHEMA_VERSION or isinstance(doc["schema"], bool):
        raise _Invalid(f"unsupported schema {json.dumps(doc['schema'])} (this gateway speaks schema {SCHEMA_VERSION})")
    name = _text(doc, "command", required=True, max_len=64)
    command = next((c for c in COMMANDS if c == name), None)
    if command is None:
        raise _Invalid(f"unknown command '{name}' (expected one of {', '.join(COMMANDS)})")
    unknown = sorted(set(doc) - _FIELDS[command])
    if unknown:
        raise _Invalid(f"unknown field(s) for {command}: {', '.join(unknown)}")
    patient = _text(doc, "patient", required=True, max_len=64)
    assert patient is not None
    if not _PATIENT.fullmatch(patient):
        raise _Invalid(f"field 'patient' is not a patient pseudonym: '{patient}'")
    by = _text(doc, "by", required=True, max_len=64)
    assert by is not None
    if not _ACTOR.fullmatch(by):
        raise _Invalid(f"field 'by' is not a valid user id: '{by}'")
    reason = _text(doc, "reason", required=False) or ""
    command_id = _text(doc, "id", required=False, max_len=128)

    if command == "set_limits":
        condition = _condition(doc, required=True)
        assert condition is not None
        if "limits" not in doc:
            raise _Invalid("missing field 'limits'")
        limits = _limits(doc["limits"])
        hysteresis = _number("hysteresis", doc["hysteresis"]) if "hysteresis" in doc else None
        if hysteresis is not None and hysteresis < 0:
            raise _Invalid("field 'hysteresis' must be >= 0")
        try:
            config.specs_for(patient)[condition].with_limits(limits, hysteresis)
        except ValueError as exc:
            raise _Invalid(f"limits rejected: {exc}") from None
        return SetLimits(patient, by, condition, limits, hysteresis, reason, command_id)

    alarm_id = _text(doc, "alarm_id", required=False)
    condition = _condition(doc, required=False)
    if alarm_id is not None and condition is not None:
        raise _Invalid("give 'alarm_id' or 'condition', not both")
    if command == "silence":
        duration = _number("duration_s", doc["duration_s"]) if "duration_s" in doc else config.default_silence_s
        if duration <= 0:
            raise _Invalid("field 'duration_s' must be > 0")
        if duration > config.max_silence_s:
            raise _Invalid(f"silence too long: {duration:g} s (at most {config.max_silence_s:g} s)")
        return Silence(patient, by, duration, alarm_id, condition, reason, command_id)
    if command == "unsilence":
        return Unsilence(patient, by, alarm_id, condition, reason, command_id)
    if alarm_id is None and condition is None:  # each alarm is acknowledged on purpose, never in bulk
        raise _Invalid("acknowledge needs 'alarm_id' or 'condition'")
    return Acknowledge(patient, by, alarm_id, condition, reason, command_id)


Refusal = Callable[[str], str | None]  # command name -> why the sender may not give it, or None


def command_name(command: Command) -> CommandName:
    if isinstance(command, Acknowledge):
        return "acknowledge"
    if isinstance(command, Silence):
        return "silence"
    if isinstance(command, Unsilence):
        return "unsilence"
    return "set_limits"


def authorize(command: Command | CommandError, identity: str, refusal: Refusal) -> Command | CommandError:
    """The command as given by ``identity`` (the broker-authenticated sender), or why it is refused.

    The actor becomes ``identity`` whatever the payload's ``by`` says, for rejections too, so the
    audit trail names who really sent it; a different ``by`` is kept in the reason as a claim.
    """
    if isinstance(command, CommandError):
        return dataclasses.replace(command, by=identity)
    name = command_name(command)
    why = refusal(name)
    if why is not None:
        return CommandError(why, name, command.patient, identity, command.command_id)
    if command.by == identity:
        return command
    claim = f"entered as {command.by}"
    return dataclasses.replace(command, by=identity, reason=f"{command.reason} ({claim})" if command.reason else claim)
