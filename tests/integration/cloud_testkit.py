"""Shared pieces of the cloud integration tests: real tansu, real PostgreSQL, a local CA, a
running ingest in the test's event loop, record builders and an mTLS upload client."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import pytest
from sqlalchemy import Engine, create_engine, text

from cardiogate.app.kafka_reader import KafkaRecord, RecordReader
from cardiogate.app.stack import free_port
from cardiogate.cloud.server import Running, serve
from cardiogate.cloud.settings import CloudSettings, EnrollmentSettings, KafkaSettings, PkiSettings
from cardiogate.cloud.tansu import start_tansu
from cardiogate.proto.v1 import ingest_pb2, ingest_pb2_grpc
from cardiogate.proto.v1 import telemetry_pb2 as pb
from tests.conftest import port_open

PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@contextlib.contextmanager
def tansu() -> Iterator[str]:
    port = free_port()
    proc: subprocess.Popen[bytes] = start_tansu(port)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def postgres_schema() -> Iterator[str]:
    """A fresh schema in the ``test`` database; yields a URL whose search_path is that schema."""
    if not port_open("127.0.0.1", 5432):
        pytest.fail("PostgreSQL must answer on 127.0.0.1:5432 (database 'test', trust auth) for these tests")
    schema = f"cg_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_ADMIN_URL)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        yield f"{PG_ADMIN_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def local_pki(directory: Path) -> PkiSettings:
    from cardiogate.cloud.pki import ensure_local_pki

    pki = PkiSettings(ca_cert=directory / "ca.crt", ca_key=directory / "ca.key",
                      server_cert=directory / "server.crt", server_key=directory / "server.key")
    ensure_local_pki(pki.ca_cert, pki.ca_key, pki.server_cert, pki.server_key)
    return pki


def cloud_settings(bootstrap: str, db_url: str, pki: PkiSettings | None, **extra: Any) -> CloudSettings:
    extra.setdefault("tls", pki is not None)
    extra.setdefault("kafka", KafkaSettings(bootstrap=bootstrap))
    extra.setdefault("pki", pki or PkiSettings())
    return CloudSettings(listen=f"127.0.0.1:{free_port()}", database_url=db_url,
                         enrollment=EnrollmentSettings(listen=f"127.0.0.1:{free_port()}"), **extra)


@contextlib.asynccontextmanager
async def running_cloud(settings: CloudSettings) -> AsyncIterator[Running]:
    started = asyncio.Event()
    handle: list[Running] = []
    task = asyncio.create_task(serve(settings, started, handle))
    done, _ = await asyncio.wait({task, asyncio.ensure_future(started.wait())}, timeout=30,
                                 return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        task.result()
    assert handle, "the cloud did not start within 30 s"
    try:
        yield handle[0]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def eventually(predicate: Callable[[], bool], timeout_s: float = 10.0, what: str = "condition") -> None:
    for _ in range(int(timeout_s / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{what} did not happen within {timeout_s} s")


# -- records ----------------------------------------------------------------------------------------


def vitals(seq: int, patient: str, device: str, hr: float | None = None, spo2: float | None = None,
           t: int | None = None) -> pb.Record:
    now = time.time_ns() if t is None else t
    v = pb.VitalsRecord(device_time_ns=now, receive_time_ns=now, source="hrm")
    if hr is not None:
        v.heart_rate_bpm = hr
    if spo2 is not None:
        v.spo2_percent = spo2
    return pb.Record(stream_id=f"{device}/vitals", sequence=seq, device_id=device, patient=patient,
                     kind=pb.STREAM_KIND_VITALS, vitals=v)


def alarm(seq: int, patient: str, device: str, alarm_id: str, state: pb.AlarmState.ValueType,
          t: int | None = None) -> pb.Record:
    now = time.time_ns() if t is None else t
    return pb.Record(stream_id=f"{device}/alarms", sequence=seq, device_id=device, patient=patient,
                     kind=pb.STREAM_KIND_ALARMS,
                     alarm=pb.Alarm(alarm_id=alarm_id, condition="tachycardia", priority=pb.ALARM_PRIORITY_MEDIUM,
                                    state=state, value=131.0, limit=120.0, onset_sample_device_time_ns=now - 5,
                                    trigger_sample_device_time_ns=now, decision_time_ns=now, publish_time_ns=now))


def gap_event(seq: int, patient: str, device: str, first: int, last: int) -> pb.Record:
    now = time.time_ns()
    gap = pb.Gap(stream=pb.STREAM_KIND_ECG, device_sequence_first=first, device_sequence_last=last,
                 start_device_time_ns=now - 10**9, end_device_time_ns=now, missing_samples=250,
                 cause=pb.GAP_CAUSE_LINK_LOSS, sample_rate_hz=250.0)
    return pb.Record(stream_id=f"{device}/events", sequence=seq, device_id=device, patient=patient,
                     kind=pb.STREAM_KIND_EVENTS, event=pb.DeviceEvent(device_time_ns=now, receive_time_ns=now, gap=gap))


# -- clients -----------------------------------------------------------------------------------------


@dataclass
class Gateway:
    """A client with (or without) an identity: enough to speak the Upload protocol."""

    gateway_id: str
    credentials: grpc.ChannelCredentials | None  # None: plaintext

    def channel(self, target: str) -> grpc.aio.Channel:
        if self.credentials is None:
            return grpc.aio.insecure_channel(target)
        return grpc.aio.secure_channel(target, self.credentials)

    async def upload(self, target: str, batches: list[pb.TelemetryBatch], hello_id: str | None = None) -> list[Any]:
        """Hello, then each batch awaiting its reply; raises AioRpcError if the stream is refused."""
        async with self.channel(target) as channel:
            call: Any = ingest_pb2_grpc.IngestStub(channel).Upload()  # type: ignore[call-arg]
            await call.write(ingest_pb2.UploadRequest(hello=ingest_pb2.Hello(gateway_id=hello_id or self.gateway_id)))
            replies = []
            for batch in batches:
                await call.write(ingest_pb2.UploadRequest(batch=batch))
                replies.append(await call.read())
            await call.done_writing()
            await finish(call)
            return replies


async def finish(call: Any) -> None:
    """Wait for the end of a stream; raise its status unless OK."""
    code = await call.code()
    if code != grpc.StatusCode.OK:
        raise grpc.aio.AioRpcError(code, await call.initial_metadata(), await call.trailing_metadata(),
                                   await call.details(), None)


def issued_gateway(settings: CloudSettings, engine: Engine, gateway_id: str) -> Gateway:
    """A gateway with a certificate from the cloud CA, recorded as enrollment would (no token round trip)."""
    from cryptography.hazmat.primitives.serialization import Encoding

    from cardiogate.cloud.identity import record_certificate
    from cardiogate.cloud.pki import issue_gateway_cert, key_pem, load_ca, new_key, serial_hex

    ca = load_ca(settings.pki.ca_cert, settings.pki.ca_key)
    key = new_key()
    cert = issue_gateway_cert(ca, key.public_key(), gateway_id, 1)
    record_certificate(engine, None, gateway_id, serial_hex(cert), 0, 2**62)
    return Gateway(gateway_id, grpc.ssl_channel_credentials(ca.cert_pem, key_pem(key), cert.public_bytes(Encoding.PEM)))


def read_topic(bootstrap: str, topic: str, wait_s: float = 4.0) -> list[KafkaRecord]:
    reader = RecordReader(bootstrap, [topic])
    try:
        return list(reader.poll(wait_s))
    finally:
        reader.close()
