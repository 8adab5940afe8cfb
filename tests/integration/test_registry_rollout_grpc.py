"""The Rollout gRPC service over mTLS: the gateway id comes from the client certificate, and a real
updater installs the champion through it (chunked, verified, switched)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import grpc.aio
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import Engine

from cardiogate.app.stack import free_port
from cardiogate.cloud.identity import record_certificate, revoke_serial
from cardiogate.cloud.pki import issue_gateway_cert, key_pem, load_ca, new_key, serial_hex
from cardiogate.cloud.registry.artifacts import FilesystemArtifactStore
from cardiogate.cloud.registry.fleet import FleetRegistry
from cardiogate.cloud.registry.migrate import open_database
from cardiogate.cloud.registry.models import CHAMPION, ModelRegistry
from cardiogate.cloud.registry.signing import Signer, trusted_keys_document
from cardiogate.cloud.rollout.controller import RolloutController
from cardiogate.cloud.rollout.plan import RolloutPlan
from cardiogate.cloud.rollout.service import RolloutService
from cardiogate.edge.updater import GrpcUpdateSource, ModelStore, TrustedKeys, Updater, UpdaterConfig
from cardiogate.proto.v1 import rollout_pb2 as rpb
from cardiogate.proto.v1 import rollout_pb2_grpc
from tests.integration.cloud_testkit import local_pki


@dataclass
class Cloud:
    target: str
    engine: Engine
    ca_dir: Path
    controller: RolloutController
    signer: Signer


def credentials(cloud: Cloud, gateway_id: str) -> tuple[grpc.ChannelCredentials, str]:
    ca = load_ca(cloud.ca_dir / "ca.crt", cloud.ca_dir / "ca.key")
    key = new_key()
    cert = issue_gateway_cert(ca, key.public_key(), gateway_id, 1)
    record_certificate(cloud.engine, None, gateway_id, serial_hex(cert), 0, 2**62)
    creds = grpc.ssl_channel_credentials(ca.cert_pem, key_pem(key), cert.public_bytes(Encoding.PEM))
    return creds, serial_hex(cert)


@pytest.fixture
async def cloud(tmp_path: Path) -> AsyncIterator[Cloud]:
    pki = local_pki(tmp_path / "pki")
    engine = open_database(f"sqlite:///{tmp_path / 'cloud.sqlite3'}")
    signer = Signer(Ed25519PrivateKey.generate())
    fleet = FleetRegistry(engine)
    models = ModelRegistry(engine, FilesystemArtifactStore(tmp_path / "artifacts"))
    controller = RolloutController(engine, models, fleet, signer, poll_s=0.05, chunk_bytes=1000)
    artifact = tmp_path / "rule.json"
    artifact.write_text(json.dumps({"kind": "rule", "threshold_bpm": 100, "padding": "x" * 5000}))
    models.publish(artifact, signer=signer, name="rhythm", version="1.0.0", task="rhythm", input_spec={},
                   min_gateway_version="0.1.0", extra={"format": "rule"})
    models.set_alias("rhythm", CHAMPION, "1.0.0")
    server = grpc.aio.server()
    rollout_pb2_grpc.add_RolloutServicer_to_server(RolloutService(controller, engine, tls=True), server)
    target = f"127.0.0.1:{free_port()}"
    server.add_secure_port(target, grpc.ssl_server_credentials(
        [(pki.server_key.read_bytes(), pki.server_cert.read_bytes())], root_certificates=pki.ca_cert.read_bytes(),
        require_client_auth=True))
    await server.start()
    try:
        yield Cloud(target, engine, tmp_path / "pki", controller, signer)
    finally:
        await server.stop(0)
        engine.dispose()


async def test_gateway_id_comes_from_the_certificate(cloud: Cloud) -> None:
    creds, serial = credentials(cloud, "gw-1")
    async with grpc.aio.secure_channel(cloud.target, creds) as channel:
        stub = rollout_pb2_grpc.RolloutStub(channel)
        a = await stub.GetAssignment(rpb.AssignmentRequest(gateway_id="gw-1", model="rhythm"))
        assert a.action == rpb.UPDATE_ACTION_ACTIVATE and a.version == "1.0.0" and a.signed_manifest
        assert a.poll_s == pytest.approx(0.05) and a.chunk_bytes == 1000
        with pytest.raises(grpc.aio.AioRpcError) as other:
            await stub.GetAssignment(rpb.AssignmentRequest(gateway_id="gw-2", model="rhythm"))
        assert other.value.code() == grpc.StatusCode.PERMISSION_DENIED
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await stub.DownloadChunk(rpb.ChunkRequest(gateway_id="gw-1", model="rhythm", version="9.9.9"))
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.aio.AioRpcError) as past:
            await stub.DownloadChunk(rpb.ChunkRequest(gateway_id="gw-1", model="rhythm", version="1.0.0",
                                                      offset=10**9, max_bytes=10))
        assert past.value.code() == grpc.StatusCode.OUT_OF_RANGE
        chunk = await stub.DownloadChunk(rpb.ChunkRequest(gateway_id="gw-1", model="rhythm", version="1.0.0",
                                                          offset=0, max_bytes=100))
        assert len(chunk.data) == 100 and not chunk.eof and chunk.total_size > 5000
        revoke_serial(cloud.engine, serial, "lost")
        with pytest.raises(grpc.aio.AioRpcError) as revoked:
            await stub.GetAssignment(rpb.AssignmentRequest(gateway_id="gw-1", model="rhythm"))
        assert revoked.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_updater_installs_the_champion_over_mtls_and_reports(cloud: Cloud, tmp_path: Path) -> None:
    creds, _ = credentials(cloud, "gw-7")
    cloud.controller.fleet.add_gateway("gw-7")
    keys = tmp_path / "trusted.json"
    keys.write_text(json.dumps(trusted_keys_document([cloud.signer.public_key])))
    source = GrpcUpdateSource(cloud.target, creds, timeout_s=5)
    updater = Updater(UpdaterConfig("rhythm", "gw-7", "0.1.0", poll_s=0.05),
                      ModelStore(tmp_path / "models" / "rhythm", TrustedKeys.load(keys)), source)
    await asyncio.to_thread(updater.start)
    for _ in range(200):
        await asyncio.to_thread(updater.step)
        if updater.active == "1.0.0":
            break
    assert updater.active == "1.0.0" and updater.store.current == "1.0.0"
    # now a rollout including this gateway: it shadows the candidate and its reports land on its membership
    artifact = tmp_path / "rule2.json"
    artifact.write_text(json.dumps({"kind": "rule", "threshold_bpm": 104}))
    cloud.controller.models.publish(artifact, signer=cloud.signer, name="rhythm", version="1.1.0", task="rhythm",
                                    input_spec={}, min_gateway_version="0.1.0", extra={"format": "rule"})
    rid = cloud.controller.start("rhythm", "1.1.0", RolloutPlan(canary_share=1.0, min_devices_per_stage=1, bake_s=60))
    for _ in range(200):
        await asyncio.to_thread(updater.step)
        if updater.phase == "shadow":
            break
    # the shadow phase reaches the membership with the updater's next report: step until it has (bounded)
    for _ in range(100):
        await asyncio.sleep(0.06)
        await asyncio.to_thread(updater.step)
        member = cloud.controller.status(rid).members[0][0]
        if member.status == "shadow":
            break
    assert (member.gateway_id, member.status, member.active_version) == ("gw-7", "shadow", "1.0.0")
    updater.close()
    source.close()
