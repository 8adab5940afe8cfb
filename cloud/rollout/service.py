"""The Rollout gRPC service gateways call; a thin shell over RolloutController.

Identity: with TLS the gateway id is the client certificate's, and the certificate must
be known and unrevoked (as for the ingest and heartbeats); a request naming another
gateway is refused. Database work runs in worker threads, off the event loop.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import grpc
import grpc.aio
from sqlalchemy import Engine

from cardiogate.cloud.identity import certificate_status
from cardiogate.cloud.ingest import peer_identity
from cardiogate.cloud.pki import CertificateError
from cardiogate.cloud.registry.models import RegistryError
from cardiogate.cloud.rollout.controller import AssignmentOut, GatewayReport, RolloutController
from cardiogate.core.logs import get_logger
from cardiogate.proto.contracts import RefusalCode, UpdaterPhase
from cardiogate.proto.v1 import rollout_pb2 as rpb
from cardiogate.proto.v1 import rollout_pb2_grpc

log = get_logger(__name__)

def assignment_to_proto(a: AssignmentOut, poll_s: float, chunk_bytes: int) -> rpb.Assignment:
    return rpb.Assignment(action=a.action.wire, rollout_id=a.rollout_id, version=a.version,
                          signed_manifest=a.signed_manifest, rollback_order=a.rollback_order, bake_s=a.bake_s,
                          reason=a.reason, chunk_bytes=chunk_bytes, poll_s=poll_s)


def report_from_proto(r: rpb.UpdaterReport) -> GatewayReport:
    """The enums when the gateway sent them; an older gateway's text fields otherwise (kept as sent if unknown)."""
    s = r.shadow
    state = UpdaterPhase.from_wire(r.phase, r.state) or r.state
    refusal = RefusalCode.from_wire(r.refusal, r.refusal_code) or r.refusal_code
    return GatewayReport(r.gateway_id, r.model, state, r.active_version, r.candidate_version, r.rollout_id,
                         s.windows, s.agreements, s.shadow_s, s.candidate_p99_ms, s.live_p99_ms,
                         s.candidate_alarm_rate, s.live_alarm_rate, s.candidate_errors, r.load_failures, r.crashes,
                         refusal, r.refusal_detail, r.high_priority_alarm_active)


class RolloutService(rollout_pb2_grpc.RolloutServicer):
    def __init__(self, controller: RolloutController, engine: Engine, tls: bool) -> None:
        self.controller = controller
        self._engine = engine
        self._tls = tls

    async def _authorise(self, gateway_id: str, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        if not gateway_id:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "gateway_id is required")
        if not self._tls:
            return
        try:
            identity = peer_identity(context)
        except (CertificateError, ValueError) as exc:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, f"client certificate refused: {exc}")
        if identity.gateway_id != gateway_id:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "gateway_id differs from the certificate")
        status = await asyncio.to_thread(certificate_status, self._engine, identity.serial)
        if status != "ok":
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, f"certificate is {status}")

    async def GetAssignment(self, request: rpb.AssignmentRequest,
                            context: grpc.aio.ServicerContext[Any, Any]) -> rpb.Assignment:
        await self._authorise(request.gateway_id, context)
        c = self.controller
        try:
            out = await asyncio.to_thread(c.assignment, request.gateway_id, request.model, request.active_version,
                                          request.high_priority_alarm_active)
        except RegistryError as exc:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        return assignment_to_proto(out, c.poll_s, c.chunk_bytes)

    async def DownloadChunk(self, request: rpb.ChunkRequest, context: grpc.aio.ServicerContext[Any, Any]) -> rpb.Chunk:
        await self._authorise(request.gateway_id, context)
        if self.controller.models.get(request.model, request.version) is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no model {request.model} version {request.version}")
        try:
            data, total = await asyncio.to_thread(self.controller.chunk, request.model, request.version,
                                                  request.offset, request.max_bytes)
        except RegistryError as exc:
            await context.abort(grpc.StatusCode.OUT_OF_RANGE, str(exc))
        return rpb.Chunk(data=data, offset=request.offset, total_size=total,
                         eof=request.offset + len(data) >= total)

    async def ReportStatus(self, request: rpb.UpdaterReport,
                           context: grpc.aio.ServicerContext[Any, Any]) -> rpb.ReportReply:
        await self._authorise(request.gateway_id, context)
        report = report_from_proto(request)
        if report.refusal_code:
            log.warning("gateway refused a model", gateway=request.gateway_id, model=request.model,
                        version=request.candidate_version, code=report.refusal_code, detail=request.refusal_detail)
        await asyncio.to_thread(self.controller.report, report)
        return rpb.ReportReply(server_time_ns=time.time_ns())


async def run_ticker(controller: RolloutController, interval_s: float = 5.0) -> None:
    """Re-evaluate running rollouts on a clock too, so a stage passes even if reports pause."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            await asyncio.to_thread(controller.tick)
        except Exception as exc:  # a database hiccup must not end the ticker
            log.warning("rollout tick failed", error=str(exc))
