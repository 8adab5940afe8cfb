"""Polar Measurement Data (PMD) service: control point requests/responses, ECG and PPG data frames.

After Polar's Measurement Data specification (H10 and other straps), little-endian throughout.

  PMD service        fb005c80-02e7-f387-1cad-8acd2d8df0c8
  PMD control point  fb005c81-02e7-f387-1cad-8acd2d8df0c8  read, write, indicate
  PMD data           fb005c82-02e7-f387-1cad-8acd2d8df0c8  notify

Control point read (features): 0x0F, then 1..32 bitmap bytes of supported measurement types
  (bit n of bitmap byte k = measurement type 8k + n; ECG is bit 0 of the first byte).

Control point request (written by the client):
  op code u8 (0x01 get measurement settings, 0x02 start measurement, 0x03 stop measurement),
  measurement type u8 (0x00 ECG, 0x01 PPG, 0x02 ACC, 0x03 PPI, 0x05 gyro, 0x06 magnetometer),
  start only: settings, each  setting type u8, count u8, count values
    (0x00 sample rate u16 Hz, 0x01 resolution u16 bits, 0x02 range u16, 0x03 range u32 milliunits,
     0x04 channels u8, 0x05 factor float32 kept as its u32 bits).
  H10 ECG start: 02 00 | 00 01 82 00 (130 Hz) | 01 01 0e 00 (14 bits)

Control point response (indicated by the device):
  0xF0, op code u8, measurement type u8, error code u8 (0 success, see PmdError),
  then optionally: more-frames u8 (0 or 1), parameters. A successful get-settings or start
  response carries settings (same encoding as above; for get-settings each lists every
  value the device offers); other responses carry opaque parameters.

ECG data frame (notification):
  offset size field
  0      1    measurement type (0x00 ECG)
  1      8    timestamp u64, ns since 2000-01-01T00:00:00 UTC on the device clock, of the LAST sample
  9      1    frame type: 0x00 uncompressed; bit 7 set = delta-compressed (not supported: DecodeError)
  10     3*n  n >= 1 samples, int24, microvolts
  The timestamp must be below 2**63 (an int64) and the frame at most 512 bytes (the ATT maximum).

PPG data frame (notification; optical sensors such as Verity Sense and OH1 armbands):
  offset size field
  0      1    measurement type (0x01 PPG)
  1      8    timestamp u64, as for ECG (the LAST sample)
  9      1    frame type: 0x00 = samples of 4 channels (ppg0, ppg1, ppg2, ambient); other types
              (delta-compressed, other channel layouts) are not supported: DecodeError
  10     12*n n >= 1 samples, each 4 x int24 raw optical counts (ppg0, ppg1, ppg2, ambient)
  Sample rates seen: 55 Hz (Verity Sense), 135 and 176 Hz (OH1); start request
  02 01 | 00 01 37 00 (55 Hz) | 01 01 16 00 (22 bits) | 04 01 04 (4 channels).
"""

from __future__ import annotations

import enum
import math
import struct
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import numpy.typing as npt

from cardiogate.edge.codecs.errors import DecodeError

PMD_SERVICE_UUID = "fb005c80-02e7-f387-1cad-8acd2d8df0c8"
PMD_CONTROL_POINT_UUID = "fb005c81-02e7-f387-1cad-8acd2d8df0c8"
PMD_DATA_UUID = "fb005c82-02e7-f387-1cad-8acd2d8df0c8"

POLAR_EPOCH_OFFSET_S = 946_684_800
"""Seconds from the Unix epoch to 2000-01-01T00:00:00 UTC, Polar's epoch."""
POLAR_EPOCH_OFFSET_NS = POLAR_EPOCH_OFFSET_S * 1_000_000_000

RESPONSE_CODE = 0xF0
FEATURES_CODE = 0x0F
ECG_SAMPLE_RATE_HZ = 130
ECG_RESOLUTION_BITS = 14
ECG_FRAME_HEADER_SIZE = 10
MAX_FRAME_BYTES = 512
MAX_FEATURE_BITMAP_BYTES = 32  # measurement types are one byte: 0..255
MAX_ECG_SAMPLES = (MAX_FRAME_BYTES - ECG_FRAME_HEADER_SIZE) // 3  # 167
FRAME_TYPE_UNCOMPRESSED = 0x00
FRAME_TYPE_COMPRESSED_BIT = 0x80
PPG_SAMPLE_RATES_HZ = (55, 135, 176)
PPG_SAMPLE_RATE_HZ = 55
PPG_RESOLUTION_BITS = 22
PPG_CHANNELS = 4  # ppg0, ppg1, ppg2, ambient
MAX_PPG_SAMPLES = (MAX_FRAME_BYTES - ECG_FRAME_HEADER_SIZE) // (3 * PPG_CHANNELS)  # 41
_INT24_MIN = -(1 << 23)
_INT24_MAX = (1 << 23) - 1
_TIMESTAMP_LIMIT = 1 << 63


class PmdOpCode(enum.IntEnum):
    GET_MEASUREMENT_SETTINGS = 0x01
    START_MEASUREMENT = 0x02
    STOP_MEASUREMENT = 0x03


class PmdMeasurementType(enum.IntEnum):
    ECG = 0x00
    PPG = 0x01
    ACC = 0x02
    PPI = 0x03
    GYRO = 0x05
    MAGNETOMETER = 0x06


class PmdSettingType(enum.IntEnum):
    SAMPLE_RATE = 0x00
    RESOLUTION = 0x01
    RANGE = 0x02
    RANGE_MILLIUNIT = 0x03
    CHANNELS = 0x04
    FACTOR = 0x05


_SETTING_SIZE = {
    PmdSettingType.SAMPLE_RATE: 2,
    PmdSettingType.RESOLUTION: 2,
    PmdSettingType.RANGE: 2,
    PmdSettingType.RANGE_MILLIUNIT: 4,
    PmdSettingType.CHANNELS: 1,
    PmdSettingType.FACTOR: 4,
}
_SETTING_FORMAT = {1: "B", 2: "H", 4: "I"}


class PmdError(enum.IntEnum):
    """Control point response error codes."""

    SUCCESS = 0
    INVALID_OP_CODE = 1
    INVALID_MEASUREMENT_TYPE = 2
    NOT_SUPPORTED = 3
    INVALID_LENGTH = 4
    INVALID_PARAMETER = 5
    ALREADY_IN_STATE = 6
    INVALID_RESOLUTION = 7
    INVALID_SAMPLE_RATE = 8
    INVALID_RANGE = 9
    INVALID_MTU = 10
    INVALID_NUMBER_OF_CHANNELS = 11
    INVALID_STATE = 12
    DEVICE_IN_CHARGER = 13


_SETTINGS_BEARING = frozenset({PmdOpCode.GET_MEASUREMENT_SETTINGS, PmdOpCode.START_MEASUREMENT})


@dataclass(frozen=True, slots=True)
class PmdSetting:
    """One setting: in a start request the single chosen value, in a settings response every offered value."""

    setting_type: PmdSettingType
    values: tuple[int, ...]

    @property
    def factors(self) -> tuple[float, ...]:
        """FACTOR values as the float32 numbers their bits encode; ValueError for another setting type."""
        if self.setting_type != PmdSettingType.FACTOR:
            raise ValueError(f"{self.setting_type.name} values are integers, not factors")
        return tuple(struct.unpack("<f", struct.pack("<I", v))[0] for v in self.values)


@dataclass(frozen=True, slots=True)
class PmdRequest:
    """A control point write; ``measurement_type`` is an int so types unknown to us survive a round trip."""

    op_code: PmdOpCode
    measurement_type: int = PmdMeasurementType.ECG
    settings: tuple[PmdSetting, ...] = ()


@dataclass(frozen=True, slots=True)
class PmdResponse:
    """A control point indication. ``error_code`` stays an int so new firmware codes are not a decode error."""

    op_code: PmdOpCode
    measurement_type: int
    error_code: int = PmdError.SUCCESS
    more_frames: bool = False
    settings: tuple[PmdSetting, ...] = ()
    parameters: bytes = b""

    @property
    def ok(self) -> bool:
        return self.error_code == PmdError.SUCCESS

    @property
    def error(self) -> PmdError | None:
        """The error code by name; None for a code this codec does not know."""
        try:
            return PmdError(self.error_code)
        except ValueError:
            return None

    def setting(self, setting_type: PmdSettingType) -> PmdSetting | None:
        return next((s for s in self.settings if s.setting_type == setting_type), None)


@dataclass(frozen=True, slots=True)
class PmdFeatures:
    """The measurement types a device offers (read from the control point)."""

    measurement_types: frozenset[int]

    def supports(self, measurement_type: int) -> bool:
        return measurement_type in self.measurement_types


@dataclass(frozen=True, slots=True)
class PolarEcgFrame:
    """One ECG notification. ``timestamp_ns`` is Polar time (ns since 2000) of the LAST sample."""

    timestamp_ns: int
    samples_uv: npt.NDArray[np.int32]

    @property
    def timestamp_unix_ns(self) -> int:
        return polar_to_unix_ns(self.timestamp_ns)


@dataclass(frozen=True, slots=True)
class PolarPpgFrame:
    """One PPG notification: ``samples`` is (n, 4) raw counts, columns ppg0, ppg1, ppg2, ambient.

    ``timestamp_ns`` is Polar time of the LAST sample, as for ECG.
    """

    timestamp_ns: int
    samples: npt.NDArray[np.int32]

    @property
    def sample_count(self) -> int:
        return int(np.asarray(self.samples).shape[0])

    @property
    def ppg(self) -> npt.NDArray[np.int32]:
        """The three optical channels, (n, 3)."""
        return np.asarray(self.samples)[:, :3]

    @property
    def ambient(self) -> npt.NDArray[np.int32]:
        """The ambient-light channel, (n,)."""
        return np.asarray(self.samples)[:, 3]

    @property
    def timestamp_unix_ns(self) -> int:
        return polar_to_unix_ns(self.timestamp_ns)


def ppg_start_request(sample_rate_hz: int = PPG_SAMPLE_RATE_HZ, resolution_bits: int = PPG_RESOLUTION_BITS,
                      channels: int = PPG_CHANNELS) -> PmdRequest:
    """The start-PPG request a client writes (Verity Sense: 55 Hz, 22 bits, 4 channels)."""
    return PmdRequest(PmdOpCode.START_MEASUREMENT, PmdMeasurementType.PPG, (
        PmdSetting(PmdSettingType.SAMPLE_RATE, (sample_rate_hz,)),
        PmdSetting(PmdSettingType.RESOLUTION, (resolution_bits,)),
        PmdSetting(PmdSettingType.CHANNELS, (channels,)),
    ))


def ecg_start_request(sample_rate_hz: int = ECG_SAMPLE_RATE_HZ, resolution_bits: int = ECG_RESOLUTION_BITS
                      ) -> PmdRequest:
    """The start-ECG request a client writes (H10: 130 Hz, 14 bits)."""
    return PmdRequest(PmdOpCode.START_MEASUREMENT, PmdMeasurementType.ECG, (
        PmdSetting(PmdSettingType.SAMPLE_RATE, (sample_rate_hz,)),
        PmdSetting(PmdSettingType.RESOLUTION, (resolution_bits,)),
    ))


# -- settings ------------------------------------------------------------------------------------

def decode_pmd_settings(data: bytes | bytearray) -> tuple[PmdSetting, ...]:
    """Decode a settings list (empty bytes = no settings) or raise DecodeError."""
    raw = bytes(data)
    out: list[PmdSetting] = []
    seen: set[int] = set()
    pos = 0
    while pos < len(raw):
        if len(raw) < pos + 2:
            raise DecodeError(f"PMD settings truncated in the header of a setting at offset {pos}")
        kind, count = raw[pos], raw[pos + 1]
        if kind not in _SETTING_SIZE:
            raise DecodeError(f"PMD setting type 0x{kind:02x} is unknown, so its size is too")
        if kind in seen:
            raise DecodeError(f"PMD setting type 0x{kind:02x} appears twice")
        if count == 0:
            raise DecodeError(f"PMD setting type 0x{kind:02x} has no values")
        size = _SETTING_SIZE[PmdSettingType(kind)]
        pos += 2
        if len(raw) < pos + size * count:
            raise DecodeError(f"PMD setting type 0x{kind:02x} truncated: {count} values of {size} bytes announced")
        values = struct.unpack_from(f"<{count}{_SETTING_FORMAT[size]}", raw, pos)
        pos += size * count
        seen.add(kind)
        out.append(PmdSetting(PmdSettingType(kind), tuple(values)))
    return tuple(out)


def encode_pmd_settings(settings: tuple[PmdSetting, ...]) -> bytes:
    """ValueError for a duplicate type, 0 or more than 255 values, or a value that does not fit its field."""
    out = bytearray()
    seen: set[int] = set()
    for s in settings:
        kind = PmdSettingType(s.setting_type)
        if kind in seen:
            raise ValueError(f"PMD setting {kind.name} given twice")
        seen.add(kind)
        if not 1 <= len(s.values) <= 255:
            raise ValueError(f"PMD setting {kind.name} needs 1..255 values, not {len(s.values)}")
        size = _SETTING_SIZE[kind]
        for v in s.values:
            if not 0 <= v < 1 << (8 * size):
                raise ValueError(f"PMD setting {kind.name} value {v} does not fit {size} bytes")
        out += bytes([kind, len(s.values)]) + struct.pack(f"<{len(s.values)}{_SETTING_FORMAT[size]}", *s.values)
    return bytes(out)


# -- control point -------------------------------------------------------------------------------

def _op_code(value: int, what: str) -> PmdOpCode:
    try:
        return PmdOpCode(value)
    except ValueError:
        raise DecodeError(f"PMD {what} op code 0x{value:02x} is unknown") from None


def decode_pmd_request(data: bytes | bytearray) -> PmdRequest:
    """Decode a control point write (the simulated strap's side) or raise DecodeError.

    A strap answers an unknown op code with INVALID_OP_CODE; the caller has the op code in ``data[0]``.
    """
    raw = bytes(data)
    if len(raw) < 2:
        raise DecodeError(f"PMD request too short: {len(raw)} bytes")
    op = _op_code(raw[0], "request")
    if op != PmdOpCode.START_MEASUREMENT:
        if len(raw) != 2:
            raise DecodeError(f"PMD {op.name} request has {len(raw) - 2} trailing bytes")
        return PmdRequest(op, raw[1])
    return PmdRequest(op, raw[1], decode_pmd_settings(raw[2:]))


def _byte(value: int, what: str) -> int:
    if not 0 <= value <= 0xFF:
        raise ValueError(f"PMD {what} must be 0..255, not {value}")
    return value


def encode_pmd_request(request: PmdRequest) -> bytes:
    """Encode a control point write (the gateway's side); only a start request carries settings."""
    op = PmdOpCode(request.op_code)
    if request.settings and op != PmdOpCode.START_MEASUREMENT:
        raise ValueError(f"a PMD {op.name} request carries no settings")
    return bytes([op, _byte(request.measurement_type, "measurement type")]) + encode_pmd_settings(request.settings)


def decode_pmd_response(data: bytes | bytearray) -> PmdResponse:
    """Decode a control point indication (the gateway's side) or raise DecodeError."""
    raw = bytes(data)
    if len(raw) < 4:
        raise DecodeError(f"PMD response too short: {len(raw)} bytes")
    if raw[0] != RESPONSE_CODE:
        raise DecodeError(f"PMD response starts with 0x{raw[0]:02x}, not 0x{RESPONSE_CODE:02x}")
    op = _op_code(raw[1], "response")
    mtype, code = raw[2], raw[3]
    more = False
    if len(raw) > 4:
        if raw[4] > 1:
            raise DecodeError(f"PMD response more-frames byte is 0x{raw[4]:02x}, not 0 or 1")
        more = raw[4] == 1
    params = raw[5:]
    if code == PmdError.SUCCESS and op in _SETTINGS_BEARING:
        return PmdResponse(op, mtype, code, more, decode_pmd_settings(params))
    return PmdResponse(op, mtype, code, more, (), params)


def encode_pmd_response(response: PmdResponse) -> bytes:
    """Encode a control point indication (the simulated strap's side).

    A success always carries the more-frames byte (as a strap sends it); an error only when
    there is more to say. ValueError for settings where the decoder would not read them as such.
    """
    op = PmdOpCode(response.op_code)
    code = _byte(response.error_code, "error code")
    carries_settings = code == PmdError.SUCCESS and op in _SETTINGS_BEARING
    if response.settings and not carries_settings:
        raise ValueError(f"a PMD {op.name} response with error code {code} carries no settings")
    if response.parameters and carries_settings:
        raise ValueError(f"a successful PMD {op.name} response carries settings, not raw parameters")
    out = bytearray([RESPONSE_CODE, op, _byte(response.measurement_type, "measurement type"), code])
    if code == PmdError.SUCCESS or response.more_frames or response.settings or response.parameters:
        out.append(1 if response.more_frames else 0)
        out += encode_pmd_settings(response.settings) + bytes(response.parameters)
    return bytes(out)


def decode_pmd_features(data: bytes | bytearray) -> PmdFeatures:
    """Decode the control point's read value or raise DecodeError."""
    raw = bytes(data)
    if len(raw) < 2:
        raise DecodeError(f"PMD features too short: {len(raw)} bytes")
    if len(raw) > 1 + MAX_FEATURE_BITMAP_BYTES:
        raise DecodeError(f"PMD features carry {len(raw) - 1} bitmap bytes, more than {MAX_FEATURE_BITMAP_BYTES}")
    if raw[0] != FEATURES_CODE:
        raise DecodeError(f"PMD features start with 0x{raw[0]:02x}, not 0x{FEATURES_CODE:02x}")
    types = frozenset(8 * k + bit for k, b in enumerate(raw[1:]) for bit in range(8) if b >> bit & 1)
    return PmdFeatures(types)


def encode_pmd_features(features: PmdFeatures) -> bytes:
    """Encode the features bitmap in as few bytes as hold the highest type (at least one)."""
    types = features.measurement_types
    if any(not 0 <= t <= 0xFF for t in types):
        raise ValueError(f"PMD measurement types must be 0..255: {sorted(types)}")
    bitmap = bytearray(max(types, default=0) // 8 + 1)
    for t in types:
        bitmap[t // 8] |= 1 << (t % 8)
    return bytes([FEATURES_CODE]) + bytes(bitmap)


# -- ECG data ------------------------------------------------------------------------------------

def decode_polar_ecg_frame(data: bytes | bytearray) -> PolarEcgFrame:
    """Decode a PMD data notification carrying uncompressed ECG or raise DecodeError."""
    raw = bytes(data)
    if len(raw) < ECG_FRAME_HEADER_SIZE:
        raise DecodeError(f"PMD ECG frame too short: {len(raw)} bytes")
    if len(raw) > MAX_FRAME_BYTES:
        raise DecodeError(f"PMD ECG frame of {len(raw)} bytes exceeds {MAX_FRAME_BYTES}")
    if raw[0] != PmdMeasurementType.ECG:
        raise DecodeError(f"PMD frame carries measurement type 0x{raw[0]:02x}, not ECG")
    (ts,) = struct.unpack_from("<Q", raw, 1)
    if ts >= _TIMESTAMP_LIMIT:
        raise DecodeError(f"PMD ECG frame timestamp {ts} is beyond 2**63 ns")
    frame_type = raw[9]
    if frame_type & FRAME_TYPE_COMPRESSED_BIT:
        raise DecodeError(f"PMD ECG frame type 0x{frame_type:02x} is delta-compressed, which is not supported")
    if frame_type != FRAME_TYPE_UNCOMPRESSED:
        raise DecodeError(f"PMD ECG frame type 0x{frame_type:02x} is not supported")
    body = len(raw) - ECG_FRAME_HEADER_SIZE
    if body == 0:
        raise DecodeError("PMD ECG frame carries no samples")
    if body % 3:
        raise DecodeError(f"PMD ECG frame has {body} sample bytes, not a multiple of 3")
    b = np.frombuffer(raw, dtype=np.uint8, offset=ECG_FRAME_HEADER_SIZE).reshape(-1, 3).astype(np.int32)
    v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
    samples = (v ^ 0x800000) - 0x800000
    return PolarEcgFrame(ts, samples.astype(np.int32))


def encode_polar_ecg_frame(frame: PolarEcgFrame) -> bytes:
    """Encode an ECG frame as a strap would (used by the simulator); ValueError for what does not fit."""
    s = np.asarray(frame.samples_uv)
    n = len(s)
    if not 1 <= n <= MAX_ECG_SAMPLES:
        raise ValueError(f"a PMD ECG frame carries 1..{MAX_ECG_SAMPLES} samples, not {n}")
    if not 0 <= frame.timestamp_ns < _TIMESTAMP_LIMIT:
        raise ValueError(f"PMD timestamp must be 0..2**63-1 ns, not {frame.timestamp_ns}")
    s64 = s.astype(np.int64)
    if s64.min() < _INT24_MIN or s64.max() > _INT24_MAX:
        raise ValueError("PMD ECG samples must fit a signed 24-bit integer")
    le = s64.astype("<i4").view(np.uint8).reshape(-1, 4)[:, :3]
    return struct.pack("<BQB", PmdMeasurementType.ECG, frame.timestamp_ns, FRAME_TYPE_UNCOMPRESSED) + le.tobytes()


# -- PPG data ------------------------------------------------------------------------------------

def _int24(raw: bytes, offset: int) -> npt.NDArray[np.int32]:
    b = np.frombuffer(raw, dtype=np.uint8, offset=offset).reshape(-1, 3).astype(np.int32)
    v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
    out: npt.NDArray[np.int32] = ((v ^ 0x800000) - 0x800000).astype(np.int32)
    return out


def _le_int24(values: npt.NDArray[np.int64]) -> bytes:
    if values.size and (values.min() < _INT24_MIN or values.max() > _INT24_MAX):
        raise ValueError("PMD samples must fit a signed 24-bit integer")
    return values.astype("<i4").view(np.uint8).reshape(-1, 4)[:, :3].tobytes()


def decode_polar_ppg_frame(data: bytes | bytearray) -> PolarPpgFrame:
    """Decode a PMD data notification carrying uncompressed 4-channel PPG or raise DecodeError."""
    raw = bytes(data)
    if len(raw) < ECG_FRAME_HEADER_SIZE:
        raise DecodeError(f"PMD PPG frame too short: {len(raw)} bytes")
    if len(raw) > MAX_FRAME_BYTES:
        raise DecodeError(f"PMD PPG frame of {len(raw)} bytes exceeds {MAX_FRAME_BYTES}")
    if raw[0] != PmdMeasurementType.PPG:
        raise DecodeError(f"PMD frame carries measurement type 0x{raw[0]:02x}, not PPG")
    (ts,) = struct.unpack_from("<Q", raw, 1)
    if ts >= _TIMESTAMP_LIMIT:
        raise DecodeError(f"PMD PPG frame timestamp {ts} is beyond 2**63 ns")
    frame_type = raw[9]
    if frame_type & FRAME_TYPE_COMPRESSED_BIT:
        raise DecodeError(f"PMD PPG frame type 0x{frame_type:02x} is delta-compressed, which is not supported")
    if frame_type != FRAME_TYPE_UNCOMPRESSED:
        raise DecodeError(f"PMD PPG frame type 0x{frame_type:02x} is not supported")
    body = len(raw) - ECG_FRAME_HEADER_SIZE
    if body == 0:
        raise DecodeError("PMD PPG frame carries no samples")
    if body % (3 * PPG_CHANNELS):
        raise DecodeError(f"PMD PPG frame has {body} sample bytes, not a multiple of {3 * PPG_CHANNELS}")
    return PolarPpgFrame(ts, _int24(raw, ECG_FRAME_HEADER_SIZE).reshape(-1, PPG_CHANNELS))


def encode_polar_ppg_frame(frame: PolarPpgFrame) -> bytes:
    """Encode a PPG frame as an optical sensor would (used by the simulator); ValueError for what does not fit."""
    s = np.asarray(frame.samples)
    if s.ndim != 2 or s.shape[1] != PPG_CHANNELS:
        raise ValueError(f"PMD PPG samples must be (n, {PPG_CHANNELS}), not {s.shape}")
    if not 1 <= s.shape[0] <= MAX_PPG_SAMPLES:
        raise ValueError(f"a PMD PPG frame carries 1..{MAX_PPG_SAMPLES} samples, not {s.shape[0]}")
    if not 0 <= frame.timestamp_ns < _TIMESTAMP_LIMIT:
        raise ValueError(f"PMD timestamp must be 0..2**63-1 ns, not {frame.timestamp_ns}")
    header = struct.pack("<BQB", PmdMeasurementType.PPG, frame.timestamp_ns, FRAME_TYPE_UNCOMPRESSED)
    return header + _le_int24(s.astype(np.int64).reshape(-1))


def pmd_frame_type(data: bytes | bytearray) -> int:
    """The measurement type a PMD data notification carries (its first byte); DecodeError when empty."""
    if not data:
        raise DecodeError("PMD data notification is empty")
    return int(data[0])


# -- time ----------------------------------------------------------------------------------------

def polar_to_unix_ns(polar_ns: int) -> int:
    """Polar time (ns since 2000-01-01 UTC) to ns since the Unix epoch."""
    return polar_ns + POLAR_EPOCH_OFFSET_NS


def unix_to_polar_ns(unix_ns: int) -> int:
    """Unix ns to Polar time; ValueError before 2000, which Polar time cannot express."""
    if unix_ns < POLAR_EPOCH_OFFSET_NS:
        raise ValueError(f"{unix_ns} ns is before 2000-01-01, Polar's epoch")
    return unix_ns - POLAR_EPOCH_OFFSET_NS


def _check_rate(sample_rate_hz: float) -> Fraction:
    if not (math.isfinite(sample_rate_hz) and sample_rate_hz > 0):
        raise ValueError(f"sample rate must be a positive number of Hz, not {sample_rate_hz}")
    return Fraction(sample_rate_hz)


def _count(frame: PolarEcgFrame | PolarPpgFrame) -> int:
    return frame.sample_count if isinstance(frame, PolarPpgFrame) else len(frame.samples_uv)


def ecg_sample_times_ns(frame: PolarEcgFrame | PolarPpgFrame, sample_rate_hz: float) -> npt.NDArray[np.int64]:
    """Each sample's device time in Polar ns: the last is the frame's timestamp, the rest 1/fs apart before it."""
    fs = _check_rate(sample_rate_hz)
    n = _count(frame)
    times = [frame.timestamp_ns - round(Fraction((n - 1 - i) * 1_000_000_000) / fs) for i in range(n)]
    try:
        return np.array(times, dtype=np.int64)
    except OverflowError:
        raise ValueError(f"sample times at {sample_rate_hz} Hz do not fit int64 nanoseconds") from None


def first_sample_time_ns(frame: PolarEcgFrame | PolarPpgFrame, sample_rate_hz: float) -> int:
    """Device time (Polar ns) of the frame's first sample (ECG or PPG): timestamp - (n - 1) / fs."""
    fs = _check_rate(sample_rate_hz)
    return frame.timestamp_ns - round(Fraction((_count(frame) - 1) * 1_000_000_000) / fs)
