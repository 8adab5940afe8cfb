"""The uplink against an outbox written by its writer thread, on a slow disk, as the gateway runs it.

A real gRPC stream to an in-process ingest (tests/integration/test_uplink_live_first.py),
the outbox's writer thread with every commit delayed by 100 ms, records handed over
without waiting while the uplink sends, acks and pins through the same thread, the
network cut once, and a disk budget small enough to evict raw ECG meanwhile. Each
stream must reach the ingest once and in order; an ECG record is either delivered or
covered by an eviction gap, never both (a record pinned as sent is never evicted).
"""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from cardiogate.edge.loop_lag import LoopLagMonitor
from cardiogate.edge.outbox import Outbox
from cardiogate.edge.outbox_writer import COMMIT_DELAY_ENV
from cardiogate.edge.uplink import Uplink
from cardiogate.proto.v1 import telemetry_pb2 as pb
from tests.integration.test_uplink_live_first import (
    FakeIngest,
    Proxy,
    alarm,
    ecg,
    running,
    settings,
    start_ingest,
    vitals,
)

pytestmark = pytest.mark.timeout(120)
DEVICES = [f"C0:00:00:00:00:3{i}" for i in range(3)]


async def test_a_slow_disk_behind_the_writer_loses_doubles_and_stalls_nothing(tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(COMMIT_DELAY_ENV, "0.1")
    block_bytes = ecg(DEVICES[0], 0).ByteSize() + 100
    box = Outbox(tmp_path / "outbox.sqlite3", max_bytes=150 * block_bytes, evict_headroom=0.1)
    fake = FakeIngest(break_at_batch=4)
    server, port = await start_ingest(fake)
    proxy = Proxy(port)
    await proxy.start()
    up = Uplink("gw-test", box, settings(proxy.port, batch_max_records=40, max_in_flight=2, backlog_after_s=0.5,
                                         backlog_max_bytes_per_s=10_000))
    loop = asyncio.get_running_loop()
    box.writer.start(on_commit=lambda: loop.call_soon_threadsafe(up.notify))
    lag = LoopLagMonitor(interval_s=0.01)
    monitor = asyncio.create_task(lag.run())
    try:
        for b in range(100):  # the link is down: the budget evicts raw ECG
            box.writer.submit([ecg(d, b) for d in DEVICES] + ([vitals(d) for d in DEVICES] if b % 8 == 0 else []))
            await asyncio.sleep(0.005)
        async with running(up):
            for b in range(100, 260):  # ~8 s of three watches, handed over as BLE callbacks would
                box.writer.submit([ecg(d, b) for d in DEVICES] + ([vitals(d) for d in DEVICES] if b % 8 == 0 else []))
                if b % 60 == 30:
                    box.writer.submit([alarm(DEVICES[0], b)])
                if b == 160:
                    proxy.cut()
                await asyncio.sleep(0.05)
            for _ in range(600):
                if box.depth() == 0 and box.writer.queued == 0:
                    break
                await asyncio.sleep(0.05)
    finally:
        monitor.cancel()
        await proxy.stop()
        await server.stop(0)
        box.close()
    assert box.depth() == 0, f"{box.depth()} records never acked"
    assert up.sessions >= 2 and box.evicted_records > 0, "neither a break nor an eviction happened"
    assert_each_stream_once_in_order_or_evicted(fake, tmp_path / "outbox.sqlite3")
    summary = lag.summary()
    assert summary.p99_s < 0.05, summary  # 100 ms commits never show on the loop


def assert_each_stream_once_in_order_or_evicted(fake: FakeIngest, db: Path) -> None:
    with closing(sqlite3.connect(str(db))) as side:
        ledger = side.execute("SELECT stream_id, first_seq, last_seq FROM evicted").fetchall()
        next_seq = dict(side.execute("SELECT stream_id, next_seq FROM stream_seq").fetchall())
    evicted: dict[str, set[int]] = {}
    for stream_id, first, last in ledger:
        evicted.setdefault(stream_id, set()).update(range(first, last + 1))
    delivered = fake.by_stream()
    for stream_id, n in next_seq.items():
        seqs = [r.sequence for r in delivered.get(stream_id, [])]
        assert seqs == sorted(set(seqs)), f"{stream_id}: doubled or reordered"
        gone = evicted.get(stream_id, set())
        assert not gone & set(seqs), f"{stream_id}: delivered records were also declared evicted"
        assert set(seqs) | gone == set(range(n)), f"{stream_id}: records neither delivered nor declared"
    gaps = [r for rs in delivered.values() for r in rs if r.kind == pb.STREAM_KIND_EVENTS and r.event.HasField("gap")]
    assert sum(g.event.gap.missing_samples for g in gaps) == sum(len(v) for v in evicted.values()) * 125

