"""The SQLite outbox: per-stream numbering, ordered pending reads, acks, rejects, restarts."""

from __future__ import annotations

import sqlite3
import types
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

import cardiogate.edge.outbox as outbox_module
from cardiogate.edge.ecg_assembler import EcgTail
from cardiogate.edge.outbox import Outbox, PendingRecord
from cardiogate.proto.v1 import telemetry_pb2 as pb

DEV_A = "C0:00:00:00:00:01"
DEV_B = "C0:00:00:00:00:02"
VITALS_A = f"{DEV_A}/vitals"
ECG_A = f"{DEV_A}/ecg"
VITALS_B = f"{DEV_B}/vitals"


def vitals(stream: str = VITALS_A, hr: float = 72.0) -> pb.Record:
    device = stream.split("/")[0]
    return pb.Record(stream_id=stream, device_id=device, patient="pt-0001", kind=pb.STREAM_KIND_VITALS,
                     vitals=pb.VitalsRecord(device_time_ns=1, receive_time_ns=2, heart_rate_bpm=hr))


def ecg(stream: str = ECG_A) -> pb.Record:
    device = stream.split("/")[0]
    return pb.Record(stream_id=stream, device_id=device, patient="pt-0001", kind=pb.STREAM_KIND_ECG,
                     samples=pb.SampleBlock(samples=b"\x01\x00", sample_count=1))


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "nested" / "dir" / "outbox.sqlite3"


@pytest.fixture
def box(db_path: Path) -> Iterator[Outbox]:
    ob = Outbox(db_path)
    yield ob
    ob.close()


def seqs(rows: list[PendingRecord]) -> list[tuple[str, int]]:
    return [(r.stream_id, r.seq) for r in rows]


def test_creates_parent_directories(box: Outbox, db_path: Path) -> None:
    assert db_path.exists()
    assert box.depth() == 0
    assert box.oldest_age_s() == 0.0
    assert box.pending(0, 100) == []


def test_append_numbers_each_stream_independently(box: Outbox) -> None:
    got = [box.append(vitals(VITALS_A)), box.append(vitals(VITALS_A)), box.append(ecg(ECG_A)),
           box.append(vitals(VITALS_B)), box.append(vitals(VITALS_A)), box.append(ecg(ECG_A))]
    assert got == [0, 1, 0, 0, 2, 1]
    assert box.depth() == 6
    assert box.appended == 6


def test_append_sets_sequence_in_record_and_stored_payload(box: Outbox) -> None:
    box.append(vitals())
    rec = vitals(hr=99.0)
    assert box.append(rec) == 1
    assert rec.sequence == 1
    stored = box.pending(0, 10)[1]
    parsed = pb.Record.FromString(stored.payload)
    assert parsed.sequence == 1
    assert parsed.stream_id == VITALS_A
    assert parsed.vitals.heart_rate_bpm == 99.0
    assert parsed == rec


def test_pending_ordered_by_row_with_cursor_and_limit(box: Outbox) -> None:
    order = [VITALS_A, ECG_A, VITALS_A, VITALS_B, ECG_A]
    for s in order:
        box.append(vitals(s) if s.endswith("vitals") else ecg(s))
    rows = box.pending(0, 100)
    assert seqs(rows) == [(VITALS_A, 0), (ECG_A, 0), (VITALS_A, 1), (VITALS_B, 0), (ECG_A, 1)]
    ids = [r.row_id for r in rows]
    assert ids == sorted(ids)
    assert len(set(ids)) == 5
    first = box.pending(0, 2)
    assert seqs(first) == seqs(rows[:2])
    rest = box.pending(first[-1].row_id, 100)
    assert seqs(rest) == seqs(rows[2:])
    assert box.pending(rows[-1].row_id, 100) == []
    assert box.pending(rows[1].row_id, 1)[0] == rows[2]


def test_ack_removes_exactly_the_inclusive_range_of_that_stream(box: Outbox) -> None:
    for _ in range(6):
        box.append(vitals(VITALS_A))
        box.append(vitals(VITALS_B))
    assert box.ack(VITALS_A, 1, 3) == 3
    assert box.acked == 3
    left = seqs(box.pending(0, 100))
    assert [s for st, s in left if st == VITALS_A] == [0, 4, 5]
    assert [s for st, s in left if st == VITALS_B] == [0, 1, 2, 3, 4, 5]
    assert box.depth() == 9
    # Acking again, or a range beyond what exists, removes nothing more.
    assert box.ack(VITALS_A, 1, 3) == 0
    assert box.ack(VITALS_A, 100, 200) == 0
    assert box.ack("C0:00:00:00:00:09/vitals", 0, 5) == 0
    assert box.ack(VITALS_A, 5, 5) == 1
    assert [s for st, s in seqs(box.pending(0, 100)) if st == VITALS_A] == [0, 4]
    assert box.acked == 4
    assert box.depth() == 8


def test_reject_moves_rows_aside(box: Outbox, db_path: Path) -> None:
    for _ in range(3):
        box.append(vitals(VITALS_A))
    box.append(vitals(VITALS_B))
    rows = box.pending(0, 100)
    bad = [rows[1], rows[3]]
    box.reject(bad, "heart rate out of range")
    assert seqs(box.pending(0, 100)) == [(VITALS_A, 0), (VITALS_A, 2)]
    assert box.depth() == 2
    with closing(sqlite3.connect(str(db_path))) as side:
        kept = side.execute("SELECT id, stream_id, seq, reason, payload FROM rejected ORDER BY id").fetchall()
    assert kept == [(r.row_id, r.stream_id, r.seq, "heart rate out of range", r.payload) for r in bad]
    # Rejected sequence numbers are never handed out again.
    assert box.append(vitals(VITALS_A)) == 3
    assert box.append(vitals(VITALS_B)) == 1


def test_sequences_continue_after_reopen_even_when_everything_was_acked(db_path: Path) -> None:
    ob = Outbox(db_path)
    assert [ob.append(vitals()) for _ in range(3)] == [0, 1, 2]
    assert ob.append(ecg()) == 0
    last_row = ob.pending(0, 100)[-1].row_id
    assert ob.ack(VITALS_A, 0, 2) == 3
    assert ob.ack(ECG_A, 0, 0) == 1
    assert ob.depth() == 0
    ob.close()

    ob2 = Outbox(db_path)
    try:
        assert ob2.depth() == 0
        assert ob2.append(vitals()) == 3
        assert ob2.append(ecg()) == 1
        assert ob2.append(vitals(VITALS_B)) == 0
        rows = ob2.pending(0, 100)
        assert seqs(rows) == [(VITALS_A, 3), (ECG_A, 1), (VITALS_B, 0)]
        assert all(r.row_id > last_row for r in rows)  # row ids are not reused either
    finally:
        ob2.close()


def test_unacked_rows_survive_reopen(db_path: Path) -> None:
    ob = Outbox(db_path)
    for _ in range(4):
        ob.append(vitals())
    ob.ack(VITALS_A, 0, 1)
    before = ob.pending(0, 100)
    ob.close()
    ob2 = Outbox(db_path)
    try:
        assert ob2.pending(0, 100) == before
        assert seqs(before) == [(VITALS_A, 2), (VITALS_A, 3)]
    finally:
        ob2.close()


def test_depth_and_oldest_age(box: Outbox, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1_000 * 1_000_000_000]
    monkeypatch.setattr(outbox_module, "time", types.SimpleNamespace(time_ns=lambda: clock[0]))
    assert box.oldest_age_s() == 0.0
    box.append(vitals())
    clock[0] += 2_500_000_000
    box.append(vitals())
    clock[0] += 1_000_000_000
    assert box.depth() == 2
    assert box.oldest_age_s() == pytest.approx(3.5)
    box.ack(VITALS_A, 0, 0)
    assert box.depth() == 1
    assert box.oldest_age_s() == pytest.approx(1.0)
    clock[0] -= 10_000_000_000  # a clock step backwards never gives a negative age
    assert box.oldest_age_s() == 0.0
    box.ack(VITALS_A, 1, 1)
    assert box.depth() == 0
    assert box.oldest_age_s() == 0.0


# -- the ECG tail: where each device's stored ECG ends, for a restarted gateway ---------------------

T = 1_700_000_000_000_000_000


def test_ecg_tail_commits_with_its_records_and_survives_reopen(db_path: Path) -> None:
    ob = Outbox(db_path)
    assert ob.ecg_tail(DEV_A) is None
    ob.append_many([ecg(ECG_A)], {DEV_A: EcgTail(7, T, T + 5, 250.0)})
    ob.append_many([vitals()])  # records without a tail leave it alone
    polar = EcgTail(None, T + 3, T + 9, 130.0)
    ob.append_many([ecg(f"{DEV_B}/ecg")], {DEV_B: polar})
    # No close: a killed process never closes, yet every commit it made is there.
    ob2 = Outbox(db_path)
    try:
        assert ob2.ecg_tail(DEV_A) == EcgTail(7, T, T + 5, 250.0)
        assert ob2.ecg_tail(DEV_B) == polar
    finally:
        ob2.close()
        ob.close()


def test_ecg_tail_is_rolled_back_with_a_failed_append(box: Outbox, monkeypatch: pytest.MonkeyPatch) -> None:
    original = Outbox._insert

    def insert_then_fail(self: Outbox, *args: object, **kwargs: object) -> object:
        original(self, *args, **kwargs)  # type: ignore[arg-type]
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(Outbox, "_insert", insert_then_fail)
    with pytest.raises(sqlite3.OperationalError):
        box.append_many([ecg()], {DEV_A: EcgTail(1, T, T, 250.0)})
    monkeypatch.undo()
    assert box.ecg_tail(DEV_A) is None and box.depth() == 0
    with closing(sqlite3.connect(box.path)) as db:
        assert db.execute("SELECT COUNT(*) FROM ecg_tail").fetchone() == (0,)


@pytest.mark.parametrize(("new", "moves"), [
    (EcgTail(11, T + 40, T + 90, 250.0), True),            # the next packet
    (EcgTail(9, T - 40, T - 10, 250.0), False),            # a stale write: earlier on both counts
    (EcgTail(10, T, T + 50, 250.0), False),                # the same packet again
    (EcgTail(0, T + 80, T + 130, 250.0), True),            # the wearable restarted its counter, not its clock
    (EcgTail(12, T - 3_600_000_000_000, T + 90, 250.0), True),  # its clock jumped back, the counter went on
])
def test_ecg_tail_only_moves_forward(box: Outbox, new: EcgTail, moves: bool) -> None:
    old = EcgTail(10, T, T + 50, 250.0)
    box.append_many([ecg()], {DEV_A: old})
    box.append_many([ecg()], {DEV_A: new})
    assert box.ecg_tail(DEV_A) == (new if moves else old)


def test_ecg_tail_follows_the_counter_through_its_wrap(box: Outbox) -> None:
    box.append_many([ecg()], {DEV_A: EcgTail(0xFFFFFFFF, T, T, 250.0)})
    box.append_many([ecg()], {DEV_A: EcgTail(0, T, T, 250.0)})  # same end (a zero-length packet), counter wrapped
    assert box.ecg_tail(DEV_A) == EcgTail(0, T, T, 250.0)


def test_a_database_from_before_ecg_tails_gains_the_table(db_path: Path) -> None:
    Outbox(db_path).close()
    with closing(sqlite3.connect(db_path)) as db:
        db.execute("DROP TABLE ecg_tail")
        db.commit()
    ob = Outbox(db_path)
    try:
        assert ob.ecg_tail(DEV_A) is None
        ob.append_many([ecg()], {DEV_A: EcgTail(3, T, T, 250.0)})
        assert ob.ecg_tail(DEV_A) == EcgTail(3, T, T, 250.0)
    finally:
        ob.close()
