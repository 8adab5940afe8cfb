"""Alarm commands from the cloud down to a gateway: the queue the API writes and the gRPC stream that carries it.

A clinician acknowledges or silences through the API; the command must reach the gateway's alarm
engine, which owns the alarm, over the gateway's own authenticated link (no inbound port on a ward
hub). The API writes a row to ``gateway_commands``; the gateway holds ``Commands.Subscribe`` open on
the ingest's mTLS port; the service streams that gateway's pending rows and the gateway reports each
result. The row is the cloud's audit record: who gave the command, from where and when, when it was
delivered, what the gateway answered and when it applied it. The gateway keeps its own audit trail
(its MQTT audit topic and retained ``alarm_state``).

Delivery is at-least-once: a command is streamed again after a reconnect until its result arrives,
and both sides are idempotent by ``command_id`` (the API accepts a client-chosen id; the engine drops
a second delivery and reports it as applied). A command nobody applied before ``expires_ns`` is
marked expired and never delivered: a stale "silence" must not arrive an hour late.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import re
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal

import grpc
import grpc.aio
from sqlalchemy import Engine, select, update

from cardiogate.cloud.db import assignments, gateway_commands, insert_for
from cardiogate.cloud.identity import certificate_status
from cardiogate.cloud.ingest import peer_identity
from cardiogate.cloud.pki import CertificateError
from cardiogate.core.errors import CardiogateError
from cardiogate.core.logs import get_logger
from cardiogate.proto.v1 import commands_pb2, commands_pb2_grpc

log = get_logger(__name__)

CommandName = Literal["acknowledge", "silence", "unsilence"]
COMMANDS: tuple[CommandName, ...] = ("acknowledge", "silence", "unsilence")
_PATIENT = re.compile(r"[a-z0-9][a-z0-9-]{2,63}")        # the gateway's pseudonym rule
_ACTOR = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,57}")    # "<actor>@cloud" must fit the gateway's 64
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
_CONDITION = re.compile(r"[a-z][a-z0-9_]{0,63}")
MAX_REASON = 200
MAX_SILENCE_S = 3600.0


class CommandRefused(CardiogateError):
    """A command the cloud will not queue: bad input, or no gateway monitors the patient."""


@dataclass(frozen=True, slots=True)
class AlarmCommand:
    """What a user asked for, before it is queued."""

    patient: str
    command: CommandName
    actor: str
    role: str
    origin: str = ""
    alarm_id: str | None = None
    condition: str | None = None
    duration_s: float | None = None
    reason: str = ""
    command_id: str | None = None


@dataclass(frozen=True, slots=True)
class CommandStatus:
    """A queued command and what became of it."""

    command_id: str
    gateway_id: str
    patient: str
    command: str
    actor: str
    role: str
    origin: str
    issued_ns: int
    expires_ns: int
    delivered_ns: int | None
    outcome: str          # pending, accepted, rejected, expired
    error: str
    applied_ns: int | None
    payload: str          # the command JSON the gateway receives

    @property
    def alarm_id(self) -> str | None:
        try:
            value = json.loads(self.payload).get("alarm_id")
        except (ValueError, AttributeError):
            return None
        return value if isinstance(value, str) else None


def validate(cmd: AlarmCommand) -> None:
    """Refuse what the gateway would refuse anyway, before anything is queued (pure)."""
    if cmd.command not in COMMANDS:
        raise CommandRefused(f"unknown command {cmd.command!r}; expected one of {', '.join(COMMANDS)}")
    if not _PATIENT.fullmatch(cmd.patient):
        raise CommandRefused("patient must be a pseudonym: 3-64 of a-z, 0-9, '-'")
    if not _ACTOR.fullmatch(cmd.actor):
        raise CommandRefused("actor must be 1-58 of A-Z, a-z, 0-9, '.', '_', '-'")
    if cmd.command_id is not None and not _ID.fullmatch(cmd.command_id):
        raise CommandRefused("command id must be 1-64 of A-Z, a-z, 0-9, '.', '_', ':', '-'")
    if cmd.alarm_id is not None and not _ID.fullmatch(cmd.alarm_id):
        raise CommandRefused("alarm id must be 1-64 of A-Z, a-z, 0-9, '.', '_', ':', '-'")
    if cmd.condition is not None and not _CONDITION.fullmatch(cmd.condition):
        raise CommandRefused("condition must be a lower-case name such as tachycardia")
    if len(cmd.reason) > MAX_REASON:
        raise CommandRefused(f"reason is longer than {MAX_REASON} characters")
    if cmd.command == "silence":
        d = cmd.duration_s
        if d is None or not math.isfinite(d) or not 0 < d <= MAX_SILENCE_S:
            raise CommandRefused(f"silence needs a duration in seconds, 0 < duration <= {MAX_SILENCE_S:g}")
    elif cmd.duration_s is not None:
        raise CommandRefused(f"{cmd.command} takes no duration")


def payload_for(cmd: AlarmCommand, command_id: str) -> str:
    """The alarm command JSON (schema 1) the gateway parses, exactly as on its MQTT command topic (pure)."""
    body: dict[str, Any] = {"schema": 1, "command": cmd.command, "patient": cmd.patient, "by": f"{cmd.actor}@cloud",
                            "id": command_id}
    if cmd.reason:
        body["reason"] = cmd.reason
    if cmd.alarm_id is not None:
        body["alarm_id"] = cmd.alarm_id
    if cmd.condition is not None:
        body["condition"] = cmd.condition
    if cmd.duration_s is not None:
        body["duration_s"] = cmd.duration_s
    return json.dumps(body, separators=(",", ":"), sort_keys=True)


def _status(row: Any) -> CommandStatus:
    return CommandStatus(row.command_id, row.gateway_id, row.patient, row.command, row.actor, row.role, row.origin,
                         row.issued_ns, row.expires_ns, row.delivered_ns, row.outcome, row.error, row.applied_ns,
                         row.payload)


def gateway_for(engine: Engine, patient: str) -> str | None:
    """The gateway that monitors ``patient``: its newest assignment."""
    with engine.connect() as conn:
        row = conn.execute(select(assignments.c.gateway_id).where(assignments.c.patient == patient)
                           .order_by(assignments.c.created_ns.desc()).limit(1)).first()
    return None if row is None else str(row.gateway_id)


def enqueue(engine: Engine, cmd: AlarmCommand, ttl_s: float = 300.0, now_ns: int | None = None) -> CommandStatus:
    """Queue a command for the patient's gateway; the same ``command_id`` again returns the first one unchanged."""
    validate(cmd)
    now = time.time_ns() if now_ns is None else now_ns
    gateway = gateway_for(engine, cmd.patient)
    if gateway is None:
        raise CommandRefused(f"no gateway is assigned to patient {cmd.patient!r}")
    command_id = cmd.command_id or uuid.uuid4().hex
    row = {"command_id": command_id, "gateway_id": gateway, "patient": cmd.patient, "command": cmd.command,
           "payload": payload_for(cmd, command_id), "actor": cmd.actor, "role": cmd.role, "origin": cmd.origin[:128],
           "issued_ns": now, "expires_ns": now + round(ttl_s * 1e9), "deliveries": 0, "outcome": "pending",
           "error": ""}
    with engine.begin() as conn:
        conn.execute(insert_for(conn, gateway_commands).values(**row).on_conflict_do_nothing())
        stored = conn.execute(select(gateway_commands).where(gateway_commands.c.command_id == command_id)).one()
    if stored.patient != cmd.patient or stored.command != cmd.command:
        raise CommandRefused(f"command id {command_id!r} is already used for another command")
    log.info("alarm command queued", command_id=command_id, gateway=gateway, patient=cmd.patient,
             command=cmd.command, actor=cmd.actor, origin=cmd.origin)
    return _status(stored)


def command_status(engine: Engine, command_id: str) -> CommandStatus | None:
    with engine.connect() as conn:
        row = conn.execute(select(gateway_commands).where(gateway_commands.c.command_id == command_id)).first()
    return None if row is None else _status(row)


def commands_for_patient(engine: Engine, patient: str, limit: int = 100) -> list[CommandStatus]:
    with engine.connect() as conn:
        rows = conn.execute(select(gateway_commands).where(gateway_commands.c.patient == patient)
                            .order_by(gateway_commands.c.issued_ns.desc()).limit(limit)).all()
    return [_status(r) for r in rows]


def take_pending(engine: Engine, gateway_id: str, now_ns: int, skip: set[str]) -> list[commands_pb2.GatewayCommand]:
    """The gateway's commands still to apply (oldest first), marked delivered; expired ones are closed as such."""
    with engine.begin() as conn:
        conn.execute(update(gateway_commands).where(
            gateway_commands.c.gateway_id == gateway_id, gateway_commands.c.outcome == "pending",
            gateway_commands.c.expires_ns <= now_ns).values(outcome="expired", error="not applied before it expired"))
        rows = conn.execute(select(gateway_commands).where(
            gateway_commands.c.gateway_id == gateway_id, gateway_commands.c.outcome == "pending")
            .order_by(gateway_commands.c.issued_ns)).all()
        fresh = [r for r in rows if r.command_id not in skip]
        if fresh:
            conn.execute(update(gateway_commands)
                         .where(gateway_commands.c.command_id.in_([r.command_id for r in fresh]))
                         .values(delivered_ns=now_ns, deliveries=gateway_commands.c.deliveries + 1))
    return [commands_pb2.GatewayCommand(command_id=r.command_id, patient=r.patient, payload=r.payload, actor=r.actor,
                                        role=r.role, origin=r.origin, issued_time_ns=r.issued_ns,
                                        expires_time_ns=r.expires_ns) for r in fresh]


def record_result(engine: Engine, gateway_id: str, result: commands_pb2.CommandResult, now_ns: int) -> bool:
    """Store a gateway's answer to one of its own commands; False for a command it was never sent."""
    outcome = "accepted" if result.accepted else "rejected"
    with engine.begin() as conn:
        done = conn.execute(update(gateway_commands).where(
            gateway_commands.c.command_id == result.command_id, gateway_commands.c.gateway_id == gateway_id,
            gateway_commands.c.outcome.in_(("pending", outcome))).values(
            outcome=outcome, error=result.error[:1000], applied_ns=result.applied_time_ns or None,
            reported_ns=now_ns)).rowcount
    return bool(done)


class CommandService(commands_pb2_grpc.CommandsServicer):
    """The gateways' command streams, on the ingest's port and identity (mTLS: the certificate names the gateway).

    Commands queued by another process (the API) are found by polling the table every ``poll_s``;
    ``wake()`` delivers at once what this process queued."""

    def __init__(self, engine: Engine, tls: bool, poll_s: float = 0.2, recheck_s: float = 10.0) -> None:
        self._engine = engine
        self._tls = tls
        self._poll_s = poll_s
        self._recheck_s = recheck_s
        self._wake = asyncio.Event()
        self._closing = False
        self.streams = 0

    def wake(self) -> None:
        self._wake.set()

    def close(self) -> None:
        """Shutting down: end every open stream now (the gateways reconnect, to this process once it is back or to
        another replica), so a drain waits for work in flight, not for streams that never end by themselves."""
        self._closing = True
        self._wake.set()

    async def _gateway(self, claimed: str, context: grpc.aio.ServicerContext[Any, Any]) -> str:
        if not claimed:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "gateway_id is required")
        if not self._tls:
            return claimed
        try:
            identity = peer_identity(context)
        except (CertificateError, ValueError) as exc:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, f"client certificate refused: {exc}")
        if identity.gateway_id != claimed:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "gateway_id differs from the certificate")
        status = await asyncio.to_thread(certificate_status, self._engine, identity.serial)
        if status != "ok":
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, f"certificate is {status}")
        return claimed

    async def Subscribe(self, request: commands_pb2.CommandSubscription,
                        context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[commands_pb2.GatewayCommand]:
        gateway = await self._gateway(request.gateway_id, context)
        sent: set[str] = set()
        checked = time.monotonic()
        self.streams += 1
        log.info("gateway command stream open", gateway=gateway)
        try:
            while not self._closing:
                for command in await asyncio.to_thread(take_pending, self._engine, gateway, time.time_ns(), sent):
                    sent.add(command.command_id)
                    yield command
                if self._tls and time.monotonic() - checked > self._recheck_s:
                    await self._gateway(gateway, context)  # revoked meanwhile: the stream ends
                    checked = time.monotonic()
                if self._closing:
                    break
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._poll_s)
        finally:
            self.streams -= 1

    async def Report(self, request: commands_pb2.CommandResult,
                     context: grpc.aio.ServicerContext[Any, Any]) -> commands_pb2.CommandReceipt:
        gateway = await self._gateway(request.gateway_id, context)
        recorded = await asyncio.to_thread(record_result, self._engine, gateway, request, time.time_ns())
        if recorded:
            log.info("alarm command result", gateway=gateway, command_id=request.command_id,
                     accepted=request.accepted, error=request.error or None)
        else:
            log.warning("result for a command this gateway was not sent", gateway=gateway,
                        command_id=request.command_id)
        return commands_pb2.CommandReceipt(recorded=recorded)
