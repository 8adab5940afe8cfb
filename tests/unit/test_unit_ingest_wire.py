"""The ingest's per-batch shortcuts give the answers of the long way: record bytes taken from the
request equal the records serialized, Kafka records carry them with the same keys, topics and
headers, and what validation hands to authorization covers every (patient, device) of the batch."""

from __future__ import annotations

import pytest

from cardiogate.cloud.ingest import prepare_records
from cardiogate.cloud.settings import IngestLimits
from cardiogate.cloud.validation import InvalidBatch, validate_batch
from cardiogate.cloud.wire import decode_request
from cardiogate.proto.v1 import ingest_pb2
from cardiogate.proto.v1 import telemetry_pb2 as pb

S = 1_000_000_000
NOW = 1_700_000_000 * S
TOPICS = {pb.STREAM_KIND_ECG: "ecg.raw", pb.STREAM_KIND_VITALS: "vitals", pb.STREAM_KIND_ALARMS: "alarms",
          pb.STREAM_KIND_EVENTS: "device.events"}


def vitals(seq: int, device: str, patient: str) -> pb.Record:
    return pb.Record(stream_id=f"{device}/vitals", sequence=seq, device_id=device, patient=patient,
                     kind=pb.STREAM_KIND_VITALS,
                     vitals=pb.VitalsRecord(device_time_ns=NOW, receive_time_ns=NOW, heart_rate_bpm=70.0 + seq))


def ecg(seq: int, device: str, patient: str) -> pb.Record:
    return pb.Record(stream_id=f"{device}/ecg", sequence=seq, device_id=device, patient=patient,
                     kind=pb.STREAM_KIND_ECG,
                     samples=pb.SampleBlock(first_sample_device_time_ns=NOW, receive_time_ns=NOW, sample_rate_hz=250.0,
                                            scale=1.0, unit="uV", encoding=pb.SAMPLE_ENCODING_INT16_LE,
                                            samples=bytes(range(8)), sample_count=4))


def batch() -> pb.TelemetryBatch:
    return pb.TelemetryBatch(batch_id=3, records=[
        ecg(0, "C0:00:00:00:00:01", "pt-0001"), vitals(4, "C0:00:00:00:00:01", "pt-0001"),
        ecg(1, "C0:00:00:00:00:01", "pt-0001"), vitals(0, "C0:00:00:00:00:02", "pt-0002"),
        vitals(5, "C0:00:00:00:00:01", "pt-0009"),  # the watch moved to another patient mid-batch
    ])


def test_a_batch_arrives_with_each_records_bytes_and_its_size() -> None:
    sent = batch()
    received = decode_request(ingest_pb2.UploadRequest(batch=sent).SerializeToString())
    assert received is not None and received.request.batch == sent
    assert received.record_bytes == [r.SerializeToString() for r in sent.records]
    assert received.batch_size == sent.ByteSize()


def test_hello_and_undecodable_bytes() -> None:
    hello = ingest_pb2.UploadRequest(hello=ingest_pb2.Hello(gateway_id="gw-1"))
    received = decode_request(hello.SerializeToString())
    assert received is not None and received.request == hello and received.record_bytes is None
    assert decode_request(b"\xff\xff\xff") is None


def test_a_request_whose_parses_disagree_falls_back_to_serializing() -> None:
    """A batch, a Hello, a batch: the parsed request keeps only the last batch (the oneof was reset);
    the byte-level parse merges both. Its bytes are then not used."""
    first = ingest_pb2.UploadRequest(batch=pb.TelemetryBatch(records=[vitals(0, "C0:00:00:00:00:01", "pt-0001")]))
    hello = ingest_pb2.UploadRequest(hello=ingest_pb2.Hello(gateway_id="gw-1"))
    last = ingest_pb2.UploadRequest(batch=pb.TelemetryBatch(records=[vitals(1, "C0:00:00:00:00:01", "pt-0001")]))
    received = decode_request(first.SerializeToString() + hello.SerializeToString() + last.SerializeToString())
    assert received is not None and received.request == last and received.record_bytes is None
    prepared = prepare_records(received.request.batch, "gw-1", TOPICS, received.record_bytes)
    assert [o.value for o in prepared.outgoing] == [last.batch.records[0].SerializeToString()]


def test_kafka_records_are_the_same_with_received_bytes_or_serialized() -> None:
    sent = batch()
    received = decode_request(ingest_pb2.UploadRequest(batch=sent).SerializeToString())
    assert received is not None
    fast = prepare_records(received.request.batch, "gw-1", TOPICS, received.record_bytes)
    slow = prepare_records(sent, "gw-1", TOPICS)
    assert fast.outgoing == slow.outgoing
    assert [(o.topic, o.key, dict(o.headers)) for o in fast.outgoing[:2]] == [
        ("ecg.raw", b"pt-0001", {"gateway": b"gw-1", "stream": b"C0:00:00:00:00:01/ecg", "seq": b"0"}),
        ("vitals", b"pt-0001", {"gateway": b"gw-1", "stream": b"C0:00:00:00:00:01/vitals", "seq": b"4"})]
    assert fast.outgoing[4].key == b"pt-0009"
    assert fast.first == {"C0:00:00:00:00:01/ecg": 0, "C0:00:00:00:00:01/vitals": 4, "C0:00:00:00:00:02/vitals": 0}
    assert fast.last == {"C0:00:00:00:00:01/ecg": 1, "C0:00:00:00:00:01/vitals": 5, "C0:00:00:00:00:02/vitals": 0}


def test_validation_reports_every_sender_and_the_size() -> None:
    sent = batch()
    checked = validate_batch(sent, IngestLimits(), now_ns=NOW)
    assert checked.senders == {("pt-0001", "C0:00:00:00:00:01"), ("pt-0002", "C0:00:00:00:00:02"),
                               ("pt-0009", "C0:00:00:00:00:01")}
    assert checked.size == sent.ByteSize()
    assert validate_batch(sent, IngestLimits(), now_ns=NOW, size=123).size == 123


def test_alarms_and_events_keep_their_body_rules() -> None:
    device = "C0:00:00:00:00:01"
    alarm = pb.Record(stream_id=f"{device}/alarms", sequence=0, device_id=device, patient="pt-0001",
                      kind=pb.STREAM_KIND_ALARMS, alarm=pb.Alarm(alarm_id="a", condition="tachycardia"))
    event = pb.Record(stream_id=f"{device}/events", sequence=0, device_id=device, patient="pt-0001",
                      kind=pb.STREAM_KIND_EVENTS, event=pb.DeviceEvent(receive_time_ns=NOW, link=pb.LinkChange()))
    validate_batch(pb.TelemetryBatch(records=[alarm, event]), IngestLimits(), now_ns=NOW)
    for i in (0, 1):
        wrong = pb.TelemetryBatch(records=[alarm, event])
        wrong.records[i].vitals.heart_rate_bpm = 60.0
        with pytest.raises(InvalidBatch, match=rf"^record {i} .*does not match kind"):
            validate_batch(wrong, IngestLimits(), now_ns=NOW)
    no_body = pb.TelemetryBatch(records=[alarm, event])
    no_body.records[1].event.Clear()
    no_body.records[1].event.receive_time_ns = NOW
    with pytest.raises(InvalidBatch, match="a device event needs a body"):
        validate_batch(no_body, IngestLimits(), now_ns=NOW)
