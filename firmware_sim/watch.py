"""A simulated ECG watch: a real GATT peripheral on a bumble virtual controller.

Services: Heart Rate (0x180D, Heart Rate Measurement 0x2A37 with RR intervals, one
notification per second) and the cardiogate ECG waveform service (250 Hz, as many
samples per notification as the negotiated ATT MTU allows). The watch's clock is the
host clock at start plus its own sample count, like a device with a good crystal.
"""

from __future__ import annotations

import asyncio
import time

import numpy as np
from bumble.controller import Controller
from bumble.core import UUID, AdvertisingData
from bumble.device import Connection, Device
from bumble.gatt import Characteristic, Service
from bumble.hci import Address
from bumble.host import Host
from bumble.link import LocalLink
from bumble.transport.common import AsyncPipeSink

from edge.codecs.ecg_waveform import (
    ECG_SERVICE_UUID,
    ECG_WAVEFORM_UUID,
    EcgPacket,
    encode_ecg_packet,
    samples_per_packet,
)
from edge.codecs.heart_rate import HeartRateMeasurement, encode_heart_rate_measurement, rr_ms_to_1024
from firmware_sim.physiology import BeatGenerator, EcgSynthesizer, HeartRateTimeline
from firmware_sim.scenario import WatchSpec
from firmware_sim.truth import GroundTruthLog

HRS = UUID.from_16_bits(0x180D)
HRM = UUID.from_16_bits(0x2A37)
ECG_TICK_S = 0.04
RESOLUTION_NV = 1000
MALFORMED_HRM = b"\x10\x48\x01"  # RR-interval flag set but an odd number of RR bytes


class SimulatedWatch:
    """One watch: GATT server, advertising, and the notification loops."""

    def __init__(self, spec: WatchSpec, link: LocalLink, truth: GroundTruthLog) -> None:
        self.spec = spec
        self._truth = truth
        controller = Controller(spec.name, link=link, public_address=spec.address)
        self.device = Device(name=spec.name, address=Address(spec.address),
                             host=Host(controller, AsyncPipeSink(controller)))
        self._hrm = Characteristic(HRM, Characteristic.Properties.NOTIFY, Characteristic.READABLE, b"\x00\x00")
        self._ecg = Characteristic(UUID(ECG_WAVEFORM_UUID), Characteristic.Properties.NOTIFY,
                                   Characteristic.READABLE, b"")
        self.device.add_services([Service(HRS, [self._hrm]), Service(UUID(ECG_SERVICE_UUID), [self._ecg])])
        timeline = HeartRateTimeline(tuple((float(t), float(h)) for t, h in spec.heart_rate))
        self.beats = BeatGenerator(timeline, seed=spec.seed)
        self.ecg = EcgSynthesizer(self.beats, spec.sample_rate_hz, RESOLUTION_NV, seed=spec.seed)
        self.start_us = 0
        self.ecg_sequence = 0
        self.ecg_samples_sent = 0
        self.hr_sent = 0
        self.last_hr = 0

    async def start(self) -> None:
        """Power on and advertise (advertising restarts by itself after each disconnect)."""
        await self.device.power_on()
        adv = bytes(AdvertisingData([
            (AdvertisingData.FLAGS, bytes([0x06])),
            (AdvertisingData.INCOMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS, bytes(HRS)),
            (AdvertisingData.COMPLETE_LOCAL_NAME, self.spec.name.encode()),
        ]))
        scan_rsp = bytes(AdvertisingData([
            (AdvertisingData.INCOMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS, bytes(UUID(ECG_SERVICE_UUID))),
        ]))
        await self.device.start_advertising(advertising_data=adv, scan_response_data=scan_rsp, auto_restart=True)

    def _subscribed(self, characteristic: Characteristic[bytes]) -> list[Connection]:
        subs = self.device.gatt_server.subscribers
        out = []
        for conn in list(self.device.connections.values()):
            cccd = subs.get(conn, {}).get(characteristic.handle)
            if cccd and len(cccd) == 2 and cccd[0] & 0x01:
                out.append(conn)
        return out

    async def run(self) -> None:
        """Produce ECG and heart rate in real time, forever."""
        self.start_us = time.time_ns() // 1000
        t_start = time.monotonic()
        next_index = 0
        next_hr_s = 1.0
        last_hr_beat_s = 0.0
        fs = self.spec.sample_rate_hz
        faults = sorted(self.spec.malformed_hr_at_s)
        while True:
            await asyncio.sleep(ECG_TICK_S)
            elapsed = time.monotonic() - t_start
            due = int(elapsed * fs)
            if due > next_index:
                await self._send_ecg(next_index, due - next_index)
                next_index = due
            if elapsed >= next_hr_s:
                last_hr_beat_s = await self._send_hr(last_hr_beat_s, next_hr_s)
                next_hr_s += 1.0
            while faults and elapsed >= faults[0]:
                await self._send_malformed(faults.pop(0))

    def _device_time_us(self, t_s: float) -> int:
        return self.start_us + round(t_s * 1_000_000)

    async def _send_ecg(self, first: int, count: int) -> None:
        samples = self.ecg.samples(first, count)
        connections = self._subscribed(self._ecg)
        per_packet = samples_per_packet(min((c.att_mtu for c in connections), default=23))
        fs = self.spec.sample_rate_hz
        for off in range(0, count, per_packet):
            chunk = samples[off:off + per_packet]
            packet = EcgPacket(self.ecg_sequence, self._device_time_us((first + off) / fs), fs, RESOLUTION_NV, chunk)
            self.ecg_sequence = (self.ecg_sequence + 1) & 0xFFFFFFFF
            if not connections:
                continue  # produced but nobody listening: the gateway will see a sequence gap
            payload = encode_ecg_packet(packet)
            for conn in connections:
                await self.device.notify_subscriber(conn, self._ecg, payload, force=True)
            self.ecg_samples_sent += len(chunk)
            self._truth.write(watch=self.spec.address, kind="ecg", seq=packet.sequence,
                              t0_us=packet.first_sample_time_us, fs=fs, res_nv=RESOLUTION_NV,
                              samples=np.asarray(chunk).tolist())

    async def _send_malformed(self, at_s: float) -> None:
        for conn in self._subscribed(self._hrm):
            await self.device.notify_subscriber(conn, self._hrm, MALFORMED_HRM, force=True)
            self._truth.write(watch=self.spec.address, kind="malformed_hr", t_us=self._device_time_us(at_s),
                              payload=MALFORMED_HRM.hex())

    async def _send_hr(self, since_s: float, now_s: float) -> float:
        beats = self.beats.beats_between(since_s, now_s)
        all_beats = self.beats.beats_until(now_s)
        recent = [b for b in all_beats if b < now_s][-5:]
        rr_recent = np.diff(recent) if len(recent) > 1 else np.array([0.8])
        hr = round(60.0 / float(np.mean(rr_recent)))
        rr_1024 = []
        for b in beats:
            idx = all_beats.index(b)
            if idx > 0:
                rr_1024.append(rr_ms_to_1024((all_beats[idx] - all_beats[idx - 1]) * 1000.0))
        m = HeartRateMeasurement(hr, sensor_contact=True, rr_intervals_1024=tuple(rr_1024[:9]))
        self.last_hr = hr
        connections = self._subscribed(self._hrm)
        if connections:
            payload = encode_heart_rate_measurement(m)
            for conn in connections:
                await self.device.notify_subscriber(conn, self._hrm, payload, force=True)
            self.hr_sent += 1
            # HRM carries no timestamp: its truth time is the device clock when it went on the air.
            self._truth.write(watch=self.spec.address, kind="hr", t_us=time.time_ns() // 1000, hr=hr,
                              rr_1024=list(m.rr_intervals_1024))
        return now_s
