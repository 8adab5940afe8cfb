"""Typed names for the wire's enums, shared by the gateway and the cloud.

The wire carries the protobuf enums (``rollout.proto``: UpdaterPhase, RefusalCode,
UpdateAction). In Python each is a :class:`~enum.StrEnum` whose value is the lowercase
name: it compares equal to the text that logs, JSON state files, database columns and
older peers use, while code names members instead of retyping string literals on each
side. ``wire`` gives the protobuf value; ``from_wire`` reads one back, falling back to the
text field an older peer filled in instead. tests/unit/test_unit_contracts.py checks that
every member has its protobuf twin and the other way round. :func:`stream_id_for` and
:func:`stream_kind` connect :class:`~cardiogate.core.ids.StreamId` with the StreamKind enum.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Self, TypeVar

from google.protobuf.descriptor import EnumDescriptor

from cardiogate.core.ids import StreamId
from cardiogate.proto.v1 import rollout_pb2 as rpb
from cardiogate.proto.v1 import telemetry_pb2 as tpb

E = TypeVar("E", bound=StrEnum)


class UpdaterPhase(StrEnum):
    """Where a gateway's updater is for one model line."""

    IDLE = "idle"
    DOWNLOADING = "downloading"
    VERIFYING = "verifying"
    STAGED = "staged"
    SHADOW = "shadow"
    REFUSED = "refused"
    FAILED = "failed"

    @property
    def wire(self) -> rpb.UpdaterPhase.ValueType:
        return rpb.UpdaterPhase.Value(f"UPDATER_PHASE_{self.name}")

    @classmethod
    def from_wire(cls, value: int, legacy: str = "") -> Self | None:
        """The phase a report names: its enum, else its text field (older gateways); None if neither is known."""
        return _read(cls, rpb.UpdaterPhase.DESCRIPTOR, value, "UPDATER_PHASE_", legacy)


class RefusalCode(StrEnum):
    """Why a gateway will not use an artifact."""

    MALFORMED = "malformed"
    UNSIGNED = "unsigned"
    UNKNOWN_KEY = "unknown_key"
    BAD_SIGNATURE = "bad_signature"
    WRONG_MODEL = "wrong_model"
    OLDER_VERSION = "older_version"
    INCOMPATIBLE = "incompatible"
    SIZE_MISMATCH = "size_mismatch"
    SHA256_MISMATCH = "sha256_mismatch"
    BAD_ROLLBACK_ORDER = "bad_rollback_order"
    LOAD_FAILED = "load_failed"

    @property
    def wire(self) -> rpb.RefusalCode.ValueType:
        return rpb.RefusalCode.Value(f"REFUSAL_CODE_{self.name}")

    @classmethod
    def from_wire(cls, value: int, legacy: str = "") -> Self | None:
        """The refusal a report names (None: no refusal, or one this side does not know)."""
        return _read(cls, rpb.RefusalCode.DESCRIPTOR, value, "REFUSAL_CODE_", legacy)


class UpdateAction(StrEnum):
    """What the cloud tells a gateway's updater to do with one model line."""

    NONE = "none"
    SHADOW = "shadow"
    ACTIVATE = "activate"
    ROLLBACK = "rollback"

    @property
    def wire(self) -> rpb.UpdateAction.ValueType:
        return rpb.UpdateAction.Value(f"UPDATE_ACTION_{self.name}")

    @classmethod
    def from_wire(cls, value: int, legacy: str = "") -> Self | None:
        """The action an assignment names (None for UNSPECIFIED or a value from a newer cloud)."""
        return _read(cls, rpb.UpdateAction.DESCRIPTOR, value, "UPDATE_ACTION_", legacy)


def _read(cls: type[E], enum: EnumDescriptor, value: int, prefix: str, legacy: str) -> E | None:
    """The member for a wire value; for UNSPECIFIED or a number this build does not know, the legacy text."""
    wire = enum.values_by_number.get(value)
    name = wire.name.removeprefix(prefix) if wire is not None else ""
    if name and name != "UNSPECIFIED":
        return cls[name] if name in cls.__members__ else None
    return cls(legacy) if legacy in cls._value2member_map_ else None


def stream_id_for(device_id: str, kind: tpb.StreamKind.ValueType) -> StreamId:
    """The stream a record of ``kind`` from ``device_id`` belongs to."""
    return StreamId(device_id, tpb.StreamKind.Name(kind).removeprefix("STREAM_KIND_").lower())


def stream_kind(stream: StreamId) -> tpb.StreamKind.ValueType:
    """The wire's StreamKind of a stream (UNSPECIFIED for a kind this build does not know)."""
    name = f"STREAM_KIND_{stream.kind.upper()}"
    known = name in tpb.StreamKind.DESCRIPTOR.values_by_name
    return tpb.StreamKind.Value(name) if known else tpb.STREAM_KIND_UNSPECIFIED
