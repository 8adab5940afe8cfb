"""One wearable's BLE session: find it, connect, subscribe, and reconnect forever.

Failures of any kind (not found, connect timeout, GATT error, link loss) end in a
jittered exponential backoff and another attempt; the session never gives up and
needs no restart, unlike gateways that strand a device after repeated disconnects.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from bleak import BleakClient, BleakScanner
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.exc import BleakError

from cardiogate.logs import get_logger
from edge.backoff import Backoff
from edge.ble.backend import client_kwargs, scanner_kwargs
from edge.codecs.ecg_waveform import ECG_WAVEFORM_UUID
from edge.codecs.heart_rate import HEART_RATE_MEASUREMENT_UUID, HEART_RATE_SERVICE_UUID
from edge.processing import DeviceProcessor
from edge.settings import BleSettings

log = get_logger(__name__)


class DeviceSession:
    """Keeps one paired device connected and feeding its processor."""

    def __init__(self, address: str, processor: DeviceProcessor, settings: BleSettings,
                 on_state: Callable[[str, bool], None] | None = None) -> None:
        self.address = address
        self._processor = processor
        self._settings = settings
        self._on_state = on_state
        self.connected = False
        self.connects = 0
        self.failures = 0

    async def run(self) -> None:
        backoff = Backoff(self._settings.backoff_initial_s, self._settings.backoff_max_s)
        while True:
            try:
                await self._connect_and_stream(backoff)
            except asyncio.CancelledError:
                raise
            except (BleakError, TimeoutError, OSError, EOFError) as exc:
                self.failures += 1
                log.info("ble session ended", device=self.address, error=str(exc) or type(exc).__name__)
            except Exception as exc:  # a stack bug must not strand the device
                self.failures += 1
                log.exception("ble session crashed; retrying", device=self.address, error=repr(exc))
            finally:
                self._set_connected(False)
                self._processor.on_disconnected()
            await asyncio.sleep(backoff.next_delay())

    async def _connect_and_stream(self, backoff: Backoff) -> None:
        device = await BleakScanner.find_device_by_address(
            self.address, timeout=self._settings.scan_timeout_s, **scanner_kwargs(self._settings.bumble_transport))
        if device is None:
            raise BleakError(f"{self.address} not seen within {self._settings.scan_timeout_s:.0f} s")
        lost = asyncio.Event()
        kwargs: dict[str, Any] = client_kwargs(self._settings.bumble_transport)
        client = BleakClient(device, disconnected_callback=lambda _c: lost.set(),
                             timeout=self._settings.connect_timeout_s, **kwargs)
        async with client:
            await client.start_notify(HEART_RATE_MEASUREMENT_UUID, self._on_heart_rate)
            if client.services.get_characteristic(ECG_WAVEFORM_UUID) is not None:
                await client.start_notify(ECG_WAVEFORM_UUID, self._on_ecg)
            self.connects += 1
            self._set_connected(True)
            backoff.reset()
            log.info("device streaming", device=self.address, mtu=client.mtu_size,
                     has_hrs=client.services.get_service(HEART_RATE_SERVICE_UUID) is not None)
            await lost.wait()
        raise BleakError("link lost")

    def _on_heart_rate(self, _char: BleakGATTCharacteristic, data: bytearray) -> None:
        self._processor.on_heart_rate(data, time.time_ns())

    def _on_ecg(self, _char: BleakGATTCharacteristic, data: bytearray) -> None:
        self._processor.on_ecg(data, time.time_ns())

    def _set_connected(self, value: bool) -> None:
        if value != self.connected:
            self.connected = value
            if self._on_state is not None:
                self._on_state(self.address, value)
