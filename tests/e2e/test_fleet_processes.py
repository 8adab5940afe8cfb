"""A fleet dealt over two simulator processes, each its own radio, on one gateway with two adapters.

Real parts as in the other e2e tests. Each simulator process exposes its own
gateway-facing controller; the gateway attaches one adapter per process (as it would
with two USB dongles), each with two connection slots. All four watches must stream,
each through the adapter of its own radio, and Kafka must hold exactly what each
process's ground truth says was sent.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np
import pytest

from cardiogate.app.kafka_reader import RecordReader
from cardiogate.app.stack import LocalStack, Patient
from cardiogate.proto.v1 import telemetry_pb2 as pb
from cardiogate.sim.truth import read_truth
from tests.conftest import port_open

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]
RUN_S = 20.0


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if not port_open("127.0.0.1", 1883):
        pytest.fail("Mosquitto must answer on 127.0.0.1:1883 for the e2e tests (.ci/run starts it)")
    patients = [Patient(f"pt-fleet-{i}", f"C0:00:00:00:02:{i:02X}", [(0.0, 60.0 + 5 * i)], seed=30 + i)
                for i in range(4)]
    stack = LocalStack(tmp_path_factory.mktemp("fleet"), patients, gateway_id="gw-fleet", site="fleet-site",
                       sim_processes=2, max_connections=2)
    return asyncio.run(_drive(stack))


async def _drive(stack: LocalStack) -> dict[str, Any]:
    try:
        await asyncio.to_thread(stack.start)
        await asyncio.sleep(RUN_S)
        assert stack.check_alive() == [], f"a part died; logs in {stack.workdir}"
        sim = stack.procs["sim"]
        sim.terminate()
        await asyncio.to_thread(sim.wait, 15)
        await asyncio.sleep(2.0)
        truths = [read_truth(p) for p in stack.truth_paths]
        want = sum(len(t["samples"]) for truth in truths for t in truth if t["kind"] == "ecg")
        records = await asyncio.to_thread(_read, stack.kafka_bootstrap, want)
    finally:
        await asyncio.to_thread(stack.stop)
    log = (stack.workdir / "gateway.log").read_text(encoding="utf-8", errors="replace")
    return {"truths": truths, "records": records, "gateway_log": log}


def _read(bootstrap: str, want: int) -> list[pb.Record]:
    reader = RecordReader(bootstrap, ["ecg.raw"])
    out: list[pb.Record] = []
    deadline = time.monotonic() + 45
    try:
        while time.monotonic() < deadline:
            out.extend(kr.record for kr in reader.poll(1.0))
            if sum(r.samples.sample_count for r in out) >= want:
                out.extend(kr.record for kr in reader.poll(2.0))
                break
    finally:
        reader.close()
    return out


def test_each_process_ran_its_share_of_the_fleet(run: dict[str, Any]) -> None:
    per_process = [{t["watch"] for t in truth if t["kind"] == "ecg"} for truth in run["truths"]]
    assert [len(w) for w in per_process] == [2, 2]
    assert not per_process[0] & per_process[1]


def test_every_watch_streams_through_the_adapter_of_its_own_radio(run: dict[str, Any]) -> None:
    for i, truth in enumerate(run["truths"]):
        for watch in {t["watch"] for t in truth if t["kind"] == "ecg"}:
            assert f"device streaming\" device={watch} adapter=virtual{i}" in run["gateway_log"].replace(
                'event="device streaming" device=', 'device streaming" device='), watch


def test_kafka_holds_exactly_what_each_watch_sent(run: dict[str, Any]) -> None:
    for truth in run["truths"]:
        for watch in {t["watch"] for t in truth if t["kind"] == "ecg"}:
            sent = [s for t in truth if t["kind"] == "ecg" and t["watch"] == watch for s in t["samples"]]
            blocks = sorted((r for r in run["records"] if r.device_id == watch), key=lambda r: r.sequence)
            got = np.concatenate([np.frombuffer(r.samples.samples, "<i2") for r in blocks])
            assert len(sent) > 2000 and got.tolist() == sent
