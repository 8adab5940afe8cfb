"""The locked MQTT plane on a real Mosquitto run from the files `mqtt-setup` writes (own port, own process).

First the broker alone: anonymous and wrong-password clients cannot connect, and an identity's
publish reaches subscribers only on the topics of its role. Then the whole stack with a patient
who becomes tachycardic: an anonymous client cannot even connect to send ``set_limits``, a nurse
station's ``set_limits`` is refused and audited under the nurse's identity (not the ``by`` it
claims), the tachycardia alarm still fires at the default limit, the nurse can acknowledge it,
and a clinician can change the limits.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from cardiogate.app.site_mqtt import (
    CLINICIAN,
    MONITOR,
    NURSE,
    SiteMqtt,
    mosquitto_binary,
    prepare_site_mqtt,
    start_mosquitto,
)
from cardiogate.app.stack import LocalStack, Patient

pytestmark = [pytest.mark.e2e, pytest.mark.security, pytest.mark.timeout(240)]

SITE, GATEWAY, PATIENT = "sec-site", "gw-sec-1", "pt-5150"
TACHY_AT_S = 16.0
Message = tuple[str, dict[str, Any]]
Seen = list[Message]


@pytest.fixture(autouse=True)
def _need_mosquitto() -> None:
    if mosquitto_binary() is None:
        pytest.fail("the mosquitto binary must be installed for the security tests")


def _limits(by: str, medium: float, high: float) -> bytes:
    return json.dumps({"schema": 1, "command": "set_limits", "patient": PATIENT, "by": by, "condition": "hr_high",
                       "limits": {"medium": medium, "high": high}}).encode()


async def _collect(client: aiomqtt.Client, seen: Seen) -> None:
    async for msg in client.messages:
        payload = msg.payload if isinstance(msg.payload, bytes) else b""
        try:
            body = json.loads(payload) if payload else {}
        except ValueError:
            body = {"raw": payload.decode(errors="replace")}
        seen.append((str(msg.topic), body))


async def _refused(mqtt: SiteMqtt, **options: Any) -> str:
    """The error of a connection attempt that must fail (AssertionError if it connects)."""
    try:
        async with aiomqtt.Client(mqtt.host, mqtt.port, identifier=f"sec-{time.time_ns()}", timeout=5, **options):
            pass
    except aiomqtt.MqttError as exc:
        return str(exc)
    raise AssertionError(f"connected with {sorted(options)}")


async def _wait(seen: Seen, what: Callable[[str, dict[str, Any]], bool], timeout_s: float) -> Message:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = [(t, b) for t, b in seen if what(t, b)]
        if found:
            return found[0]
        await asyncio.sleep(0.1)
    raise AssertionError(f"not seen within {timeout_s:.0f} s; topics: {sorted({t for t, _ in seen})}")


@pytest.mark.parametrize("broker", ["mosquitto", "embedded-amqtt"])
def test_the_generated_files_refuse_anonymous_clients_and_foreign_topics(tmp_path: Path, broker: str) -> None:
    """Mosquitto from the generated config, and the demo's fallback broker serving the same files."""
    mqtt = prepare_site_mqtt(tmp_path / "mqtt", SITE, GATEWAY)
    if broker == "mosquitto":
        proc = start_mosquitto(mqtt, tmp_path / "mosquitto.log")
        try:
            seen, errors = asyncio.run(_broker_only(mqtt))
        finally:
            proc.terminate()
            proc.wait(10)
    else:
        seen, errors = asyncio.run(_on_embedded(mqtt))
    # _refused fails the test on any connection that succeeds; over TLS the broker says why.
    assert all("not authorized" in errors[k].lower() for k in ("anonymous over TLS", "wrong password",
                                                                "unknown identity")), errors
    assert errors["anonymous in clear"], "the listener speaks only TLS"
    topics = [t for t, _ in seen]
    base = f"cardiogate/{SITE}"
    assert topics.count(f"{base}/{PATIENT}/commands/{NURSE}") == 1, topics  # its own topic: delivered
    for foreign in (f"{base}/{PATIENT}/commands/{CLINICIAN}", f"{base}/{PATIENT}/commands",
                    f"{base}/{PATIENT}/alarms", f"{base}/{PATIENT}/commands/{MONITOR}",
                    f"{base}/gateway/{GATEWAY}/commands/{NURSE}"):
        assert foreign not in topics, f"{foreign} was delivered: the ACL let it through"


async def _on_embedded(mqtt: SiteMqtt) -> tuple[Seen, dict[str, str]]:
    from cardiogate.app.embedded_mqtt import start_embedded_broker

    broker = await start_embedded_broker(mqtt)
    try:
        return await _broker_only(mqtt)
    finally:
        await broker.shutdown()


async def _broker_only(mqtt: SiteMqtt) -> tuple[Seen, dict[str, str]]:
    tls = mqtt.connect_options(None)
    errors = {"anonymous over TLS": await _refused(mqtt, **tls),
              "anonymous in clear": await _refused(mqtt),
              "wrong password": await _refused(mqtt, **tls, username=NURSE, password="guess"),
              "unknown identity": await _refused(mqtt, **tls, username="intruder", password="guess")}
    seen: Seen = []
    async with mqtt.client(MONITOR, f"sec-monitor-{time.time_ns()}") as monitor:
        await monitor.subscribe(f"cardiogate/{SITE}/#", qos=1)
        reader = asyncio.create_task(_collect(monitor, seen))
        base = f"cardiogate/{SITE}"
        async with mqtt.client(NURSE, f"sec-nurse-{time.time_ns()}") as nurse:
            for topic in (mqtt.command_topic(PATIENT, NURSE), mqtt.command_topic(PATIENT, CLINICIAN),
                          f"{base}/{PATIENT}/commands", f"{base}/{PATIENT}/alarms",
                          mqtt.gateway_command_topic(GATEWAY, NURSE)):
                await nurse.publish(topic, _limits("dr-house", 240, 250), qos=1)
        async with mqtt.client(MONITOR, f"sec-viewer-{time.time_ns()}") as viewer:
            await viewer.publish(mqtt.command_topic(PATIENT, MONITOR), _limits(MONITOR, 240, 250), qos=1)
        await asyncio.sleep(1.5)
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
    return seen, errors


@pytest.fixture(scope="module")
def stack_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    patient = Patient(PATIENT, "C0:00:00:00:51:50", [(0.0, 72.0), (TACHY_AT_S, 72.0), (TACHY_AT_S + 6.0, 165.0)],
                      seed=51)
    stack = LocalStack(tmp_path_factory.mktemp("mqtt-security"), [patient], gateway_id=GATEWAY, site=SITE)
    return asyncio.run(_drive(stack))


async def _drive(stack: LocalStack) -> dict[str, Any]:
    await asyncio.to_thread(stack.start_mqtt)
    mqtt = stack.mqtt
    assert mqtt is not None
    seen: Seen = []
    out: dict[str, Any] = {"seen": seen, "mqtt": mqtt}
    try:
        async with stack.mqtt_client(MONITOR, f"sec-watch-{time.time_ns()}") as monitor:
            await monitor.subscribe(f"cardiogate/{SITE}/#", qos=1)
            reader = asyncio.create_task(_collect(monitor, seen))
            await asyncio.to_thread(stack.start)
            # The gateway publishes the patient's state once connected; it subscribes to commands first.
            await _wait(seen, lambda t, b: t.endswith(f"{PATIENT}/vitals"), 60)
            out["anonymous"] = await _refused(mqtt, **mqtt.connect_options(None))
            async with stack.mqtt_client(NURSE) as nurse:
                await nurse.publish(mqtt.command_topic(PATIENT, NURSE), _limits(CLINICIAN, 240, 250), qos=1)
                await nurse.publish(mqtt.command_topic(PATIENT, CLINICIAN), _limits(CLINICIAN, 240, 250), qos=1)
            out["nurse_refused"] = await _wait(seen, lambda t, b: b.get("action") == "command.set_limits", 20)
            out["raised"] = await _wait(seen, lambda t, b: t.endswith("/alarms") and b.get("condition") == "hr_high"
                                        and b.get("state") == "raised", 60)
            ack = {"schema": 1, "command": "acknowledge", "patient": PATIENT, "by": NURSE,
                   "alarm_id": out["raised"][1]["alarm_id"]}
            async with stack.mqtt_client(NURSE) as nurse:
                await nurse.publish(mqtt.command_topic(PATIENT, NURSE), json.dumps(ack).encode(), qos=1)
            out["acknowledged"] = await _wait(seen, lambda t, b: b.get("action") == "command.acknowledge", 20)
            async with stack.mqtt_client(CLINICIAN) as clinician:
                await clinician.publish(mqtt.command_topic(PATIENT, CLINICIAN), _limits("dr-1", 170, 190), qos=1)
            out["clinician"] = await _wait(seen, lambda t, b: b.get("action") == "command.set_limits"
                                           and b.get("actor") == CLINICIAN, 20)
            await asyncio.sleep(1.0)
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
            out["alive"] = stack.check_alive()
    finally:
        await asyncio.to_thread(stack.stop)
    out["gateway_log"] = (stack.workdir / "gateway.log").read_text(encoding="utf-8", errors="replace")
    return out


def test_anonymous_set_limits_cannot_even_connect(stack_run: dict[str, Any]) -> None:
    assert "not authori" in stack_run["anonymous"].lower(), stack_run["anonymous"]
    # the gateway itself logged in over TLS as its own identity
    assert re.search(rf'event="mqtt connected" .* tls .*identity={GATEWAY}\b', stack_run["gateway_log"])


def test_a_nurse_set_limits_is_refused_and_audited_under_the_nurses_identity(stack_run: dict[str, Any]) -> None:
    _, entry = stack_run["nurse_refused"]
    assert (entry["actor"], entry["outcome"], entry["patient"]) == (NURSE, "rejected", PATIENT)
    assert "may not set_limits" in entry["reason"]
    spoof = f"cardiogate/{SITE}/{PATIENT}/commands/{CLINICIAN}"
    clinician_topics = [b for t, b in stack_run["seen"] if t == spoof]
    assert len(clinician_topics) == 1 and clinician_topics[0]["by"] == "dr-1", "the nurse's spoof was delivered"


def test_the_tachycardia_alarm_still_fires_at_the_default_limit(stack_run: dict[str, Any]) -> None:
    seen = stack_run["seen"]
    _, alarm = stack_run["raised"]
    assert alarm["patient"] == PATIENT and alarm["limit"] == 120 and alarm["value"] > 120
    assert seen.index(stack_run["nurse_refused"]) < seen.index(stack_run["raised"]), "refusal came after the alarm"


def test_a_nurse_can_acknowledge_and_a_clinician_can_set_limits(stack_run: dict[str, Any]) -> None:
    _, ack = stack_run["acknowledged"]
    assert (ack["actor"], ack["outcome"]) == (NURSE, "applied")
    assert any(t.endswith("/alarms") and b.get("state") == "acknowledged" and b.get("by") == NURSE
               for t, b in stack_run["seen"])
    _, limits = stack_run["clinician"]
    assert (limits["outcome"], limits["condition"]) == ("applied", "hr_high")
    assert "entered as dr-1" in limits["reason"]
    assert stack_run["alive"] == []
