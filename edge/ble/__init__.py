"""BLE access through bleak's public API, on BlueZ in production or a bumble radio.

:func:`cardiogate.edge.ble.backend.client_kwargs` and :func:`cardiogate.edge.ble.backend.scanner_kwargs` are
the only place that knows which stack is below; everything else uses bleak.
"""
