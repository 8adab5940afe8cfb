"""The outbox writer thread: writes batched into few commits, the loop never waits on the disk,
durable futures, backpressure without loss, acks by range, pins before eviction, a clean drain."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import closing
from pathlib import Path

import pytest

from cardiogate.edge.ecg_assembler import EcgTail
from cardiogate.edge.loop_lag import LoopLagMonitor
from cardiogate.edge.outbox import Lane, Outbox
from cardiogate.edge.outbox_writer import COMMIT_DELAY_ENV
from tests.unit.test_unit_outbox_lanes import DEV, alarm, ecg, vitals


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Outbox]:
    ob = Outbox(tmp_path / "outbox.sqlite3")
    yield ob
    ob.close()


def rows_on_disk(path: Path) -> int:
    """What another connection (another process after a crash) finds committed."""
    with closing(sqlite3.connect(str(path))) as side:
        return int(side.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])


def test_queued_appends_share_commits_and_keep_each_streams_order(box: Outbox,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(COMMIT_DELAY_ENV, "0.05")
    box.writer.start()
    futures = [box.writer.submit([vitals(hr=float(i))]) for i in range(60)]
    seqs = [f.result(timeout=10) for f in futures]
    assert seqs == [[i] for i in range(60)]
    assert box.writer.batches < 20, f"{box.writer.batches} commits for 60 appends: nothing was batched"
    assert rows_on_disk(box.path) == 60 and box.depth() == 60


def test_submit_returns_at_once_while_a_commit_is_stalled(box: Outbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(COMMIT_DELAY_ENV, "0.5")
    box.writer.start()
    first = box.writer.submit([alarm()])
    time.sleep(0.05)  # the writer is inside the stalled commit now
    started = time.perf_counter()
    later = [box.writer.submit([vitals()]) for _ in range(20)]
    took = time.perf_counter() - started
    assert took < 0.05, f"20 submits took {took * 1000:.0f} ms behind a stalled commit"
    assert not first.done()
    assert first.result(timeout=5) == [0]
    assert [f.result(timeout=5) for f in later] == [[i] for i in range(20)]


def test_the_loop_keeps_its_pace_while_every_commit_takes_half_a_second(box: Outbox,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(COMMIT_DELAY_ENV, "0.5")

    async def scenario() -> tuple[LoopLagMonitor, list[int]]:
        box.writer.start()
        lag = LoopLagMonitor(interval_s=0.01)
        monitor = asyncio.create_task(lag.run())
        for i in range(40):  # a BLE-like stream of records, 20 per second, while the disk crawls
            box.writer.submit([ecg(block=i), vitals()])
            await asyncio.sleep(0.05)
        durable = await box.writer.append([alarm()])
        monitor.cancel()
        return lag, durable

    lag, durable = asyncio.run(scenario())
    summary = lag.summary()
    assert summary.samples > 100
    assert summary.p99_s < 0.02 and lag.max_s < 0.1, summary
    assert durable == [0] and rows_on_disk(box.path) == 81  # the awaited append is on disk when it returns


def test_a_full_queue_makes_writers_wait_and_drops_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(COMMIT_DELAY_ENV, "0.05")
    ob = Outbox(tmp_path / "outbox.sqlite3")
    ob.writer._max_pending = 5
    ob.writer.start()

    async def flood() -> list[list[int]]:
        return list(await asyncio.gather(*(ob.writer.append([vitals(hr=float(i))]) for i in range(40))))

    try:
        results = asyncio.run(flood())
        assert sorted(q for r in results for q in r) == list(range(40))
        sync_side = [ob.writer.submit([vitals(DEV)]) for _ in range(20)]  # blocks in turn, never drops
        assert [f.result(timeout=10) for f in sync_side] == [[i] for i in range(40, 60)]
        assert ob.writer.full_waits > 0
        assert rows_on_disk(ob.path) == 60
    finally:
        ob.close()


def test_a_failed_commit_reaches_every_waiting_future_and_the_writer_carries_on(box: Outbox) -> None:
    box.writer.start()
    box.writer.submit([vitals()]).result(timeout=5)
    pages = box._db.execute("PRAGMA page_count").fetchone()[0]
    box._db.execute(f"PRAGMA max_page_count={pages}")  # the disk is full
    failed = box.writer.submit([ecg(block=i) for i in range(200)])
    with pytest.raises(sqlite3.OperationalError, match="full"):
        failed.result(timeout=5)
    box._db.execute("PRAGMA max_page_count=1073741823")
    assert box.writer.submit([vitals()]).result(timeout=5) == [1]
    assert box.next_seq(f"{DEV}/ecg") == 0, "a sequence number was handed out for records never stored"


def test_acks_delete_by_range_in_one_commit(box: Outbox) -> None:
    box.append_many([ecg(block=i) for i in range(10)] + [vitals() for _ in range(5)])
    box.writer.start()

    async def ack() -> int:
        return await box.writer.ack([(f"{DEV}/ecg", 0, 6), (f"{DEV}/vitals", 0, 4), (f"{DEV}/ecg", 20, 30)])

    synced = box.synced_commits
    assert asyncio.run(ack()) == 12
    assert box.lane_depth(Lane.RAW) == 3 and box.lane_depth(Lane.VITALS) == 0
    assert [r.seq for r in box.unsent(f"{DEV}/ecg", -1, 10)] == [7, 8, 9]
    assert box.lane_bytes(Lane.RAW) == sum(r.nbytes for r in box.unsent(f"{DEV}/ecg", -1, 10)) + 3 * 96
    assert box.synced_commits - synced <= 1


def test_a_pin_through_the_writer_protects_rows_from_a_later_eviction(tmp_path: Path) -> None:
    one = ecg().ByteSize() + 96
    ob = Outbox(tmp_path / "outbox.sqlite3", max_bytes=12 * one, evict_headroom=0.0)
    try:
        ob.append_many([ecg(block=i) for i in range(10)])
        ob.writer.start()

        async def pin_then_flood() -> None:
            await ob.writer.mark_sent({f"{DEV}/ecg": 4})
            await ob.writer.append([ecg(block=10 + i) for i in range(6)])

        asyncio.run(pin_then_flood())
        left = [r.seq for r in ob.unsent(f"{DEV}/ecg", -1, 100)]
        assert left[:5] == [0, 1, 2, 3, 4], "a record pinned as sent was evicted"
        assert ob.evicted_records > 0
    finally:
        ob.close()


def test_pins_of_lanes_fsynced_at_commit_cost_no_commit(box: Outbox) -> None:
    box.append_many([alarm(), vitals(), ecg()])
    assert box.pins_needed({f"{DEV}/alarms": 0, f"{DEV}/vitals": 0, f"{DEV}/ecg": 0}) == {f"{DEV}/ecg": 0}
    box.mark_sent({f"{DEV}/ecg": 0})
    assert box.pins_needed({f"{DEV}/ecg": 0}) == {}


def test_a_queued_ecg_tail_is_what_a_new_processor_resumes_from(box: Outbox,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(COMMIT_DELAY_ENV, "0.3")
    box.writer.start()
    tail = EcgTail(104, 1_700_000_000_500_000_000, 1_700_000_000_600_000_000, 250.0)
    future = box.writer.submit([ecg()], {DEV: tail})
    assert box.ecg_tail(DEV) == tail and not future.done()
    future.result(timeout=5)
    assert box.ecg_tail(DEV) == tail
    with closing(sqlite3.connect(str(box.path))) as side:
        assert side.execute("SELECT seq FROM ecg_tail WHERE device_id = ?", (DEV,)).fetchone() == (104,)


def test_reads_do_not_wait_for_a_stalled_commit(box: Outbox, monkeypatch: pytest.MonkeyPatch) -> None:
    box.append_many([ecg(block=i) for i in range(5)])
    monkeypatch.setenv(COMMIT_DELAY_ENV, "0.5")
    box.writer.start()
    box.writer.submit([ecg(block=5)])
    time.sleep(0.05)
    started = time.perf_counter()
    rows = box.unsent(f"{DEV}/ecg", -1, 100)
    payloads = box.payloads([r.row_id for r in rows])
    behind = box.streams_behind({})
    took = time.perf_counter() - started
    assert took < 0.05, f"reads waited {took * 1000:.0f} ms for the writer"
    assert [r.seq for r in rows] == [0, 1, 2, 3, 4] and len(payloads) == 5 and behind == [f"{DEV}/ecg"]


def test_close_commits_everything_still_queued(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(COMMIT_DELAY_ENV, "0.1")
    ob = Outbox(tmp_path / "outbox.sqlite3")
    ob.writer.start()
    futures = [ob.writer.submit([ecg(block=i)]) for i in range(30)]
    ob.close()
    assert all(f.done() and f.exception() is None for f in futures)
    assert rows_on_disk(tmp_path / "outbox.sqlite3") == 30


def test_the_group_commit_fsyncs_raw_ecg_on_the_writers_own_timer(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "outbox.sqlite3", group_commit_s=0.1)
    try:
        ob.writer.start()
        ob.writer.submit([ecg()]).result(timeout=5)
        assert ob.unsynced
        ob.sync_if_due()  # the uplink's call is a no-op now: the writer keeps the timer
        deadline = time.monotonic() + 3
        while ob.unsynced and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not ob.unsynced, "the writer never fsynced the raw ECG"
    finally:
        ob.close()


def test_without_a_running_writer_writes_happen_inline(box: Outbox) -> None:
    future = box.writer.submit([vitals()])
    assert future.done() and future.result() == [0]
    assert threading.active_count() >= 1 and not box.writer.running
    assert asyncio.run(box.writer.ack([(f"{DEV}/vitals", 0, 0)])) == 1


def test_a_caller_cancelled_while_waiting_still_gets_its_write_and_the_writer_lives_on(
        box: Outbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(COMMIT_DELAY_ENV, "0.2")
    box.writer.start()

    async def scenario() -> list[int]:
        waiting = asyncio.create_task(box.writer.append([alarm()]))
        await asyncio.sleep(0.05)
        waiting.cancel()  # an uplink session ends while its write is queued
        await asyncio.gather(waiting, return_exceptions=True)
        return await box.writer.append([alarm()])

    assert asyncio.run(scenario()) == [1]
    assert rows_on_disk(box.path) == 2 and box.writer.running


def _paced_submits(box: Outbox, n: int, every_s: float) -> list[Future[list[int]]]:
    futures = []
    for i in range(n):
        futures.append(box.writer.submit([vitals(hr=float(i))]))
        time.sleep(every_s)
    return futures


def test_a_linger_gathers_appends_arriving_one_by_one_into_few_commits(tmp_path: Path) -> None:
    """Appends 5 ms apart: without a linger nearly each is its own commit, with 100 ms a handful share one."""
    commits = {}
    for linger in (0.0, 0.1):
        ob = Outbox(tmp_path / f"outbox-{linger}.sqlite3", commit_linger_s=linger)
        ob.writer.start()
        futures = _paced_submits(ob, 40, 0.005)
        assert [f.result(timeout=10) for f in futures] == [[i] for i in range(40)]
        commits[linger] = ob.writer.batches
        assert rows_on_disk(ob.path) == 40
        ob.close()
    assert commits[0.0] >= 20, commits
    assert commits[0.1] <= 6, commits


def test_an_alarm_does_not_wait_for_the_linger_and_takes_the_queue_with_it(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "outbox.sqlite3", commit_linger_s=1.0)
    try:
        ob.writer.start()
        routine = ob.writer.submit([vitals(hr=70.0)])
        time.sleep(0.05)
        assert not routine.done(), "a routine append waits for company while the linger lasts"
        started = time.perf_counter()
        urgent = ob.writer.submit([alarm()])
        assert urgent.result(timeout=5) == [0]
        took = time.perf_counter() - started
        assert took < 0.5, f"the alarm waited {took * 1000:.0f} ms for the 1-s linger"
        assert routine.done() and routine.result() == [0]  # committed with it, in its order
        assert rows_on_disk(ob.path) == 2
    finally:
        ob.close()


@pytest.mark.parametrize("write", ["ack", "pin", "append"])
def test_writes_somebody_awaits_end_the_linger(tmp_path: Path, write: str) -> None:
    ob = Outbox(tmp_path / "outbox.sqlite3", commit_linger_s=1.0)
    block = ecg()

    async def go() -> float:
        ob.writer.start()
        ob.writer.submit([block])
        await asyncio.sleep(0.05)
        started = time.perf_counter()
        if write == "ack":
            await ob.writer.ack([(block.stream_id, 0, 0)])
        elif write == "pin":
            await ob.writer.mark_sent({block.stream_id: 0})
        else:
            await ob.writer.append([vitals(hr=71.0)])
        return time.perf_counter() - started

    try:
        took = asyncio.run(go())
        assert took < 0.5, f"an awaited {write} waited {took * 1000:.0f} ms for the 1-s linger"
    finally:
        ob.close()


def test_stopping_commits_a_lingering_batch_at_once(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "outbox.sqlite3", commit_linger_s=1.0)
    ob.writer.start()
    future = ob.writer.submit([vitals(hr=70.0)])
    time.sleep(0.05)
    started = time.perf_counter()
    ob.close()
    assert time.perf_counter() - started < 0.5
    assert future.result(timeout=1) == [0] and rows_on_disk(ob.path) == 1
