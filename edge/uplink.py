"""The gRPC uplink: live data first, the backlog at a bounded rate, and only acked records leave the outbox.

Each batch is planned by a pure scheduler (:func:`plan_batch`) over the unsent records
of every stream: alarms first, then vitals and device events, then derived features,
then raw ECG. In the two lower lanes, streams whose oldest unsent record is fresh go
before streams with a backlog, and backlog records spend their own token bucket, so a
30-minute backlog drains at a bounded rate while alarms and live data keep flowing.
Records of one stream always go in sequence order, because the cloud's ledger treats
"sequence below next expected" as a duplicate: live-first reorders streams and lanes,
never the records within a stream.

The call is gzip-compressed (``compression``); batches close on size or age (alarms never
wait) and go on the wire as the stored record bytes, never parsed on the gateway; a bounded
number are in flight. Rows are deleted only when the cloud acks their sequence ranges,
which it does only after Kafka accepted them. Any break resets the per-stream cursors:
unacked rows are sent again after a jittered exponential backoff and the cloud drops
the duplicates. The backoff follows the error's class (cardiogate.core.errors): an outage
retries on the configured short schedule; a refusal of the gateway's identity
(UNAUTHENTICATED, PERMISSION_DENIED) retries every few minutes, keeps every row, and tells
the gateway (``on_refused``) so that it raises the ``uplink_refused`` technical alarm.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
import grpc.aio

from cardiogate import __version__
from cardiogate.core.backoff import Backoff, RetryPolicy, retry_policy_for
from cardiogate.core.errors import CardiogateError, UplinkRefused, rpc_error
from cardiogate.core.logs import get_logger
from cardiogate.core.ratelimit import TokenBucket
from cardiogate.edge import gateway_metrics as gm
from cardiogate.edge.enrollment import channel_credentials
from cardiogate.edge.outbox import Lane, Outbox, Unsent
from cardiogate.edge.settings import UplinkSettings
from cardiogate.proto.v1 import ingest_pb2

log = get_logger(__name__)

_COMPRESSION = {"gzip": grpc.Compression.Gzip, "deflate": grpc.Compression.Deflate,
                "none": grpc.Compression.NoCompression}
_ALL_LANES = frozenset(Lane)
_ALARMS_ONLY = frozenset({Lane.ALARMS})
_PACED = frozenset({Lane.FEATURES, Lane.RAW})  # lanes whose backlog drains at the backlog rate
_MIN_PER_STREAM = 16


# -- pure core -----------------------------------------------------------------------------------------


class RateMeter:
    """Amount per second over a sliding window."""

    def __init__(self, window_s: float = 10.0) -> None:
        self._window = window_s
        self._events: deque[tuple[float, float]] = deque()
        self._sum = 0.0

    def add(self, amount: float, now: float) -> None:
        self._events.append((now, amount))
        self._sum += amount
        self._trim(now)

    def rate(self, now: float) -> float:
        self._trim(now)
        return self._sum / self._window

    def _trim(self, now: float) -> None:
        while self._events and self._events[0][0] <= now - self._window:
            self._sum -= self._events.popleft()[1]


@dataclass(frozen=True, slots=True)
class Budget:
    """What one batch may hold: its size limits and the tokens available right now."""

    max_records: int
    max_bytes: int
    backlog_before_ns: int          # a paced record appended before this is backlog
    cap_bytes: float = math.inf     # overall bandwidth tokens (alarms may overdraw)
    backlog_bytes: float = math.inf
    backlog_records: float = math.inf
    lanes: Collection[Lane] = _ALL_LANES


@dataclass(frozen=True, slots=True)
class Plan:
    rows: tuple[Unsent, ...]
    nbytes: int
    backlog_bytes: int
    backlog_records: int
    full: bool        # a size limit closed the batch
    throttled: bool   # a token bucket held records back
    more: bool        # a stream had more records than were fetched for this plan

    @property
    def has_alarm(self) -> bool:
        return any(r.lane == Lane.ALARMS for r in self.rows)

    @property
    def oldest_created_ns(self) -> int:
        return min(r.created_ns for r in self.rows)


def plan_batch(heads: Mapping[str, Sequence[Unsent]], budget: Budget,
               truncated: Collection[str] = frozenset()) -> Plan:
    """Choose the next batch from each stream's unsent records (in sequence order).

    Order: lane by lane; within the paced lanes, streams without a backlog first; then by
    row id (append order). A stream held back by the backlog bucket is skipped as a whole
    from that record on, so no record ever overtakes an earlier one of its stream.
    """
    order: list[tuple[int, int, int, Unsent]] = []
    for rows in heads.values():
        if not rows or rows[0].lane not in budget.lanes:
            continue
        head = rows[0]
        stale = int(head.lane in _PACED and head.created_ns < budget.backlog_before_ns)
        order.extend((head.lane, stale, r.row_id, r) for r in rows)
    order.sort(key=lambda t: t[:3])
    chosen: list[Unsent] = []
    total = backlog_bytes = backlog_records = 0
    full = throttled = False
    blocked: set[str] = set()
    for _, _, _, r in order:
        lane = r.lane
        if r.stream_id in blocked:
            continue
        if len(chosen) >= budget.max_records or (chosen and total + r.nbytes > budget.max_bytes):
            full = True
            break
        if lane != Lane.ALARMS and budget.cap_bytes - total <= 0:
            throttled = True
            break
        backlog = lane in _PACED and r.created_ns < budget.backlog_before_ns
        if backlog and (budget.backlog_bytes - backlog_bytes <= 0 or budget.backlog_records - backlog_records <= 0):
            throttled = True
            blocked.add(r.stream_id)
            continue
        chosen.append(r)
        total += r.nbytes
        if backlog:
            backlog_bytes += r.nbytes
            backlog_records += 1
    taken: dict[str, int] = {}
    for r in chosen:
        taken[r.stream_id] = taken.get(r.stream_id, 0) + 1
    more = any(taken.get(s, 0) == len(heads[s]) for s in truncated if s in heads)
    return Plan(tuple(chosen), total, backlog_bytes, backlog_records, full, throttled, more)


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def encode_records(payloads: Sequence[bytes]) -> bytes:
    """Stored records as ``TelemetryBatch.records`` (field 2) on the wire: one parse, not one per record."""
    return b"".join(b"\x12" + _varint(len(p)) + p for p in payloads)


def encode_batch_request(batch_id: int, payloads: Sequence[bytes]) -> bytes:
    """A serialized ``UploadRequest{batch: TelemetryBatch{batch_id, records}}`` built from the stored
    record bytes: the same bytes the protobuf runtime would produce, without parsing the records
    into messages and serializing them again (megabytes per batch on a backlog drain)."""
    batch = b"\x08" + _varint(batch_id) + encode_records(payloads)  # batch_id = 1 (varint), records = 2
    return b"\x12" + _varint(len(batch)) + batch                    # UploadRequest.batch = 2


def _serialize_request(request: ingest_pb2.UploadRequest | bytes) -> bytes:
    """The Upload call's serializer: Hello as a message, batches already serialized."""
    return request if isinstance(request, bytes) else request.SerializeToString()


_UPLOAD_METHOD = "/cardiogate.v1.Ingest/Upload"


def _not_covered(rows: Sequence[Unsent], covered: Mapping[str, Sequence[tuple[int, int]]]) -> list[Unsent]:
    """The rows outside every acked range of their stream. Usually one range spans all of a stream's
    rows, which is checked once per stream rather than once per row (thousands in a large batch)."""
    spans: dict[str, tuple[int, int]] = {}
    for r in rows:
        lo, hi = spans.get(r.stream_id, (r.seq, r.seq))
        spans[r.stream_id] = (min(lo, r.seq), max(hi, r.seq))
    whole = {s for s, (lo, hi) in spans.items() if any(a <= lo and hi <= b for a, b in covered.get(s, ()))}
    return [r for r in rows if r.stream_id not in whole
            and not any(a <= r.seq <= b for a, b in covered.get(r.stream_id, ()))]


def classify(exc: BaseException) -> Exception:
    """What broke a session, in the error model: a gRPC status becomes a refusal (identity, rights) or an
    outage; an error that is already classified stays as it is; anything else counts as an outage."""
    if isinstance(exc, grpc.aio.AioRpcError):
        return rpc_error(exc.code().name, exc.details() or "")
    if isinstance(exc, CardiogateError):
        return exc
    return rpc_error("UNAVAILABLE", repr(exc))


# -- the shell -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UplinkMetrics:
    """Gauges and counters; bytes are serialized record bytes, before gRPC compression."""

    connected: bool
    sessions: int
    in_flight_batches: int
    batches_sent: int
    records_sent: int
    bytes_sent: int
    records_acked: int
    records_rejected: int
    send_records_per_s: float
    send_bytes_per_s: float
    ack_records_per_s: float
    oldest_unsent_age_s: Mapping[str, float]


class Uplink:
    """One gateway's connection to the cloud ingest."""

    def __init__(self, gateway_id: str, outbox: Outbox, settings: UplinkSettings, *,
                 clock: Callable[[], float] = time.monotonic, wall_ns: Callable[[], int] = time.time_ns,
                 on_refused: Callable[[bool], None] | None = None) -> None:
        self._gateway_id = gateway_id
        self._on_refused = on_refused  # told True when the cloud refuses this gateway, False once it accepts again
        self._outage = RetryPolicy("outage", settings.backoff_initial_s, settings.backoff_max_s)
        self._backoffs: dict[RetryPolicy, Backoff] = {}
        self.refused: UplinkRefused | None = None
        self.last_delay_s = 0.0
        self._outbox = outbox
        self._settings = settings
        self._clock = clock
        self._wall_ns = wall_ns
        self._wakeup = asyncio.Event()
        self._retry = asyncio.Event()
        now = clock()
        s = settings
        self._cap = TokenBucket(s.max_bytes_per_s, s.max_bytes_per_s, now)
        self._backlog_bytes = TokenBucket(s.backlog_max_bytes_per_s, s.backlog_max_bytes_per_s, now)
        self._backlog_records = TokenBucket(s.backlog_max_records_per_s, s.backlog_max_records_per_s, now)
        self._send_records = RateMeter()
        self._send_bytes = RateMeter()
        self._acks = RateMeter()
        self._cursors: dict[str, int] = {}   # per stream, the last sequence sent in this session
        self._in_flight: OrderedDict[int, list[Unsent]] = OrderedDict()
        self._sent_at: dict[int, float] = {}  # per batch in flight, when it was written (perf_counter)
        self._avg_record_bytes = 0.0  # of the records sent so far (moving average), to size outbox reads
        self._batch_id = 0
        self._replies = 0
        self._broken = False
        self.connected = False
        self.sessions = 0
        self.batches_sent = 0
        self.records_sent = 0
        self.bytes_sent = 0
        self.records_acked = 0
        self.records_rejected = 0

    def notify(self) -> None:
        """New rows are in the outbox."""
        self._wakeup.set()

    def _channel(self) -> grpc.aio.Channel:
        s = self._settings
        if not s.tls:
            return grpc.aio.insecure_channel(s.target, compression=_COMPRESSION[s.compression])
        options = [("grpc.ssl_target_name_override", s.server_name)] if s.server_name else None
        return grpc.aio.secure_channel(s.target, channel_credentials(s.identity_dir), options=options,
                                       compression=_COMPRESSION[s.compression])

    async def run(self) -> None:
        while True:
            try:
                async with self._channel() as channel:
                    await self._session(channel)
                error: Exception = rpc_error("CLOSED", "the session ended")
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # whatever broke the stream, the uplink reconnects; it never dies
                error = classify(exc)
            finally:
                self.connected = False
            self.last_delay_s = self._after_failure(error)
            await self._pause(self.last_delay_s)

    def _after_failure(self, error: Exception) -> float:
        """Log, raise or keep the refusal alarm, and pick the delay from the error's retry policy: a refusal
        waits minutes (the outbox keeps every row meanwhile), an outage the configured short backoff."""
        policy = retry_policy_for(error, self._outage)
        delay = self._backoffs.setdefault(policy, policy.backoff()).next_delay()
        if isinstance(error, UplinkRefused):
            log.error("uplink refused by the cloud; keeping the outbox and retrying slowly",
                      target=self._settings.target, status=error.status, error=error.detail, retry_in_s=round(delay, 1))
            first, self.refused = self.refused is None, error
            if first and self._on_refused is not None:
                self._on_refused(True)
        else:
            log.warning("uplink broken", target=self._settings.target, error=str(error), retry_in_s=round(delay, 2))
        return delay

    def _accepted(self) -> None:
        """The cloud acked a batch: every backoff starts over and a refusal alarm clears."""
        for backoff in self._backoffs.values():
            backoff.reset()
        if self.refused is not None:
            self.refused = None
            log.info("uplink accepted again", target=self._settings.target)
            if self._on_refused is not None:
                self._on_refused(False)

    def retry_now(self) -> None:
        """Cut the current backoff short (after a re-enrollment, say, which a refusal waits minutes for)."""
        self._retry.set()

    async def _pause(self, delay_s: float) -> None:
        """Back off, keeping the outbox's group commit ticking meanwhile."""
        self._retry.clear()
        end = self._clock() + delay_s
        while (left := end - self._clock()) > 0 and not self._retry.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(left, 1.0)):
                    await self._retry.wait()
            self._outbox.sync_if_due()

    async def _session(self, channel: grpc.aio.Channel) -> None:
        # Ingest/Upload as the generated stub would call it, but with a serializer that passes pre-encoded
        # batches; grpc.aio's stream-stream call (write/read/cancel), typed for the sync API.
        upload = channel.stream_stream(_UPLOAD_METHOD, request_serializer=_serialize_request,
                                       response_deserializer=ingest_pb2.UploadResponse.FromString)
        call: Any = upload()  # type: ignore[call-arg]
        await call.write(ingest_pb2.UploadRequest(
            hello=ingest_pb2.Hello(gateway_id=self._gateway_id, software_version=__version__)))
        self._cursors = {}
        self._in_flight = OrderedDict()
        self._sent_at = {}
        self._broken = False
        reader = asyncio.create_task(self._read_acks(call))
        self.connected = True
        self.sessions += 1
        log.info("uplink connected", target=self._settings.target)
        try:
            while not reader.done():
                self._outbox.sync_if_due()
                window_open = len(self._in_flight) < self._settings.max_in_flight
                plan = self._plan(_ALL_LANES if window_open else _ALARMS_ONLY)
                wait_s, wake = self._when(plan, window_open)
                if wait_s <= 0:
                    await self._send(call, plan)
                else:
                    await self._wait(wait_s, wake)
            await reader  # re-raise why the reader stopped
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, grpc.aio.AioRpcError):
                await reader
            call.cancel()

    def _plan(self, lanes: Collection[Lane]) -> Plan:
        streams = self._outbox.streams_behind(self._cursors, lanes)
        per_stream = max(_MIN_PER_STREAM, -(-self._fetch_limit() // max(1, len(streams))))
        heads: dict[str, list[Unsent]] = {}
        truncated: set[str] = set()
        for s in streams:
            rows = self._outbox.unsent(s, self._cursors.get(s, -1), per_stream)
            if not rows:  # everything after the cursor was acked or evicted meanwhile
                self._cursors[s] = self._outbox.next_seq(s) - 1
                continue
            heads[s] = rows
            if len(rows) == per_stream:
                truncated.add(s)
        now = self._clock()
        budget = Budget(self._settings.batch_max_records, self._settings.batch_max_bytes,
                        self._wall_ns() - int(self._settings.backlog_after_s * 1e9), self._cap.level(now),
                        self._backlog_bytes.level(now), self._backlog_records.level(now), lanes)
        return plan_batch(heads, budget, truncated)

    def _fetch_limit(self) -> int:
        """Rows worth reading for one plan: the record limit, or as many average-sized records as fit
        the byte limit if that is fewer (rows read but not sent are read again for the next batch)."""
        s = self._settings
        if self._avg_record_bytes <= 0:
            return s.batch_max_records
        return min(s.batch_max_records, math.ceil(s.batch_max_bytes / self._avg_record_bytes))

    def _when(self, plan: Plan, window_open: bool) -> tuple[float, Callable[[], bool]]:
        """Send now (0), or how long to wait and what cuts the wait short."""
        alarms = self._outbox.appended_by_lane[Lane.ALARMS]
        replies = self._replies

        def alarm_or_break() -> bool:
            return self._outbox.appended_by_lane[Lane.ALARMS] != alarms or self._broken

        if plan.rows:
            if plan.full or plan.more or plan.throttled or plan.has_alarm:
                return 0.0, alarm_or_break
            linger = self._settings.batch_max_age_s - (self._wall_ns() - plan.oldest_created_ns) / 1e9
            room = self._settings.batch_max_records - len(plan.rows)
            appended = self._outbox.appended
            return linger, lambda: alarm_or_break() or self._outbox.appended - appended >= room
        if not window_open:
            return self._settings.batch_max_age_s, lambda: alarm_or_break() or self._replies != replies
        if plan.throttled:
            return self._throttle_wait(), alarm_or_break
        return self._settings.batch_max_age_s, lambda: True

    def _throttle_wait(self) -> float:
        """Until the buckets hold a worthwhile amount (a batch, or a quarter second of rate)."""
        now = self._clock()
        s = self._settings
        waits = [bucket.wait_s(min(quantum, bucket.rate / 4), now) for bucket, quantum in (
            (self._cap, s.batch_max_bytes), (self._backlog_bytes, s.batch_max_bytes),
            (self._backlog_records, s.batch_max_records)) if not bucket.unlimited]
        return min(1.0, max([0.01, *waits]))

    async def _wait(self, timeout_s: float, wake: Callable[[], bool]) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            if self._wakeup.is_set():
                self._wakeup.clear()
                if wake():
                    return
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            try:
                async with asyncio.timeout(remaining):
                    await self._wakeup.wait()
            except TimeoutError:
                return

    async def _send(self, call: Any, plan: Plan) -> None:
        # Pinned (durably) before the payloads are read: a row read after this can no longer be evicted.
        await self._outbox.writer.mark_sent({r.stream_id: r.seq for r in plan.rows})
        payloads = self._outbox.payloads([r.row_id for r in plan.rows])
        rows = [r for r in plan.rows if r.row_id in payloads]
        if not rows:
            return
        last_sent = {r.stream_id: r.seq for r in rows}  # rows are in sequence order within a stream
        self._batch_id += 1
        request = encode_batch_request(self._batch_id, [payloads[r.row_id] for r in rows])
        self._in_flight[self._batch_id] = rows
        self._sent_at[self._batch_id] = time.perf_counter()
        self._cursors.update(last_sent)
        now = self._clock()
        nbytes = sum(r.nbytes for r in rows)
        self._avg_record_bytes = nbytes / len(rows) if self._avg_record_bytes <= 0 else \
            0.8 * self._avg_record_bytes + 0.2 * nbytes / len(rows)
        self._cap.spend(nbytes, now)
        self._backlog_bytes.spend(plan.backlog_bytes, now)
        self._backlog_records.spend(plan.backlog_records, now)
        await call.write(request)
        self.batches_sent += 1
        self.records_sent += len(rows)
        self.bytes_sent += nbytes
        gm.UPLINK_BATCHES.inc()
        gm.UPLINK_RECORDS.inc(len(rows))
        gm.UPLINK_BYTES.inc(nbytes)
        self._send_records.add(len(rows), now)
        self._send_bytes.add(nbytes, now)

    async def _read_acks(self, call: Any) -> None:
        try:
            while True:
                response = await call.read()
                if response is grpc.aio.EOF:  # type: ignore[attr-defined]
                    raise ConnectionError("ingest closed the stream")
                assert isinstance(response, ingest_pb2.UploadResponse)
                which = response.WhichOneof("message")
                if which == "ack":
                    await self._on_ack(response.ack)
                    self._accepted()
                elif which == "rejected":
                    rows = self._in_flight.pop(response.rejected.batch_id, [])
                    self._answered(response.rejected.batch_id)
                    gm.UPLINK_REJECTED.inc(len(rows))
                    await self._outbox.writer.reject(rows, response.rejected.reason)
                    self.records_rejected += len(rows)
                    log.error("batch rejected by ingest", batch_id=response.rejected.batch_id,
                              reason=response.rejected.reason, records=len(rows))
                self._replies += 1
                self._wakeup.set()
        finally:
            self._broken = True
            self._wakeup.set()

    async def _on_ack(self, ack: ingest_pb2.BatchAck) -> None:
        rows = self._in_flight.pop(ack.batch_id, [])
        self._answered(ack.batch_id)
        covered: dict[str, list[tuple[int, int]]] = {}
        for rng in ack.ranges:
            covered.setdefault(rng.stream_id, []).append((rng.first, rng.last))
        n = await self._outbox.writer.ack([(rng.stream_id, rng.first, rng.last) for rng in ack.ranges])
        self.records_acked += n
        gm.UPLINK_ACKED.inc(n)
        self._acks.add(n, self._clock())
        # Records the ack left out were not written: send them again, in order, in this session.
        missed = _not_covered(rows, covered)
        for r in missed:
            self._cursors[r.stream_id] = min(self._cursors.get(r.stream_id, -1), r.seq - 1)
        if missed:
            log.warning("ack left records out; resending them", batch_id=ack.batch_id, records=len(missed))

    def _answered(self, batch_id: int) -> None:
        sent = self._sent_at.pop(batch_id, None)
        if sent is not None:
            gm.UPLINK_BATCH_LATENCY.observe(time.perf_counter() - sent)

    def metrics(self) -> UplinkMetrics:
        now = self._clock()
        wall = self._wall_ns()
        oldest = self._outbox.oldest_unsent_ns(self._cursors if self.connected else {})
        ages = {lane.name.lower(): max(0.0, (wall - oldest[lane]) / 1e9) if lane in oldest else 0.0
                for lane in Lane}
        return UplinkMetrics(
            connected=self.connected, sessions=self.sessions, in_flight_batches=len(self._in_flight),
            batches_sent=self.batches_sent, records_sent=self.records_sent, bytes_sent=self.bytes_sent,
            records_acked=self.records_acked, records_rejected=self.records_rejected,
            send_records_per_s=self._send_records.rate(now), send_bytes_per_s=self._send_bytes.rate(now),
            ack_records_per_s=self._acks.rate(now), oldest_unsent_age_s=ages)
