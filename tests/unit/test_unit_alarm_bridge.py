"""The gateway's glue around the alarm engine: settings -> engine config, notices -> MQTT + records, commands in."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cardiogate.core.settings import ConfigError
from cardiogate.edge.alarm_bridge import AlarmBridge, engine_config
from cardiogate.edge.settings import AlarmSettings, ConditionOverride
from cardiogate.proto.v1 import telemetry_pb2 as pb

S = 1_000_000_000
T0 = 1_800_000_000 * S
DEV = "C0:00:00:00:00:01"


class Captured:
    def __init__(self) -> None:
        self.published: list[tuple[str, str, dict[str, Any], int, bool, bool]] = []
        self.records: list[pb.Record] = []

    def publish(self, patient: str, leaf: str, payload: dict[str, Any], qos: int, retain: bool, stamp: bool) -> None:
        self.published.append((patient, leaf, payload, qos, retain, stamp))

    def leaf(self, leaf: str) -> list[dict[str, Any]]:
        return [p for _, lf, p, *_ in self.published if lf == leaf]


def bridge(settings: AlarmSettings | None = None,
           known: tuple[str, ...] = ("pt-0001",)) -> tuple[AlarmBridge, Captured]:
    cap = Captured()
    return AlarmBridge(settings or AlarmSettings(), "ward-7", cap.publish, cap.records.append,
                       lambda p: p in known), cap


def test_overrides_reach_the_engine_gateway_wide_and_per_patient() -> None:
    cfg = engine_config(AlarmSettings(
        conditions={"hr_high": ConditionOverride(medium=125, onset_delay_s=8)},
        patients={"pt-0002": {"spo2_low": ConditionOverride(medium=88, high=84)}}))
    hr = cfg.specs["hr_high"]
    assert [(t.priority, t.limit, t.onset_delay_s) for t in hr.tiers] == [("medium", 125, 8), ("high", 150, 8)]
    assert [t.limit for t in cfg.patient_specs["pt-0002"]["spo2_low"].tiers] == [88, 84]


@pytest.mark.parametrize("override", [ConditionOverride(medium=400), ConditionOverride(low=100),
                                      ConditionOverride(medium=160, high=150)])
def test_impossible_limits_are_a_config_error_naming_the_entry(override: ConditionOverride) -> None:
    with pytest.raises(ConfigError, match=r"alarms\.conditions\.hr_high"):
        engine_config(AlarmSettings(conditions={"hr_high": override}))


def test_a_raised_alarm_goes_to_mqtt_with_publish_stamp_and_to_the_outbox() -> None:
    b, cap = bridge(AlarmSettings(conditions={"hr_high": ConditionOverride(onset_delay_s=2)}))
    for k in range(4):
        b.observe_vitals("pt-0001", DEV, T0 + k * S, hr=130.0)
    (alarm,) = cap.leaf("alarms")
    assert (alarm["condition"], alarm["priority"], alarm["state"], alarm["device"]) == ("hr_high", "medium",
                                                                                      "raised", DEV)
    assert alarm["onset_sample_device_time_ns"] == T0 and alarm["trigger_sample_device_time_ns"] == T0 + 2 * S
    assert [(lf, qos, stamp) for _, lf, _, qos, _, stamp in cap.published if lf == "alarms"] == [("alarms", 1, True)]
    (record,) = cap.records
    assert record.stream_id == f"{DEV}/alarms" and record.alarm.state == pb.ALARM_STATE_RAISED
    assert record.alarm.category == "physiological" and record.alarm.priority == pb.ALARM_PRIORITY_MEDIUM
    state = cap.leaf("alarm_state")[-1]
    assert [a["condition"] for a in state["alarms"]] == ["hr_high"]


def test_acknowledge_over_mqtt_is_applied_audited_and_recorded() -> None:
    b, cap = bridge(AlarmSettings(conditions={"hr_high": ConditionOverride(onset_delay_s=0)}))
    b.observe_vitals("pt-0001", DEV, T0, hr=130.0)
    alarm_id = cap.leaf("alarms")[0]["alarm_id"]
    b.handle_command("pt-0001", json.dumps({"schema": 1, "command": "acknowledge", "patient": "pt-0001",
                                            "alarm_id": alarm_id, "by": "nurse-7"}).encode())
    assert b.commands_applied == 1
    assert [a["state"] for a in cap.leaf("alarms")] == ["raised", "acknowledged"]
    assert any(e.get("actor") == "nurse-7" and e.get("outcome") == "applied" for e in cap.leaf("audit"))
    assert cap.records[-1].alarm.state == pb.ALARM_STATE_ACKNOWLEDGED and cap.records[-1].alarm.actor == "nurse-7"


@pytest.mark.parametrize(("topic_patient", "payload", "error"), [
    ("pt-0001", b"not json", "JSON"),
    ("pt-0001", json.dumps({"schema": 1, "command": "acknowledge", "patient": "pt-0002", "alarm_id": "x",
                            "by": "n"}).encode(), "sent on"),
    ("pt-0009", json.dumps({"schema": 1, "command": "silence", "patient": "pt-0009", "by": "n"}).encode(),
     "not monitored"),
])
def test_bad_commands_are_rejected_counted_and_answered(topic_patient: str, payload: bytes, error: str) -> None:
    b, cap = bridge()
    b.handle_command(topic_patient, payload)
    assert b.commands_rejected == 1 and b.commands_applied == 0
    answer = cap.leaf("audit")[0]
    assert answer["outcome"] == "rejected" and error.lower() in answer["error"].lower()
    assert cap.records == [] and cap.leaf("alarms") == []


def test_technical_conditions_become_technical_alarms() -> None:
    b, cap = bridge()
    b.observe_technical("pt-0001", DEV, "battery_low", True, T0)
    (alarm,) = cap.leaf("alarms")
    assert (alarm["condition"], alarm["category"]) == ("battery_low", "technical")
    b.observe_technical("pt-0001", DEV, "battery_low", False, T0 + S)
    assert [a["state"] for a in cap.leaf("alarms")] == ["raised", "cleared"]


def test_a_gap_in_the_ecg_is_not_asystole() -> None:
    from cardiogate.edge.ecg_monitor import MonitoredBeat

    b, cap = bridge()
    beats = [MonitoredBeat(T0 + k * S, "N") for k in range(5)]
    b.observe_beats("pt-0001", DEV, T0 + 5 * S, beats)
    # The link drops for 10 s; the first beats after it arrive flagged as a restart of the signal.
    b.observe_beats("pt-0001", DEV, T0 + 16 * S, [MonitoredBeat(T0 + 15 * S, "N")], interrupted=True)
    b.observe_beats("pt-0001", DEV, T0 + 17 * S, [MonitoredBeat(T0 + 16 * S, "N")])
    assert [a for a in cap.leaf("alarms") if a["condition"] == "asystole"] == []
    b.observe_beats("pt-0001", DEV, T0 + 21 * S, [MonitoredBeat(T0 + 20 * S, "N")])  # a real 4 s pause
    assert [a["condition"] for a in cap.leaf("alarms")] == ["asystole"]
