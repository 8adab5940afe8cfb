"""Body Sensor Location (GATT characteristic 0x2A38, read; part of the Heart Rate Service 0x180D).

Layout: one byte, an enumeration
  0 other, 1 chest, 2 wrist, 3 finger, 4 hand, 5 ear lobe, 6 foot; 7..255 reserved.

A reserved value is a DecodeError: the location only labels where a waveform came from,
and a label we cannot name is better reported as unknown (the caller's fallback) than guessed.
"""

from __future__ import annotations

import enum

from cardiogate.edge.codecs.errors import DecodeError

BODY_SENSOR_LOCATION_UUID = "00002a38-0000-1000-8000-00805f9b34fb"


class BodySensorLocation(enum.IntEnum):
    OTHER = 0
    CHEST = 1
    WRIST = 2
    FINGER = 3
    HAND = 4
    EAR_LOBE = 5
    FOOT = 6


def decode_body_sensor_location(data: bytes | bytearray) -> BodySensorLocation:
    """Decode the one-byte location or raise DecodeError (wrong length, reserved value)."""
    raw = bytes(data)
    if len(raw) != 1:
        raise DecodeError(f"body sensor location is 1 byte, not {len(raw)}")
    if raw[0] > BodySensorLocation.FOOT:
        raise DecodeError(f"body sensor location {raw[0]} is reserved")
    return BodySensorLocation(raw[0])


def encode_body_sensor_location(location: BodySensorLocation) -> bytes:
    """Encode a location (used by the simulator); ValueError for an int that is no location."""
    return bytes([BodySensorLocation(location)])
