"""Field types shared by the health profiles: IEEE 11073-20601 SFLOAT and the GATT Date Time.

SFLOAT (2 bytes, little-endian uint16 word):
  bits 15-12 exponent, 4-bit two's complement (-8..7)
  bits 11-0  mantissa, 12-bit two's complement (-2048..2047)
  value = mantissa * 10**exponent
  special words (exponent 0): 0x07FF NaN, 0x0800 NRes (not at this resolution),
  0x07FE +INFINITY, 0x0802 -INFINITY, 0x0801 reserved.
  The mantissas of the special words (2046, 2047, -2048, -2047, -2046) with a non-zero
  exponent are not numbers we trust either: they decode as RESERVED (value NaN), and the
  encoder never writes them, so numbers always have a mantissa in -2045..2045.

Date Time (GATT 0x2A08, 7 bytes, little-endian):
  offset size field
  0      2    year (1582..9999, 0 = unknown)
  2      1    month (1..12, 0 = unknown)
  3      1    day (1..31 and valid for the month, 0 = unknown)
  4      1    hours (0..23)
  5      1    minutes (0..59)
  6      1    seconds (0..59)
  It carries no time zone: it is the device's wall clock.
"""

from __future__ import annotations

import calendar
import enum
import math
import struct
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from decimal import ROUND_HALF_UP, Decimal

from cardiogate.edge.codecs.errors import DecodeError

SFLOAT_SIZE = 2
DATE_TIME_SIZE = 7
MANTISSA_MAX = 2045
EXPONENT_MIN = -8
EXPONENT_MAX = 7

_U16 = struct.Struct("<H")
_DATE_TIME = struct.Struct("<HBBBBB")


class SFloatSpecial(enum.Enum):
    """The non-numeric SFLOAT words; the value is the word as sent."""

    NAN = 0x07FF
    NRES = 0x0800
    POSITIVE_INFINITY = 0x07FE
    NEGATIVE_INFINITY = 0x0802
    RESERVED = 0x0801


_SPECIAL_MANTISSAS = frozenset({2046, 2047, -2048, -2047, -2046})


@dataclass(frozen=True, slots=True)
class SFloat:
    """An SFLOAT kept as its 16-bit word, so 97.5 and 97.50 stay distinct and NaN compares equal to itself."""

    raw: int

    def __post_init__(self) -> None:
        if not 0 <= self.raw <= 0xFFFF:
            raise ValueError(f"an SFLOAT is a 16-bit word, not {self.raw}")

    def __repr__(self) -> str:
        special = self.special
        shown = special.name if special is not None else f"{self.mantissa}e{self.exponent}"
        return f"SFloat(raw=0x{self.raw:04X}, {shown})"

    @property
    def exponent(self) -> int:
        e = self.raw >> 12
        return e - 16 if e >= 8 else e

    @property
    def mantissa(self) -> int:
        m = self.raw & 0x0FFF
        return m - 0x1000 if m >= 0x800 else m

    @property
    def special(self) -> SFloatSpecial | None:
        """Which special value this is; None for a number. Special mantissas with an exponent are RESERVED."""
        if self.raw & 0xF000 == 0 and self.raw in _SPECIAL_WORDS:
            return SFloatSpecial(self.raw)
        if self.mantissa in _SPECIAL_MANTISSAS:
            return SFloatSpecial.RESERVED
        return None

    @property
    def is_number(self) -> bool:
        return self.special is None

    @property
    def value(self) -> float:
        """The value as a float: NaN for NaN, NRes and reserved words, +-inf for the infinities."""
        special = self.special
        if special is None:
            return _to_float(self.mantissa, self.exponent)
        if special is SFloatSpecial.POSITIVE_INFINITY:
            return math.inf
        if special is SFloatSpecial.NEGATIVE_INFINITY:
            return -math.inf
        return math.nan

    def number(self) -> float | None:
        """The value if it is a finite number, else None: what the gateway may store or alarm on."""
        if self.special is None:
            return _to_float(self.mantissa, self.exponent)
        return None

    @classmethod
    def from_parts(cls, mantissa: int, exponent: int) -> SFloat:
        """The number mantissa * 10**exponent; ValueError outside -2045..2045 / -8..7."""
        if not -MANTISSA_MAX <= mantissa <= MANTISSA_MAX:
            raise ValueError(f"SFLOAT mantissa {mantissa} is outside -{MANTISSA_MAX}..{MANTISSA_MAX}")
        if not EXPONENT_MIN <= exponent <= EXPONENT_MAX:
            raise ValueError(f"SFLOAT exponent {exponent} is outside {EXPONENT_MIN}..{EXPONENT_MAX}")
        return cls(((exponent & 0x0F) << 12) | (mantissa & 0x0FFF))

    @classmethod
    def of_special(cls, special: SFloatSpecial) -> SFloat:
        return cls(special.value)


_SPECIAL_WORDS = frozenset(s.value for s in SFloatSpecial)

SFLOAT_NAN = SFloat(SFloatSpecial.NAN.value)
SFLOAT_NRES = SFloat(SFloatSpecial.NRES.value)
SFLOAT_POSITIVE_INFINITY = SFloat(SFloatSpecial.POSITIVE_INFINITY.value)
SFLOAT_NEGATIVE_INFINITY = SFloat(SFloatSpecial.NEGATIVE_INFINITY.value)


def _to_float(mantissa: int, exponent: int) -> float:
    # Dividing by an exact power of ten gives the float nearest the decimal (97.5, not 97.50000000000001).
    return mantissa * 10.0**exponent if exponent >= 0 else mantissa / 10.0**-exponent


def sfloat_from_float(value: float, decimals: int = 1) -> SFloat:
    """The SFLOAT nearest ``value`` with ``decimals`` digits after the point (ties away from zero).

    If the mantissa would not fit, precision is dropped a digit at a time (2500.0 with one
    decimal becomes 250e1). NaN and the infinities map to the special words. ValueError when
    the magnitude is beyond 2045e7 or ``decimals`` is outside -7..8.
    """
    if math.isnan(value):
        return SFLOAT_NAN
    if math.isinf(value):
        return SFLOAT_POSITIVE_INFINITY if value > 0 else SFLOAT_NEGATIVE_INFINITY
    exponent = -decimals
    if not EXPONENT_MIN <= exponent <= EXPONENT_MAX:
        raise ValueError(f"an SFLOAT carries -7..8 decimals, not {decimals}")
    exact = Decimal(repr(value))
    while exponent <= EXPONENT_MAX:
        mantissa = int(exact.scaleb(-exponent).to_integral_value(rounding=ROUND_HALF_UP))
        if -MANTISSA_MAX <= mantissa <= MANTISSA_MAX:
            return SFloat.from_parts(mantissa, exponent)
        exponent += 1
    raise ValueError(f"{value} is too large for an SFLOAT")


def unpack_sfloat(data: bytes, offset: int) -> SFloat:
    """Read an SFLOAT embedded in a characteristic at ``offset``; DecodeError if it is cut short."""
    if len(data) < offset + SFLOAT_SIZE:
        raise DecodeError(f"SFLOAT at offset {offset} is cut short: {len(data)} bytes")
    return SFloat(_U16.unpack_from(data, offset)[0])


def decode_sfloat(data: bytes | bytearray) -> SFloat:
    """Decode exactly one SFLOAT (a characteristic or descriptor that is a bare SFLOAT)."""
    raw = bytes(data)
    if len(raw) != SFLOAT_SIZE:
        raise DecodeError(f"an SFLOAT is 2 bytes, not {len(raw)}")
    return unpack_sfloat(raw, 0)


def encode_sfloat(value: SFloat) -> bytes:
    return _U16.pack(value.raw)


@dataclass(frozen=True, slots=True)
class GattDateTime:
    """A GATT Date Time: the device's wall clock; year, month and day may be 0 (unknown)."""

    year: int
    month: int
    day: int
    hours: int = 0
    minutes: int = 0
    seconds: int = 0

    def __post_init__(self) -> None:
        problem = _date_time_problem(self.year, self.month, self.day, self.hours, self.minutes, self.seconds)
        if problem:
            raise ValueError(problem)

    @property
    def date_known(self) -> bool:
        return self.year != 0 and self.month != 0 and self.day != 0

    def to_datetime(self, tz: tzinfo | None = UTC) -> datetime | None:
        """The moment in zone ``tz`` (the device's zone; None for a naive datetime), or None if the date is unknown."""
        if not self.date_known:
            return None
        return datetime(self.year, self.month, self.day, self.hours, self.minutes, self.seconds, tzinfo=tz)

    def to_unix_ns(self, tz: tzinfo = UTC) -> int | None:
        dt = self.to_datetime(tz)
        if dt is None:
            return None
        return calendar.timegm(dt.utctimetuple()) * 1_000_000_000

    @classmethod
    def from_datetime(cls, dt: datetime) -> GattDateTime:
        """The wall-clock fields of ``dt`` (its zone is not converted; sub-seconds are dropped)."""
        return cls(dt.year, dt.month, dt.day, dt.hour, dt.minute, dt.second)


def _date_time_problem(year: int, month: int, day: int, hours: int, minutes: int, seconds: int) -> str | None:
    if year != 0 and not 1582 <= year <= 9999:
        return f"Date Time year {year} is outside 1582..9999"
    if not 0 <= month <= 12:
        return f"Date Time month {month} is outside 1..12"
    # With an unknown year, 29 February is allowed (2000 was a leap year).
    last = calendar.monthrange(year or 2000, month)[1] if month else 31
    if not 0 <= day <= last:
        return f"Date Time day {day} is not a day of month {month} of year {year}"
    if not 0 <= hours <= 23:
        return f"Date Time hours {hours} is outside 0..23"
    if not 0 <= minutes <= 59:
        return f"Date Time minutes {minutes} is outside 0..59"
    if not 0 <= seconds <= 59:
        return f"Date Time seconds {seconds} is outside 0..59"
    return None


def unpack_date_time(data: bytes, offset: int) -> GattDateTime:
    """Read a Date Time embedded at ``offset``; DecodeError if cut short or a field is out of range."""
    if len(data) < offset + DATE_TIME_SIZE:
        raise DecodeError(f"Date Time at offset {offset} is cut short: {len(data)} bytes")
    fields = _DATE_TIME.unpack_from(data, offset)
    problem = _date_time_problem(*fields)
    if problem:
        raise DecodeError(problem)
    return GattDateTime(*fields)


def decode_date_time(data: bytes | bytearray) -> GattDateTime:
    """Decode a bare Date Time characteristic (0x2A08)."""
    raw = bytes(data)
    if len(raw) != DATE_TIME_SIZE:
        raise DecodeError(f"a Date Time is 7 bytes, not {len(raw)}")
    return unpack_date_time(raw, 0)


def encode_date_time(value: GattDateTime) -> bytes:
    return _DATE_TIME.pack(value.year, value.month, value.day, value.hours, value.minutes, value.seconds)
