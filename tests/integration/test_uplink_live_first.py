"""The uplink against an in-process ingest over loopback gRPC: live first behind a 30-minute backlog,
resume after breaks with nothing lost or doubled, gzip on the wire, exact eviction gaps end to end.

The ingest here is a stand-in for cloud/ingest.py (so the test can time each record's arrival
and look at the wire); the real ingest is covered by test_ingest_kafka and the e2e tests.
It keeps the cloud's contract in miniature: a per-stream next-expected ledger,
records below it acked as duplicates without being written again, acks after the write.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import pytest

from cardiogate.edge.outbox import ROW_OVERHEAD_BYTES, Lane, Outbox
from cardiogate.edge.settings import UplinkSettings
from cardiogate.edge.uplink import Uplink
from cardiogate.proto.v1 import ingest_pb2, ingest_pb2_grpc
from cardiogate.proto.v1 import telemetry_pb2 as pb

pytestmark = pytest.mark.timeout(120)

FS = 250.0
N = 125  # 0.5 s blocks
T0 = time.time_ns() - 3600 * 10**9


def ecg(device: str, block: int) -> pb.Record:
    start = T0 + block * 500_000_000
    samples = bytes((block + i) % 7 for i in range(2 * N))  # compressible, like a real waveform's bytes
    return pb.Record(stream_id=f"{device}/ecg", device_id=device, patient="pt-0001", kind=pb.STREAM_KIND_ECG,
                     samples=pb.SampleBlock(first_sample_device_time_ns=start, receive_time_ns=start,
                                            sample_rate_hz=FS, scale=1.0, unit="uV",
                                            encoding=pb.SAMPLE_ENCODING_INT16_LE, samples=samples,
                                            sample_count=N, device_sequence_first=5 * block,
                                            device_sequence_last=5 * block + 4))


def vitals(device: str, hr: float = 70.0) -> pb.Record:
    now = time.time_ns()
    return pb.Record(stream_id=f"{device}/vitals", device_id=device, patient="pt-0001", kind=pb.STREAM_KIND_VITALS,
                     vitals=pb.VitalsRecord(device_time_ns=now, receive_time_ns=now, heart_rate_bpm=hr))


def alarm(device: str, i: int) -> pb.Record:
    now = time.time_ns()
    return pb.Record(stream_id=f"{device}/alarms", device_id=device, patient="pt-0001", kind=pb.STREAM_KIND_ALARMS,
                     alarm=pb.Alarm(alarm_id=f"a{i}", condition="tachycardia", priority=pb.ALARM_PRIORITY_HIGH,
                                    state=pb.ALARM_STATE_RAISED, decision_time_ns=now))


@dataclass
class FakeIngest(ingest_pb2_grpc.IngestServicer):
    next_seq: dict[str, int] = field(default_factory=dict)
    written: list[tuple[float, pb.Record]] = field(default_factory=list)  # (arrival, record), like Kafka
    batches: int = 0
    break_at_batch: int | None = None  # end the stream after writing this batch, before acking it

    async def Upload(self, request_iterator: AsyncIterator[ingest_pb2.UploadRequest],
                     context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[ingest_pb2.UploadResponse]:
        first = await anext(aiter(request_iterator))
        assert first.WhichOneof("message") == "hello"
        async for request in request_iterator:
            now = time.monotonic()
            ranges: dict[str, tuple[int, int]] = {}
            for r in request.batch.records:
                if r.sequence >= self.next_seq.get(r.stream_id, 0):
                    self.written.append((now, r))
                    self.next_seq[r.stream_id] = r.sequence + 1
                lo, hi = ranges.get(r.stream_id, (r.sequence, r.sequence))
                ranges[r.stream_id] = (min(lo, r.sequence), max(hi, r.sequence))
            self.batches += 1
            if self.batches == self.break_at_batch:
                await context.abort(grpc.StatusCode.UNAVAILABLE, "test: ingest went away before acking")
            ack = ingest_pb2.BatchAck(batch_id=request.batch.batch_id)
            for s, (lo, hi) in ranges.items():
                ack.ranges.add(stream_id=s, first=lo, last=hi)
            yield ingest_pb2.UploadResponse(ack=ack)

    def by_stream(self) -> dict[str, list[pb.Record]]:
        out: dict[str, list[pb.Record]] = {}
        for _, r in self.written:
            out.setdefault(r.stream_id, []).append(r)
        return out


class Proxy:
    """A TCP relay between the uplink and the ingest: counts the bytes on the wire and can cut every link."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.bytes_up = 0
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}
        await asyncio.gather(self._pipe(reader, up_writer, count=True), self._pipe(up_reader, writer, count=False),
                             return_exceptions=True)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, count: bool) -> None:
        try:
            while data := await reader.read(65536):
                if count:
                    self.bytes_up += len(data)
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()

    def cut(self) -> None:
        for w in self._writers:
            w.transport.abort()
        self._writers.clear()

    async def stop(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()


async def start_ingest(fake: FakeIngest, port: int = 0) -> tuple[grpc.aio.Server, int]:
    server = grpc.aio.server()
    ingest_pb2_grpc.add_IngestServicer_to_server(fake, server)
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    return server, bound


def settings(port: int, **kw: Any) -> UplinkSettings:
    # Plain gRPC: these tests are about ordering and pacing; mTLS is tested in test_cloud_identity.
    base: dict[str, Any] = {"target": f"127.0.0.1:{port}", "backoff_initial_s": 0.05, "backoff_max_s": 0.3,
                            "batch_max_age_s": 0.1, "tls": False}
    base.update(kw)
    return UplinkSettings(**base)


async def wait_drained(box: Outbox, timeout_s: float) -> None:
    for _ in range(int(timeout_s / 0.05)):
        if not box.depth():
            return
        await asyncio.sleep(0.05)
    assert box.depth() == 0, f"{box.depth()} records never acked"


@contextlib.asynccontextmanager
async def running(uplink: Uplink) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(uplink.run())
    try:
        yield task
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def assert_each_stream_once_in_order(fake: FakeIngest, box: Outbox) -> None:
    for stream_id, records in fake.by_stream().items():
        seqs = [r.sequence for r in records]
        assert seqs == list(range(box.next_seq(stream_id))), f"{stream_id}: lost, doubled or reordered"


async def test_alarms_reach_the_cloud_within_a_second_behind_a_30_minute_backlog(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "outbox.sqlite3")
    backlog_devices = ["C0:00:00:00:00:01", "C0:00:00:00:00:02"]
    for device in backlog_devices:  # 30 minutes of 250 Hz ECG each, queued while the link was down
        for start in range(0, 3600, 400):
            box.append_many([ecg(device, b) for b in range(start, min(start + 400, 3600))])
    backlog_bytes = box.lane_bytes(Lane.RAW) - ROW_OVERHEAD_BYTES * box.lane_depth(Lane.RAW)  # on the wire
    fake = FakeIngest()
    server, port = await start_ingest(fake)
    rate = 400_000
    up = Uplink("gw-test", box, settings(port, backlog_after_s=0.2, backlog_max_bytes_per_s=rate,
                                         max_bytes_per_s=2 * rate, batch_max_bytes=32 * 1024))
    await asyncio.sleep(0.3)  # everything queued is now older than backlog_after_s
    sent_at: dict[tuple[str, int], float] = {}
    live = "C0:00:00:00:00:03"
    try:
        async with running(up):
            t_start = time.monotonic()
            for i in range(12):  # live traffic while the backlog drains
                for rec in (alarm(backlog_devices[0], i), vitals(live), ecg(live, i)):
                    box.append(rec)
                    sent_at[(rec.stream_id, rec.sequence)] = time.monotonic()
                up.notify()
                await asyncio.sleep(0.25)
            metrics = up.metrics()
            await wait_drained(box, 30)
            t_end = time.monotonic()
    finally:
        await server.stop(0)
        box.close()
    arrival = {(r.stream_id, r.sequence): t for t, r in fake.written}
    alarm_latency = [arrival[k] - t for k, t in sent_at.items() if k[0].endswith("/alarms")]
    live_latency = [arrival[k] - t for k, t in sent_at.items() if k[0].startswith(live)]
    print(f'alarm latency max {max(alarm_latency):.3f} s, live median {statistics.median(live_latency):.3f} s')
    assert len(alarm_latency) == 12 and max(alarm_latency) < 1.0, alarm_latency
    assert statistics.median(live_latency) < 1.0, live_latency
    # The backlog was paced: it cannot have drained faster than its rate (plus one bucket of burst).
    backlog_done = max(t for t, r in fake.written if r.device_id in backlog_devices and r.kind == pb.STREAM_KIND_ECG)
    assert backlog_done - t_start >= (backlog_bytes * 0.95 - rate) / rate
    assert t_end - t_start < backlog_bytes / rate * 3 + 5
    assert metrics.connected and metrics.records_sent > 0 and metrics.oldest_unsent_age_s["raw"] > 1.0
    assert_each_stream_once_in_order(fake, box)


async def test_breaks_and_restarts_lose_and_double_nothing_and_the_wire_is_gzip(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "outbox.sqlite3")
    devices = [f"C0:00:00:00:00:1{i}" for i in range(3)]
    for b in range(300):
        box.append_many([ecg(d, b) for d in devices] + ([vitals(d) for d in devices] if b % 10 == 0 else []))
    record_bytes = sum(box.lane_bytes(lane) for lane in Lane)
    fake = FakeIngest(break_at_batch=3)
    server, port = await start_ingest(fake)
    proxy = Proxy(port)
    await proxy.start()
    up = Uplink("gw-test", box, settings(proxy.port, batch_max_records=50, max_in_flight=2,
                                         backlog_max_bytes_per_s=150_000))
    try:
        async with running(up):
            await asyncio.sleep(1.0)
            proxy.cut()                      # the network drops every connection
            await asyncio.sleep(0.5)
            await server.stop(0)             # the ingest goes away and comes back on the same port
            await asyncio.sleep(0.5)
            for b in range(300, 320):        # the gateway keeps recording meanwhile
                box.append_many([ecg(d, b) for d in devices])
            server, _ = await start_ingest(fake, port)
            await wait_drained(box, 40)
    finally:
        await proxy.stop()
        await server.stop(0)
        box.close()
    assert up.sessions >= 3 and up.records_acked >= 3 * 320
    assert_each_stream_once_in_order(fake, box)
    assert {len(v) for k, v in fake.by_stream().items() if k.endswith("/ecg")} == {320}
    assert proxy.bytes_up < record_bytes / 3, (proxy.bytes_up, record_bytes)  # gzip on the call


async def test_evicted_ecg_arrives_as_exact_gaps_ahead_of_the_blocks_after_them(tmp_path: Path) -> None:
    device = "C0:00:00:00:00:21"
    block_bytes = ecg(device, 0).ByteSize() + 100
    box = Outbox(tmp_path / "outbox.sqlite3", max_bytes=60 * block_bytes, evict_headroom=0.2)
    for b in range(200):  # the link is down: the budget evicts the oldest blocks
        box.append(ecg(device, b))
        if b % 20 == 0:
            box.append(vitals(device))
    assert box.evicted_records > 0
    evicted = box.evicted_records
    fake = FakeIngest()
    server, port = await start_ingest(fake)
    try:
        async with running(Uplink("gw-test", box, settings(port))):
            await wait_drained(box, 30)
    finally:
        await server.stop(0)
        box.close()
    order = {(r.stream_id, r.sequence): i for i, (_, r) in enumerate(fake.written)}
    blocks = [r for _, r in fake.written if r.kind == pb.STREAM_KIND_ECG]
    gaps = [r for _, r in fake.written if r.kind == pb.STREAM_KIND_EVENTS]
    assert len(blocks) == 200 - evicted
    assert [r.sequence for r in blocks] == sorted(r.sequence for r in blocks)
    covered: list[int] = []
    for blk in blocks:
        covered += range(blk.samples.device_sequence_first, blk.samples.device_sequence_last + 1)
    for g in gaps:
        gap = g.event.gap
        assert gap.cause == pb.GAP_CAUSE_EVICTED
        covered += range(gap.device_sequence_first, gap.device_sequence_last + 1)
        after = [blk for blk in blocks if blk.samples.device_sequence_first == gap.device_sequence_last + 1]
        if after:  # the cloud learns of a hole before it sees the block after it
            assert order[(g.stream_id, g.sequence)] < order[(after[0].stream_id, after[0].sequence)]
    assert sorted(covered) == list(range(5 * 200))  # every device packet delivered or declared, exactly once
    assert sum(g.event.gap.missing_samples for g in gaps) == evicted * N
    for stream_id, records in fake.by_stream().items():
        if not stream_id.endswith("/ecg"):
            assert [r.sequence for r in records] == list(range(len(records)))
