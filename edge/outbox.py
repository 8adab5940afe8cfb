"""The durable outbox: every record is on disk before anything else happens to it.

SQLite in WAL mode. Appending assigns the record its stream sequence number in the
same transaction, so numbers never repeat, even after a crash. Rows leave only when
the cloud acks their sequence range. With ``synchronous=NORMAL`` a committed record
survives a killed process; the last transactions before a power cut may be lost
(``synchronous=FULL`` closes that window at a throughput cost).
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from proto.cardiogate.v1 import telemetry_pb2 as pb

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  stream_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  kind INTEGER NOT NULL,
  created_ns INTEGER NOT NULL,
  payload BLOB NOT NULL,
  UNIQUE (stream_id, seq)
);
CREATE TABLE IF NOT EXISTS stream_seq (stream_id TEXT PRIMARY KEY, next_seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS rejected (
  id INTEGER PRIMARY KEY, stream_id TEXT NOT NULL, seq INTEGER NOT NULL,
  reason TEXT NOT NULL, payload BLOB NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class PendingRecord:
    row_id: int
    stream_id: str
    seq: int
    payload: bytes


class Outbox:
    """A single-writer SQLite queue of serialized :class:`Record` messages."""

    def __init__(self, path: Path, synchronous: str = "NORMAL") -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={synchronous}")
        self._db.executescript(_SCHEMA)
        self.appended = 0
        self.acked = 0

    def close(self) -> None:
        self._db.close()

    def append(self, record: pb.Record) -> int:
        """Number the record within its stream, store it, return its sequence."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            row = db.execute("SELECT next_seq FROM stream_seq WHERE stream_id = ?", (record.stream_id,)).fetchone()
            seq = int(row[0]) if row else 0
            record.sequence = seq
            db.execute("INSERT INTO outbox (stream_id, seq, kind, created_ns, payload) VALUES (?, ?, ?, ?, ?)",
                       (record.stream_id, seq, int(record.kind), time.time_ns(), record.SerializeToString()))
            db.execute("INSERT INTO stream_seq (stream_id, next_seq) VALUES (?, ?) "
                       "ON CONFLICT (stream_id) DO UPDATE SET next_seq = excluded.next_seq",
                       (record.stream_id, seq + 1))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self.appended += 1
        return seq

    def pending(self, after_row: int, limit: int) -> list[PendingRecord]:
        """Unacked records with row id > ``after_row``, oldest first (so each stream stays in order)."""
        rows = self._db.execute(
            "SELECT id, stream_id, seq, payload FROM outbox WHERE id > ? ORDER BY id LIMIT ?", (after_row, limit)
        ).fetchall()
        return [PendingRecord(int(r[0]), str(r[1]), int(r[2]), bytes(r[3])) for r in rows]

    def ack(self, stream_id: str, first: int, last: int) -> int:
        """Remove an acked inclusive range of one stream; returns how many rows left."""
        cur = self._db.execute("DELETE FROM outbox WHERE stream_id = ? AND seq BETWEEN ? AND ?",
                               (stream_id, first, last))
        self.acked += cur.rowcount
        return cur.rowcount

    def reject(self, rows: list[PendingRecord], reason: str) -> None:
        """Move records the cloud refused as invalid aside, kept for inspection rather than lost."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        for r in rows:
            db.execute("INSERT OR REPLACE INTO rejected (id, stream_id, seq, reason, payload) VALUES (?, ?, ?, ?, ?)",
                       (r.row_id, r.stream_id, r.seq, reason, r.payload))
            db.execute("DELETE FROM outbox WHERE id = ?", (r.row_id,))
        db.execute("COMMIT")

    def depth(self) -> int:
        """Records waiting for an ack."""
        return int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])

    def oldest_age_s(self) -> float:
        """Age of the oldest unacked record, 0 when empty."""
        row = self._db.execute("SELECT MIN(created_ns) FROM outbox").fetchone()
        return 0.0 if row[0] is None else max(0.0, (time.time_ns() - int(row[0])) / 1e9)
