"""kill -9 at random moments, twenty times over one outbox: no corruption, no committed record lost.

A writer process (tests/integration/outbox_crash_writer.py) appends records of every
lane, acks some, pins some as sent, and evicts raw ECG under a small disk budget. It is
SIGKILLed at a random moment (every other run writes through the outbox's writer thread,
as the gateway does, and counts an append committed when its future says so), the outbox
is reopened (SQLite's WAL recovery) and checked: ``PRAGMA integrity_check`` passes; every
record the writer was told is committed is still there, or was acked, or was evicted with
a gap record; every stream's sequence numbers 0..next-1 are each accounted for exactly
once; payloads match their rows; the in-memory gauges equal a recount. Power-cut
durability (fsync semantics) cannot be tested here; docs/outbox.md says what the
settings guarantee.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest

from cardiogate.edge.outbox import ROW_OVERHEAD_BYTES, Lane, Outbox, lane_of
from cardiogate.proto.v1 import telemetry_pb2 as pb
from tests.conftest import REPO

pytestmark = pytest.mark.timeout(240)

KILLS = 20
MAX_BYTES = 150_000


def parse_log(text: str) -> tuple[set[tuple[str, int]], dict[str, set[int]]]:
    committed: set[tuple[str, int]] = set()
    acked: dict[str, set[int]] = {}
    for line in text.split("\n")[:-1]:  # a line cut by the kill has no newline: it was never fully written
        parts = line.split()
        if parts[0] == "C":
            committed.add((parts[1], int(parts[2])))
        elif parts[0] == "A":
            acked.setdefault(parts[1], set()).update(range(int(parts[2]), int(parts[3]) + 1))
    return committed, acked


def check(db: Path, log_text: str) -> dict[str, int]:
    committed, acked = parse_log(log_text)
    box = Outbox(db, max_bytes=MAX_BYTES)  # reopening runs SQLite's recovery
    try:
        assert box.integrity_check() == []
        gauges = [(box.lane_depth(lane), box.lane_bytes(lane)) for lane in Lane]
        next_seq = {s: box.next_seq(s) for s in box.streams_behind({})}
    finally:
        box.close()
    with closing(sqlite3.connect(str(db))) as side:
        assert side.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = side.execute("SELECT stream_id, seq, lane, size, payload FROM outbox").fetchall()
        ledger = side.execute("SELECT stream_id, first_seq, last_seq, gap_stream_id, gap_seq FROM evicted").fetchall()
        next_seq = dict(side.execute("SELECT stream_id, next_seq FROM stream_seq").fetchall())
    present: set[tuple[str, int]] = set()
    recount = [[0, 0] for _ in Lane]
    for stream_id, seq, lane, size, payload in rows:
        record = pb.Record.FromString(payload)
        assert (record.stream_id, record.sequence) == (stream_id, seq)
        assert lane == lane_of(record.kind) and size == len(payload) + ROW_OVERHEAD_BYTES
        present.add((stream_id, seq))
        recount[lane][0] += 1
        recount[lane][1] += size
    assert gauges == [tuple(c) for c in recount]
    evicted: set[tuple[str, int]] = set()
    for stream_id, first, last, gap_stream, gap_seq in ledger:
        assert stream_id.endswith("/ecg")  # only raw ECG is ever evicted
        evicted |= {(stream_id, q) for q in range(first, last + 1)}
        assert (gap_stream, gap_seq) in present or gap_seq in acked.get(gap_stream, set()), "gap record missing"
    assert not present & evicted

    def accounted(key: tuple[str, int]) -> bool:
        return key in present or key in evicted or key[1] in acked.get(key[0], set())

    lost = [k for k in committed if not accounted(k)]
    assert not lost, f"committed records missing after kill -9: {sorted(lost)[:10]}"
    for stream_id, n in next_seq.items():
        holes = [q for q in range(n) if not accounted((stream_id, q))]
        assert not holes, f"{stream_id}: sequence numbers unaccounted for: {holes[:10]}"
    for stream_id, seq in committed:
        assert seq < next_seq[stream_id], "a committed sequence number could be handed out again"
    return {"present": len(present), "evicted": len(evicted), "committed": len(committed)}


def test_kill_minus_nine_at_random_moments_never_corrupts_or_loses_committed_records(tmp_path: Path) -> None:
    db = tmp_path / "outbox.sqlite3"
    rng = random.Random(20240611)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    history = ""
    for kill in range(KILLS):
        log_path = tmp_path / f"writer-{kill}.log"
        proc = subprocess.Popen([sys.executable, "-m", "tests.integration.outbox_crash_writer", str(db),
                                 str(log_path), str(kill), str(MAX_BYTES), *(["thread"] if kill % 2 else [])],
                                cwd=REPO, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 30
            while not (log_path.exists() and log_path.read_bytes().startswith(b"R\n")):
                assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else "writer died"
                assert time.monotonic() < deadline, "writer never became ready"
                time.sleep(0.01)
            time.sleep(rng.uniform(0.02, 0.6))  # then kill it wherever it is: mid-commit, mid-checkpoint, ...
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else "writer died"
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        text = log_path.read_text()
        history += "".join(line + "\n" for line in text.split("\n")[:-1] if line != "R")
        stats = check(db, history)
    assert stats["committed"] > 1000
    assert stats["evicted"] > 0  # the budget was exercised
