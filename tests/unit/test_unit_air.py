"""The virtual radio: a gateway host that dies or resets takes its links with it.

A killed gateway's TCP connection to the virtual controller closes; the watches it was
connected to must see the link drop and advertise again, so the restarted gateway finds
them. Real bumble hosts on both ends, over a real TCP socket.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any

from bumble import hci
from bumble.controller import Controller
from bumble.device import Connection, Device
from bumble.hci import Address
from bumble.host import Host
from bumble.transport import open_transport
from bumble.transport.common import AsyncPipeSink

from cardiogate.sim.air import GATEWAY_CONTROLLER_ADDRESS, HOST_LOST_REASON, VirtualAir

WATCH = "C0:00:00:00:00:41"
TIMEOUT_S = 5.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Watch:
    """A bare peripheral on the link that advertises again after every disconnection (as watches do)."""

    def __init__(self, air: VirtualAir) -> None:
        controller = Controller("watch", link=air.link, public_address=WATCH)
        self.device = Device(name="watch", address=Address(WATCH), host=Host(controller, AsyncPipeSink(controller)))
        self.reasons: list[int] = []
        self.disconnected = asyncio.Event()
        self.device.on("connection", self._on_connection)

    def _on_connection(self, connection: Connection) -> None:
        connection.on("disconnection", self._on_disconnection)

    def _on_disconnection(self, reason: int) -> None:
        self.reasons.append(reason)
        self.disconnected.set()

    async def start(self) -> None:
        await self.device.power_on()
        await self.device.start_advertising(auto_restart=True, advertising_interval_min=20,
                                            advertising_interval_max=20)


async def _gateway_host(port: int) -> tuple[Device, Any]:
    """What the gateway's bumble backend does: a host on ``tcp-client``, powered on (which resets the controller)."""
    transport = await open_transport(f"tcp-client:127.0.0.1:{port}")
    device = Device.with_hci("gateway", Address(GATEWAY_CONTROLLER_ADDRESS), transport.source, transport.sink)
    await asyncio.wait_for(device.power_on(), TIMEOUT_S)
    return device, transport


async def _until(predicate: Callable[[], bool]) -> None:
    for _ in range(int(TIMEOUT_S / 0.02)):
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not reached in time")


async def test_a_gateway_host_that_dies_drops_its_links_and_the_watch_advertises_again() -> None:
    air = VirtualAir()
    port = _free_port()
    controller = await air.expose("127.0.0.1", port)
    watch = _Watch(air)
    await watch.start()
    try:
        gateway, transport = await _gateway_host(port)
        await gateway.connect(Address(WATCH), timeout=TIMEOUT_S)
        await _until(lambda: bool(watch.device.connections) and bool(controller.le_connections))

        await transport.close()  # the gateway process is gone: its socket closes
        await asyncio.wait_for(watch.disconnected.wait(), TIMEOUT_S)
        assert watch.reasons == [HOST_LOST_REASON]
        assert not controller.le_connections and not watch.device.connections
        await _until(lambda: watch.device.is_advertising)

        # The restarted gateway finds the watch again.
        gateway2, transport2 = await _gateway_host(port)
        try:
            await gateway2.connect(Address(WATCH), timeout=TIMEOUT_S)
            await _until(lambda: bool(watch.device.connections))
        finally:
            await transport2.close()
        await _until(lambda: len(watch.reasons) == 2)
    finally:
        await air.close()


async def test_hci_reset_drops_links_left_from_a_previous_host() -> None:
    air = VirtualAir()
    port = _free_port()
    controller = await air.expose("127.0.0.1", port)
    watch = _Watch(air)
    await watch.start()
    try:
        gateway, transport = await _gateway_host(port)
        try:
            await gateway.connect(Address(WATCH), timeout=TIMEOUT_S)
            await _until(lambda: bool(watch.device.connections))
            await gateway.host.send_command(hci.HCI_Reset_Command())
            await asyncio.wait_for(watch.disconnected.wait(), TIMEOUT_S)
            assert watch.reasons == [HOST_LOST_REASON]
            assert not controller.le_connections
            await _until(lambda: watch.device.is_advertising)
        finally:
            await transport.close()
    finally:
        await air.close()
