"""Which records are already in Kafka: a per-(gateway, stream) next-expected sequence.

The gateway sends each stream in sequence order and resends only what was not acked,
so "sequence < next expected" means "already written". The table lives in the cloud
database and survives ingest restarts.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path


class SequenceLedger:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("CREATE TABLE IF NOT EXISTS ingest_ledger (gateway TEXT NOT NULL, stream_id TEXT NOT NULL, "
                         "next_seq INTEGER NOT NULL, PRIMARY KEY (gateway, stream_id))")
        self._cache: dict[tuple[str, str], int] = {}

    def next_expected(self, gateway: str, stream_id: str) -> int:
        key = (gateway, stream_id)
        if key not in self._cache:
            row = self._db.execute("SELECT next_seq FROM ingest_ledger WHERE gateway = ? AND stream_id = ?",
                                   key).fetchone()
            self._cache[key] = int(row[0]) if row else 0
        return self._cache[key]

    def advance(self, gateway: str, updates: dict[str, int]) -> None:
        """Record that every sequence below ``updates[stream]`` is written (one transaction)."""
        if not updates:
            return
        self._db.execute("BEGIN IMMEDIATE")
        for stream_id, next_seq in updates.items():
            self._db.execute("INSERT INTO ingest_ledger (gateway, stream_id, next_seq) VALUES (?, ?, ?) "
                             "ON CONFLICT (gateway, stream_id) DO UPDATE SET next_seq = "
                             "MAX(next_seq, excluded.next_seq)", (gateway, stream_id, next_seq))
        self._db.execute("COMMIT")
        for stream_id, next_seq in updates.items():
            key = (gateway, stream_id)
            self._cache[key] = max(self._cache.get(key, 0), next_seq)

    def close(self) -> None:
        self._db.close()
