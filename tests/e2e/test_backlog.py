"""Backlog: while a 30-minute backlog of 10 watches drains, live alarms still reach Kafka within 2 s.

The simulator runs in real time only (it has no time-scale option), so the backlog is not
accumulated over 30 real minutes: it is synthesized before the gateway starts, from the
simulator's own patient models (ECG at 250 Hz in the watch's 113-sample packets and the
gateway's blocks, heart rate with RR intervals and SpO2 each second; 10 watches x 30
minutes of device time ending a minute ago) and written through the gateway's own
``Outbox`` class, so the gateway finds exactly what an outage of that length would have
left in its queue. Then the whole stack runs with the same 10 watches live and the ingest
still down; it comes back at a known moment, and three patients turn tachycardic in the
seconds after, while the backlog drains with the uplink's default pacing (the backlog's
raw ECG at ``backlog_max_bytes_per_s``; alarms always first).

What must hold: every alarm raised while the backlog drains is in Kafka within 2 s of the
gateway's decision (measured by a reader tailing Kafka, so the bound includes the
reader's own fetch delay); every backlog record arrives exactly once, unchanged; the live
data reconciles with the ground truth. The drain rate (records/s, samples/s) is printed.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from cardiogate.app.kafka_reader import KafkaRecord, RecordReader
from cardiogate.app.reconcile import reconcile_streams
from cardiogate.app.stack import Patient
from cardiogate.edge.codecs.ecg_waveform import samples_per_packet
from cardiogate.edge.outbox import Outbox
from cardiogate.proto.v1 import telemetry_pb2 as pb
from cardiogate.sim.patient import PatientScenario, PatientSimulator
from cardiogate.sim.physiology import uv_to_int16
from cardiogate.sim.truth import read_truth
from tests.conftest import port_open
from tests.harness.chaos_stack import ChaosStack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

WATCHES = 10
BACKLOG_S = 30 * 60
FS = 250
PACKET = samples_per_packet(247)  # what the simulated watch sends at the MTU the gateway negotiates
BLOCK_PACKETS = -(-250 // PACKET)  # the gateway closes a block once it holds 250 samples
ALARM_BOUND_S = 2.0
INGEST_BACK_S = 15.0  # seconds after the simulator starts: the outage ends and the drain begins
TACHY = {0: 13.0, 3: 17.0, 6: 21.0}  # watch index -> when its HR ramps up: alarms about 7 s later, mid-drain
TOPICS = ["ecg.raw", "vitals", "alarms", "device.events"]


def _patients() -> list[Patient]:
    out = []
    for i in range(WATCHES):
        knots = [(0.0, 64.0 + 2 * i)]
        if i in TACHY:
            knots += [(TACHY[i], 64.0 + 2 * i), (TACHY[i] + 3.0, 138.0)]
        out.append(Patient(f"pt-{i + 1:04d}", f"C0:00:00:00:BA:{i + 1:02X}", knots, seed=700 + i))
    return out


def synthesize_backlog(outbox_path: Path, patients: list[Patient], end_ns: int,
                       seconds: int = BACKLOG_S) -> dict[tuple[str, int], pb.Record]:
    """Queue ``seconds`` (30 minutes) of each patient's data in the outbox, as an outage would have; returns what
    was queued."""
    outbox = Outbox(outbox_path)
    queued: dict[tuple[str, int], pb.Record] = {}
    start_ns = end_ns - seconds * 1_000_000_000
    try:
        for p in patients:
            sim = PatientSimulator(PatientScenario.from_heart_rate_knots([(0.0, p.heart_rate[0][1])]), seed=p.seed,
                                   ecg_rate_hz=FS)
            counts = uv_to_int16(sim.ecg_uv(0, seconds * FS))
            records: list[pb.Record] = []
            block = PACKET * BLOCK_PACKETS
            for k, first in enumerate(range(0, len(counts) - block + 1, block)):
                t0 = start_ns + first * 1_000_000_000 // FS
                records.append(_record(p, pb.STREAM_KIND_ECG, samples=pb.SampleBlock(
                    first_sample_device_time_ns=t0, receive_time_ns=t0 + 50_000_000, sample_rate_hz=FS, scale=1.0,
                    unit="uV", encoding=pb.SAMPLE_ENCODING_INT16_LE, samples=counts[first:first + block].tobytes(),
                    sample_count=block, device_sequence_first=k * BLOCK_PACKETS,
                    device_sequence_last=k * BLOCK_PACKETS + BLOCK_PACKETS - 1, first_sample_corrected_time_ns=t0)))
            for s in range(1, seconds):
                t = start_ns + s * 1_000_000_000
                rr = [round(x * 1000.0, 3) for x in sim.rr_intervals_s(s - 1.0, float(s))]
                records.append(_record(p, pb.STREAM_KIND_VITALS, vitals=pb.VitalsRecord(
                    device_time_ns=t, receive_time_ns=t + 30_000_000, heart_rate_bpm=round(sim.heart_rate_bpm(s)),
                    rr_intervals_ms=rr, sensor_contact=True, source="hrm")))
                records.append(_record(p, pb.STREAM_KIND_VITALS, vitals=pb.VitalsRecord(
                    device_time_ns=t, receive_time_ns=t + 30_000_000, spo2_percent=round(sim.spo2_pct(s), 1),
                    pulse_rate_bpm=float(round(sim.pulse_rate_bpm(s))), source="plx")))
            records.sort(key=lambda r: r.samples.first_sample_device_time_ns or r.vitals.device_time_ns)
            for i in range(0, len(records), 2000):
                outbox.append_many(records[i:i + 2000])
            queued.update(((r.stream_id, r.sequence), r) for r in records)
    finally:
        outbox.close()
    return queued


def _record(p: Patient, kind: pb.StreamKind.ValueType, **body: Any) -> pb.Record:
    suffix = pb.StreamKind.Name(kind).removeprefix("STREAM_KIND_").lower()
    return pb.Record(stream_id=f"{p.address}/{suffix}", device_id=p.address, patient=p.pseudonym, kind=kind, **body)


class Tail:
    """Reads every topic from the start, noting when each record was first seen."""

    def __init__(self, bootstrap: str) -> None:
        self.reader = RecordReader(bootstrap, TOPICS)
        self.seen: list[tuple[int, KafkaRecord]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            for kr in self.reader.poll(0.2):
                self.seen.append((time.time_ns(), kr))

    def close(self, idle_s: float = 4.0) -> None:
        n, quiet_since = -1, time.monotonic()
        while time.monotonic() - quiet_since < idle_s:
            time.sleep(0.5)
            if len(self.seen) != n:
                n, quiet_since = len(self.seen), time.monotonic()
        self.stop.set()
        self.thread.join(timeout=10)
        self.reader.close()


@pytest.fixture(scope="module")
def backlog_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if not port_open("127.0.0.1", 1883):
        pytest.fail("Mosquitto must answer on 127.0.0.1:1883 for the e2e tests (.ci/run starts it)")
    work = tmp_path_factory.mktemp("backlog")
    patients = _patients()
    stack = ChaosStack(work, patients, gateway_id="gw-e2e-backlog", site="backlog-site",
                       gateway_extra={"analysis": {"enabled": False}, "uplink": {"backoff_max_s": 1.0}})
    stack.workdir.mkdir(parents=True, exist_ok=True)
    t = time.monotonic()
    queued = synthesize_backlog(stack.outbox_path, patients, time.time_ns() - 60_000_000_000)
    synth_s = time.monotonic() - t
    stack.start()
    sim_started = time.monotonic() - 1.0  # the simulator came up just before the gateway was spawned
    tail: Tail | None = None
    try:
        stack.stop_ingest()  # the outage goes on while the gateway starts and its watches connect
        tail = Tail(stack.kafka_bootstrap)
        time.sleep(max(0.0, sim_started + INGEST_BACK_S - time.monotonic()))
        stack.start_ingest()
        deadline = time.monotonic() + 300
        while (not _backlog_seen(tail, queued) or time.monotonic() < sim_started + max(TACHY.values()) + 15) \
                and time.monotonic() < deadline:
            time.sleep(1.0)
            assert stack.check_alive() == [], f"a part died; logs in {work}"
        stack.procs["sim"].terminate()
        stack.procs["sim"].wait(30)
        quiet = 0
        while quiet < 3 and time.monotonic() < deadline + 60:
            time.sleep(1.0)
            quiet = quiet + 1 if stack.outbox_depth() == 0 else 0
        stack.kill("gateway")  # nothing new may be acked after the ledger is read
        acked = stack.acked()
        tail.close()
    finally:
        if tail is not None:
            tail.stop.set()
        stack.stop()
    return {"queued": queued, "seen": tail.seen, "acked": acked, "truth": read_truth(stack.truth_path),
            "workdir": work, "synth_s": synth_s}


def _backlog_seen(tail: Tail, queued: dict[tuple[str, int], pb.Record]) -> bool:
    have = {(kr.record.stream_id, kr.record.sequence) for _, kr in list(tail.seen)}
    return queued.keys() <= have


@pytest.fixture(scope="module")
def drain(backlog_run: dict[str, Any]) -> dict[str, Any]:
    """When the backlog drained and how fast, and how long each alarm took to reach Kafka."""
    queued = backlog_run["queued"]
    first_seen: dict[tuple[str, int], int] = {}
    for at, kr in backlog_run["seen"]:
        first_seen.setdefault((kr.record.stream_id, kr.record.sequence), at)
    backlog_at = [first_seen[k] for k in queued if k in first_seen]
    start_ns, end_ns = min(backlog_at), max(backlog_at)
    seconds = (end_ns - start_ns) / 1e9
    samples = sum(r.samples.sample_count for r in queued.values() if r.kind == pb.STREAM_KIND_ECG)
    nbytes = sum(r.ByteSize() for r in queued.values())
    alarms = []
    for at, kr in backlog_run["seen"]:
        r = kr.record
        if r.kind == pb.STREAM_KIND_ALARMS and first_seen[(r.stream_id, r.sequence)] == at:
            alarms.append({"patient": r.patient, "condition": r.alarm.condition,
                           "state": pb.AlarmState.Name(r.alarm.state).removeprefix("ALARM_STATE_").lower(),
                           "latency_s": round((at - r.alarm.decision_time_ns) / 1e9, 3),
                           "during_drain": start_ns <= r.alarm.decision_time_ns < end_ns})
    report = {"backlog": {"watches": WATCHES, "minutes": BACKLOG_S / 60, "records": len(queued),
                          "ecg_samples": samples, "bytes": nbytes,
                          "synthesized_in_s": round(backlog_run["synth_s"], 1)},
              "drain_s": round(seconds, 1), "records_per_s": round(len(queued) / seconds, 1),
              "samples_per_s": round(samples / seconds, 1), "kib_per_s": round(nbytes / 1024 / seconds, 1),
              "alarms": alarms}
    print("\n" + json.dumps(report, indent=2))
    (backlog_run["workdir"] / "backlog-report.json").write_text(json.dumps(report, indent=2))
    return report


def test_live_alarms_reach_kafka_within_2_s_while_the_backlog_drains(drain: dict[str, Any]) -> None:
    during = [a for a in drain["alarms"] if a["during_drain"]]
    raised = {a["patient"] for a in during if a["condition"] == "hr_high" and a["state"] == "raised"}
    assert len(raised) == len(TACHY), f"expected every tachycardic patient's alarm during the drain: {drain['alarms']}"
    slow = [a for a in during if a["latency_s"] > ALARM_BOUND_S]
    assert not slow, f"alarms slower than {ALARM_BOUND_S} s while the backlog drained: {slow}"
    assert drain["drain_s"] > 10, "the backlog drained too fast for the alarms to compete with it"


def test_every_backlog_record_arrives_once_and_unchanged(backlog_run: dict[str, Any]) -> None:
    copies: dict[tuple[str, int], list[pb.Record]] = defaultdict(list)
    for _, kr in backlog_run["seen"]:
        copies[(kr.record.stream_id, kr.record.sequence)].append(kr.record)
    queued = backlog_run["queued"]
    missing = [k for k in queued if k not in copies]
    doubled = [k for k in queued if len(copies.get(k, [])) > 1]
    changed = [k for k in queued if k in copies and copies[k][0] != queued[k]]
    assert not missing and not doubled and not changed, (missing[:5], doubled[:5], changed[:5])


def test_live_data_reconciles_and_every_acked_record_is_in_kafka(backlog_run: dict[str, Any]) -> None:
    queued = backlog_run["queued"]
    records = [kr.record for _, kr in sorted(backlog_run["seen"], key=lambda x: (x[1].topic, x[1].partition,
                                                                                  x[1].offset))]
    everything = reconcile_streams([], records, acked=backlog_run["acked"])
    bad = {s: x for s, x in everything.streams.items() if not x.ok}
    assert not bad, bad  # every stream, backlog and live together: each sequence once, in order, no hole
    top: dict[str, int] = {}
    for stream_id, seq in queued:
        top[stream_id] = max(top.get(stream_id, -1), seq)
    live = [r for r in records if (r.stream_id, r.sequence) not in queued]  # the backlog was checked above
    rec = reconcile_streams(backlog_run["truth"], live, acked=backlog_run["acked"],
                            excused={s: [(0, last)] for s, last in top.items()})
    t = rec.totals()
    assert rec.ok and t["missing_samples"] == t["duplicate_samples"] == 0, [r for r in rec.ecg.values() if not r.ok]
    assert t["delivered_samples"] > 0.8 * t["produced_samples"] > 0
    assert t["excused_records"] == len(queued)
