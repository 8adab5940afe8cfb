"""The gateway's MQTT publisher against the real Mosquitto: every vital once and in order, an alarm ahead of a
vitals backlog, and vitals handed to the client but never written go out again on the next connection."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import aiomqtt
import pytest

from cardiogate.edge.mqtt import MAX_QUEUED_VITALS, MqttPublisher, Outgoing
from cardiogate.edge.settings import MqttSettings
from tests.conftest import port_open

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(autouse=True)
def _broker() -> None:
    if not port_open("127.0.0.1", 1883):
        pytest.fail("Mosquitto must answer on 127.0.0.1:1883 (.ci/run starts it)")


def test_vitals_arrive_once_in_order_and_alarms_overtake_the_queue() -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}"
    publisher = MqttPublisher(MqttSettings(topic_prefix=prefix), f"pub-{prefix}")
    vitals_topic, alarm_topic = publisher.topic("ward", "pt-1", "vitals"), publisher.topic("ward", "pt-1", "alarms")

    async def go() -> list[dict[str, Any]]:
        got: list[dict[str, Any]] = []
        async with aiomqtt.Client("127.0.0.1", 1883, identifier=f"sub-{prefix}") as sub:
            await sub.subscribe(f"{prefix}/#", qos=1)
            runner = asyncio.create_task(publisher.run())
            try:
                async with asyncio.timeout(10):
                    while True:
                        if publisher.connected:
                            break
                        await asyncio.sleep(0.02)
                for i in range(300):  # vitals as they come, a few per turn of the loop
                    publisher.publish(Outgoing(vitals_topic, {"i": i}, qos=0))
                    if i == 150:
                        publisher.publish(Outgoing(alarm_topic, {"alarm": i}, qos=1))
                    if i % 7 == 0:
                        await asyncio.sleep(0)
                for i in range(300, 600):  # a backlog of 300 vitals queued at once, then an alarm behind them
                    publisher.publish(Outgoing(vitals_topic, {"i": i}, qos=0))
                publisher.publish(Outgoing(alarm_topic, {"alarm": 600}, qos=1))
                async with asyncio.timeout(20):
                    async for message in sub.messages:
                        assert isinstance(message.payload, bytes)
                        got.append({"topic": message.topic.value, **json.loads(message.payload)})
                        if sum(1 for g in got if g["topic"] == vitals_topic) == 600:
                            break
            finally:
                runner.cancel()
                await asyncio.gather(runner, return_exceptions=True)
        return got

    got = asyncio.run(go())
    vitals = [g["i"] for g in got if g["topic"] == vitals_topic]
    assert vitals == list(range(600))  # none lost, none twice, in order
    alarms = {g["alarm"]: n for n, g in enumerate(got) if g["topic"] == alarm_topic}
    assert sorted(alarms) == [150, 600]
    first_of_backlog = next(n for n, g in enumerate(got) if g.get("i") == 300)
    # only vitals already handed to the client (all from before the backlog) may go ahead of the last alarm
    assert alarms[600] < first_of_backlog, f"the alarm went out behind the backlog, at {alarms[600]}"
    assert publisher.published == 602


class _NeverWritten:
    """The MQTT client's receipt for a message still in its buffer when the connection broke."""

    rc = 0

    def is_published(self) -> bool:
        return False


class _BrokenConnection:
    """Stands in for a connection that breaks after taking QoS 0 messages into its buffer: a real broker cannot be
    made to break at exactly that moment, and the requeue logic is what this test is about."""

    def __init__(self) -> None:
        self.handed: list[str] = []
        self._client = self

    def publish(self, topic: str, payload: str, *args: Any, **kwargs: Any) -> Any:
        if "qos" in kwargs:  # aiomqtt's waiting publish, used for alarms: the connection is gone
            raise aiomqtt.MqttError("connection lost")
        self.handed.append(json.loads(payload)["i"])
        return _NeverWritten()


def test_requeued_vitals_at_the_cap_push_out_the_oldest() -> None:
    publisher = MqttPublisher(MqttSettings(), "pub-cap")
    for i in range(3):
        publisher.publish(Outgoing("v", {"i": i}, qos=0))
    broken = _BrokenConnection()

    async def go() -> None:
        drain = asyncio.create_task(publisher._drain(broken))  # type: ignore[arg-type]
        await asyncio.sleep(0.01)  # 0, 1, 2 are with the client, unwritten
        for i in range(3, 3 + MAX_QUEUED_VITALS):
            publisher.publish(Outgoing("v", {"i": i}, qos=0))
        publisher.publish(Outgoing("a", {"alarm": 1}, qos=1))
        with pytest.raises(aiomqtt.MqttError):
            await drain

    asyncio.run(go())
    kept = [m.payload["i"] for m in publisher._routine]
    assert kept == list(range(3, 3 + MAX_QUEUED_VITALS))  # the cap holds; the three oldest went


def test_vitals_the_client_never_wrote_go_first_on_the_next_connection() -> None:
    publisher = MqttPublisher(MqttSettings(), "pub-requeue")
    for i in range(5):
        publisher.publish(Outgoing("v", {"i": i}, qos=0))
    broken = _BrokenConnection()

    async def go() -> None:
        drain = asyncio.create_task(publisher._drain(broken))  # type: ignore[arg-type]
        await asyncio.sleep(0.01)
        publisher.publish(Outgoing("v", {"i": 5}, qos=0))
        publisher.publish(Outgoing("a", {"alarm": 1}, qos=1))  # the broken connection fails on it
        with pytest.raises(aiomqtt.MqttError):
            await drain

    asyncio.run(go())
    assert broken.handed == [0, 1, 2, 3, 4]  # the alarm went before vital 5, and failed
    assert [m.payload["i"] for m in publisher._routine] == [0, 1, 2, 3, 4, 5]  # all back, in order
    assert [m.payload for m in publisher._urgent] == [{"alarm": 1}]
    assert publisher.published == 0
