"""Local MQTT publishing: alarms (QoS 1), vitals (QoS 0), retained per-patient state.

Topic tree (docs/architecture.md has the payload schemas)::

    <prefix>/<site>/<patient>/alarms   JSON alarm events, QoS 1
    <prefix>/<site>/<patient>/vitals   JSON vitals, QoS 0
    <prefix>/<site>/<patient>/state    JSON device state, retained, QoS 1

Messages wait in a queue while the broker is unreachable; alarms are never dropped
from it (they are also in the outbox), vitals are dropped oldest-first beyond a cap.
"""

from __future__ import annotations

import asyncio
import collections
import json
import time
from dataclasses import dataclass
from typing import Any

import aiomqtt

from cardiogate.logs import get_logger
from edge.alarms import AlarmEvent
from edge.backoff import Backoff
from edge.settings import MqttSettings

log = get_logger(__name__)
SCHEMA_VERSION = 1
MAX_QUEUED_VITALS = 2000


@dataclass(frozen=True, slots=True)
class Outgoing:
    topic: str
    payload: dict[str, Any]
    qos: int
    retain: bool = False
    stamp_publish_time: bool = False


def alarm_payload(site: str, patient: str, device_id: str, event: AlarmEvent) -> dict[str, Any]:
    """The alarm message body (publish_time_ns is stamped when handed to the client)."""
    return {
        "schema": SCHEMA_VERSION, "site": site, "patient": patient, "device": device_id,
        "alarm_id": event.alarm_id, "condition": event.condition, "priority": event.priority,
        "state": "raised" if event.raised else "cleared", "value": event.value, "limit": event.limit,
        "onset_sample_device_time_ns": event.onset_sample_time_ns,
        "trigger_sample_device_time_ns": event.trigger_sample_time_ns,
        "decision_time_ns": event.decision_time_ns,
    }


class MqttPublisher:
    """Owns the broker connection and a priority-aware send queue."""

    def __init__(self, settings: MqttSettings, client_id: str) -> None:
        self._settings = settings
        self._client_id = client_id
        self._urgent: collections.deque[Outgoing] = collections.deque()
        self._routine: collections.deque[Outgoing] = collections.deque(maxlen=MAX_QUEUED_VITALS)
        self._ready = asyncio.Event()
        self.published = 0
        self.connected = False
        self.publish_latency_ns: list[int] = []

    def topic(self, site: str, patient: str, leaf: str) -> str:
        return f"{self._settings.topic_prefix}/{site}/{patient}/{leaf}"

    def publish(self, message: Outgoing) -> None:
        """Queue a message; alarms and state go ahead of vitals."""
        (self._urgent if message.qos > 0 else self._routine).append(message)
        self._ready.set()

    async def run(self) -> None:
        backoff = Backoff(0.5, 10.0)
        while True:
            try:
                async with aiomqtt.Client(self._settings.host, self._settings.port, identifier=self._client_id,
                                          keepalive=30) as client:
                    self.connected = True
                    backoff.reset()
                    log.info("mqtt connected", host=self._settings.host, port=self._settings.port)
                    await self._drain(client)
            except aiomqtt.MqttError as exc:
                log.warning("mqtt unavailable", error=str(exc))
            finally:
                self.connected = False
            await asyncio.sleep(backoff.next_delay())

    async def _drain(self, client: aiomqtt.Client) -> None:
        while True:
            if not self._urgent and not self._routine:
                self._ready.clear()
                await self._ready.wait()
            queue = self._urgent if self._urgent else self._routine
            message = queue[0]
            payload = dict(message.payload)
            if message.stamp_publish_time:
                payload["publish_time_ns"] = time.time_ns()
            await client.publish(message.topic, json.dumps(payload, separators=(",", ":")),
                                 qos=message.qos, retain=message.retain)
            queue.popleft()  # only after the broker took it (PUBACK for QoS 1)
            self.published += 1
