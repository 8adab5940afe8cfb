"""DeviceProcessor: notifications in, vitals records, ECG sample blocks and alarms out."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cardiogate.edge.codecs.ecg_waveform import EcgPacket, encode_ecg_packet
from cardiogate.edge.codecs.heart_rate import HeartRateMeasurement, encode_heart_rate_measurement
from cardiogate.edge.processing import DeviceProcessor, stream_id
from cardiogate.proto.v1 import telemetry_pb2 as pb

ADDR = "C0:00:00:00:00:01"
PATIENT = "pt-0001"
S = 1_000_000_000
R0 = 1_700_000_000 * S          # gateway clock at the first notification
BASE_US = 1_700_000_000_000_000  # device clock of the first ECG sample, microseconds


class RecordingSink:
    """Recording test double for RecordSink: keeps a copy of every record and alarm it is handed."""

    def __init__(self) -> None:
        self.records: list[pb.Record] = []
        self.vitals: list[tuple[str, str, int, dict[str, float | None]]] = []
        self.technical: list[tuple[str, str, str, bool, int]] = []
        self.vf: list[tuple[int, str, str]] = []

    def emit_record(self, record: pb.Record) -> None:
        copy = pb.Record()
        copy.CopyFrom(record)
        self.records.append(copy)

    def observe_vitals(self, patient: str, device_id: str, device_ns: int, *, hr: float | None = None,
                       spo2: float | None = None, systolic: float | None = None) -> None:
        self.vitals.append((patient, device_id, device_ns, {"hr": hr, "spo2": spo2, "systolic": systolic}))

    def observe_technical(self, patient: str, device_id: str, kind: str, active: bool, device_ns: int) -> None:
        self.technical.append((patient, device_id, kind, active, device_ns))

    def observe_vf(self, patient: str, device_id: str, end_ns: int, verdict: str, reason: str) -> None:
        self.vf.append((end_ns, verdict, reason))

    def blocks(self) -> list[pb.SampleBlock]:
        ecg = [r for r in self.records if r.kind == pb.STREAM_KIND_ECG]
        assert all(r.WhichOneof("body") == "samples" for r in ecg)
        return [r.samples for r in ecg]

    def events(self) -> list[pb.DeviceEvent]:
        return [r.event for r in self.records if r.kind == pb.STREAM_KIND_EVENTS]


def make(block_samples: int = 250) -> tuple[DeviceProcessor, RecordingSink]:
    sink = RecordingSink()
    return DeviceProcessor(ADDR, PATIENT, sink, block_samples=block_samples), sink


def hr(bpm: int, contact: bool | None = None, rr: tuple[int, ...] = ()) -> bytes:
    return encode_heart_rate_measurement(HeartRateMeasurement(bpm, contact, None, rr))


def ecg(seq: int, samples: list[int], t_us: int | None = None, fs: int = 250, res: int = 1000,
        lead_off: bool = False) -> bytes:
    t = BASE_US + seq * 40_000 if t_us is None else t_us
    return encode_ecg_packet(EcgPacket(seq, t, fs, res, np.array(samples, dtype=np.int16), lead_off))


def le16(values: list[int]) -> bytes:
    return np.array(values, dtype="<i2").tobytes()


def test_stream_id_format() -> None:
    assert stream_id(ADDR, pb.STREAM_KIND_VITALS) == f"{ADDR}/vitals"
    assert stream_id(ADDR, pb.STREAM_KIND_ECG) == f"{ADDR}/ecg"
    assert stream_id(ADDR, pb.STREAM_KIND_ALARMS) == f"{ADDR}/alarms"


# -- heart rate -------------------------------------------------------------------------------

def test_heart_rate_packet_becomes_vitals_record() -> None:
    proc, sink = make()
    proc.on_heart_rate(b"\x16\x48\x00\x04\x00\x02", R0)  # 72 bpm, contact detected, RR 1024 and 512
    assert len(sink.records) == 1
    assert [v["hr"] for _, _, _, v in sink.vitals] == [72.0]
    r = sink.records[0]
    assert r.stream_id == f"{ADDR}/vitals"
    assert r.device_id == ADDR
    assert r.patient == PATIENT
    assert r.kind == pb.STREAM_KIND_VITALS
    assert r.WhichOneof("body") == "vitals"
    assert r.sequence == 0  # numbering belongs to the outbox
    v = r.vitals
    assert v.HasField("heart_rate_bpm")
    assert v.heart_rate_bpm == 72.0
    assert list(v.rr_intervals_ms) == [1000.0, 500.0]
    assert v.HasField("sensor_contact")
    assert v.sensor_contact is True
    assert v.receive_time_ns == R0
    assert v.device_time_ns == R0  # no device clock seen yet
    assert proc.counters.hr_packets == 1
    assert proc.counters.last_heart_rate == 72
    assert proc.counters.decode_errors == 0


@pytest.mark.parametrize(("raw", "has", "value"), [(b"\x00\x48", False, False), (b"\x04\x48", True, False),
                                                    (b"\x06\x48", True, True), (b"\x02\x48", False, False)])
def test_sensor_contact_presence(raw: bytes, has: bool, value: bool) -> None:
    proc, sink = make()
    proc.on_heart_rate(raw, R0)
    v = sink.records[0].vitals
    assert v.HasField("sensor_contact") is has
    assert v.sensor_contact is value
    assert list(v.rr_intervals_ms) == []


def test_uint16_heart_rate() -> None:
    proc, sink = make()
    proc.on_heart_rate(b"\x01\x2c\x01", R0)
    assert sink.records[0].vitals.heart_rate_bpm == 300.0
    assert proc.counters.last_heart_rate == 300


@pytest.mark.parametrize("bad", [b"\x10\x48\x01", b"", b"\x20\x48", b"\x00\x48\x00", bytearray(b"\x01\x48")])
def test_malformed_heart_rate_is_counted_and_skipped(bad: bytes) -> None:
    proc, sink = make()
    proc.on_heart_rate(bad, R0)
    assert proc.counters.decode_errors == 1
    assert proc.counters.hr_packets == 0
    assert proc.counters.last_heart_rate is None
    assert sink.records == []
    assert sink.vitals == []
    proc.on_heart_rate(hr(80), R0 + S)
    assert proc.counters.decode_errors == 1
    assert proc.counters.hr_packets == 1
    assert [r.vitals.heart_rate_bpm for r in sink.records] == [80.0]
    proc.on_heart_rate(bad, R0 + 2 * S)
    assert proc.counters.decode_errors == 2
    assert len(sink.records) == 1


def test_malformed_ecg_is_counted_and_skipped() -> None:
    proc, sink = make(block_samples=2)
    proc.on_ecg(ecg(0, [1, 2])[:-1], R0)  # odd payload
    proc.on_ecg(b"\x02" + ecg(0, [1, 2])[1:], R0)  # bad version
    assert proc.counters.decode_errors == 2
    assert proc.counters.ecg_packets == 0
    assert sink.records == []
    proc.on_ecg(ecg(0, [1, 2]), R0)
    assert len(sink.blocks()) == 1
    assert proc.counters.ecg_gaps == 0


def test_heart_rates_go_to_the_alarm_engine_with_device_times() -> None:
    proc, sink = make(block_samples=1000)
    # Device clock runs 3 s behind the gateway: 25 samples ending at BASE+100 ms arrive at that instant + 3 s.
    end_device = BASE_US * 1000 + 100_000_000
    proc.on_ecg(ecg(0, [0] * 25, t_us=BASE_US), end_device + 3 * S)
    offset = -3 * S
    for k in range(3):
        proc.on_heart_rate(hr(130, contact=True), R0 + k * S)
    assert [(p, d, t, v["hr"]) for p, d, t, v in sink.vitals] == [
        (PATIENT, ADDR, R0 + k * S + offset, 130.0) for k in range(3)]
    assert sink.records[-1].vitals.device_time_ns == R0 + 2 * S + offset
    assert [kind for _, _, kind, active, _ in sink.technical] == ["lead_off"] * 3
    assert not any(active for _, _, _, active, _ in sink.technical)


def test_a_rate_without_skin_contact_is_not_a_heart_rate_but_a_lead_off() -> None:
    proc, sink = make()
    proc.on_heart_rate(hr(200, contact=False), R0)
    assert sink.vitals == []
    assert sink.technical == [(PATIENT, ADDR, "lead_off", True, R0)]
    assert sink.records[0].vitals.sensor_contact is False


def test_battery_level_feeds_the_battery_low_condition() -> None:
    proc, sink = make()
    proc.on_battery(bytes([40]), R0)
    proc.on_battery(bytes([12]), R0 + S)
    assert [(kind, active) for _, _, kind, active, _ in sink.technical] == [("battery_low", False),
                                                                          ("battery_low", True)]
    proc.on_battery(bytes([101]), R0 + 2 * S)  # not a percentage: counted, ignored
    assert proc.counters.decode_errors == 1 and len(sink.technical) == 2


def test_heart_rate_device_time_uses_min_delay_ecg_offset() -> None:
    proc, sink = make(block_samples=1000)
    # 25 samples at 250 Hz = 100 ms; the packet's last sample ends at BASE + 100 ms of device time.
    end0 = BASE_US * 1000 + 100_000_000
    proc.on_ecg(ecg(0, [0] * 25, t_us=BASE_US), R0 + 30_000_000)  # arrives 30 ms after its end
    offset0 = end0 - (R0 + 30_000_000)
    proc.on_heart_rate(hr(70), R0 + S)
    assert sink.records[-1].vitals.device_time_ns == R0 + S + offset0
    assert sink.records[-1].vitals.receive_time_ns == R0 + S
    # A packet that arrived with less delay improves the estimate ...
    proc.on_ecg(ecg(1, [0] * 25, t_us=BASE_US + 100_000), R0 + 130_000_000 - 20_000_000)
    offset1 = (end0 + 100_000_000) - (R0 + 110_000_000)
    assert offset1 > offset0
    proc.on_heart_rate(hr(70), R0 + 2 * S)
    assert sink.records[-1].vitals.device_time_ns == R0 + 2 * S + offset1
    # ... and a slower one does not worsen it.
    proc.on_ecg(ecg(2, [0] * 25, t_us=BASE_US + 200_000), R0 + 300_000_000 + 500_000_000)
    proc.on_heart_rate(hr(70), R0 + 3 * S)
    assert sink.records[-1].vitals.device_time_ns == R0 + 3 * S + offset1


# -- ECG blocks -------------------------------------------------------------------------------

def test_ecg_packets_concatenate_into_blocks() -> None:
    proc, sink = make(block_samples=30)
    chunks = [[k * 10 + i - 30 for i in range(10)] for k in range(6)]
    chunks[0][0], chunks[5][9] = -32768, 32767
    for k in range(6):
        proc.on_ecg(ecg(100 + k, chunks[k], t_us=BASE_US + k * 40_000, res=2500), R0 + k * 40_000_000 + 7)
        assert len(sink.records) == (1 if k >= 2 else 0) + (1 if k >= 5 else 0)
    assert proc.counters.ecg_packets == 6
    assert proc.counters.ecg_samples == 60
    assert proc.counters.ecg_gaps == 0
    b1, b2 = sink.blocks()
    for rec in sink.records:
        assert rec.stream_id == f"{ADDR}/ecg"
        assert rec.device_id == ADDR
        assert rec.patient == PATIENT
    for i, b in enumerate((b1, b2)):
        assert b.sample_count == 30
        assert b.samples == le16(chunks[3 * i] + chunks[3 * i + 1] + chunks[3 * i + 2])
        assert b.first_sample_device_time_ns == (BASE_US + 3 * i * 40_000) * 1000
        assert b.receive_time_ns == R0 + 3 * i * 40_000_000 + 7
        assert b.device_sequence_first == 100 + 3 * i
        assert b.device_sequence_last == 102 + 3 * i
        assert b.sample_rate_hz == 250.0
        assert b.scale == 2.5
        assert b.unit == "uV"
        assert b.encoding == pb.SAMPLE_ENCODING_INT16_LE


def test_flush_and_disconnect_emit_partial_block_once() -> None:
    proc, sink = make(block_samples=250)
    proc.on_ecg(ecg(0, [1, 2, 3]), R0)
    proc.on_ecg(ecg(1, [4, 5]), R0 + 1)
    assert sink.records == []
    proc.flush()
    proc.flush()
    (b,) = sink.blocks()
    assert (b.sample_count, b.samples) == (5, le16([1, 2, 3, 4, 5]))
    assert (b.device_sequence_first, b.device_sequence_last) == (0, 1)
    proc.on_ecg(ecg(2, [6]), R0 + 2)
    proc.on_disconnected()
    proc.on_disconnected()
    assert [(b.sample_count, b.device_sequence_first, b.samples) for b in sink.blocks()] == [
        (5, 0, le16([1, 2, 3, 4, 5])), (1, 2, le16([6]))]


def test_sequence_gap_flushes_block_and_is_counted() -> None:
    proc, sink = make(block_samples=30)
    proc.on_ecg(ecg(0, list(range(10))), R0)
    proc.on_ecg(ecg(1, list(range(10, 20))), R0 + 1)
    assert sink.records == []
    proc.on_ecg(ecg(4, list(range(40, 50))), R0 + 2)  # packets 2 and 3 lost
    assert proc.counters.ecg_gaps == 1
    assert proc.counters.ecg_missing_samples == 20
    (gap_event,) = sink.events()
    gap = gap_event.gap
    assert (gap.device_sequence_first, gap.device_sequence_last, gap.missing_samples) == (2, 3, 20)
    assert gap.start_device_time_ns == (BASE_US + 80_000) * 1000  # just after the last received sample
    assert gap.end_device_time_ns == (BASE_US + 160_000) * 1000   # the first sample after the gap
    assert (gap.cause, gap.stream, gap.sample_rate_hz) == (pb.GAP_CAUSE_LINK_LOSS, pb.STREAM_KIND_ECG, 250.0)
    (b,) = sink.blocks()
    assert (b.sample_count, b.device_sequence_first, b.device_sequence_last) == (20, 0, 1)
    assert b.samples == le16(list(range(20)))
    proc.on_ecg(ecg(5, list(range(50, 60))), R0 + 3)
    proc.on_ecg(ecg(6, list(range(60, 70))), R0 + 4)
    b2 = sink.blocks()[1]
    assert (b2.sample_count, b2.device_sequence_first, b2.device_sequence_last) == (30, 4, 6)
    assert b2.first_sample_device_time_ns == (BASE_US + 4 * 40_000) * 1000
    assert b2.receive_time_ns == R0 + 2
    assert b2.samples == le16(list(range(40, 70)))
    proc.on_ecg(ecg(10, [1]), R0 + 5)
    assert proc.counters.ecg_gaps == 2
    assert proc.counters.ecg_missing_samples == 20 + 30  # packets 7, 8 and 9


def test_the_block_a_gap_closes_is_emitted_before_the_gap() -> None:
    """In Kafka the samples before a gap come before the gap record (the outbox stores both in one commit)."""
    proc, sink = make(block_samples=100)
    proc.on_ecg(ecg(0, list(range(10))), R0)
    proc.on_ecg(ecg(2, list(range(20, 30))), R0 + 1)
    assert [r.WhichOneof("body") for r in sink.records] == ["samples", "event"]
    assert sink.records[1].event.gap.device_sequence_first == 1


def test_sequence_going_backwards_is_a_discontinuity_not_billions_of_losses() -> None:
    proc, sink = make(block_samples=100)
    proc.on_ecg(ecg(500, list(range(10))), R0)
    proc.on_ecg(ecg(0, list(range(10, 20))), R0 + 1)  # the watch restarted its counter
    assert proc.counters.ecg_gaps == 1
    assert proc.counters.ecg_missing_samples == 0
    assert sink.events()[0].gap.cause == pb.GAP_CAUSE_DEVICE_RESTART
    (b,) = sink.blocks()
    assert (b.device_sequence_first, b.device_sequence_last, b.sample_count) == (500, 500, 10)


def test_sequence_wrap_is_not_a_gap() -> None:
    proc, sink = make(block_samples=4)
    proc.on_ecg(ecg(0xFFFFFFFE, [1, 2], t_us=BASE_US), R0)
    proc.on_ecg(ecg(0xFFFFFFFF, [3, 4], t_us=BASE_US + 8_000), R0 + 1)
    proc.on_ecg(ecg(0, [5, 6], t_us=BASE_US + 16_000), R0 + 2)
    proc.on_ecg(ecg(1, [7, 8], t_us=BASE_US + 24_000), R0 + 3)
    assert proc.counters.ecg_gaps == 0
    assert sink.events() == []
    assert [(b.device_sequence_first, b.device_sequence_last, b.samples) for b in sink.blocks()] == [
        (0xFFFFFFFE, 0xFFFFFFFF, le16([1, 2, 3, 4])), (0, 1, le16([5, 6, 7, 8]))]


def test_rate_or_resolution_change_starts_new_block() -> None:
    proc, sink = make(block_samples=100)
    proc.on_ecg(ecg(0, [1, 2], fs=250), R0)
    proc.on_ecg(ecg(1, [3, 4], fs=500), R0 + 1)
    proc.on_ecg(ecg(2, [5, 6], fs=500, res=2000), R0 + 2)
    proc.flush()
    assert [(b.sample_rate_hz, b.scale, b.samples) for b in sink.blocks()] == [
        (250.0, 1.0, le16([1, 2])), (500.0, 1.0, le16([3, 4])), (500.0, 2.0, le16([5, 6]))]
    assert proc.counters.ecg_gaps == 0


@settings(max_examples=200, deadline=None, database=None)
@given(sizes=st.lists(st.integers(1, 60), min_size=1, max_size=40), block=st.integers(16, 120),
       start=st.integers(0, 0xFFFFFFFF))
def test_blocks_carry_every_sample_exactly_once(sizes: list[int], block: int, start: int) -> None:
    proc, sink = make(block_samples=block)
    all_samples: list[int] = []
    first_time: dict[int, int] = {}
    t_us = BASE_US
    for k, n in enumerate(sizes):
        seq = (start + k) & 0xFFFFFFFF
        values = [((k * 61 + i * 7) % 65536) - 32768 for i in range(n)]
        first_time[seq] = t_us
        proc.on_ecg(ecg(seq, values, t_us=t_us), R0 + k)
        all_samples += values
        t_us += n * 4_000
    proc.flush()
    blocks = sink.blocks()
    assert b"".join(b.samples for b in blocks) == le16(all_samples)
    assert sum(b.sample_count for b in blocks) == len(all_samples)
    expected_first = start
    for i, b in enumerate(blocks):
        assert len(b.samples) == 2 * b.sample_count
        if i < len(blocks) - 1:
            assert b.sample_count >= block
        assert b.device_sequence_first == expected_first
        assert b.first_sample_device_time_ns == first_time[b.device_sequence_first] * 1000
        expected_first = (b.device_sequence_last + 1) & 0xFFFFFFFF
    assert expected_first == (start + len(sizes)) & 0xFFFFFFFF
    assert proc.counters.ecg_gaps == 0
