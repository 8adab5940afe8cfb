"""Device Information Service 0x180A: identity strings and the System ID (all read-only).

String characteristics (utf8s, the whole value, no length prefix):
  0x2A29 Manufacturer Name, 0x2A24 Model Number, 0x2A25 Serial Number,
  0x2A27 Hardware Revision, 0x2A26 Firmware Revision, 0x2A28 Software Revision
  Trailing NUL bytes (C-string padding some firmwares send) are stripped. Invalid UTF-8, more
  than MAX_STRING_BYTES bytes, or a control/format character left after stripping (a newline, an
  embedded NUL, a bidi override) is a DecodeError: these strings end up in logs and inventories.

System ID 0x2A23 (8 bytes, little-endian):
  offset size field
  0      5    manufacturer-defined identifier (40 bits)
  5      3    organizationally unique identifier, OUI (24 bits)
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from cardiogate.edge.codecs.errors import DecodeError

DEVICE_INFORMATION_SERVICE_UUID = "0000180a-0000-1000-8000-00805f9b34fb"
SYSTEM_ID_UUID = "00002a23-0000-1000-8000-00805f9b34fb"
MODEL_NUMBER_UUID = "00002a24-0000-1000-8000-00805f9b34fb"
SERIAL_NUMBER_UUID = "00002a25-0000-1000-8000-00805f9b34fb"
FIRMWARE_REVISION_UUID = "00002a26-0000-1000-8000-00805f9b34fb"
HARDWARE_REVISION_UUID = "00002a27-0000-1000-8000-00805f9b34fb"
SOFTWARE_REVISION_UUID = "00002a28-0000-1000-8000-00805f9b34fb"
MANUFACTURER_NAME_UUID = "00002a29-0000-1000-8000-00805f9b34fb"

DIS_STRING_CHARACTERISTICS: Final = MappingProxyType({
    MANUFACTURER_NAME_UUID: "manufacturer_name",
    MODEL_NUMBER_UUID: "model_number",
    SERIAL_NUMBER_UUID: "serial_number",
    HARDWARE_REVISION_UUID: "hardware_revision",
    FIRMWARE_REVISION_UUID: "firmware_revision",
    SOFTWARE_REVISION_UUID: "software_revision",
})
"""String characteristic UUID -> the DeviceInformation field it fills."""

MAX_STRING_BYTES = 128
SYSTEM_ID_SIZE = 8


@dataclass(frozen=True, slots=True)
class SystemId:
    manufacturer_identifier: int
    organizationally_unique_identifier: int


@dataclass(frozen=True, slots=True)
class DeviceInformation:
    """What the gateway learned from a device's DIS; None for characteristics the device lacks."""

    manufacturer_name: str | None = None
    model_number: str | None = None
    serial_number: str | None = None
    hardware_revision: str | None = None
    firmware_revision: str | None = None
    software_revision: str | None = None
    system_id: SystemId | None = None


def _string_problem(text: str) -> str | None:
    for ch in text:
        if unicodedata.category(ch) in ("Cc", "Cf", "Cs"):
            return f"device information string contains the control character U+{ord(ch):04X}"
    return None


def decode_dis_string(data: bytes | bytearray) -> str:
    """Decode one DIS string characteristic or raise DecodeError."""
    raw = bytes(data)
    if len(raw) > MAX_STRING_BYTES:
        raise DecodeError(f"device information string of {len(raw)} bytes is over {MAX_STRING_BYTES}")
    try:
        text = raw.rstrip(b"\x00").decode("utf-8")
    except UnicodeDecodeError as e:
        raise DecodeError(f"device information string is not UTF-8: {e.reason} at byte {e.start}") from None
    problem = _string_problem(text)
    if problem:
        raise DecodeError(problem)
    return text


def encode_dis_string(text: str) -> bytes:
    """Encode a DIS string (used by the simulator); ValueError if it could not be decoded back."""
    problem = _string_problem(text)
    if problem:
        raise ValueError(problem)
    raw = text.encode("utf-8")
    if len(raw) > MAX_STRING_BYTES:
        raise ValueError(f"device information string of {len(raw)} bytes is over {MAX_STRING_BYTES}")
    return raw


def decode_system_id(data: bytes | bytearray) -> SystemId:
    """Decode the 8-byte System ID or raise DecodeError."""
    raw = bytes(data)
    if len(raw) != SYSTEM_ID_SIZE:
        raise DecodeError(f"system id is {SYSTEM_ID_SIZE} bytes, not {len(raw)}")
    return SystemId(int.from_bytes(raw[:5], "little"), int.from_bytes(raw[5:], "little"))


def encode_system_id(value: SystemId) -> bytes:
    """ValueError if either part does not fit its 40 / 24 bits."""
    if not 0 <= value.manufacturer_identifier < 1 << 40:
        raise ValueError(f"manufacturer identifier must fit 40 bits: {value.manufacturer_identifier}")
    if not 0 <= value.organizationally_unique_identifier < 1 << 24:
        raise ValueError(f"OUI must fit 24 bits: {value.organizationally_unique_identifier}")
    return (value.manufacturer_identifier.to_bytes(5, "little")
            + value.organizationally_unique_identifier.to_bytes(3, "little"))
