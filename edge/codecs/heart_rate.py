"""Heart Rate Measurement (GATT characteristic 0x2A37, Heart Rate Service 0x180D).

Layout (Bluetooth SIG HRS 1.0, little-endian):
  flags u8: bit0 HR format (0 = uint8, 1 = uint16), bits1-2 sensor contact
  (0b10 supported/not detected, 0b11 supported/detected, else unsupported),
  bit3 energy expended present, bit4 RR intervals present;
  heart rate u8 or u16 (bpm); energy expended u16 (kJ) if flagged;
  zero or more RR intervals u16 in units of 1/1024 s if flagged.

An RR interval of 0 cannot be a heartbeat; some straps send one while they settle. Such a
value is dropped and counted in ``rr_dropped`` and the rest of the notification (the heart
rate above all) is kept, as other HRS clients do: one bad RR must not cost the heart rate.
Malformed structure (reserved flag bits, truncation, an odd RR byte count) still refuses
the whole notification.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from cardiogate.edge.codecs.errors import DecodeError

HEART_RATE_SERVICE_UUID = "0000180d-0000-1000-8000-00805f9b34fb"
HEART_RATE_MEASUREMENT_UUID = "00002a37-0000-1000-8000-00805f9b34fb"

_FLAG_HR_UINT16 = 0x01
_FLAG_CONTACT_SUPPORTED = 0x04
_FLAG_CONTACT_DETECTED = 0x02
_FLAG_ENERGY = 0x08
_FLAG_RR = 0x10
_RR_UNITS_PER_SECOND = 1024


@dataclass(frozen=True, slots=True)
class HeartRateMeasurement:
    """One decoded notification. ``sensor_contact`` is None when the sensor cannot tell.

    ``rr_dropped`` counts RR values the decoder removed as invalid (0); the encoder ignores
    it, so a measurement that dropped some re-encodes without them.
    """

    heart_rate_bpm: int
    sensor_contact: bool | None = None
    energy_expended_kj: int | None = None
    rr_intervals_1024: tuple[int, ...] = field(default_factory=tuple)
    rr_dropped: int = 0

    @property
    def rr_intervals_ms(self) -> tuple[float, ...]:
        """RR intervals converted from 1/1024 s units to milliseconds."""
        return tuple(rr * 1000.0 / _RR_UNITS_PER_SECOND for rr in self.rr_intervals_1024)


def decode_heart_rate_measurement(data: bytes | bytearray) -> HeartRateMeasurement:
    """Decode a Heart Rate Measurement notification or raise DecodeError (zero RR values are dropped)."""
    raw = bytes(data)
    if len(raw) < 2:
        raise DecodeError(f"heart rate measurement too short: {len(raw)} bytes")
    flags = raw[0]
    if flags & 0xE0:
        raise DecodeError(f"heart rate measurement uses reserved flag bits: 0x{flags:02x}")
    pos = 1
    if flags & _FLAG_HR_UINT16:
        if len(raw) < pos + 2:
            raise DecodeError("heart rate measurement truncated in uint16 heart rate")
        (hr,) = struct.unpack_from("<H", raw, pos)
        pos += 2
    else:
        hr = raw[pos]
        pos += 1
    contact: bool | None = None
    if flags & _FLAG_CONTACT_SUPPORTED:
        contact = bool(flags & _FLAG_CONTACT_DETECTED)
    energy: int | None = None
    if flags & _FLAG_ENERGY:
        if len(raw) < pos + 2:
            raise DecodeError("heart rate measurement truncated in energy expended")
        (energy,) = struct.unpack_from("<H", raw, pos)
        pos += 2
    rr: tuple[int, ...] = ()
    dropped = 0
    if flags & _FLAG_RR:
        rest = len(raw) - pos
        if rest <= 0 or rest % 2:
            raise DecodeError(f"heart rate measurement has {rest} bytes of RR intervals, expected a multiple of 2")
        values = struct.unpack_from(f"<{rest // 2}H", raw, pos)
        rr = tuple(v for v in values if v != 0)
        dropped = len(values) - len(rr)
    elif pos != len(raw):
        raise DecodeError(f"heart rate measurement has {len(raw) - pos} trailing bytes")
    return HeartRateMeasurement(hr, contact, energy, rr, dropped)


def encode_heart_rate_measurement(m: HeartRateMeasurement, *, force_uint16: bool = False) -> bytes:
    """Encode a measurement exactly as a wearable would (used by the simulator); ``rr_dropped`` is not encoded."""
    if not 0 <= m.heart_rate_bpm <= 0xFFFF:
        raise ValueError(f"heart rate out of range: {m.heart_rate_bpm}")
    flags = 0
    wide = force_uint16 or m.heart_rate_bpm > 0xFF
    if wide:
        flags |= _FLAG_HR_UINT16
    if m.sensor_contact is not None:
        flags |= _FLAG_CONTACT_SUPPORTED | (_FLAG_CONTACT_DETECTED if m.sensor_contact else 0)
    out = bytearray([0])
    out += struct.pack("<H", m.heart_rate_bpm) if wide else bytes([m.heart_rate_bpm])
    if m.energy_expended_kj is not None:
        flags |= _FLAG_ENERGY
        out += struct.pack("<H", m.energy_expended_kj)
    if m.rr_intervals_1024:
        flags |= _FLAG_RR
        for rr in m.rr_intervals_1024:
            if not 0 < rr <= 0xFFFF:
                raise ValueError(f"RR interval out of range: {rr}")
            out += struct.pack("<H", rr)
    out[0] = flags
    return bytes(out)


def rr_ms_to_1024(rr_ms: float) -> int:
    """Round an RR interval in milliseconds to the characteristic's 1/1024 s units."""
    return max(1, min(0xFFFF, round(rr_ms * _RR_UNITS_PER_SECOND / 1000.0)))
