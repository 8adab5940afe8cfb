"""One simulated watch -> BLE (bumble) -> gateway -> MQTT alarm + gRPC -> ingest -> Kafka (tansu).

All parts are real and run as separate processes on loopback: the stack's own locked
Mosquitto (TLS, one identity per client, ACL; the test listens as the read-only monitor),
tansu, the gRPC ingest, the virtual radio with a GATT peripheral,
and the gateway using bleak over the bumble backend. The simulator's ground-truth
log says exactly what went over the air; Kafka must hold exactly that.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cardiogate.app.kafka_reader import RecordReader
from cardiogate.app.site_mqtt import mosquitto_binary
from cardiogate.app.stack import LocalStack, Patient
from cardiogate.proto.v1 import telemetry_pb2 as pb
from cardiogate.sim.truth import read_truth

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

PATIENT = "pt-4242"
ADDRESS = "C0:00:00:00:00:2A"
TACHY_FROM_S = 4.0
RUN_S = 24.0
# Late enough that the gateway has surely subscribed (a loaded machine can take 5-7 s to start it) and
# after the high alarm has confirmed, so the extra packet cannot shift the alarm timings under test.
MALFORMED_AT_S = 18.0
# Heart-rate samples are 1 s apart and their device time is estimated (HRM carries no timestamp),
# so the medium (>120) and high (>150) crossings must lie well over a sample apart for the medium
# alarm to be raised before the high tier confirms; a 6 s ramp puts them about 2-3 s apart.
RAMP_S = 6.0
TIME_TOLERANCE_NS = 250_000_000


@pytest.fixture(scope="module")
def skeleton_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if mosquitto_binary() is None:
        pytest.fail("the mosquitto binary must be installed for the e2e tests (each stack runs its own broker)")
    work = tmp_path_factory.mktemp("skeleton")
    patient = Patient(PATIENT, ADDRESS, [(0.0, 70.0), (TACHY_FROM_S, 70.0), (TACHY_FROM_S + RAMP_S, 160.0)], seed=42,
                      malformed_hr_at_s=[MALFORMED_AT_S])
    stack = LocalStack(work, [patient], gateway_id="gw-e2e-1", site="e2e-site")
    return asyncio.run(_drive(stack))


async def _drive(stack: LocalStack) -> dict[str, Any]:
    alarms: list[dict[str, Any]] = []
    received_at: list[int] = []

    async def listen(ready: asyncio.Event) -> None:
        async with stack.mqtt_client(identifier=f"e2e-{time.time_ns()}") as client:
            await client.subscribe(f"cardiogate/{stack.site}/{PATIENT}/alarms", qos=1)
            ready.set()
            async for msg in client.messages:
                assert isinstance(msg.payload, bytes)
                alarms.append(json.loads(msg.payload))
                received_at.append(time.time_ns())

    await asyncio.to_thread(stack.start_mqtt)
    ready = asyncio.Event()
    listener = asyncio.create_task(listen(ready))
    try:
        await asyncio.wait_for(ready.wait(), 10)
        await asyncio.to_thread(stack.start)
        await asyncio.sleep(RUN_S)
        assert stack.check_alive() == [], f"a part died; logs in {stack.workdir}"
        # Stop the watch: no new samples, and the gateway flushes its open ECG block.
        sim = stack.procs["sim"]
        sim.terminate()
        await asyncio.to_thread(sim.wait, 10)
        truth = read_truth(stack.truth_path)
        want = sum(len(t["samples"]) for t in truth if t["kind"] == "ecg")
        records = await asyncio.to_thread(_read_until, stack.kafka_bootstrap, want, 45.0)
    finally:
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)
        await asyncio.to_thread(stack.stop)
    gateway_log = (stack.workdir / "gateway.log").read_text(encoding="utf-8", errors="replace")
    return {"truth": truth, "records": records, "alarms": alarms, "received_at": received_at,
            "gateway_log": gateway_log, "workdir": stack.workdir}


def _read_until(bootstrap: str, ecg_samples: int, timeout_s: float) -> list[pb.Record]:
    reader = RecordReader(bootstrap, ["ecg.raw", "vitals", "alarms"])
    out: list[pb.Record] = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            out.extend(kr.record for kr in reader.poll(1.0))
            have = sum(r.samples.sample_count for r in out if r.kind == pb.STREAM_KIND_ECG)
            if have >= ecg_samples:
                out.extend(kr.record for kr in reader.poll(2.0))  # anything late would be a duplicate
                break
    finally:
        reader.close()
    return out


def _stream(records: list[pb.Record], kind: pb.StreamKind.ValueType) -> list[pb.Record]:
    return [r for r in records if r.kind == kind and r.device_id == ADDRESS]


def test_ecg_in_kafka_equals_what_the_watch_sent(skeleton_run: dict[str, Any]) -> None:
    truth = [t for t in skeleton_run["truth"] if t["kind"] == "ecg"]
    assert sum(len(t["samples"]) for t in truth) > 3000, "the watch sent too little ECG to judge"
    blocks = _stream(skeleton_run["records"], pb.STREAM_KIND_ECG)
    seqs = [b.sequence for b in blocks]
    assert len(seqs) == len(set(seqs)), "duplicate records in Kafka"
    assert seqs == list(range(len(seqs))), "records missing or out of order in Kafka"
    assert all(b.patient == PATIENT and b.stream_id == f"{ADDRESS}/ecg" for b in blocks)
    got = np.concatenate([np.frombuffer(b.samples.samples, dtype="<i2") for b in blocks])
    sent = np.concatenate([np.asarray(t["samples"], dtype=np.int16) for t in truth])
    assert len(got) == len(sent), f"Kafka has {len(got)} ECG samples, the watch sent {len(sent)}"
    assert np.array_equal(got, sent), "ECG sample values differ"
    # Device time of every block is the watch's timestamp of its first sample.
    by_seq = {t["seq"]: t for t in truth}
    for b in blocks:
        assert b.samples.first_sample_device_time_ns == by_seq[b.samples.device_sequence_first]["t0_us"] * 1000
        assert b.samples.sample_rate_hz == 250.0 and b.samples.unit == "uV"
        assert b.samples.receive_time_ns >= b.samples.first_sample_device_time_ns - 1_000_000_000
        # The drift-corrected time lies on the gateway clock, within the transport delay of the device time.
        assert abs(b.samples.first_sample_corrected_time_ns - b.samples.first_sample_device_time_ns) < 200_000_000


def test_heart_rates_in_kafka_match_and_the_malformed_packet_was_survived(skeleton_run: dict[str, Any]) -> None:
    truth_hr = [t["hr"] for t in skeleton_run["truth"] if t["kind"] == "hr"]
    all_vitals = _stream(skeleton_run["records"], pb.STREAM_KIND_VITALS)
    assert [v.sequence for v in all_vitals] == list(range(len(all_vitals)))
    vitals = [v for v in all_vitals if v.vitals.source == "hrm"]  # the watch also sends SpO2 (source "plx")
    assert [round(v.vitals.heart_rate_bpm) for v in vitals] == truth_hr
    truth_rr = [[round(x * 1000 / 1024, 6) for x in t["rr_1024"]] for t in skeleton_run["truth"] if t["kind"] == "hr"]
    assert [[round(x, 6) for x in v.vitals.rr_intervals_ms] for v in vitals] == truth_rr
    malformed = [t for t in skeleton_run["truth"] if t["kind"] == "malformed_hr"]
    assert len(malformed) == 1, "the watch should have sent one malformed packet"
    log = skeleton_run["gateway_log"]
    assert log.count("decode error") == 1 and "characteristic=heart_rate" in log
    # the session continued: heart rates after the bad packet arrived
    assert any(t["kind"] == "hr" and t["t_us"] > malformed[0]["t_us"] for t in skeleton_run["truth"])


def test_tachycardia_alarm_on_mqtt_with_pseudonym_priority_and_triggering_sample(
        skeleton_run: dict[str, Any]) -> None:
    raised = [a for a in skeleton_run["alarms"] if a["condition"] == "hr_high" and a["state"] == "raised"]
    assert len(raised) == 1, skeleton_run["alarms"]
    # Above 150 bpm the same episode escalates to high priority; it is never raised twice.
    escalated = [a for a in skeleton_run["alarms"] if a["condition"] == "hr_high" and a["state"] == "escalated"]
    assert escalated and escalated[0]["alarm_id"] == raised[0]["alarm_id"] and escalated[0]["priority"] == "high", (
        f"alarms: {skeleton_run['alarms']}\n"
        f"heart rates (truth s, bpm, gateway s): {_heart_rate_timeline(skeleton_run)}")
    alarm = raised[0]
    assert alarm["patient"] == PATIENT and alarm["priority"] == "medium" and alarm["device"] == ADDRESS
    assert alarm["schema"] == 1
    hr = [t for t in skeleton_run["truth"] if t["kind"] == "hr"]
    first_over = next(t for t in hr if t["hr"] > 120)
    trigger_ns = alarm["trigger_sample_device_time_ns"]
    onset_ns = alarm["onset_sample_device_time_ns"]
    # Heart Rate Measurement has no timestamp: the gateway estimates device time from the receive time and
    # the clock offset it learns from the ECG stream. The onset and trigger times must name the real
    # heart-rate samples (1 s apart) to within TIME_TOLERANCE.
    assert abs(onset_ns - first_over["t_us"] * 1000) < TIME_TOLERANCE_NS
    trigger = min(hr, key=lambda t: abs(t["t_us"] * 1000 - trigger_ns))
    assert abs(trigger["t_us"] * 1000 - trigger_ns) < TIME_TOLERANCE_NS and trigger["hr"] > 120
    assert all(t["hr"] > 120 for t in hr if first_over["t_us"] <= t["t_us"] <= trigger["t_us"])
    # It fires on the first sample at least 5 s after onset: samples are 1 s apart, so within one period.
    held_s = (trigger_ns - onset_ns) / 1e9
    assert 5.0 <= held_s < 6.0 + TIME_TOLERANCE_NS / 1e9, f"onset delay not honoured: held {held_s:.3f} s"
    assert trigger_ns <= alarm["decision_time_ns"] + 50_000_000 <= alarm["publish_time_ns"] + 50_000_000
    assert alarm["value"] > 120 and alarm["limit"] == 120
    # and the same alarm reached Kafka through the outbox
    in_kafka = [r.alarm for r in _stream(skeleton_run["records"], pb.STREAM_KIND_ALARMS)]
    assert any(a.alarm_id == alarm["alarm_id"] and a.priority == pb.ALARM_PRIORITY_MEDIUM for a in in_kafka)


def _heart_rate_timeline(run: dict[str, Any]) -> list[tuple[float, int, float | None]]:
    """(truth time s, truth bpm, gateway's device-time estimate s) per heart-rate packet, for failure messages."""
    start = next(t["start_us"] for t in run["truth"] if t["kind"] == "scenario_event") * 1000
    truth = [t for t in run["truth"] if t["kind"] == "hr"]
    got = [v.vitals.device_time_ns for v in _stream(run["records"], pb.STREAM_KIND_VITALS) if v.vitals.source == "hrm"]
    return [(round((t["t_us"] * 1000 - start) / 1e9, 3), t["hr"],
             round((got[i] - start) / 1e9, 3) if i < len(got) else None) for i, t in enumerate(truth)]


def test_no_part_logged_an_error(skeleton_run: dict[str, Any]) -> None:
    work: Path = skeleton_run["workdir"]
    for name in ("gateway", "cloud"):
        text = (work / f"{name}.log").read_text(encoding="utf-8", errors="replace")
        assert "level=error" not in text and "Traceback" not in text, f"{name}.log:\n{text[-3000:]}"
