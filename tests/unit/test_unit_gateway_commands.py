"""Gateway commands over MQTT (pair / unpair): validated, applied to the persisted registry, answered."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cardiogate.edge.gateway import Gateway
from cardiogate.edge.mqtt import Outgoing
from cardiogate.edge.settings import GatewaySettings, PairedDevice


@pytest.fixture
def gateway(tmp_path: Path) -> Gateway:
    settings = GatewaySettings(
        gateway_id="gw-7", site="ward-7", devices=[PairedDevice(address="C0:00:00:00:00:01", patient="pt-0001")],
        outbox={"path": tmp_path / "outbox.sqlite3"}, state={"pairings_path": tmp_path / "pairings.json"},
        uplink={"tls": False})  # no network here; identity checks are tested with the cloud
    gw = Gateway(settings)
    gw.sent = []  # type: ignore[attr-defined]
    gw.mqtt.publish = gw.sent.append  # type: ignore[method-assign, attr-defined]
    return gw


def answers(gw: Gateway) -> list[dict[str, Any]]:
    sent: list[Outgoing] = gw.sent  # type: ignore[attr-defined]
    return [m.payload for m in sent if m.topic == "cardiogate/ward-7/gateway/gw-7/events"]


def command(gw: Gateway, body: dict[str, Any] | bytes) -> dict[str, Any]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    gw._on_gateway_command("cardiogate/ward-7/gateway/gw-7/commands", raw)
    return answers(gw)[-1]


def test_pair_then_unpair_reaches_the_device_manager_and_survives_a_restart(gateway: Gateway, tmp_path: Path) -> None:
    got = command(gateway, {"schema": 1, "command": "pair", "address": "c0:00:00:00:00:02", "patient": "pt-0002",
                            "by": "nurse-7"})
    assert (got["outcome"], got["address"], got["patient"]) == ("applied", "C0:00:00:00:00:02", "pt-0002")
    assert "C0:00:00:00:00:02" in gateway.devices.devices
    got = command(gateway, {"schema": 1, "command": "unpair", "address": "C0:00:00:00:00:01", "by": "nurse-7"})
    assert got["outcome"] == "applied" and "C0:00:00:00:00:01" not in gateway.devices.devices
    gateway.outbox.close()
    again = Gateway(gateway.settings)
    assert sorted(again.devices.devices) == ["C0:00:00:00:00:02"]
    again.outbox.close()


@pytest.mark.parametrize(("body", "error"), [
    (b"{not json", "expecting"),
    ({"command": "pair", "address": "C0:00:00:00:00:03", "patient": "pt-0003", "by": "n"}, "schema 1"),
    ({"schema": 1, "command": "pair", "address": "C0:00:00:00:00:03", "patient": "pt-0003"}, "'by'"),
    ({"schema": 1, "command": "pair", "address": "nonsense", "patient": "pt-0003", "by": "n"}, "address"),
    ({"schema": 1, "command": "pair", "address": "C0:00:00:00:00:03", "patient": "Jane Doe", "by": "n"}, "patient"),
    ({"schema": 1, "command": "pair", "address": "C0:00:00:00:00:01", "patient": "pt-0009", "by": "n"},
     "unpair it first"),
    ({"schema": 1, "command": "unpair", "address": "C0:00:00:00:00:05", "by": "n"}, "not paired"),
    ({"schema": 1, "command": "reboot", "by": "n"}, "unknown command"),
])
def test_bad_gateway_commands_are_rejected_with_a_reason_and_change_nothing(
        gateway: Gateway, body: dict[str, Any] | bytes, error: str) -> None:
    before = sorted(gateway.devices.devices)
    got = command(gateway, body)
    assert got["outcome"] == "rejected" and error.lower() in got["error"].lower()
    assert "\n" not in got["error"]
    assert sorted(gateway.devices.devices) == before
    assert gateway.gateway_commands_rejected == 1
    gateway.outbox.close()
