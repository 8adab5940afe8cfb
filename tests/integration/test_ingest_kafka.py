"""The ingest against a real Kafka protocol broker (tansu): acks, de-duplication, rejection.

The gRPC server runs in the test's event loop on loopback; tansu runs as a subprocess.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc.aio
import pytest

from cardiogate.kafka_reader import RecordReader
from cardiogate.stack import free_port
from cloud.server import serve
from cloud.settings import AuthzSettings, CloudSettings, KafkaSettings
from cloud.tansu import start_tansu
from proto.cardiogate.v1 import ingest_pb2, ingest_pb2_grpc
from proto.cardiogate.v1 import telemetry_pb2 as pb

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
