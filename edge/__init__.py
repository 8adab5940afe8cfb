"""The gateway daemon: BLE wearables in, alarms on MQTT, every sample durably uplinked.

Layering rule (checked by tests/test_import_contract.py): edge imports only the
standard library, its own dependencies, ``proto`` and the ``cardiogate`` kernel;
never ``cloud``, ``models`` or ``torch``.
"""
