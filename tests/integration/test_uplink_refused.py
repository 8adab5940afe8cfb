"""A revoked gateway against the real ingest (mTLS, revocation) and the real Mosquitto broker: its uplink
raises the ``uplink_refused`` technical alarm, retries on the slow schedule instead of the outage one,
keeps every outbox row, and clears the alarm once a new identity is accepted and the backlog is acked."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from cardiogate.cloud.authz import assign
from cardiogate.cloud.identity import issue_token, revoke_gateway
from cardiogate.cloud.server import Running
from cardiogate.cloud.settings import AuthzSettings, CloudSettings
from cardiogate.core.backoff import PERMANENT_RETRY
from cardiogate.edge.enrollment import enroll
from cardiogate.edge.gateway import Gateway
from cardiogate.edge.settings import GatewaySettings, PairedDevice
from tests.conftest import port_open
from tests.integration.cloud_testkit import cloud_settings, eventually, local_pki, running_cloud, tansu, vitals

pytestmark = pytest.mark.timeout(120)
DEVICE = "C0:00:00:00:02:01"
RECORDS = 5


@pytest.fixture(scope="module")
def kafka() -> Iterator[str]:
    with tansu() as bootstrap:
        yield bootstrap


@pytest.fixture
def settings(kafka: str, tmp_path: Path) -> CloudSettings:
    return cloud_settings(kafka, f"sqlite:///{tmp_path / 'cloud.sqlite3'}", local_pki(tmp_path / "pki"),
                          authz=AuthzSettings(revocation_recheck_s=0.2))


@pytest.fixture
async def cloud(settings: CloudSettings) -> AsyncIterator[Running]:
    async with running_cloud(settings) as running:
        yield running


async def enroll_into(settings: CloudSettings, cloud: Running, gateway_id: str, out: Path) -> None:
    token = issue_token(cloud.engine, gateway_id, ttl_s=60)
    await asyncio.to_thread(enroll, settings.enrollment.listen, gateway_id, token, out, settings.pki.ca_cert)


async def collect(topic: str, into: list[dict[str, Any]], subscribed: asyncio.Event) -> None:
    async with aiomqtt.Client("127.0.0.1", 1883, identifier=f"refused-{uuid.uuid4().hex[:8]}") as client:
        await client.subscribe(topic, qos=1)
        subscribed.set()
        async for message in client.messages:
            assert isinstance(message.payload, bytes)
            into.append({"topic": str(message.topic), **json.loads(message.payload)})


def uplink_alarms(messages: list[dict[str, Any]], state: str) -> list[dict[str, Any]]:
    return [m for m in messages if m["topic"].endswith("/alarms") and m.get("condition") == "uplink_refused"
            and m.get("state") == state]


async def test_a_revoked_gateway_raises_uplink_refused_backs_off_slowly_and_keeps_its_outbox(
        settings: CloudSettings, cloud: Running, tmp_path: Path) -> None:
    if not port_open("127.0.0.1", 1883):
        pytest.fail("Mosquitto must answer on 127.0.0.1:1883 for this test")
    tag = uuid.uuid4().hex[:8]
    gateway_id, site, patient = f"gw-refused-{tag}", f"ward-{tag}", f"pt-{tag}"
    identity = tmp_path / "identity"
    await enroll_into(settings, cloud, gateway_id, identity)
    assign(cloud.engine, gateway_id, patient)
    assert revoke_gateway(cloud.engine, gateway_id, "reported stolen") != []
    gw = Gateway(GatewaySettings(
        gateway_id=gateway_id, site=site, devices=[PairedDevice(address=DEVICE, patient=patient)],
        outbox={"path": tmp_path / "outbox.sqlite3"}, state={"pairings_path": tmp_path / "pairings.json"},
        # an outage would retry about ten times a second
        uplink={"target": settings.listen, "identity_dir": identity, "backoff_initial_s": 0.05, "backoff_max_s": 0.1}))
    stream = f"{DEVICE}/vitals"
    gw.emit_records([vitals(i, patient, DEVICE, hr=70.0 + i) for i in range(RECORDS)])
    messages: list[dict[str, Any]] = []

    def gateway_events() -> list[tuple[str, bool]]:
        return [(m["event"], m["active"]) for m in messages if m["topic"].endswith(f"gateway/{gateway_id}/events")]

    subscribed = asyncio.Event()
    tasks = [asyncio.create_task(collect(f"cardiogate/{site}/#", messages, subscribed))]
    await asyncio.wait_for(subscribed.wait(), 10)
    tasks += [asyncio.create_task(gw.mqtt.run()), asyncio.create_task(gw.uplink.run())]
    try:
        await eventually(lambda: bool(uplink_alarms(messages, "raised")), 15, "uplink_refused raised on MQTT")
        (raised,) = uplink_alarms(messages, "raised")
        assert raised["topic"] == f"cardiogate/{site}/{patient}/alarms"
        assert raised["category"] == "technical" and raised["priority"] == "medium"
        # the gateway event is published after the alarm, so it may arrive a moment later
        await eventually(lambda: len(gateway_events()) >= 1, 15, "uplink_refused event raised on MQTT")
        assert gateway_events() == [("uplink_refused", True)]
        events = [m for m in messages if m["topic"].endswith(f"gateway/{gateway_id}/events")]
        assert "revoked" in events[0]["reason"]
        refused = gw.uplink.refused
        assert refused is not None and refused.status == "UNAUTHENTICATED"
        assert gw.uplink.last_delay_s >= PERMANENT_RETRY.initial_s / 2  # minutes, not the 0.1 s outage backoff
        # slow: no further attempt reaches the ingest while an outage would have retried ~20 times
        await asyncio.sleep(2.0)
        assert cloud.metrics.get("ingest_refused_streams", reason="cert_revoked") == 1
        assert gw.uplink.sessions == 1 and gw.uplink.records_acked == 0
        # nothing deleted: every vitals row still queued, in order
        assert [r.seq for r in gw.outbox.unsent(stream, -1, 100)] == list(range(RECORDS))

        # a new identity (re-enrollment) and an early retry: accepted, acked, and the alarm clears
        await enroll_into(settings, cloud, gateway_id, identity)
        gw.uplink.retry_now()
        await eventually(lambda: bool(uplink_alarms(messages, "cleared")), 15, "uplink_refused cleared on MQTT")
        assert gw.uplink.refused is None and gw.uplink.records_acked >= RECORDS
        assert gw.outbox.unsent(stream, -1, 100) == []
        # the event is published after the alarm's clearing, so it may arrive a moment later
        await eventually(lambda: len(gateway_events()) >= 2, 15, "uplink_refused event cleared on MQTT")
        assert gateway_events() == [("uplink_refused", True), ("uplink_refused", False)]
    finally:
        for task in tasks:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*tasks, return_exceptions=True)
        gw.outbox.close()
