"""Radios as a scarce resource: continuous scanning and connection slots per adapter.

One scanner per adapter runs for the gateway's life (as Home Assistant's Bluetooth
stack does) instead of a scan per connection attempt: sessions wait for a fresh
advertisement of their device, which also yields its RSSI. A real controller holds a
limited number of links, so each adapter hands out connection slots; a session that
finds every adapter full waits for a slot instead of failing a connect.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from bleak import BleakScanner
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData

from cardiogate.core.backoff import Backoff
from cardiogate.core.logs import get_logger
from cardiogate.edge.ble.backend import scanner_kwargs
from cardiogate.edge.settings import AdapterSettings

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Sighting:
    """The latest advertisement of one device on one adapter."""

    device: BLEDevice
    rssi: int | None
    seen_at: float  # time.monotonic()


class Adapter:
    """One radio: its scanner, its sightings and its connection slots."""

    def __init__(self, settings: AdapterSettings, service_uuids: list[str]) -> None:
        self.settings = settings
        self.name = settings.name
        self._service_uuids = service_uuids
        self._sightings: dict[str, Sighting] = {}
        self._waiters: dict[str, asyncio.Event] = {}
        self._slots = asyncio.Semaphore(settings.max_connections)
        self.in_use = 0
        self.scanning = False

    @property
    def free_slots(self) -> int:
        return self.settings.max_connections - self.in_use

    async def run_scanner(self) -> None:
        """Scan forever; a failing scanner (adapter reset, USB unplugged) restarts with backoff."""
        backoff = Backoff(1.0, 30.0)
        while True:
            try:
                async with BleakScanner(detection_callback=self._on_advertisement,
                                        service_uuids=self._service_uuids, **scanner_kwargs(self.settings)):
                    self.scanning = True
                    backoff.reset()
                    await asyncio.Event().wait()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any stack failure: report it and scan again
                if being_cancelled():  # stopping the scan on a dead radio failed: we were still told to stop
                    raise asyncio.CancelledError from exc
                log.warning("scanner failed; restarting", adapter=self.name, error=str(exc) or type(exc).__name__)
            finally:
                self.scanning = False
            await asyncio.sleep(backoff.next_delay())

    def _on_advertisement(self, device: BLEDevice, adv: AdvertisementData) -> None:
        address = device.address.upper()
        self._sightings[address] = Sighting(device, adv.rssi, time.monotonic())
        waiter = self._waiters.get(address)
        if waiter is not None:
            waiter.set()

    def sighting(self, address: str, since: float) -> Sighting | None:
        s = self._sightings.get(address)
        return s if s is not None and s.seen_at >= since else None

    def waiter(self, address: str) -> asyncio.Event:
        return self._waiters.setdefault(address, asyncio.Event())

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        async with self._slots:
            self.in_use += 1
            try:
                yield
            finally:
                self.in_use -= 1


def being_cancelled() -> bool:
    """Whether the current task has been asked to stop.

    Cleanup on a dead radio (stopping a scan, disconnecting) can raise a stack error that
    replaces the CancelledError; loops that retry on stack errors check this so that a
    shutdown is never mistaken for one more failure.
    """
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


class AdapterPool:
    """All radios of the gateway."""

    def __init__(self, adapters: list[AdapterSettings], service_uuids: list[str]) -> None:
        self.adapters = {a.name: Adapter(a, service_uuids) for a in adapters}

    def scanner_tasks(self) -> list[asyncio.Task[None]]:
        return [asyncio.create_task(a.run_scanner(), name=f"scan-{a.name}") for a in self.adapters.values()]

    async def find(self, address: str, since: float, timeout: float,  # noqa: ASYNC109 (a deadline, not a wrapper)
                   pinned: str | None = None) -> tuple[Adapter, Sighting] | None:
        """A fresh sighting of ``address`` (on the adapter with most free slots), or None after ``timeout``."""
        candidates = [self.adapters[pinned]] if pinned else list(self.adapters.values())
        deadline = time.monotonic() + timeout
        while True:
            events = [a.waiter(address) for a in candidates]
            for e in events:
                e.clear()  # before looking, so an advertisement arriving meanwhile still wakes us
            seen = [(a, s) for a in candidates if (s := a.sighting(address, since)) is not None]
            if seen:
                return max(seen, key=lambda pair: (pair[0].free_slots, pair[1].seen_at))
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            waits = [asyncio.create_task(e.wait()) for e in events]
            try:
                await asyncio.wait(waits, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waits:
                    w.cancel()
