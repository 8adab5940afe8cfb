"""A simulated wearable: a real GATT peripheral on a bumble virtual controller.

Profiles (which services the device offers) follow real products: our ECG watch
(Heart Rate, the cardiogate ECG waveform service, Pulse Oximeter, Blood Pressure,
Battery, Device Information, Current Time), a plain HR watch, a pulse oximeter, a BP
cuff, and a Polar H10-like strap (Heart Rate plus Polar Measurement Data ECG at 130 Hz).
Byte formats come from edge's codecs, so the simulator and the gateway agree by
construction and tests check them against hand-written bytes.

The watch's clock is the host clock at start plus its own elapsed time, optionally
drifting (ppm) and jumping. Faults (random link drops, walking out of range, late ECG
start, battery drain, malformed packets) are seeded, so a rerun injects the same ones.
Everything put on the air, and every ECG packet produced while nobody listened, goes
to the ground-truth log so tests can account for every sample.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
from bumble.controller import Controller
from bumble.core import UUID, AdvertisingData
from bumble.device import Connection, Device
from bumble.gatt import Characteristic, CharacteristicValue, Service
from bumble.hci import Address
from bumble.host import Host
from bumble.link import LocalLink
from bumble.transport.common import AsyncPipeSink

from cardiogate.edge.codecs.battery import BATTERY_LEVEL_UUID, BATTERY_SERVICE_UUID, encode_battery_level
from cardiogate.edge.codecs.blood_pressure import (
    BLOOD_PRESSURE_MEASUREMENT_UUID,
    BLOOD_PRESSURE_SERVICE_UUID,
    BloodPressureMeasurement,
    encode_blood_pressure_measurement,
)
from cardiogate.edge.codecs.current_time import (
    CURRENT_TIME_SERVICE_UUID,
    CURRENT_TIME_UUID,
    CurrentTime,
    encode_current_time,
)
from cardiogate.edge.codecs.device_information import (
    DEVICE_INFORMATION_SERVICE_UUID,
    FIRMWARE_REVISION_UUID,
    MANUFACTURER_NAME_UUID,
    MODEL_NUMBER_UUID,
    SERIAL_NUMBER_UUID,
    encode_dis_string,
)
from cardiogate.edge.codecs.ecg_waveform import (
    ECG_SERVICE_UUID,
    ECG_WAVEFORM_UUID,
    EcgPacket,
    encode_ecg_packet,
    samples_per_packet,
)
from cardiogate.edge.codecs.heart_rate import HeartRateMeasurement, encode_heart_rate_measurement, rr_ms_to_1024
from cardiogate.edge.codecs.polar_pmd import (
    ECG_SAMPLE_RATE_HZ,
    MAX_PPG_SAMPLES,
    PMD_CONTROL_POINT_UUID,
    PMD_DATA_UUID,
    PMD_SERVICE_UUID,
    PPG_SAMPLE_RATES_HZ,
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
    decode_pmd_request,
    encode_pmd_features,
    encode_pmd_response,
    encode_polar_ecg_frame,
    encode_polar_ppg_frame,
    unix_to_polar_ns,
)
from cardiogate.edge.codecs.pulse_oximeter import (
    PLX_CONTINUOUS_MEASUREMENT_UUID,
    PULSE_OXIMETER_SERVICE_UUID,
    PlxContinuousMeasurement,
    SpO2PR,
    encode_plx_continuous_measurement,
)
from cardiogate.edge.codecs.sfloat import GattDateTime, sfloat_from_float
from cardiogate.sim.patient import PatientScenario, PatientSimulator
from cardiogate.sim.physiology import uv_to_int16, uv_to_int24
from cardiogate.sim.scenario import WatchSpec
from cardiogate.sim.truth import GroundTruthLog

if TYPE_CHECKING:
    from cardiogate.sim.wfdb_replay import WfdbRecordSource

HRS = UUID.from_16_bits(0x180D)
HRM = UUID.from_16_bits(0x2A37)
RESOLUTION_NV = 1000
NOMINAL_MTU = 247
ADVERTISING_INTERVAL_MS = 100  # fast advertising, as wearables do while they wait for a connection
MAX_PACKET_AGE_S = 0.5  # a partly filled ECG packet goes out after this long
MALFORMED_HRM = b"\x10\x48\x01"  # RR-interval flag set but an odd number of RR bytes
_SERVICES: dict[str, tuple[str, ...]] = {
    "ecg_watch": ("hrs", "ecg", "plx", "bps", "battery", "dis", "cts"),
    "hr_watch": ("hrs", "battery", "dis"),
    "pulse_oximeter": ("plx", "battery", "dis"),
    "bp_cuff": ("bps", "battery", "dis", "cts"),
    "polar_h10": ("hrs", "pmd", "battery", "dis"),
    "polar_ecg_ppg": ("hrs", "pmd", "battery", "dis"),
    "polar_verity": ("hrs", "pmd", "battery", "dis"),
}
_MODEL = {"ecg_watch": "CG-ECG-1", "hr_watch": "CG-HR-1", "pulse_oximeter": "CG-OX-1", "bp_cuff": "CG-BP-1",
          "polar_h10": "H10-SIM", "polar_ecg_ppg": "H10-PPG-SIM", "polar_verity": "SENSE-SIM"}
# What each Polar-like profile measures through PMD: an H10 strap ECG; a strap with an optical sensor
# ECG and PPG; a Verity Sense-like armband PPG only.
_PMD_TYPES: dict[str, frozenset[int]] = {
    "polar_h10": frozenset({PmdMeasurementType.ECG}),
    "polar_ecg_ppg": frozenset({PmdMeasurementType.ECG, PmdMeasurementType.PPG}),
    "polar_verity": frozenset({PmdMeasurementType.PPG}),
}
POLAR_SAMPLES_PER_FRAME = 73  # what an H10 sends per notification
PPG_FRAME_S = 0.3  # an optical sensor's notification holds about this much signal (at most MAX_PPG_SAMPLES)


def _uuid(u: str) -> UUID:
    return UUID(u)


class DeviceClock:
    """The watch's own clock: host time at start, plus crystal drift and jumps (the clock being set).

    The watch samples on its own crystal: sample k is taken at device time k / fs, which is
    k / (fs * (1 + drift)) of real time. A jump moves the timestamps, not the sampling.
    """

    def __init__(self, start_us: int, drift_ppm: float, jumps: list[tuple[float, float]]) -> None:
        self.start_us = start_us
        self.scale = 1.0 + drift_ppm * 1e-6
        self._jumps = sorted(jumps)

    def device_elapsed_s(self, t_s: float) -> float:
        """Seconds the watch's crystal has counted after ``t_s`` seconds of real time."""
        return t_s * self.scale

    def stamp_us(self, device_elapsed_s: float) -> int:
        """The timestamp the watch writes for an instant ``device_elapsed_s`` into its own time base."""
        real_s = device_elapsed_s / self.scale
        jump = sum(j for at, j in self._jumps if at <= real_s)
        return self.start_us + round((device_elapsed_s + jump) * 1_000_000)

    def at(self, t_s: float) -> int:
        """The watch's timestamp at ``t_s`` seconds of real time since it started."""
        return self.stamp_us(self.device_elapsed_s(t_s))


class SimulatedWatch:
    """One wearable: GATT server, advertising, measurements and faults, driven by :meth:`tick`."""

    def __init__(self, spec: WatchSpec, link: LocalLink, truth: GroundTruthLog) -> None:
        self.spec = spec
        self._truth = truth
        self._rng = np.random.default_rng(spec.seed + 104729)
        controller = Controller(spec.name, link=link, public_address=spec.address)
        self.device = Device(name=spec.name, address=Address(spec.address),
                             host=Host(controller, AsyncPipeSink(controller)))
        self.services = _SERVICES[spec.profile]
        self._chars: dict[str, Characteristic[Any]] = {}
        self.device.add_services(self._build_services())
        self.patient: PatientSimulator | None = None
        self.source: PatientSimulator | WfdbRecordSource
        if spec.record is not None:
            from cardiogate.sim.wfdb_replay import WfdbRecordSource  # wfdb is heavy: only replays pay for it

            self.source = WfdbRecordSource(spec.record, spec.record_channel, spec.sample_rate_hz, loop=spec.record_loop)
        else:
            scenario = spec.patient or PatientScenario.from_heart_rate_knots(spec.heart_rate)
            self.source = self.patient = PatientSimulator(scenario, seed=spec.seed, ecg_rate_hz=spec.sample_rate_hz)
        self.clock = DeviceClock(0, spec.faults.clock_drift_ppm, spec.faults.clock_jumps)
        self.ecg_sequence = 0
        self.ecg_samples_sent = 0
        self.ecg_samples_unsent = 0
        self.hr_sent = 0
        self.last_hr = 0
        self.drops = 0
        self._next_index = 0
        self._next_hr_s = 1.0
        self._last_hr_beat_s = 0.0
        self._next_spo2_s = spec.spo2_interval_s
        self._next_bp_s = spec.bp_interval_s
        self._pending_bp: list[bytes] = []
        self._battery = spec.faults.battery_start_percent
        self._battery_sent: int | None = None
        self._faults = sorted(spec.malformed_hr_at_s)
        self._next_drop_s = self._draw_drop(0.0)
        self._offline_until = 0.0
        self._windows = sorted((s, s + d) for s, d in spec.faults.out_of_range)
        self._advertising = False
        self._mtu = NOMINAL_MTU
        self._tasks: set[asyncio.Task[None]] = set()
        self._t0: float | None = None
        self._pmd_types = _PMD_TYPES.get(spec.profile, frozenset())
        if spec.record is not None:  # a replayed ECG record has no pulse to show
            self._pmd_types -= {PmdMeasurementType.PPG}
        self._pmd_started_at: float | None = None  # real seconds since start when ECG was requested
        self._pmd_next_index = 0
        self.pmd_frames = 0
        self._ppg_rate_hz: int | None = None  # set by a start-PPG request: the rate the client asked for
        self._ppg_next_index = 0
        self.ppg_frames = 0

    # -- GATT ------------------------------------------------------------
    def _char(self, key: str, uuid: UUID, props: Characteristic.Properties, value: bytes = b"") -> Characteristic[Any]:
        c: Characteristic[Any] = Characteristic(uuid, props, Characteristic.READABLE, value)
        self._chars[key] = c
        return c

    def _build_services(self) -> list[Service]:
        notify, indicate = Characteristic.Properties.NOTIFY, Characteristic.Properties.INDICATE
        read = Characteristic.Properties.READ
        out = []
        if "hrs" in self.services:
            out.append(Service(HRS, [self._char("hrm", HRM, notify, b"\x00\x00")]))
        if "ecg" in self.services:
            out.append(Service(_uuid(ECG_SERVICE_UUID), [self._char("ecg", _uuid(ECG_WAVEFORM_UUID), notify)]))
        if "plx" in self.services:
            out.append(Service(_uuid(PULSE_OXIMETER_SERVICE_UUID),
                               [self._char("plx", _uuid(PLX_CONTINUOUS_MEASUREMENT_UUID), notify)]))
        if "bps" in self.services:
            out.append(Service(_uuid(BLOOD_PRESSURE_SERVICE_UUID),
                               [self._char("bpm", _uuid(BLOOD_PRESSURE_MEASUREMENT_UUID), indicate)]))
        if "battery" in self.services:
            level = encode_battery_level(round(self.spec.faults.battery_start_percent))
            out.append(Service(_uuid(BATTERY_SERVICE_UUID),
                               [self._char("battery", _uuid(BATTERY_LEVEL_UUID), read | notify, level)]))
        if "pmd" in self.services:
            cp: Characteristic[Any] = Characteristic(
                _uuid(PMD_CONTROL_POINT_UUID), Characteristic.Properties.WRITE | indicate | read,
                Characteristic.READABLE | Characteristic.WRITEABLE,
                CharacteristicValue(read=lambda _c: encode_pmd_features(PmdFeatures(self._pmd_types)),
                                    write=self._on_pmd_write))
            self._chars["pmd_cp"] = cp
            out.append(Service(_uuid(PMD_SERVICE_UUID), [cp, self._char("pmd_data", _uuid(PMD_DATA_UUID), notify)]))
        if "dis" in self.services:
            out.append(Service(_uuid(DEVICE_INFORMATION_SERVICE_UUID), [
                self._char("dis_mfr", _uuid(MANUFACTURER_NAME_UUID), read, encode_dis_string("cardiogate-sim")),
                self._char("dis_model", _uuid(MODEL_NUMBER_UUID), read, encode_dis_string(_MODEL[self.spec.profile])),
                self._char("dis_serial", _uuid(SERIAL_NUMBER_UUID), read,
                           encode_dis_string(self.spec.address.replace(":", ""))),
                self._char("dis_fw", _uuid(FIRMWARE_REVISION_UUID), read, encode_dis_string("1.4.2")),
            ]))
        if "cts" in self.services:
            cts: Characteristic[Any] = Characteristic(
                _uuid(CURRENT_TIME_UUID), read, Characteristic.READABLE,
                CharacteristicValue(read=lambda _c: encode_current_time(
                    CurrentTime.from_unix_ns(self.clock.at(self._now_s()) * 1000))))
            self._chars["cts"] = cts
            out.append(Service(_uuid(CURRENT_TIME_SERVICE_UUID), [cts]))
        return out

    def _now_s(self) -> float:
        return time.monotonic() - self._t0 if self._t0 is not None else 0.0

    def _advertised_16(self) -> bytes:
        ids = {"hrs": 0x180D, "plx": 0x1822, "bps": 0x1810, "cts": 0x1805}
        return b"".join(bytes(UUID.from_16_bits(ids[s])) for s in self.services if s in ids)

    async def start(self) -> None:
        """Power on and advertise."""
        self.clock = DeviceClock(time.time_ns() // 1000, self.spec.faults.clock_drift_ppm,
                                 self.spec.faults.clock_jumps)
        self.device.gatt_server.on("characteristic_subscription", self._on_subscription)
        await self.device.power_on()
        await self._advertise()
        if self.patient is not None:
            for event in self.patient.truth_events():
                self._truth.write(watch=self.spec.address, kind="scenario_event", start_us=self.clock.at(0.0),
                                  event=event.as_record())

    async def _advertise(self) -> None:
        if self._advertising:
            return
        adv = bytes(AdvertisingData([
            (AdvertisingData.FLAGS, bytes([0x06])),
            (AdvertisingData.INCOMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS, self._advertised_16()),
            (AdvertisingData.COMPLETE_LOCAL_NAME, self.spec.name.encode()),
        ]))
        extra = ECG_SERVICE_UUID if "ecg" in self.services else PMD_SERVICE_UUID if "pmd" in self.services else None
        scan_rsp = bytes(AdvertisingData([
            (AdvertisingData.INCOMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS, bytes(UUID(extra))),
        ])) if extra else b""
        await self.device.start_advertising(advertising_data=adv, scan_response_data=scan_rsp, auto_restart=True,
                                            advertising_interval_min=ADVERTISING_INTERVAL_MS,
                                            advertising_interval_max=ADVERTISING_INTERVAL_MS)
        self._advertising = True

    async def _stop_advertising(self) -> None:
        with contextlib.suppress(Exception):  # also when bumble's auto-restart re-enabled it behind our back
            await self.device.stop_advertising()
        self._advertising = False

    def _on_subscription(self, connection: Connection, characteristic: Characteristic[Any],
                         notify_enabled: bool, indicate_enabled: bool) -> None:
        key = next((k for k, c in self._chars.items() if c is characteristic), None)
        if key is None:
            return
        self._truth.write(watch=self.spec.address, kind="subscribed", characteristic=key,
                          enabled=notify_enabled or indicate_enabled, host_us=time.time_ns() // 1000)
        if key == "bpm" and indicate_enabled and self._pending_bp:
            self._spawn(self._flush_bp())

    def _subscribed(self, key: str) -> list[Connection]:
        characteristic = self._chars.get(key)
        if characteristic is None:
            return []
        subs = self.device.gatt_server.subscribers
        out = []
        for conn in list(self.device.connections.values()):
            cccd = subs.get(conn, {}).get(characteristic.handle)
            if cccd and len(cccd) == 2 and cccd[0] & 0x03:
                out.append(conn)
        return out

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- the clock-driven loop ----------------------------------------------
    async def tick(self, elapsed: float) -> None:
        """Do everything due at ``elapsed`` seconds since the fleet started."""
        if self._t0 is None:
            self._t0 = time.monotonic() - elapsed
        await self._faults_due(elapsed)
        if "pmd" in self.services:
            await self._pmd_due(elapsed)
            await self._ppg_due(elapsed)
        if "ecg" in self.services:
            await self._ecg_due(elapsed)
        if "hrs" in self.services and elapsed >= self._next_hr_s:
            await self._send_hr(self._next_hr_s - 1.0, self._next_hr_s)
            self._next_hr_s += 1.0
        while self._faults and elapsed >= self._faults[0]:
            await self._send_malformed(self._faults.pop(0))
        if "plx" in self.services and elapsed >= self._next_spo2_s:
            await self._send_spo2(self._next_spo2_s)
            self._next_spo2_s += self.spec.spo2_interval_s
        if "bps" in self.services and elapsed >= self._next_bp_s:
            self._measure_bp(self._next_bp_s)
            self._next_bp_s += self.spec.bp_interval_s
        if "battery" in self.services:
            await self._battery_due(elapsed)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- faults -------------------------------------------------------------
    def _draw_drop(self, now: float) -> float:
        mean = self.spec.faults.disconnect_every_s
        return float("inf") if mean is None else now + float(self._rng.exponential(mean))

    def _in_range(self, t: float) -> bool:
        return not any(a <= t < b for a, b in self._windows)

    async def _faults_due(self, t: float) -> None:
        if t >= self._next_drop_s:
            lo, hi = self.spec.faults.offline_s
            away = float(self._rng.uniform(lo, hi))
            self._next_drop_s = self._draw_drop(t + away)
            await self._go_away(t, t + away, "drop")
        for a, b in self._windows:
            if a <= t < b and self._offline_until < b:
                await self._go_away(t, b, "out_of_range")
        if not self._advertising and t >= self._offline_until and self._in_range(t):
            await self._advertise()
            self._truth.write(watch=self.spec.address, kind="link", event="back", host_us=time.time_ns() // 1000)

    async def _go_away(self, t: float, until: float, why: str) -> None:
        self._offline_until = max(self._offline_until, until)
        self.drops += 1
        await self._stop_advertising()
        had = list(self.device.connections.values())
        self._truth.write(watch=self.spec.address, kind="link", event=why, connected=bool(had),
                          host_us=time.time_ns() // 1000, away_s=until - t)
        for conn in had:
            with contextlib.suppress(Exception):
                await conn.disconnect()
        await self._stop_advertising()  # auto-restart may have re-enabled it on disconnection

    # -- ECG ----------------------------------------------------------------
    async def _ecg_due(self, elapsed: float) -> None:
        t = self.clock.device_elapsed_s(elapsed) - self.spec.faults.ecg_start_delay_s
        if t <= 0:
            return
        fs = self.spec.sample_rate_hz
        due = int(t * fs)
        connections = self._subscribed("ecg")
        if connections:
            self._mtu = min(c.att_mtu for c in connections)
        per_packet = samples_per_packet(self._mtu)
        while due - self._next_index >= per_packet or (
                due > self._next_index and (due - self._next_index) / fs >= MAX_PACKET_AGE_S):
            count = min(per_packet, due - self._next_index)
            await self._send_ecg_packet(self._next_index, count, connections)
            self._next_index += count

    async def _send_ecg_packet(self, first: int, count: int, connections: list[Connection]) -> None:
        fs = self.spec.sample_rate_hz
        samples = uv_to_int16(self.source.ecg_uv(first, count), RESOLUTION_NV)
        if len(samples) < count:  # a replayed record ran out
            if not len(samples):
                return
            count = len(samples)
        t0_us = self.clock.stamp_us(first / fs + self.spec.faults.ecg_start_delay_s)
        packet = EcgPacket(self.ecg_sequence, t0_us, fs, RESOLUTION_NV, samples)
        self.ecg_sequence = (self.ecg_sequence + 1) & 0xFFFFFFFF
        if not connections:  # produced but nobody listening: the gateway must report a gap
            self.ecg_samples_unsent += count
            self._truth.write(watch=self.spec.address, kind="ecg_unsent", seq=packet.sequence, t0_us=t0_us, fs=fs,
                              n=count)
            return
        payload = encode_ecg_packet(packet)
        for conn in connections:
            await self.device.notify_subscriber(conn, self._chars["ecg"], payload, force=True)
        self.ecg_samples_sent += count
        self._truth.write(watch=self.spec.address, kind="ecg", seq=packet.sequence, t0_us=t0_us, fs=fs,
                          res_nv=RESOLUTION_NV, samples=np.asarray(samples).tolist())

    # -- Polar Measurement Data (H10-like strap) -----------------------------
    def _on_pmd_write(self, connection: Connection, value: bytes) -> None:
        """Control point: start/stop ECG or PPG, answered with an indication as a strap does."""
        try:
            request = decode_pmd_request(value)
        except Exception:
            response = PmdResponse(PmdOpCode.START_MEASUREMENT, 0, PmdError.INVALID_PARAMETER)
        else:
            response = self._pmd_answer(request)
        self._truth.write(watch=self.spec.address, kind="pmd_request", payload=bytes(value).hex(),
                          host_us=time.time_ns() // 1000)
        self._spawn(self._indicate_pmd(connection, encode_pmd_response(response)))

    def _pmd_answer(self, request: PmdRequest) -> PmdResponse:
        op, mtype = request.op_code, request.measurement_type
        if mtype not in self._pmd_types:
            return PmdResponse(op, mtype, PmdError.NOT_SUPPORTED)
        ppg = mtype == PmdMeasurementType.PPG
        if op == PmdOpCode.GET_MEASUREMENT_SETTINGS:
            rates = PPG_SAMPLE_RATES_HZ if ppg else (ECG_SAMPLE_RATE_HZ,)
            offered = (PmdSetting(PmdSettingType.SAMPLE_RATE, tuple(rates)),
                       PmdSetting(PmdSettingType.RESOLUTION, (22 if ppg else 14,)))
            return PmdResponse(op, mtype, PmdError.SUCCESS, settings=offered + (
                (PmdSetting(PmdSettingType.CHANNELS, (4,)),) if ppg else ()))
        if op == PmdOpCode.STOP_MEASUREMENT:
            if ppg:
                self._ppg_rate_hz = None
            else:
                self._pmd_started_at = None
            return PmdResponse(op, mtype, PmdError.SUCCESS)
        if ppg:
            asked = next((s.values[0] for s in request.settings if s.setting_type == PmdSettingType.SAMPLE_RATE), None)
            if asked is None or asked not in PPG_SAMPLE_RATES_HZ:
                return PmdResponse(op, mtype, PmdError.INVALID_SAMPLE_RATE)
            if self._ppg_rate_hz is None:
                self._ppg_rate_hz, self._ppg_next_index = int(asked), 0
        elif self._pmd_started_at is None:  # a real strap starts its ECG late (15-30 s on an H10)
            self._pmd_started_at = self._now_s()
        return PmdResponse(op, mtype, PmdError.SUCCESS, settings=request.settings)

    async def _indicate_pmd(self, connection: Connection, payload: bytes) -> None:
        with contextlib.suppress(Exception):
            await self.device.indicate_subscriber(connection, self._chars["pmd_cp"], payload, force=True)

    async def _pmd_due(self, elapsed: float) -> None:
        """Stream ECG frames on the strap's own time base once started (after the late-start delay)."""
        if self._pmd_started_at is None:
            return
        connections = self._subscribed("pmd_data")
        if not connections:
            self._pmd_started_at = None  # the strap stops streaming when its client is gone
            return
        fs = self.spec.sample_rate_hz
        t = self.clock.device_elapsed_s(elapsed) - self.spec.faults.ecg_start_delay_s - self._pmd_started_at
        if t <= 0:
            return
        due = int(self.clock.device_elapsed_s(elapsed) * fs)
        if self._pmd_next_index == 0 or due - self._pmd_next_index > 10 * fs:
            self._pmd_next_index = due  # (re)start streaming from now: the first frame is a frame from now
        while due - self._pmd_next_index >= POLAR_SAMPLES_PER_FRAME:
            first = self._pmd_next_index
            samples = uv_to_int24(self.source.ecg_uv(first, POLAR_SAMPLES_PER_FRAME))
            last_us = self.clock.stamp_us((first + POLAR_SAMPLES_PER_FRAME - 1) / fs)
            frame = PolarEcgFrame(unix_to_polar_ns(last_us * 1000), samples)
            payload = encode_polar_ecg_frame(frame)
            for conn in connections:
                await self.device.notify_subscriber(conn, self._chars["pmd_data"], payload, force=True)
            self._truth.write(watch=self.spec.address, kind="polar_ecg", seq=self.pmd_frames,
                              t0_us=self.clock.stamp_us(first / fs), fs=fs, samples=samples.tolist())
            self.pmd_frames += 1
            self._pmd_next_index += POLAR_SAMPLES_PER_FRAME

    async def _ppg_due(self, elapsed: float) -> None:
        """Stream PPG frames on the sensor's own time base once started; the pulse follows the simulated beats."""
        fs = self._ppg_rate_hz
        if fs is None:
            return
        connections = self._subscribed("pmd_data")
        if not connections:
            self._ppg_rate_hz = None  # the sensor stops streaming when its client is gone
            return
        if self.patient is None:  # not offered then (features); a client asking anyway gets nothing
            return
        per_frame = max(1, min(MAX_PPG_SAMPLES, round(PPG_FRAME_S * fs)))
        due = int(self.clock.device_elapsed_s(elapsed) * fs)
        if self._ppg_next_index == 0 or due - self._ppg_next_index > 10 * fs:
            self._ppg_next_index = due
        while due - self._ppg_next_index >= per_frame:
            first = self._ppg_next_index
            samples = self.patient.ppg(first, per_frame, fs)
            last_us = self.clock.stamp_us((first + per_frame - 1) / fs)
            payload = encode_polar_ppg_frame(PolarPpgFrame(unix_to_polar_ns(last_us * 1000), samples))
            for conn in connections:
                await self.device.notify_subscriber(conn, self._chars["pmd_data"], payload, force=True)
            self._truth.write(watch=self.spec.address, kind="polar_ppg", seq=self.ppg_frames,
                              t0_us=self.clock.stamp_us(first / fs), fs=fs, n=per_frame)
            self.ppg_frames += 1
            self._ppg_next_index += per_frame

    # -- heart rate ---------------------------------------------------------
    async def _send_malformed(self, at_s: float) -> None:
        for conn in self._subscribed("hrm"):
            await self.device.notify_subscriber(conn, self._chars["hrm"], MALFORMED_HRM, force=True)
            self._truth.write(watch=self.spec.address, kind="malformed_hr", t_us=self.clock.at(at_s),
                              payload=MALFORMED_HRM.hex())

    async def _send_hr(self, since_s: float, now_s: float) -> None:
        contact = self.source.sensor_contact(now_s)
        hr = max(1, round(self.source.heart_rate_bpm(now_s)))
        rr = [rr_ms_to_1024(rr_s * 1000.0) for rr_s in self.source.rr_intervals_s(since_s, now_s)] if contact else []
        m = HeartRateMeasurement(min(hr, 0xFFFF), sensor_contact=contact, rr_intervals_1024=tuple(rr[:9]))
        self.last_hr = hr
        connections = self._subscribed("hrm")
        if connections:
            payload = encode_heart_rate_measurement(m)
            for conn in connections:
                await self.device.notify_subscriber(conn, self._chars["hrm"], payload, force=True)
            self.hr_sent += 1
            # HRM carries no timestamp: its truth time is the device clock when it went on the air.
            self._truth.write(watch=self.spec.address, kind="hr", t_us=self.clock.at(now_s), hr=hr,
                              rr_1024=list(m.rr_intervals_1024), contact=contact)

    # -- SpO2, blood pressure, battery --------------------------------------
    async def _send_spo2(self, t: float) -> None:
        connections = self._subscribed("plx")
        if not connections:
            return
        if self.patient is not None:
            spo2, pr = round(self.patient.spo2_pct(t), 1), float(round(self.patient.pulse_rate_bpm(t)))
        else:
            spo2, pr = 97.0, float(self.last_hr or 72)
        m = PlxContinuousMeasurement(SpO2PR(sfloat_from_float(spo2, 1), sfloat_from_float(pr, 0)))
        payload = encode_plx_continuous_measurement(m)
        for conn in connections:
            await self.device.notify_subscriber(conn, self._chars["plx"], payload, force=True)
        self._truth.write(watch=self.spec.address, kind="spo2", t_us=self.clock.at(t), spo2=spo2, pr=pr)

    def _measure_bp(self, t: float) -> None:
        hr = float(self.last_hr or 72)
        sys_f, dia_f, _ = self.patient.blood_pressure(t) if self.patient is not None else (120.0, 80.0, 93.3)
        systolic = round(sys_f + 3.0 * float(self._rng.standard_normal()))  # a cuff's reading error
        diastolic = min(systolic - 10, round(dia_f + 2.0 * float(self._rng.standard_normal())))
        mean = round((systolic + 2 * diastolic) / 3.0, 1)
        stamp = datetime.fromtimestamp(self.clock.at(t) // 1_000_000, tz=UTC)
        m = BloodPressureMeasurement(sfloat_from_float(systolic, 0), sfloat_from_float(diastolic, 0),
                                     sfloat_from_float(mean, 1), timestamp=GattDateTime.from_datetime(stamp),
                                     pulse_rate=sfloat_from_float(hr, 0))
        self._pending_bp.append(encode_blood_pressure_measurement(m))
        self._truth.write(watch=self.spec.address, kind="bp", t_us=self.clock.at(t) // 1_000_000 * 1_000_000,
                          systolic=systolic,
                          diastolic=diastolic, mean=mean)
        self._spawn(self._flush_bp())

    async def _flush_bp(self) -> None:
        """Indicate stored readings, oldest first; a reading leaves the store only once confirmed."""
        while self._pending_bp:
            connections = self._subscribed("bpm")
            if not connections:
                return
            try:
                await self.device.indicate_subscriber(connections[0], self._chars["bpm"], self._pending_bp[0],
                                                      force=True)
            except Exception:  # link lost before the confirmation: keep it for the next connection
                return
            self._pending_bp.pop(0)

    async def _battery_due(self, t: float) -> None:
        level = max(0.0, self.spec.faults.battery_start_percent - self.spec.faults.battery_drain_percent_per_hour
                    * t / 3600.0)
        whole = round(level)
        if whole == self._battery_sent:
            return
        self._battery_sent = whole
        payload = encode_battery_level(whole)
        self._chars["battery"].value = payload
        for conn in self._subscribed("battery"):
            await self.device.notify_subscriber(conn, self._chars["battery"], payload, force=True)
        self._truth.write(watch=self.spec.address, kind="battery", t_us=self.clock.at(t), percent=whole)
