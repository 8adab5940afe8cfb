"""One wearable's BLE session: wait for it, take a slot, connect, subscribe, reconnect forever.

Failures of any kind (not seen, no free slot for long, connect timeout, GATT error,
link loss) end in a jittered exponential backoff and another attempt; the session
never gives up and needs no restart, unlike gateways that strand a device after
repeated disconnects. The backoff resets only after a link that stayed up a while,
so a device that drops straight after connecting is not hammered.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from bleak import BleakClient
from bleak.exc import BleakError

from cardiogate.core.backoff import Backoff
from cardiogate.core.logs import get_logger
from cardiogate.edge.ble.adapters import AdapterPool, being_cancelled
from cardiogate.edge.ble.backend import client_kwargs
from cardiogate.edge.ble.profiles import subscribe_all
from cardiogate.edge.gateway_metrics import RECONNECTS, SESSION_FAILURES
from cardiogate.edge.processing import DeviceProcessor
from cardiogate.edge.settings import BleSettings, PairedDevice

log = get_logger(__name__)
STABLE_LINK_S = 5.0


class DeviceSession:
    """Keeps one paired device connected and feeding its processor."""

    def __init__(self, device: PairedDevice, processor: DeviceProcessor, pool: AdapterPool, settings: BleSettings,
                 on_state: Callable[[DeviceSession], None] | None = None) -> None:
        self.device = device
        self.address = device.address
        self.processor = processor
        self._pool = pool
        self._settings = settings
        self._on_state = on_state
        self.connected = False
        self.adapter: str | None = None
        self.rssi: int | None = None
        self.connects = 0
        self.failures = 0
        self.last_error: str | None = None
        self.disconnected_since = time.monotonic()
        self.reconnect_latencies_s: list[float] = []  # link lost -> streaming again
        self._link_started = 0.0
        self._link_up_s = 0.0
        self.last_progress = time.monotonic()  # an attempt started or ended: the supervisor's liveness signal

    async def run(self) -> None:
        backoff = Backoff(self._settings.backoff_initial_s, self._settings.backoff_max_s)
        while True:
            started = self.last_progress = time.monotonic()
            try:
                await self._connect_and_stream(started)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is None or task.cancelling():
                    raise
                # Not our cancellation: the BLE stack cancelled a future we awaited (a link or a connection
                # procedure went away). That is one more failed attempt, not the end of the session.
                self._failed("a BLE operation was cancelled by the stack")
            except (BleakError, TimeoutError, OSError, EOFError) as exc:
                if being_cancelled():
                    raise asyncio.CancelledError from exc
                self._failed(str(exc) or type(exc).__name__)
            except Exception as exc:  # a stack bug must not strand the device
                if being_cancelled():
                    raise asyncio.CancelledError from exc
                self._failed(repr(exc))
                log.exception("ble session crashed; retrying", device=self.address)
            finally:
                try:
                    if self.connected:
                        self.disconnected_since = time.monotonic()
                    self._set_connected(False)
                    self.processor.on_disconnected()
                except Exception:  # a failure while cleaning up must not end the session
                    log.exception("ble session cleanup failed", device=self.address)
            if self.connected_for_s(started) >= STABLE_LINK_S:
                backoff.reset()
            await asyncio.sleep(backoff.next_delay())

    def connected_for_s(self, started: float) -> float:
        return self._link_up_s if self._link_started >= started else 0.0

    def _failed(self, error: str) -> None:
        self.last_progress = time.monotonic()
        self.failures += 1
        self.last_error = error
        SESSION_FAILURES.labels(self.processor.device_kind).inc()
        log.info("ble session ended", device=self.address, error=error)

    async def _connect_and_stream(self, started: float) -> None:
        s = self._settings
        found = await self._pool.find(self.address, since=time.monotonic() - s.sighting_max_age_s,
                                      timeout=s.scan_timeout_s,
                                      pinned=self.device.adapter)
        if found is None:
            raise BleakError(f"{self.address} not seen within {s.scan_timeout_s:.0f} s")
        adapter, sighting = found
        self.rssi = sighting.rssi
        async with adapter.slot():
            lost = asyncio.Event()
            kwargs: dict[str, Any] = client_kwargs(adapter.settings)
            client = BleakClient(sighting.device, disconnected_callback=lambda _c: lost.set(),
                                 timeout=s.connect_timeout_s, **kwargs)
            async with client:
                async with asyncio.timeout(s.connect_timeout_s):
                    subscribed = await subscribe_all(client, self.processor)
                self.connects += 1
                self.adapter = adapter.name
                self._link_started = time.monotonic()
                if self.connects > 1:
                    self.reconnect_latencies_s.append(self._link_started - self.disconnected_since)
                    RECONNECTS.labels(self.processor.device_kind).inc()
                self._set_connected(True)
                log.info("device streaming", device=self.address, adapter=adapter.name, mtu=client.mtu_size,
                         subscribed=subscribed)
                try:
                    await lost.wait()
                finally:
                    self._link_up_s = time.monotonic() - self._link_started
            raise BleakError("link lost")

    def _set_connected(self, value: bool) -> None:
        if value != self.connected:
            self.connected = value
            self.processor.on_link(value)
            if self._on_state is not None:
                self._on_state(self)
