"""The device manager: one session per paired wearable, health, and device-lost alarms.

It follows the pairing registry (sessions start and stop as devices are paired and
unpaired at run time), owns the radios (scanners and connection slots), and watches
every device's health: a device unreachable for ``device_lost_after_s`` raises the
device-lost technical alarm, which clears when it streams again.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass

from cardiogate.core.logs import get_logger
from cardiogate.edge.ble.adapters import AdapterPool
from cardiogate.edge.ble.profiles import SCAN_SERVICE_UUIDS
from cardiogate.edge.ble.session import DeviceSession
from cardiogate.edge.inference import RhythmClassifier
from cardiogate.edge.pairing import PairingRegistry
from cardiogate.edge.processing import DeviceProcessor, RecordSink
from cardiogate.edge.settings import AnalysisSettings, BleSettings, PairedDevice

log = get_logger(__name__)


@dataclass
class ManagedDevice:
    device: PairedDevice
    processor: DeviceProcessor
    session: DeviceSession
    task: asyncio.Task[None] | None = None
    lost: bool = False


class DeviceManager:
    """Sessions for every paired device, kept in step with the registry."""

    def __init__(self, registry: PairingRegistry, settings: BleSettings, sink: RecordSink, block_samples: int,
                 on_state: Callable[[ManagedDevice], None] | None = None, analysis: AnalysisSettings | None = None,
                 rhythm: RhythmClassifier | None = None) -> None:
        self._analysis = analysis
        self._rhythm = rhythm
        self.registry = registry
        self.settings = settings
        self._sink = sink
        self._block_samples = block_samples
        self._on_state = on_state
        self.pool = AdapterPool(settings.adapters, SCAN_SERVICE_UUIDS)
        self.devices: dict[str, ManagedDevice] = {}
        self._running = False
        for device in registry.devices():
            self._add(device)
        registry.on_change(self._registry_changed)

    def _check_adapter(self, device: PairedDevice) -> None:
        if device.adapter is not None and device.adapter not in self.pool.adapters:
            raise ValueError(f"{device.address} is pinned to unknown adapter {device.adapter!r}")

    def _add(self, device: PairedDevice) -> ManagedDevice:
        self._check_adapter(device)
        s = self.settings
        proc = DeviceProcessor(device.address, device.patient, self._sink, self._block_samples,
                               battery_low_percent=s.battery_low_percent, analysis=self._analysis,
                               rhythm=self._rhythm)
        proc.peers = lambda: (m.processor for m in self.devices.values()
                              if m.device.patient == device.patient and m.processor is not proc)
        managed = ManagedDevice(device, proc, DeviceSession(device, proc, self.pool, s, self._session_state))
        self.devices[device.address] = managed
        if self._running:
            managed.task = asyncio.create_task(managed.session.run(), name=f"ble-{device.address}")
        return managed

    def _registry_changed(self, device: PairedDevice | None, address: str) -> None:
        current = self.devices.pop(address, None)
        if current is not None:
            if current.task is not None:
                current.task.cancel()
            current.processor.flush()
        if device is not None:
            self._add(device)
        log.info("pairing changed", device=address, patient=device.patient if device else None)

    def _session_state(self, session: DeviceSession) -> None:
        managed = self.devices.get(session.address)
        if managed is not None and managed.session is session:
            self._state_changed(managed)

    def _state_changed(self, managed: ManagedDevice) -> None:
        if managed.session.connected and managed.lost:
            managed.lost = False
            self._sink.observe_technical(managed.device.patient, managed.device.address, "device_lost", False,
                                         managed.processor.device_time_for(time.time_ns()))
        if self._on_state is not None:
            self._on_state(managed)

    def check_lost(self) -> None:
        """Raise device-lost for every device unreachable longer than the threshold."""
        now_mono = time.monotonic()
        for managed in self.devices.values():
            session = managed.session
            if session.connected or managed.lost:
                continue
            if now_mono - session.disconnected_since >= self.settings.device_lost_after_s:
                managed.lost = True
                self._sink.observe_technical(managed.device.patient, managed.device.address, "device_lost", True,
                                             managed.processor.device_time_for(time.time_ns()))

    def _supervise(self) -> None:
        """A session never ends or stalls by itself; if one did (a stack bug), log why and start it afresh."""
        s = self.settings
        stall_s = s.scan_timeout_s + 2 * s.connect_timeout_s + s.backoff_max_s + 10.0
        for address, managed in list(self.devices.items()):
            task, session = managed.task, managed.session
            if task is None:
                continue
            why = None
            if task.done():
                exc = None if task.cancelled() else task.exception()
                why = "cancelled" if task.cancelled() else repr(exc) if exc else "returned"
            elif not session.connected and time.monotonic() - session.last_progress > stall_s:
                why = f"no progress for {stall_s:.0f} s"
                task.cancel()  # a stack call that ignores cancellation keeps the old task; it is abandoned
            if why is None:
                continue
            log.error("ble session stopped working; starting a new one", device=address, reason=why)
            fresh = DeviceSession(managed.device, managed.processor, self.pool, s, self._session_state)
            fresh.disconnected_since = session.disconnected_since
            managed.session = fresh
            managed.task = asyncio.create_task(fresh.run(), name=f"ble-{address}")

    async def run(self) -> None:
        self._running = True
        tasks = self.pool.scanner_tasks()
        for managed in self.devices.values():
            managed.task = asyncio.create_task(managed.session.run(), name=f"ble-{managed.device.address}")
        last_health = time.monotonic()
        try:
            while True:
                await asyncio.sleep(1.0)
                self._supervise()
                self.check_lost()
                if time.monotonic() - last_health >= self.settings.health_interval_s:
                    last_health = time.monotonic()
                    now = time.time_ns()
                    for managed in self.devices.values():
                        managed.processor.emit_health(now, managed.session.rssi)
        finally:
            self._running = False
            pending = tasks + [m.task for m in self.devices.values() if m.task is not None]
            for task in pending:
                task.cancel()
            with contextlib.suppress(Exception):
                await asyncio.gather(*pending, return_exceptions=True)
            for managed in self.devices.values():
                managed.processor.flush()
