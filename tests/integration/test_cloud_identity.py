"""Gateway identity end to end over real gRPC/TLS on loopback: enrollment with one-time tokens,
mTLS on the ingest, the gateway id taken from the certificate, and revocation without restart."""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import pytest
from cryptography import x509

from cardiogate.cloud.authz import assign
from cardiogate.cloud.identity import issue_token, revoke_gateway
from cardiogate.cloud.pki import create_ca, issue_gateway_cert, key_pem, new_key
from cardiogate.cloud.server import Running
from cardiogate.cloud.settings import AuthzSettings, CloudSettings
from cardiogate.edge.enrollment import EnrollmentError, channel_credentials, enroll, load_certificate, make_csr
from cardiogate.proto.v1 import fleet_pb2, fleet_pb2_grpc, ingest_pb2, ingest_pb2_grpc
from cardiogate.proto.v1 import telemetry_pb2 as pb
from tests.integration.cloud_testkit import Gateway, cloud_settings, local_pki, read_topic, running_cloud, tansu, vitals

pytestmark = pytest.mark.timeout(120)
DEVICE = "C0:00:00:00:01:01"


@pytest.fixture(scope="module")
def kafka() -> Iterator[str]:
    with tansu() as bootstrap:
        yield bootstrap


@pytest.fixture
def settings(kafka: str, tmp_path: Path) -> CloudSettings:
    return cloud_settings(kafka, f"sqlite:///{tmp_path / 'cloud.sqlite3'}", local_pki(tmp_path / "pki"),
                          authz=AuthzSettings(revocation_recheck_s=0.2))


@pytest.fixture
async def cloud(settings: CloudSettings) -> AsyncIterator[Running]:
    async with running_cloud(settings) as running:
        yield running


async def enrolled(settings: CloudSettings, cloud: Running, gateway_id: str, out: Path) -> Gateway:
    token = issue_token(cloud.engine, gateway_id, ttl_s=60)
    await asyncio.to_thread(enroll, settings.enrollment.listen, gateway_id, token, out, settings.pki.ca_cert)
    return Gateway(gateway_id, channel_credentials(out))


async def test_enrollment_gives_an_identity_that_the_ingest_accepts(settings: CloudSettings, cloud: Running,
                                                                   tmp_path: Path, kafka: str) -> None:
    out = tmp_path / "identity"
    gw = await enrolled(settings, cloud, "gw-id-1", out)
    assert stat.S_IMODE(os.stat(out / "gateway.key").st_mode) == 0o600
    assert sorted(p.name for p in out.iterdir()) == ["ca.crt", "gateway.crt", "gateway.key"]
    cert = x509.load_pem_x509_certificate((out / "gateway.crt").read_bytes())
    assert cert.subject.rfc4514_string() == "CN=gw-id-1"
    assert load_certificate(out).gateway_id == "gw-id-1"
    assign(cloud.engine, "gw-id-1", "pt-0101")
    (reply,) = await gw.upload(settings.listen, [pb.TelemetryBatch(batch_id=1, records=[vitals(0, "pt-0101", DEVICE,
                                                                                              hr=70.0)])])
    assert reply.ack.ranges[0].last == 0
    mine = [kr for kr in await asyncio.to_thread(read_topic, kafka, "vitals") if kr.record.device_id == DEVICE]
    assert [kr.headers["gateway"] for kr in mine] == [b"gw-id-1"]


async def test_a_token_works_once_for_its_gateway_and_not_after_expiry(settings: CloudSettings, cloud: Running,
                                                                      tmp_path: Path) -> None:
    target, ca = settings.enrollment.listen, settings.pki.ca_cert
    token = issue_token(cloud.engine, "gw-id-2", ttl_s=60)
    with pytest.raises(EnrollmentError, match="PERMISSION_DENIED"):  # issued for another gateway id
        await asyncio.to_thread(enroll, target, "gw-id-3", token, tmp_path / "other", ca)
    await asyncio.to_thread(enroll, target, "gw-id-2", token, tmp_path / "a", ca)
    with pytest.raises(EnrollmentError, match="PERMISSION_DENIED"):  # used
        await asyncio.to_thread(enroll, target, "gw-id-2", token, tmp_path / "b", ca)
    expired = issue_token(cloud.engine, "gw-id-2", ttl_s=0.05)
    await asyncio.sleep(0.1)
    with pytest.raises(EnrollmentError, match="PERMISSION_DENIED"):
        await asyncio.to_thread(enroll, target, "gw-id-2", expired, tmp_path / "c", ca)
    with pytest.raises(EnrollmentError, match="PERMISSION_DENIED"):
        await asyncio.to_thread(enroll, target, "gw-id-2", "guessed-token", tmp_path / "d", ca)
    assert not (tmp_path / "b").exists() and not (tmp_path / "c").exists()


async def test_a_bad_csr_is_refused_without_spending_the_token(settings: CloudSettings, cloud: Running,
                                                              tmp_path: Path) -> None:
    token = issue_token(cloud.engine, "gw-id-4", ttl_s=60)
    _, good_csr = make_csr("gw-id-4")
    tampered = good_csr.replace(good_csr[100:104], b"AAAA")
    creds = grpc.ssl_channel_credentials(root_certificates=settings.pki.ca_cert.read_bytes())
    async with grpc.aio.secure_channel(settings.enrollment.listen, creds) as channel:
        stub: Any = fleet_pb2_grpc.EnrollmentStub(channel)
        for csr in (b"not a csr", tampered):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.Enroll(fleet_pb2.EnrollRequest(gateway_id="gw-id-4", token=token, csr_pem=csr))
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    await asyncio.to_thread(enroll, settings.enrollment.listen, "gw-id-4", token, tmp_path / "ok",
                            settings.pki.ca_cert)


async def test_without_a_client_certificate_the_ingest_refuses(settings: CloudSettings, cloud: Running,
                                                               tmp_path: Path) -> None:
    server_only = grpc.ssl_channel_credentials(root_certificates=settings.pki.ca_cert.read_bytes())
    for gw in (Gateway("gw-id-5", server_only), Gateway("gw-id-5", None)):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await gw.upload(settings.listen, [pb.TelemetryBatch(batch_id=1, records=[vitals(0, "pt-0105", DEVICE)])])
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE  # the TLS handshake fails; no RPC runs
    # a certificate from a CA the cloud does not know
    rogue_ca, key = create_ca("rogue"), new_key()
    rogue_cert = issue_gateway_cert(rogue_ca, key.public_key(), "gw-id-5", 1)
    from cryptography.hazmat.primitives.serialization import Encoding

    rogue = grpc.ssl_channel_credentials(settings.pki.ca_cert.read_bytes(), key_pem(key),
                                         rogue_cert.public_bytes(Encoding.PEM))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await Gateway("gw-id-5", rogue).upload(settings.listen, [])
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_the_gateway_id_comes_from_the_certificate_not_the_hello(settings: CloudSettings, cloud: Running,
                                                                      tmp_path: Path) -> None:
    gw = await enrolled(settings, cloud, "gw-id-6", tmp_path / "id")
    assign(cloud.engine, "gw-id-7", "pt-0107")  # the other gateway may send for this patient; gw-id-6 may not
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await gw.upload(settings.listen, [pb.TelemetryBatch(batch_id=1, records=[vitals(0, "pt-0107", DEVICE)])],
                        hello_id="gw-id-7")
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert cloud.metrics.get("ingest_refused_streams", reason="hello_mismatch") == 1
    async with gw.channel(settings.listen) as channel:  # heartbeats are bound to the certificate too
        fleet: Any = fleet_pb2_grpc.FleetStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await fleet.Heartbeat(fleet_pb2.GatewayHeartbeat(gateway_id="gw-id-7"))
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert (await fleet.Heartbeat(fleet_pb2.GatewayHeartbeat(gateway_id="gw-id-6"))).server_time_ns > 0


async def test_revocation_takes_effect_on_new_and_open_streams_without_restart(settings: CloudSettings,
                                                                              cloud: Running, tmp_path: Path) -> None:
    gw = await enrolled(settings, cloud, "gw-id-8", tmp_path / "id")
    assign(cloud.engine, "gw-id-8", "pt-0108")
    async with gw.channel(settings.listen) as channel:
        call: Any = ingest_pb2_grpc.IngestStub(channel).Upload()  # type: ignore[call-arg]
        await call.write(ingest_pb2.UploadRequest(hello=ingest_pb2.Hello(gateway_id="gw-id-8")))
        await call.write(ingest_pb2.UploadRequest(batch=pb.TelemetryBatch(
            batch_id=1, records=[vitals(0, "pt-0108", DEVICE)])))
        assert (await call.read()).WhichOneof("message") == "ack"
        assert revoke_gateway(cloud.engine, "gw-id-8", "lost device") != []
        await asyncio.sleep(0.3)  # > revocation_recheck_s: the open stream re-checks before its next batch
        await call.write(ingest_pb2.UploadRequest(batch=pb.TelemetryBatch(
            batch_id=2, records=[vitals(1, "pt-0108", DEVICE)])))
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call.read()
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await gw.upload(settings.listen, [pb.TelemetryBatch(batch_id=3, records=[vitals(1, "pt-0108", DEVICE)])])
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert cloud.metrics.get("ingest_refused_streams", reason="cert_revoked") == 2
