"""Chaos: nothing lost, nothing doubled while the gateway, the ingest and Kafka fail under a live fleet.

10 simulated ECG watches stream for 5 minutes through the whole system (virtual radio,
gateway, mTLS gRPC, ingest, Kafka) while, on a seeded random schedule:

- the gateway is SIGKILLed 20 times (no flush, no goodbye) and restarted each time;
- the ingest is stopped for 2 minutes (the gateway buffers in its outbox);
- Kafka is unreachable for 1 minute (a TCP relay in front of tansu cuts every
  connection and refuses new ones; tansu keeps its in-memory data).

Then everything drains and ``cardiogate.app.reconcile`` compares the simulator's ground
truth with Kafka: every ECG sample is delivered exactly once with its value, or lies
inside an exact gap record (a gateway restart or link loss); every stream's records are
in Kafka once each, in order, without holes; every record the cloud acked is in Kafka.
The gateway runs without ECG analysis so the 2-core budget goes to the data path the
test is about. CARDIOGATE_CHAOS_SECONDS / _WATCHES / _KILLS shrink it for a quick run
(the outages scale with the run).
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from cardiogate.app.reconcile import Reconciliation, reconcile_streams
from cardiogate.app.stack import Patient
from cardiogate.app.verify import read_records, read_truth, render
from cardiogate.proto.v1 import telemetry_pb2 as pb
from tests.conftest import port_open
from tests.harness.chaos_stack import ChaosStack

WATCHES = int(os.environ.get("CARDIOGATE_CHAOS_WATCHES", "10"))
RUN_S = float(os.environ.get("CARDIOGATE_CHAOS_SECONDS", "300"))
KILLS = int(os.environ.get("CARDIOGATE_CHAOS_KILLS", "20"))
SEED = 20250607
INGEST_DOWN = (0.15 * RUN_S, 0.15 * RUN_S + 0.4 * RUN_S)  # 45..165 s of 300: 2 minutes
KAFKA_DOWN = (0.65 * RUN_S, 0.65 * RUN_S + 0.2 * RUN_S)   # 195..255 s of 300: 1 minute
TOPICS = ["ecg.raw", "vitals", "alarms", "device.events"]

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(900)]


@dataclass
class ChaosLog:
    """What was injected, when (seconds since streaming began), for the report and the assertions."""

    t0: float = field(default_factory=time.monotonic)
    events: list[tuple[float, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, what: str) -> None:
        with self.lock:
            self.events.append((round(time.monotonic() - self.t0, 1), what))

    def count(self, what: str) -> int:
        return sum(1 for _, w in self.events if w == what)

    def at(self, what: str) -> list[float]:
        return [t for t, w in self.events if w == what]


def kill_schedule(rng: random.Random, kills: int, start_s: float, end_s: float) -> list[tuple[float, float]]:
    """(kill at, down for): one kill at a random moment in each of ``kills`` equal slots, so there are
    exactly that many, spread over the run, each leaving the restarted gateway a moment to work."""
    slot = (end_s - start_s) / kills
    return [(start_s + i * slot + rng.uniform(0.0, 0.6 * slot), rng.uniform(0.2, 3.0)) for i in range(kills)]


def _sleep_until(log: ChaosLog, t: float, stop: threading.Event) -> bool:
    return not stop.wait(max(0.0, t - (time.monotonic() - log.t0)))


def _gateway_killer(stack: ChaosStack, log: ChaosLog, schedule: list[tuple[float, float]],
                    stop: threading.Event) -> None:
    for at, down in schedule:
        if not _sleep_until(log, at, stop):
            return
        stack.kill("gateway")
        log.add("gateway killed")
        if not _sleep_until(log, at + down, stop):
            return
        stack.respawn("gateway")
        log.add("gateway restarted")


def _outages(stack: ChaosStack, log: ChaosLog, stop: threading.Event) -> None:
    for (down, up), (cut, restore), name in (((stack.stop_ingest, stack.start_ingest), INGEST_DOWN, "ingest"),
                                             ((stack.pause_kafka, stack.resume_kafka), KAFKA_DOWN, "kafka")):
        if not _sleep_until(log, cut, stop):
            return
        down()
        log.add(f"{name} down")
        if not _sleep_until(log, restore, stop):
            return
        up()
        log.add(f"{name} up")


def _streaming(truth_paths: list[Path], watches: set[str]) -> bool:
    """Whether every watch's latest ECG packet went on the air (it is connected to the gateway again)."""
    latest: dict[str, str] = {}
    for path in truth_paths:
        with path.open("rb") as fh:
            fh.seek(max(0, path.stat().st_size - 512 * 1024))
            lines = fh.read().decode("utf-8", errors="replace").splitlines()[1:]
        for line in lines:
            try:
                t = json.loads(line)
            except json.JSONDecodeError:
                continue
            if t.get("kind") in ("ecg", "ecg_unsent"):
                latest[t["watch"]] = t["kind"]
    return all(latest.get(w) == "ecg" for w in watches)


@pytest.fixture(scope="module")
def chaos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if not port_open("127.0.0.1", 1883):
        pytest.fail("Mosquitto must answer on 127.0.0.1:1883 (.ci/run starts it)")
    work = tmp_path_factory.mktemp("chaos")
    patients = [Patient(f"pt-{i + 1:04d}", f"C0:00:00:00:0C:{i + 1:02X}", [(0.0, 60.0 + 3 * i)], seed=500 + i,
                        watch_extra={"profile": "ecg_watch", "spo2_interval_s": 1.0})
                for i in range(WATCHES)]
    stack = ChaosStack(work, patients, gateway_id=f"gw-chaos-{os.getpid()}", site="chaos-site", kafka_proxy=True,
                       gateway_extra={"analysis": {"enabled": False},
                                      "ble": {"backoff_max_s": 2.0, "backoff_initial_s": 0.2}})
    started = time.monotonic()
    stack.start()
    log = ChaosLog()
    stop = threading.Event()
    schedule = kill_schedule(random.Random(SEED), KILLS, 0.05 * RUN_S, RUN_S - 0.07 * RUN_S)
    threads = [threading.Thread(target=_gateway_killer, args=(stack, log, schedule, stop), daemon=True),
               threading.Thread(target=_outages, args=(stack, log, stop), daemon=True)]
    try:
        for th in threads:
            th.start()
        while time.monotonic() - log.t0 < RUN_S:
            time.sleep(2.0)
            dead = [n for n in stack.check_alive() if n not in ("gateway", "cloud")]
            assert not dead, f"{dead} died; logs in {work}"
        stop.set()
        for th in threads:
            th.join(timeout=60)
        if stack.procs["cloud"].poll() is not None:
            stack.start_ingest()
        if stack.procs["gateway"].poll() is not None:
            stack.respawn("gateway")
        if stack.proxy is not None and stack.proxy.paused:
            stack.resume_kafka()
        # The end must be clean to be judged: every watch streaming to the last gateway again.
        watches = {p.address for p in patients}
        deadline = time.monotonic() + 60
        while not _streaming(stack.truth_paths, watches) and time.monotonic() < deadline:
            time.sleep(1.0)
        log.add("settled" if _streaming(stack.truth_paths, watches) else "not all watches reconnected")
        time.sleep(3.0)
        stack.procs["sim"].terminate()
        stack.procs["sim"].wait(30)
        log.add("simulator stopped")
        drain_started = time.monotonic()
        quiet = 0
        while quiet < 3 and time.monotonic() - drain_started < 240:
            time.sleep(1.0)
            quiet = quiet + 1 if stack.outbox_depth() == 0 else 0
        drained_s = time.monotonic() - drain_started
        log.add(f"outbox drained in {drained_s:.0f} s" if quiet >= 3 else "outbox did not drain")
        assert set(stack.check_alive()) == {"sim"}, f"a part died; logs in {work}"
        stack.kill("gateway")  # nothing new may be acked after the ledger is read
        acked = stack.acked()
        rejected = stack.outbox_rows("SELECT stream_id, seq FROM rejected")
        records = read_records(stack.kafka_bootstrap, TOPICS, timeout_s=180.0, idle_s=5.0)
    finally:
        stop.set()
        stack.stop()
    truth = read_truth(stack.truth_paths)
    logs = {n: (work / f"{n}.log").read_text(encoding="utf-8", errors="replace") for n in ("gateway", "cloud")}
    return {"truth": truth, "records": records, "acked": acked, "rejected": rejected, "log": log, "logs": logs,
            "workdir": work, "wall_s": time.monotonic() - started, "proxy_refused": stack.proxy.refused
            if stack.proxy else 0}


@pytest.fixture(scope="module")
def reconciled(chaos: dict[str, Any]) -> Reconciliation:
    rec = reconcile_streams(chaos["truth"], chaos["records"], acked=chaos["acked"])
    t = rec.totals()
    causes = Counter(pb.GapCause.Name(r.event.gap.cause) for r in chaos["records"]
                     if r.kind == pb.STREAM_KIND_EVENTS and r.event.HasField("gap"))
    report = {"watches": WATCHES, "seconds": RUN_S, "wall_s": round(chaos["wall_s"], 1), "totals": t,
              "gap_causes": dict(causes), "chaos": [f"{t:6.1f} s {what}" for t, what in chaos["log"].events]}
    print("\n" + render(rec))
    print(json.dumps(report, indent=2))
    (chaos["workdir"] / "chaos-report.json").write_text(json.dumps(report, indent=2))
    if out := os.environ.get("CARDIOGATE_CHAOS_REPORT"):
        Path(out).write_text(json.dumps(report, indent=2))
    return rec


def test_all_faults_were_injected(chaos: dict[str, Any]) -> None:
    log: ChaosLog = chaos["log"]
    assert log.count("gateway killed") == KILLS and log.count("gateway restarted") == KILLS
    (down,), (up,) = log.at("ingest down"), log.at("ingest up")
    assert up - down >= INGEST_DOWN[1] - INGEST_DOWN[0] - 1
    (cut,), (back,) = log.at("kafka down"), log.at("kafka up")
    assert back - cut >= KAFKA_DOWN[1] - KAFKA_DOWN[0] - 1
    assert chaos["proxy_refused"] > 0, "no Kafka client noticed the outage"
    assert "uplink broken" in chaos["logs"]["gateway"], "the gateway never lost its uplink"
    assert "settled" in [w for _, w in log.events], "the watches did not all reconnect at the end"


def test_no_ecg_sample_missing_or_doubled(chaos: dict[str, Any], reconciled: Reconciliation) -> None:
    t = reconciled.totals()
    assert len(reconciled.ecg) == WATCHES
    bad = [f"{d}: {r}" for d, r in reconciled.ecg.items() if not r.ok]
    assert t["missing_samples"] == 0 and t["duplicate_samples"] == 0, "\n".join(bad[:3])
    assert t["wrong_samples"] == 0 and t["gap_mismatches"] == 0, "\n".join(bad[:3])
    assert not bad, "\n".join(bad[:3])
    assert t["produced_samples"] == t["delivered_samples"] + t["gap_samples"] + t["unknown_to_gateway_samples"]
    assert t["delivered_samples"] > 0.5 * t["produced_samples"], "too little was delivered to judge"
    restarts = [r for r in chaos["records"] if r.kind == pb.STREAM_KIND_EVENTS and r.event.HasField("gap")
                and r.event.gap.cause == pb.GAP_CAUSE_GATEWAY_RESTART]
    assert restarts, "no gap was attributed to a gateway restart"


def test_every_stream_once_in_order_and_every_acked_record_in_kafka(chaos: dict[str, Any],
                                                                    reconciled: Reconciliation) -> None:
    assert chaos["acked"], "the cloud acked nothing"
    assert not chaos["rejected"], f"the cloud rejected records: {chaos['rejected'][:5]}"
    bad = {s: x for s, x in reconciled.streams.items() if not x.ok}
    assert not bad, "\n".join(f"{s}: {x}" for s, x in list(bad.items())[:5])
    t = reconciled.totals()
    assert t["duplicate_records"] == t["reordered_records"] == t["missing_records"] == 0
    assert t["acked_missing_records"] == 0
    kinds = {x.kind for x in reconciled.streams.values()}
    assert {"ecg", "vitals", "events"} <= kinds
