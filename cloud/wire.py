"""Decoding an Upload request, keeping each record's bytes as the gateway sent them.

Kafka gets every record as its serialized ``Record``. The gateway sends the bytes it
stored, so the ingest forwards them instead of serializing each parsed record again
(about a microsecond per record). A second, byte-level parse of the same request
reads them: a message that declares the batch's ``records`` as ``bytes`` is the same
on the wire as one that declares them as ``Record`` (both are length-delimited), so
upb hands out each record's exact bytes without looking inside. Validation still runs
on the full parse; the bytes are used only when both parses saw the same records.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError, Message

from cardiogate.proto.v1 import ingest_pb2


def _record_bytes_view() -> Any:
    """``UploadView { BatchView batch = 2; }``, ``BatchView { uint64 batch_id = 1; repeated bytes records = 2; }``:
    the field numbers of ``UploadRequest.batch`` and ``TelemetryBatch.records``, in a private pool."""
    f = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(name="cardiogate/cloud/upload_view.proto",
                                              package="cardiogate.cloud.view", syntax="proto3")
    batch = file.message_type.add(name="BatchView")
    batch.field.add(name="batch_id", number=1, type=f.TYPE_UINT64, label=f.LABEL_OPTIONAL)
    batch.field.add(name="records", number=2, type=f.TYPE_BYTES, label=f.LABEL_REPEATED)
    upload = file.message_type.add(name="UploadView")
    upload.field.add(name="batch", number=2, type=f.TYPE_MESSAGE, label=f.LABEL_OPTIONAL,
                     type_name=".cardiogate.cloud.view.BatchView")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("cardiogate.cloud.view.UploadView"))


_UploadView: type[Message] = _record_bytes_view()


@dataclass(frozen=True, slots=True)
class Received:
    """One decoded Upload message; for a batch, each record's bytes as sent (in order) and the
    batch's serialized size."""

    request: ingest_pb2.UploadRequest
    record_bytes: Sequence[bytes] | None = None
    batch_size: int | None = None


def decode_request(data: bytes) -> Received | None:
    """gRPC's request deserializer: undecodable bytes become None, so they are counted and refused
    with INVALID_ARGUMENT instead of failing inside gRPC."""
    try:
        request = ingest_pb2.UploadRequest.FromString(data)
    except DecodeError:
        return None
    if not request.HasField("batch"):
        return Received(request)
    view: Any = _UploadView.FromString(data)
    raw = view.batch.records  # read record by record when the Kafka records are built: no list of copies
    if len(raw) != len(request.batch.records):  # a request repeating its oneof fields: serialize instead
        return Received(request)
    return Received(request, raw, view.batch.ByteSize())
