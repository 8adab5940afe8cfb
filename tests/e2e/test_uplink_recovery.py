"""The uplink survives the ingest being killed and restarted: nothing lost, nothing doubled.

Real processes on loopback (tansu, ingest, simulator, gateway, Mosquitto). The ingest
is SIGKILLed mid-stream and comes back with the same ledger; the gateway keeps
buffering in its outbox, reconnects with backoff and resends what was not acked.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from cardiogate.app.kafka_reader import RecordReader
from cardiogate.app.stack import LocalStack, Patient
from cardiogate.proto.v1 import telemetry_pb2 as pb
from cardiogate.sim.truth import read_truth
from tests.conftest import port_open

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]


def test_ingest_killed_and_restarted_loses_and_doubles_nothing(tmp_path: Path) -> None:
    if not port_open("127.0.0.1", 1883):
        pytest.fail("Mosquitto must answer on 127.0.0.1:1883 for the e2e tests (.ci/run starts it)")
    address = "C0:00:00:00:00:3B"
    stack = LocalStack(tmp_path, [Patient("pt-5151", address, [(0.0, 75.0)], seed=7)], gateway_id="gw-e2e-2",
                       site="e2e-site")
    stack.start()
    try:
        time.sleep(8)
        stack._kill(stack.procs["cloud"], 9)  # SIGKILL: no graceful drain
        time.sleep(5)
        stack.restart("cloud")
        time.sleep(8)
        assert stack.check_alive() == [], f"a part died; logs in {tmp_path}"
        stack.procs["sim"].terminate()
        stack.procs["sim"].wait(10)
        truth = [t for t in read_truth(stack.truth_path) if t["kind"] == "ecg"]
        want = sum(len(t["samples"]) for t in truth)
        reader = RecordReader(stack.kafka_bootstrap, ["ecg.raw"])
        blocks: list[pb.Record] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            blocks.extend(kr.record for kr in reader.poll(1.0) if kr.record.device_id == address)
            if sum(b.samples.sample_count for b in blocks) >= want:
                blocks.extend(kr.record for kr in reader.poll(2.0) if kr.record.device_id == address)
                break
        reader.close()
    finally:
        stack.stop()
    seqs = [b.sequence for b in blocks]
    assert len(seqs) == len(set(seqs)), "duplicates reached Kafka after the ingest restart"
    assert sorted(seqs) == list(range(len(seqs))), "records missing after the ingest restart"
    blocks.sort(key=lambda b: b.sequence)
    got = np.concatenate([np.frombuffer(b.samples.samples, dtype="<i2") for b in blocks])
    sent = np.concatenate([np.asarray(t["samples"], dtype=np.int16) for t in truth])
    assert len(got) == len(sent) and np.array_equal(got, sent)
    gateway_log = (tmp_path / "gateway.log").read_text(encoding="utf-8")
    assert "uplink broken" in gateway_log, "the test did not actually break the uplink"
