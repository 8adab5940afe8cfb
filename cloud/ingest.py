"""The Ingest service: authenticate, validate, authorize, rate-limit, de-duplicate, write to Kafka, ack.

Per stream, records before the ledger's next-expected sequence are duplicates (a
gateway replaying after a break) and are acked without being written again. A
record's ack means Kafka has it: the ledger advances only over records whose
delivery succeeded, contiguously, so a partial failure is retried, not skipped.

Refusals the gateway can do nothing about (a malformed batch) are answered with
``BatchRejected`` (INVALID_ARGUMENT); refusals that may pass later end the stream
with a status and the gateway keeps its records: UNAUTHENTICATED (no, unknown or
revoked certificate), PERMISSION_DENIED (Hello names another gateway, or a record
for a patient/device not assigned to it), RESOURCE_EXHAUSTED (over its rate),
UNAVAILABLE (Kafka failed, or the replica is draining).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
import grpc.aio
from sqlalchemy import Engine

from cardiogate.cloud.authz import GrantCache, first_unauthorized, load_grants
from cardiogate.cloud.dedup import SequenceLedger
from cardiogate.cloud.identity import certificate_status
from cardiogate.cloud.kafka_bridge import KafkaBridge, OutgoingRecord
from cardiogate.cloud.metrics import ACTIVE_STREAMS, KAFKA_PRODUCE_LATENCY, Metrics, stream_kind
from cardiogate.cloud.pki import GATEWAY_ID, CertificateError, GatewayIdentity, gateway_identity
from cardiogate.cloud.settings import CloudSettings
from cardiogate.cloud.validation import InvalidBatch, validate_batch
from cardiogate.cloud.wire import Received, decode_request
from cardiogate.core.backoff import jittered
from cardiogate.core.errors import CardiogateError
from cardiogate.core.logs import get_logger
from cardiogate.core.ratelimit import GatewayLimiter, TokenBucket
from cardiogate.core.tracing import TRACEPARENT, child_span, tracing_enabled, valid_traceparent
from cardiogate.proto.v1 import ingest_pb2, ingest_pb2_grpc
from cardiogate.proto.v1 import telemetry_pb2 as pb

log = get_logger(__name__)

Ranges = dict[str, tuple[int, int]]
_MAX_CLAIM_WAIT_S = 300.0
"""A batch waits at most this long (plus the claim TTL) for a stream another write holds; then the
gateway is told to retry. The holder may be waiting out a long Kafka outage."""


# -- pure core ------------------------------------------------------------------------------------


def _widen(ranges: Ranges, stream_id: str, seq: int) -> None:
    lo, hi = ranges.get(stream_id, (seq, seq))
    ranges[stream_id] = (min(lo, seq), max(hi, seq))


def split_duplicates(records: Iterable[pb.Record], next_seq: dict[str, int]) -> tuple[list[pb.Record], Ranges]:
    """Records still to write, and the ranges already written, per stream."""
    fresh: list[pb.Record] = []
    dups: Ranges = {}
    for r in records:
        if r.sequence < next_seq[r.stream_id]:
            _widen(dups, r.stream_id, r.sequence)
        else:
            fresh.append(r)
    return fresh, dups


def delivered_ranges(fresh: Sequence[pb.Record], errors: Sequence[Exception | None]) -> tuple[Ranges, int]:
    """Per stream, the records Kafka confirmed up to the first failure; and the failure count."""
    written: Ranges = {}
    blocked: set[str] = set()
    for r, err in zip(fresh, errors, strict=True):
        if r.stream_id in blocked:
            continue
        if err is not None:
            blocked.add(r.stream_id)
            continue
        _widen(written, r.stream_id, r.sequence)
    return written, len(blocked)


@dataclass(frozen=True, slots=True)
class PreparedBatch:
    """A checked batch with its Kafka records built (before the ledger is consulted, so this work
    overlaps the previous batch's Kafka round trip)."""

    batch: pb.TelemetryBatch
    outgoing: list[OutgoingRecord]  # one per record, in order
    first: dict[str, int]           # per stream, in order of appearance: first and last sequence
    last: dict[str, int]


def prepare_records(batch: pb.TelemetryBatch, gateway: str, topics: Mapping[pb.StreamKind.ValueType, str],
                    record_bytes: Sequence[bytes] | None = None) -> PreparedBatch:
    """Kafka records for a validated batch: keyed by patient, with gateway/stream/seq headers. The
    values are ``record_bytes`` (each record as the gateway sent it) when given, else serialized here.

    Per stream once: its header, its first sequence and its topic (a valid stream id names its kind);
    per record only what differs: its sequence header, its key, its bytes."""
    gateway_header = ("gateway", gateway.encode())
    first: dict[str, int] = {}
    last: dict[str, int] = {}
    per_stream: dict[str, tuple[tuple[str, bytes], str]] = {}
    keys: dict[str, bytes] = {}
    outgoing: list[OutgoingRecord] = []
    records = batch.records
    values = record_bytes if record_bytes is not None else [r.SerializeToString() for r in records]
    for r, value in zip(records, values, strict=True):
        sid, seq = r.stream_id, r.sequence
        stream = per_stream.get(sid)
        if stream is None:
            stream = per_stream[sid] = (("stream", sid.encode()), topics[r.kind])
            first[sid] = seq
        last[sid] = seq
        patient = r.patient
        key = keys.get(patient)
        if key is None:
            key = keys[patient] = patient.encode()
        headers: list[tuple[str, str | bytes | None]] = [gateway_header, stream[0], ("seq", b"%d" % seq)]
        outgoing.append(OutgoingRecord(stream[1], key, value, headers))
    return PreparedBatch(batch, outgoing, first, last)


def ack_for(batch_id: int, dups: Ranges, written: Ranges) -> ingest_pb2.UploadResponse:
    ack = ingest_pb2.BatchAck(batch_id=batch_id, duplicates=sum(hi - lo + 1 for lo, hi in dups.values()))
    for ranges in (dups, written):
        for stream_id, (lo, hi) in ranges.items():
            ack.ranges.add(stream_id=stream_id, first=lo, last=hi)
    return ingest_pb2.UploadResponse(ack=ack)


def lenient_request(data: bytes) -> ingest_pb2.UploadRequest | None:
    """The request that :func:`decode_request` (gRPC's deserializer for Upload) makes of ``data``;
    None for undecodable bytes, which are counted and refused with INVALID_ARGUMENT."""
    received = decode_request(data)
    return None if received is None else received.request


def peer_identity(context: grpc.aio.ServicerContext[Any, Any]) -> GatewayIdentity:
    """The gateway named by the client certificate gRPC already verified against the CA."""
    pems = list(context.auth_context().get("x509_pem_cert") or [])
    if not pems:
        raise CertificateError("no client certificate")
    return gateway_identity(pems[0])


# -- the shell ----------------------------------------------------------------------------------------


class _Refused(CardiogateError):
    def __init__(self, code: grpc.StatusCode, detail: str, metric: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.metric = metric


@dataclass
class IngestCounters:
    batches: int = 0
    records_written: int = 0
    duplicates: int = 0
    rejected_batches: int = 0
    kafka_failures: int = 0


class InFlight:
    """A bound on records produced but not yet confirmed: when Kafka is slow, streams wait here,
    stop reading, and HTTP/2 flow control pushes back on the gateways."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._changed = asyncio.Condition()

    async def acquire(self, n: int) -> int:
        n = min(n, self.limit)
        async with self._changed:
            await self._changed.wait_for(lambda: self.used + n <= self.limit)
            self.used += n
        return n

    async def release(self, n: int) -> None:
        async with self._changed:
            self.used -= n
            self._changed.notify_all()


@dataclass
class _Stream:
    identity: GatewayIdentity | None
    gateway: str
    checked_at: float = field(default_factory=time.monotonic)


class IngestService(ingest_pb2_grpc.IngestServicer):
    def __init__(self, settings: CloudSettings, bridge: KafkaBridge, engine: Engine,
                 metrics: Metrics | None = None) -> None:
        self._settings = settings
        self._bridge = bridge
        self._engine = engine
        self._ledger = SequenceLedger(engine, settings.flow.claim_ttl_s, settings.replica)
        self._grants = GrantCache(lambda g: load_grants(engine, g), settings.authz.cache_ttl_s)
        self._limiters: dict[str, GatewayLimiter] = {}
        self._in_flight = InFlight(settings.flow.max_in_flight_records)
        self._topics = {pb.STREAM_KIND_ECG: settings.kafka.topic_ecg,
                        pb.STREAM_KIND_VITALS: settings.kafka.topic_vitals,
                        pb.STREAM_KIND_ALARMS: settings.kafka.topic_alarms,
                        pb.STREAM_KIND_EVENTS: settings.kafka.topic_events}
        self._draining = asyncio.Event()
        self._writes: set[asyncio.Task[Any]] = set()
        self._no_streams = asyncio.Event()
        self._no_streams.set()
        self.active_streams = 0
        self.counters = IngestCounters()
        self.metrics = metrics or Metrics()

    @property
    def bridge(self) -> KafkaBridge:
        return self._bridge

    # -- lifecycle

    def start_drain(self) -> None:
        """Each stream finishes the batch it is on, acks it, and ends with UNAVAILABLE."""
        self._draining.set()

    async def wait_idle(self, timeout_s: float) -> bool:
        """Wait for the streams and the (shielded) Kafka writes still in progress."""
        try:
            async with asyncio.timeout(timeout_s):
                await self._no_streams.wait()
                if self._writes:
                    await asyncio.wait(set(self._writes))
        except TimeoutError:
            return False
        return True

    # -- the RPC

    async def Upload(self, request_iterator: AsyncIterator[Received | ingest_pb2.UploadRequest | None],
                     context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[ingest_pb2.UploadResponse]:
        """Replies in order. A reader task reads and checks the next batch while the one before is
        still waiting for Kafka, so validation and authorization overlap the broker's round trip;
        the writes themselves stay one after another (each claims, writes and commits its streams)."""
        if self._draining.is_set():
            await context.abort(grpc.StatusCode.UNAVAILABLE, "ingest is draining; reconnect")
        self.active_streams += 1
        ACTIVE_STREAMS.inc()
        self._no_streams.clear()
        drained = asyncio.ensure_future(self._draining.wait())
        steps: asyncio.Queue[_Step] = asyncio.Queue(maxsize=1)  # read at most one batch ahead
        reader = asyncio.create_task(self._read(request_iterator, context, drained, steps))
        try:
            while True:
                step = await steps.get()
                if step.write is not None:
                    try:
                        outcome = await asyncio.shield(step.write)
                    except Exception:  # the database or broker misbehaved: nothing is acked, the gateway resends
                        self.metrics.inc("ingest_refused_streams", reason="internal")
                        log.exception("batch failed", gateway=step.gateway)
                        await context.abort(grpc.StatusCode.UNAVAILABLE,
                                            "the ingest could not store the batch; resend")
                        return
                    if outcome is None:  # not written as an earlier batch failed: the stream has ended there
                        await context.abort(grpc.StatusCode.UNAVAILABLE, "an earlier batch failed; resend")
                        return
                    reply, partial = outcome
                    yield reply
                    if partial:  # the unacked rest is resent after the gateway reconnects
                        await context.abort(grpc.StatusCode.UNAVAILABLE, "Kafka did not confirm every record; resend")
                        return
                elif step.reply is not None:
                    yield step.reply
                elif step.refused is not None:
                    exc = step.refused
                    self.metrics.inc("ingest_refused_streams", reason=exc.metric)
                    log.warning("stream refused", gateway=step.gateway, reason=exc.detail, code=exc.code.name,
                                peer=context.peer())
                    await context.abort(exc.code, exc.detail)
                    return
                elif step.end is _DRAINED:
                    self.metrics.inc("ingest_streams_drained")
                    await context.abort(grpc.StatusCode.UNAVAILABLE, "ingest is draining; reconnect")
                    return
                elif step.end is _MALFORMED:
                    self.metrics.inc("ingest_rejected_batches", reason="malformed")
                    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "message is not a valid UploadRequest")
                    return
                elif step.end is _INTERNAL:
                    self.metrics.inc("ingest_refused_streams", reason="internal")
                    await context.abort(grpc.StatusCode.UNAVAILABLE, "the ingest could not store the batch; resend")
                    return
                else:  # the gateway ended the stream
                    return
        finally:
            reader.cancel()
            drained.cancel()
            self.active_streams -= 1
            ACTIVE_STREAMS.dec()
            if not self.active_streams:
                self._no_streams.set()

    async def _read(self, it: AsyncIterator[Received | ingest_pb2.UploadRequest | None],
                    context: grpc.aio.ServicerContext[Any, Any], drained: asyncio.Future[Any],
                    steps: asyncio.Queue[_Step]) -> None:
        """Read, check and start writing batches, handing the replier one step per request, in order.
        Anything that ends the stream is the last step."""
        stream: _Stream | None = None
        previous: asyncio.Task[_Outcome | None] | None = None
        try:
            while True:
                request = await self._next(it, drained)
                if request is _DRAINED or request is _END:
                    await steps.put(_Step(end=request))
                    return
                if request is None:
                    await steps.put(_Step(end=_MALFORMED))
                    return
                received = request if isinstance(request, Received) else Received(request)
                request = received.request
                if stream is None:
                    stream = await self._open(request, context)
                    continue
                if request.WhichOneof("message") != "batch":
                    raise _Refused(grpc.StatusCode.INVALID_ARGUMENT, "after Hello only batches may follow", "protocol")
                prepared = await self._prepare(stream, received)
                if isinstance(prepared, ingest_pb2.UploadResponse):
                    await steps.put(_Step(reply=prepared))
                    continue
                previous = self._write_after(previous, stream.gateway, prepared)
                await steps.put(_Step(write=previous, gateway=stream.gateway))
        except _Refused as exc:
            await steps.put(_Step(refused=exc, gateway=stream.gateway if stream else None))
        except Exception:  # e.g. the database failed while checking a certificate or grants
            log.exception("batch failed", gateway=stream.gateway if stream else None)
            await steps.put(_Step(end=_INTERNAL))

    async def _next(self, it: AsyncIterator[Any], drained: asyncio.Future[Any]) -> Any:
        """The next request, or _DRAINED. A read left behind (drained, or the reader cancelled when the
        stream ends) is cancelled and its outcome consumed, so it is never reported as unretrieved."""
        read = asyncio.ensure_future(anext(it, _END))
        read.add_done_callback(_consume)
        try:
            await asyncio.wait({read, drained}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not read.done():
                read.cancel()
        if read.done() and not read.cancelled():
            return read.result()
        return _DRAINED

    async def _open(self, request: ingest_pb2.UploadRequest, context: grpc.aio.ServicerContext[Any, Any]) -> _Stream:
        if request.WhichOneof("message") != "hello" or not request.hello.gateway_id:
            raise _Refused(grpc.StatusCode.INVALID_ARGUMENT, "the first message must be a Hello with gateway_id",
                           "protocol")
        claimed = request.hello.gateway_id
        if not GATEWAY_ID.fullmatch(claimed):
            raise _Refused(grpc.StatusCode.INVALID_ARGUMENT, "gateway_id must be 1-64 of A-Z a-z 0-9 . _ -",
                           "protocol")
        identity: GatewayIdentity | None = None
        if self._settings.tls:
            try:
                identity = peer_identity(context)
            except (CertificateError, ValueError) as exc:
                raise _Refused(grpc.StatusCode.UNAUTHENTICATED, f"client certificate refused: {exc}",
                               "certificate") from None
            if claimed != identity.gateway_id:
                raise _Refused(grpc.StatusCode.PERMISSION_DENIED,
                               f"Hello names {claimed!r} but the certificate is for {identity.gateway_id!r}",
                               "hello_mismatch")
            await self._check_certificate(identity)
        stream = _Stream(identity, claimed)
        self.metrics.inc("ingest_streams_opened")
        log.info("gateway connected", gateway=claimed, version=request.hello.software_version, peer=context.peer(),
                 serial=identity.serial if identity else None)
        return stream

    async def _check_certificate(self, identity: GatewayIdentity) -> None:
        status = await asyncio.to_thread(certificate_status, self._engine, identity.serial)
        if status != "ok":
            raise _Refused(grpc.StatusCode.UNAUTHENTICATED,
                           f"certificate {identity.serial} of {identity.gateway_id!r} is {status}", f"cert_{status}")

    async def _prepare(self, stream: _Stream, received: Received) -> PreparedBatch | ingest_pb2.UploadResponse:
        """Validate, authorize and rate-limit a batch and build its Kafka records; or the rejection reply."""
        batch = received.request.batch
        try:
            checked = validate_batch(batch, self._settings.limits, size=received.batch_size)
        except InvalidBatch as exc:
            self.counters.rejected_batches += 1
            self.metrics.inc("ingest_rejected_batches", reason=exc.code)
            log.warning("batch rejected", gateway=stream.gateway, batch_id=batch.batch_id, reason=str(exc))
            return ingest_pb2.UploadResponse(rejected=ingest_pb2.BatchRejected(
                batch_id=batch.batch_id, reason=str(exc), reason_code=exc.code))
        if stream.identity is not None and \
                time.monotonic() - stream.checked_at >= self._settings.authz.revocation_recheck_s:
            await self._check_certificate(stream.identity)
            stream.checked_at = time.monotonic()
        if self._settings.authz.enforce:
            await self._authorize(stream.gateway, batch, checked.senders)
        await self._throttle(stream.gateway, len(batch.records), checked.size)
        prepared = prepare_records(batch, stream.gateway, self._topics, received.record_bytes)
        if tracing_enabled():
            self._continue_traces(stream.gateway, prepared)
        return prepared

    def _continue_traces(self, gateway: str, prepared: PreparedBatch) -> None:
        """A traced alarm gets the ingest's span, passed on to the processor in a ``traceparent`` header."""
        for record, out in zip(prepared.batch.records, prepared.outgoing, strict=True):
            if record.kind != pb.STREAM_KIND_ALARMS or not record.trace_parent:
                continue
            if not valid_traceparent(record.trace_parent):
                self.metrics.inc("ingest_invalid_trace_context")  # the alarm goes on; only its trace ends here
                continue
            with child_span("ingest.alarm", record.trace_parent, kind="consumer",
                            attributes={"gateway": gateway, "alarm.id": record.alarm.alarm_id}) as traceparent:
                out.headers.append((TRACEPARENT, traceparent.encode()))

    def _write_after(self, previous: asyncio.Task[_Outcome | None] | None, gateway: str,
                     prepared: PreparedBatch) -> asyncio.Task[_Outcome | None]:
        """Write ``prepared`` once the write before it on this stream is done; None (nothing written)
        if that one failed or was partial, since its unacked records must reach Kafka first.

        The write continues if the gateway goes away meanwhile, so the ledger never misses what Kafka has."""
        async def write() -> _Outcome | None:
            if previous is not None:
                await asyncio.wait({previous})
                if previous.cancelled() or previous.exception() is not None or (outcome := previous.result()) is None \
                        or outcome[1]:
                    return None
            return await self._write(gateway, prepared)

        task = asyncio.create_task(write())
        self._writes.add(task)
        task.add_done_callback(_retire_write(self._writes))
        return task

    async def _authorize(self, gateway: str, batch: pb.TelemetryBatch, senders: Iterable[tuple[str, str]]) -> None:
        """Every (patient, device) pair of the batch must be assigned to the gateway: checked once per
        distinct pair; a refusal names the first record that is not covered."""
        grants = self._grants.cached(gateway)
        if grants is not None and all(grants.allows(patient, device) for patient, device in senders):
            return
        grants = await asyncio.to_thread(self._grants.load, gateway)  # a refusal is always re-checked
        bad = first_unauthorized(batch.records, grants)
        if bad is not None:
            raise _Refused(grpc.StatusCode.PERMISSION_DENIED,
                           f"gateway {gateway!r} is not assigned patient {bad.patient!r} / device {bad.device_id!r}",
                           "not_assigned")

    async def _throttle(self, gateway: str, records: int, size: int) -> None:
        rate = self._settings.rate
        now = time.monotonic()
        limiter = self._limiters.get(gateway)
        if limiter is None:
            limiter = self._limiters[gateway] = GatewayLimiter(
                TokenBucket.full(rate.records_per_s, rate.burst_s, now),
                TokenBucket.full(rate.bytes_per_s, rate.burst_s, now))
        wait = limiter.admit(records, size, now, rate.max_wait_s)
        if wait is None:
            raise _Refused(grpc.StatusCode.RESOURCE_EXHAUSTED, f"gateway {gateway!r} is over its rate limit",
                           "rate_limited")
        if wait > 0:
            self.metrics.inc("ingest_throttled_batches")
            await asyncio.sleep(wait)

    async def _write(self, gateway: str, prepared: PreparedBatch) -> _Outcome:
        """Wait for room in the in-flight bound *before* claiming the streams: a claim is renewed only
        while its records are with Kafka, so one held while waiting here could expire and let another
        connection write the same records."""
        held = await self._in_flight.acquire(len(prepared.outgoing))
        try:
            return await self._write_claimed(gateway, prepared)
        finally:
            await self._in_flight.release(held)

    async def _write_claimed(self, gateway: str, prepared: PreparedBatch) -> _Outcome:
        """Claim the streams, write what the ledger does not have yet, and only then move the ledger
        forward over what Kafka confirmed (so a failed record is resent, never taken as a duplicate)."""
        batch = prepared.batch
        self.counters.batches += 1
        streams = list(prepared.first)
        owner = self._ledger.new_owner()
        expected = await self._claim(gateway, streams, owner)
        if all(first >= expected[s] for s, first in prepared.first.items()):  # the usual case: nothing replayed
            fresh: Sequence[pb.Record] = batch.records
            dups: Ranges = {}
            outgoing = prepared.outgoing
        else:
            fresh, dups = split_duplicates(batch.records, expected)
            outgoing = [o for r, o in zip(batch.records, prepared.outgoing, strict=True)
                        if r.sequence >= expected[r.stream_id]]
        errors: list[Exception | None] = []
        try:
            if outgoing:
                errors = await self._send_renewing(gateway, streams, owner, outgoing)
        finally:
            if not errors:
                written, failed = {}, 0
            elif not dups and not any(errors):
                written, failed = {s: (first, prepared.last[s]) for s, first in prepared.first.items()}, 0
            else:
                written, failed = delivered_ranges(fresh, errors)
            lost = await asyncio.to_thread(self._ledger.commit, gateway, owner, expected,
                                           {s: hi + 1 for s, (_, hi) in written.items()})
        if lost:
            self.metrics.inc("ingest_ledger_claims_lost", len(lost))
            log.warning("ledger claim lost while writing; records may be duplicated", gateway=gateway, streams=lost)
        if failed:
            self.counters.kafka_failures += failed
            self.metrics.inc("ingest_kafka_failures", failed)
            log.warning("kafka delivery failed", gateway=gateway, streams=failed,
                        error=str(next(e for e in errors if e is not None)))
        n_written = sum(hi - lo + 1 for lo, hi in written.values())
        n_dups = sum(hi - lo + 1 for lo, hi in dups.values())
        self.counters.records_written += n_written
        self.counters.duplicates += n_dups
        self.metrics.inc("ingest_batches")
        self._count_written(written)
        self.metrics.inc("ingest_records_duplicate", n_dups)
        return ack_for(batch.batch_id, dups, written), failed > 0

    def _count_written(self, written: Ranges) -> None:
        """Records written, by stream kind: one step per stream of the batch, none per record."""
        by_kind: dict[str, int] = {}
        for stream_id, (lo, hi) in written.items():
            kind = stream_kind(stream_id)
            by_kind[kind] = by_kind.get(kind, 0) + hi - lo + 1
        for kind, n in by_kind.items():
            self.metrics.inc("ingest_records_written", n, kind=kind)

    async def _claim(self, gateway: str, streams: list[str], owner: str) -> dict[str, int]:
        """Wait (bounded) until no other replica or connection is writing these streams."""
        delivery = self._settings.kafka.delivery_timeout_s or _MAX_CLAIM_WAIT_S  # 0: Kafka never times out
        deadline = time.monotonic() + self._settings.flow.claim_ttl_s + min(delivery, _MAX_CLAIM_WAIT_S)
        delay = 0.005
        while True:
            got = await asyncio.to_thread(self._ledger.claim, gateway, streams, owner)
            if got:
                return got
            self.metrics.inc("ingest_claim_waits")
            if time.monotonic() > deadline:
                raise _Refused(grpc.StatusCode.UNAVAILABLE, "streams are busy on another ingest replica; retry",
                               "claim_timeout")
            await asyncio.sleep(jittered(delay))
            delay = min(delay * 2, 0.1)

    async def _send_renewing(self, gateway: str, streams: list[str], owner: str,
                             outgoing: list[OutgoingRecord]) -> list[Exception | None]:
        send = asyncio.ensure_future(self._bridge.send(outgoing))
        send.add_done_callback(_consume)
        began = time.perf_counter()
        send.add_done_callback(lambda _f: KAFKA_PRODUCE_LATENCY.observe(time.perf_counter() - began))
        interval = self._settings.flow.claim_ttl_s / 3
        try:
            while True:
                done, _ = await asyncio.wait({send}, timeout=interval)
                if done:
                    return send.result()
                with contextlib.suppress(Exception):  # a failed renewal shows up as a lost claim at commit
                    await asyncio.to_thread(self._ledger.renew, gateway, streams, owner)
        finally:
            send.cancel()  # only when shutting down mid-write: nothing is acked, the gateway resends


_Outcome = tuple[ingest_pb2.UploadResponse, bool]  # the reply, and whether Kafka refused part of the batch
_END = object()
_DRAINED = object()
_MALFORMED = object()
_INTERNAL = object()


@dataclass(frozen=True, slots=True)
class _Step:
    """What the reader hands the replier: a write to await, a reply to send, or why the stream ends."""

    write: asyncio.Task[_Outcome | None] | None = None
    reply: ingest_pb2.UploadResponse | None = None
    refused: _Refused | None = None
    end: object | None = None
    gateway: str | None = None


def _consume(fut: asyncio.Future[Any]) -> None:
    """Mark a future's exception as retrieved: whoever awaits it reports it; one nobody awaits any more
    (a read or a write left behind by a closed stream) must not log from a finalizer later."""
    if not fut.cancelled():
        fut.exception()


def _retire_write(writes: set[asyncio.Task[Any]]) -> Callable[[asyncio.Task[Any]], None]:
    def done(task: asyncio.Task[Any]) -> None:
        writes.discard(task)
        _consume(task)
    return done
