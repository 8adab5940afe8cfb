"""Every device profile end to end: real GATT peripherals -> bleak over bumble -> gateway -> MQTT and Kafka.

One stack with a Polar H10-like strap (PMD ECG at 130 Hz, started by a control point
write, with a late start), a pulse oximeter, a cuff, a plain HR watch whose electrode
comes off (lead-off technical alarm) and whose battery runs down (battery-low
technical alarm), a watch whose clock drifts, and, when ../shared/data/mitdb is
present, our ECG watch replaying MIT-BIH record 101: Kafka must hold exactly the
simulator's quantised samples, in order.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cardiogate.app.kafka_reader import RecordReader
from cardiogate.app.stack import LocalStack, Patient
from cardiogate.proto.v1 import telemetry_pb2 as pb
from cardiogate.sim.truth import read_truth
from tests.conftest import REPO, port_open

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

MITDB = Path(os.environ.get("CARDIOGATE_DATA_DIR", REPO.parent / "shared" / "data")).resolve() / "mitdb"
RUN_S = 30.0
POLAR, OXI, CUFF, HRW, DRIFT, REPLAY = (f"C0:00:00:00:01:0{i}" for i in range(1, 7))
POLAR_START_DELAY_S = 4.0


def _patients() -> list[Patient]:
    patients = [
        Patient("pt-polar", POLAR, [(0.0, 64.0)], seed=11,
                watch_extra={"profile": "polar_h10", "faults": {"ecg_start_delay_s": POLAR_START_DELAY_S}}),
        Patient("pt-oxi", OXI, [(0.0, 70.0)], seed=12,
                watch_extra={"profile": "pulse_oximeter",
                             "patient": {"hr_bpm": 70, "events": [
                                 {"kind": "desaturation", "at_s": 5, "duration_s": 20, "target_pct": 86}]}}),
        Patient("pt-cuff", CUFF, [(0.0, 80.0)], seed=13,
                watch_extra={"profile": "bp_cuff", "bp_interval_s": 8.0}),
        Patient("pt-hrw", HRW, [(0.0, 75.0)], seed=14,
                watch_extra={"profile": "hr_watch",
                             "patient": {"hr_bpm": 75, "events": [{"kind": "lead_off", "at_s": 8, "duration_s": 12}]},
                             "faults": {"battery_start_percent": 18.0, "battery_drain_percent_per_hour": 1800.0}}),
        Patient("pt-drift", DRIFT, [(0.0, 66.0)], seed=15,
                watch_extra={"profile": "ecg_watch", "faults": {"clock_drift_ppm": 1000.0}}),
    ]
    if (MITDB / "101.hea").exists():
        patients.append(Patient("pt-replay", REPLAY, [(0.0, 72.0)], seed=16,
                                watch_extra={"profile": "ecg_watch", "record": str(MITDB / "101")}))
    return patients


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if not port_open("127.0.0.1", 1883):
        pytest.fail("Mosquitto must answer on 127.0.0.1:1883 for the e2e tests (.ci/run starts it)")
    stack = LocalStack(tmp_path_factory.mktemp("profiles"), _patients(), gateway_id="gw-profiles", site="prof-site",
                       gateway_extra={"ble": {"battery_low_percent": 15},
                                      "alarms": {"conditions": {"lead_off": {"onset_delay_s": 3.0}}}})
    return asyncio.run(_drive(stack))


async def _drive(stack: LocalStack) -> dict[str, Any]:
    alarms: list[dict[str, Any]] = []

    async def listen(ready: asyncio.Event) -> None:
        async with stack.mqtt_client(identifier=f"e2e-prof-{time.time_ns()}") as client:
            await client.subscribe(f"cardiogate/{stack.site}/+/alarms", qos=1)
            ready.set()
            async for msg in client.messages:
                assert isinstance(msg.payload, bytes)
                alarms.append(json.loads(msg.payload))

    await asyncio.to_thread(stack.start_mqtt)  # the stack's own locked broker; the test listens as the monitor
    ready = asyncio.Event()
    listener = asyncio.create_task(listen(ready))
    try:
        await asyncio.wait_for(ready.wait(), 10)
        await asyncio.to_thread(stack.start)
        await asyncio.sleep(RUN_S)
        assert stack.check_alive() == [], f"a part died; logs in {stack.workdir}"
        sim = stack.procs["sim"]
        stopped_us = time.time_ns() // 1000
        sim.terminate()
        await asyncio.to_thread(sim.wait, 10)
        await asyncio.sleep(2.0)
        truth = read_truth(stack.truth_path)
        records = await asyncio.to_thread(_read, stack.kafka_bootstrap, truth, 60.0)
    finally:
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)
        await asyncio.to_thread(stack.stop)
    log = (stack.workdir / "gateway.log").read_text(encoding="utf-8", errors="replace")
    return {"truth": truth, "records": records, "alarms": alarms, "gateway_log": log, "sim_stopped_us": stopped_us}


def _read(bootstrap: str, truth: list[dict[str, Any]], timeout_s: float) -> list[pb.Record]:
    want = sum(len(t["samples"]) for t in truth if t["kind"] in ("ecg", "polar_ecg"))
    reader = RecordReader(bootstrap, ["ecg.raw", "vitals", "alarms", "device.events"])
    out: list[pb.Record] = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            out.extend(kr.record for kr in reader.poll(1.0))
            if sum(r.samples.sample_count for r in out if r.kind == pb.STREAM_KIND_ECG) >= want:
                out.extend(kr.record for kr in reader.poll(2.0))
                break
    finally:
        reader.close()
    return out


def _ecg(records: list[pb.Record], device: str) -> list[pb.SampleBlock]:
    blocks = sorted((r for r in records if r.kind == pb.STREAM_KIND_ECG and r.device_id == device),
                    key=lambda r: r.sequence)
    return [r.samples for r in blocks]


def _samples(blocks: list[pb.SampleBlock]) -> np.ndarray[Any, np.dtype[np.int64]]:
    width = {pb.SAMPLE_ENCODING_INT16_LE: "<i2", pb.SAMPLE_ENCODING_INT32_LE: "<i4"}
    return np.concatenate([np.frombuffer(b.samples, width[b.encoding]).astype(np.int64) for b in blocks])


def _vitals(records: list[pb.Record], device: str, source: str) -> list[pb.VitalsRecord]:
    return [r.vitals for r in records
            if r.kind == pb.STREAM_KIND_VITALS and r.device_id == device and r.vitals.source == source]


def test_no_decode_errors(run: dict[str, Any]) -> None:
    assert "decode error" not in run["gateway_log"]
    assert "Traceback" not in run["gateway_log"]


def test_polar_strap_ecg_arrives_exactly_after_its_late_start(run: dict[str, Any]) -> None:
    frames = [t for t in run["truth"] if t["kind"] == "polar_ecg" and t["watch"] == POLAR]
    assert len(frames) > 20
    requests = [t for t in run["truth"] if t["kind"] == "pmd_request" and t["watch"] == POLAR]
    assert requests and requests[0]["payload"] == "02000001820001010e00"  # start ECG, 130 Hz, 14 bits
    first_frame_host_s = frames[0]["t0_us"] / 1e6
    assert first_frame_host_s - requests[0]["host_us"] / 1e6 >= POLAR_START_DELAY_S - 0.1
    blocks = _ecg(run["records"], POLAR)
    assert {b.sample_rate_hz for b in blocks} == {130.0} and {b.unit for b in blocks} == {"uV"}
    assert _samples(blocks).tolist() == [s for t in frames for s in t["samples"]]
    # The strap stamps the last sample in ns; the first sample's time derived from it is exact to the truth's µs.
    assert abs(blocks[0].first_sample_device_time_ns - frames[0]["t0_us"] * 1000) < 1000


def test_pulse_oximeter_spo2_follows_the_desaturation(run: dict[str, Any]) -> None:
    truth = [t for t in run["truth"] if t["kind"] == "spo2" and t["watch"] == OXI]
    sent = [(t["spo2"], t["pr"]) for t in truth]
    got = [(v.spo2_percent, v.pulse_rate_bpm) for v in _vitals(run["records"], OXI, "plx")]
    assert len(got) > 20 and got == sent[:len(got)], "a reading lost, reordered or invented"
    # The simulator is killed mid-stream: a notification it queued in its last moment may still sit in its
    # controller, never on the air. Only such a reading may be missing, nothing sent well before the stop.
    in_flight = [t for t in truth[len(got):] if t["t_us"] < run["sim_stopped_us"] - 1_000_000]
    assert in_flight == [], f"readings sent well before the simulator stopped never reached Kafka: {in_flight}"
    assert min(s for s, _ in got) < 90.0 < max(s for s, _ in got)


def test_cuff_readings_carry_the_cuff_timestamp(run: dict[str, Any]) -> None:
    sent = [(t["t_us"] * 1000, t["systolic"], t["diastolic"]) for t in run["truth"]
            if t["kind"] == "bp" and t["watch"] == CUFF]
    got = [(v.device_time_ns, v.systolic_mmhg, v.diastolic_mmhg) for v in _vitals(run["records"], CUFF, "bpm")]
    assert got == sent and len(got) >= 2


def test_lead_off_and_battery_low_raise_technical_alarms(run: dict[str, Any]) -> None:
    mine = [a for a in run["alarms"] if a["device"] == HRW]
    raised = {a["condition"] for a in mine if a["state"] == "raised"}
    assert {"lead_off", "battery_low"} <= raised
    assert all(a["category"] == "technical" for a in mine if a["condition"] in ("lead_off", "battery_low"))
    assert any(a["condition"] == "lead_off" and a["state"] == "cleared" for a in mine), "lead back on must clear"
    contact = [v.sensor_contact for v in _vitals(run["records"], HRW, "hrm")]
    assert False in contact and contact[-1] is True


def test_a_drifting_clock_is_estimated(run: dict[str, Any]) -> None:
    blocks = _ecg(run["records"], DRIFT)
    assert blocks
    # Device time runs 1000 ppm fast (25 ms over the run); the corrected time follows the gateway clock.
    last = blocks[-1]
    assert abs(last.first_sample_corrected_time_ns - last.receive_time_ns) < 1_000_000_000
    drift_ns = last.first_sample_device_time_ns - blocks[0].first_sample_device_time_ns
    corrected_ns = last.first_sample_corrected_time_ns - blocks[0].first_sample_corrected_time_ns
    assert drift_ns - corrected_ns > 10_000_000  # the fast clock was slowed down onto the gateway's


def test_mitbih_101_replays_exactly(run: dict[str, Any]) -> None:
    if not (MITDB / "101.hea").exists():
        pytest.skip(f"MIT-BIH not found in {MITDB}")
    from cardiogate.sim.physiology import uv_to_int16
    from cardiogate.sim.wfdb_replay import WfdbRecordSource

    sent = [t for t in run["truth"] if t["kind"] == "ecg" and t["watch"] == REPLAY]
    got = _samples(_ecg(run["records"], REPLAY))
    assert got.tolist() == [s for t in sent for s in t["samples"]]
    # ... and those are the record's own samples, resampled to 250 Hz and quantised to 1 µV, in order.
    first = round((sent[0]["t0_us"] - _start_us(run["truth"], REPLAY)) * 250 / 1e6)
    expected = uv_to_int16(WfdbRecordSource(Path(MITDB / "101"), 0, 250).ecg_uv(first, len(got)), 1000)
    assert np.array_equal(got, expected.astype(np.int64))


def _start_us(truth: list[dict[str, Any]], watch: str) -> int:
    """The watch's clock at start: the first packet's time minus its index (packets are 4 ms per sample)."""
    produced = sorted((t for t in truth if t["kind"] in ("ecg", "ecg_unsent") and t["watch"] == watch),
                      key=lambda t: t["seq"])
    index = 0
    for t in produced:
        if t["kind"] == "ecg":
            return int(t["t0_us"] - index * 4000)
        index += t["n"]
    raise AssertionError("no ECG sent")
