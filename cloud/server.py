"""The cloud process: gRPC ingest and fleet heartbeats (mTLS) in front of Kafka, plus enrollment (TLS).

Two gRPC servers: the ingest port requires a client certificate signed by the cloud
CA; the enrollment port authenticates only the server, because an enrolling gateway
has no certificate yet (it proves itself with a one-time token). With ``tls = false``
there is one plaintext ingest port, no enrollment, and the gateway id is whatever the
Hello says: for a local demo only, and logged as such.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
import time
from dataclasses import dataclass
from typing import Any

import grpc
import grpc.aio
from sqlalchemy import Engine

from cardiogate.cloud.commands import CommandService
from cardiogate.cloud.db import make_engine
from cardiogate.cloud.enrollment import EnrollmentService
from cardiogate.cloud.fleet_metrics import run_fleet_gauges
from cardiogate.cloud.identity import certificate_status
from cardiogate.cloud.ingest import IngestService, peer_identity
from cardiogate.cloud.kafka_bridge import KafkaBridge, ensure_topics
from cardiogate.cloud.metrics import Metrics
from cardiogate.cloud.pki import CertificateError, load_ca
from cardiogate.cloud.registry.fleet import FleetRegistry, heartbeat_from_proto
from cardiogate.cloud.registry.wiring import attach_rollout
from cardiogate.cloud.rollout.service import run_ticker
from cardiogate.cloud.settings import CloudSettings
from cardiogate.cloud.wire import decode_request
from cardiogate.core import metrics as prometheus
from cardiogate.core.logs import get_logger
from cardiogate.core.settings import ConfigError
from cardiogate.core.tracing import setup_tracing
from cardiogate.proto.v1 import commands_pb2_grpc, fleet_pb2, fleet_pb2_grpc, ingest_pb2

log = get_logger(__name__)


class FleetService(fleet_pb2_grpc.FleetServicer):
    """Records each gateway's heartbeat in the fleet registry (and keeps the latest in memory)."""

    def __init__(self, engine: Engine, tls: bool, registry: FleetRegistry | None = None) -> None:
        self._engine = engine
        self._tls = tls
        self._registry = registry
        self.latest: dict[str, fleet_pb2.GatewayHeartbeat] = {}

    async def Heartbeat(self, request: fleet_pb2.GatewayHeartbeat,
                        context: grpc.aio.ServicerContext[Any, Any]) -> fleet_pb2.HeartbeatReply:
        if not request.gateway_id:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "gateway_id is required")
        if self._tls:
            try:
                identity = peer_identity(context)
            except (CertificateError, ValueError) as exc:
                await context.abort(grpc.StatusCode.UNAUTHENTICATED, f"client certificate refused: {exc}")
            if identity.gateway_id != request.gateway_id:
                await context.abort(grpc.StatusCode.PERMISSION_DENIED, "gateway_id differs from the certificate")
            status = await asyncio.to_thread(certificate_status, self._engine, identity.serial)
            if status != "ok":
                await context.abort(grpc.StatusCode.UNAUTHENTICATED, f"certificate is {status}")
        self.latest[request.gateway_id] = request
        if self._registry is not None:
            await asyncio.to_thread(self._registry.record_heartbeat, heartbeat_from_proto(request))
        return fleet_pb2.HeartbeatReply(server_time_ns=time.time_ns())


def ingest_credentials(settings: CloudSettings) -> grpc.ServerCredentials:
    """mTLS: the server's certificate, and client certificates must chain to the cloud CA."""
    pki = settings.pki
    return grpc.ssl_server_credentials([(pki.server_key.read_bytes(), pki.server_cert.read_bytes())],
                                       root_certificates=pki.ca_cert.read_bytes(), require_client_auth=True)


def enrollment_credentials(settings: CloudSettings) -> grpc.ServerCredentials:
    pki = settings.pki
    return grpc.ssl_server_credentials([(pki.server_key.read_bytes(), pki.server_cert.read_bytes())],
                                       root_certificates=None, require_client_auth=False)


def _ingest_handler(ingest: IngestService) -> grpc.GenericRpcHandler[Any, Any]:
    return grpc.method_handlers_generic_handler("cardiogate.v1.Ingest", {
        "Upload": grpc.stream_stream_rpc_method_handler(
            ingest.Upload, request_deserializer=decode_request,
            response_serializer=ingest_pb2.UploadResponse.SerializeToString),
    })


@dataclass
class Running:
    """What a running cloud exposes to tests and status pages."""

    ingest: IngestService
    fleet: FleetService
    metrics: Metrics
    engine: Engine
    metrics_server: prometheus.MetricsServer | None = None  # where /metrics answers, when enabled


def check_pki_files(settings: CloudSettings) -> None:
    pki = settings.pki
    missing = [str(p) for p in (pki.ca_cert, pki.ca_key, pki.server_cert, pki.server_key) if not p.is_file()]
    if missing:
        raise ConfigError(f"tls = true but {', '.join(missing)} missing: create them with "
                          "`cardiogate cloud admin init-pki` (or point pki.* at your own), or set tls = false "
                          "for a local demo")


async def serve(settings: CloudSettings, started: asyncio.Event | None = None,
                running: list[Running] | None = None) -> None:
    """Run until cancelled, then drain: refuse new streams, finish and ack in-flight batches, close."""
    if settings.tls:
        check_pki_files(settings)
    engine = make_engine(settings.db_url)
    await asyncio.to_thread(ensure_topics, settings.kafka)
    bridge = KafkaBridge(settings.kafka)
    metrics = Metrics()
    ingest = IngestService(settings, bridge, engine, metrics)
    max_message = 2 * settings.limits.max_batch_bytes
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", max_message)])
    server.add_generic_rpc_handlers((_ingest_handler(ingest),))
    # Fleet and model registries (migrated at start) and the Rollout service, on the same mTLS port.
    registries = await asyncio.to_thread(attach_rollout, server, engine, settings.models, settings.tls)
    fleet = FleetService(engine, settings.tls, registries.fleet)
    fleet_pb2_grpc.add_FleetServicer_to_server(fleet, server)
    commands = CommandService(engine, settings.tls, recheck_s=settings.authz.revocation_recheck_s)
    commands_pb2_grpc.add_CommandsServicer_to_server(commands, server)
    enroll_server: grpc.aio.Server | None = None
    if settings.tls:
        server.add_secure_port(settings.listen, ingest_credentials(settings))
        ca = load_ca(settings.pki.ca_cert, settings.pki.ca_key)
        enroll_server = grpc.aio.server()
        fleet_pb2_grpc.add_EnrollmentServicer_to_server(EnrollmentService(engine, ca, settings.pki.client_cert_days),
                                                        enroll_server)
        enroll_server.add_secure_port(settings.enrollment.listen, enrollment_credentials(settings))
    else:
        log.warning("TLS IS OFF: plaintext ingest, no client identity, gateway ids are taken on trust. "
                    "Use tls = false only for a local demo.", listen=settings.listen)
        server.add_insecure_port(settings.listen)
    await server.start()
    if enroll_server is not None:
        await enroll_server.start()
    prometheus.set_constant_labels(service="ingest", replica=prometheus.label_value(settings.replica))
    metrics_server = prometheus.start(settings.metrics, "ingest")
    log.info("cloud ingest listening", listen=settings.listen, kafka=settings.kafka.bootstrap, tls=settings.tls,
             enrollment=settings.enrollment.listen if settings.tls else None, database=engine.url.render_as_string())
    mode = "mTLS" if settings.tls else "PLAINTEXT (tls = false)"
    print(f"cloud: ingest on {settings.listen} ({mode}), writing to Kafka at {settings.kafka.bootstrap}", flush=True)
    if running is not None:
        running.append(Running(ingest, fleet, metrics, engine, metrics_server))
    if started is not None:
        started.set()
    ticker = asyncio.create_task(run_ticker(registries.rollouts, settings.models.tick_s), name="rollout-ticker")
    gauges = asyncio.create_task(run_fleet_gauges(engine, settings.pki.server_cert if settings.tls else None),
                                 name="fleet-gauges")
    try:
        while True:
            await asyncio.sleep(10)
            c = ingest.counters
            log.info("ingest status", batches=c.batches, written=c.records_written, duplicates=c.duplicates,
                     rejected_batches=c.rejected_batches, kafka_failures=c.kafka_failures, **metrics.snapshot())
    finally:
        if metrics_server is not None:
            metrics_server.close()
        ticker.cancel()
        gauges.cancel()
        await asyncio.gather(ticker, gauges, return_exceptions=True)
        grace = settings.flow.drain_grace_s
        log.info("draining", streams=ingest.active_streams, grace_s=grace)
        ingest.start_drain()
        commands.close()  # command streams never end by themselves: close them, or the drain waits out its grace
        stops = [server.stop(grace)] + ([enroll_server.stop(1)] if enroll_server is not None else [])
        await asyncio.gather(*stops, return_exceptions=True)
        if not await ingest.wait_idle(grace):
            log.warning("drain grace ran out with work in flight", streams=ingest.active_streams)
        await asyncio.to_thread(bridge.close)
        # Records Kafka confirmed during the final flush must reach the dedup ledger before the
        # database goes, or the gateway's resend of them would be written twice.
        if not await ingest.wait_idle(grace):
            log.warning("writes still unrecorded after the final flush", streams=ingest.active_streams)
        engine.dispose()
        log.info("drained")


def settle_heap() -> None:
    """Leave what start-up allocated (modules, SQLAlchemy, gRPC, protobuf descriptors) out of the cyclic
    garbage collector's passes. The ingest allocates a few short-lived containers per record, so
    collections are frequent, and every full one would otherwise walk all those long-lived objects
    again (~5% of the ingest's main thread in a profile). For a process that runs one ingest."""
    gc.collect()
    gc.freeze()


async def run_cloud(settings: CloudSettings) -> None:
    """Run until SIGTERM/SIGINT."""
    setup_tracing(settings.tracing, "cardiogate-ingest")
    started = asyncio.Event()
    task = asyncio.create_task(serve(settings, started))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, task.cancel)
    up = asyncio.ensure_future(started.wait())
    await asyncio.wait({task, up}, return_when=asyncio.FIRST_COMPLETED)
    up.cancel()
    if started.is_set():
        settle_heap()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    log.info("cloud stopped")
