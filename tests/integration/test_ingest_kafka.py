"""The ingest against a real Kafka protocol broker (tansu): acks, de-duplication, rejection; Kafka
unreachable mid-stream (behind a pausable relay) and the producer replaced after a fatal error;
the pipelined Upload stream (against a stand-in bridge).

The gRPC server runs in the test's event loop on loopback; tansu runs as a subprocess.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc.aio
import pytest
from confluent_kafka import KafkaError, KafkaException

from cardiogate.app.kafka_reader import RecordReader
from cardiogate.app.stack import free_port
from cardiogate.cloud.db import make_engine
from cardiogate.cloud.ingest import IngestService
from cardiogate.cloud.kafka_bridge import KafkaBridge, OutgoingRecord, ensure_topics, is_fatal, producer_config
from cardiogate.cloud.server import _ingest_handler, serve
from cardiogate.cloud.settings import AuthzSettings, CloudSettings, KafkaSettings
from cardiogate.cloud.tansu import start_tansu, tansu_binary, wait_for_port
from cardiogate.edge.outbox import Outbox
from cardiogate.edge.settings import UplinkSettings
from cardiogate.edge.uplink import Uplink, encode_batch_request
from cardiogate.proto.v1 import ingest_pb2, ingest_pb2_grpc
from cardiogate.proto.v1 import telemetry_pb2 as pb
from tests.integration.cloud_testkit import cloud_settings, eventually, running_cloud

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def kafka() -> Iterator[str]:
    port = free_port()
    proc = start_tansu(port)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        proc.kill()
        proc.wait()


@pytest.fixture
async def ingest(kafka: str, tmp_path: Path) -> AsyncIterator[str]:
    listen = f"127.0.0.1:{free_port()}"
    settings = CloudSettings(listen=listen, database=tmp_path / "cloud.sqlite3", kafka=KafkaSettings(bootstrap=kafka),
                             tls=False, authz=AuthzSettings(enforce=False))  # identity is tested in test_cloud_*
    started = asyncio.Event()
    task = asyncio.create_task(serve(settings, started))
    await asyncio.wait_for(started.wait(), 30)
    yield listen
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def vitals(seq: int, patient: str = "pt-7001", device: str = "C0:00:00:00:00:71") -> pb.Record:
    now = time.time_ns()
    return pb.Record(stream_id=f"{device}/vitals", sequence=seq, device_id=device, patient=patient,
                     kind=pb.STREAM_KIND_VITALS,
                     vitals=pb.VitalsRecord(device_time_ns=now, receive_time_ns=now, heart_rate_bpm=60.0 + seq))


async def upload(target: str, batches: list[pb.TelemetryBatch]) -> list[Any]:
    async with grpc.aio.insecure_channel(target) as channel:
        call: Any = ingest_pb2_grpc.IngestStub(channel).Upload()  # type: ignore[call-arg]
        await call.write(ingest_pb2.UploadRequest(hello=ingest_pb2.Hello(gateway_id="gw-it-1")))
        replies = []
        for batch in batches:
            await call.write(ingest_pb2.UploadRequest(batch=batch))
            replies.append(await call.read())
        await call.done_writing()
        return replies


def read_vitals(bootstrap: str, device: str) -> list[pb.Record]:
    reader = RecordReader(bootstrap, ["vitals"])
    try:
        return [kr.record for kr in reader.poll(4.0) if kr.record.device_id == device]
    finally:
        reader.close()


async def test_a_replayed_batch_is_acked_but_written_once(ingest: str, kafka: str) -> None:
    batch = pb.TelemetryBatch(batch_id=1, records=[vitals(0), vitals(1), vitals(2)])
    first, again = await upload(ingest, [batch, batch])
    assert first.ack.duplicates == 0
    assert [(r.stream_id, r.first, r.last) for r in first.ack.ranges] == [("C0:00:00:00:00:71/vitals", 0, 2)]
    assert again.ack.duplicates == 3
    assert [(r.first, r.last) for r in again.ack.ranges] == [(0, 2)]
    # a new connection (a restarted gateway) replaying part of the stream plus new records
    (third,) = await upload(ingest, [pb.TelemetryBatch(batch_id=1, records=[vitals(2), vitals(3)])])
    assert third.ack.duplicates == 1
    records = await asyncio.to_thread(read_vitals, kafka, "C0:00:00:00:00:71")
    assert sorted(r.sequence for r in records) == [0, 1, 2, 3]


async def test_invalid_batches_are_rejected_and_nothing_of_them_is_written(ingest: str, kafka: str) -> None:
    bad_patient = vitals(0, patient="John Smith", device="C0:00:00:00:00:72")
    mixed = pb.TelemetryBatch(batch_id=7, records=[vitals(0, device="C0:00:00:00:00:72"), bad_patient])
    (reply,) = await upload(ingest, [mixed])
    assert reply.WhichOneof("message") == "rejected"
    assert reply.rejected.batch_id == 7 and "pseudonym" in reply.rejected.reason
    assert await asyncio.to_thread(read_vitals, kafka, "C0:00:00:00:00:72") == []


async def test_a_stream_that_does_not_start_with_hello_is_refused(ingest: str) -> None:
    async with grpc.aio.insecure_channel(ingest) as channel:
        call: Any = ingest_pb2_grpc.IngestStub(channel).Upload()  # type: ignore[call-arg]
        await call.write(ingest_pb2.UploadRequest(batch=pb.TelemetryBatch(batch_id=1, records=[vitals(0)])))
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call.read()
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


# -- Kafka unreachable: records wait, or fail back and are resent; a fenced producer is replaced ----------


class PausableProxy:
    """A TCP relay in front of the broker, in its own thread: ``pause()`` cuts every connection and
    refuses new ones (Kafka unreachable, as far as the ingest can tell); ``resume()`` lets them in."""

    def __init__(self, target_port: int) -> None:
        self.port = free_port()
        self._target = target_port
        self._paused = False
        self._open: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), name="kafka-proxy", daemon=True)
        self._thread.start()
        assert ready.wait(10)

    def _run(self, ready: threading.Event) -> None:
        self._server = self._loop.run_until_complete(asyncio.start_server(self._accept, "127.0.0.1", self.port))
        ready.set()
        self._loop.run_forever()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._paused:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._target)
        except OSError:
            writer.transport.abort()
            return
        self._open |= {writer, up_writer}
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        self._open -= {writer, up_writer}

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(1 << 16):
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.transport.abort()

    def _cut(self) -> None:
        self._paused = True
        for w in self._open:
            w.transport.abort()

    def pause(self) -> None:
        self._loop.call_soon_threadsafe(self._cut)

    def resume(self) -> None:
        self._loop.call_soon_threadsafe(setattr, self, "_paused", False)

    async def _shutdown(self) -> None:
        self._server.close()
        self._cut()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()


@pytest.fixture
def proxied_kafka() -> Iterator[tuple[str, PausableProxy]]:
    """A fresh tansu that advertises the proxy's address, so every connection the clients make goes
    through it. Yields (bootstrap via the proxy, proxy)."""
    port = free_port()
    proxy = PausableProxy(port)
    url = f"tcp://127.0.0.1:{port}"
    proc = subprocess.Popen([str(tansu_binary()), "broker", "--listener-url", url, "--advertised-listener-url",
                             f"tcp://127.0.0.1:{proxy.port}", "--storage-engine", "memory://tansu/"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for_port("127.0.0.1", port, 20.0)
        yield f"127.0.0.1:{proxy.port}", proxy
    finally:
        proc.kill()
        proc.wait()
        proxy.close()


def test_which_errors_retire_the_producer() -> None:
    assert is_fatal(KafkaError(KafkaError._FATAL, "x", fatal=True))
    assert is_fatal(KafkaException(KafkaError(KafkaError._INVALID_ARG, "fatal flag", fatal=True)))
    assert is_fatal(KafkaError(KafkaError.PRODUCER_FENCED))  # tansu's answer after an epoch bump: no fatal flag
    assert not is_fatal(KafkaError(KafkaError._MSG_TIMED_OUT))
    assert not is_fatal(KafkaError(KafkaError._ALL_BROKERS_DOWN))
    assert not is_fatal(RuntimeError("x"))


def test_delivery_timeout_zero_means_never() -> None:
    assert producer_config(KafkaSettings(delivery_timeout_s=0))["message.timeout.ms"] == 0
    assert KafkaSettings().delivery_timeout_s >= 300  # outlasts a broker restart or a network blip


async def test_a_fatal_producer_error_fails_what_it_held_and_a_new_producer_takes_over(
        proxied_kafka: tuple[str, PausableProxy]) -> None:
    bootstrap, proxy = proxied_kafka
    settings = KafkaSettings(bootstrap=bootstrap)
    await asyncio.to_thread(ensure_topics, settings)

    def rec(i: int) -> OutgoingRecord:
        return OutgoingRecord("vitals", b"pt-7100", vitals(i, "pt-7100", "C0:00:00:00:71:00").SerializeToString(),
                              [("seq", str(i).encode())])

    bridge = KafkaBridge(settings)
    try:
        assert await bridge.send([rec(0), rec(1)]) == [None, None]
        proxy.pause()
        held = asyncio.ensure_future(bridge.send([rec(2), rec(3), rec(4)]))  # waits: the broker is unreachable
        await asyncio.sleep(1.0)
        assert not held.done()
        bridge.inject_fatal(KafkaError(KafkaError._FATAL, "injected", fatal=True))
        errors = await asyncio.wait_for(held, 10)
        assert len(errors) == 3 and all(e is not None for e in errors)  # purged, or failed with the fatal error
        assert bridge.generation == 1
        proxy.resume()
        assert await asyncio.wait_for(bridge.send([rec(5)]), 30) == [None]
    finally:
        await asyncio.to_thread(bridge.close)
    records = await asyncio.to_thread(read_vitals, bootstrap, "C0:00:00:00:71:00")
    assert sorted(r.sequence for r in records) == [0, 1, 5]  # the failed records never reached Kafka


@pytest.mark.parametrize("delivery_timeout_s", [0.0, 2.0], ids=["records-wait", "records-fail-back"])
async def test_a_kafka_outage_mid_stream_ends_with_every_record_in_kafka_once(
        proxied_kafka: tuple[str, PausableProxy], tmp_path: Path, delivery_timeout_s: float) -> None:
    """A gateway (outbox + uplink) streams through the ingest while Kafka is unreachable for 6 s.
    With no delivery timeout the records wait in the producer; with 2 s they fail back, the ingest
    acks none of them, the gateway resends, and the producer, fenced by tansu after its records
    timed out, is replaced. Either way every record ends up in Kafka exactly once.

    The cut is made between writes (the test drains the outbox first): a cut in the middle of a
    produce request is the idempotent producer's job (a retry with the same sequence), not the ingest's."""

    bootstrap, proxy = proxied_kafka
    device, patient = "C0:00:00:00:72:00", "pt-7200"
    settings = cloud_settings(bootstrap, f"sqlite:///{tmp_path / 'cloud.sqlite3'}", None,
                              authz=AuthzSettings(enforce=False),
                              kafka=KafkaSettings(bootstrap=bootstrap, delivery_timeout_s=delivery_timeout_s))
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    uplink = Uplink("gw-it-outage", outbox, UplinkSettings(
        target=settings.listen, tls=False, batch_max_age_s=0.05, backoff_initial_s=0.2, backoff_max_s=1.0))
    appended = 0

    async def append(n: int) -> None:
        nonlocal appended
        for _ in range(n):
            outbox.append(vitals(0, patient, device))
            appended += 1
            uplink.notify()
            await asyncio.sleep(0.02)

    async with running_cloud(settings) as running:
        sending = asyncio.create_task(uplink.run())
        try:
            await append(50)
            await eventually(lambda: outbox.depth() == 0, 10, "the first records acked")
            proxy.pause()
            await append(100)  # 2 s of records while Kafka is unreachable, then 4 s more of outage
            await asyncio.sleep(4.0)
            assert outbox.depth() > 0  # nothing written, so nothing acked
            proxy.resume()
            await append(50)
            await eventually(lambda: outbox.depth() == 0, 30, "every record acked after the outage")
        finally:
            sending.cancel()
            await asyncio.gather(sending, return_exceptions=True)
            outbox.close()
        failures = running.ingest.counters.kafka_failures
        replaced = running.ingest.bridge.replacements
    if delivery_timeout_s:
        assert failures > 0 and replaced >= 1  # the fail-back path and the producer replacement both ran
    else:
        assert failures == 0 and replaced == 0
    records = await asyncio.to_thread(read_vitals, bootstrap, device)
    assert sorted(r.sequence for r in records) == list(range(appended))  # each exactly once


# -- the pipelined Upload stream (a stand-in bridge, so the test decides when "Kafka" answers) ---------


class HeldBridge:
    """Records every send and answers only when released; the records of ``fail_batch`` fail."""

    def __init__(self, fail_batch: int | None = None) -> None:
        self.sent: list[list[int]] = []
        self.release = asyncio.Event()
        self._fail_batch = fail_batch

    async def send(self, records: list[OutgoingRecord]) -> list[Exception | None]:
        self.sent.append([int(dict(r.headers)["seq"] or b"-1") for r in records])
        await self.release.wait()
        failed = len(self.sent) == self._fail_batch
        return [KafkaException(KafkaError(KafkaError._MSG_TIMED_OUT)) if failed else None for _ in records]


@contextlib.asynccontextmanager
async def held_ingest(tmp_path: Path, bridge: HeldBridge) -> AsyncIterator[str]:
    """A plaintext ingest (SQLite ledger, no authorization) writing to ``bridge``; yields its address."""

    settings = CloudSettings(database=tmp_path / "cloud.sqlite3", tls=False, authz=AuthzSettings(enforce=False))
    engine = make_engine(settings.db_url)
    server = grpc.aio.server()
    service = IngestService(settings, bridge, engine)  # type: ignore[arg-type]
    server.add_generic_rpc_handlers((_ingest_handler(service),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(0)
        engine.dispose()


async def open_upload(channel: grpc.aio.Channel) -> Any:
    call: Any = ingest_pb2_grpc.IngestStub(channel).Upload()  # type: ignore[call-arg]
    await call.write(ingest_pb2.UploadRequest(hello=ingest_pb2.Hello(gateway_id="gw-it-pipe")))
    return call


async def test_the_next_batch_is_read_while_one_waits_for_kafka_and_written_after_it(tmp_path: Path) -> None:
    bridge = HeldBridge()
    async with held_ingest(tmp_path, bridge) as target, grpc.aio.insecure_channel(target) as channel:
        call = await open_upload(channel)
        await call.write(ingest_pb2.UploadRequest(batch=pb.TelemetryBatch(batch_id=1, records=[vitals(0), vitals(1)])))
        await call.write(ingest_pb2.UploadRequest(batch=pb.TelemetryBatch(batch_id=2, records=[vitals(2)])))
        await asyncio.sleep(0.3)
        assert bridge.sent == [[0, 1]]  # batch 2 is read and checked, but waits for batch 1's write
        bridge.release.set()
        first, second = await call.read(), await call.read()
        assert (first.ack.batch_id, second.ack.batch_id) == (1, 2)  # replies in order
        assert [(r.first, r.last) for r in second.ack.ranges] == [(2, 2)]
        assert bridge.sent == [[0, 1], [2]]
        await call.done_writing()


async def test_a_batch_read_after_a_partly_failed_one_is_not_written(tmp_path: Path) -> None:
    """Writing it would put records in Kafka behind a gap the gateway is about to fill: they would be
    resent with the gap and written twice."""
    bridge = HeldBridge(fail_batch=1)
    async with held_ingest(tmp_path, bridge) as target, grpc.aio.insecure_channel(target) as channel:
        call = await open_upload(channel)
        await call.write(ingest_pb2.UploadRequest(batch=pb.TelemetryBatch(batch_id=1, records=[vitals(0)])))
        await call.write(ingest_pb2.UploadRequest(batch=pb.TelemetryBatch(batch_id=2, records=[vitals(1)])))
        await asyncio.sleep(0.3)
        bridge.release.set()
        reply = await call.read()
        assert reply.ack.batch_id == 1 and list(reply.ack.ranges) == []
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call.read()
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        assert bridge.sent == [[0]]


def test_the_uplinks_pre_encoded_batch_is_the_message_protobuf_would_send() -> None:
    records = [vitals(i) for i in range(130)]
    for batch_id in (1, 127, 128, 2**40):
        expected = ingest_pb2.UploadRequest(batch=pb.TelemetryBatch(batch_id=batch_id, records=records))
        assert encode_batch_request(batch_id, [r.SerializeToString() for r in records]) == \
            expected.SerializeToString()
