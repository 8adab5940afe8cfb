"""Fuzzing every decoder in cardiogate.edge.codecs: 100,000 inputs each give a value or DecodeError, nothing else.

Half the inputs are random byte strings (mostly 0..40 bytes, some up to 300), half are mutations of
valid encodings (bit flips, byte overwrites, truncation, extension), so the deep paths are reached.
Anything accepted must also survive encode -> decode unchanged (a Heart Rate Measurement that
dropped RR values of 0 comes back with the same fields and nothing left to drop). Seeded numpy
Generators keep every run identical; a failure names the decoder and the input's hex.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pkgutil
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

import cardiogate.edge.codecs
from cardiogate.edge.codecs import (
    battery,
    blood_pressure,
    body_sensor_location,
    current_time,
    device_information,
    ecg_waveform,
    heart_rate,
    polar_pmd,
    pulse_oximeter,
    sfloat,
)
from cardiogate.edge.codecs.blood_pressure import (
    BloodPressureMeasurement,
    BloodPressureStatus,
    PressureUnit,
    PulseRateRange,
)
from cardiogate.edge.codecs.current_time import AdjustReason, CurrentTime
from cardiogate.edge.codecs.device_information import SystemId
from cardiogate.edge.codecs.ecg_waveform import EcgPacket
from cardiogate.edge.codecs.errors import DecodeError
from cardiogate.edge.codecs.heart_rate import HeartRateMeasurement
from cardiogate.edge.codecs.polar_pmd import (
    PmdError,
    PmdFeatures,
    PmdOpCode,
    PmdRequest,
    PmdResponse,
    PmdSetting,
    PmdSettingType,
    PolarEcgFrame,
    PolarPpgFrame,
    ecg_start_request,
    ppg_start_request,
)
from cardiogate.edge.codecs.pulse_oximeter import (
    PlxContinuousMeasurement,
    PlxDeviceSensorStatus,
    PlxMeasurementStatus,
    PlxSpotCheckMeasurement,
    SpO2PR,
)
from cardiogate.edge.codecs.sfloat import GattDateTime, SFloat

N_INPUTS = 100_000


@dataclass(frozen=True)
class Target:
    decode: Callable[[bytes], Any]
    encode: Callable[[Any], bytes]
    seeds: list[bytes]
    comparable: Callable[[Any], Any] = lambda v: v


def _sf(v: float, decimals: int = 1) -> SFloat:
    return sfloat.sfloat_from_float(v, decimals)


DT = GattDateTime(2024, 2, 29, 12, 34, 56)
PAIR = SpO2PR(_sf(97.5), _sf(72, 0))
PAIR2 = SpO2PR(sfloat.SFLOAT_NAN, sfloat.SFLOAT_NRES)


def _plx_continuous_seeds() -> list[bytes]:
    out = []
    for flags in range(32):
        out.append(pulse_oximeter.encode_plx_continuous_measurement(PlxContinuousMeasurement(
            PAIR,
            PAIR2 if flags & 1 else None,
            PAIR if flags & 2 else None,
            PlxMeasurementStatus.VALIDATED_DATA if flags & 4 else None,
            (PlxDeviceSensorStatus.SENSOR_DISCONNECTED | PlxDeviceSensorStatus.POOR_SIGNAL_DETECTED) if flags & 8
            else None,
            _sf(1.7) if flags & 16 else None,
        )))
    return out


def _plx_spot_check_seeds() -> list[bytes]:
    out = []
    for flags in range(32):
        out.append(pulse_oximeter.encode_plx_spot_check_measurement(PlxSpotCheckMeasurement(
            PAIR,
            DT if flags & 1 else None,
            PlxMeasurementStatus.MEASUREMENT_ONGOING if flags & 2 else None,
            PlxDeviceSensorStatus.LOW_PERFUSION_DETECTED if flags & 4 else None,
            sfloat.SFLOAT_POSITIVE_INFINITY if flags & 8 else None,
            bool(flags & 16),
        )))
    return out


def _blood_pressure_seeds() -> list[bytes]:
    out = []
    for flags in range(32):
        out.append(blood_pressure.encode_blood_pressure_measurement(BloodPressureMeasurement(
            _sf(120, 0), _sf(80, 0), _sf(93.3), PressureUnit(flags & 1),
            DT if flags & 2 else None,
            _sf(72, 0) if flags & 4 else None,
            3 if flags & 8 else None,
            BloodPressureStatus(True, False, True, PulseRateRange.BELOW_LOWER_LIMIT) if flags & 16 else None,
        )))
    return out


def _heart_rate_seeds() -> list[bytes]:
    out = []
    for contact in (None, False, True):
        for energy in (None, 1234):
            for rr in ((), (1024,), (800, 820, 790)):
                for wide in (False, True):
                    m = HeartRateMeasurement(72, contact, energy, rr)
                    out.append(heart_rate.encode_heart_rate_measurement(m, force_uint16=wide))
    return out


def _ecg_waveform_seeds() -> list[bytes]:
    rng = np.random.default_rng(1)
    return [ecg_waveform.encode_ecg_packet(EcgPacket(
        seq, 1_700_000_000_000_000, 250, 1000, rng.integers(-2000, 2000, n).astype(np.int16), lead_off))
        for seq, n, lead_off in ((0, 1, False), (7, 10, True), (2**32 - 1, 114, False))]


def _polar_ecg_seeds() -> list[bytes]:
    rng = np.random.default_rng(2)
    return [polar_pmd.encode_polar_ecg_frame(PolarEcgFrame(ts, rng.integers(-(2**23), 2**23, n).astype(np.int32)))
            for ts, n in ((0, 1), (599_999_999_999, 10), (2**62, 73))]


def _polar_ppg_seeds() -> list[bytes]:
    rng = np.random.default_rng(3)
    return [polar_pmd.encode_polar_ppg_frame(PolarPpgFrame(ts, rng.integers(-(2**23), 2**23, (n, 4)).astype(np.int32)))
            for ts, n in ((0, 1), (599_999_999_999, 16), (2**62, 41))]


SETTINGS = (PmdSetting(PmdSettingType.SAMPLE_RATE, (130, 200)), PmdSetting(PmdSettingType.RESOLUTION, (14,)),
            PmdSetting(PmdSettingType.CHANNELS, (3,)), PmdSetting(PmdSettingType.FACTOR, (0x3F800000,)))


def _array_comparable(v: Any) -> Any:
    """Dataclasses holding numpy arrays compare by their fields with the samples as a list."""
    fields = [getattr(v, f) for f in v.__dataclass_fields__]
    return tuple(f.tolist() if isinstance(f, np.ndarray) else f for f in fields)


TARGETS: dict[str, Target] = {
    "sfloat.decode_sfloat": Target(sfloat.decode_sfloat, sfloat.encode_sfloat,
                                   [b"\xcf\xf3", b"\xff\x07", b"\x00\x08", b"\xfe\x07", b"\x02\x08", b"\x01\x08"]),
    "sfloat.decode_date_time": Target(sfloat.decode_date_time, sfloat.encode_date_time,
                                      [sfloat.encode_date_time(DT), bytes(7),
                                       sfloat.encode_date_time(GattDateTime(0, 2, 29, 23, 59, 59))]),
    "body_sensor_location.decode_body_sensor_location": Target(
        body_sensor_location.decode_body_sensor_location, body_sensor_location.encode_body_sensor_location,
        [bytes([i]) for i in range(7)]),
    "battery.decode_battery_level": Target(battery.decode_battery_level, battery.encode_battery_level,
                                           [b"\x00", b"\x32", b"\x64"]),
    "device_information.decode_dis_string": Target(
        device_information.decode_dis_string, device_information.encode_dis_string,
        [b"Polar Electro Oy", b"H10", b"3.0.35\x00\x00", "Ωmega µ".encode(), b"A" * 128]),
    "device_information.decode_system_id": Target(
        device_information.decode_system_id, device_information.encode_system_id,
        [device_information.encode_system_id(SystemId(0x0504030201, 0xA0B0C0))]),
    "current_time.decode_current_time": Target(
        current_time.decode_current_time, current_time.encode_current_time,
        [current_time.encode_current_time(CurrentTime(DT, 4, 128, AdjustReason.MANUAL_TIME_UPDATE)),
         current_time.encode_current_time(CurrentTime(GattDateTime(0, 0, 0))),
         current_time.encode_current_time(CurrentTime.from_unix_ns(1_234_567_890_123_456_789))]),
    "pulse_oximeter.decode_plx_continuous_measurement": Target(
        pulse_oximeter.decode_plx_continuous_measurement, pulse_oximeter.encode_plx_continuous_measurement,
        _plx_continuous_seeds()),
    "pulse_oximeter.decode_plx_spot_check_measurement": Target(
        pulse_oximeter.decode_plx_spot_check_measurement, pulse_oximeter.encode_plx_spot_check_measurement,
        _plx_spot_check_seeds()),
    "blood_pressure.decode_blood_pressure_measurement": Target(
        blood_pressure.decode_blood_pressure_measurement, blood_pressure.encode_blood_pressure_measurement,
        _blood_pressure_seeds()),
    "polar_pmd.decode_pmd_request": Target(
        polar_pmd.decode_pmd_request, polar_pmd.encode_pmd_request,
        [polar_pmd.encode_pmd_request(r) for r in (
            ecg_start_request(), PmdRequest(PmdOpCode.GET_MEASUREMENT_SETTINGS), PmdRequest(PmdOpCode.STOP_MEASUREMENT),
            ppg_start_request(), ppg_start_request(176),
            PmdRequest(PmdOpCode.START_MEASUREMENT, 2, SETTINGS))]),
    "polar_pmd.decode_pmd_response": Target(
        polar_pmd.decode_pmd_response, polar_pmd.encode_pmd_response,
        [polar_pmd.encode_pmd_response(r) for r in (
            PmdResponse(PmdOpCode.GET_MEASUREMENT_SETTINGS, 0, 0, False, SETTINGS),
            PmdResponse(PmdOpCode.START_MEASUREMENT, 0),
            PmdResponse(PmdOpCode.START_MEASUREMENT, 0, PmdError.ALREADY_IN_STATE),
            PmdResponse(PmdOpCode.STOP_MEASUREMENT, 0, 0, True, (), b"\x01\x02"))]),
    "polar_pmd.decode_pmd_settings": Target(polar_pmd.decode_pmd_settings, polar_pmd.encode_pmd_settings,
                                            [polar_pmd.encode_pmd_settings(SETTINGS), b"\x00\x01\x82\x00"]),
    "polar_pmd.decode_pmd_features": Target(
        polar_pmd.decode_pmd_features, polar_pmd.encode_pmd_features,
        [b"\x0f\x05", polar_pmd.encode_pmd_features(PmdFeatures(frozenset({0, 1, 2, 3, 5, 6, 9})))]),
    "polar_pmd.decode_polar_ecg_frame": Target(polar_pmd.decode_polar_ecg_frame, polar_pmd.encode_polar_ecg_frame,
                                               _polar_ecg_seeds(), _array_comparable),
    "polar_pmd.decode_polar_ppg_frame": Target(polar_pmd.decode_polar_ppg_frame, polar_pmd.encode_polar_ppg_frame,
                                               _polar_ppg_seeds(), _array_comparable),
    "heart_rate.decode_heart_rate_measurement": Target(
        heart_rate.decode_heart_rate_measurement, heart_rate.encode_heart_rate_measurement, _heart_rate_seeds(),
        lambda m: dataclasses.replace(m, rr_dropped=0)),  # the count of dropped RR values is not encoded
    "ecg_waveform.decode_ecg_packet": Target(ecg_waveform.decode_ecg_packet, ecg_waveform.encode_ecg_packet,
                                             _ecg_waveform_seeds(), _array_comparable),
}


def test_every_decoder_in_edge_codecs_is_fuzzed() -> None:
    """A new decode_* function anywhere in cardiogate.edge.codecs must be added to TARGETS."""
    found = set()
    for info in pkgutil.iter_modules(cardiogate.edge.codecs.__path__):
        module = importlib.import_module(f"cardiogate.edge.codecs.{info.name}")
        for name, obj in inspect.getmembers(module, inspect.isfunction):
            if name.startswith("decode_") and obj.__module__ == module.__name__:
                found.add(f"{info.name}.{name}")
    assert found == set(TARGETS)


def test_seeds_are_valid() -> None:
    for name, target in TARGETS.items():
        for seed in target.seeds:
            target.decode(seed)  # raises if a seed is not a valid encoding
        assert target.seeds, name


def _inputs(rng: np.random.Generator, seeds: list[bytes], n: int) -> list[bytes]:
    """n//2 random strings and n - n//2 mutated seeds, shuffled."""
    n_random = n // 2
    long = rng.random(n_random) < 0.15
    lengths = np.where(long, rng.integers(41, 301, n_random), rng.integers(0, 41, n_random))
    pool = rng.bytes(int(lengths.sum()))
    ends = np.cumsum(lengths).tolist()
    starts = [0, *ends[:-1]]
    out = [pool[s:e] for s, e in zip(starts, ends, strict=True)]

    n_mut = n - n_random
    which = rng.integers(0, len(seeds), n_mut).tolist()
    kinds = rng.integers(0, 8, n_mut).tolist()
    a = rng.integers(0, 1 << 30, n_mut).tolist()
    b = rng.integers(0, 1 << 30, n_mut).tolist()
    extra = rng.bytes(8 * n_mut)
    for i in range(n_mut):
        buf = bytearray(seeds[which[i]])
        size = len(buf)
        kind = kinds[i]
        if kind <= 2 and size:  # flip one bit (most often: the smallest change)
            buf[a[i] % size] ^= 1 << (b[i] % 8)
        elif kind == 3 and size:  # flip two bits
            buf[a[i] % size] ^= 1 << (b[i] % 8)
            buf[b[i] % size] ^= 1 << (a[i] % 8)
        elif kind == 4 and size:  # overwrite one byte
            buf[a[i] % size] = b[i] & 0xFF
        elif kind == 5:  # truncate
            del buf[a[i] % (size + 1):]
        elif kind == 6:  # extend with 1..8 random bytes
            buf += extra[8 * i: 8 * i + 1 + b[i] % 8]
        else:  # flip a bit and cut or extend by one
            if size:
                buf[a[i] % size] ^= 1 << (b[i] % 8)
            if b[i] & 0x100 and buf:
                del buf[-1]
            else:
                buf.append(a[i] & 0xFF)
        out.append(bytes(buf))
    order = rng.permutation(n).tolist()
    return [out[j] for j in order]


@pytest.mark.parametrize("name", list(TARGETS))
def test_100k_inputs_give_a_value_or_decode_error(name: str) -> None:
    target = TARGETS[name]
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    inputs = _inputs(rng, target.seeds, N_INPUTS)
    decode, encode, comparable = target.decode, target.encode, target.comparable
    decoded = rejected = 0
    for raw in inputs:
        try:
            value = decode(raw)
        except DecodeError:
            rejected += 1
            continue
        except Exception as e:
            pytest.fail(f"{name} raised {type(e).__name__} on {raw.hex()}: {e}")
        decoded += 1
        try:
            again = decode(encode(value))
        except Exception as e:
            pytest.fail(f"{name}: {raw.hex()} decoded to {value!r}, which does not re-encode: {e!r}")
        assert comparable(again) == comparable(value), raw.hex()
    assert decoded + rejected == N_INPUTS
    assert decoded >= 1_000, f"{name}: only {decoded} inputs decoded; the fuzz does not reach the deep paths"
    assert rejected >= 1_000, f"{name}: only {rejected} inputs rejected"
