"""Which BLE stack bleak runs on: BlueZ (production) or a bumble radio (virtual or USB HCI)."""

from __future__ import annotations

from typing import Any

from cardiogate.edge.settings import AdapterSettings


def client_kwargs(adapter: AdapterSettings) -> dict[str, Any]:
    """Extra BleakClient arguments: the BlueZ adapter name, or the bumble backend and its transport."""
    if not adapter.bumble_transport:
        return {"adapter": adapter.name}
    from cardiogate.edge.ble.bumble_backend import BumbleClient

    return {"backend": BumbleClient, "bumble_transport": adapter.bumble_transport}


def scanner_kwargs(adapter: AdapterSettings) -> dict[str, Any]:
    """Extra BleakScanner arguments: the BlueZ adapter name, or the bumble backend and its transport."""
    if not adapter.bumble_transport:
        return {"adapter": adapter.name}
    from cardiogate.edge.ble.bumble_backend import BumbleScanner

    return {"backend": BumbleScanner, "bumble_transport": adapter.bumble_transport}
