"""Which BLE stack bleak runs on: BlueZ (production) or a bumble radio (virtual or USB HCI)."""

from __future__ import annotations

from typing import Any


def client_kwargs(bumble_transport: str | None) -> dict[str, Any]:
    """Extra BleakClient arguments: none for BlueZ, the bumble backend otherwise."""
    if not bumble_transport:
        return {}
    from edge.ble.bumble_backend import BumbleClient

    return {"backend": BumbleClient, "bumble_transport": bumble_transport}


def scanner_kwargs(bumble_transport: str | None) -> dict[str, Any]:
    """Extra BleakScanner arguments: none for BlueZ, the bumble backend otherwise."""
    if not bumble_transport:
        return {}
    from edge.ble.bumble_backend import BumbleScanner

    return {"backend": BumbleScanner, "bumble_transport": bumble_transport}
