"""Fleet heartbeats: what the cloud's fleet registry knows about this gateway.

Every ``interval_s`` the gateway reports its software and model versions, health,
outbox depth and age, and each paired device's link, RSSI, battery and last-seen time,
over the same mTLS identity as the uplink. A failed heartbeat is only logged: it must
never disturb the data path.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import grpc
import grpc.aio

from cardiogate.core.logs import get_logger
from cardiogate.edge.enrollment import channel_credentials
from cardiogate.edge.settings import UplinkSettings
from cardiogate.proto.v1 import fleet_pb2, fleet_pb2_grpc

log = get_logger(__name__)


def uplink_channel(settings: UplinkSettings) -> grpc.aio.Channel:
    """A channel to the cloud with the gateway's mTLS identity (plaintext only when the uplink says tls = false)."""
    if not settings.tls:
        return grpc.aio.insecure_channel(settings.target)
    options = [("grpc.ssl_target_name_override", settings.server_name)] if settings.server_name else None
    return grpc.aio.secure_channel(settings.target, channel_credentials(settings.identity_dir), options=options)


async def run_heartbeats(settings: UplinkSettings, build: Callable[[], fleet_pb2.GatewayHeartbeat],
                         interval_s: float = 30.0) -> None:
    """Send ``build()`` every ``interval_s`` until cancelled; the cloud's reply carries its clock."""
    while True:
        try:
            async with uplink_channel(settings) as channel:
                stub = fleet_pb2_grpc.FleetStub(channel)
                while True:
                    reply = await stub.Heartbeat(build(), timeout=10)
                    log.debug("heartbeat sent", server_time_ns=reply.server_time_ns)
                    await asyncio.sleep(interval_s)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the cloud may be away; the data path does not care
            detail = exc.details() if isinstance(exc, grpc.aio.AioRpcError) else repr(exc)
            log.info("heartbeat failed; retrying", error=detail)
        await asyncio.sleep(interval_s)
