"""The gRPC uplink: drains the outbox into the cloud's Upload stream, forever.

Batches go out in row order (so each stream stays in sequence order) with a bounded
number in flight. Rows are deleted only when the cloud acks their sequence ranges,
which it does only after Kafka accepted them. Any break (network, server restart)
resets the cursor: unacked rows are sent again and the cloud drops the duplicates.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from typing import Any

import grpc
import grpc.aio

from cardiogate import __version__
from cardiogate.logs import get_logger
from edge.backoff import Backoff
from edge.outbox import Outbox, PendingRecord
from edge.settings import UplinkSettings
from proto.cardiogate.v1 import ingest_pb2, ingest_pb2_grpc
from proto.cardiogate.v1 import telemetry_pb2 as pb

log = get_logger(__name__)


class Uplink:
    """One gateway's connection to the cloud ingest."""

    def __init__(self, gateway_id: str, outbox: Outbox, settings: UplinkSettings) -> None:
        self._gateway_id = gateway_id
        self._outbox = outbox
        self._settings = settings
        self._wakeup = asyncio.Event()
        self.batches_sent = 0
        self.records_acked = 0
        self.records_rejected = 0
        self.connected = False

    def notify(self) -> None:
        """New rows are in the outbox."""
        self._wakeup.set()

    async def run(self) -> None:
        backoff = Backoff(self._settings.backoff_initial_s, self._settings.backoff_max_s)
        while True:
            try:
                async with grpc.aio.insecure_channel(self._settings.target) as channel:
                    await self._session(ingest_pb2_grpc.IngestStub(channel), backoff)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # whatever broke the stream, the uplink reconnects; it never dies
                detail = exc.details() if isinstance(exc, grpc.aio.AioRpcError) else repr(exc)
                log.warning("uplink broken", target=self._settings.target, error=detail)
            finally:
                self.connected = False
            await asyncio.sleep(backoff.next_delay())

    async def _session(self, stub: ingest_pb2_grpc.IngestStub, backoff: Backoff) -> None:
        # grpc.aio's stream-stream call (write/read/cancel); the generated stubs type the sync API.
        call: Any = stub.Upload()  # type: ignore[call-arg]
        await call.write(ingest_pb2.UploadRequest(
            hello=ingest_pb2.Hello(gateway_id=self._gateway_id, software_version=__version__)))
        in_flight: OrderedDict[int, list[PendingRecord]] = OrderedDict()
        window = asyncio.Semaphore(self._settings.max_in_flight)
        reader = asyncio.create_task(self._read_acks(call, in_flight, window, backoff))
        cursor = 0
        batch_id = 0
        self.connected = True
        log.info("uplink connected", target=self._settings.target)
        try:
            while not reader.done():
                rows = self._outbox.pending(cursor, self._settings.batch_max_records)
                if not rows:
                    self._wakeup.clear()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self._settings.batch_max_age_s):
                            await self._wakeup.wait()
                    continue
                await window.acquire()
                if reader.done():
                    break
                batch_id += 1
                batch = pb.TelemetryBatch(batch_id=batch_id)
                for row in rows:
                    batch.records.add().ParseFromString(row.payload)
                in_flight[batch_id] = rows
                await call.write(ingest_pb2.UploadRequest(batch=batch))
                self.batches_sent += 1
                cursor = rows[-1].row_id
            await reader  # re-raise why the reader stopped
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, grpc.aio.AioRpcError):
                await reader
            call.cancel()

    async def _read_acks(self, call: Any,
                         in_flight: OrderedDict[int, list[PendingRecord]], window: asyncio.Semaphore,
                         backoff: Backoff) -> None:
        try:
            await self._read_acks_until_broken(call, in_flight, window, backoff)
        finally:
            for _ in range(self._settings.max_in_flight):  # unblock a sender waiting for window space
                window.release()

    async def _read_acks_until_broken(self, call: Any, in_flight: OrderedDict[int, list[PendingRecord]],
                                      window: asyncio.Semaphore, backoff: Backoff) -> None:
        while True:
            response = await call.read()
            if response is grpc.aio.EOF:  # type: ignore[attr-defined]
                raise ConnectionError("ingest closed the stream")
            assert isinstance(response, ingest_pb2.UploadResponse)
            which = response.WhichOneof("message")
            if which == "ack":
                for r in response.ack.ranges:
                    self.records_acked += self._outbox.ack(r.stream_id, r.first, r.last)
                in_flight.pop(response.ack.batch_id, None)
                backoff.reset()
            elif which == "rejected":
                rows = in_flight.pop(response.rejected.batch_id, [])
                self._outbox.reject(rows, response.rejected.reason)
                self.records_rejected += len(rows)
                log.error("batch rejected by ingest", batch_id=response.rejected.batch_id,
                          reason=response.rejected.reason, records=len(rows))
            window.release()
