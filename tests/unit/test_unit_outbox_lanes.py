"""Outbox lanes, the disk budget and its exact eviction gaps, durability per lane, gauges, migration."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from cardiogate.edge.outbox import (
    ROW_OVERHEAD_BYTES,
    EvictedBlock,
    Lane,
    Outbox,
    eviction_runs,
    lane_of,
)
from cardiogate.proto.v1 import telemetry_pb2 as pb

DEV = "C0:00:00:00:00:01"
DEV2 = "C0:00:00:00:00:02"
T0 = 1_700_000_000_000_000_000
FS = 250.0
N = 125  # samples per block: 0.5 s at 250 Hz


def ecg(device: str = DEV, block: int = 0, *, dseq: int | None = None, t0: int | None = None,
        n: int = N, patient: str = "pt-0001") -> pb.Record:
    """Block ``block`` of a continuous stream: device packets 5 per block, 0.5 s apart."""
    first = 100 + 5 * block if dseq is None else dseq
    start = T0 + block * 500_000_000 if t0 is None else t0
    return pb.Record(stream_id=f"{device}/ecg", device_id=device, patient=patient, kind=pb.STREAM_KIND_ECG,
                     samples=pb.SampleBlock(first_sample_device_time_ns=start, receive_time_ns=start,
                                            sample_rate_hz=FS, scale=1.0, unit="uV",
                                            encoding=pb.SAMPLE_ENCODING_INT16_LE, samples=b"\x01\x00" * n,
                                            sample_count=n, device_sequence_first=first,
                                            device_sequence_last=first + 4))


def vitals(device: str = DEV, hr: float = 72.0) -> pb.Record:
    return pb.Record(stream_id=f"{device}/vitals", device_id=device, patient="pt-0001", kind=pb.STREAM_KIND_VITALS,
                     vitals=pb.VitalsRecord(device_time_ns=T0, receive_time_ns=T0, heart_rate_bpm=hr))


def alarm(device: str = DEV) -> pb.Record:
    return pb.Record(stream_id=f"{device}/alarms", device_id=device, patient="pt-0001", kind=pb.STREAM_KIND_ALARMS,
                     alarm=pb.Alarm(alarm_id="a1", condition="tachycardia", priority=pb.ALARM_PRIORITY_HIGH,
                                    state=pb.ALARM_STATE_RAISED))


def event(device: str = DEV) -> pb.Record:
    return pb.Record(stream_id=f"{device}/events", device_id=device, patient="pt-0001", kind=pb.STREAM_KIND_EVENTS,
                     event=pb.DeviceEvent(device_time_ns=T0, receive_time_ns=T0,
                                          link=pb.LinkChange(connected=True, reason="test")))


def size(record: pb.Record) -> int:
    return record.ByteSize() + ROW_OVERHEAD_BYTES


BLOCK = size(ecg()) + 4  # budget bytes of one block, with room for its sequence number


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "outbox.sqlite3"


@pytest.fixture
def box(path: Path) -> Iterator[Outbox]:
    ob = Outbox(path)
    yield ob
    ob.close()


def gaps_in(box: Outbox) -> list[pb.Record]:
    return [r for r in (pb.Record.FromString(p.payload) for p in box.pending(0, 100_000))
            if r.kind == pb.STREAM_KIND_EVENTS and r.event.HasField("gap")]


def ecg_seqs(box: Outbox, device: str = DEV) -> list[int]:
    return [p.seq for p in box.pending(0, 100_000) if p.stream_id == f"{device}/ecg"]


def test_lanes_follow_the_stream_kind() -> None:
    assert lane_of(pb.STREAM_KIND_ALARMS) == Lane.ALARMS
    assert lane_of(pb.STREAM_KIND_VITALS) == Lane.VITALS
    assert lane_of(pb.STREAM_KIND_EVENTS) == Lane.VITALS  # gaps and device events ride with vitals
    assert lane_of(pb.STREAM_KIND_ECG) == Lane.RAW
    assert lane_of(99) == Lane.FEATURES  # a kind this build does not know is kept, never evicted
    assert lane_of(pb.STREAM_KIND_UNSPECIFIED) == Lane.FEATURES


def test_gauges_per_lane(box: Outbox) -> None:
    records = [alarm(), vitals(), event(), ecg(block=0), ecg(block=1)]
    for r in records:
        box.append(r)
    assert [box.lane_depth(lane) for lane in Lane] == [1, 2, 0, 2]
    assert box.lane_bytes(Lane.RAW) == size(records[3]) + size(records[4])
    assert box.lane_bytes(Lane.ALARMS) == size(records[0])
    assert box.bytes_total == sum(size(r) for r in records)
    m = box.metrics()
    assert m.records == 5 and m.bytes == box.bytes_total and m.max_bytes is None and not m.full
    assert m.lanes["raw"].records == 2 and m.lanes["features"].records == 0
    assert m.lanes["features"].oldest_age_s == 0.0 and m.lanes["alarms"].oldest_age_s >= 0.0
    assert m.appended == 5 and m.file_bytes > 0
    assert box.appended_by_lane == [1, 2, 0, 2]
    box.ack(f"{DEV}/ecg", 0, 1)
    assert box.lane_depth(Lane.RAW) == 0 and box.lane_bytes(Lane.RAW) == 0


def test_budget_evicts_only_the_oldest_raw_ecg_and_records_an_exact_gap(path: Path) -> None:
    calls: list[tuple[str, str, int]] = []
    block = BLOCK
    ob = Outbox(path, max_bytes=10 * block, evict_headroom=0.25, on_evicted=lambda *a: calls.append(a))
    try:
        ob.append(alarm())
        ob.append(vitals())
        for i in range(10):
            ob.append(ecg(block=i))
        assert ob.evicted_records > 0  # alarm + vitals + 10 blocks do not fit 10 blocks' worth
        assert ob.bytes_total <= 10 * block
        assert ob.lane_depth(Lane.ALARMS) == 1 and ob.lane_depth(Lane.VITALS) == 2  # vitals + the gap
        kept = ecg_seqs(ob)
        evicted = ob.evicted_records
        assert kept == list(range(evicted, 10))  # oldest first
        [g] = gaps_in(ob)
        gap = g.event.gap
        assert (g.stream_id, g.kind, g.patient, g.device_id) == (f"{DEV}/events", pb.STREAM_KIND_EVENTS, "pt-0001",
                                                                 DEV)
        assert gap.cause == pb.GAP_CAUSE_EVICTED and gap.stream == pb.STREAM_KIND_ECG
        assert gap.device_sequence_first == 100
        assert gap.device_sequence_last == 100 + 5 * evicted - 1
        assert gap.start_device_time_ns == T0
        assert gap.end_device_time_ns == T0 + evicted * 500_000_000  # first sample after the gap
        assert gap.missing_samples == evicted * N and gap.sample_rate_hz == FS
        assert g.event.device_time_ns == T0 and g.event.receive_time_ns > 0
        assert calls == [(DEV, "pt-0001", evicted * N)]
        assert (ob.evicted_samples, ob.eviction_gaps, ob.full) == (evicted * N, 1, False)
        with closing(sqlite3.connect(str(path))) as side:
            ledger = side.execute("SELECT stream_id, first_seq, last_seq, records, samples, gap_stream_id, gap_seq "
                                  "FROM evicted").fetchall()
        assert ledger == [(f"{DEV}/ecg", 0, evicted - 1, evicted, evicted * N, f"{DEV}/events", g.sequence)]
    finally:
        ob.close()


def test_eviction_runs_split_where_the_device_stream_was_already_discontinuous() -> None:
    def blk(seq: int, block: int, *, dseq: int | None = None, t0: int | None = None) -> EvictedBlock:
        return EvictedBlock.of(pb.Record.FromString(_with_seq(ecg(block=block, dseq=dseq, t0=t0), seq)))

    contiguous = [blk(0, 0), blk(1, 1), blk(2, 2)]
    [run] = eviction_runs(contiguous)
    assert (run.first_seq, run.last_seq, run.records, run.gap.missing_samples) == (0, 2, 3, 3 * N)
    # A link-loss gap between blocks 1 and 2 (packets skipped): two runs, each exact.
    lost_packets = [blk(0, 0), blk(1, 1), blk(2, 3)]
    a, b = eviction_runs(lost_packets)
    assert (a.gap.device_sequence_first, a.gap.device_sequence_last, a.gap.missing_samples) == (100, 109, 2 * N)
    assert (b.gap.device_sequence_first, b.gap.device_sequence_last) == (115, 119)
    assert b.gap.start_device_time_ns == T0 + 3 * 500_000_000
    # A clock jump with contiguous packet counters also splits.
    jumped = [blk(0, 0), blk(1, 1, t0=T0 + 9_000_000_000)]
    assert len(eviction_runs(jumped)) == 2
    # Record sequences with a hole (a rejected record) split too.
    assert len(eviction_runs([blk(0, 0), blk(2, 1)])) == 2
    # No packet counter (Polar): continuity by time alone.
    polar = [blk(i, i, dseq=0) for i in range(3)]
    polar = [EvictedBlock(b.stream_id, b.seq, b.device_id, b.patient, 0, 0, b.first_sample_ns, b.sample_count,
                          b.sample_rate_hz) for b in polar]
    [run] = eviction_runs(polar)
    assert run.gap.missing_samples == 3 * N
    # Two streams never share a run.
    other = EvictedBlock.of(pb.Record.FromString(_with_seq(ecg(DEV2, block=0), 0)))
    assert {r.stream_id for r in eviction_runs([*contiguous, other])} == {f"{DEV}/ecg", f"{DEV2}/ecg"}


def _with_seq(record: pb.Record, seq: int) -> bytes:
    record.sequence = seq
    return record.SerializeToString()


def test_records_already_sent_are_never_evicted(path: Path) -> None:
    block = BLOCK
    ob = Outbox(path, max_bytes=6 * block, evict_headroom=0.3)
    try:
        for i in range(5):
            ob.append(ecg(block=i))
        ob.mark_sent({f"{DEV}/ecg": 2})  # 0..2 may already be in the cloud
        for i in range(5, 9):
            ob.append(ecg(block=i))
        kept = ecg_seqs(ob)
        assert kept[:3] == [0, 1, 2]
        assert ob.evicted_records > 0
        with closing(sqlite3.connect(str(path))) as side:
            first_evicted = side.execute("SELECT MIN(first_seq) FROM evicted").fetchone()[0]
        assert first_evicted == 3
        assert gaps_in(ob)[0].event.gap.device_sequence_first == 100 + 5 * 3
    finally:
        ob.close()


def test_over_budget_with_nothing_evictable_keeps_alarms_and_vitals_and_says_full(path: Path) -> None:
    states: list[bool] = []
    ob = Outbox(path, max_bytes=3 * size(vitals()), on_full=states.append)
    try:
        for _ in range(4):
            ob.append(vitals())
        ob.append(alarm())
        assert ob.depth() == 5  # nothing dropped
        assert ob.full and states == [True] and ob.full_events == 1
        assert ob.metrics().full and ob.metrics().fill_ratio > 1.0
        ob.append(alarm())
        assert states == [True]  # reported once per episode
        ob.ack(f"{DEV}/vitals", 0, 3)
        assert not ob.full and states == [True, False]
    finally:
        ob.close()


def test_when_only_pinned_ecg_is_left_a_new_block_is_evicted_with_its_gap(path: Path) -> None:
    states: list[bool] = []
    block = BLOCK
    ob = Outbox(path, max_bytes=3 * block, evict_headroom=0.01, on_full=states.append)
    try:
        for i in range(3):
            ob.append(ecg(block=i))
        ob.mark_sent({f"{DEV}/ecg": 2})
        ob.append(vitals())  # over budget; ECG pinned, vitals never evicted
        assert ob.full and states == [True]
        seq = ob.append(ecg(block=3))
        assert seq == 3
        assert ecg_seqs(ob) == [0, 1, 2]  # block 3 went straight to an exact gap
        [g] = gaps_in(ob)
        assert (g.event.gap.device_sequence_first, g.event.gap.missing_samples) == (115, N)
        assert ob.full
    finally:
        ob.close()


def test_sequences_stay_accountable_after_evictions(path: Path) -> None:
    block = BLOCK
    ob = Outbox(path, max_bytes=8 * block, evict_headroom=0.2)
    try:
        for i in range(40):
            ob.append(ecg(block=i))
            if i % 7 == 0:
                ob.append(vitals())
        present = set(ecg_seqs(ob))
        with closing(sqlite3.connect(str(path))) as side:
            ranges = side.execute("SELECT first_seq, last_seq FROM evicted WHERE stream_id = ?", (f"{DEV}/ecg",))
            evicted = {q for lo, hi in ranges for q in range(lo, hi + 1)}
        assert not present & evicted
        assert present | evicted == set(range(ob.next_seq(f"{DEV}/ecg")))
        assert sum(g.event.gap.missing_samples for g in gaps_in(ob)) == len(evicted) * N == ob.evicted_samples
    finally:
        ob.close()


def test_alarms_and_vitals_are_fsynced_per_commit_raw_ecg_by_group_commit(path: Path) -> None:
    clock = Clock()
    ob = Outbox(path, group_commit_s=1.0, monotonic=clock)
    try:
        base = ob.synced_commits
        ob.append(alarm())
        ob.append(vitals())
        ob.append(event())
        assert ob.synced_commits == base + 3 and not ob.unsynced
        for i in range(5):
            ob.append(ecg(block=i))
            clock.t += 0.1
        assert ob.synced_commits == base + 3 and ob.unsynced
        clock.t += 0.6
        ob.append(ecg(block=5))  # more than a second after the first unsynced commit: this one fsyncs
        assert ob.synced_commits == base + 4 and not ob.unsynced
        ob.append(ecg(block=6))
        assert ob.unsynced
        ob.sync_if_due()
        assert ob.unsynced  # not due yet
        clock.t += 1.0
        ob.sync_if_due()
        assert ob.synced_commits == base + 5 and not ob.unsynced
        ob.append(ecg(block=7))
        ob.mark_sent({f"{DEV}/ecg": 7})  # nothing reaches the wire unsynced
        assert not ob.unsynced and ob.synced_commits == base + 6
        ob.append_many([ecg(block=8), alarm()])  # a batch commits at its strictest lane
        assert not ob.unsynced and ob.synced_commits == base + 7
    finally:
        ob.close()


def test_group_commit_zero_fsyncs_every_commit(path: Path) -> None:
    ob = Outbox(path, group_commit_s=0)
    try:
        base = ob.synced_commits
        for i in range(3):
            ob.append(ecg(block=i))
        assert ob.synced_commits == base + 3 and not ob.unsynced
    finally:
        ob.close()


def test_append_many_numbers_in_one_transaction(box: Outbox) -> None:
    seqs = box.append_many([ecg(block=0), vitals(), ecg(block=1), ecg(DEV2, block=0), vitals()])
    assert seqs == [0, 0, 1, 0, 1]
    assert box.append_many([]) == []
    assert box.next_seq(f"{DEV}/ecg") == 2 and box.next_seq("nope") == 0


def test_callbacks_that_raise_do_not_break_appends(path: Path) -> None:
    def boom(*_: object) -> None:
        raise RuntimeError("hook failed")

    ob = Outbox(path, max_bytes=2 * BLOCK, on_evicted=boom, on_full=boom)
    try:
        for i in range(4):
            ob.append(ecg(block=i))
        ob.append(vitals())
        ob.append(vitals())
        ob.append(vitals())
        assert ob.evicted_records > 0 and ob.full
    finally:
        ob.close()


def test_reopen_restores_gauges_pins_and_budget(path: Path) -> None:
    block = BLOCK
    ob = Outbox(path, max_bytes=20 * block)
    for i in range(6):
        ob.append(ecg(block=i))
    ob.append(alarm())
    ob.mark_sent({f"{DEV}/ecg": 1})
    lanes = [ob.lane_bytes(lane) for lane in Lane]
    ob.close()
    # Reopened with a smaller budget: it evicts at once, but not what was sent.
    ob2 = Outbox(path, max_bytes=4 * block, evict_headroom=0.01)
    try:
        assert ob2.evicted_records > 0
        assert ecg_seqs(ob2)[:2] == [0, 1]
        assert ob2.lane_bytes(Lane.ALARMS) == lanes[Lane.ALARMS]
        assert ob2.append(ecg(block=6)) == 6
        assert ob2.integrity_check() == []
    finally:
        ob2.close()


_V1_SCHEMA = """
CREATE TABLE outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, stream_id TEXT NOT NULL, seq INTEGER NOT NULL,
  kind INTEGER NOT NULL, created_ns INTEGER NOT NULL, payload BLOB NOT NULL, UNIQUE (stream_id, seq));
CREATE TABLE stream_seq (stream_id TEXT PRIMARY KEY, next_seq INTEGER NOT NULL);
CREATE TABLE rejected (id INTEGER PRIMARY KEY, stream_id TEXT NOT NULL, seq INTEGER NOT NULL,
  reason TEXT NOT NULL, payload BLOB NOT NULL);
"""


def test_a_database_from_before_lanes_is_migrated_in_place(path: Path) -> None:
    with closing(sqlite3.connect(str(path))) as old:
        old.executescript(_V1_SCHEMA)
        for rec, seq in ((ecg(block=0), 0), (alarm(), 0), (ecg(block=1), 1), (vitals(), 4)):
            rec.sequence = seq
            old.execute("INSERT INTO outbox (stream_id, seq, kind, created_ns, payload) VALUES (?, ?, ?, ?, ?)",
                        (rec.stream_id, seq, rec.kind, 1, rec.SerializeToString()))
        old.executemany("INSERT INTO stream_seq VALUES (?, ?)",
                        [(f"{DEV}/ecg", 2), (f"{DEV}/alarms", 1), (f"{DEV}/vitals", 5)])
        old.commit()
    ob = Outbox(path)
    try:
        assert [ob.lane_depth(lane) for lane in Lane] == [1, 1, 0, 2]
        assert ob.lane_bytes(Lane.ALARMS) == size(alarm())
        assert ob.append(vitals()) == 5 and ob.append(ecg(block=2)) == 2
        assert ob.streams_behind({}, [Lane.ALARMS]) == [f"{DEV}/alarms"]
        [u] = ob.unsent(f"{DEV}/alarms", -1, 10)
        assert u.lane == Lane.ALARMS and u.nbytes == alarm().ByteSize()
        assert ob.integrity_check() == []
    finally:
        ob.close()
    Outbox(path).close()  # a second open finds nothing to migrate


def test_unsent_reads_for_the_uplink(box: Outbox) -> None:
    for i in range(5):
        box.append(ecg(block=i))
    box.append(alarm())
    assert set(box.streams_behind({})) == {f"{DEV}/ecg", f"{DEV}/alarms"}
    assert box.streams_behind({f"{DEV}/ecg": 4}, [Lane.RAW]) == []
    rows = box.unsent(f"{DEV}/ecg", 1, 2)
    assert [r.seq for r in rows] == [2, 3] and all(r.lane == Lane.RAW for r in rows)
    payloads = box.payloads([r.row_id for r in rows])
    assert pb.Record.FromString(payloads[rows[0].row_id]).sequence == 2
    oldest = box.oldest_unsent_ns({f"{DEV}/ecg": 4})
    assert set(oldest) == {Lane.ALARMS}
    assert set(box.oldest_unsent_ns({})) == {Lane.ALARMS, Lane.RAW}
