"""Acting on alarms from the API: acknowledge, silence, unsilence, comment, and the true/false label.

Acknowledge, silence and unsilence belong to the gateway's alarm engine, which owns the alarm: the
API only queues them (:mod:`cardiogate.cloud.commands`) for the gateway to apply over its own mTLS
link, and answers with the command's state. ``waitS`` lets a dashboard wait for the gateway's answer
(the round trip it shows); otherwise it polls ``alarmCommand``. Comments and labels live in the
cloud. Every action first passes the same patient check as a read (role, site scope, audit row),
then the action's own permission: nurses and clinicians command alarms, only clinicians label them.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import datetime
from typing import Any

import strawberry
from sqlalchemy import Engine, select
from strawberry.types import Info

from cardiogate.cloud.api.access import ALARM_COMMAND, ALARM_LABEL, PATIENT_READ
from cardiogate.cloud.api.context import context_of, patient_access, patient_action, permitted
from cardiogate.cloud.api.objects import ns_time
from cardiogate.cloud.api.resolvers import bad_input, field, mutation
from cardiogate.cloud.commands import (
    AlarmCommand,
    CommandName,
    CommandRefused,
    CommandStatus,
    command_status,
    commands_for_patient,
    enqueue,
)
from cardiogate.cloud.db import alarm_comments, alarm_labels, alarms_current, insert_for

MAX_COMMENT = 2000
MAX_WAIT_S = 5.0


@strawberry.type
class AlarmCommandState:
    """A command on its way to the gateway, and what became of it."""

    command_id: strawberry.ID
    command: str
    patient: strawberry.ID
    gateway: str
    actor: str
    outcome: str = strawberry.field(description="pending, accepted, rejected or expired")
    error: str
    issued_at: datetime | None
    delivered_at: datetime | None
    applied_at: datetime | None

    @classmethod
    def of(cls, s: CommandStatus) -> AlarmCommandState:
        return cls(command_id=strawberry.ID(s.command_id), command=s.command, patient=strawberry.ID(s.patient),
                   gateway=s.gateway_id, actor=s.actor, outcome=s.outcome, error=s.error,
                   issued_at=ns_time(s.issued_ns), delivered_at=ns_time(s.delivered_ns),
                   applied_at=ns_time(s.applied_ns))


@strawberry.type
class AlarmComment:
    alarm_id: strawberry.ID
    author: str
    role: str
    text: str
    at: datetime | None


@strawberry.type
class AlarmLabel:
    alarm_id: strawberry.ID
    author: str
    is_true: bool
    note: str
    at: datetime | None


@strawberry.type
class AlarmActivity:
    """Everything done to one alarm: commands (who acknowledged or silenced it), comments, labels."""

    alarm_id: strawberry.ID
    commands: list[AlarmCommandState]
    comments: list[AlarmComment]
    labels: list[AlarmLabel]




def _alarm_of_patient(engine: Engine, alarm_id: str, patient: str) -> bool:
    with engine.connect() as conn:
        row = conn.execute(select(alarms_current.c.patient).where(alarms_current.c.alarm_id == alarm_id)).first()
    return row is not None and row.patient == patient


async def _require_alarm(info: Info[Any, Any], alarm_id: str | None, patient: str) -> None:
    if alarm_id is None:
        return
    engine = context_of(info).services.data.engine
    if not await asyncio.to_thread(_alarm_of_patient, engine, alarm_id, patient):
        raise bad_input(f"patient {patient!r} has no alarm {alarm_id!r}")


async def _command(info: Info[Any, Any], name: CommandName, patient: str, alarm_id: str | None,
                   condition: str | None, duration_s: float | None, reason: str, command_id: str | None,
                   wait_s: float) -> AlarmCommandState:
    caller = await patient_action(info, patient, f"{name}Alarm", ALARM_COMMAND)
    await _require_alarm(info, alarm_id, patient)
    engine = context_of(info).services.data.engine
    request = AlarmCommand(patient=patient, command=name, actor=caller.principal.subject, role=caller.principal.role,
                           origin=caller.client, alarm_id=alarm_id, condition=condition, duration_s=duration_s,
                           reason=reason, command_id=command_id)
    try:
        status = await asyncio.to_thread(enqueue, engine, request)
    except CommandRefused as exc:
        raise bad_input(str(exc)) from exc
    deadline = time.monotonic() + min(max(wait_s, 0.0), MAX_WAIT_S)
    while status.outcome == "pending" and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        latest = await asyncio.to_thread(command_status, engine, status.command_id)
        status = latest if latest is not None else status
    return AlarmCommandState.of(status)


@strawberry.type
class AlarmMutation:
    @mutation("Acknowledge an alarm on the patient's gateway (audio off for the episode; "
                                     "a latched alarm clears). waitS: wait up to 5 s for the gateway's answer.")
    async def acknowledge_alarm(self, info: Info[Any, Any], user_id: strawberry.ID, alarm_id: strawberry.ID,
                                reason: str = "", command_id: strawberry.ID | None = None,
                                wait_s: float = 0.0) -> AlarmCommandState:
        return await _command(info, "acknowledge", str(user_id), str(alarm_id), None, None, reason,
                              None if command_id is None else str(command_id), wait_s)

    @mutation("Pause an alarm's audio for durationS seconds (at most 3600); a reason is "
                                     "required. Without alarmId and condition: all of the patient's alarms.")
    async def silence_alarm(self, info: Info[Any, Any], user_id: strawberry.ID, duration_s: float, reason: str,
                            alarm_id: strawberry.ID | None = None, condition: str | None = None,
                            command_id: strawberry.ID | None = None, wait_s: float = 0.0) -> AlarmCommandState:
        if not reason.strip():
            raise bad_input("silencing an alarm needs a reason")
        return await _command(info, "silence", str(user_id), None if alarm_id is None else str(alarm_id), condition,
                              duration_s, reason, None if command_id is None else str(command_id), wait_s)

    @mutation("End an audio pause early.")
    async def unsilence_alarm(self, info: Info[Any, Any], user_id: strawberry.ID,
                              alarm_id: strawberry.ID | None = None, condition: str | None = None,
                              command_id: strawberry.ID | None = None, wait_s: float = 0.0) -> AlarmCommandState:
        return await _command(info, "unsilence", str(user_id), None if alarm_id is None else str(alarm_id),
                              condition, None, "", None if command_id is None else str(command_id), wait_s)

    @mutation("Comment on an alarm (kept in the cloud, shown in the alarm's history).")
    async def comment_alarm(self, info: Info[Any, Any], user_id: strawberry.ID, alarm_id: strawberry.ID,
                            text: str) -> AlarmComment:
        patient = str(user_id)
        caller = await patient_action(info, patient, "commentAlarm", ALARM_COMMAND)
        if not text.strip() or len(text) > MAX_COMMENT:
            raise bad_input(f"a comment has 1 to {MAX_COMMENT} characters")
        await _require_alarm(info, str(alarm_id), patient)
        now = time.time_ns()
        row = {"comment_id": uuid.uuid4().hex, "alarm_id": str(alarm_id), "patient": patient,
               "username": caller.principal.subject[:64], "role": caller.principal.role, "client": caller.client[:80],
               "time_ns": now, "text": text}

        def write() -> None:
            with context_of(info).services.data.engine.begin() as conn:
                conn.execute(alarm_comments.insert().values(**row))

        await asyncio.to_thread(write)
        return AlarmComment(alarm_id=alarm_id, author=str(row["username"]), role=caller.principal.role, text=text,
                            at=ns_time(now))

    @mutation("Mark an alarm true or false (clinicians): the label the models learn from. "
                                     "A second answer by the same clinician replaces the first.")
    async def label_alarm(self, info: Info[Any, Any], user_id: strawberry.ID, alarm_id: strawberry.ID,
                          is_true: bool, note: str = "") -> AlarmLabel:
        patient = str(user_id)
        caller = await patient_action(info, patient, "labelAlarm", ALARM_LABEL)
        if len(note) > MAX_COMMENT:
            raise bad_input(f"a note has at most {MAX_COMMENT} characters")
        await _require_alarm(info, str(alarm_id), patient)
        now = time.time_ns()
        author = caller.principal.subject[:64]
        values = {"alarm_id": str(alarm_id), "username": author, "patient": patient, "is_true": is_true,
                  "note": note, "client": caller.client[:80], "time_ns": now}

        def write() -> None:
            with context_of(info).services.data.engine.begin() as conn:
                stmt = insert_for(conn, alarm_labels).values(**values)
                conn.execute(stmt.on_conflict_do_update(
                    index_elements=["alarm_id", "username"],
                    set_={"is_true": is_true, "note": note, "client": values["client"], "time_ns": now}))

        await asyncio.to_thread(write)
        return AlarmLabel(alarm_id=alarm_id, author=author, is_true=is_true, note=note, at=ns_time(now))


def _activity(engine: Engine, patient: str, limit: int) -> list[AlarmActivity]:
    commands = commands_for_patient(engine, patient, limit * 10)
    with engine.connect() as conn:
        comments = conn.execute(select(alarm_comments).where(alarm_comments.c.patient == patient)
                                .order_by(alarm_comments.c.time_ns)).all()
        labels = conn.execute(select(alarm_labels).where(alarm_labels.c.patient == patient)
                              .order_by(alarm_labels.c.time_ns)).all()
        alarm_ids = [r.alarm_id for r in conn.execute(
            select(alarms_current.c.alarm_id).where(alarms_current.c.patient == patient)
            .order_by(alarms_current.c.updated_time_ns.desc()).limit(limit))]
    by_alarm: dict[str, AlarmActivity] = {a: AlarmActivity(alarm_id=strawberry.ID(a), commands=[], comments=[],
                                                           labels=[]) for a in alarm_ids}
    for s in reversed(commands):
        alarm_id = s.alarm_id
        if alarm_id is not None and alarm_id in by_alarm:
            by_alarm[alarm_id].commands.append(AlarmCommandState.of(s))
    for c in comments:
        if c.alarm_id in by_alarm:
            by_alarm[c.alarm_id].comments.append(AlarmComment(alarm_id=strawberry.ID(c.alarm_id), author=c.username,
                                                              role=c.role, text=c.text, at=ns_time(c.time_ns)))
    for lab in labels:
        if lab.alarm_id in by_alarm:
            by_alarm[lab.alarm_id].labels.append(AlarmLabel(alarm_id=strawberry.ID(lab.alarm_id), author=lab.username,
                                                            is_true=lab.is_true, note=lab.note,
                                                            at=ns_time(lab.time_ns)))
    return list(by_alarm.values())


@strawberry.type
class AlarmQuery:
    @field("One alarm command and what became of it.")
    async def alarm_command(self, info: Info[Any, Any], command_id: strawberry.ID) -> AlarmCommandState | None:
        permitted(info, PATIENT_READ)
        engine = context_of(info).services.data.engine
        status = await asyncio.to_thread(command_status, engine, str(command_id))
        if status is None:
            return None
        await patient_access(info, status.patient, "alarmCommand")
        return AlarmCommandState.of(status)

    @field("The patient's latest alarms with who acknowledged or silenced them, comments "
                                  "and true/false labels (newest first, at most 200).")
    async def alarm_activity(self, info: Info[Any, Any], user_id: strawberry.ID,
                             limit: int = 50) -> list[AlarmActivity]:
        if not 1 <= limit <= 200:
            raise bad_input("limit must be 1-200")
        await patient_access(info, str(user_id), "alarmActivity")
        engine = context_of(info).services.data.engine
        return await asyncio.to_thread(_activity, engine, str(user_id), limit)
