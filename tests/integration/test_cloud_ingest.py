"""Ingest hardening over real mTLS gRPC, real tansu and the SQLite cloud database: bad input is
refused and counted, unassigned patients are refused whole, rate limits, Kafka failures,
graceful drain, and the explicit plaintext mode."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import pytest

from cardiogate.app.stack import free_port
from cardiogate.cloud.authz import assign, unassign
from cardiogate.cloud.dedup import SequenceLedger
from cardiogate.cloud.server import Running
from cardiogate.cloud.settings import AuthzSettings, CloudSettings, IngestLimits, KafkaSettings, PkiSettings, RateLimits
from cardiogate.cloud.tansu import start_tansu
from cardiogate.core.settings import ConfigError
from cardiogate.proto.v1 import ingest_pb2, ingest_pb2_grpc
from cardiogate.proto.v1 import telemetry_pb2 as pb
from tests.integration.cloud_testkit import (
    Gateway,
    cloud_settings,
    eventually,
    issued_gateway,
    local_pki,
    read_topic,
    running_cloud,
    tansu,
    vitals,
)

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def kafka() -> Iterator[str]:
    with tansu() as bootstrap:
        yield bootstrap


def make_settings(bootstrap: str, tmp_path: Path, **extra: Any) -> CloudSettings:
    return cloud_settings(bootstrap, f"sqlite:///{tmp_path / 'cloud.sqlite3'}", local_pki(tmp_path / "pki"), **extra)


@pytest.fixture
async def cloud(kafka: str, tmp_path: Path) -> AsyncIterator[tuple[CloudSettings, Running]]:
    settings = make_settings(kafka, tmp_path, limits=IngestLimits(max_batch_bytes=4096),
                             authz=AuthzSettings(cache_ttl_s=0.3))
    async with running_cloud(settings) as running:
        yield settings, running


def written(kafka: str, device: str) -> list[int]:
    return sorted(kr.record.sequence for kr in read_topic(kafka, "vitals", 3.0) if kr.record.device_id == device)


async def test_malformed_and_oversized_batches_are_invalid_argument_and_counted(
        cloud: tuple[CloudSettings, Running], kafka: str) -> None:
    settings, running = cloud
    gw = issued_gateway(settings, running.engine, "gw-in-1")
    dev = "C0:00:00:00:02:01"
    assign(running.engine, "gw-in-1", "pt-0201")
    # bytes that are not an UploadRequest at all
    async with gw.channel(settings.listen) as channel:
        raw = channel.stream_stream("/cardiogate.v1.Ingest/Upload", request_serializer=bytes,
                                    response_deserializer=ingest_pb2.UploadResponse.FromString)
        call: Any = raw()  # type: ignore[call-arg]
        await call.write(b"\xff\xff\xff\xff garbage")
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call.read()
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    # over max_batch_bytes (4 KiB): refused whole, with a reason code
    big = pb.TelemetryBatch(batch_id=1, records=[vitals(i, "pt-0201", dev, hr=70.0) for i in range(80)])
    assert big.ByteSize() > 4096
    bad_patient = pb.TelemetryBatch(batch_id=2, records=[vitals(0, "pt-0201", dev), vitals(1, "Jane Doe", dev)])
    replies = await gw.upload(settings.listen, [big, bad_patient])
    assert [(r.rejected.batch_id, r.rejected.reason_code) for r in replies] == [(1, "oversized"), (2, "pseudonym")]
    # beyond the transport limit (2 x max_batch_bytes) gRPC itself refuses the message
    huge = pb.TelemetryBatch(batch_id=3, records=[vitals(i, "pt-0201", dev, hr=70.0) for i in range(200)])
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await gw.upload(settings.listen, [huge])
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    m = running.metrics
    assert (m.get("ingest_rejected_batches", reason="malformed"), m.get("ingest_rejected_batches", reason="oversized"),
            m.get("ingest_rejected_batches", reason="pseudonym")) == (1, 1, 1)
    assert await asyncio.to_thread(written, kafka, dev) == []


async def test_a_batch_with_an_unassigned_patient_is_refused_whole_until_assigned(
        cloud: tuple[CloudSettings, Running], kafka: str) -> None:
    settings, running = cloud
    gw = issued_gateway(settings, running.engine, "gw-in-2")
    dev = "C0:00:00:00:02:02"
    assign(running.engine, "gw-in-2", "pt-0202", dev)
    assign(running.engine, "gw-in-3", "pt-0203")  # another gateway's patient
    mixed = pb.TelemetryBatch(batch_id=1, records=[vitals(0, "pt-0202", dev), vitals(1, "pt-0203", dev)])
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await gw.upload(settings.listen, [mixed])
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "pt-0203" in (err.value.details() or "")
    other_device = pb.TelemetryBatch(batch_id=2, records=[vitals(0, "pt-0202", "C0:00:00:00:02:99")])
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await gw.upload(settings.listen, [other_device])
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert await asyncio.to_thread(written, kafka, dev) == []
    assert running.metrics.get("ingest_refused_streams", reason="not_assigned") == 2
    # assigning takes effect at once (a refusal always re-reads), no restart
    assign(running.engine, "gw-in-2", "pt-0203")
    (reply,) = await gw.upload(settings.listen, [mixed])
    assert reply.WhichOneof("message") == "ack"
    assert await asyncio.to_thread(written, kafka, dev) == [0, 1]
    # withdrawing takes effect within the cache TTL
    unassign(running.engine, "gw-in-2", "pt-0203")
    await asyncio.sleep(0.35)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await gw.upload(settings.listen, [pb.TelemetryBatch(batch_id=3, records=[vitals(2, "pt-0203", dev)])])
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_rate_limit_slows_then_refuses_a_gateway(kafka: str, tmp_path: Path) -> None:
    settings = make_settings(kafka, tmp_path, rate=RateLimits(records_per_s=50, burst_s=1.0, max_wait_s=1.5))
    async with running_cloud(settings) as running:
        gw = issued_gateway(settings, running.engine, "gw-in-4")
        assign(running.engine, "gw-in-4", "pt-0204")
        dev = "C0:00:00:00:02:04"

        def batch(n: int, first: int) -> pb.TelemetryBatch:
            return pb.TelemetryBatch(batch_id=first, records=[vitals(first + i, "pt-0204", dev) for i in range(n)])

        t0 = time.monotonic()
        # 50 empties the bucket; the next 50 wait for it to refill; 200 (bigger than the bucket) waits
        # for a full bucket and leaves it 150 in debt
        replies = await gw.upload(settings.listen, [batch(50, 0), batch(50, 50), batch(200, 100)])
        assert time.monotonic() - t0 >= 1.8
        assert [r.WhichOneof("message") for r in replies] == ["ack", "ack", "ack"]
        assert running.metrics.get("ingest_throttled_batches") >= 1
        with pytest.raises(grpc.aio.AioRpcError) as err:  # paying back the debt would take > max_wait_s
            await gw.upload(settings.listen, [batch(1, 300)])
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert running.metrics.get("ingest_refused_streams", reason="rate_limited") == 1
        assert await asyncio.to_thread(written, kafka, dev) == list(range(300))


async def test_drain_finishes_and_acks_the_batch_in_flight_then_ends_the_stream(kafka: str, tmp_path: Path) -> None:
    settings = make_settings(kafka, tmp_path)
    dev = "C0:00:00:00:02:05"
    async with running_cloud(settings) as running:
        gw = issued_gateway(settings, running.engine, "gw-in-5")
        assign(running.engine, "gw-in-5", "pt-0205")
        # Another replica holds the stream for a moment, so the batch is still in flight when the drain starts.
        other = SequenceLedger(running.engine, claim_ttl_s=1.0, replica="other")
        assert other.claim("gw-in-5", [f"{dev}/vitals"], "other:1") == {f"{dev}/vitals": 0}
        async with gw.channel(settings.listen) as channel:
            call: Any = ingest_pb2_grpc.IngestStub(channel).Upload()  # type: ignore[call-arg]
            await call.write(ingest_pb2.UploadRequest(hello=ingest_pb2.Hello(gateway_id="gw-in-5")))
            await call.write(ingest_pb2.UploadRequest(batch=pb.TelemetryBatch(
                batch_id=1, records=[vitals(0, "pt-0205", dev), vitals(1, "pt-0205", dev)])))
            await eventually(lambda: running.metrics.get("ingest_claim_waits") > 0, what="the batch waiting")
            running.ingest.start_drain()
            reply = await call.read()
            assert reply.WhichOneof("message") == "ack" and (reply.ack.ranges[0].first, reply.ack.ranges[0].last) == (
                0, 1)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await call.read()
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        with pytest.raises(grpc.aio.AioRpcError) as err:  # new streams are refused while draining
            await gw.upload(settings.listen, [])
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        assert await running.ingest.wait_idle(5.0)
    assert await asyncio.to_thread(written, kafka, dev) == [0, 1]


async def test_when_kafka_fails_nothing_is_acked_and_the_gateway_is_told_to_resend(tmp_path: Path) -> None:
    port = free_port()
    broker = start_tansu(port)
    settings = make_settings(f"127.0.0.1:{port}", tmp_path,
                             kafka=KafkaSettings(bootstrap=f"127.0.0.1:{port}", delivery_timeout_s=2.0))
    dev = "C0:00:00:00:02:06"
    try:
        async with running_cloud(settings) as running:
            gw = issued_gateway(settings, running.engine, "gw-in-6")
            assign(running.engine, "gw-in-6", "pt-0206")
            broker.kill()
            broker.wait()
            async with gw.channel(settings.listen) as channel:
                call: Any = ingest_pb2_grpc.IngestStub(channel).Upload()  # type: ignore[call-arg]
                await call.write(ingest_pb2.UploadRequest(hello=ingest_pb2.Hello(gateway_id="gw-in-6")))
                await call.write(ingest_pb2.UploadRequest(batch=pb.TelemetryBatch(
                    batch_id=1, records=[vitals(0, "pt-0206", dev)])))
                reply = await call.read()
                assert reply.WhichOneof("message") == "ack" and list(reply.ack.ranges) == []
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await call.read()
                assert err.value.code() == grpc.StatusCode.UNAVAILABLE
            ledger = SequenceLedger(running.engine, claim_ttl_s=1.0)
            assert ledger.next_expected("gw-in-6", f"{dev}/vitals") == 0
            assert running.metrics.get("ingest_kafka_failures") == 1
    finally:
        broker.kill()
        broker.wait()


async def test_plaintext_mode_only_when_configured(kafka: str, tmp_path: Path) -> None:
    settings = cloud_settings(kafka, f"sqlite:///{tmp_path / 'cloud.sqlite3'}", None)
    assert settings.tls is False
    dev = "C0:00:00:00:02:07"
    async with running_cloud(settings) as running:
        assign(running.engine, "gw-in-7", "pt-0207")
        (reply,) = await Gateway("gw-in-7", None).upload(
            settings.listen, [pb.TelemetryBatch(batch_id=1, records=[vitals(0, "pt-0207", dev)])])
        assert reply.WhichOneof("message") == "ack"
    secure = cloud_settings(kafka, f"sqlite:///{tmp_path / 'b.sqlite3'}", PkiSettings(ca_cert=tmp_path / "no.crt"))
    with pytest.raises(ConfigError, match="init-pki"):  # TLS is the default: no certificates, no server
        async with running_cloud(secure):
            pass
