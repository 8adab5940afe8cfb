"""The updater's view of the cloud: the Rollout gRPC service, called synchronously from the updater thread."""

from __future__ import annotations

from pathlib import Path

import grpc

from cardiogate.proto.v1 import rollout_pb2 as rpb
from cardiogate.proto.v1 import rollout_pb2_grpc


class GrpcUpdateSource:
    """An ``UpdateSource`` over gRPC (mTLS with the gateway's enrolled identity, or plaintext for a demo)."""

    def __init__(self, target: str, credentials: grpc.ChannelCredentials | None = None,
                 timeout_s: float = 30.0, server_name: str | None = None) -> None:
        options: list[tuple[str, int | str]] = [("grpc.max_receive_message_length", 8 * 1024 * 1024)]
        if server_name:
            options.append(("grpc.ssl_target_name_override", server_name))
        self._channel = (grpc.secure_channel(target, credentials, options=options) if credentials is not None
                         else grpc.insecure_channel(target, options=options))
        self._stub = rollout_pb2_grpc.RolloutStub(self._channel)
        self._timeout = timeout_s

    @classmethod
    def with_identity(cls, target: str, identity_dir: Path | None, timeout_s: float = 30.0,
                      server_name: str | None = None) -> GrpcUpdateSource:
        """mTLS with the enrollment identity in ``identity_dir`` (None: plaintext, for tests only)."""
        if identity_dir is None:
            return cls(target, None, timeout_s)
        from cardiogate.edge.enrollment import channel_credentials

        return cls(target, channel_credentials(identity_dir), timeout_s, server_name)

    def get_assignment(self, request: rpb.AssignmentRequest) -> rpb.Assignment:
        return self._stub.GetAssignment(request, timeout=self._timeout)

    def download_chunk(self, request: rpb.ChunkRequest) -> rpb.Chunk:
        return self._stub.DownloadChunk(request, timeout=self._timeout)

    def report(self, report: rpb.UpdaterReport) -> None:
        self._stub.ReportStatus(report, timeout=self._timeout)

    def close(self) -> None:
        self._channel.close()
