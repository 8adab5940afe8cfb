"""Alarm commands from the cloud to a gateway over its mTLS link: a real ingest (gRPC, TLS, tansu), the
gateway's real command task; the alarm engine is replaced by a recorder here (the e2e test drives a real
gateway)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from cardiogate.cloud.authz import assign
from cardiogate.cloud.commands import AlarmCommand, CommandRefused, command_status, enqueue
from cardiogate.cloud.db import make_engine
from cardiogate.cloud.identity import record_certificate, revoke_gateway
from cardiogate.cloud.pki import issue_gateway_cert, key_pem, load_ca, new_key, serial_hex
from cardiogate.core.backoff import Backoff
from cardiogate.edge.cloud_commands import run_cloud_commands
from cardiogate.edge.enrollment import IdentityPaths
from cardiogate.edge.mqtt_auth import Refusal
from cardiogate.edge.settings import UplinkSettings
from tests.integration.cloud_testkit import cloud_settings, local_pki, running_cloud, tansu

pytestmark = pytest.mark.api


def _identity(settings, engine, gateway_id: str, directory: Path) -> None:  # type: ignore[no-untyped-def]
    ca = load_ca(settings.pki.ca_cert, settings.pki.ca_key)
    key = new_key()
    cert = issue_gateway_cert(ca, key.public_key(), gateway_id, 1)
    record_certificate(engine, None, gateway_id, serial_hex(cert), 0, 2**62)
    paths = IdentityPaths.in_dir(directory)
    directory.mkdir(parents=True)
    paths.key.write_bytes(key_pem(key))
    paths.cert.write_bytes(cert.public_bytes(Encoding.PEM))
    paths.ca.write_bytes(ca.cert_pem)


class Recorder:
    """Stands in for the alarm bridge: records what arrives and answers like the engine."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, bytes, str]] = []
        self.applied_ids: set[str] = set()

    def __call__(self, patient: str, payload: bytes, by: tuple[str, Refusal]) -> tuple[bool, str]:
        import json

        identity, refusal = by
        body = json.loads(payload)
        self.seen.append((patient, payload, identity))
        why = refusal(body["command"])
        if why is not None:
            return False, why
        self.applied_ids.add(body["id"])
        return True, ""


async def _until(predicate, timeout_s: float = 5.0) -> float:  # type: ignore[no-untyped-def]
    t0 = time.monotonic()
    while not predicate():
        if time.monotonic() - t0 > timeout_s:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)
    return time.monotonic() - t0


async def test_acknowledge_reaches_the_gateway_once_and_its_answer_is_recorded(tmp_path: Path) -> None:
    with tansu() as bootstrap:
        settings = cloud_settings(bootstrap, f"sqlite:///{tmp_path / 'cloud.db'}", local_pki(tmp_path / "pki"))
        engine = make_engine(settings.db_url)
        _identity(settings, engine, "gw-a", tmp_path / "id-a")
        _identity(settings, engine, "gw-b", tmp_path / "id-b")
        assign(engine, "gw-a", "pt-1001")
        assign(engine, "gw-b", "pt-2002")
        async with running_cloud(settings):
            recorder_a, recorder_b = Recorder(), Recorder()
            tasks = [asyncio.create_task(run_cloud_commands(
                UplinkSettings(target=settings.listen, identity_dir=tmp_path / f"id-{g}", server_name="localhost"),
                f"gw-{g}", rec, Backoff(0.1, 0.5))) for g, rec in (("a", recorder_a), ("b", recorder_b))]
            try:
                ack = AlarmCommand(patient="pt-1001", command="acknowledge", actor="nurse-ward3", role="nurse",
                                   origin="10.0.0.7", alarm_id="a-17", command_id="cmd-1")
                queued = enqueue(engine, ack)
                assert queued.gateway_id == "gw-a" and queued.outcome == "pending"
                elapsed = await _until(lambda: (s := command_status(engine, "cmd-1")) is not None
                                       and s.outcome == "accepted")
                assert elapsed < 2.0, f"the acknowledgement took {elapsed:.2f} s to reach the gateway and back"
                done = command_status(engine, "cmd-1")
                assert done is not None and done.applied_ns is not None and done.delivered_ns is not None
                assert (done.actor, done.role, done.origin) == ("nurse-ward3", "nurse", "10.0.0.7")
                # Only the patient's gateway received it, as <user>@cloud, with the MQTT command payload.
                assert [(p, i) for p, _, i in recorder_a.seen] == [("pt-1001", "nurse-ward3@cloud")]
                assert recorder_b.seen == []
                assert b'"command":"acknowledge"' in recorder_a.seen[0][1]
                # The same id again: the first command stands, nothing is delivered twice.
                again = enqueue(engine, ack)
                assert again.command_id == "cmd-1" and again.outcome == "accepted"
                await asyncio.sleep(0.6)
                assert len(recorder_a.seen) == 1
                # An operator may not silence alarms: the gateway refuses and says why.
                enqueue(engine, AlarmCommand(patient="pt-2002", command="silence", actor="ops-1", role="operator",
                                             duration_s=60, command_id="cmd-2"))
                await _until(lambda: (s := command_status(engine, "cmd-2")) is not None and s.outcome != "pending")
                refused = command_status(engine, "cmd-2")
                assert refused is not None and refused.outcome == "rejected" and "operator" in refused.error
                assert recorder_a.seen[-1][1] != b"" and len(recorder_a.seen) == 1
            finally:
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)


async def test_commands_wait_for_a_gateway_that_is_away_and_expire_when_stale(tmp_path: Path) -> None:
    with tansu() as bootstrap:
        settings = cloud_settings(bootstrap, f"sqlite:///{tmp_path / 'cloud.db'}", local_pki(tmp_path / "pki"))
        engine = make_engine(settings.db_url)
        _identity(settings, engine, "gw-a", tmp_path / "id-a")
        assign(engine, "gw-a", "pt-1001")
        async with running_cloud(settings):
            # Queued while the gateway is away: one still fresh, one already stale.
            enqueue(engine, AlarmCommand(patient="pt-1001", command="silence", actor="nurse-1", role="nurse",
                                         condition="tachycardia", duration_s=120, command_id="fresh"))
            enqueue(engine, AlarmCommand(patient="pt-1001", command="acknowledge", actor="nurse-1", role="nurse",
                                         command_id="stale"), ttl_s=0.05)
            await asyncio.sleep(0.1)
            recorder = Recorder()
            uplink = UplinkSettings(target=settings.listen, identity_dir=tmp_path / "id-a", server_name="localhost")
            task = asyncio.create_task(run_cloud_commands(uplink, "gw-a", recorder, Backoff(0.1, 0.5)))
            try:
                await _until(lambda: (s := command_status(engine, "fresh")) is not None and s.outcome == "accepted")
                stale = command_status(engine, "stale")
                assert stale is not None and stale.outcome == "expired" and stale.delivered_ns is None
                assert recorder.applied_ids == {"fresh"}
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            # A revoked gateway's stream is refused: nothing more reaches it.
            revoke_gateway(engine, "gw-a", "test")
            enqueue(engine, AlarmCommand(patient="pt-1001", command="acknowledge", actor="nurse-1", role="nurse",
                                         command_id="after-revoke"))
            recorder2 = Recorder()
            task = asyncio.create_task(run_cloud_commands(uplink, "gw-a", recorder2, Backoff(0.1, 0.5)))
            await asyncio.sleep(1.0)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            assert recorder2.seen == []
            status = command_status(engine, "after-revoke")
            assert status is not None and status.outcome == "pending"


def test_bad_commands_are_refused_before_anything_is_queued(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'cloud.db'}")
    assign(engine, "gw-a", "pt-1001")
    bad = [
        AlarmCommand(patient="pt-1001", command="set_limits", actor="dr-1", role="clinician"),  # type: ignore[arg-type]
        AlarmCommand(patient="PT 1001", command="acknowledge", actor="nurse-1", role="nurse"),
        AlarmCommand(patient="pt-1001", command="acknowledge", actor="nurse/1", role="nurse"),
        AlarmCommand(patient="pt-1001", command="silence", actor="nurse-1", role="nurse"),
        AlarmCommand(patient="pt-1001", command="silence", actor="nurse-1", role="nurse", duration_s=float("nan")),
        AlarmCommand(patient="pt-1001", command="silence", actor="nurse-1", role="nurse", duration_s=86400),
        AlarmCommand(patient="pt-1001", command="acknowledge", actor="nurse-1", role="nurse", duration_s=5),
        AlarmCommand(patient="pt-1001", command="acknowledge", actor="nurse-1", role="nurse", reason="x" * 201),
        AlarmCommand(patient="pt-9999", command="acknowledge", actor="nurse-1", role="nurse"),  # no gateway
    ]
    for cmd in bad:
        with pytest.raises(CommandRefused):
            enqueue(engine, cmd)
    enqueue(engine, AlarmCommand(patient="pt-1001", command="acknowledge", actor="nurse-1", role="nurse",
                                 command_id="x1"))
    with pytest.raises(CommandRefused, match="already used"):
        enqueue(engine, AlarmCommand(patient="pt-1001", command="unsilence", actor="nurse-1", role="nurse",
                                     command_id="x1"))


async def test_closing_ends_open_command_streams_so_a_drain_does_not_wait_out_its_grace(tmp_path: Path) -> None:
    """A command stream never ends by itself; the ingest's drain (cloud/server.py) closes them first."""
    import grpc

    from cardiogate.app.stack import free_port
    from cardiogate.cloud.commands import CommandService
    from cardiogate.proto.v1 import commands_pb2, commands_pb2_grpc

    service = CommandService(make_engine(f"sqlite:///{tmp_path / 'cloud.sqlite3'}"), tls=False, poll_s=5.0)
    server = grpc.aio.server()
    commands_pb2_grpc.add_CommandsServicer_to_server(service, server)
    target = f"127.0.0.1:{free_port()}"
    server.add_insecure_port(target)
    await server.start()
    try:
        async with grpc.aio.insecure_channel(target) as channel:
            stub = commands_pb2_grpc.CommandsStub(channel)
            stream = stub.Subscribe(commands_pb2.CommandSubscription(gateway_id="gw-drain"))
            reading = asyncio.ensure_future(stream.read())
            await _until(lambda: service.streams == 1)
            await asyncio.sleep(0.2)
            assert not reading.done()  # open, waiting for commands (poll every 5 s)
            t0 = time.monotonic()
            service.close()
            assert await asyncio.wait_for(reading, 2.0) is grpc.aio.EOF  # ended cleanly, at once
            assert time.monotonic() - t0 < 1.0 and service.streams == 0
            late = stub.Subscribe(commands_pb2.CommandSubscription(gateway_id="gw-late"))
            assert await asyncio.wait_for(late.read(), 2.0) is grpc.aio.EOF  # a stream opened while closing
    finally:
        await server.stop(0)
