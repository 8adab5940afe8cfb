"""The outbox's writer thread: the event loop hands writes over and never waits for a commit or an fsync.

On an SD card one fsync can take 50-500 ms; run inline from a BLE callback it would hold up
everything else on the loop, an alarm's MQTT notice included. Here one thread owns the outbox's
write connection. Writes are queued in order and each wake of the thread commits everything
queued since the last one: consecutive appends go in one transaction (one fsync for many
records), consecutive acks in one, pins in one.

With ``linger_s`` (the gateway's ``outbox.commit_linger_s``), a fire-and-forget append waits up to
that long for others to join its transaction, so 50 devices' few records a second each make a few
commits a second rather than one or two per record: less CPU, and far fewer fsyncs on an SD card.
Writes somebody waits for go at once and take the queue with them: an alarm record, an awaited
``append``, acks, pins, rejections and syncs.

Every write returns a future that resolves once it is committed (for the alarm and vitals lanes
that means fsynced; raw ECG follows the group commit, docs/outbox.md). Callers that must not act
before the write is on disk (the uplink pinning records before it sends them) await it; the
gateway's appends are fire-and-forget, with failures logged. Nothing is dropped: the queue is
bounded in records, and a full queue makes ``append`` wait for room (``submit`` from synchronous
code blocks, which only happens when the disk cannot keep up with the data at all).

Before :meth:`OutboxWriter.start`, or after :meth:`stop`, every write runs inline in the calling
thread and returns a completed future (tests, tools, the gateway's own start-up).

Test hook, not a feature: ``CARDIOGATE_TEST_OUTBOX_COMMIT_DELAY_S``, read by the writer thread
when it starts, delays each of its commits by that many seconds, to simulate a slow disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cardiogate.core import metrics
from cardiogate.core.logs import get_logger
from cardiogate.proto.v1 import telemetry_pb2 as pb

if TYPE_CHECKING:
    from cardiogate.edge.ecg_assembler import EcgTail
    from cardiogate.edge.outbox import Outbox, RowRef

log = get_logger(__name__)

COMMIT_DELAY_ENV = "CARDIOGATE_TEST_OUTBOX_COMMIT_DELAY_S"
DEFAULT_MAX_PENDING = 20_000
"""Queued records before writers wait: at 50 devices' ~4 records/s, over a minute of a stalled disk."""

_QUEUE_RECORDS = metrics.gauge("gateway_outbox_writer_queue_records", "Records waiting for the outbox writer")
_COMMIT_SECONDS = metrics.histogram("gateway_outbox_writer_batch_seconds",
                                    "Time the outbox writer took to commit one batch of queued writes")
_WAITS = metrics.counter("gateway_outbox_writer_full_waits", "Writes that waited because the writer queue was full")


@dataclass(slots=True)
class _Op:
    """One queued write; ``kind`` picks the outbox method, consecutive ops of a kind are merged."""

    kind: str  # append | ack | pin | reject | sync
    future: Future[Any]
    records: Sequence[pb.Record] = ()
    tails: Mapping[str, EcgTail] | None = None
    ranges: Sequence[tuple[str, int, int]] = ()
    pins: Mapping[str, int] = field(default_factory=dict)
    rows: Sequence[RowRef] = ()
    reason: str = ""
    urgent: bool = True  # commit without lingering for more appends (all but the gateway's routine appends)

    @property
    def weight(self) -> int:
        return max(1, len(self.records))


def _settle(future: Future[Any], result: Any = None, exc: BaseException | None = None) -> None:
    """Resolve a write's future unless its caller cancelled it (the write itself happened regardless)."""
    if future.done():
        return
    with contextlib.suppress(InvalidStateError):  # cancelled between the check and now
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(result)


class OutboxWriter:
    """A thread that owns the outbox's writes, behind futures."""

    def __init__(self, outbox: Outbox, *, max_pending: int = DEFAULT_MAX_PENDING, linger_s: float = 0.0) -> None:
        self._outbox = outbox
        self._max_pending = max_pending
        self._linger_s = linger_s
        self._linger_records = max(1, max_pending // 4)  # a batch this large goes without waiting for more
        self._lingering = False  # the thread holds a batch open for more appends (guarded by _cond)
        self._urgent = False  # a queued write that somebody waits for: end the linger (guarded by _cond)
        self._cond = threading.Condition()
        self._queue: deque[_Op] = deque()
        self._queued = 0  # records (or ops without records) in the queue and in the batch being written
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._on_commit: Callable[[], None] | None = None
        self._commit_delay_s = 0.0
        self.batches = 0
        self.full_waits = 0

    @property
    def running(self) -> bool:
        return self._thread is not None and not self._stopping

    @property
    def queued(self) -> int:
        """Records accepted and not yet committed."""
        return self._queued

    def start(self, on_commit: Callable[[], None] | None = None) -> None:
        """Start the thread; ``on_commit`` runs in it after each batch (hand it over to the loop yourself)."""
        if self._thread is not None:
            return
        self._on_commit = on_commit
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="outbox-writer", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Commit everything queued, then stop the thread; later writes run inline."""
        thread = self._thread
        if thread is None:
            return
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        thread.join(timeout_s)
        if thread.is_alive():
            log.error("outbox writer did not finish its queue in time", queued=self._queued)
            return
        self._thread = None

    # -- the interface ---------------------------------------------------------------------------

    def submit(self, records: Sequence[pb.Record], ecg_tails: Mapping[str, EcgTail] | None = None) -> Future[list[int]]:
        """Queue records (and the ECG tails they account for) without waiting for the disk.

        The future gives their sequences once committed. Blocks only while the queue is full."""
        op = _Op("append", Future(), records=list(records), tails=dict(ecg_tails) if ecg_tails else None,
                 urgent=any(r.kind == pb.STREAM_KIND_ALARMS for r in records))
        if op.tails:
            self._outbox.tails_queued(op.tails)
        self._put(op, block=True)
        return op.future

    async def append(self, records: Sequence[pb.Record],
                     ecg_tails: Mapping[str, EcgTail] | None = None) -> list[int]:
        """Queue records, waiting (without blocking the loop) for room, and return once they are committed."""
        op = _Op("append", Future(), records=list(records), tails=dict(ecg_tails) if ecg_tails else None)
        if op.tails:
            self._outbox.tails_queued(op.tails)
        if not self._put(op, block=False):  # full: wait for room in a worker thread, not on the loop
            await asyncio.to_thread(self._put, op, block=True)
        result: list[int] = await asyncio.shield(asyncio.wrap_future(op.future))
        return result

    async def ack(self, ranges: Iterable[tuple[str, int, int]]) -> int:
        """Delete acked ranges (one DELETE per stream range); returns the rows removed once committed."""
        n: int = await self._await(_Op("ack", Future(), ranges=list(ranges)))
        return n

    async def mark_sent(self, last_sent: Mapping[str, int]) -> None:
        """Pin records as sent; returns once the pin (and every earlier write) is durable."""
        pins = self._outbox.pins_needed(last_sent)
        if pins:
            await self._await(_Op("pin", Future(), pins=pins))

    async def reject(self, rows: Iterable[RowRef], reason: str) -> None:
        """Move refused records aside; returns once committed."""
        await self._await(_Op("reject", Future(), rows=list(rows), reason=reason))

    async def _await(self, op: _Op) -> Any:
        if not self._put(op, block=False):  # control ops are small: they may exceed the bound, never wait
            self._put(op, block=True, force=True)
        # A queued write happens even if its caller is cancelled meanwhile: the caller stops waiting, that is all.
        return await asyncio.shield(asyncio.wrap_future(op.future))

    def _put(self, op: _Op, *, block: bool, force: bool = False) -> bool:
        if self._thread is None or self._stopping:
            self._apply([op])  # not started, or stopped: the caller's thread writes
            return True
        with self._cond:
            weight = op.weight
            while not force and self._queued > 0 and self._queued + weight > self._max_pending:
                if not block:
                    return False
                self.full_waits += 1
                _WAITS.inc()
                log.warning("outbox writer queue full: waiting for the disk", queued=self._queued)
                self._cond.wait(1.0)
            self._queue.append(op)
            self._queued += weight
            self._urgent = self._urgent or op.urgent
            # a lingering thread is only woken early by a write somebody waits for, or a full batch
            if not self._lingering or self._urgent or self._queued >= self._linger_records:
                self._cond.notify_all()
        return True

    # -- the thread ------------------------------------------------------------------------------

    def _run(self) -> None:
        delay = os.environ.get(COMMIT_DELAY_ENV, "")
        if delay:
            try:
                self._commit_delay_s = float(delay)
            except ValueError:
                log.error("test hook ignored: not a number of seconds", env=COMMIT_DELAY_ENV, value=delay)
            else:
                log.warning("test hook: every outbox commit is delayed", env=COMMIT_DELAY_ENV,
                            seconds=self._commit_delay_s)
                self._outbox.set_commit_hook(self._delay_commit)
        while True:
            with self._cond:
                while not self._queue and not self._stopping:
                    due = self._outbox.sync_due_in()
                    if due is not None and due <= 0:
                        break
                    self._cond.wait(due)
                if not self._queue and self._stopping:
                    return
                if self._queue and self._linger_s > 0:
                    self._linger()
                self._urgent = False
                batch = list(self._queue)
                self._queue.clear()
                _QUEUE_RECORDS.set(self._queued)
            started = time.perf_counter()
            commits = self._outbox.synced_commits
            if batch:
                try:
                    self._apply(batch)
                except Exception:  # a bug here must not end the thread and leave every later write waiting
                    log.exception("outbox writer failed on a batch")
                    for op in batch:
                        _settle(op.future, exc=RuntimeError("outbox writer failed"))
            try:
                self._outbox.group_commit_tick()
            except Exception as exc:  # the next batch or tick tries again; the loop must not die
                log.error("outbox group commit failed", error=repr(exc))
            if batch or self._outbox.synced_commits != commits:
                _COMMIT_SECONDS.observe(time.perf_counter() - started)
            with self._cond:
                self._queued -= sum(op.weight for op in batch)
                _QUEUE_RECORDS.set(self._queued)
                self._cond.notify_all()
            if not batch:
                continue
            self.batches += 1
            if self._on_commit is not None:
                try:
                    self._on_commit()
                except Exception:
                    log.exception("outbox on_commit callback failed")

    def _linger(self) -> None:
        """Hold the batch open up to ``linger_s`` for more appends (called with ``_cond`` held)."""
        deadline = time.monotonic() + self._linger_s
        self._lingering = True
        try:
            while not (self._stopping or self._urgent or self._queued >= self._linger_records):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
        finally:
            self._lingering = False

    def _delay_commit(self) -> None:
        if threading.current_thread() is self._thread:
            time.sleep(self._commit_delay_s)

    def _apply(self, batch: list[_Op]) -> None:
        """Run queued writes in order, each run of one kind as one outbox call (one transaction)."""
        i = 0
        while i < len(batch):
            j = i + 1
            while j < len(batch) and batch[j].kind == batch[i].kind and batch[i].kind in ("append", "ack", "pin"):
                j += 1
            run = batch[i:j]
            try:
                results = self._write(run)
            except Exception as exc:  # every future learns of the failure; none is left waiting
                for op in run:
                    _settle(op.future, exc=exc)
                log.error("outbox write failed", kind=run[0].kind, writes=len(run), error=repr(exc))
            else:
                for op, result in zip(run, results, strict=True):
                    _settle(op.future, result)
            i = j

    def _write(self, run: list[_Op]) -> list[Any]:
        box, kind = self._outbox, run[0].kind
        if kind == "append":
            tails: dict[str, EcgTail] = {}
            for op in run:
                tails.update(op.tails or {})
            seqs = box.append_many([r for op in run for r in op.records], tails or None)
            out: list[Any] = []
            for op in run:
                out.append(seqs[:len(op.records)])
                seqs = seqs[len(op.records):]
            return out
        if kind == "ack":
            counts = box.ack_ranges([rng for op in run for rng in op.ranges])
            out = []
            for op in run:
                out.append(sum(counts[:len(op.ranges)]))
                counts = counts[len(op.ranges):]
            return out
        if kind == "pin":
            merged: dict[str, int] = {}
            for op in run:
                for stream, seq in op.pins.items():
                    merged[stream] = max(seq, merged.get(stream, -1))
            box.mark_sent(merged)
            return [None] * len(run)
        if kind == "reject":
            box.reject(run[0].rows, run[0].reason)
            return [None]
        raise ValueError(f"unknown outbox write {kind!r}")
