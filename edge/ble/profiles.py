"""What to do with each GATT profile a wearable offers, once connected.

The gateway does not need to be told what a device is: it looks at the discovered
services and subscribes to every characteristic it understands. Static facts (Device
Information, Body Sensor Location) are read once per device and remembered.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from bleak import BleakClient
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.exc import BleakError

from cardiogate.edge.codecs.battery import BATTERY_LEVEL_UUID
from cardiogate.edge.codecs.blood_pressure import BLOOD_PRESSURE_MEASUREMENT_UUID, BLOOD_PRESSURE_SERVICE_UUID
from cardiogate.edge.codecs.current_time import CURRENT_TIME_UUID
from cardiogate.edge.codecs.device_information import DIS_STRING_CHARACTERISTICS, decode_dis_string
from cardiogate.edge.codecs.ecg_waveform import ECG_SERVICE_UUID, ECG_WAVEFORM_UUID
from cardiogate.edge.codecs.errors import DecodeError
from cardiogate.edge.codecs.heart_rate import HEART_RATE_MEASUREMENT_UUID, HEART_RATE_SERVICE_UUID
from cardiogate.edge.codecs.polar_pmd import (
    PMD_CONTROL_POINT_UUID,
    PMD_DATA_UUID,
    PMD_SERVICE_UUID,
    PmdMeasurementType,
    decode_pmd_features,
    ecg_start_request,
    encode_pmd_request,
    ppg_start_request,
)
from cardiogate.edge.codecs.pulse_oximeter import (
    PLX_CONTINUOUS_MEASUREMENT_UUID,
    PLX_SPOT_CHECK_MEASUREMENT_UUID,
    PULSE_OXIMETER_SERVICE_UUID,
)
from cardiogate.edge.gateway_metrics import NOTIFICATIONS
from cardiogate.edge.processing import DeviceProcessor

Handler = Callable[[bytes | bytearray, int], None]

# Advertised services the scanner filters on (a device advertising none of them is ignored).
SCAN_SERVICE_UUIDS = [HEART_RATE_SERVICE_UUID, ECG_SERVICE_UUID, PULSE_OXIMETER_SERVICE_UUID,
                      BLOOD_PRESSURE_SERVICE_UUID, PMD_SERVICE_UUID]


# What a wearable is, for metric labels: the first of these characteristics it offers decides.
_KIND_BY_CHARACTERISTIC = ((PMD_DATA_UUID, "polar_ecg"), (ECG_WAVEFORM_UUID, "ecg_watch"),
                           (BLOOD_PRESSURE_MEASUREMENT_UUID, "bp_cuff"),
                           (PLX_CONTINUOUS_MEASUREMENT_UUID, "pulse_oximeter"),
                           (PLX_SPOT_CHECK_MEASUREMENT_UUID, "pulse_oximeter"),
                           (HEART_RATE_MEASUREMENT_UUID, "hr_monitor"))


def device_kind(offers: Callable[[str], bool]) -> str:
    """A bounded name for what a device is (``offers(uuid)``: it has that characteristic)."""
    return next((kind for uuid, kind in _KIND_BY_CHARACTERISTIC if offers(uuid)), "other")


def _notify(processor: DeviceProcessor, handler: Handler,
            name: str) -> Callable[[BleakGATTCharacteristic, bytearray], None]:
    counted = NOTIFICATIONS.labels(processor.device_kind, name)

    def deliver(_char: BleakGATTCharacteristic, data: bytearray) -> None:
        counted.inc()
        handler(data, time.time_ns())
    return deliver


async def subscribe_all(client: BleakClient, processor: DeviceProcessor) -> list[str]:
    """Subscribe to everything known on ``client``; returns the names of what was subscribed."""
    done: list[str] = []
    services = client.services
    processor.device_kind = device_kind(lambda uuid: services.get_characteristic(uuid) is not None)
    if services.get_characteristic(HEART_RATE_MEASUREMENT_UUID) is not None:
        await client.start_notify(HEART_RATE_MEASUREMENT_UUID,
                                  _notify(processor, processor.on_heart_rate, "heart_rate"))
        done.append("heart_rate")
    if services.get_characteristic(ECG_WAVEFORM_UUID) is not None:
        await client.start_notify(ECG_WAVEFORM_UUID, _notify(processor, processor.on_ecg, "ecg"))
        done.append("ecg")
    for uuid, handler, name in ((PLX_CONTINUOUS_MEASUREMENT_UUID, processor.on_plx_continuous, "plx_continuous"),
                                (PLX_SPOT_CHECK_MEASUREMENT_UUID, processor.on_plx_spot_check, "plx_spot_check"),
                                (BLOOD_PRESSURE_MEASUREMENT_UUID, processor.on_blood_pressure, "blood_pressure")):
        if services.get_characteristic(uuid) is not None:
            await client.start_notify(uuid, _notify(processor, handler, name))  # notify or indicate, bleak picks
            done.append(name)
    if services.get_characteristic(PMD_DATA_UUID) is not None:
        done += await _start_pmd(client, processor)
    await _read_static(client, processor)
    cts = services.get_characteristic(CURRENT_TIME_UUID)
    if cts is not None:
        processor.on_current_time(await client.read_gatt_char(cts), time.time_ns())
        done.append("current_time")
    battery = services.get_characteristic(BATTERY_LEVEL_UUID)
    if battery is not None:
        processor.on_battery(await client.read_gatt_char(battery), time.time_ns())
        if "notify" in battery.properties:
            await client.start_notify(battery, _notify(processor, processor.on_battery, "battery"))
        done.append("battery")
    return done


async def _pmd_types(client: BleakClient, processor: DeviceProcessor) -> frozenset[int]:
    """What the device measures through PMD (the control point's features); ECG alone when it cannot say."""
    try:
        return decode_pmd_features(await client.read_gatt_char(PMD_CONTROL_POINT_UUID)).measurement_types
    except DecodeError as exc:
        processor.decode_error("pmd_features", exc, b"")
    except BleakError:  # a strap whose control point is not readable: the H10 default
        pass
    return frozenset({PmdMeasurementType.ECG})


async def _start_pmd(client: BleakClient, processor: DeviceProcessor) -> list[str]:
    """Polar devices: data first, then control point indications, then ask for ECG and/or PPG (either may start late).

    A strap gives ECG, an optical armband PPG (the pulse the VT check weighs), some devices both.
    """
    await client.start_notify(PMD_DATA_UUID, _notify(processor, processor.on_pmd_data, "pmd_data"))
    await client.start_notify(PMD_CONTROL_POINT_UUID, _notify(processor, processor.on_pmd_control, "pmd_control"))
    types = await _pmd_types(client, processor)
    done = []
    if PmdMeasurementType.ECG in types:
        await client.write_gatt_char(PMD_CONTROL_POINT_UUID, encode_pmd_request(ecg_start_request()), response=True)
        done.append("polar_ecg")
    if PmdMeasurementType.PPG in types:
        request = ppg_start_request(processor.ppg_rate_hz)
        await client.write_gatt_char(PMD_CONTROL_POINT_UUID, encode_pmd_request(request), response=True)
        done.append("polar_ppg")
    return done


async def _read_static(client: BleakClient, processor: DeviceProcessor) -> None:
    """Device Information, once per device: it does not change while the gateway runs."""
    state = processor.state
    if state.model is not None:
        return
    found: dict[str, str] = {}
    for uuid, field_name in DIS_STRING_CHARACTERISTICS.items():
        char = client.services.get_characteristic(uuid)
        if char is None:
            continue
        data = await client.read_gatt_char(char)
        try:
            found[field_name] = decode_dis_string(data)
        except DecodeError as exc:
            processor.decode_error(field_name, exc, data)
    state.manufacturer = found.get("manufacturer_name")
    state.model = found.get("model_number", "")
    state.firmware = found.get("firmware_revision")
