"""A gateway that was offline for 10 minutes: its backlog lands in the windows of its device time, nothing dropped.

The real stack with its read side (watches on a bumble radio, gateway, locked Mosquitto, gRPC ingest,
tansu, store consumers, stream processor). As in tests/e2e/test_backlog.py, the outage is not waited
out in real time: 10 minutes of three patients' data, ending two minutes before the run, is written
through the gateway's own ``Outbox`` before it starts (the simulator's own patient models, ECG in the
gateway's blocks, heart rate and SpO2 each second), and the ingest is down while the gateway starts
and its watches connect. Then the ingest comes back; the gateway sends its live data and drains the
backlog, and the processor sees records minutes older than the partition's newest.

What must hold, read from the processor's history table (what the API's vitalsHistory serves):
- every whole minute and every whole five minutes of the outage has a window per patient, keyed by
  device time, holding exactly the records of that span (``record_count``), all of its ECG samples
  (completeness exactly 1) and the heart rate the watch reported (mean within 0.5 bpm; it is exact);
- the late records were revisions of their closed windows, counted, and none went to the late topic
  or was rejected;
- the cloud acknowledged every queued record.
"""

from __future__ import annotations

import sqlite3
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from cardiogate.app.stack import Patient
from cardiogate.proto.v1 import telemetry_pb2 as pb
from tests.conftest import port_open
from tests.e2e.test_backlog import synthesize_backlog
from tests.harness.chaos_stack import ChaosStack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]

S = 1_000_000_000
OUTAGE_S = 10 * 60
ENDED_AGO_S = 120  # the backlog's last record: two minutes before the run starts
INGEST_BACK_S = 10.0  # after the stack is up: the outage ends


def _patients() -> list[Patient]:
    return [Patient(f"pt-{i + 1:04d}", f"C0:00:00:00:BC:{i + 1:02X}", [(0.0, 62.0 + 7 * i)], seed=900 + i)
            for i in range(3)]


def _event_ns(r: pb.Record) -> int:
    return r.samples.first_sample_corrected_time_ns or r.samples.first_sample_device_time_ns or r.vitals.device_time_ns


def expected_windows(queued: dict[tuple[str, int], pb.Record], width_s: int) -> dict[tuple[str, int], dict[str, Any]]:
    """Per (patient, window start ns), for the windows the backlog covers whole: records, samples, mean HR."""
    width = width_s * S
    times = [_event_ns(r) for r in queued.values()]
    first_whole = -(-min(times) // width) * width
    last_end = (max(times) // width) * width
    out: dict[tuple[str, int], dict[str, Any]] = defaultdict(lambda: {"records": 0, "samples": 0, "hr": []})
    for r in queued.values():
        t = _event_ns(r)
        start = t - t % width
        if not first_whole <= start < last_end:
            continue
        w = out[(r.patient, start)]
        w["records"] += 1
        if r.kind == pb.STREAM_KIND_ECG:
            w["samples"] += r.samples.sample_count
        elif r.vitals.HasField("heart_rate_bpm"):
            w["hr"].append(r.vitals.heart_rate_bpm)
    return dict(out)


def stored_windows(db: Path, width_s: int) -> dict[tuple[str, int], dict[str, Any]]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        rows = con.execute("SELECT patient, start_device_time_ns, record_count, completeness, hr_mean, revision "
                           "FROM feature_windows WHERE width_s = ?", (width_s,)).fetchall()
    except sqlite3.OperationalError:  # not migrated yet
        return {}
    finally:
        con.close()
    return {(p, start): {"records": n, "completeness": c, "hr_mean": hr, "revision": rev}
            for p, start, n, c, hr, rev in rows}


def _landed(db: Path, expected: dict[int, dict[tuple[str, int], dict[str, Any]]]) -> bool:
    for width_s, windows in expected.items():
        stored = stored_windows(db, width_s)
        if any(stored.get(key, {}).get("records") != w["records"] for key, w in windows.items()):
            return False
    return True


def _late_counts(metrics_text: str) -> dict[tuple[str, str], float]:
    out: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(metrics_text):
        if family.name == "processor_late_records":
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    out[(sample.labels["width_s"], sample.labels["route"])] = sample.value
    return out


@pytest.fixture(scope="module")
def outage(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if not port_open("127.0.0.1", 1883):
        pytest.fail("Mosquitto must answer on 127.0.0.1:1883 for the e2e tests (.ci/run starts it)")
    work = tmp_path_factory.mktemp("outage-windows")
    patients = _patients()
    stack = ChaosStack(work, patients, gateway_id="gw-e2e-outage", site="outage-site", read_side=True,
                       gateway_extra={"analysis": {"enabled": False}, "uplink": {"backoff_max_s": 1.0}})
    stack.workdir.mkdir(parents=True, exist_ok=True)
    queued = synthesize_backlog(stack.outbox_path, patients, time.time_ns() - ENDED_AGO_S * S, seconds=OUTAGE_S)
    expected = {60: expected_windows(queued, 60), 300: expected_windows(queued, 300)}
    stack.start()
    try:
        stack.stop_ingest()
        time.sleep(INGEST_BACK_S)
        stack.start_ingest()
        deadline = time.monotonic() + 240
        while not _landed(stack.cloud_db_path, expected) and time.monotonic() < deadline:
            assert stack.check_alive() == [], f"a part died; logs in {work}"
            time.sleep(2.0)
        metrics = httpx.get(stack.metrics_urls["processor"], timeout=10).text
        stored = {w: stored_windows(stack.cloud_db_path, w) for w in expected}
        acked = stack.acked()
    finally:
        stack.stop()
    return {"queued": queued, "expected": expected, "stored": stored, "late": _late_counts(metrics),
            "acked": acked, "workdir": work}


def test_the_outage_covers_whole_windows_of_every_patient(outage: dict[str, Any]) -> None:
    expected = outage["expected"]
    assert len(expected[60]) == 3 * 9, sorted(expected[60])  # 10 minutes not on a boundary: 9 whole minutes
    assert len(expected[300]) >= 3  # at least one whole five minutes each


@pytest.mark.parametrize("width_s", [60, 300])
def test_each_window_holds_exactly_its_backlog(outage: dict[str, Any], width_s: int) -> None:
    stored = outage["stored"][width_s]
    for key, want in sorted(outage["expected"][width_s].items()):
        got = stored.get(key)
        assert got is not None, f"no {width_s}-s window for {key}; logs in {outage['workdir']}"
        assert got["records"] == want["records"], (key, got, want)
        assert got["completeness"] == 1.0, (key, got)  # every sample of the span arrived
        hr = sum(want["hr"]) / len(want["hr"])
        assert got["hr_mean"] == pytest.approx(hr, abs=0.5), (key, got["hr_mean"], hr)


def test_late_records_were_revisions_counted_and_none_was_dropped(outage: dict[str, Any]) -> None:
    late = outage["late"]
    revised = sum(v for (_, route), v in late.items() if route == "revised")
    assert revised > 0, f"the backlog never reached a closed window: {late}"
    assert all(v == 0 for (_, route), v in late.items() if route != "revised"), late


def test_the_cloud_acknowledged_every_queued_record(outage: dict[str, Any]) -> None:
    last: dict[str, int] = defaultdict(lambda: -1)
    for stream_id, sequence in outage["queued"]:
        last[stream_id] = max(last[stream_id], sequence)
    for stream_id, sequence in last.items():
        assert outage["acked"].get(stream_id, 0) > sequence, (stream_id, outage["acked"].get(stream_id))
