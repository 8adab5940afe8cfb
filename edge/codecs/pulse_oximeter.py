"""Pulse Oximeter Service 0x1822: PLX Spot-check (0x2A5E, indicate) and Continuous (0x2A5F, notify) Measurement.

Layout (Bluetooth SIG PLXS 1.0, little-endian; SFLOAT and Date Time as in edge/codecs/sfloat.py):

PLX Continuous Measurement 0x2A5F
  flags u8: bit0 SpO2PR-Fast present, bit1 SpO2PR-Slow present, bit2 Measurement Status present,
            bit3 Device and Sensor Status present, bit4 Pulse Amplitude Index present; bits 5-7 reserved
  SpO2PR-Normal: SpO2 SFLOAT (%), PR SFLOAT (bpm)
  SpO2PR-Fast   (SpO2 SFLOAT, PR SFLOAT) if bit0
  SpO2PR-Slow   (SpO2 SFLOAT, PR SFLOAT) if bit1
  Measurement Status u16 if bit2
  Device and Sensor Status u24 if bit3
  Pulse Amplitude Index SFLOAT (%) if bit4

PLX Spot-check Measurement 0x2A5E
  flags u8: bit0 Timestamp present, bit1 Measurement Status present, bit2 Device and Sensor Status
            present, bit3 Pulse Amplitude Index present, bit4 device clock is not set; bits 5-7 reserved
  SpO2 SFLOAT (%), PR SFLOAT (bpm)
  Timestamp Date Time (7 bytes) if bit0
  Measurement Status u16 if bit1
  Device and Sensor Status u24 if bit2
  Pulse Amplitude Index SFLOAT if bit3

Measurement Status bits: 5 measurement ongoing, 6 early estimated data, 7 validated data, 8 fully
qualified data, 9 data from measurement storage, 10 data for demonstration, 11 data for testing,
12 calibration ongoing, 13 measurement unavailable, 14 questionable measurement detected,
15 invalid measurement detected; bits 0-4 reserved.

Device and Sensor Status bits: 0 extended display update ongoing, 1 equipment malfunction, 2 signal
processing irregularity, 3 inadequate signal, 4 poor signal, 5 low perfusion, 6 erratic signal,
7 non-pulsatile signal, 8 questionable pulse, 9 signal analysis ongoing, 10 sensor interference,
11 sensor unconnected to user, 12 unknown sensor connected, 13 sensor displaced, 14 sensor
malfunctioning, 15 sensor disconnected; bits 16-23 reserved. Bits 11, 13 and 15 together mean
"probe off" (SENSOR_OFF): the reading is not from a patient.

Reserved flag or status bits, a truncated field and trailing bytes are all DecodeError.
"""

from __future__ import annotations

import enum
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

PULSE_OXIMETER_SERVICE_UUID = "00001822-0000-1000-8000-00805f9b34fb"
PLX_SPOT_CHECK_MEASUREMENT_UUID = "00002a5e-0000-1000-8000-00805f9b34fb"
PLX_CONTINUOUS_MEASUREMENT_UUID = "00002a5f-0000-1000-8000-00805f9b34fb"
PLX_FEATURES_UUID = "00002a60-0000-1000-8000-00805f9b34fb"

_CONT_FAST = 0x01
_CONT_SLOW = 0x02
_CONT_STATUS = 0x04
_CONT_DEVICE_STATUS = 0x08
_CONT_PAI = 0x10

_SPOT_TIMESTAMP = 0x01
_SPOT_STATUS = 0x02
_SPOT_DEVICE_STATUS = 0x04
_SPOT_PAI = 0x08
_SPOT_CLOCK_NOT_SET = 0x10

_FLAGS_RESERVED = 0xE0


class PlxMeasurementStatus(enum.IntFlag):
    """Measurement Status (u16): how far the reading can be trusted."""

    MEASUREMENT_ONGOING = 1 << 5
    EARLY_ESTIMATED_DATA = 1 << 6
    VALIDATED_DATA = 1 << 7
    FULLY_QUALIFIED_DATA = 1 << 8
    DATA_FROM_MEASUREMENT_STORAGE = 1 << 9
    DATA_FOR_DEMONSTRATION = 1 << 10
    DATA_FOR_TESTING = 1 << 11
    CALIBRATION_ONGOING = 1 << 12
    MEASUREMENT_UNAVAILABLE = 1 << 13
    QUESTIONABLE_MEASUREMENT_DETECTED = 1 << 14
    INVALID_MEASUREMENT_DETECTED = 1 << 15


class PlxDeviceSensorStatus(enum.IntFlag):
    """Device and Sensor Status (u24; bits 16-23 reserved): signal quality and probe state."""

    EXTENDED_DISPLAY_UPDATE_ONGOING = 1 << 0
    EQUIPMENT_MALFUNCTION_DETECTED = 1 << 1
    SIGNAL_PROCESSING_IRREGULARITY_DETECTED = 1 << 2
    INADEQUATE_SIGNAL_DETECTED = 1 << 3
    POOR_SIGNAL_DETECTED = 1 << 4
    LOW_PERFUSION_DETECTED = 1 << 5
    ERRATIC_SIGNAL_DETECTED = 1 << 6
    NONPULSATILE_SIGNAL_DETECTED = 1 << 7
    QUESTIONABLE_PULSE_DETECTED = 1 << 8
    SIGNAL_ANALYSIS_ONGOING = 1 << 9
    SENSOR_INTERFERENCE_DETECTED = 1 << 10
    SENSOR_UNCONNECTED_TO_USER = 1 << 11
    UNKNOWN_SENSOR_CONNECTED = 1 << 12
    SENSOR_DISPLACED = 1 << 13
    SENSOR_MALFUNCTIONING = 1 << 14
    SENSOR_DISCONNECTED = 1 << 15


MEASUREMENT_STATUS_DEFINED = 0xFFE0
DEVICE_SENSOR_STATUS_DEFINED = 0xFFFF
SENSOR_OFF = (PlxDeviceSensorStatus.SENSOR_UNCONNECTED_TO_USER | PlxDeviceSensorStatus.SENSOR_DISPLACED
              | PlxDeviceSensorStatus.SENSOR_DISCONNECTED)
"""The Device and Sensor Status bits that mean the probe is not on a patient."""


@dataclass(frozen=True, slots=True)
class SpO2PR:
    """An SpO2 (%) and pulse rate (bpm) pair, each possibly a special SFLOAT (e.g. NaN while searching)."""

    spo2: SFloat
    pulse_rate: SFloat

    @property
    def spo2_percent(self) -> float | None:
        return self.spo2.number()

    @property
    def pulse_rate_bpm(self) -> float | None:
        return self.pulse_rate.number()


def _sensor_off(status: PlxDeviceSensorStatus | None) -> bool | None:
    return None if status is None else bool(status & SENSOR_OFF)


@dataclass(frozen=True, slots=True)
class PlxContinuousMeasurement:
    """One continuous notification; optional fields are None when the device did not send them."""

    normal: SpO2PR
    fast: SpO2PR | None = None
    slow: SpO2PR | None = None
    measurement_status: PlxMeasurementStatus | None = None
    device_sensor_status: PlxDeviceSensorStatus | None = None
    pulse_amplitude_index: SFloat | None = None

    @property
    def sensor_off(self) -> bool | None:
        """True if the probe is off/displaced/disconnected; None when the device sent no sensor status."""
        return _sensor_off(self.device_sensor_status)


@dataclass(frozen=True, slots=True)
class PlxSpotCheckMeasurement:
    """One spot-check indication; ``timestamp`` is the device's wall clock, unreliable if ``clock_not_set``."""

    reading: SpO2PR
    timestamp: GattDateTime | None = None
    measurement_status: PlxMeasurementStatus | None = None
    device_sensor_status: PlxDeviceSensorStatus | None = None
    pulse_amplitude_index: SFloat | None = None
    clock_not_set: bool = False

    @property
    def sensor_off(self) -> bool | None:
        """True if the probe is off/displaced/disconnected; None when the device sent no sensor status."""
        return _sensor_off(self.device_sensor_status)


class _Reader:
    """Bounds-checked sequential reads that fail only with DecodeError."""

    __slots__ = ("name", "pos", "raw")

    def __init__(self, raw: bytes, name: str) -> None:
        self.raw = raw
        self.name = name
        self.pos = 1

    def need(self, n: int, what: str) -> None:
        if len(self.raw) < self.pos + n:
            raise DecodeError(f"{self.name} truncated in {what}")

    def sfloat(self, what: str) -> SFloat:
        self.need(SFLOAT_SIZE, what)
        v = unpack_sfloat(self.raw, self.pos)
        self.pos += SFLOAT_SIZE
        return v

    def spo2pr(self, what: str) -> SpO2PR:
        return SpO2PR(self.sfloat(f"{what} SpO2"), self.sfloat(f"{what} pulse rate"))

    def measurement_status(self) -> PlxMeasurementStatus:
        self.need(2, "measurement status")
        v = self.raw[self.pos] | self.raw[self.pos + 1] << 8
        self.pos += 2
        if v & ~MEASUREMENT_STATUS_DEFINED:
            raise DecodeError(f"{self.name} measurement status uses reserved bits: 0x{v:04x}")
        return PlxMeasurementStatus(v)

    def device_sensor_status(self) -> PlxDeviceSensorStatus:
        self.need(3, "device and sensor status")
        v = self.raw[self.pos] | self.raw[self.pos + 1] << 8 | self.raw[self.pos + 2] << 16
        self.pos += 3
        if v & ~DEVICE_SENSOR_STATUS_DEFINED:
            raise DecodeError(f"{self.name} device and sensor status uses reserved bits: 0x{v:06x}")
        return PlxDeviceSensorStatus(v)

    def date_time(self) -> GattDateTime:
        self.need(DATE_TIME_SIZE, "timestamp")
        v = unpack_date_time(self.raw, self.pos)
        self.pos += DATE_TIME_SIZE
        return v

    def end(self) -> None:
        if self.pos != len(self.raw):
            raise DecodeError(f"{self.name} has {len(self.raw) - self.pos} trailing bytes")


def _flags(raw: bytes, name: str) -> int:
    if not raw:
        raise DecodeError(f"{name} is empty")
    if raw[0] & _FLAGS_RESERVED:
        raise DecodeError(f"{name} uses reserved flag bits: 0x{raw[0]:02x}")
    return raw[0]


def decode_plx_continuous_measurement(data: bytes | bytearray) -> PlxContinuousMeasurement:
    """Decode a PLX Continuous Measurement notification or raise DecodeError."""
    raw = bytes(data)
    name = "PLX continuous measurement"
    flags = _flags(raw, name)
    r = _Reader(raw, name)
    normal = r.spo2pr("SpO2PR-Normal")
    fast = r.spo2pr("SpO2PR-Fast") if flags & _CONT_FAST else None
    slow = r.spo2pr("SpO2PR-Slow") if flags & _CONT_SLOW else None
    status = r.measurement_status() if flags & _CONT_STATUS else None
    device = r.device_sensor_status() if flags & _CONT_DEVICE_STATUS else None
    pai = r.sfloat("pulse amplitude index") if flags & _CONT_PAI else None
    r.end()
    return PlxContinuousMeasurement(normal, fast, slow, status, device, pai)


def decode_plx_spot_check_measurement(data: bytes | bytearray) -> PlxSpotCheckMeasurement:
    """Decode a PLX Spot-check Measurement indication or raise DecodeError."""
    raw = bytes(data)
    name = "PLX spot-check measurement"
    flags = _flags(raw, name)
    r = _Reader(raw, name)
    reading = r.spo2pr("SpO2PR-Spot-check")
    timestamp = r.date_time() if flags & _SPOT_TIMESTAMP else None
    status = r.measurement_status() if flags & _SPOT_STATUS else None
    device = r.device_sensor_status() if flags & _SPOT_DEVICE_STATUS else None
    pai = r.sfloat("pulse amplitude index") if flags & _SPOT_PAI else None
    r.end()
    return PlxSpotCheckMeasurement(reading, timestamp, status, device, pai, bool(flags & _SPOT_CLOCK_NOT_SET))


def _status_bytes(status: PlxMeasurementStatus) -> bytes:
    v = int(status)
    if v & ~MEASUREMENT_STATUS_DEFINED or v < 0:
        raise ValueError(f"measurement status uses reserved bits: 0x{v:x}")
    return v.to_bytes(2, "little")


def _device_status_bytes(status: PlxDeviceSensorStatus) -> bytes:
    v = int(status)
    if v & ~DEVICE_SENSOR_STATUS_DEFINED or v < 0:
        raise ValueError(f"device and sensor status uses reserved bits: 0x{v:x}")
    return v.to_bytes(3, "little")


def _pair(p: SpO2PR) -> bytes:
    return encode_sfloat(p.spo2) + encode_sfloat(p.pulse_rate)


def encode_plx_continuous_measurement(m: PlxContinuousMeasurement) -> bytes:
    """Encode a continuous measurement as an oximeter would (used by the simulator)."""
    flags = 0
    out = bytearray([0]) + _pair(m.normal)
    if m.fast is not None:
        flags |= _CONT_FAST
        out += _pair(m.fast)
    if m.slow is not None:
        flags |= _CONT_SLOW
        out += _pair(m.slow)
    if m.measurement_status is not None:
        flags |= _CONT_STATUS
        out += _status_bytes(m.measurement_status)
    if m.device_sensor_status is not None:
        flags |= _CONT_DEVICE_STATUS
        out += _device_status_bytes(m.device_sensor_status)
    if m.pulse_amplitude_index is not None:
        flags |= _CONT_PAI
        out += encode_sfloat(m.pulse_amplitude_index)
    out[0] = flags
    return bytes(out)


def encode_plx_spot_check_measurement(m: PlxSpotCheckMeasurement) -> bytes:
    """Encode a spot-check measurement as an oximeter would (used by the simulator)."""
    flags = _SPOT_CLOCK_NOT_SET if m.clock_not_set else 0
    out = bytearray([0]) + _pair(m.reading)
    if m.timestamp is not None:
        flags |= _SPOT_TIMESTAMP
        out += encode_date_time(m.timestamp)
    if m.measurement_status is not None:
        flags |= _SPOT_STATUS
        out += _status_bytes(m.measurement_status)
    if m.device_sensor_status is not None:
        flags |= _SPOT_DEVICE_STATUS
        out += _device_status_bytes(m.device_sensor_status)
    if m.pulse_amplitude_index is not None:
        flags |= _SPOT_PAI
        out += encode_sfloat(m.pulse_amplitude_index)
    out[0] = flags
    return bytes(out)
