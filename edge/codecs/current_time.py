"""Current Time (GATT characteristic 0x2A2B, read/notify; Current Time Service 0x1805).

Layout (Bluetooth SIG CTS 1.1, little-endian), 10 bytes:
  offset size field
  0      7    Date Time: year u16 (1582..9999, 0 unknown), month, day (0 unknown), hours, minutes, seconds
  7      1    day of week (0 unknown, 1 Monday .. 7 Sunday; 8..255 reserved)
  8      1    fractions256 (1/256 s)
  9      1    adjust reason flags: bit0 manual time update, bit1 external reference time update,
              bit2 change of time zone, bit3 change of DST; bits 4-7 reserved
The time is the device's local wall clock (the zone is in Local Time Information 0x2A0F).

Out-of-range fields, a reserved day of week or reserved adjust-reason bits, or a length other
than 10 are DecodeError. A day of week that disagrees with the date is kept as sent: it is the
device's bug, not malformed bytes, and the date is what the gateway uses.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

from cardiogate.edge.codecs.errors import DecodeError
from cardiogate.edge.codecs.sfloat import DATE_TIME_SIZE, GattDateTime, encode_date_time, unpack_date_time

CURRENT_TIME_SERVICE_UUID = "00001805-0000-1000-8000-00805f9b34fb"
CURRENT_TIME_UUID = "00002a2b-0000-1000-8000-00805f9b34fb"

CURRENT_TIME_SIZE = 10
_NS_PER_FRACTION = 1_000_000_000 // 256  # 3906250, exact
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class AdjustReason(enum.IntFlag):
    """Why the device's clock last changed."""

    MANUAL_TIME_UPDATE = 0x01
    EXTERNAL_REFERENCE_TIME_UPDATE = 0x02
    CHANGE_OF_TIME_ZONE = 0x04
    CHANGE_OF_DST = 0x08


NO_ADJUSTMENT = AdjustReason(0)
_ADJUST_DEFINED = 0x0F


@dataclass(frozen=True, slots=True)
class CurrentTime:
    """The device clock: Exact Time 256 plus the adjust reason."""

    date_time: GattDateTime
    day_of_week: int = 0
    fractions256: int = 0
    adjust_reason: AdjustReason = NO_ADJUSTMENT

    def to_datetime(self, tz: tzinfo = UTC) -> datetime | None:
        """The moment in the device's zone ``tz`` (fractions floored to microseconds), None if the date is unknown."""
        dt = self.date_time.to_datetime(tz)
        if dt is None:
            return None
        return dt + timedelta(microseconds=self.fractions256 * 1_000_000 // 256)

    def to_unix_ns(self, tz: tzinfo = UTC) -> int | None:
        """Nanoseconds since the Unix epoch (exact: 1/256 s is a whole number of ns), None if the date is unknown."""
        dt = self.date_time.to_datetime(tz)
        if dt is None:
            return None
        return (dt - _EPOCH) // timedelta(seconds=1) * 1_000_000_000 + self.fractions256 * _NS_PER_FRACTION

    @classmethod
    def from_datetime(cls, dt: datetime, adjust_reason: AdjustReason = NO_ADJUSTMENT) -> CurrentTime:
        """The wall-clock fields of ``dt`` as a device would send them; ValueError outside years 1582..9999."""
        return cls(GattDateTime.from_datetime(dt), dt.isoweekday(), dt.microsecond * 256 // 1_000_000,
                   adjust_reason)

    @classmethod
    def from_unix_ns(cls, unix_ns: int, tz: tzinfo = UTC,
                     adjust_reason: AdjustReason = NO_ADJUSTMENT) -> CurrentTime:
        """The clock reading for ``unix_ns`` in zone ``tz`` (sub-second part floored to 1/256 s)."""
        seconds, ns = divmod(unix_ns, 1_000_000_000)
        try:
            dt = (_EPOCH + timedelta(seconds=seconds)).astimezone(tz)
        except OverflowError:
            raise ValueError(f"{unix_ns} ns is beyond the years a Current Time can carry") from None
        return cls(GattDateTime.from_datetime(dt), dt.isoweekday(), ns // _NS_PER_FRACTION, adjust_reason)


def decode_current_time(data: bytes | bytearray) -> CurrentTime:
    """Decode a Current Time value or raise DecodeError."""
    raw = bytes(data)
    if len(raw) != CURRENT_TIME_SIZE:
        raise DecodeError(f"current time is {CURRENT_TIME_SIZE} bytes, not {len(raw)}")
    date_time = unpack_date_time(raw, 0)
    day_of_week, fractions, adjust = raw[DATE_TIME_SIZE:]
    if day_of_week > 7:
        raise DecodeError(f"current time day of week {day_of_week} is reserved")
    if adjust & ~_ADJUST_DEFINED:
        raise DecodeError(f"current time adjust reason uses reserved bits: 0x{adjust:02x}")
    return CurrentTime(date_time, day_of_week, fractions, AdjustReason(adjust))


def encode_current_time(value: CurrentTime) -> bytes:
    """Encode a Current Time (used by the simulator); ValueError for fields that do not fit."""
    if not 0 <= value.day_of_week <= 7:
        raise ValueError(f"day of week must be 0..7, not {value.day_of_week}")
    if not 0 <= value.fractions256 <= 255:
        raise ValueError(f"fractions256 must be 0..255, not {value.fractions256}")
    adjust = int(value.adjust_reason)
    if adjust & ~_ADJUST_DEFINED or adjust < 0:
        raise ValueError(f"adjust reason uses reserved bits: 0x{adjust:x}")
    return encode_date_time(value.date_time) + bytes([value.day_of_week, value.fractions256, adjust])
