"""BLE device addresses as typed, validated strings (AA:BB:CC:DD:EE:FF, upper case)."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator

_ADDRESS = re.compile(r"^[0-9A-F]{2}(:[0-9A-F]{2}){5}$")


def normalise_address(value: str) -> str:
    """Upper-case and check a BLE address; ValueError names the expected form."""
    value = value.strip().upper()
    if not _ADDRESS.match(value):
        raise ValueError(f"{value!r} is not a BLE address like C0:00:00:00:00:01")
    return value


BleAddress = Annotated[str, AfterValidator(normalise_address)]
