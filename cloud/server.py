"""The cloud process: gRPC ingest (and fleet heartbeats) in front of Kafka."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from typing import Any

import grpc
import grpc.aio

from cardiogate.logs import get_logger
from cloud.dedup import SequenceLedger
from cloud.ingest import IngestService
from cloud.kafka_bridge import KafkaBridge, ensure_topics
from cloud.settings import CloudSettings
from proto.cardiogate.v1 import fleet_pb2, fleet_pb2_grpc, ingest_pb2_grpc

log = get_logger(__name__)


class FleetService(fleet_pb2_grpc.FleetServicer):
    """Keeps the latest heartbeat per gateway (the registry arrives with the fleet issue)."""

    def __init__(self) -> None:
        self.latest: dict[str, fleet_pb2.GatewayHeartbeat] = {}

    async def Heartbeat(self, request: fleet_pb2.GatewayHeartbeat,
                        context: grpc.aio.ServicerContext[Any, Any]) -> fleet_pb2.HeartbeatReply:
        if not request.gateway_id:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "gateway_id is required")
        self.latest[request.gateway_id] = request
        return fleet_pb2.HeartbeatReply(server_time_ns=time.time_ns())


async def serve(settings: CloudSettings, started: asyncio.Event | None = None) -> None:
    """Run the ingest until cancelled; drains in-flight streams on the way out."""
    await asyncio.to_thread(ensure_topics, settings.kafka)
    bridge = KafkaBridge(settings.kafka)
    ledger = SequenceLedger(settings.database)
    ingest = IngestService(settings, bridge, ledger)
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", 16 * 1024 * 1024)])
    ingest_pb2_grpc.add_IngestServicer_to_server(ingest, server)
    fleet_pb2_grpc.add_FleetServicer_to_server(FleetService(), server)
    server.add_insecure_port(settings.listen)
    await server.start()
    log.info("cloud ingest listening", listen=settings.listen, kafka=settings.kafka.bootstrap)
    print(f"cloud: ingest on {settings.listen}, writing to Kafka at {settings.kafka.bootstrap}", flush=True)
    if started is not None:
        started.set()
    try:
        while True:
            await asyncio.sleep(10)
            c = ingest.counters
            log.info("ingest status", batches=c.batches, written=c.records_written, duplicates=c.duplicates,
                     rejected_batches=c.rejected_batches, kafka_failures=c.kafka_failures)
    finally:
        await server.stop(grace=5)
        await asyncio.to_thread(bridge.close)
        ledger.close()


async def run_cloud(settings: CloudSettings) -> None:
    """Run until SIGTERM/SIGINT."""
    task = asyncio.create_task(serve(settings))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await task
    log.info("cloud stopped")
