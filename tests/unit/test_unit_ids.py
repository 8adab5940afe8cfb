"""StreamId: one way to build and read '<device>/<kind>', refused where it is malformed."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cardiogate.core.ids import KNOWN_KINDS, InvalidStreamId, StreamId
from cardiogate.edge.outbox import Lane, stream_lane
from cardiogate.edge.processing import stream_id
from cardiogate.proto.contracts import stream_id_for, stream_kind
from cardiogate.proto.v1 import telemetry_pb2 as pb

DEVICE = "C0:00:00:00:00:01"


def test_format_and_parse_round_trip() -> None:
    sid = StreamId(DEVICE, "ecg")
    assert str(sid) == "C0:00:00:00:00:01/ecg"
    assert StreamId.parse(str(sid)) == sid and StreamId.parse(str(sid)).device == DEVICE


@given(st.from_regex(r"[A-Za-z0-9:._-]{1,40}", fullmatch=True), st.sampled_from(KNOWN_KINDS))
def test_any_valid_id_round_trips(device: str, kind: str) -> None:
    assert StreamId.parse(str(StreamId(device, kind))) == StreamId(device, kind)


@pytest.mark.parametrize("text", ["", "ecg", "/ecg", f"{DEVICE}/", f"{DEVICE}/ECG", "a b/ecg", f"{DEVICE}/e-cg",
                                  f"x/{DEVICE}/ecg"])
def test_malformed_ids_are_refused(text: str) -> None:
    with pytest.raises(InvalidStreamId):
        StreamId.parse(text)
    assert issubclass(InvalidStreamId, ValueError)


def test_hashable_and_ordered_by_device_then_kind() -> None:
    ids = [StreamId("B", "ecg"), StreamId("A", "vitals"), StreamId("A", "alarms"), StreamId("A", "alarms")]
    assert sorted(set(ids)) == [StreamId("A", "alarms"), StreamId("A", "vitals"), StreamId("B", "ecg")]
    assert {StreamId("A", "ecg"): 1}[StreamId.parse("A/ecg")] == 1


def test_kinds_match_the_wire_enum() -> None:
    wire = {n.removeprefix("STREAM_KIND_").lower() for n in pb.StreamKind.DESCRIPTOR.values_by_name} - {"unspecified"}
    assert set(KNOWN_KINDS) == wire
    for kind in (pb.STREAM_KIND_ECG, pb.STREAM_KIND_VITALS, pb.STREAM_KIND_ALARMS, pb.STREAM_KIND_EVENTS):
        sid = stream_id_for(DEVICE, kind)
        assert sid.known and stream_kind(sid) == kind and stream_id(DEVICE, kind) == str(sid)
    future = StreamId(DEVICE, "st_segment")
    assert not future.known and stream_kind(future) == pb.STREAM_KIND_UNSPECIFIED


def test_the_outbox_lane_of_a_stored_stream_id() -> None:
    assert [stream_lane(f"{DEVICE}/{k}") for k in ("alarms", "vitals", "events", "ecg", "features")] == [
        Lane.ALARMS, Lane.VITALS, Lane.VITALS, Lane.RAW, Lane.FEATURES]
    assert stream_lane("not a stream id") == Lane.FEATURES  # kept above raw ECG: never evicted by mistake
