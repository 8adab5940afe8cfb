"""Which records are already in Kafka: a per-(gateway, stream) next-expected sequence, shared
by every ingest replica through the cloud database.

The gateway sends each stream in sequence order and resends only what was not acked,
so "sequence < next expected" means "already written". A replica may write a stream
only while it holds the stream's claim, taken with a compare-and-set (no owner, or an
expired one). It produces to Kafka, waits for the broker's confirmation, then moves
``next_seq`` forward and drops the claim in one compare-and-set
(``WHERE claim_owner = me AND next_seq = expected``). So two replicas receiving the
same replay cannot both write it: the second waits, re-reads ``next_seq`` and acks
the records as duplicates. A claim expires after ``claim_ttl_s`` unless renewed, so a
replica that dies holding one blocks its streams only that long.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Collection, Mapping

from sqlalchemy import Connection, Engine, select, text, update

from cardiogate.cloud.db import ingest_ledger, insert_for

L = ingest_ledger.c


def _driver_sql(conn: Connection, sql: str) -> str:
    """``?`` placeholders in the database driver's style (sqlite3: ``?``, psycopg: ``%s``).

    The two statements every batch runs (claim, commit) go to the driver as plain SQL: built with
    SQLAlchemy's expression language they cost 0.5-1 ms of Python each (a CASE with a literal per
    stream is a new statement every time), the largest part of the ingest's CPU per batch."""
    return sql if conn.dialect.paramstyle == "qmark" else sql.replace("?", "%s")


def _marks(n: int) -> str:
    return ", ".join("?" * n)


def _soft_commit(conn: Connection) -> None:
    """Claims are soft state (they expire), so on PostgreSQL they need not wait for a disk flush."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SET LOCAL synchronous_commit = off"))


class SequenceLedger:
    def __init__(self, engine: Engine, claim_ttl_s: float, replica: str = "ingest") -> None:
        self._engine = engine
        self._ttl_ns = int(claim_ttl_s * 1e9)
        self._replica = replica

    def new_owner(self) -> str:
        """A claim owner unique to one batch of one replica."""
        return f"{self._replica}:{uuid.uuid4().hex[:16]}"

    def claim(self, gateway: str, streams: Collection[str], owner: str, now_ns: int | None = None) -> dict[str, int]:
        """Claim the streams that are free; returns their next expected sequence. All or nothing:
        if any stream is held by someone else, nothing stays claimed (no hold-and-wait)."""
        now = time.time_ns() if now_ns is None else now_ns
        wanted = set(streams)
        with self._engine.begin() as conn:
            _soft_commit(conn)
            got = {str(s): int(n) for s, n in conn.exec_driver_sql(_driver_sql(conn, (
                "UPDATE ingest_ledger SET claim_owner = ?, claim_expires_ns = ? "
                f"WHERE gateway = ? AND stream_id IN ({_marks(len(wanted))}) "
                "AND (claim_owner IS NULL OR claim_expires_ns < ?) RETURNING stream_id, next_seq")),
                (owner, now + self._ttl_ns, gateway, *wanted, now))}
            missing = wanted - got.keys()
            if missing:
                stmt = insert_for(conn, ingest_ledger).values(
                    [{"gateway": gateway, "stream_id": s, "next_seq": 0, "claim_owner": owner,
                      "claim_expires_ns": now + self._ttl_ns} for s in sorted(missing)])
                got.update({str(s): 0 for s in conn.execute(stmt.on_conflict_do_nothing().returning(L.stream_id))
                            .scalars()})
            if len(got) == len(wanted):
                return got
            if got:
                conn.execute(update(ingest_ledger)
                             .where(L.gateway == gateway, L.stream_id.in_(got.keys()), L.claim_owner == owner)
                             .values(claim_owner=None, claim_expires_ns=0))
        return {}

    def renew(self, gateway: str, streams: Collection[str], owner: str, now_ns: int | None = None) -> int:
        """Extend our claims while Kafka is slow; returns how many are still ours."""
        now = time.time_ns() if now_ns is None else now_ns
        with self._engine.begin() as conn:
            _soft_commit(conn)
            return conn.execute(update(ingest_ledger)
                                .where(L.gateway == gateway, L.stream_id.in_(list(streams)), L.claim_owner == owner)
                                .values(claim_expires_ns=now + self._ttl_ns)).rowcount

    def commit(self, gateway: str, owner: str, expected: Mapping[str, int], advance_to: Mapping[str, int]) -> list[str]:
        """Release our claims, moving each stream to ``advance_to`` (or leaving it at ``expected``),
        in one statement: ``WHERE claim_owner = me AND next_seq = expected``. Returns the streams
        whose claim had been lost to another replica (nothing changed for those)."""
        if not expected:
            return []
        new = [(s, max(first, advance_to.get(s, first))) for s, first in expected.items()]
        whens = " ".join(["WHEN ? THEN ?"] * len(expected))
        with self._engine.begin() as conn:
            done = {str(s) for s, in conn.exec_driver_sql(_driver_sql(conn, (
                f"UPDATE ingest_ledger SET next_seq = CASE stream_id {whens} END, claim_owner = NULL, "
                f"claim_expires_ns = 0 WHERE gateway = ? AND claim_owner = ? "
                f"AND stream_id IN ({_marks(len(expected))}) AND next_seq = CASE stream_id {whens} END "
                "RETURNING stream_id")),
                (*[x for pair in new for x in pair], gateway, owner, *expected,
                 *[x for pair in expected.items() for x in pair]))}
        return [s for s in expected if s not in done]

    def next_expected(self, gateway: str, stream_id: str) -> int:
        with self._engine.connect() as conn:
            value = conn.execute(select(L.next_seq).where(L.gateway == gateway, L.stream_id == stream_id)).scalar()
        return int(value) if value is not None else 0
