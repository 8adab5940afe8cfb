"""Wearable PPG against VT alarms, end to end: chest straps stream ECG and PPG over BLE through the gateway to MQTT.

Three simulated straps that offer ECG and PPG through Polar Measurement Data, and the real stack
(its own locked Mosquitto; the test listens as the read-only monitor):

- a VT run with the pulse preserved: the one-lead VT is doubted on the regular pulse, so the
  low-priority "VT unconfirmed" advisory arrives with its reason, and no VT alarm;
- a pulseless VT run: the pulse pauses, which corroborates the run, so the high-priority VT alarm
  comes at the beat that completes the run (onset delay 0) plus at most 1 s, and reaches the subscriber
  within 2 s of that beat (the wait for the pulse that covers the run included);
- asystole while arm motion makes quasi-periodic pulse-like swings on the PPG: the asystole alarm
  still comes (a pulse never argues against asystole).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from cardiogate.app.site_mqtt import mosquitto_binary
from cardiogate.app.stack import LocalStack, Patient
from cardiogate.edge.alarm_engine.config import default_specs
from cardiogate.sim.truth import read_truth

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]
RUN_S = 46.0
PRESERVED, LOST, ASYSTOLE = "C0:00:00:00:05:01", "C0:00:00:00:05:02", "C0:00:00:00:05:03"
PATIENTS = {PRESERVED: "pt-vt-pulse", LOST: "pt-vt-pulseless", ASYSTOLE: "pt-asystole-motion"}
VT_AT, VT_BPM = 28.0, 180.0
VT_ALARM_BEATS = round(default_specs()["vt"].tiers[0].limit)  # the shipped VT limit, in beats
PAUSE_AT, MOTION_AT = 30.0, 24.0
HR_BPM = 75.0
# The engine's VT limit has no onset delay: the VT beat that reaches it completes the run.
RUN_COMPLETE_S = (VT_ALARM_BEATS - 1) * 60.0 / VT_BPM


def _strap(pseudonym: str, address: str, seed: int, events: list[dict[str, Any]]) -> Patient:
    return Patient(pseudonym, address, [(0.0, HR_BPM)], seed=seed, watch_extra={
        "profile": "polar_ecg_ppg", "patient": {"hr_bpm": HR_BPM, "snr_db": 25, "events": events}})


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if mosquitto_binary() is None:
        pytest.fail("the mosquitto binary must be installed for the e2e tests (each stack runs its own broker)")
    patients = [
        _strap(PATIENTS[PRESERVED], PRESERVED, 51, [
            {"kind": "vt", "at_s": VT_AT, "duration_s": 12, "hr_bpm": VT_BPM, "pulses": "preserved"}]),
        _strap(PATIENTS[LOST], LOST, 52, [
            {"kind": "vt", "at_s": VT_AT, "duration_s": 12, "hr_bpm": VT_BPM, "pulses": "absent"}]),
        _strap(PATIENTS[ASYSTOLE], ASYSTOLE, 53, [
            {"kind": "ppg_motion", "at_s": MOTION_AT, "duration_s": 60, "rate_hz": 1.4, "amplitude": 3.0},
            {"kind": "pause", "at_s": PAUSE_AT, "duration_s": None}]),
    ]
    stack = LocalStack(tmp_path_factory.mktemp("ppg-vt"), patients, gateway_id="gw-ppg", site="ppg-site")

    async def drive() -> dict[str, Any]:
        alarms: list[dict[str, Any]] = []
        vitals: list[dict[str, Any]] = []

        async def listen(ready: asyncio.Event) -> None:
            async with stack.mqtt_client(identifier=f"e2e-ppg-{time.time_ns()}") as client:
                await client.subscribe(f"cardiogate/{stack.site}/+/alarms", qos=1)
                await client.subscribe(f"cardiogate/{stack.site}/+/vitals", qos=0)
                ready.set()
                async for msg in client.messages:
                    assert isinstance(msg.payload, bytes)
                    body = {**json.loads(msg.payload), "received_ns": time.time_ns()}
                    (vitals if str(msg.topic).endswith("/vitals") else alarms).append(body)

        await asyncio.to_thread(stack.start_mqtt)
        ready = asyncio.Event()
        listener = asyncio.create_task(listen(ready))
        try:
            await asyncio.wait_for(ready.wait(), 10)
            await asyncio.to_thread(stack.start)
            await asyncio.sleep(RUN_S)
            assert stack.check_alive() == [], f"a part died; logs in {stack.workdir}"
        finally:
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)
            await asyncio.to_thread(stack.stop)
        return {"alarms": alarms, "vitals": vitals, "truth": read_truth(stack.truth_path)}

    return asyncio.run(drive())


def _start_s(truth: list[dict[str, Any]], watch: str) -> float:
    return next(t["start_us"] for t in truth if t["kind"] == "scenario_event" and t["watch"] == watch) / 1e6


def _notices(run: dict[str, Any], watch: str, condition: str) -> list[dict[str, Any]]:
    return [a for a in run["alarms"] if a["device"] == watch and a["condition"] == condition
            and a["state"] in ("raised", "escalated")]


def _since_start(run: dict[str, Any], watch: str, alarm: dict[str, Any]) -> float:
    return float(alarm["trigger_sample_device_time_ns"]) / 1e9 - _start_s(run["truth"], watch)


def test_each_strap_streams_ecg_and_ppg_and_the_gateway_reads_the_pulse(run: dict[str, Any]) -> None:
    for watch in PATIENTS:
        kinds = {t["kind"] for t in run["truth"] if t.get("watch") == watch}
        assert {"polar_ecg", "polar_ppg"} <= kinds, f"{watch} sent {kinds}"
        ppg = [t for t in run["truth"] if t["kind"] == "polar_ppg" and t["watch"] == watch]
        assert len(ppg) > 50 and {t["fs"] for t in ppg} == {55}  # the rate the gateway asked for
        # the pulse rate the gateway measured on the PPG, before any event: the simulated heart rate
        before = [v["pulse_rate_bpm"] for v in run["vitals"] if v["device"] == watch and v["source"] == "ppg"
                  and "pulse_rate_bpm" in v and v["device_time_ns"] / 1e9 - _start_s(run["truth"], watch) < VT_AT - 2]
        assert len(before) >= 5, f"{watch}: {len(before)} PPG pulse rates before the events"
        assert all(abs(r - HR_BPM) < 8.0 for r in before[2:]), before


def test_a_vt_with_pulses_preserved_gives_the_advisory_with_its_reason(run: dict[str, Any]) -> None:
    advisory = _notices(run, PRESERVED, "vt_unconfirmed")
    assert advisory, f"no advisory: {[(a['device'], a['condition'], a['state']) for a in run['alarms']]}"
    first = advisory[0]
    assert first["priority"] == "low"
    assert "VT unconfirmed" in first["reason"] and "pulses regular" in first["reason"], first["reason"]
    assert "one lead" in first["reason"]
    assert VT_AT < _since_start(run, PRESERVED, first) < VT_AT + RUN_COMPLETE_S + 1.0
    assert _notices(run, PRESERVED, "vt") == []


def test_a_pulseless_vt_raises_the_high_alarm_within_onset_delay_plus_one_second(run: dict[str, Any]) -> None:
    found = _notices(run, LOST, "vt")
    assert found, f"no VT alarm: {[(a['device'], a['condition'], a['state']) for a in run['alarms']]}"
    alarm = found[0]
    t = _since_start(run, LOST, alarm)
    print(f"\npulseless VT: alarm trigger {t - VT_AT:.2f} s after onset (run complete at {RUN_COMPLETE_S:.2f} s), "
          f"at the subscriber {(alarm['received_ns'] - alarm['trigger_sample_device_time_ns']) / 1e6:.0f} ms later")
    assert alarm["priority"] == "high"
    assert VT_AT < t <= VT_AT + RUN_COMPLETE_S + 0.0 + 1.0
    assert "pulse" in alarm["reason"]  # the pulse's pause is the corroborating evidence it names
    assert (alarm["received_ns"] - alarm["trigger_sample_device_time_ns"]) / 1e9 < 2.0
    assert _notices(run, LOST, "vt_unconfirmed") == []


def test_asystole_with_motion_artefact_pulses_still_alarms(run: dict[str, Any]) -> None:
    motion = [v["pulse_rate_bpm"] for v in run["vitals"] if v["device"] == ASYSTOLE and v["source"] == "ppg"
              and "pulse_rate_bpm" in v and v["device_time_ns"] / 1e9 - _start_s(run["truth"], ASYSTOLE) > PAUSE_AT + 9]
    assert motion, "the arm motion should still look like pulses on the PPG"
    found = _notices(run, ASYSTOLE, "asystole")
    assert found, f"no asystole alarm: {[(a['device'], a['condition'], a['state']) for a in run['alarms']]}"
    alarm = found[0]
    assert alarm["priority"] == "high" and PAUSE_AT + 2.0 < _since_start(run, ASYSTOLE, alarm) < PAUSE_AT + 5.0
