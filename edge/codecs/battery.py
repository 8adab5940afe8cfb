"""Battery Level (GATT characteristic 0x2A19, read/notify; Battery Service 0x180F).

Layout: one byte, uint8, percent of full charge, 0..100; 101..255 are reserved and a DecodeError.
"""

from __future__ import annotations

from cardiogate.edge.codecs.errors import DecodeError

BATTERY_SERVICE_UUID = "0000180f-0000-1000-8000-00805f9b34fb"
BATTERY_LEVEL_UUID = "00002a19-0000-1000-8000-00805f9b34fb"


def decode_battery_level(data: bytes | bytearray) -> int:
    """Decode the level in percent or raise DecodeError (wrong length, above 100)."""
    raw = bytes(data)
    if len(raw) != 1:
        raise DecodeError(f"battery level is 1 byte, not {len(raw)}")
    if raw[0] > 100:
        raise DecodeError(f"battery level {raw[0]} % is above 100")
    return raw[0]


def encode_battery_level(percent: int) -> bytes:
    """Encode a level (used by the simulator); ValueError outside 0..100."""
    if not 0 <= percent <= 100:
        raise ValueError(f"battery level must be 0..100 %, not {percent}")
    return bytes([percent])
