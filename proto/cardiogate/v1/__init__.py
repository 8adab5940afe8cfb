"""cardiogate.v1: telemetry records, the ingest stream and fleet heartbeats (generated)."""

from cardiogate.proto.v1 import fleet_pb2, ingest_pb2, telemetry_pb2

__all__ = ["fleet_pb2", "ingest_pb2", "telemetry_pb2"]
