"""Local MQTT: alarms (QoS 1), vitals (QoS 0), retained state, and commands coming in.

Topic tree (docs/architecture.md and docs/alarms.md have the payload schemas)::

    <prefix>/<site>/<patient>/alarms        JSON alarm notices, QoS 1
    <prefix>/<site>/<patient>/alarm_state   JSON visible alarms, retained, QoS 1
    <prefix>/<site>/<patient>/audit         JSON audit entries and command results, QoS 1
    <prefix>/<site>/<patient>/vitals        JSON vitals with the NEWS2 score, QoS 0
    <prefix>/<site>/<patient>/state         JSON device state and health, retained, QoS 1
    <prefix>/<site>/<patient>/commands/<identity>     IN: acknowledge / silence / unsilence / set_limits
    <prefix>/<site>/gateway/<id>/commands/<identity>  IN: pair / unpair
    <prefix>/<site>/gateway/<id>/events               JSON results of gateway commands, QoS 1

``<identity>`` is the sender's broker username: the broker's ACL lets an identity publish only on
its own command topics, and the gateway judges a command by that identity's role (cardiogate.edge.mqtt_auth).
With TLS settings the connection is TLS against the site MQTT CA; with a username, the gateway logs
in as its own identity (the password is read at every connect, so a rotated file is picked up).

Messages wait in a queue while the broker is unreachable; alarms are never dropped
from it (they are also in the outbox), vitals are dropped oldest-first beyond a cap.

QoS 1 messages go through aiomqtt's ``publish``, which returns once the broker acknowledged.
Vitals (QoS 0) are handed to the MQTT client without that wait: aiomqtt's wait is an event and a
timeout task per message, about two thirds of a QoS 0 publish's CPU (docs/benchmarks.md). A vital
leaves the queue only once the client has written it to the socket; what was handed over but not
written when the connection broke goes back to the front of the queue, in order, for the next one.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiomqtt
import paho.mqtt.client as paho

from cardiogate.core.backoff import Backoff
from cardiogate.core.logs import get_logger
from cardiogate.edge.settings import MqttSettings, MqttTlsSettings

log = get_logger(__name__)
SCHEMA_VERSION = 1
MAX_QUEUED_VITALS = 2000
ROUTINE_IN_FLIGHT = 64
"""Vitals handed to the client and not yet written; an alarm waits behind at most these on the socket."""
SETTLE_POLL_S = 0.05
"""How often the drain looks again for handed-over vitals the client has written, while any are waiting."""


@dataclass(frozen=True, slots=True)
class Outgoing:
    topic: str
    payload: dict[str, Any]
    qos: int
    retain: bool = False
    stamp_publish_time: bool = False


Handler = Callable[[str, bytes], None]  # (topic, payload)


def tls_context(tls: MqttTlsSettings) -> ssl.SSLContext:
    """Verify the broker against the site MQTT CA (hostname included); present a client certificate if set."""
    context = ssl.create_default_context(cafile=str(tls.ca_file))
    if tls.cert_file is not None and tls.key_file is not None:
        context.load_cert_chain(str(tls.cert_file), str(tls.key_file))
    return context


def connect_options(settings: MqttSettings) -> dict[str, Any]:
    """aiomqtt.Client keyword arguments for TLS and the identity (empty for an open local broker)."""
    options: dict[str, Any] = {}
    if settings.tls is not None:
        options["tls_context"] = tls_context(settings.tls)
    if settings.username is not None:
        options.update(username=settings.username, password=settings.read_password())
    return options


class MqttPublisher:
    """Owns the broker connection and a priority-aware send queue."""

    def __init__(self, settings: MqttSettings, client_id: str) -> None:
        self._settings = settings
        self._client_id = client_id
        self._urgent: collections.deque[Outgoing] = collections.deque()
        self._routine: collections.deque[Outgoing] = collections.deque(maxlen=MAX_QUEUED_VITALS)
        self._in_flight: collections.deque[tuple[Outgoing, paho.MQTTMessageInfo]] = collections.deque()
        self._ready = asyncio.Event()
        self.published = 0
        self.connected = False
        self.publish_latency_ns: list[int] = []
        self._subscriptions: list[tuple[str, Handler]] = []
        self.received = 0
        self.handler_errors = 0

    def subscribe(self, topic_filter: str, handler: Handler) -> None:
        """Call ``handler`` for every message on ``topic_filter`` (QoS 1; resubscribed after reconnects)."""
        self._subscriptions.append((topic_filter, handler))

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
                                          keepalive=30, **connect_options(self._settings)) as client:
                    self.connected = True
                    backoff.reset()
                    log.info("mqtt connected", host=self._settings.host, port=self._settings.port,
                             tls=self._settings.tls is not None, identity=self._settings.username)
                    for topic_filter, _ in self._subscriptions:
                        await client.subscribe(topic_filter, qos=1)
                    tasks = [asyncio.create_task(self._read(client)), asyncio.create_task(self._drain(client))]
                    try:
                        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                        for task in done:
                            task.result()  # re-raise the broken connection's error
                    finally:
                        for task in tasks:
                            task.cancel()
                        await asyncio.gather(*tasks, return_exceptions=True)
            except aiomqtt.MqttError as exc:
                log.warning("mqtt unavailable", error=str(exc))
            except (OSError, ssl.SSLError) as exc:  # an unreadable password file, CA or key: say so, keep trying
                log.error("mqtt credentials unusable", error=str(exc).splitlines()[0] if str(exc) else repr(exc))
            finally:
                self.connected = False
            await asyncio.sleep(backoff.next_delay())

    async def _read(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            self.received += 1
            payload = message.payload if isinstance(message.payload, bytes) else str(message.payload).encode()
            for topic_filter, handler in self._subscriptions:
                if message.topic.matches(topic_filter):
                    try:
                        handler(message.topic.value, payload)
                    except Exception:  # one bad command must not stop the gateway listening
                        self.handler_errors += 1
                        log.exception("mqtt handler failed", topic=message.topic.value)

    async def _drain(self, client: aiomqtt.Client) -> None:
        try:
            while True:
                self._settle_routine()
                if self._urgent:
                    message = self._urgent[0]
                    await client.publish(message.topic, self._encode(message), qos=message.qos, retain=message.retain)
                    self._urgent.popleft()  # only after the broker took it (PUBACK for QoS 1)
                    self.published += 1
                elif self._routine and len(self._in_flight) < ROUTINE_IN_FLIGHT:
                    self._hand_over(client, self._routine.popleft())
                else:
                    self._ready.clear()
                    if not self._in_flight:
                        await self._ready.wait()
                    else:  # nothing to notify us when the client writes: look again shortly
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(self._ready.wait(), SETTLE_POLL_S)
        finally:
            self._settle_routine()
            self._requeue([message for message, _ in self._in_flight])
            self._in_flight.clear()

    def _hand_over(self, client: aiomqtt.Client, message: Outgoing) -> None:
        """Give a QoS 0 message to the client without waiting for it to be written."""
        # aiomqtt has no publish that does not wait; its client underneath queues and the loop writes
        info = client._client.publish(message.topic, self._encode(message), 0, message.retain)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            self._requeue([message])
            raise aiomqtt.MqttCodeError(info.rc, "Could not publish message")
        self._in_flight.append((message, info))

    def _requeue(self, messages: list[Outgoing]) -> None:
        """Put vitals that were handed over but never written back at the front, in order; at the cap the oldest
        go first, as everywhere else in the queue."""
        if messages:
            self._routine = collections.deque([*messages, *self._routine], maxlen=MAX_QUEUED_VITALS)

    def _settle_routine(self) -> None:
        while self._in_flight and self._in_flight[0][1].is_published():
            self._in_flight.popleft()
            self.published += 1

    @staticmethod
    def _encode(message: Outgoing) -> str:
        payload = dict(message.payload)
        if message.stamp_publish_time:
            payload["publish_time_ns"] = time.time_ns()
        return json.dumps(payload, separators=(",", ":"))
