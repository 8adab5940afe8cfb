"""The virtual radio: a bumble LocalLink that watches and gateways share.

Watches run in this process on their own virtual controllers. A gateway (another
process) attaches its bumble host to a controller exposed on a TCP port, exactly as
it would attach to a USB HCI dongle, and then sees the watches over the air.

A real controller loses its links when its host dies or resets it; bumble's virtual
one keeps them, which would leave watches "connected" to a killed gateway forever
(never advertising, so its restart could not find them). :class:`GatewayController`
drops them instead, and the TCP port tells it when its host went away.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from bumble import hci, ll
from bumble.controller import Controller
from bumble.link import LocalLink
from bumble.transport.common import StreamPacketSource

from cardiogate.core.logs import get_logger
from cardiogate.sim.scenario import SimSettings
from cardiogate.sim.truth import GroundTruthLog
from cardiogate.sim.watch import SimulatedWatch

log = get_logger(__name__)
GATEWAY_CONTROLLER_ADDRESS = "F0:F0:F0:F0:F0:F0"
HOST_LOST_REASON = int(hci.HCI_ErrorCode.CONNECTION_TIMEOUT_ERROR)
"""What a peripheral sees when its central vanishes without a word: a supervision timeout (0x08)."""


class GatewayController(Controller):
    """A virtual controller whose LE links end with its host (HCI Reset, or the host's socket closing)."""

    def drop_links(self, reason: int = HOST_LOST_REASON) -> int:
        """Terminate every LE link towards its peers and forget it; returns how many there were.

        The peer gets an LL terminate, so its host sees a disconnection (and a watch advertises
        again). The own host is not told: it is gone, or it has just reset this controller. A
        pending connection attempt and scanning end too, as they would on real hardware.
        """
        connections = list(self.le_connections.values())
        for connection in connections:
            with contextlib.suppress(Exception):  # the peer may have left the link already
                connection.send_ll_control_pdu(ll.TerminateInd(reason))
            self.le_connections.pop(connection.peer_address, None)
        self.pending_le_connection = None
        self.le_scan_enable = False
        return len(connections)

    def on_hci_reset_command(self, command: hci.HCI_Reset_Command) -> hci.HCI_StatusReturnParameters:
        """A (re)started host resets the controller first: links left from its predecessor end here."""
        dropped = self.drop_links()
        if dropped:
            log.info("virtual controller reset: links dropped", controller=self.name, links=dropped)
        return super().on_hci_reset_command(command)


class HciPort:
    """The TCP end of one controller's HCI, one host at a time (bumble ``tcp-client:host:port`` attaches).

    Unlike bumble's ``tcp-server`` transport, which forgets a departed client silently, it calls
    ``on_host_lost`` when the host's connection ends (a killed gateway's socket is closed by its
    kernel) and restarts the packet parser, so a half-sent packet cannot garble the next host's stream.
    """

    def __init__(self) -> None:
        self.source = StreamPacketSource()
        self.client: asyncio.Transport | None = None
        self.on_host_lost: Callable[[], None] = lambda: None
        self.server: asyncio.Server | None = None

    async def listen(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(lambda: _HciConnection(self), host, port)

    def on_packet(self, packet: bytes) -> None:
        """Controller to host (bumble's TransportSink); dropped while no host is attached."""
        if self.client is not None and not self.client.is_closing():
            self.client.write(packet)

    def attach(self, client: asyncio.Transport) -> None:
        if self.client is not None:  # a newer host displaces the old one, whose links go with it
            previous, self.client = self.client, None
            previous.close()
            self.on_host_lost()
        self.source.parser.reset()
        self.client = client

    def detach(self, client: asyncio.Transport) -> None:
        if client is self.client:
            self.client = None
            self.source.parser.reset()
            self.on_host_lost()

    async def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await self.server.wait_closed()


class _HciConnection(asyncio.Protocol):
    def __init__(self, port: HciPort) -> None:
        self._port = port
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._port.attach(transport)

    def data_received(self, data: bytes) -> None:
        if self._transport is not None and self._transport is self._port.client:
            self._port.source.data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._transport is not None:
            self._port.detach(self._transport)


class VirtualAir:
    """A link plus the controllers gateways attach to over TCP."""

    def __init__(self) -> None:
        self.link = LocalLink()  # type: ignore[no-untyped-call]
        self.ports: list[HciPort] = []
        self.controllers: list[GatewayController] = []

    async def expose(self, host: str, port: int) -> GatewayController:
        """Offer one HCI controller on ``host:port`` (bumble ``tcp-client`` transport)."""
        hci_port = HciPort()
        await hci_port.listen(host, port)
        controller = GatewayController(f"gateway-{port}", host_source=hci_port.source, host_sink=hci_port,
                                       link=self.link, public_address=GATEWAY_CONTROLLER_ADDRESS)

        def host_lost() -> None:
            dropped = controller.drop_links()
            log.info("gateway host left the virtual radio", port=port, links_dropped=dropped)

        hci_port.on_host_lost = host_lost
        self.ports.append(hci_port)
        self.controllers.append(controller)
        return controller

    async def close(self) -> None:
        for hci_port in self.ports:
            with contextlib.suppress(Exception):
                await hci_port.close()


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
