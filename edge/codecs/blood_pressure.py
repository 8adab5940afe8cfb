"""Blood Pressure Measurement (GATT 0x2A35, indicate; Blood Pressure Service 0x1810).

Layout (Bluetooth SIG BLS 1.0, little-endian; SFLOAT and Date Time as in edge/codecs/sfloat.py):
  flags u8: bit0 units (0 = mmHg, 1 = kPa), bit1 Time Stamp present, bit2 Pulse Rate present,
            bit3 User ID present, bit4 Measurement Status present; bits 5-7 reserved
  systolic SFLOAT, diastolic SFLOAT, mean arterial pressure SFLOAT (in the flagged unit)
  Time Stamp Date Time (7 bytes) if bit1
  Pulse Rate SFLOAT (beats per minute) if bit2
  User ID u8 if bit3 (255 = unknown user)
  Measurement Status u16 if bit4:
    bit0 body movement during measurement, bit1 cuff too loose, bit2 irregular pulse detected,
    bits3-4 pulse rate range (0 within range, 1 above upper limit, 2 below lower limit, 3 reserved),
    bit5 improper measurement position; bits 6-15 reserved

Intermediate Cuff Pressure (0x2A36, notify) has the same layout (diastolic and mean are NaN), so the
same decoder serves it. Reserved flag or status bits, a truncated field and trailing bytes are DecodeError.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from cardiogate.edge.codecs.errors import DecodeError
from cardiogate.edge.codecs.sfloat import (
    DATE_TIME_SIZE,
    SFLOAT_SIZE,
    GattDateTime,
    SFloat,
    encode_date_time,
    encode_sfloat,
    unpack_date_time,
    unpack_sfloat,
)

BLOOD_PRESSURE_SERVICE_UUID = "00001810-0000-1000-8000-00805f9b34fb"
BLOOD_PRESSURE_MEASUREMENT_UUID = "00002a35-0000-1000-8000-00805f9b34fb"
INTERMEDIATE_CUFF_PRESSURE_UUID = "00002a36-0000-1000-8000-00805f9b34fb"

MMHG_PER_KPA = 7.50062
UNKNOWN_USER = 0xFF

_FLAG_KPA = 0x01
_FLAG_TIMESTAMP = 0x02
_FLAG_PULSE_RATE = 0x04
_FLAG_USER_ID = 0x08
_FLAG_STATUS = 0x10
_FLAGS_RESERVED = 0xE0

_STATUS_BODY_MOVEMENT = 0x0001
_STATUS_CUFF_LOOSE = 0x0002
_STATUS_IRREGULAR_PULSE = 0x0004
_STATUS_RANGE_SHIFT = 3
_STATUS_RANGE_MASK = 0x0018
_STATUS_POSITION = 0x0020
_STATUS_RESERVED = 0xFFC0


class PressureUnit(enum.IntEnum):
    MMHG = 0
    KPA = 1


class PulseRateRange(enum.IntEnum):
    WITHIN_RANGE = 0
    ABOVE_UPPER_LIMIT = 1
    BELOW_LOWER_LIMIT = 2


@dataclass(frozen=True, slots=True)
class BloodPressureStatus:
    """The cuff's own verdict on the measurement (Measurement Status); all False means a clean reading."""

    body_movement: bool = False
    cuff_too_loose: bool = False
    irregular_pulse: bool = False
    pulse_rate_range: PulseRateRange = PulseRateRange.WITHIN_RANGE
    improper_position: bool = False

    @classmethod
    def from_raw(cls, raw: int) -> BloodPressureStatus:
        """ValueError for reserved bits or the reserved pulse rate range 3."""
        if not 0 <= raw <= 0xFFFF or raw & _STATUS_RESERVED:
            raise ValueError(f"blood pressure measurement status uses reserved bits: 0x{raw:04x}")
        rng = (raw & _STATUS_RANGE_MASK) >> _STATUS_RANGE_SHIFT
        if rng == 3:
            raise ValueError("blood pressure measurement status has the reserved pulse rate range 3")
        return cls(bool(raw & _STATUS_BODY_MOVEMENT), bool(raw & _STATUS_CUFF_LOOSE),
                   bool(raw & _STATUS_IRREGULAR_PULSE), PulseRateRange(rng), bool(raw & _STATUS_POSITION))

    def to_raw(self) -> int:
        return ((_STATUS_BODY_MOVEMENT if self.body_movement else 0)
                | (_STATUS_CUFF_LOOSE if self.cuff_too_loose else 0)
                | (_STATUS_IRREGULAR_PULSE if self.irregular_pulse else 0)
                | (PulseRateRange(self.pulse_rate_range) << _STATUS_RANGE_SHIFT)
                | (_STATUS_POSITION if self.improper_position else 0))


@dataclass(frozen=True, slots=True)
class BloodPressureMeasurement:
    """One measurement in the unit the cuff sent; the ``*_mmhg`` properties convert for the gateway."""

    systolic: SFloat
    diastolic: SFloat
    mean_arterial_pressure: SFloat
    unit: PressureUnit = PressureUnit.MMHG
    timestamp: GattDateTime | None = None
    pulse_rate: SFloat | None = None
    user_id: int | None = None
    status: BloodPressureStatus | None = None

    def _mmhg(self, value: SFloat) -> float | None:
        v = value.number()
        if v is None or self.unit == PressureUnit.MMHG:
            return v
        return v * MMHG_PER_KPA

    @property
    def systolic_mmhg(self) -> float | None:
        """Systolic pressure in mmHg, None if the cuff sent a special value (NaN, NRes, ...)."""
        return self._mmhg(self.systolic)

    @property
    def diastolic_mmhg(self) -> float | None:
        return self._mmhg(self.diastolic)

    @property
    def mean_arterial_pressure_mmhg(self) -> float | None:
        return self._mmhg(self.mean_arterial_pressure)

    @property
    def pulse_rate_bpm(self) -> float | None:
        return None if self.pulse_rate is None else self.pulse_rate.number()


def decode_blood_pressure_measurement(data: bytes | bytearray) -> BloodPressureMeasurement:
    """Decode a Blood Pressure Measurement (or Intermediate Cuff Pressure) or raise DecodeError."""
    raw = bytes(data)
    if not raw:
        raise DecodeError("blood pressure measurement is empty")
    flags = raw[0]
    if flags & _FLAGS_RESERVED:
        raise DecodeError(f"blood pressure measurement uses reserved flag bits: 0x{flags:02x}")
    need = 1 + 3 * SFLOAT_SIZE
    if flags & _FLAG_TIMESTAMP:
        need += DATE_TIME_SIZE
    if flags & _FLAG_PULSE_RATE:
        need += SFLOAT_SIZE
    if flags & _FLAG_USER_ID:
        need += 1
    if flags & _FLAG_STATUS:
        need += 2
    if len(raw) != need:
        raise DecodeError(f"blood pressure measurement with flags 0x{flags:02x} is {need} bytes, not {len(raw)}")
    systolic = unpack_sfloat(raw, 1)
    diastolic = unpack_sfloat(raw, 3)
    mean = unpack_sfloat(raw, 5)
    pos = 7
    timestamp: GattDateTime | None = None
    if flags & _FLAG_TIMESTAMP:
        timestamp = unpack_date_time(raw, pos)
        pos += DATE_TIME_SIZE
    pulse: SFloat | None = None
    if flags & _FLAG_PULSE_RATE:
        pulse = unpack_sfloat(raw, pos)
        pos += SFLOAT_SIZE
    user: int | None = None
    if flags & _FLAG_USER_ID:
        user = raw[pos]
        pos += 1
    status: BloodPressureStatus | None = None
    if flags & _FLAG_STATUS:
        (word,) = struct.unpack_from("<H", raw, pos)
        try:
            status = BloodPressureStatus.from_raw(word)
        except ValueError as e:
            raise DecodeError(str(e)) from None
    unit = PressureUnit.KPA if flags & _FLAG_KPA else PressureUnit.MMHG
    return BloodPressureMeasurement(systolic, diastolic, mean, unit, timestamp, pulse, user, status)


def encode_blood_pressure_measurement(m: BloodPressureMeasurement) -> bytes:
    """Encode a measurement as a cuff would (used by the simulator); ValueError for a user id beyond u8."""
    flags = _FLAG_KPA if PressureUnit(m.unit) == PressureUnit.KPA else 0
    out = bytearray([0])
    out += encode_sfloat(m.systolic) + encode_sfloat(m.diastolic) + encode_sfloat(m.mean_arterial_pressure)
    if m.timestamp is not None:
        flags |= _FLAG_TIMESTAMP
        out += encode_date_time(m.timestamp)
    if m.pulse_rate is not None:
        flags |= _FLAG_PULSE_RATE
        out += encode_sfloat(m.pulse_rate)
    if m.user_id is not None:
        if not 0 <= m.user_id <= 0xFF:
            raise ValueError(f"user id must be 0..255, not {m.user_id}")
        flags |= _FLAG_USER_ID
        out.append(m.user_id)
    if m.status is not None:
        flags |= _FLAG_STATUS
        out += struct.pack("<H", m.status.to_raw())
    out[0] = flags
    return bytes(out)
