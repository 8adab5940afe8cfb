"""The virtual radio: a bumble LocalLink that watches and gateways share.

Watches run in this process on their own virtual controllers. A gateway (another
process) attaches its bumble host to a controller exposed on a TCP port, exactly as
it would attach to a USB HCI dongle, and then sees the watches over the air.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from bumble.controller import Controller
from bumble.link import LocalLink
from bumble.transport import open_transport

from cardiogate.logs import get_logger
from firmware_sim.scenario import SimSettings
from firmware_sim.truth import GroundTruthLog
from firmware_sim.watch import SimulatedWatch

log = get_logger(__name__)
GATEWAY_CONTROLLER_ADDRESS = "F0:F0:F0:F0:F0:F0"


class VirtualAir:
    """A link plus the controllers gateways attach to over TCP."""

    def __init__(self) -> None:
        self.link = LocalLink()  # type: ignore[no-untyped-call]
        self._transports: list[Any] = []
        self.controllers: list[Controller] = []

    async def expose(self, host: str, port: int) -> None:
        """Offer one HCI controller on ``host:port`` (bumble ``tcp-client`` transport)."""
        transport = await open_transport(f"tcp-server:{host}:{port}")
        self._transports.append(transport)
        self.controllers.append(Controller(f"gateway-{port}", host_source=transport.source,
                                           host_sink=transport.sink, link=self.link,
                                           public_address=GATEWAY_CONTROLLER_ADDRESS))

    async def close(self) -> None:
        for transport in self._transports:
            with contextlib.suppress(Exception):
                await transport.close()


TICK_S = 0.02


async def run_simulator(settings: SimSettings, ready: asyncio.Event | None = None) -> None:
    """Run the air and every watch until cancelled or ``duration_s`` elapses.

    One loop drives the whole fleet in real time (one timer instead of one per watch,
    so hundreds of watches stay cheap); each watch does whatever is due at each tick.
    """
    air = VirtualAir()
    host, _, port = settings.listen.rpartition(":")
    await air.expose(host or "127.0.0.1", int(port))
    truth = GroundTruthLog(settings.ground_truth)
    watches = [SimulatedWatch(spec, air.link, truth) for spec in settings.watches]
    try:
        for watch in watches:
            await watch.start()
        log.info("simulator ready", listen=settings.listen, watches=len(watches))
        print(f"simulator: {len(watches)} watches on the virtual radio at {settings.listen}", flush=True)
        if ready is not None:
            ready.set()
        t0 = time.monotonic()
        late_ticks = 0
        while settings.duration_s <= 0 or time.monotonic() - t0 < settings.duration_s:
            elapsed = time.monotonic() - t0
            for watch in watches:
                await watch.tick(elapsed)
            spare = TICK_S - (time.monotonic() - t0 - elapsed)
            if spare < 0:
                late_ticks += 1
            await asyncio.sleep(max(0.0, spare))
        if late_ticks:
            log.info("simulator fell behind on some ticks", late_ticks=late_ticks)
    finally:
        for w in watches:
            await w.stop()
            log.info("watch summary", watch=w.spec.name, ecg_samples_sent=w.ecg_samples_sent,
                     ecg_samples_unsent=w.ecg_samples_unsent, hr_sent=w.hr_sent, drops=w.drops)
        truth.close()
        await air.close()
