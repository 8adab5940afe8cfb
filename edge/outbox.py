"""The durable outbox: every record is on disk, in its priority lane, before anything else happens to it.

SQLite in WAL mode, one writer. Appending numbers the record within its stream in the
same transaction as the insert, so numbers never repeat, even after a crash. A row
leaves only when the cloud acks it, when the cloud rejects it (moved aside, kept), or,
for raw ECG only, when the disk budget forces an eviction: the eviction commits in one
transaction with the exact gap record that tells the cloud what is missing and with a
local ledger of the evicted sequence range. Nothing leaves silently.

Beside the records, ``ecg_tail`` keeps how far each device's ECG stream is accounted for
(the last packet stored in a block or reported by a gap), written in the transaction that
stores those records, so after a killed process the tail and the queue agree and a
restarted gateway can report exactly what it missed, no more and no less.

Durability follows the lane (docs/outbox.md): alarms, vitals and device events commit
with ``synchronous=FULL`` (the WAL is fsynced before the commit returns); raw ECG with
``NORMAL`` plus a group commit that fsyncs at most ``group_commit_s`` later. Every
commit survives a killed process; a power cut can only take raw ECG that was never sent.

Threads: the gateway writes only through :class:`~cardiogate.edge.outbox_writer.OutboxWriter`
(``Outbox.writer``), a thread that owns the write connection and batches queued writes into
one transaction, so the event loop never waits for a commit or an fsync. Reads (what to send,
payloads, tails, gauges) use a second connection: in WAL mode they see every committed row and
never wait for a writer. The in-memory sequence and lane state is guarded by its own short lock,
never held across a commit.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import TYPE_CHECKING, Literal, NamedTuple, Protocol

from cardiogate.core.ids import InvalidStreamId, StreamId
from cardiogate.core.logs import get_logger
from cardiogate.edge.ecg_assembler import EcgTail
from cardiogate.edge.outbox_writer import OutboxWriter
from cardiogate.proto.contracts import stream_id_for, stream_kind
from cardiogate.proto.v1 import telemetry_pb2 as pb

if TYPE_CHECKING:
    from cardiogate.edge.settings import OutboxSettings

log = get_logger(__name__)

Synchronous = Literal["OFF", "NORMAL", "FULL", "EXTRA"]
_SYNC_RANK: dict[Synchronous, int] = {"OFF": 0, "NORMAL": 1, "FULL": 2, "EXTRA": 3}
ROW_OVERHEAD_BYTES = 96
"""Budget charge per row beyond its payload: row header, stream id, the two index entries (estimated)."""
_DEVICE_SEQ_MOD = 1 << 32
_EVICT_CHUNK_BYTES = 4 * 1024 * 1024  # payloads parsed per eviction transaction, bounding memory on a Pi


class Lane(IntEnum):
    """Priority of a record, for sending and for keeping; lower is more important."""

    ALARMS = 0
    VITALS = 1     # vitals, scores and device events (gaps, clock jumps, link, health)
    FEATURES = 2   # derived ECG features, and any kind this build does not know
    RAW = 3        # raw ECG waveform: the only lane the disk budget may evict


_LANE_OF_KIND: dict[int, Lane] = {pb.STREAM_KIND_ALARMS: Lane.ALARMS, pb.STREAM_KIND_VITALS: Lane.VITALS,
                                  pb.STREAM_KIND_EVENTS: Lane.VITALS, pb.STREAM_KIND_ECG: Lane.RAW}
DEFAULT_SYNC: Mapping[Lane, Synchronous] = {Lane.ALARMS: "FULL", Lane.VITALS: "FULL", Lane.FEATURES: "NORMAL",
                                            Lane.RAW: "NORMAL"}


_LANES = tuple(Lane)


def lane_of(kind: int) -> Lane:
    """The lane of a :class:`StreamKind`; unknown kinds ride above raw ECG, so they are never evicted."""
    return _LANE_OF_KIND.get(kind, Lane.FEATURES)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  stream_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  kind INTEGER NOT NULL,
  created_ns INTEGER NOT NULL,
  payload BLOB NOT NULL,
  lane INTEGER NOT NULL DEFAULT 3,
  size INTEGER NOT NULL DEFAULT 0,
  UNIQUE (stream_id, seq)
);
CREATE TABLE IF NOT EXISTS stream_seq (
  stream_id TEXT PRIMARY KEY, next_seq INTEGER NOT NULL,
  lane INTEGER NOT NULL DEFAULT 3, sent_seq INTEGER NOT NULL DEFAULT -1
);
CREATE TABLE IF NOT EXISTS rejected (
  id INTEGER PRIMARY KEY, stream_id TEXT NOT NULL, seq INTEGER NOT NULL,
  reason TEXT NOT NULL, payload BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS evicted (
  id INTEGER PRIMARY KEY AUTOINCREMENT, stream_id TEXT NOT NULL, first_seq INTEGER NOT NULL,
  last_seq INTEGER NOT NULL, records INTEGER NOT NULL, samples INTEGER NOT NULL,
  gap_stream_id TEXT NOT NULL, gap_seq INTEGER NOT NULL, evicted_ns INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS ecg_tail (
  device_id TEXT PRIMARY KEY, seq INTEGER, end_ns INTEGER NOT NULL, receive_ns INTEGER NOT NULL,
  sample_rate_hz REAL NOT NULL
);
"""
# A stored tail moves only forward: later in device time, or a later packet on the wearable's counter
# (modulo its wrap). A device restart resets the counter but not its clock; a stale write fails both.
_TAIL_UPSERT = f"""
INSERT INTO ecg_tail (device_id, seq, end_ns, receive_ns, sample_rate_hz) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (device_id) DO UPDATE SET seq = excluded.seq, end_ns = excluded.end_ns,
  receive_ns = excluded.receive_ns, sample_rate_hz = excluded.sample_rate_hz
WHERE excluded.end_ns > ecg_tail.end_ns
  OR ((excluded.seq - ecg_tail.seq + {_DEVICE_SEQ_MOD}) % {_DEVICE_SEQ_MOD}) BETWEEN 1 AND {_DEVICE_SEQ_MOD // 2 - 1}
"""
# Databases written before lanes existed lack these columns; values are derived from what is there.
_MIGRATIONS = {
    "outbox": [("lane", "INTEGER NOT NULL DEFAULT 3"), ("size", "INTEGER NOT NULL DEFAULT 0")],
    "stream_seq": [("lane", "INTEGER NOT NULL DEFAULT 3"), ("sent_seq", "INTEGER NOT NULL DEFAULT -1")],
}
_LANE_SQL = (f"CASE kind WHEN {pb.STREAM_KIND_ALARMS} THEN 0 WHEN {pb.STREAM_KIND_VITALS} THEN 1 "
             f"WHEN {pb.STREAM_KIND_EVENTS} THEN 1 WHEN {pb.STREAM_KIND_ECG} THEN 3 ELSE 2 END")


def stream_lane(stream_id: str) -> Lane:
    """The lane of a stream, from its id (for rows written before lanes were stored)."""
    try:
        return lane_of(stream_kind(StreamId.parse(stream_id)))
    except InvalidStreamId:
        return Lane.FEATURES


@dataclass(frozen=True, slots=True)
class PendingRecord:
    row_id: int
    stream_id: str
    seq: int
    payload: bytes


class Unsent(NamedTuple):
    """What the uplink's scheduler needs to know about a queued record, without its payload.

    A named tuple rather than a frozen dataclass: the uplink reads thousands per second and a
    tuple is built several times faster."""

    row_id: int
    stream_id: str
    seq: int
    lane: Lane
    nbytes: int        # serialized record size
    created_ns: int    # gateway wall clock when it was appended


class RowRef(Protocol):
    @property
    def row_id(self) -> int: ...


@dataclass(frozen=True, slots=True)
class LaneStats:
    records: int
    bytes: int
    oldest_age_s: float


@dataclass(frozen=True, slots=True)
class OutboxMetrics:
    """A snapshot of the outbox's gauges and counters (bytes are budget bytes: payload + row overhead)."""

    lanes: Mapping[str, LaneStats]
    records: int
    bytes: int
    max_bytes: int | None
    fill_ratio: float
    full: bool
    full_events: int
    appended: int
    acked: int
    rejected: int
    evicted_records: int
    evicted_samples: int
    eviction_gaps: int
    synced_commits: int
    file_bytes: int


# -- pure core: which gaps an eviction must report -------------------------------------------------


@dataclass(frozen=True, slots=True)
class EvictedBlock:
    """One raw ECG record chosen for eviction, reduced to what its gap record needs."""

    stream_id: str
    seq: int
    device_id: str
    patient: str
    device_sequence_first: int
    device_sequence_last: int
    first_sample_ns: int
    sample_count: int
    sample_rate_hz: float

    @classmethod
    def of(cls, record: pb.Record) -> EvictedBlock:
        b = record.samples
        return cls(record.stream_id, record.sequence, record.device_id, record.patient, b.device_sequence_first,
                   b.device_sequence_last, b.first_sample_device_time_ns, b.sample_count, b.sample_rate_hz)

    @property
    def end_ns(self) -> int:
        """Device time of the first sample after this block."""
        if self.sample_rate_hz <= 0:
            return self.first_sample_ns
        return self.first_sample_ns + round(self.sample_count * 1e9 / self.sample_rate_hz)


@dataclass(frozen=True, slots=True)
class EvictionRun:
    """Evicted blocks of one stream that were contiguous on the device, reported by one gap."""

    stream_id: str
    device_id: str
    patient: str
    first_seq: int
    last_seq: int
    records: int
    gap: pb.Gap


def _continues(a: EvictedBlock, b: EvictedBlock) -> bool:
    if b.seq != a.seq + 1 or b.sample_rate_hz != a.sample_rate_hz or b.patient != a.patient:
        return False
    half_period = 0.5e9 / a.sample_rate_hz if a.sample_rate_hz > 0 else 0.0
    if abs(b.first_sample_ns - a.end_ns) > half_period:
        return False
    no_counter = a.device_sequence_first == a.device_sequence_last == b.device_sequence_first == \
        b.device_sequence_last == 0  # a wearable without packet counters (Polar)
    return no_counter or b.device_sequence_first == (a.device_sequence_last + 1) % _DEVICE_SEQ_MOD


def _run(blocks: list[EvictedBlock]) -> EvictionRun:
    first, last = blocks[0], blocks[-1]
    gap = pb.Gap(stream=pb.STREAM_KIND_ECG, device_sequence_first=first.device_sequence_first,
                 device_sequence_last=last.device_sequence_last, start_device_time_ns=first.first_sample_ns,
                 end_device_time_ns=last.end_ns, missing_samples=sum(b.sample_count for b in blocks),
                 cause=pb.GAP_CAUSE_EVICTED, sample_rate_hz=first.sample_rate_hz)
    return EvictionRun(first.stream_id, first.device_id, first.patient, first.seq, last.seq, len(blocks), gap)


def eviction_runs(blocks: Iterable[EvictedBlock]) -> list[EvictionRun]:
    """Group evicted blocks into runs that one exact gap can describe.

    A run ends where the stream's record sequence, the device's packet counter or its
    time base is discontinuous: a gap spanning an earlier link-loss gap would count
    samples that were never produced, so it is split there instead.
    """
    by_stream: dict[str, list[EvictedBlock]] = {}
    for b in blocks:
        by_stream.setdefault(b.stream_id, []).append(b)
    runs: list[EvictionRun] = []
    for stream_blocks in by_stream.values():
        stream_blocks.sort(key=lambda b: b.seq)
        current = [stream_blocks[0]]
        for b in stream_blocks[1:]:
            if _continues(current[-1], b):
                current.append(b)
            else:
                runs.append(_run(current))
                current = [b]
        runs.append(_run(current))
    return runs


def gap_record(run: EvictionRun, now_ns: int) -> pb.Record:
    """The record on the device's events stream that tells the cloud exactly what was evicted."""
    event = pb.DeviceEvent(device_time_ns=run.gap.start_device_time_ns, receive_time_ns=now_ns, gap=run.gap)
    return pb.Record(stream_id=str(stream_id_for(run.device_id, pb.STREAM_KIND_EVENTS)), device_id=run.device_id,
                     patient=run.patient, kind=pb.STREAM_KIND_EVENTS, event=event)


# -- the shell ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Row:
    stream_id: str
    seq: int
    lane: Lane
    size: int


@dataclass(frozen=True, slots=True)
class _Victim:
    row_id: int
    size: int
    record: pb.Record


EvictedCallback = Callable[[str, str, int], None]
FullCallback = Callable[[bool], None]


class Outbox:
    """A single-writer SQLite queue of serialized :class:`Record` messages in priority lanes."""

    def __init__(self, path: Path, *, max_bytes: int | None = None, evict_headroom: float = 0.05,
                 group_commit_s: float | None = 1.0, sync: Mapping[Lane, Synchronous] | None = None,
                 on_evicted: EvictedCallback | None = None, on_full: FullCallback | None = None,
                 monotonic: Callable[[], float] = time.monotonic, commit_linger_s: float = 0.0) -> None:
        """``max_bytes`` None means no budget; ``group_commit_s`` None never upgrades a lane's commits
        to FULL (benchmarks only), 0 upgrades every one; ``commit_linger_s`` is the writer thread's
        (OutboxWriter); ``on_evicted(device_id, patient, samples)``
        fires once per gap; ``on_full(True/False)`` when the budget is exceeded with nothing evictable,
        and when that ends."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._max_bytes = max_bytes
        self._headroom = evict_headroom
        self._group_commit_s = group_commit_s
        self._sync = {**DEFAULT_SYNC, **(sync or {})}
        self._on_evicted = on_evicted
        self._on_full = on_full
        self._monotonic = monotonic
        self._lock = threading.RLock()       # the write connection, one transaction at a time
        self._state_lock = threading.Lock()  # sequence/lane/pin state in memory; never held across a commit
        self._read_lock = threading.Lock()   # the read connection
        self._commit_hook: Callable[[], None] | None = None
        self._pending_tails: dict[str, EcgTail] = {}
        self.full = False
        self.full_events = 0
        self.appended = 0
        self.appended_by_lane = [0] * len(Lane)
        self.acked = 0
        self.rejected = 0
        self.evicted_records = 0
        self.evicted_samples = 0
        self.eviction_gaps = 0
        self.synced_commits = 0
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA journal_size_limit=16777216")  # the WAL shrinks back after a burst
        self._sync_now: Synchronous = "FULL"
        self._db.execute("PRAGMA synchronous=FULL")
        self._unsynced_since: float | None = None
        self._db.executescript(_SCHEMA)
        self._migrate()
        self._db.execute("CREATE INDEX IF NOT EXISTS outbox_lane ON outbox (lane, id)")
        self._next_seq: dict[str, int] = {}
        self._sent_seq: dict[str, int] = {}
        self._stream_lane: dict[str, Lane] = {}
        for stream_id, next_seq, lane, sent_seq in self._db.execute(
                "SELECT stream_id, next_seq, lane, sent_seq FROM stream_seq"):
            self._next_seq[stream_id] = int(next_seq)
            self._stream_lane[stream_id] = Lane(lane)
            self._sent_seq[stream_id] = int(sent_seq)
        self._lane_records = [0] * len(Lane)
        self._lane_bytes = [0] * len(Lane)
        for lane, n, size in self._db.execute("SELECT lane, COUNT(*), SUM(size) FROM outbox GROUP BY lane"):
            self._lane_records[lane] = int(n)
            self._lane_bytes[lane] = int(size)
        self._reader = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._reader.execute("PRAGMA query_only=1")
        self._reader.execute("PRAGMA busy_timeout=2000")
        self.writer = OutboxWriter(self, linger_s=commit_linger_s)
        self._enforce_budget()

    @classmethod
    def from_settings(cls, settings: OutboxSettings, *, on_evicted: EvictedCallback | None = None,
                      on_full: FullCallback | None = None) -> Outbox:
        return cls(settings.path, max_bytes=settings.max_bytes, evict_headroom=settings.evict_headroom,
                   group_commit_s=settings.group_commit_s, on_evicted=on_evicted, on_full=on_full,
                   commit_linger_s=settings.commit_linger_s)

    def _migrate(self) -> None:
        for table, columns in _MIGRATIONS.items():
            have = {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}
            missing = [(name, decl) for name, decl in columns if name not in have]
            if not missing:
                continue
            with self._transaction("FULL") as db:
                for name, decl in missing:
                    db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {decl}")
                if table == "outbox":
                    db.execute(f"UPDATE outbox SET lane = {_LANE_SQL}, size = length(payload) + ?",
                               (ROW_OVERHEAD_BYTES,))
                else:
                    streams = [str(row[0]) for row in db.execute("SELECT stream_id FROM stream_seq")]
                    db.executemany("UPDATE stream_seq SET lane = ? WHERE stream_id = ?",
                                   [(int(stream_lane(sid)), sid) for sid in streams])
            log.info("outbox schema migrated", table=table, added=[n for n, _ in missing])

    def close(self) -> None:
        """Commit what the writer still holds, fsync whatever is still unsynced, then close."""
        self.writer.stop()
        with self._lock:
            with suppress(sqlite3.Error):
                self.sync()
            self._db.close()
        with self._read_lock:
            self._reader.close()

    # -- transactions and durability

    @contextmanager
    def _transaction(self, sync: Synchronous) -> Iterator[sqlite3.Connection]:
        db = self._db
        now = self._monotonic()
        if _SYNC_RANK[sync] < _SYNC_RANK["FULL"] and self._group_commit_s is not None and (
                self._group_commit_s <= 0
                or (self._unsynced_since is not None and now - self._unsynced_since >= self._group_commit_s)):
            sync = "FULL"  # group commit: this fsync also makes every earlier NORMAL commit durable
        if sync != self._sync_now:
            db.execute(f"PRAGMA synchronous={sync}")
            self._sync_now = sync
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
            if self._commit_hook is not None:
                self._commit_hook()
            db.execute("COMMIT")
        except BaseException:
            with suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            raise
        if _SYNC_RANK[sync] >= _SYNC_RANK["FULL"]:
            self._unsynced_since = None
            self.synced_commits += 1
        elif self._unsynced_since is None:
            self._unsynced_since = now

    @property
    def unsynced(self) -> bool:
        """Whether some commit is not yet fsynced (it survives a killed process, not a power cut)."""
        return self._unsynced_since is not None

    def sync(self) -> None:
        """Make every commit so far durable with one FULL commit (in WAL mode it fsyncs the whole log)."""
        with self._lock:
            if self._unsynced_since is None:
                return
            with self._transaction("FULL") as db:
                db.execute("INSERT INTO meta (key, value) VALUES ('synced_ns', ?) "
                           "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (time.time_ns(),))

    def sync_if_due(self) -> None:
        """The group commit's timer, for when no append comes along to carry it (the writer thread
        keeps this timer itself while it runs, so then this is a no-op and never commits inline)."""
        if not self.writer.running:
            self.group_commit_tick()

    def group_commit_tick(self) -> None:
        """Fsync now if the group commit is due (the writer thread's timer, or :meth:`sync_if_due`)."""
        if self._unsynced_since is not None and self._group_commit_s is not None and \
                self._monotonic() - self._unsynced_since >= self._group_commit_s:
            self.sync()

    def set_commit_hook(self, hook: Callable[[], None] | None) -> None:
        """Run ``hook`` inside every transaction just before its COMMIT (the writer's slow-disk test hook)."""
        self._commit_hook = hook

    def sync_due_in(self) -> float | None:
        """Seconds until the group commit must fsync (0 if overdue), None when nothing is unsynced."""
        since, period = self._unsynced_since, self._group_commit_s
        if since is None or period is None:
            return None
        return max(0.0, since + period - self._monotonic())

    # -- writing

    def append(self, record: pb.Record) -> int:
        """Number the record within its stream, store it, return its sequence."""
        return self.append_many([record])[0]

    def append_many(self, records: Sequence[pb.Record], ecg_tails: Mapping[str, EcgTail] | None = None) -> list[int]:
        """Append several records in one transaction (one fsync), at the strictest durability among them.

        ``ecg_tails`` (device id to how far these records account for its ECG stream) commit in the
        same transaction, so a stored tail never runs ahead of or behind the stored blocks and gaps.
        """
        if not records:
            return []
        with self._lock:
            lanes = [lane_of(r.kind) for r in records]
            sync = max((self._sync[lane] for lane in lanes), key=_SYNC_RANK.__getitem__)
            with self._transaction(sync) as db:
                rows = self._insert(db, records, lanes, time.time_ns())
                if ecg_tails:
                    db.executemany(_TAIL_UPSERT, [(device, t.seq, t.end_ns, t.receive_ns, t.sample_rate_hz)
                                                  for device, t in ecg_tails.items()])
            self._added(rows)
            if ecg_tails:
                self._tails_stored(ecg_tails)
            self._enforce_budget()
            return [r.seq for r in rows]

    def _insert(self, db: sqlite3.Connection, records: Sequence[pb.Record], lanes: Sequence[Lane],
                now_ns: int) -> list[_Row]:
        """Insert within the caller's transaction; memory is updated by :meth:`_added` after the commit."""
        next_seq: dict[str, int] = {}
        stream_lane: dict[str, Lane] = {}
        rows: list[_Row] = []
        values = []
        for r, lane in zip(records, lanes, strict=True):
            seq = next_seq.get(r.stream_id, self._next_seq.get(r.stream_id, 0))
            r.sequence = seq
            payload = r.SerializeToString()
            size = len(payload) + ROW_OVERHEAD_BYTES
            values.append((r.stream_id, seq, int(r.kind), int(lane), size, now_ns, payload))
            rows.append(_Row(r.stream_id, seq, lane, size))
            next_seq[r.stream_id] = seq + 1
            stream_lane[r.stream_id] = lane
        db.executemany("INSERT INTO outbox (stream_id, seq, kind, lane, size, created_ns, payload) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?)", values)
        db.executemany("INSERT INTO stream_seq (stream_id, next_seq, lane) VALUES (?, ?, ?) "
                       "ON CONFLICT (stream_id) DO UPDATE SET next_seq = excluded.next_seq, lane = excluded.lane",
                       [(s, n, int(stream_lane[s])) for s, n in next_seq.items()])
        return rows

    def _added(self, rows: Sequence[_Row]) -> None:
        with self._state_lock:
            for r in rows:
                self._next_seq[r.stream_id] = r.seq + 1
                self._stream_lane[r.stream_id] = r.lane
                self._lane_records[r.lane] += 1
                self._lane_bytes[r.lane] += r.size
                self.appended_by_lane[r.lane] += 1
            self.appended += len(rows)

    def _removed(self, rows: Iterable[tuple[int, int]]) -> int:
        n = 0
        with self._state_lock:
            for lane, size in rows:
                self._lane_records[lane] -= 1
                self._lane_bytes[lane] -= size
                n += 1
        return n

    def _tails_stored(self, tails: Mapping[str, EcgTail]) -> None:
        """Tails the writer held are now on disk: reads fall back to the table."""
        with self._state_lock:
            for device, tail in tails.items():
                if self._pending_tails.get(device) is tail:
                    del self._pending_tails[device]

    def tails_queued(self, tails: Mapping[str, EcgTail]) -> None:
        """The writer accepted these tails: :meth:`ecg_tail` reports them before their commit."""
        with self._state_lock:
            self._pending_tails.update(tails)

    def ack(self, stream_id: str, first: int, last: int) -> int:
        """Remove an acked inclusive range of one stream; returns how many rows left."""
        return self.ack_many([(stream_id, first, last)])

    def ack_many(self, ranges: Iterable[tuple[str, int, int]]) -> int:
        """Remove acked inclusive ranges in one transaction; returns how many rows left."""
        return sum(self.ack_ranges(list(ranges)))

    def ack_ranges(self, ranges: Sequence[tuple[str, int, int]]) -> list[int]:
        """Remove acked inclusive ranges, one DELETE per stream range, all in one transaction; rows
        removed per range. The budget is settled from one aggregate per range (a stream's rows
        share a lane) rather than from a row returned per deleted record."""
        with self._lock:
            counts: list[int] = []
            gone: list[tuple[int, int, int]] = []  # lane, rows, bytes
            with self._transaction("NORMAL") as db:  # a lost ack only means a resend the cloud drops
                for stream_id, first, last in ranges:
                    lanes = db.execute("SELECT lane, COUNT(*), TOTAL(size) FROM outbox WHERE stream_id = ? "
                                       "AND seq BETWEEN ? AND ? GROUP BY lane", (stream_id, first, last)).fetchall()
                    if lanes:
                        db.execute("DELETE FROM outbox WHERE stream_id = ? AND seq BETWEEN ? AND ?",
                                   (stream_id, first, last))
                        gone += [(int(lane), int(n), int(size)) for lane, n, size in lanes]
                    counts.append(sum(int(n) for _, n, _ in lanes))
            with self._state_lock:
                for lane, n, size in gone:
                    self._lane_records[lane] -= n
                    self._lane_bytes[lane] -= size
            self.acked += sum(counts)
            self._update_full()
            return counts

    def reject(self, rows: Iterable[RowRef], reason: str) -> None:
        """Move records the cloud refused as invalid aside, kept for inspection rather than lost."""
        with self._lock:
            gone: list[tuple[int, int]] = []
            with self._transaction("NORMAL") as db:
                for r in rows:
                    db.execute("INSERT OR REPLACE INTO rejected (id, stream_id, seq, reason, payload) "
                               "SELECT id, stream_id, seq, ?, payload FROM outbox WHERE id = ?", (reason, r.row_id))
                    gone += db.execute("DELETE FROM outbox WHERE id = ? RETURNING lane, size", (r.row_id,)).fetchall()
            self.rejected += self._removed(gone)
            self._update_full()

    def mark_sent(self, last_sent: Mapping[str, int]) -> None:
        """Pin records about to go on the wire: the cloud may hold them once sent, so an eviction
        must never claim them lost. If anything is unsynced this commit is FULL, so a record is
        durable before it can reach the cloud and its sequence can never be handed out again."""
        with self._lock:
            changed = {s: q for s, q in last_sent.items() if q > self._sent_seq.get(s, -1)}
            if not changed:
                return
            with self._transaction("FULL" if self.unsynced else "NORMAL") as db:
                db.executemany("UPDATE stream_seq SET sent_seq = MAX(sent_seq, ?) WHERE stream_id = ?",
                               [(q, s) for s, q in changed.items()])
            with self._state_lock:
                self._sent_seq.update(changed)

    def pins_needed(self, last_sent: Mapping[str, int]) -> dict[str, int]:
        """The part of a pin that changes anything: streams of the evictable lane, or whose commits
        wait for the group commit, moved past their stored pin (other lanes are fsynced at commit
        and never evicted, so a pin of theirs would only cost a commit)."""
        with self._state_lock:
            return {s: q for s, q in last_sent.items() if q > self._sent_seq.get(s, -1) and (
                (lane := self._stream_lane.get(s, Lane.RAW)) == Lane.RAW
                or _SYNC_RANK[self._sync[lane]] < _SYNC_RANK["FULL"])}

    # -- the disk budget

    def _enforce_budget(self) -> None:
        if self._max_bytes is None:
            return
        if self.bytes_total > self._max_bytes:
            target = int(self._max_bytes * (1.0 - self._headroom))
            while self.bytes_total > target:
                victims = self._pick_victims(min(self.bytes_total - target, _EVICT_CHUNK_BYTES))
                if not victims:
                    break
                self._evict(victims)
        self._update_full()

    def _pick_victims(self, need: int) -> list[_Victim]:
        """The oldest raw ECG rows that were never sent, until ``need`` bytes are covered."""
        out: list[_Victim] = []
        freed = 0
        after = 0
        while freed < need:
            page = self._db.execute("SELECT id, stream_id, seq, size, payload FROM outbox WHERE lane = ? AND id > ? "
                                    "ORDER BY id LIMIT 256", (int(Lane.RAW), after)).fetchall()
            if not page:
                break
            for row_id, stream_id, seq, size, payload in page:
                after = row_id
                if seq <= self._sent_seq.get(stream_id, -1):
                    continue
                out.append(_Victim(row_id, size, pb.Record.FromString(payload)))
                freed += size
                if freed >= need:
                    break
        return out

    def _evict(self, victims: list[_Victim]) -> None:
        runs = eviction_runs(EvictedBlock.of(v.record) for v in victims)
        now = time.time_ns()
        gaps = [gap_record(run, now) for run in runs]
        with self._transaction(self._sync[Lane.VITALS]) as db:
            gone: list[tuple[int, int]] = []
            for v in victims:
                gone += db.execute("DELETE FROM outbox WHERE id = ? RETURNING lane, size", (v.row_id,)).fetchall()
            rows = self._insert(db, gaps, [lane_of(g.kind) for g in gaps], now)
            db.executemany("INSERT INTO evicted (stream_id, first_seq, last_seq, records, samples, gap_stream_id, "
                           "gap_seq, evicted_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                           [(run.stream_id, run.first_seq, run.last_seq, run.records, run.gap.missing_samples,
                             g.stream_id, g.sequence, now) for run, g in zip(runs, gaps, strict=True)])
        self._removed(gone)
        self._added(rows)
        self.evicted_records += len(victims)
        self.eviction_gaps += len(runs)
        for run in runs:
            self.evicted_samples += run.gap.missing_samples
            log.warning("outbox over budget: raw ECG evicted", stream=run.stream_id, records=run.records,
                        samples=run.gap.missing_samples, first_seq=run.first_seq, last_seq=run.last_seq)
            if self._on_evicted is not None:
                try:
                    self._on_evicted(run.device_id, run.patient, run.gap.missing_samples)
                except Exception:
                    log.exception("on_evicted callback failed")

    def _update_full(self) -> None:
        """Over budget after evicting all it may: only alarms, vitals, features and pinned ECG are left."""
        full = self._max_bytes is not None and self.bytes_total > self._max_bytes
        if full == self.full:
            return
        self.full = full
        if full:
            self.full_events += 1
            log.error("outbox full: over its disk budget with nothing evictable; still accepting alarms and vitals",
                      bytes=self.bytes_total, max_bytes=self._max_bytes)
        else:
            log.info("outbox back under its disk budget", bytes=self.bytes_total, max_bytes=self._max_bytes)
        if self._on_full is not None:
            try:
                self._on_full(full)
            except Exception:
                log.exception("on_full callback failed")

    # -- reading, for the uplink

    def pending(self, after_row: int, limit: int) -> list[PendingRecord]:
        """Unacked records with row id > ``after_row``, oldest first (so each stream stays in order)."""
        with self._read_lock:
            rows = self._reader.execute("SELECT id, stream_id, seq, payload FROM outbox WHERE id > ? "
                                        "ORDER BY id LIMIT ?", (after_row, limit)).fetchall()
        return [PendingRecord(int(r[0]), str(r[1]), int(r[2]), bytes(r[3])) for r in rows]

    def ecg_tail(self, device_id: str) -> EcgTail | None:
        """How far the device's ECG stream is accounted for (where a restarted gateway resumes it), if stored
        or queued for storing."""
        with self._state_lock:
            queued = self._pending_tails.get(device_id)
        if queued is not None:
            return queued
        with self._read_lock:
            row = self._reader.execute("SELECT seq, end_ns, receive_ns, sample_rate_hz FROM ecg_tail "
                                       "WHERE device_id = ?", (device_id,)).fetchone()
        if row is None:
            return None
        seq, end_ns, receive_ns, rate = row
        return EcgTail(None if seq is None else int(seq), int(end_ns), int(receive_ns), float(rate))

    def next_seq(self, stream_id: str) -> int:
        return self._next_seq.get(stream_id, 0)

    def streams_behind(self, cursors: Mapping[str, int], lanes: Iterable[Lane] = tuple(Lane)) -> list[str]:
        """Streams of these lanes with records numbered after their cursor (the last sequence sent)."""
        wanted = set(lanes)
        with self._state_lock:
            return [s for s, n in self._next_seq.items()
                    if n - 1 > cursors.get(s, -1) and self._stream_lane.get(s, Lane.RAW) in wanted]

    def unsent(self, stream_id: str, after_seq: int, limit: int) -> list[Unsent]:
        """Up to ``limit`` queued records of one stream after ``after_seq``, in sequence order."""
        with self._read_lock:
            rows = self._reader.execute("SELECT id, seq, lane, size, created_ns FROM outbox "
                                        "WHERE stream_id = ? AND seq > ? ORDER BY seq LIMIT ?",
                                        (stream_id, after_seq, limit)).fetchall()
        lanes = _LANES
        return [Unsent(i, stream_id, q, lanes[lane], size - ROW_OVERHEAD_BYTES, c) for i, q, lane, size, c in rows]

    def payloads(self, row_ids: Sequence[int]) -> dict[int, bytes]:
        out: dict[int, bytes] = {}
        with self._read_lock:
            for i in range(0, len(row_ids), 500):
                chunk = row_ids[i:i + 500]
                marks = ",".join("?" * len(chunk))
                out.update(self._reader.execute(f"SELECT id, payload FROM outbox WHERE id IN ({marks})", chunk))
        return out

    def oldest_unsent_ns(self, cursors: Mapping[str, int]) -> dict[Lane, int]:
        """Per lane, the append time of the oldest record after its stream's cursor."""
        out: dict[Lane, int] = {}
        with self._read_lock:
            for s in self.streams_behind(cursors):
                row = self._reader.execute("SELECT created_ns, lane FROM outbox WHERE stream_id = ? AND seq > ? "
                                       "ORDER BY seq LIMIT 1", (s, cursors.get(s, -1))).fetchone()
                if row is not None:
                    lane = Lane(row[1])
                    out[lane] = min(out.get(lane, row[0]), int(row[0]))
        return out

    # -- gauges

    @property
    def bytes_total(self) -> int:
        return sum(self._lane_bytes)

    def depth(self) -> int:
        """Records waiting for an ack."""
        return sum(self._lane_records)

    def lane_depth(self, lane: Lane) -> int:
        return self._lane_records[lane]

    def lane_bytes(self, lane: Lane) -> int:
        return self._lane_bytes[lane]

    def oldest_age_s(self, lane: Lane | None = None) -> float:
        """Age of the oldest unacked record (of one lane, or of all), 0 when empty."""
        with self._read_lock:
            if lane is None:
                row = self._reader.execute("SELECT created_ns FROM outbox ORDER BY id LIMIT 1").fetchone()
            else:
                row = self._reader.execute("SELECT created_ns FROM outbox WHERE lane = ? ORDER BY id LIMIT 1",
                                           (int(lane),)).fetchone()
        return 0.0 if row is None else max(0.0, (time.time_ns() - int(row[0])) / 1e9)

    def file_bytes(self) -> int:
        """What the database really occupies on disk (file, WAL and shared-memory index)."""
        total = 0
        for suffix in ("", "-wal", "-shm"):
            with suppress(OSError):
                total += os.stat(f"{self.path}{suffix}").st_size
        return total

    def metrics(self) -> OutboxMetrics:
        lanes = {lane.name.lower(): LaneStats(self._lane_records[lane], self._lane_bytes[lane],
                                              self.oldest_age_s(lane)) for lane in Lane}
        total = self.bytes_total
        return OutboxMetrics(
            lanes=lanes, records=self.depth(), bytes=total, max_bytes=self._max_bytes,
            fill_ratio=total / self._max_bytes if self._max_bytes else 0.0, full=self.full,
            full_events=self.full_events, appended=self.appended, acked=self.acked, rejected=self.rejected,
            evicted_records=self.evicted_records, evicted_samples=self.evicted_samples,
            eviction_gaps=self.eviction_gaps, synced_commits=self.synced_commits, file_bytes=self.file_bytes())

    def integrity_check(self) -> list[str]:
        """SQLite's full integrity check: an empty list when the database is sound."""
        with self._lock:
            result = [str(r[0]) for r in self._db.execute("PRAGMA integrity_check")]
        return [] if result == ["ok"] else result
