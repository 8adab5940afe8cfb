"""The gateway daemon: wires sessions, processors, outbox, uplink and MQTT together."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time

from cardiogate.logs import get_logger
from edge.alarms import AlarmEvent, UpperLimitRule
from edge.device_manager import DeviceManager, ManagedDevice
from edge.mqtt import MqttPublisher, Outgoing, alarm_payload
from edge.outbox import Outbox
from edge.pairing import PairingRegistry
from edge.settings import GatewaySettings, ThresholdAlarmSettings
from edge.uplink import Uplink
from proto.cardiogate.v1 import telemetry_pb2 as pb

log = get_logger(__name__)
_PRIORITY = {"low": pb.ALARM_PRIORITY_LOW, "medium": pb.ALARM_PRIORITY_MEDIUM,
             "high": pb.ALARM_PRIORITY_HIGH, "technical": pb.ALARM_PRIORITY_TECHNICAL}


def _rule(condition: str, s: ThresholdAlarmSettings) -> UpperLimitRule:
    return UpperLimitRule(condition, s.limit_bpm, s.clear_below_bpm, s.onset_delay_s, s.priority)


class Gateway:
    """One gateway process."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self.outbox = Outbox(settings.outbox.path)
        self.uplink = Uplink(settings.gateway_id, self.outbox, settings.uplink)
        self.mqtt = MqttPublisher(settings.mqtt, client_id=f"cardiogate-{settings.gateway_id}")
        rules = [_rule("tachycardia", settings.alarms.tachycardia),
                 _rule("extreme_tachycardia", settings.alarms.extreme_tachycardia)]
        self.alarms_raised = 0
        self.registry = PairingRegistry(settings.devices, settings.state.pairings_path)
        self.devices = DeviceManager(self.registry, settings.ble, self, rules, settings.ecg_block_samples,
                                     on_state=self._on_device_state)

    # -- RecordSink ---------------------------------------------------------
    def emit_record(self, record: pb.Record) -> None:
        self.outbox.append(record)
        self.uplink.notify()
        if record.kind == pb.STREAM_KIND_VITALS:
            v = record.vitals
            self.mqtt.publish(Outgoing(self.mqtt.topic(self.settings.site, record.patient, "vitals"), {
                "schema": 1, "patient": record.patient, "device": record.device_id,
                "heart_rate_bpm": v.heart_rate_bpm, "rr_intervals_ms": list(v.rr_intervals_ms),
                "device_time_ns": v.device_time_ns, "receive_time_ns": v.receive_time_ns,
            }, qos=0))

    def emit_alarm(self, patient: str, device_id: str, event: AlarmEvent) -> None:
        if event.raised:
            self.alarms_raised += 1
        log.warning("alarm", patient=patient, condition=event.condition, priority=event.priority,
                    state="raised" if event.raised else "cleared", value=event.value, limit=event.limit)
        self.mqtt.publish(Outgoing(self.mqtt.topic(self.settings.site, patient, "alarms"),
                                   alarm_payload(self.settings.site, patient, device_id, event), qos=1,
                                   stamp_publish_time=True))
        alarm = pb.Alarm(
            alarm_id=event.alarm_id, condition=event.condition, priority=_PRIORITY[event.priority],
            state=pb.ALARM_STATE_RAISED if event.raised else pb.ALARM_STATE_CLEARED,
            message=f"{event.condition} {event.value:.0f} (limit {event.limit:.0f})", value=event.value,
            limit=event.limit, onset_sample_device_time_ns=event.onset_sample_time_ns,
            trigger_sample_device_time_ns=event.trigger_sample_time_ns, decision_time_ns=event.decision_time_ns)
        self.emit_record(pb.Record(stream_id=f"{device_id}/alarms", device_id=device_id, patient=patient,
                                   kind=pb.STREAM_KIND_ALARMS, alarm=alarm))

    def _on_device_state(self, managed: ManagedDevice) -> None:
        self.publish_device_state(managed)

    def publish_device_state(self, managed: ManagedDevice) -> None:
        """Retained per-patient device state: a late subscriber sees the current health at once."""
        session, state = managed.session, managed.processor.state
        patient = managed.device.patient
        self.mqtt.publish(Outgoing(self.mqtt.topic(self.settings.site, patient, "state"), {
            "schema": 1, "patient": patient, "device": managed.device.address, "connected": session.connected,
            "adapter": session.adapter, "rssi_dbm": session.rssi, "battery_percent": state.battery_percent,
            "sensor_contact": state.sensor_contact, "last_seen_ns": state.last_seen_ns,
            "time_ns": time.time_ns()}, qos=1, retain=True))

    # -- lifecycle ----------------------------------------------------------
    async def run(self, status_interval_s: float = 10.0) -> None:
        tasks = [asyncio.create_task(self.uplink.run(), name="uplink"),
                 asyncio.create_task(self.mqtt.run(), name="mqtt")]
        tasks.append(asyncio.create_task(self.devices.run(), name="devices"))
        log.info("gateway started", gateway=self.settings.gateway_id, devices=len(self.devices.devices),
                 outbox_depth=self.outbox.depth())
        try:
            while True:
                await asyncio.sleep(status_interval_s)
                self._log_status()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._log_status()
            self.outbox.close()
            bumble_backend = sys.modules.get("edge.ble.bumble_backend")  # only loaded off BlueZ
            if bumble_backend is not None:
                await bumble_backend.BumbleRadio.close_all()

    def _log_status(self) -> None:
        for managed in self.devices.devices.values():
            s, c = managed.session, managed.processor.counters
            log.info("device status", device=s.address, connected=s.connected, adapter=s.adapter, hr=c.last_heart_rate,
                     ecg_samples=c.ecg_samples, decode_errors=c.decode_errors, ecg_gaps=c.ecg_gaps,
                     missing_samples=c.ecg_missing_samples, reconnects=max(0, s.connects - 1))
            self.publish_device_state(managed)
        log.info("uplink status", connected=self.uplink.connected, outbox_depth=self.outbox.depth(),
                 acked=self.uplink.records_acked, mqtt_published=self.mqtt.published)


async def run_gateway(settings: GatewaySettings) -> None:
    """Run until SIGTERM/SIGINT, then flush and close cleanly."""
    gateway = Gateway(settings)
    task = asyncio.create_task(gateway.run())
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await task
    log.info("gateway stopped")
