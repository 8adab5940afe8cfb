"""Which wearable belongs to which patient: the config file plus runtime changes, persisted.

The config file lists the devices a deployment starts with. The site admin pairs and unpairs
at run time (an MQTT command, judged by :func:`authorize_pairing` on a locked plane); those
changes are written to a small JSON file with an atomic replace (write, fsync, rename), so a
power cut leaves either the old or the new registry, never a torn one, and a restart keeps
them. Runtime entries win over the file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path

from pydantic import ValidationError

from cardiogate.core.errors import PermanentError
from cardiogate.edge.settings import PairedDevice

Listener = Callable[[PairedDevice | None, str], None]  # (device or None when unpaired, address)


class PairingError(PermanentError, ValueError):
    """A pairing request or a persisted registry that cannot be accepted."""


def authorize_pairing(command: str, sender: tuple[str, Callable[[str], str | None]]) -> str:
    """The actor of a pair/unpair: the broker-authenticated identity, if its role may (site admins);
    PairingError otherwise. The payload's ``by`` is never what decides."""
    identity, refusal = sender
    why = refusal(command)
    if why is not None:
        raise PairingError(why)
    return identity


class PairingRegistry:
    """Address -> paired device, with change listeners."""

    def __init__(self, configured: Iterable[PairedDevice], path: Path | None) -> None:
        self._path = path
        self._devices: dict[str, PairedDevice] = {d.address: d for d in configured}
        self._removed: set[str] = set()
        self._runtime: dict[str, PairedDevice] = {}
        self._listeners: list[Listener] = []
        if path is not None and path.exists():
            self._load(path)

    def _load(self, path: Path) -> None:
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            runtime = [PairedDevice.model_validate(d) for d in doc.get("paired", [])]
            removed = [str(a).upper() for a in doc.get("unpaired", [])]
        except (OSError, ValueError, ValidationError, AttributeError) as exc:
            raise PairingError(f"{path}: unreadable pairing registry: {exc}".splitlines()[0]) from exc
        for address in removed:
            self._removed.add(address)
            self._devices.pop(address, None)
        for dev in runtime:
            self._runtime[dev.address] = dev
            self._devices[dev.address] = dev
            self._removed.discard(dev.address)

    def on_change(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def devices(self) -> list[PairedDevice]:
        return sorted(self._devices.values(), key=lambda d: d.address)

    def get(self, address: str) -> PairedDevice | None:
        return self._devices.get(address.upper())

    def pair(self, device: PairedDevice) -> None:
        """Add or re-assign a device; a device already filed under another patient must be unpaired first."""
        current = self._devices.get(device.address)
        if current is not None and current.patient != device.patient:
            raise PairingError(f"{device.address} is paired to {current.patient}; unpair it first")
        self._devices[device.address] = device
        self._runtime[device.address] = device
        self._removed.discard(device.address)
        self._save()
        for listener in self._listeners:
            listener(device, device.address)

    def unpair(self, address: str) -> PairedDevice:
        address = address.upper()
        device = self._devices.pop(address, None)
        if device is None:
            raise PairingError(f"{address} is not paired")
        self._runtime.pop(address, None)
        self._removed.add(address)
        self._save()
        for listener in self._listeners:
            listener(None, address)
        return device

    def _save(self) -> None:
        if self._path is None:
            return
        doc = {"schema": 1, "paired": [d.model_dump(mode="json") for d in self._runtime.values()],
               "unpaired": sorted(self._removed)}
        tmp = self._path.with_name(self._path.name + ".tmp")
        self._path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, indent=2)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self._path)
        dir_fd = os.open(self._path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
