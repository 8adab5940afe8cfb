"""GATT codecs beyond heart rate: SFLOAT/Date Time, BSL, PLX, blood pressure, battery, DIS, CTS, Polar PMD.

Hand-written bytes per field and flag, strict rejection, and hypothesis round trips. Heart Rate
Measurement and the cardiogate ECG waveform already have round trips in their own test files.
"""

from __future__ import annotations

import math
import struct
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from cardiogate.edge.codecs.battery import decode_battery_level, encode_battery_level
from cardiogate.edge.codecs.blood_pressure import (
    MMHG_PER_KPA,
    BloodPressureMeasurement,
    BloodPressureStatus,
    PressureUnit,
    PulseRateRange,
    decode_blood_pressure_measurement,
    encode_blood_pressure_measurement,
)
from cardiogate.edge.codecs.body_sensor_location import (
    BodySensorLocation,
    decode_body_sensor_location,
    encode_body_sensor_location,
)
from cardiogate.edge.codecs.current_time import AdjustReason, CurrentTime, decode_current_time, encode_current_time
from cardiogate.edge.codecs.device_information import (
    DIS_STRING_CHARACTERISTICS,
    MAX_STRING_BYTES,
    DeviceInformation,
    SystemId,
    decode_dis_string,
    decode_system_id,
    encode_dis_string,
    encode_system_id,
)
from cardiogate.edge.codecs.errors import DecodeError
from cardiogate.edge.codecs.polar_pmd import (
    MAX_ECG_SAMPLES,
    MAX_PPG_SAMPLES,
    POLAR_EPOCH_OFFSET_NS,
    PmdError,
    PmdFeatures,
    PmdMeasurementType,
    PmdOpCode,
    PmdRequest,
    PmdResponse,
    PmdSetting,
    PmdSettingType,
    PolarEcgFrame,
    PolarPpgFrame,
    decode_pmd_features,
    decode_pmd_request,
    decode_pmd_response,
    decode_pmd_settings,
    decode_polar_ecg_frame,
    decode_polar_ppg_frame,
    ecg_sample_times_ns,
    ecg_start_request,
    encode_pmd_features,
    encode_pmd_request,
    encode_pmd_response,
    encode_pmd_settings,
    encode_polar_ecg_frame,
    encode_polar_ppg_frame,
    first_sample_time_ns,
    pmd_frame_type,
    polar_to_unix_ns,
    ppg_start_request,
    unix_to_polar_ns,
)
from cardiogate.edge.codecs.pulse_oximeter import (
    PlxContinuousMeasurement,
    PlxDeviceSensorStatus,
    PlxMeasurementStatus,
    PlxSpotCheckMeasurement,
    SpO2PR,
    decode_plx_continuous_measurement,
    decode_plx_spot_check_measurement,
    encode_plx_continuous_measurement,
    encode_plx_spot_check_measurement,
)
from cardiogate.edge.codecs.sfloat import (
    SFLOAT_NAN,
    SFLOAT_NEGATIVE_INFINITY,
    SFLOAT_NRES,
    SFLOAT_POSITIVE_INFINITY,
    GattDateTime,
    SFloat,
    SFloatSpecial,
    decode_date_time,
    decode_sfloat,
    encode_date_time,
    encode_sfloat,
    sfloat_from_float,
)

PROPERTY = settings(max_examples=300, deadline=None, database=None)

# Hand-encoded field bytes used across the vectors below.
SPO2_97_5 = b"\xcf\xf3"   # 975e-1
PR_72 = b"\x48\x00"       # 72e0
SPO2_95 = b"\x5f\x00"     # 95e0
PR_130 = b"\x82\x00"      # 130e0
DT_2024_02_29 = b"\xe8\x07\x02\x1d\x0c\x22\x38"  # 2024-02-29 12:34:56
DT_2024 = GattDateTime(2024, 2, 29, 12, 34, 56)
UNIX_2024_02_29 = 1_709_210_096  # 2024-02-29T12:34:56Z


def sf(word: int) -> SFloat:
    return SFloat(word)


# -- SFLOAT ------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("raw", "mantissa", "exponent", "value"),
    [
        (b"\x00\x00", 0, 0, 0.0),
        (b"\xcf\xf3", 975, -1, 97.5),
        (b"\x78\x00", 120, 0, 120.0),
        (b"\xff\x0f", -1, 0, -1.0),
        (b"\xfd\x07", 2045, 0, 2045.0),
        (b"\x03\x08", -2045, 0, -2045.0),
        (b"\xfd\x77", 2045, 7, 2045e7),
        (b"\x01\x80", 1, -8, 1e-8),
        (b"\xfa\x10", 250, 1, 2500.0),
        (b"\x0d\xe0", 13, -2, 0.13),
        (b"\xf3\xef", -13, -2, -0.13),
    ],
)
def test_sfloat_numbers(raw: bytes, mantissa: int, exponent: int, value: float) -> None:
    s = decode_sfloat(raw)
    assert (s.mantissa, s.exponent, s.special, s.is_number) == (mantissa, exponent, None, True)
    assert s.value == value
    assert s.number() == value
    assert encode_sfloat(s) == raw
    assert decode_sfloat(bytearray(raw)) == s


@pytest.mark.parametrize(
    ("raw", "special", "value"),
    [
        (b"\xff\x07", SFloatSpecial.NAN, math.nan),
        (b"\x00\x08", SFloatSpecial.NRES, math.nan),
        (b"\xfe\x07", SFloatSpecial.POSITIVE_INFINITY, math.inf),
        (b"\x02\x08", SFloatSpecial.NEGATIVE_INFINITY, -math.inf),
        (b"\x01\x08", SFloatSpecial.RESERVED, math.nan),
        # The special mantissas with a non-zero exponent are never trusted as numbers.
        (b"\xff\x17", SFloatSpecial.RESERVED, math.nan),
        (b"\xfe\xf7", SFloatSpecial.RESERVED, math.nan),
        (b"\x00\x38", SFloatSpecial.RESERVED, math.nan),
        (b"\x02\x88", SFloatSpecial.RESERVED, math.nan),
    ],
)
def test_sfloat_special_values(raw: bytes, special: SFloatSpecial, value: float) -> None:
    s = decode_sfloat(raw)
    assert s.special is special
    assert s.is_number is False
    assert s.number() is None
    if math.isnan(value):
        assert math.isnan(s.value)
    else:
        assert s.value == value
    assert s == decode_sfloat(raw)  # NaN words compare equal as values of the codec
    assert encode_sfloat(s) == raw


def test_sfloat_special_constants() -> None:
    assert SFLOAT_NAN == SFloat.of_special(SFloatSpecial.NAN) == SFloat(0x07FF)
    assert SFLOAT_NRES.raw == 0x0800
    assert SFLOAT_POSITIVE_INFINITY.raw == 0x07FE
    assert SFLOAT_NEGATIVE_INFINITY.raw == 0x0802
    assert "975e-1" in repr(SFloat(0xF3CF))
    assert "NAN" in repr(SFLOAT_NAN)


@pytest.mark.parametrize(
    ("value", "decimals", "word"),
    [
        (97.5, 1, 0xF3CF),
        (72.0, 0, 0x0048),
        (72.4, 0, 0x0048),
        (72.5, 0, 0x0049),       # ties away from zero
        (-72.5, 0, 0x0FB7),      # -73
        (0.125, 2, 0xE00D),      # 0.13, from the decimal 0.125 rather than its binary neighbour
        (-0.125, 2, 0xEFF3),
        (120.04, 1, 0xF4B0),     # 1200e-1
        (2500.0, 1, 0x10FA),     # does not fit 25000e-1: precision drops to 250e1
        (20455.0, 0, 0x20CD),    # 2045.5e1 rounds to 2046: drops again to 205e2
        (0.0, 3, 0xD000),
        (-0.0, 0, 0x0000),
        (2045e7, 0, 0x77FD),
        (math.nan, 1, 0x07FF),
        (math.inf, 1, 0x07FE),
        (-math.inf, 1, 0x0802),
    ],
)
def test_sfloat_from_float(value: float, decimals: int, word: int) -> None:
    assert sfloat_from_float(value, decimals).raw == word


@pytest.mark.parametrize(("value", "decimals"), [(2046e7, 0), (1e12, 1), (-1e30, 0), (1.0, 9), (1.0, -8)])
def test_sfloat_from_float_rejects(value: float, decimals: int) -> None:
    with pytest.raises(ValueError):
        sfloat_from_float(value, decimals)


@pytest.mark.parametrize(("mantissa", "exponent"), [(2046, 0), (-2046, 0), (2047, 3), (0, 8), (0, -9)])
def test_sfloat_from_parts_rejects(mantissa: int, exponent: int) -> None:
    with pytest.raises(ValueError):
        SFloat.from_parts(mantissa, exponent)


@pytest.mark.parametrize("word", [-1, 0x10000])
def test_sfloat_word_range(word: int) -> None:
    with pytest.raises(ValueError):
        SFloat(word)


@pytest.mark.parametrize("raw", [b"", b"\x01", b"\x01\x02\x03"])
def test_sfloat_wrong_length(raw: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_sfloat(raw)


@PROPERTY
@given(st.integers(0, 0xFFFF))
def test_sfloat_every_word_round_trips(word: int) -> None:
    s = SFloat(word)
    raw = encode_sfloat(s)
    assert raw == struct.pack("<H", word)
    assert decode_sfloat(raw) == s
    if s.is_number:
        assert SFloat.from_parts(s.mantissa, s.exponent) == s
        assert s.value == pytest.approx(s.mantissa * 10.0**s.exponent, rel=1e-12)


@PROPERTY
@given(st.floats(-2045e4, 2045e4, allow_nan=False), st.integers(0, 3))
def test_sfloat_from_float_is_nearest_at_its_exponent(value: float, decimals: int) -> None:
    s = sfloat_from_float(value, decimals)
    assert s.is_number
    assert s.exponent >= -decimals
    assert abs(s.value - value) <= 0.5 * 10.0**s.exponent * (1 + 1e-9)
    if s.exponent > -decimals:  # precision was dropped only because the mantissa did not fit
        assert abs(value) * 10.0 ** (1 - s.exponent) > 2044.5 * (1 - 1e-9)
    assert decode_sfloat(encode_sfloat(s)) == s


# -- Date Time -----------------------------------------------------------------------------------

def test_date_time_hand_vector() -> None:
    dt = decode_date_time(DT_2024_02_29)
    assert dt == DT_2024
    assert dt.date_known
    assert dt.to_datetime() == datetime(2024, 2, 29, 12, 34, 56, tzinfo=UTC)
    assert dt.to_datetime(None) == datetime(2024, 2, 29, 12, 34, 56)
    assert dt.to_unix_ns() == UNIX_2024_02_29 * 10**9
    assert dt.to_unix_ns(timezone(timedelta(hours=2))) == (UNIX_2024_02_29 - 7200) * 10**9
    assert encode_date_time(dt) == DT_2024_02_29
    assert GattDateTime.from_datetime(datetime(2024, 2, 29, 12, 34, 56, 999_999)) == dt


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"\x00\x00\x00\x00\x00\x00\x00", GattDateTime(0, 0, 0)),
        (b"\x00\x00\x02\x1d\x17\x3b\x3b", GattDateTime(0, 2, 29, 23, 59, 59)),  # unknown year: 29 Feb allowed
        (b"\xe8\x07\x00\x00\x01\x02\x03", GattDateTime(2024, 0, 0, 1, 2, 3)),
        (b"\x00\x00\x00\x1f\x00\x00\x00", GattDateTime(0, 0, 31)),
        (b"\x2e\x06\x01\x01\x00\x00\x00", GattDateTime(1582, 1, 1)),
        (b"\x0f\x27\x0c\x1f\x00\x00\x00", GattDateTime(9999, 12, 31)),
    ],
)
def test_date_time_unknown_fields_and_bounds(raw: bytes, expected: GattDateTime) -> None:
    dt = decode_date_time(raw)
    assert dt == expected
    assert encode_date_time(dt) == raw
    if not dt.date_known:
        assert dt.to_datetime() is None
        assert dt.to_unix_ns() is None


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"\xe7\x07\x02\x1d\x00\x00\x00", id="2023-02-29"),
        pytest.param(b"\xe8\x07\x04\x1f\x00\x00\x00", id="april-31"),
        pytest.param(b"\x00\x00\x00\x20\x00\x00\x00", id="day-32"),
        pytest.param(b"\xe8\x07\x0d\x01\x00\x00\x00", id="month-13"),
        pytest.param(b"\xe8\x07\x01\x01\x18\x00\x00", id="hour-24"),
        pytest.param(b"\xe8\x07\x01\x01\x00\x3c\x00", id="minute-60"),
        pytest.param(b"\xe8\x07\x01\x01\x00\x00\x3c", id="second-60"),
        pytest.param(b"\x2d\x06\x01\x01\x00\x00\x00", id="year-1581"),
        pytest.param(b"\x10\x27\x01\x01\x00\x00\x00", id="year-10000"),
        pytest.param(b"\x01\x00\x01\x01\x00\x00\x00", id="year-1"),
        pytest.param(DT_2024_02_29[:6], id="short"),
        pytest.param(DT_2024_02_29 + b"\x00", id="long"),
        pytest.param(b"", id="empty"),
    ],
)
def test_date_time_rejects(raw: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_date_time(raw)


def test_date_time_constructor_validates() -> None:
    with pytest.raises(ValueError):
        GattDateTime(2023, 2, 29)
    with pytest.raises(ValueError):
        GattDateTime.from_datetime(datetime(1500, 1, 1))


date_times = st.one_of(
    st.datetimes(datetime(1582, 1, 1), datetime(9999, 12, 31, 23, 59, 59)).map(GattDateTime.from_datetime),
    st.builds(GattDateTime, st.just(0), st.integers(0, 12), st.just(0), st.integers(0, 23), st.integers(0, 59),
              st.integers(0, 59)),
    st.builds(GattDateTime, st.integers(1582, 9999), st.just(0), st.integers(0, 31)),
)


@PROPERTY
@given(date_times)
def test_date_time_round_trip(dt: GattDateTime) -> None:
    raw = encode_date_time(dt)
    assert len(raw) == 7
    assert decode_date_time(raw) == dt
    if dt.date_known:
        moment = dt.to_datetime()
        assert moment is not None
        assert GattDateTime.from_datetime(moment) == dt
        assert dt.to_unix_ns() == int(moment.timestamp()) * 10**9


# -- Body Sensor Location ------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("raw", "location"),
    [(b"\x00", BodySensorLocation.OTHER), (b"\x01", BodySensorLocation.CHEST), (b"\x02", BodySensorLocation.WRIST),
     (b"\x03", BodySensorLocation.FINGER), (b"\x04", BodySensorLocation.HAND), (b"\x05", BodySensorLocation.EAR_LOBE),
     (b"\x06", BodySensorLocation.FOOT)],
)
def test_body_sensor_location(raw: bytes, location: BodySensorLocation) -> None:
    assert decode_body_sensor_location(raw) is location
    assert encode_body_sensor_location(location) == raw


@pytest.mark.parametrize("raw", [b"", b"\x07", b"\xff", b"\x01\x00"])
def test_body_sensor_location_rejects(raw: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_body_sensor_location(raw)


def test_body_sensor_location_encode_rejects_reserved() -> None:
    with pytest.raises(ValueError):
        encode_body_sensor_location(7)  # type: ignore[arg-type]


# -- Battery Level -------------------------------------------------------------------------------

@pytest.mark.parametrize(("raw", "level"), [(b"\x00", 0), (b"\x32", 50), (b"\x64", 100)])
def test_battery_level(raw: bytes, level: int) -> None:
    assert decode_battery_level(raw) == level
    assert encode_battery_level(level) == raw


@pytest.mark.parametrize("raw", [b"", b"\x65", b"\xff", b"\x64\x00"])
def test_battery_level_rejects(raw: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_battery_level(raw)


@pytest.mark.parametrize("level", [-1, 101])
def test_battery_level_encode_rejects(level: int) -> None:
    with pytest.raises(ValueError):
        encode_battery_level(level)


@PROPERTY
@given(st.integers(0, 100), st.sampled_from(list(BodySensorLocation)))
def test_one_byte_round_trips(level: int, location: BodySensorLocation) -> None:
    assert decode_battery_level(encode_battery_level(level)) == level
    assert decode_body_sensor_location(encode_body_sensor_location(location)) is location


# -- Device Information --------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("raw", "text"),
    [
        (b"Polar Electro Oy", "Polar Electro Oy"),
        (b"H10\x00\x00\x00", "H10"),
        (b"\x00", ""),
        (b"", ""),
        ("Ωmega-µ 1.2".encode(), "Ωmega-µ 1.2"),
        (b"x" * MAX_STRING_BYTES, "x" * MAX_STRING_BYTES),
        (b"x" * 8 + b"\x00" * (MAX_STRING_BYTES - 8), "x" * 8),
    ],
)
def test_dis_strings(raw: bytes, text: str) -> None:
    assert decode_dis_string(raw) == text
    assert decode_dis_string(bytearray(raw)) == text


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"\xff", id="invalid-utf8"),
        pytest.param(b"abc\xc3", id="truncated-utf8"),
        pytest.param(b"\xed\xa0\x80", id="surrogate"),
        pytest.param(b"a\nb", id="newline"),
        pytest.param(b"a\x00b", id="embedded-nul"),
        pytest.param(b"\x1b[31m", id="escape"),
        pytest.param("a\u202eb".encode(), id="bidi-override"),
        pytest.param(b"x" * (MAX_STRING_BYTES + 1), id="too-long"),
    ],
)
def test_dis_string_rejects(raw: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_dis_string(raw)


@pytest.mark.parametrize("text", ["a\nb", "x" * (MAX_STRING_BYTES + 1), "trailing\x00", "\ud800"])
def test_dis_string_encode_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        encode_dis_string(text)


def test_dis_uuids_name_device_information_fields() -> None:
    assert set(DIS_STRING_CHARACTERISTICS.values()) <= set(DeviceInformation.__dataclass_fields__)
    assert len(DIS_STRING_CHARACTERISTICS) == 6
    assert all(u.endswith("-0000-1000-8000-00805f9b34fb") and u == u.lower() for u in DIS_STRING_CHARACTERISTICS)


def test_system_id() -> None:
    raw = bytes(range(1, 9))
    sid = decode_system_id(raw)
    assert sid == SystemId(0x0504030201, 0x080706)
    assert encode_system_id(sid) == raw
    for bad in (raw[:7], raw + b"\x00", b""):
        with pytest.raises(DecodeError):
            decode_system_id(bad)
    for bad_id in (SystemId(1 << 40, 0), SystemId(0, 1 << 24), SystemId(-1, 0)):
        with pytest.raises(ValueError):
            encode_system_id(bad_id)


dis_text = st.text(st.characters(blacklist_categories=("Cc", "Cf", "Cs")), max_size=40)


@PROPERTY
@given(dis_text, st.integers(0, (1 << 40) - 1), st.integers(0, (1 << 24) - 1))
def test_dis_round_trip(text: str, manufacturer: int, oui: int) -> None:
    assume(len(text.encode()) <= MAX_STRING_BYTES)
    assert decode_dis_string(encode_dis_string(text)) == text
    sid = SystemId(manufacturer, oui)
    assert decode_system_id(encode_system_id(sid)) == sid


# -- Current Time ----------------------------------------------------------------------------------

CT_RAW = DT_2024_02_29 + b"\x04\x80\x03"  # Thursday, 128/256 s, manual + external reference update


def test_current_time_hand_vector() -> None:
    ct = decode_current_time(CT_RAW)
    assert ct == CurrentTime(DT_2024, 4, 128,
                             AdjustReason.MANUAL_TIME_UPDATE | AdjustReason.EXTERNAL_REFERENCE_TIME_UPDATE)
    assert ct.to_unix_ns() == UNIX_2024_02_29 * 10**9 + 500_000_000
    assert ct.to_datetime() == datetime(2024, 2, 29, 12, 34, 56, 500_000, tzinfo=UTC)
    assert encode_current_time(ct) == CT_RAW
    assert CurrentTime.from_unix_ns(UNIX_2024_02_29 * 10**9 + 500_000_000, adjust_reason=ct.adjust_reason) == ct
    assert CurrentTime.from_datetime(datetime(2024, 2, 29, 12, 34, 56, 500_000), ct.adjust_reason) == ct


def test_current_time_in_a_device_zone() -> None:
    cet = timezone(timedelta(hours=1))
    ct = CurrentTime.from_unix_ns(UNIX_2024_02_29 * 10**9, tz=cet)
    assert ct.date_time == GattDateTime(2024, 2, 29, 13, 34, 56)
    assert ct.to_unix_ns(cet) == UNIX_2024_02_29 * 10**9


def test_current_time_unknown_date() -> None:
    ct = decode_current_time(b"\x00" * 10)
    assert ct == CurrentTime(GattDateTime(0, 0, 0))
    assert ct.to_unix_ns() is None
    assert ct.to_datetime() is None


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(CT_RAW[:9], id="short"),
        pytest.param(CT_RAW + b"\x00", id="long"),
        pytest.param(DT_2024_02_29 + b"\x08\x00\x00", id="day-of-week-8"),
        pytest.param(DT_2024_02_29 + b"\x00\x00\x10", id="adjust-reserved-bit4"),
        pytest.param(DT_2024_02_29 + b"\x00\x00\x80", id="adjust-reserved-bit7"),
        pytest.param(b"\xe8\x07\x02\x1e\x00\x00\x00\x00\x00\x00", id="february-30"),
        pytest.param(b"\xe8\x07\x02\x01\x00\x00\x3c\x00\x00\x00", id="second-60"),
    ],
)
def test_current_time_rejects(raw: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_current_time(raw)


@pytest.mark.parametrize(
    "ct",
    [CurrentTime(DT_2024, 8), CurrentTime(DT_2024, 0, 256), CurrentTime(DT_2024, 0, 0, AdjustReason(0x10))],
)
def test_current_time_encode_rejects(ct: CurrentTime) -> None:
    with pytest.raises(ValueError):
        encode_current_time(ct)


def test_current_time_from_unix_ns_rejects_unrepresentable_years() -> None:
    with pytest.raises(ValueError):
        CurrentTime.from_unix_ns(-(15 * 10**18))  # 1494
    with pytest.raises(ValueError):
        CurrentTime.from_unix_ns(-(10**20))  # before year 1
    with pytest.raises(ValueError):
        CurrentTime.from_unix_ns(10**30)


@PROPERTY
@given(st.integers(-(2**62), 2**62 - 1), st.integers(0, 15))
def test_current_time_round_trip_through_unix_ns(unix_ns: int, adjust: int) -> None:
    ct = CurrentTime.from_unix_ns(unix_ns, adjust_reason=AdjustReason(adjust))
    assert decode_current_time(encode_current_time(ct)) == ct
    back = ct.to_unix_ns()
    assert back is not None
    assert 0 <= unix_ns - back < 1_000_000_000 // 256
    assert CurrentTime.from_unix_ns(back, adjust_reason=AdjustReason(adjust)) == ct
    moment = ct.to_datetime()
    assert moment is not None and moment.isoweekday() == ct.day_of_week


@PROPERTY
@given(date_times, st.integers(0, 7), st.integers(0, 255), st.integers(0, 15))
def test_current_time_round_trip_any_fields(dt: GattDateTime, dow: int, fractions: int, adjust: int) -> None:
    ct = CurrentTime(dt, dow, fractions, AdjustReason(adjust))
    assert decode_current_time(encode_current_time(ct)) == ct


# -- Pulse oximeter ------------------------------------------------------------------------------

NORMAL = SpO2PR(sf(0xF3CF), sf(0x0048))  # 97.5 %, 72 bpm
FAST = SpO2PR(sf(0x005F), sf(0x0082))    # 95 %, 130 bpm


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"\x00" + SPO2_97_5 + PR_72, PlxContinuousMeasurement(NORMAL)),
        (b"\x01" + SPO2_97_5 + PR_72 + SPO2_95 + PR_130, PlxContinuousMeasurement(NORMAL, fast=FAST)),
        (b"\x02" + SPO2_97_5 + PR_72 + SPO2_95 + PR_130, PlxContinuousMeasurement(NORMAL, slow=FAST)),
        (b"\x03" + SPO2_97_5 + PR_72 + SPO2_95 + PR_130 + PR_72 + SPO2_97_5,
         PlxContinuousMeasurement(NORMAL, FAST, SpO2PR(sf(0x0048), sf(0xF3CF)))),
        (b"\x04" + SPO2_97_5 + PR_72 + b"\x20\x80",
         PlxContinuousMeasurement(NORMAL, measurement_status=PlxMeasurementStatus.MEASUREMENT_ONGOING
                                  | PlxMeasurementStatus.INVALID_MEASUREMENT_DETECTED)),
        (b"\x08" + SPO2_97_5 + PR_72 + b"\x00\x80\x00",
         PlxContinuousMeasurement(NORMAL, device_sensor_status=PlxDeviceSensorStatus.SENSOR_DISCONNECTED)),
        (b"\x10" + SPO2_97_5 + PR_72 + b"\x11\xf0", PlxContinuousMeasurement(NORMAL, pulse_amplitude_index=sf(0xF011))),
        (b"\x1f" + SPO2_97_5 + PR_72 + SPO2_95 + PR_130 + SPO2_95 + PR_130 + b"\x80\x00" + b"\x10\x00\x00"
         + b"\x11\xf0",
         PlxContinuousMeasurement(NORMAL, FAST, FAST, PlxMeasurementStatus.VALIDATED_DATA,
                                  PlxDeviceSensorStatus.POOR_SIGNAL_DETECTED, sf(0xF011))),
        # Searching: SpO2 and PR not available yet.
        (b"\x00\xff\x07\xff\x07", PlxContinuousMeasurement(SpO2PR(SFLOAT_NAN, SFLOAT_NAN))),
    ],
)
def test_plx_continuous_hand_vectors(raw: bytes, expected: PlxContinuousMeasurement) -> None:
    m = decode_plx_continuous_measurement(raw)
    assert m == expected
    assert encode_plx_continuous_measurement(m) == raw


def test_plx_values_and_probe_off() -> None:
    m = decode_plx_continuous_measurement(b"\x08" + SPO2_97_5 + PR_72 + b"\x00\x08\x00")
    assert m.normal.spo2_percent == 97.5
    assert m.normal.pulse_rate_bpm == 72.0
    assert m.device_sensor_status == PlxDeviceSensorStatus.SENSOR_UNCONNECTED_TO_USER
    assert m.sensor_off is True
    assert decode_plx_continuous_measurement(b"\x08" + SPO2_97_5 + PR_72 + b"\x00\x20\x00").sensor_off is True
    assert decode_plx_continuous_measurement(b"\x08" + SPO2_97_5 + PR_72 + b"\x28\x00\x00").sensor_off is False
    assert decode_plx_continuous_measurement(b"\x00" + SPO2_97_5 + PR_72).sensor_off is None
    searching = decode_plx_continuous_measurement(b"\x00\x00\x08\xff\x07")
    assert searching.normal.spo2_percent is None
    assert searching.normal.pulse_rate_bpm is None


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"\x00", id="flags-only"),
        pytest.param(b"\x00" + SPO2_97_5 + PR_72[:1], id="truncated-pr"),
        pytest.param(b"\x00" + SPO2_97_5 + PR_72 + b"\x00", id="trailing"),
        pytest.param(b"\x01" + SPO2_97_5 + PR_72, id="fast-missing"),
        pytest.param(b"\x02" + SPO2_97_5 + PR_72 + SPO2_95, id="slow-truncated"),
        pytest.param(b"\x04" + SPO2_97_5 + PR_72 + b"\x20", id="status-truncated"),
        pytest.param(b"\x04" + SPO2_97_5 + PR_72 + b"\x01\x00", id="status-reserved-bit0"),
        pytest.param(b"\x04" + SPO2_97_5 + PR_72 + b"\x1f\x00", id="status-reserved-bits0-4"),
        pytest.param(b"\x08" + SPO2_97_5 + PR_72 + b"\x00\x80", id="device-status-truncated"),
        pytest.param(b"\x08" + SPO2_97_5 + PR_72 + b"\x00\x00\x01", id="device-status-reserved-bit16"),
        pytest.param(b"\x08" + SPO2_97_5 + PR_72 + b"\x00\x00\x80", id="device-status-reserved-bit23"),
        pytest.param(b"\x10" + SPO2_97_5 + PR_72 + b"\x11", id="pai-truncated"),
        pytest.param(b"\x20" + SPO2_97_5 + PR_72, id="reserved-flag-bit5"),
        pytest.param(b"\x80" + SPO2_97_5 + PR_72, id="reserved-flag-bit7"),
    ],
)
def test_plx_continuous_rejects(raw: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_plx_continuous_measurement(raw)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"\x00" + SPO2_97_5 + PR_72, PlxSpotCheckMeasurement(NORMAL)),
        (b"\x01" + SPO2_97_5 + PR_72 + DT_2024_02_29, PlxSpotCheckMeasurement(NORMAL, DT_2024)),
        (b"\x11" + SPO2_97_5 + PR_72 + b"\x00\x00\x01\x01\x00\x00\x00",
         PlxSpotCheckMeasurement(NORMAL, GattDateTime(0, 1, 1), clock_not_set=True)),
        (b"\x02" + SPO2_97_5 + PR_72 + b"\x00\x01",
         PlxSpotCheckMeasurement(NORMAL, measurement_status=PlxMeasurementStatus.FULLY_QUALIFIED_DATA)),
        (b"\x04" + SPO2_97_5 + PR_72 + b"\x20\x00\x00",
         PlxSpotCheckMeasurement(NORMAL, device_sensor_status=PlxDeviceSensorStatus.LOW_PERFUSION_DETECTED)),
        (b"\x08" + SPO2_97_5 + PR_72 + b"\xfe\x07",
         PlxSpotCheckMeasurement(NORMAL, pulse_amplitude_index=SFLOAT_POSITIVE_INFINITY)),
        (b"\x10" + SPO2_97_5 + PR_72, PlxSpotCheckMeasurement(NORMAL, clock_not_set=True)),
        (b"\x1f" + SPO2_97_5 + PR_72 + DT_2024_02_29 + b"\xe0\xff" + b"\xff\xff\x00" + b"\x00\x08",
         PlxSpotCheckMeasurement(NORMAL, DT_2024, PlxMeasurementStatus(0xFFE0), PlxDeviceSensorStatus(0xFFFF),
                                 SFLOAT_NRES, True)),
    ],
)
def test_plx_spot_check_hand_vectors(raw: bytes, expected: PlxSpotCheckMeasurement) -> None:
    m = decode_plx_spot_check_measurement(raw)
    assert m == expected
    assert encode_plx_spot_check_measurement(m) == raw


def test_plx_spot_check_probe_off() -> None:
    m = decode_plx_spot_check_measurement(b"\x04" + SPO2_97_5 + PR_72 + b"\x00\x80\x00")
    assert m.sensor_off is True
    assert decode_plx_spot_check_measurement(b"\x00" + SPO2_97_5 + PR_72).sensor_off is None


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"\x00" + SPO2_97_5, id="pr-missing"),
        pytest.param(b"\x01" + SPO2_97_5 + PR_72 + DT_2024_02_29[:6], id="timestamp-truncated"),
        pytest.param(b"\x01" + SPO2_97_5 + PR_72 + b"\xe8\x07\x0d\x01\x00\x00\x00", id="timestamp-month-13"),
        pytest.param(b"\x02" + SPO2_97_5 + PR_72 + b"\x10\x00", id="status-reserved-bit4"),
        pytest.param(b"\x04" + SPO2_97_5 + PR_72 + b"\x00\x00\xff", id="device-status-reserved"),
        pytest.param(b"\x08" + SPO2_97_5 + PR_72, id="pai-missing"),
        pytest.param(b"\x10" + SPO2_97_5 + PR_72 + b"\x00", id="trailing"),
        pytest.param(b"\x40" + SPO2_97_5 + PR_72, id="reserved-flag-bit6"),
    ],
)
def test_plx_spot_check_rejects(raw: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_plx_spot_check_measurement(raw)


@pytest.mark.parametrize(
    "m",
    [
        PlxContinuousMeasurement(NORMAL, measurement_status=PlxMeasurementStatus(0x0001)),
        PlxContinuousMeasurement(NORMAL, device_sensor_status=PlxDeviceSensorStatus(0x10000)),
    ],
)
def test_plx_encode_rejects_reserved_status_bits(m: PlxContinuousMeasurement) -> None:
    with pytest.raises(ValueError):
        encode_plx_continuous_measurement(m)


sfloats = st.integers(0, 0xFFFF).map(SFloat)
pairs = st.builds(SpO2PR, sfloats, sfloats)
meas_status = st.integers(0, 0x7FF).map(lambda v: PlxMeasurementStatus(v << 5))
device_status = st.integers(0, 0xFFFF).map(PlxDeviceSensorStatus)
continuous = st.builds(PlxContinuousMeasurement, pairs, st.none() | pairs, st.none() | pairs, st.none() | meas_status,
                       st.none() | device_status, st.none() | sfloats)
spot_checks = st.builds(PlxSpotCheckMeasurement, pairs, st.none() | date_times, st.none() | meas_status,
                        st.none() | device_status, st.none() | sfloats, st.booleans())


@PROPERTY
@given(continuous)
def test_plx_continuous_round_trip(m: PlxContinuousMeasurement) -> None:
    raw = encode_plx_continuous_measurement(m)
    assert decode_plx_continuous_measurement(raw) == m
    with pytest.raises(DecodeError):
        decode_plx_continuous_measurement(raw[:-1])
    with pytest.raises(DecodeError):
        decode_plx_continuous_measurement(raw + b"\x00")


@PROPERTY
@given(spot_checks)
def test_plx_spot_check_round_trip(m: PlxSpotCheckMeasurement) -> None:
    raw = encode_plx_spot_check_measurement(m)
    assert decode_plx_spot_check_measurement(raw) == m
    with pytest.raises(DecodeError):
        decode_plx_spot_check_measurement(raw[:-1])
    with pytest.raises(DecodeError):
        decode_plx_spot_check_measurement(raw + b"\x00")


# -- Blood pressure ------------------------------------------------------------------------------

BP_120_80_93 = b"\x78\x00\x50\x00\x5d\x00"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"\x00" + BP_120_80_93, BloodPressureMeasurement(sf(120), sf(80), sf(93))),
        (b"\x02" + BP_120_80_93 + DT_2024_02_29, BloodPressureMeasurement(sf(120), sf(80), sf(93), timestamp=DT_2024)),
        (b"\x04" + BP_120_80_93 + PR_72, BloodPressureMeasurement(sf(120), sf(80), sf(93), pulse_rate=sf(72))),
        (b"\x08" + BP_120_80_93 + b"\xff", BloodPressureMeasurement(sf(120), sf(80), sf(93), user_id=0xFF)),
        (b"\x10" + BP_120_80_93 + b"\x00\x00",
         BloodPressureMeasurement(sf(120), sf(80), sf(93), status=BloodPressureStatus())),
        (b"\x1e" + BP_120_80_93 + DT_2024_02_29 + PR_72 + b"\x01" + b"\x2f\x00",
         BloodPressureMeasurement(sf(120), sf(80), sf(93), PressureUnit.MMHG, DT_2024, sf(72), 1,
                                  BloodPressureStatus(True, True, True, PulseRateRange.ABOVE_UPPER_LIMIT, True))),
        (b"\x10" + BP_120_80_93 + b"\x10\x00",
         BloodPressureMeasurement(sf(120), sf(80), sf(93),
                                  status=BloodPressureStatus(pulse_rate_range=PulseRateRange.BELOW_LOWER_LIMIT))),
        # Intermediate cuff pressure: only the current cuff pressure, the rest NaN.
        (b"\x00\x96\x00\xff\x07\xff\x07", BloodPressureMeasurement(sf(150), SFLOAT_NAN, SFLOAT_NAN)),
    ],
)
def test_blood_pressure_hand_vectors(raw: bytes, expected: BloodPressureMeasurement) -> None:
    m = decode_blood_pressure_measurement(raw)
    assert m == expected
    assert encode_blood_pressure_measurement(m) == raw


def test_blood_pressure_mmhg_and_kpa() -> None:
    mmhg = decode_blood_pressure_measurement(b"\x04" + BP_120_80_93 + PR_72)
    assert (mmhg.systolic_mmhg, mmhg.diastolic_mmhg, mmhg.mean_arterial_pressure_mmhg) == (120.0, 80.0, 93.0)
    assert mmhg.pulse_rate_bpm == 72.0
    # 16.0 / 10.7 / 12.5 kPa, each 1 decimal.
    kpa = decode_blood_pressure_measurement(b"\x01\xa0\xf0\x6b\xf0\x7d\xf0")
    assert kpa.unit is PressureUnit.KPA
    assert kpa.systolic.value == 16.0
    assert kpa.systolic_mmhg == pytest.approx(16.0 * MMHG_PER_KPA)
    assert kpa.systolic_mmhg == pytest.approx(120.00992)
    assert kpa.diastolic_mmhg == pytest.approx(10.7 * 7.50062)
    assert kpa.mean_arterial_pressure_mmhg == pytest.approx(93.75775)
    assert kpa.pulse_rate_bpm is None
    cuff = decode_blood_pressure_measurement(b"\x01\x96\x00\xff\x07\x00\x08")
    assert cuff.diastolic_mmhg is None
    assert cuff.mean_arterial_pressure_mmhg is None


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"\x00" + BP_120_80_93[:5], id="short"),
        pytest.param(b"\x00" + BP_120_80_93 + b"\x00", id="trailing"),
        pytest.param(b"\x02" + BP_120_80_93, id="timestamp-missing"),
        pytest.param(b"\x02" + BP_120_80_93 + b"\xe8\x07\x02\x1e\x00\x00\x00", id="timestamp-feb-30"),
        pytest.param(b"\x04" + BP_120_80_93 + PR_72[:1], id="pulse-truncated"),
        pytest.param(b"\x08" + BP_120_80_93, id="user-missing"),
        pytest.param(b"\x10" + BP_120_80_93 + b"\x00", id="status-truncated"),
        pytest.param(b"\x10" + BP_120_80_93 + b"\x18\x00", id="status-pulse-range-3"),
        pytest.param(b"\x10" + BP_120_80_93 + b"\x40\x00", id="status-reserved-bit6"),
        pytest.param(b"\x10" + BP_120_80_93 + b"\x00\x80", id="status-reserved-bit15"),
        pytest.param(b"\x20" + BP_120_80_93, id="reserved-flag-bit5"),
        pytest.param(b"\xe0" + BP_120_80_93, id="reserved-flag-bits5-7"),
    ],
)
def test_blood_pressure_rejects(raw: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_blood_pressure_measurement(raw)


def test_blood_pressure_encode_rejects_user_id() -> None:
    for user in (-1, 256):
        with pytest.raises(ValueError):
            encode_blood_pressure_measurement(BloodPressureMeasurement(sf(120), sf(80), sf(93), user_id=user))
    with pytest.raises(ValueError):
        BloodPressureStatus.from_raw(0x0040)


bp_status = st.builds(BloodPressureStatus, st.booleans(), st.booleans(), st.booleans(),
                      st.sampled_from(list(PulseRateRange)), st.booleans())
bp_measurements = st.builds(BloodPressureMeasurement, sfloats, sfloats, sfloats, st.sampled_from(list(PressureUnit)),
                            st.none() | date_times, st.none() | sfloats, st.none() | st.integers(0, 255),
                            st.none() | bp_status)


@PROPERTY
@given(bp_measurements)
def test_blood_pressure_round_trip(m: BloodPressureMeasurement) -> None:
    raw = encode_blood_pressure_measurement(m)
    assert decode_blood_pressure_measurement(raw) == m
    if m.status is not None:
        assert BloodPressureStatus.from_raw(m.status.to_raw()) == m.status
    with pytest.raises(DecodeError):
        decode_blood_pressure_measurement(raw[:-1])
    with pytest.raises(DecodeError):
        decode_blood_pressure_measurement(raw + b"\x00")
    s = m.systolic.number()
    if s is not None:
        assert m.systolic_mmhg == (s * MMHG_PER_KPA if m.unit is PressureUnit.KPA else s)


# -- Polar PMD: control point ----------------------------------------------------------------------

H10_START_ECG = b"\x02\x00\x00\x01\x82\x00\x01\x01\x0e\x00"
H10_ECG_SETTINGS_RESPONSE = b"\xf0\x01\x00\x00\x00\x00\x01\x82\x00\x01\x01\x0e\x00"


def test_pmd_h10_start_ecg_request() -> None:
    req = ecg_start_request()
    assert encode_pmd_request(req) == H10_START_ECG
    assert decode_pmd_request(H10_START_ECG) == req
    assert req.settings == (PmdSetting(PmdSettingType.SAMPLE_RATE, (130,)),
                            PmdSetting(PmdSettingType.RESOLUTION, (14,)))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"\x01\x00", PmdRequest(PmdOpCode.GET_MEASUREMENT_SETTINGS, PmdMeasurementType.ECG)),
        (b"\x03\x00", PmdRequest(PmdOpCode.STOP_MEASUREMENT, PmdMeasurementType.ECG)),
        (b"\x02\x03", PmdRequest(PmdOpCode.START_MEASUREMENT, PmdMeasurementType.PPI)),
        (b"\x02\x02\x00\x01\xc8\x00\x01\x01\x10\x00\x02\x01\x08\x00\x04\x01\x03",
         PmdRequest(PmdOpCode.START_MEASUREMENT, PmdMeasurementType.ACC, (
             PmdSetting(PmdSettingType.SAMPLE_RATE, (200,)), PmdSetting(PmdSettingType.RESOLUTION, (16,)),
             PmdSetting(PmdSettingType.RANGE, (8,)), PmdSetting(PmdSettingType.CHANNELS, (3,))))),
        (b"\x01\x8a", PmdRequest(PmdOpCode.GET_MEASUREMENT_SETTINGS, 0x8A)),  # unknown type kept as an int
    ],
)
def test_pmd_requests(raw: bytes, expected: PmdRequest) -> None:
    assert decode_pmd_request(raw) == expected
    assert encode_pmd_request(expected) == raw


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"\x02", id="op-only"),
        pytest.param(b"\x00\x00", id="op-0"),
        pytest.param(b"\x04\x00", id="op-4"),
        pytest.param(b"\x01\x00\x00", id="get-trailing"),
        pytest.param(b"\x03\x00\x00\x01\x82\x00", id="stop-with-settings"),
        pytest.param(b"\x02\x00\x00", id="setting-header-truncated"),
        pytest.param(b"\x02\x00\x00\x01\x82", id="setting-value-truncated"),
        pytest.param(b"\x02\x00\x00\x02\x82\x00", id="setting-count-too-big"),
        pytest.param(b"\x02\x00\x00\x00", id="setting-count-0"),
        pytest.param(b"\x02\x00\x06\x01\x00\x00", id="setting-type-unknown"),
        pytest.param(b"\x02\x00\x00\x01\x82\x00\x00\x01\x82\x00", id="setting-duplicate"),
    ],
)
def test_pmd_request_rejects(raw: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_pmd_request(raw)


def test_pmd_h10_ecg_settings_response() -> None:
    r = decode_pmd_response(H10_ECG_SETTINGS_RESPONSE)
    assert r == PmdResponse(PmdOpCode.GET_MEASUREMENT_SETTINGS, PmdMeasurementType.ECG, PmdError.SUCCESS, False,
                            (PmdSetting(PmdSettingType.SAMPLE_RATE, (130,)),
                             PmdSetting(PmdSettingType.RESOLUTION, (14,))))
    assert r.ok and r.error is PmdError.SUCCESS
    assert r.setting(PmdSettingType.SAMPLE_RATE) == PmdSetting(PmdSettingType.SAMPLE_RATE, (130,))
    assert r.setting(PmdSettingType.RANGE) is None
    assert encode_pmd_response(r) == H10_ECG_SETTINGS_RESPONSE


@pytest.mark.parametrize(
    ("raw", "expected", "canonical"),
    [
        (b"\xf0\x02\x00\x00\x00", PmdResponse(PmdOpCode.START_MEASUREMENT, 0), None),
        (b"\xf0\x02\x00\x00", PmdResponse(PmdOpCode.START_MEASUREMENT, 0), b"\xf0\x02\x00\x00\x00"),
        (b"\xf0\x03\x00\x00\x00", PmdResponse(PmdOpCode.STOP_MEASUREMENT, 0), None),
        (b"\xf0\x02\x00\x06", PmdResponse(PmdOpCode.START_MEASUREMENT, 0, PmdError.ALREADY_IN_STATE), None),
        (b"\xf0\x02\x00\x0d", PmdResponse(PmdOpCode.START_MEASUREMENT, 0, PmdError.DEVICE_IN_CHARGER), None),
        (b"\xf0\x02\x00\x06\x00", PmdResponse(PmdOpCode.START_MEASUREMENT, 0, PmdError.ALREADY_IN_STATE),
         b"\xf0\x02\x00\x06"),
        (b"\xf0\x01\x02\x03\x00\xaa", PmdResponse(PmdOpCode.GET_MEASUREMENT_SETTINGS, 2, 3, parameters=b"\xaa"),
         None),
        (b"\xf0\x03\x00\x00\x01\x01\x02", PmdResponse(PmdOpCode.STOP_MEASUREMENT, 0, 0, True, parameters=b"\x01\x02"),
         None),
        # A start response that reports the scaling factor (float32 1.0) of the started stream.
        (b"\xf0\x02\x02\x00\x00\x05\x01\x00\x00\x80\x3f",
         PmdResponse(PmdOpCode.START_MEASUREMENT, 2, 0, False, (PmdSetting(PmdSettingType.FACTOR, (0x3F800000,)),)),
         None),
        (b"\xf0\x01\x00\x00\x01\x00\x02\x82\x00\x04\x01",
         PmdResponse(PmdOpCode.GET_MEASUREMENT_SETTINGS, 0, 0, True,
                     (PmdSetting(PmdSettingType.SAMPLE_RATE, (130, 260)),)), None),
    ],
)
def test_pmd_responses(raw: bytes, expected: PmdResponse, canonical: bytes | None) -> None:
    r = decode_pmd_response(raw)
    assert r == expected
    assert encode_pmd_response(r) == (canonical or raw)


def test_pmd_response_error_names() -> None:
    r = decode_pmd_response(b"\xf0\x02\x00\x08")
    assert not r.ok
    assert r.error is PmdError.INVALID_SAMPLE_RATE
    unknown = decode_pmd_response(b"\xf0\x02\x00\x63")
    assert unknown.error_code == 99
    assert unknown.error is None
    assert not unknown.ok


def test_pmd_factor_setting() -> None:
    (s,) = decode_pmd_settings(b"\x05\x02\x00\x00\x80\x3f\x00\x00\x00\x3f")
    assert s.factors == (1.0, 0.5)
    with pytest.raises(ValueError):
        _ = PmdSetting(PmdSettingType.SAMPLE_RATE, (130,)).factors
    assert decode_pmd_settings(b"") == ()
    assert decode_pmd_settings(b"\x03\x01\x10\x27\x00\x00") == (PmdSetting(PmdSettingType.RANGE_MILLIUNIT, (10000,)),)


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"\xf0\x02\x00", id="short"),
        pytest.param(b"\xf1\x02\x00\x00", id="not-a-response"),
        pytest.param(b"\xf0\x00\x00\x00", id="op-0"),
        pytest.param(b"\xf0\x09\x00\x00", id="op-9"),
        pytest.param(b"\xf0\x02\x00\x00\x02", id="more-frames-2"),
        pytest.param(b"\xf0\x01\x00\x00\x00\x00", id="settings-truncated"),
        pytest.param(b"\xf0\x01\x00\x00\x00\x09\x01\x00", id="settings-unknown-type"),
    ],
)
def test_pmd_response_rejects(raw: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_pmd_response(raw)


@pytest.mark.parametrize(
    "obj",
    [
        PmdResponse(PmdOpCode.START_MEASUREMENT, 0, 5, settings=(PmdSetting(PmdSettingType.SAMPLE_RATE, (1,)),)),
        PmdResponse(PmdOpCode.STOP_MEASUREMENT, 0, 0, settings=(PmdSetting(PmdSettingType.SAMPLE_RATE, (1,)),)),
        PmdResponse(PmdOpCode.START_MEASUREMENT, 0, 0, parameters=b"\x01"),
        PmdResponse(PmdOpCode.START_MEASUREMENT, 0, 256),
        PmdResponse(PmdOpCode.START_MEASUREMENT, -1),
        PmdRequest(PmdOpCode.STOP_MEASUREMENT, 0, (PmdSetting(PmdSettingType.SAMPLE_RATE, (1,)),)),
        PmdRequest(PmdOpCode.START_MEASUREMENT, 0, (PmdSetting(PmdSettingType.SAMPLE_RATE, (0x10000,)),)),
        PmdRequest(PmdOpCode.START_MEASUREMENT, 0, (PmdSetting(PmdSettingType.CHANNELS, (256,)),)),
        PmdRequest(PmdOpCode.START_MEASUREMENT, 0, (PmdSetting(PmdSettingType.SAMPLE_RATE, ()),)),
        PmdRequest(PmdOpCode.START_MEASUREMENT, 0, (PmdSetting(PmdSettingType.SAMPLE_RATE, (1,)),
                                                     PmdSetting(PmdSettingType.SAMPLE_RATE, (2,)))),
        PmdRequest(PmdOpCode.START_MEASUREMENT, 300),
    ],
)
def test_pmd_encode_rejects(obj: PmdRequest | PmdResponse) -> None:
    with pytest.raises(ValueError):
        if isinstance(obj, PmdRequest):
            encode_pmd_request(obj)
        else:
            encode_pmd_response(obj)


@pytest.mark.parametrize(
    ("raw", "types"),
    [(b"\x0f\x05", {0, 2}), (b"\x0f\x00", set()), (b"\x0f\x6f\x00", {0, 1, 2, 3, 5, 6}), (b"\x0f\x00\x01", {8})],
)
def test_pmd_features(raw: bytes, types: set[int]) -> None:
    f = decode_pmd_features(raw)
    assert f.measurement_types == frozenset(types)
    assert f.supports(PmdMeasurementType.ECG) == (0 in types)
    assert decode_pmd_features(encode_pmd_features(f)) == f


@pytest.mark.parametrize("raw", [b"", b"\x0f", b"\xf0\x05", b"\x0f" + bytes(600)])
def test_pmd_features_rejects(raw: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_pmd_features(raw)


_VALUE_MASK = {PmdSettingType.CHANNELS: 0xFF, PmdSettingType.RANGE_MILLIUNIT: 0xFFFFFFFF,
               PmdSettingType.FACTOR: 0xFFFFFFFF}
pmd_settings = st.dictionaries(
    st.sampled_from(list(PmdSettingType)), st.lists(st.integers(0, 0xFFFFFFFF), min_size=1, max_size=4), max_size=6,
).map(lambda d: tuple(PmdSetting(t, tuple(v & _VALUE_MASK.get(t, 0xFFFF) for v in vs)) for t, vs in d.items()))
op_codes = st.sampled_from(list(PmdOpCode))


@PROPERTY
@given(op_codes, st.integers(0, 255), pmd_settings)
def test_pmd_request_round_trip(op: PmdOpCode, mtype: int, setting_list: tuple[PmdSetting, ...]) -> None:
    req = PmdRequest(op, mtype, setting_list if op == PmdOpCode.START_MEASUREMENT else ())
    assert decode_pmd_request(encode_pmd_request(req)) == req
    assert decode_pmd_settings(encode_pmd_settings(setting_list)) == setting_list


@PROPERTY
@given(op_codes, st.integers(0, 255), st.integers(0, 255), st.booleans(), pmd_settings, st.binary(max_size=8))
def test_pmd_response_round_trip(op: PmdOpCode, mtype: int, code: int, more: bool,
                                 setting_list: tuple[PmdSetting, ...], params: bytes) -> None:
    if code == 0 and op != PmdOpCode.STOP_MEASUREMENT:
        resp = PmdResponse(op, mtype, code, more, setting_list)
    else:
        resp = PmdResponse(op, mtype, code, more, (), params)
    raw = encode_pmd_response(resp)
    assert decode_pmd_response(raw) == resp


@PROPERTY
@given(st.frozensets(st.integers(0, 255), max_size=12))
def test_pmd_features_round_trip(types: frozenset[int]) -> None:
    assert decode_pmd_features(encode_pmd_features(PmdFeatures(types))) == PmdFeatures(types)


# -- Polar PMD: ECG data ---------------------------------------------------------------------------

def ecg_frame_bytes(ts: int, samples: bytes, mtype: int = 0, frame_type: int = 0) -> bytes:
    return bytes([mtype]) + ts.to_bytes(8, "little") + bytes([frame_type]) + samples


def test_polar_ecg_frame_hand_vector() -> None:
    ts = 0x0102030405060708
    raw = ecg_frame_bytes(ts, b"\x01\x00\x00" b"\xff\xff\xff" b"\xff\xff\x7f" b"\x00\x00\x80" b"\x2c\x01\x00")
    assert raw[1:9] == b"\x08\x07\x06\x05\x04\x03\x02\x01"
    f = decode_polar_ecg_frame(raw)
    assert f.timestamp_ns == ts
    assert f.samples_uv.dtype == np.int32
    assert f.samples_uv.tolist() == [1, -1, 8_388_607, -8_388_608, 300]
    assert encode_polar_ecg_frame(f) == raw
    assert decode_polar_ecg_frame(bytearray(raw)).samples_uv.tolist() == f.samples_uv.tolist()


def test_polar_ecg_frame_max_size_and_decoupled_buffer() -> None:
    buf = bytearray(ecg_frame_bytes(5, bytes(3 * MAX_ECG_SAMPLES)))
    f = decode_polar_ecg_frame(buf)
    assert len(buf) == 511
    assert len(f.samples_uv) == MAX_ECG_SAMPLES
    buf[10:13] = b"\x01\x00\x00"
    assert f.samples_uv[0] == 0


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        pytest.param(b"", "too short", id="empty"),
        pytest.param(ecg_frame_bytes(1, b"")[:9], "too short", id="header-truncated"),
        pytest.param(ecg_frame_bytes(1, b""), "no samples", id="no-samples"),
        pytest.param(ecg_frame_bytes(1, b"\x01\x00"), "multiple of 3", id="remainder-2"),
        pytest.param(ecg_frame_bytes(1, b"\x01\x00\x00\x01"), "multiple of 3", id="remainder-1"),
        pytest.param(ecg_frame_bytes(1, b"\x01\x00\x00", frame_type=0x80), "delta-compressed", id="compressed"),
        pytest.param(ecg_frame_bytes(1, b"\x01\x00\x00", frame_type=0x81), "delta-compressed", id="compressed-1"),
        pytest.param(ecg_frame_bytes(1, b"\x01\x00\x00", frame_type=0x01), "not supported", id="frame-type-1"),
        pytest.param(ecg_frame_bytes(1, b"\x01\x00\x00", mtype=2), "not ECG", id="acc-frame"),
        pytest.param(ecg_frame_bytes(1 << 63, b"\x01\x00\x00"), "2\\*\\*63", id="timestamp-beyond-int64"),
        pytest.param(ecg_frame_bytes(1, bytes(3 * (MAX_ECG_SAMPLES + 1))), "exceeds", id="too-long"),
    ],
)
def test_polar_ecg_frame_rejects(raw: bytes, match: str) -> None:
    with pytest.raises(DecodeError, match=match):
        decode_polar_ecg_frame(raw)


@pytest.mark.parametrize(
    "frame",
    [
        PolarEcgFrame(0, np.array([], dtype=np.int32)),
        PolarEcgFrame(0, np.zeros(MAX_ECG_SAMPLES + 1, dtype=np.int32)),
        PolarEcgFrame(-1, np.array([1], dtype=np.int32)),
        PolarEcgFrame(1 << 63, np.array([1], dtype=np.int32)),
        PolarEcgFrame(0, np.array([1 << 23], dtype=np.int32)),
        PolarEcgFrame(0, np.array([-(1 << 23) - 1], dtype=np.int64)),
    ],
)
def test_polar_ecg_frame_encode_rejects(frame: PolarEcgFrame) -> None:
    with pytest.raises(ValueError):
        encode_polar_ecg_frame(frame)


def test_polar_time_helpers() -> None:
    assert POLAR_EPOCH_OFFSET_NS == 946_684_800 * 10**9
    assert polar_to_unix_ns(0) == int(datetime(2000, 1, 1, tzinfo=UTC).timestamp()) * 10**9
    assert unix_to_polar_ns(polar_to_unix_ns(123)) == 123
    with pytest.raises(ValueError):
        unix_to_polar_ns(POLAR_EPOCH_OFFSET_NS - 1)
    f = PolarEcgFrame(10_000_000_000, np.zeros(3, dtype=np.int32))
    assert f.timestamp_unix_ns == POLAR_EPOCH_OFFSET_NS + 10_000_000_000
    # 130 Hz: 1/130 s = 7_692_307.69 ns; the last sample carries the timestamp.
    assert ecg_sample_times_ns(f, 130).tolist() == [10_000_000_000 - 15_384_615, 10_000_000_000 - 7_692_308,
                                                    10_000_000_000]
    assert first_sample_time_ns(f, 130) == 10_000_000_000 - 15_384_615
    assert ecg_sample_times_ns(f, 130.0).dtype == np.int64
    one = PolarEcgFrame(7, np.zeros(1, dtype=np.int32))
    assert first_sample_time_ns(one, 130) == 7
    for rate in (0.0, -130.0, math.nan, math.inf):
        with pytest.raises(ValueError):
            ecg_sample_times_ns(f, rate)
        with pytest.raises(ValueError):
            first_sample_time_ns(f, rate)


def test_polar_h10_frame_of_73_samples_spans_n_minus_1_intervals() -> None:
    f = PolarEcgFrame(599_999_999_999, np.arange(73, dtype=np.int32))
    times = ecg_sample_times_ns(f, 130)
    assert times[-1] == f.timestamp_ns
    assert times[0] == first_sample_time_ns(f, 130) == f.timestamp_ns - round(72 * 1e9 / 130)
    assert np.all(np.diff(times) >= 7_692_307)
    assert np.all(np.diff(times) <= 7_692_308)


ecg_frames = st.builds(
    PolarEcgFrame,
    st.integers(0, 2**63 - 1),
    st.lists(st.integers(-(2**23), 2**23 - 1), min_size=1, max_size=MAX_ECG_SAMPLES)
    .map(lambda v: np.array(v, dtype=np.int32)),
)


@PROPERTY
@given(ecg_frames)
def test_polar_ecg_frame_round_trip(f: PolarEcgFrame) -> None:
    raw = encode_polar_ecg_frame(f)
    assert len(raw) == 10 + 3 * len(f.samples_uv)
    g = decode_polar_ecg_frame(raw)
    assert g.timestamp_ns == f.timestamp_ns
    assert g.samples_uv.tolist() == f.samples_uv.tolist()
    times = ecg_sample_times_ns(g, 130)
    assert times[-1] == f.timestamp_ns
    assert times[0] == first_sample_time_ns(g, 130)


# -- Polar PMD: PPG data ---------------------------------------------------------------------------

def test_pmd_verity_start_ppg_request() -> None:
    req = ppg_start_request()
    raw = encode_pmd_request(req)
    assert raw == bytes.fromhex("0201" "00013700" "01011600" "040104")  # 55 Hz, 22 bits, 4 channels
    assert decode_pmd_request(raw) == req
    assert req.measurement_type == PmdMeasurementType.PPG
    assert encode_pmd_request(ppg_start_request(176))[2:6] == bytes.fromhex("0001b000")


def test_polar_ppg_frame_hand_vector() -> None:
    ts = 0x0102030405060708
    body = (b"\x01\x00\x00" b"\xff\xff\xff" b"\xff\xff\x7f" b"\x00\x00\x80"
            b"\x10\x27\x00" b"\x20\x4e\x00" b"\x30\x75\x00" b"\xdc\x05\x00")
    raw = ecg_frame_bytes(ts, body, mtype=1)
    f = decode_polar_ppg_frame(raw)
    assert f.timestamp_ns == ts and f.sample_count == 2
    assert f.samples.dtype == np.int32
    assert f.samples.tolist() == [[1, -1, 8_388_607, -8_388_608], [10_000, 20_000, 30_000, 1_500]]
    assert f.ppg.tolist() == [[1, -1, 8_388_607], [10_000, 20_000, 30_000]]
    assert f.ambient.tolist() == [-8_388_608, 1_500]
    assert encode_polar_ppg_frame(f) == raw
    assert pmd_frame_type(raw) == PmdMeasurementType.PPG
    assert f.timestamp_unix_ns == POLAR_EPOCH_OFFSET_NS + ts


def test_polar_ppg_frame_max_size_and_times() -> None:
    raw = ecg_frame_bytes(5_000_000_000, bytes(12 * MAX_PPG_SAMPLES), mtype=1)
    assert len(raw) <= 512 and len(raw) + 12 > 512
    f = decode_polar_ppg_frame(raw)
    assert f.sample_count == MAX_PPG_SAMPLES == 41
    # 55 Hz: the last sample carries the timestamp, the first is 40 intervals before it
    assert first_sample_time_ns(f, 55) == 5_000_000_000 - round(40 * 1e9 / 55)
    times = ecg_sample_times_ns(f, 55)
    assert times[-1] == f.timestamp_ns and times[0] == first_sample_time_ns(f, 55)


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        pytest.param(b"", "too short", id="empty"),
        pytest.param(ecg_frame_bytes(1, b"", mtype=1), "no samples", id="no-samples"),
        pytest.param(ecg_frame_bytes(1, bytes(9), mtype=1), "multiple of 12", id="three-channels-only"),
        pytest.param(ecg_frame_bytes(1, bytes(13), mtype=1), "multiple of 12", id="remainder"),
        pytest.param(ecg_frame_bytes(1, bytes(12), mtype=1, frame_type=0x80), "delta-compressed", id="compressed"),
        pytest.param(ecg_frame_bytes(1, bytes(12), mtype=1, frame_type=0x07), "not supported", id="frame-type-7"),
        pytest.param(ecg_frame_bytes(1, bytes(12), mtype=0), "not PPG", id="ecg-frame"),
        pytest.param(ecg_frame_bytes(1 << 63, bytes(12), mtype=1), "2\\*\\*63", id="timestamp-beyond-int64"),
        pytest.param(ecg_frame_bytes(1, bytes(12 * (MAX_PPG_SAMPLES + 1)), mtype=1), "exceeds", id="too-long"),
    ],
)
def test_polar_ppg_frame_rejects(raw: bytes, match: str) -> None:
    with pytest.raises(DecodeError, match=match):
        decode_polar_ppg_frame(raw)


def test_an_ecg_frame_is_not_read_as_ppg_nor_a_ppg_frame_as_ecg() -> None:
    ppg = encode_polar_ppg_frame(PolarPpgFrame(1, np.ones((2, 4), dtype=np.int32)))
    with pytest.raises(DecodeError, match="not ECG"):
        decode_polar_ecg_frame(ppg)
    with pytest.raises(DecodeError, match="empty"):
        pmd_frame_type(b"")


@pytest.mark.parametrize(
    "frame",
    [
        PolarPpgFrame(0, np.zeros((0, 4), dtype=np.int32)),
        PolarPpgFrame(0, np.zeros((MAX_PPG_SAMPLES + 1, 4), dtype=np.int32)),
        PolarPpgFrame(0, np.zeros((3, 3), dtype=np.int32)),
        PolarPpgFrame(0, np.zeros(4, dtype=np.int32)),
        PolarPpgFrame(-1, np.zeros((1, 4), dtype=np.int32)),
        PolarPpgFrame(1 << 63, np.zeros((1, 4), dtype=np.int32)),
        PolarPpgFrame(0, np.array([[0, 0, 1 << 23, 0]], dtype=np.int64)),
        PolarPpgFrame(0, np.array([[0, 0, 0, -(1 << 23) - 1]], dtype=np.int64)),
    ],
)
def test_polar_ppg_frame_encode_rejects(frame: PolarPpgFrame) -> None:
    with pytest.raises(ValueError):
        encode_polar_ppg_frame(frame)


ppg_frames = st.builds(
    PolarPpgFrame,
    st.integers(0, 2**63 - 1),
    st.lists(st.lists(st.integers(-(2**23), 2**23 - 1), min_size=4, max_size=4), min_size=1, max_size=MAX_PPG_SAMPLES)
    .map(lambda v: np.array(v, dtype=np.int32)),
)


@PROPERTY
@given(ppg_frames)
def test_polar_ppg_frame_round_trip(f: PolarPpgFrame) -> None:
    raw = encode_polar_ppg_frame(f)
    assert len(raw) == 10 + 12 * f.sample_count
    g = decode_polar_ppg_frame(raw)
    assert g.timestamp_ns == f.timestamp_ns
    assert g.samples.tolist() == f.samples.tolist()
    assert ecg_sample_times_ns(g, 135)[-1] == f.timestamp_ns
