"""Disk budget: with the cloud unreachable, raw ECG is evicted first, exactly reported; alarms and vitals all arrive.

Two simulated watches stream through the real stack while the ingest is down for a
minute and the gateway's outbox has the smallest budget it accepts (64 KiB). Raw ECG is
the only lane the budget may evict: the oldest ECG goes first, each eviction commits with
an EVICTED gap record whose packet range, device-time bounds and sample count are exact,
and a technical alarm (``outbox_near_full``) is raised on MQTT while the link is still
down. When the ingest returns, every heart rate, SpO2 and cuff reading the watches sent
and every alarm the gateway raised reach Kafka exactly once (by sequence and by content,
against the simulator's ground truth and the MQTT alarm feed). ECG analysis is off: the
heart-rate alarm comes from the watch's own heart rate.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from cardiogate.app.reconcile import Reconciliation, reconcile_streams
from cardiogate.app.stack import Patient
from cardiogate.app.verify import read_records, render
from cardiogate.proto.v1 import telemetry_pb2 as pb
from cardiogate.sim.truth import read_truth
from tests.conftest import port_open
from tests.harness.chaos_stack import ChaosStack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]

BUDGET = 64 * 1024
OUTAGE_S = 50.0  # the outbox fills in about 30 s; vitals and alarms then still fit with room to spare
AFTER_S = 10.0
TACHY = "pt-db01"
TOPICS = ["ecg.raw", "vitals", "alarms", "device.events"]


@pytest.fixture(scope="module")
def budget_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if not port_open("127.0.0.1", 1883):
        pytest.fail("Mosquitto must answer on 127.0.0.1:1883 for the e2e tests (.ci/run starts it)")
    work = tmp_path_factory.mktemp("disk-budget")
    patients = [Patient(TACHY, "C0:00:00:00:DB:01", [(0.0, 72.0), (15.0, 72.0), (20.0, 140.0)], seed=61,
                        watch_extra={"bp_interval_s": 20.0}),
                Patient("pt-db02", "C0:00:00:00:DB:02", [(0.0, 66.0)], seed=62, watch_extra={"bp_interval_s": 20.0})]
    stack = ChaosStack(work, patients, gateway_id="gw-e2e-budget", site="budget-site",
                       gateway_extra={"outbox": {"max_bytes": BUDGET}, "analysis": {"enabled": False},
                                      "ble": {"device_lost_after_s": 600.0}})
    return asyncio.run(_drive(stack))


async def _drive(stack: ChaosStack) -> dict[str, Any]:
    alarms: list[tuple[float, dict[str, Any]]] = []

    async def listen(ready: asyncio.Event) -> None:
        async with stack.mqtt_client(identifier=f"e2e-budget-{time.time_ns()}") as client:
            await client.subscribe(f"cardiogate/{stack.site}/+/alarms", qos=1)
            ready.set()
            async for msg in client.messages:
                assert isinstance(msg.payload, bytes)
                alarms.append((time.monotonic(), json.loads(msg.payload)))

    await asyncio.to_thread(stack.start_mqtt)  # the stack's own locked broker; the test listens as the monitor
    ready = asyncio.Event()
    listener = asyncio.create_task(listen(ready))
    try:
        await asyncio.wait_for(ready.wait(), 10)
        await asyncio.to_thread(stack.start)
        await asyncio.to_thread(stack.stop_ingest)  # before the gateway has even connected: it never had the cloud
        await asyncio.sleep(OUTAGE_S)
        link_back = time.monotonic()
        evicted_during_outage = stack.outbox_rows("SELECT COUNT(*) FROM evicted")[0][0]
        await asyncio.to_thread(stack.start_ingest)
        await asyncio.sleep(AFTER_S)
        assert stack.check_alive() == [], f"a part died; logs in {stack.workdir}"
        stack.procs["sim"].terminate()
        await asyncio.to_thread(stack.procs["sim"].wait, 30)
        await asyncio.to_thread(_drain, stack, 120.0)
        stack.kill("gateway")  # nothing new may be acked or published after this
        await asyncio.sleep(2.0)
        evicted = stack.outbox_rows("SELECT stream_id, first_seq, last_seq, records, samples FROM evicted")
        acked = stack.acked()
        records = await asyncio.to_thread(read_records, stack.kafka_bootstrap, TOPICS, 120.0, 4.0)
    finally:
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)
        await asyncio.to_thread(stack.stop)
    return {"truth": read_truth(stack.truth_path), "records": records, "acked": acked, "evicted": evicted,
            "evicted_during_outage": evicted_during_outage, "alarms": alarms, "link_back": link_back,
            "workdir": stack.workdir}


def _drain(stack: ChaosStack, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    quiet = 0
    while quiet < 3:
        assert time.monotonic() < deadline, f"the outbox did not drain; logs in {stack.workdir}"
        time.sleep(1.0)
        quiet = quiet + 1 if stack.outbox_depth() == 0 else 0


@pytest.fixture(scope="module")
def reconciled(budget_run: dict[str, Any]) -> Reconciliation:
    rec = reconcile_streams(budget_run["truth"], budget_run["records"], acked=budget_run["acked"])
    print("\n" + render(rec))
    return rec


def _ordered(records: list[pb.Record], kind: pb.StreamKind.ValueType) -> dict[str, list[pb.Record]]:
    out: dict[str, dict[int, pb.Record]] = defaultdict(dict)
    for r in records:
        if r.kind == kind:
            out[r.device_id].setdefault(r.sequence, r)
    return {d: [rs[s] for s in sorted(rs)] for d, rs in out.items()}


def test_raw_ecg_was_evicted_during_the_outage_with_exact_gaps(budget_run: dict[str, Any],
                                                               reconciled: Reconciliation) -> None:
    assert budget_run["evicted_during_outage"] > 0, "the budget never forced an eviction"
    t = reconciled.totals()
    assert t["missing_samples"] == t["duplicate_samples"] == t["wrong_samples"] == t["gap_mismatches"] == 0
    assert all(r.ok for r in reconciled.ecg.values()), [r for r in reconciled.ecg.values() if not r.ok]
    # The gateway's local ledger of evictions and the gap records in Kafka tell the same story, exactly.
    ledger = budget_run["evicted"]
    assert t["evicted_samples"] == sum(row[4] for row in ledger) > 0
    assert t["excused_records"] == sum(row[3] for row in ledger)
    gaps = [r.event.gap for r in budget_run["records"] if r.kind == pb.STREAM_KIND_EVENTS
            and r.event.HasField("gap") and r.event.gap.cause == pb.GAP_CAUSE_EVICTED]
    assert len(gaps) == len(ledger)
    # Oldest first: per watch, the evicted packets are one run from the first packet the gateway stored.
    first_sent: dict[str, int] = {}
    for row in budget_run["truth"]:
        if row["kind"] == "ecg":
            first_sent.setdefault(row["watch"], row["seq"])
    by_device: dict[str, list[pb.Gap]] = defaultdict(list)
    for r in budget_run["records"]:
        if r.kind == pb.STREAM_KIND_EVENTS and r.event.HasField("gap") and r.event.gap.cause == pb.GAP_CAUSE_EVICTED:
            by_device[r.device_id].append(r.event.gap)
    for device, device_gaps in by_device.items():
        device_gaps.sort(key=lambda g: g.device_sequence_first)
        assert device_gaps[0].device_sequence_first == first_sent[device]
        for a, b in pairwise(device_gaps):
            assert b.device_sequence_first == a.device_sequence_last + 1, "a newer packet was evicted before an older"


def test_a_technical_alarm_was_raised_while_the_link_was_down(budget_run: dict[str, Any]) -> None:
    raised = [(t, a) for t, a in budget_run["alarms"]
              if a["condition"] == "outbox_near_full" and a["state"] == "raised"]
    assert raised, "no outbox_near_full alarm on MQTT"
    assert raised[0][0] < budget_run["link_back"], "the technical alarm came only after the link returned"
    assert raised[0][1]["category"] == "technical"


def test_every_alarm_is_in_kafka_exactly_once(budget_run: dict[str, Any], reconciled: Reconciliation) -> None:
    alarm_streams = [s for s in reconciled.streams.values() if s.kind == "alarms"]
    assert alarm_streams and all(s.ok for s in alarm_streams), alarm_streams
    published = sorted((a["alarm_id"], a["state"], a["condition"]) for _, a in budget_run["alarms"])
    state = {v: k.removeprefix("ALARM_STATE_").lower() for k, v in pb.AlarmState.items()}
    in_kafka = sorted((r.alarm.alarm_id, state[r.alarm.state], r.alarm.condition)
                      for rs in _ordered(budget_run["records"], pb.STREAM_KIND_ALARMS).values() for r in rs)
    assert in_kafka == published
    conditions = {c for _, _, c in in_kafka}
    assert {"hr_high", "outbox_near_full"} <= conditions


def test_every_vital_sign_is_in_kafka_exactly_once_with_its_value(budget_run: dict[str, Any],
                                                                   reconciled: Reconciliation) -> None:
    vitals_streams = [s for s in reconciled.streams.values() if s.kind == "vitals"]
    assert len(vitals_streams) == 2 and all(s.ok for s in vitals_streams), vitals_streams
    truth = budget_run["truth"]
    vitals = _ordered(budget_run["records"], pb.STREAM_KIND_VITALS)
    for device, recs in vitals.items():
        mine = [t for t in truth if t.get("watch") == device]
        hr = [(round(r.vitals.heart_rate_bpm), [round(x, 6) for x in r.vitals.rr_intervals_ms])
              for r in recs if r.vitals.source == "hrm"]
        assert hr == [(t["hr"], [round(x * 1000 / 1024, 6) for x in t["rr_1024"]]) for t in mine if t["kind"] == "hr"]
        spo2 = [(round(r.vitals.spo2_percent, 1), round(r.vitals.pulse_rate_bpm)) for r in recs
                if r.vitals.source == "plx"]
        assert spo2 == [(round(t["spo2"], 1), round(t["pr"])) for t in mine if t["kind"] == "spo2"]
        bp = [(r.vitals.systolic_mmhg, r.vitals.diastolic_mmhg) for r in recs if r.vitals.source == "bpm"]
        measured = [t for t in mine if t["kind"] == "bp"]
        # A cuff indicates a reading once it is measured; one taken in the last moment before the simulator
        # stopped may still sit in the cuff's store. Every earlier one must have arrived.
        end_us = max(t.get("t_us", 0) for t in mine)
        if len(bp) == len(measured) - 1 and end_us - measured[-1]["t_us"] < 3_000_000:
            measured = measured[:-1]
        assert bp == [(t["systolic"], t["diastolic"]) for t in measured]
        assert len(hr) >= OUTAGE_S * 0.7 and len(bp) >= 2, "too little was sent during the outage to judge"


def test_every_acked_record_is_in_kafka(budget_run: dict[str, Any], reconciled: Reconciliation) -> None:
    assert budget_run["acked"]
    assert reconciled.totals()["acked_missing_records"] == 0
    assert reconciled.ok, "\n" + render(reconciled)


def test_no_part_logged_a_traceback(budget_run: dict[str, Any]) -> None:
    work: Path = budget_run["workdir"]
    for name in ("gateway", "cloud"):
        text = (work / f"{name}.log").read_text(encoding="utf-8", errors="replace")
        assert "Traceback" not in text, f"{name}.log:\n{text[-3000:]}"
