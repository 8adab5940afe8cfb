"""Alarm commands from the cloud (a clinician's acknowledge or silence given through the API).

The gateway holds ``Commands.Subscribe`` open on its uplink's mTLS link, so a ward hub needs no
inbound port. Each command goes through the same parser, authorization and alarm engine as a
command on the site's MQTT command topic; the actor is recorded as ``<user>@cloud`` and the
user's role decides what it may do (the same table as the MQTT identities: a nurse acknowledges,
silences and unsilences; other roles may not). The result goes back with ``Commands.Report``.

Idempotent by command id: a command redelivered after a reconnect is dropped by the engine and
reported as applied again. Losing the cloud never touches alarms: this task only logs and retries.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import cast

import grpc
import grpc.aio

from cardiogate.core.backoff import Backoff
from cardiogate.core.logs import get_logger
from cardiogate.edge.heartbeat import uplink_channel
from cardiogate.edge.mqtt_auth import PERMITTED, Refusal, Role
from cardiogate.edge.settings import UplinkSettings
from cardiogate.proto.v1 import commands_pb2, commands_pb2_grpc

log = get_logger(__name__)

# What a command from the cloud may be: (accepted, error). The gateway's alarm bridge answers it.
Apply = Callable[[str, bytes, tuple[str, Refusal]], tuple[bool, str]]
CLINICAL_ROLES = ("nurse", "clinician")  # the cloud roles that may command alarms


def cloud_sender(command: commands_pb2.GatewayCommand) -> tuple[str, Refusal]:
    """Who gave a cloud command, as the alarm engine records it, and what that user's role may not do (pure).

    Only the clinical roles command alarms from the cloud; an admin or operator is refused here as
    on the site's broker, whatever the cloud let through."""
    identity = f"{command.actor}@cloud"
    role = command.role
    allowed = PERMITTED[cast(Role, role)] if role in CLINICAL_ROLES else frozenset()

    def refusal(name: str) -> str | None:
        if name in allowed:
            return None
        return f"{name} refused: {identity} has role {role or 'none'}, which may not {name} from the cloud"

    return identity, refusal


async def run_cloud_commands(settings: UplinkSettings, gateway_id: str, apply: Apply,
                             retry: Backoff | None = None) -> None:
    """Hold the command stream open until cancelled, applying and reporting each command in order."""
    backoff = retry or Backoff(1.0, 30.0)
    while True:
        try:
            async with uplink_channel(settings) as channel:
                stub = commands_pb2_grpc.CommandsStub(channel)
                stream = stub.Subscribe(commands_pb2.CommandSubscription(gateway_id=gateway_id))
                async for command in stream:
                    backoff.reset()
                    await _handle(stub, gateway_id, command, apply)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the cloud may be away; alarms do not depend on it
            detail = exc.details() if isinstance(exc, grpc.aio.AioRpcError) else repr(exc)
            log.info("cloud command stream closed; reconnecting", error=detail)
        await asyncio.sleep(backoff.next_delay())


async def _handle(stub: commands_pb2_grpc.CommandsAsyncStub, gateway_id: str, command: commands_pb2.GatewayCommand,
                  apply: Apply) -> None:
    now = time.time_ns()
    if command.expires_time_ns and now > command.expires_time_ns:
        accepted, error = False, "expired before it reached the gateway"
    else:
        accepted, error = apply(command.patient, command.payload.encode(), cloud_sender(command))
    log.info("cloud alarm command", command_id=command.command_id, patient=command.patient, actor=command.actor,
             origin=command.origin, accepted=accepted, error=error or None)
    await stub.Report(commands_pb2.CommandResult(gateway_id=gateway_id, command_id=command.command_id,
                                                 accepted=accepted, error=error, applied_time_ns=now), timeout=10)
