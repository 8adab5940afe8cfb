"""Heart Rate Measurement (0x2A37) codec: exact bytes, strict rejection, zero RR values dropped, fuzzing."""

from __future__ import annotations

import random
import struct
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cardiogate.edge.codecs.errors import DecodeError
from cardiogate.edge.codecs.heart_rate import (
    HeartRateMeasurement,
    decode_heart_rate_measurement,
    encode_heart_rate_measurement,
    rr_ms_to_1024,
)
from cardiogate.edge.processing import DeviceProcessor
from cardiogate.proto.v1 import telemetry_pb2 as pb

PROPERTY = settings(max_examples=400, deadline=None, database=None)

HRM = HeartRateMeasurement


# -- hand-written vectors, one per flag combination --------------------------------------------

@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # flags 0x00: uint8 HR only
        (b"\x00\x48", HRM(72)),
        (b"\x00\x00", HRM(0)),
        (b"\x00\xff", HRM(255)),
        # flags 0x01: uint16 HR, little-endian
        (b"\x01\x48\x00", HRM(72)),
        (b"\x01\x2c\x01", HRM(300)),
        (b"\x01\xff\xff", HRM(0xFFFF)),
        # bits 1-2 = 0b01: contact bit without "supported" -> unsupported (None)
        (b"\x02\x48", HRM(72, None)),
        # bits 1-2 = 0b10: supported, not detected
        (b"\x04\x48", HRM(72, False)),
        # bits 1-2 = 0b11: supported, detected
        (b"\x06\x48", HRM(72, True)),
        # energy expended (u16 LE, kJ)
        (b"\x08\x48\x34\x12", HRM(72, None, 0x1234)),
        (b"\x09\x2c\x01\x00\x00", HRM(300, None, 0)),
        # one RR interval: 1024/1024 s
        (b"\x10\x48\x00\x04", HRM(72, None, None, (1024,))),
        # several RR intervals
        (b"\x10\x48\x00\x04\x00\x02\x00\x06", HRM(72, None, None, (1024, 512, 1536))),
        (b"\x10\x48\x01\x00\xff\xff", HRM(72, None, None, (1, 0xFFFF))),
        # everything: uint16 HR 300, contact detected, energy 10000 kJ, RR 1024 and 819
        (b"\x1f\x2c\x01\x10\x27\x00\x04\x33\x03", HRM(300, True, 10000, (1024, 819))),
        # contact supported + not detected, energy and RR, uint8 HR
        (b"\x1c\x5a\x01\x00\xcd\x02", HRM(90, False, 1, (0x02CD,))),
    ],
)
def test_decode_hand_vectors(raw: bytes, expected: HeartRateMeasurement) -> None:
    assert decode_heart_rate_measurement(raw) == expected
    assert decode_heart_rate_measurement(bytearray(raw)) == expected


def test_rr_intervals_converted_to_milliseconds() -> None:
    m = decode_heart_rate_measurement(b"\x10\x48\x00\x04\x00\x02\x00\x06\x01\x00\x33\x03")
    assert m.rr_intervals_1024 == (1024, 512, 1536, 1, 819)
    assert m.rr_intervals_ms == (1000.0, 500.0, 1500.0, 1000.0 / 1024, 819 * 1000 / 1024)
    assert m.rr_intervals_ms[3] == 0.9765625
    assert HRM(60).rr_intervals_ms == ()


@pytest.mark.parametrize(("ms", "units"), [(1000.0, 1024), (500.0, 512), (0.0, 1), (-5.0, 1), (1e9, 0xFFFF),
                                           (799.8046875, 819), (1000.0 / 1024, 1)])
def test_rr_ms_to_1024(ms: float, units: int) -> None:
    assert rr_ms_to_1024(ms) == units


@pytest.mark.parametrize(
    ("m", "kwargs", "raw"),
    [
        (HRM(72), {}, b"\x00\x48"),
        (HRM(72), {"force_uint16": True}, b"\x01\x48\x00"),
        (HRM(255), {}, b"\x00\xff"),
        (HRM(256), {}, b"\x01\x00\x01"),
        (HRM(300), {}, b"\x01\x2c\x01"),
        (HRM(72, False), {}, b"\x04\x48"),
        (HRM(72, True), {}, b"\x06\x48"),
        (HRM(72, None, 0x1234), {}, b"\x08\x48\x34\x12"),
        (HRM(72, None, None, (1024, 512)), {}, b"\x10\x48\x00\x04\x00\x02"),
        (HRM(300, True, 10000, (1024, 819)), {}, b"\x1f\x2c\x01\x10\x27\x00\x04\x33\x03"),
    ],
)
def test_encode_exact_bytes(m: HeartRateMeasurement, kwargs: dict[str, bool], raw: bytes) -> None:
    assert encode_heart_rate_measurement(m, **kwargs) == raw


@pytest.mark.parametrize("m", [HRM(-1), HRM(0x10000), HRM(72, None, None, (0,)), HRM(72, None, None, (0x10000,)),
                               HRM(72, None, None, (1024, -3))])
def test_encode_rejects_out_of_range(m: HeartRateMeasurement) -> None:
    with pytest.raises(ValueError):
        encode_heart_rate_measurement(m)


# -- malformed packets -------------------------------------------------------------------------

@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"\x00", id="flags-only"),
        pytest.param(b"\x01", id="flags-only-uint16"),
        pytest.param(b"\x01\x48", id="truncated-uint16-hr"),
        pytest.param(b"\x08\x48", id="energy-missing"),
        pytest.param(b"\x08\x48\x34", id="energy-truncated"),
        pytest.param(b"\x09\x48\x00\x34", id="energy-truncated-uint16-hr"),
        pytest.param(b"\x10\x48", id="rr-flag-no-rr"),
        pytest.param(b"\x10\x48\x01", id="rr-odd-1"),
        pytest.param(b"\x10\x48\x00\x04\x00", id="rr-odd-3"),
        pytest.param(b"\x18\x48\x34\x12\x00", id="rr-odd-after-energy"),
        pytest.param(b"\x18\x48\x34\x12", id="rr-flag-energy-but-no-rr"),
        pytest.param(b"\x20\x48", id="reserved-bit5"),
        pytest.param(b"\x40\x48", id="reserved-bit6"),
        pytest.param(b"\x80\x48", id="reserved-bit7"),
        pytest.param(b"\xff\x48\x00\x00\x00\x00\x04", id="all-bits"),
        pytest.param(b"\x00\x48\x00", id="trailing-byte"),
        pytest.param(b"\x00\x48\x00\x04", id="trailing-rr-without-flag"),
        pytest.param(b"\x01\x48\x00\x00", id="trailing-after-uint16"),
        pytest.param(b"\x08\x48\x34\x12\x00", id="trailing-after-energy"),
        pytest.param(b"\x06\x48\xff", id="trailing-after-contact"),
    ],
)
def test_malformed_raises_decode_error(raw: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_heart_rate_measurement(raw)


def test_decode_error_is_a_value_error() -> None:
    assert issubclass(DecodeError, ValueError)


# -- an RR of 0: the interval is dropped and counted, the heart rate is kept ------------------------

@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # flags 0x11: uint16 HR 0, one RR of 0 (what a strap sends while it settles)
        (b"\x11\x00\x00\x00\x00", HRM(0, None, None, (), 1)),
        (b"\x10\x48\x00\x00", HRM(72, None, None, (), 1)),
        (b"\x10\x48\x00\x04\x00\x00", HRM(72, None, None, (1024,), 1)),
        (b"\x10\x48\x00\x00\x00\x04\x00\x00\x00\x02", HRM(72, None, None, (1024, 512), 2)),
        # contact detected, energy, uint16 HR 130 and the zero RR in the middle
        (b"\x1f\x82\x00\x10\x27\x00\x04\x00\x00\x33\x03", HRM(130, True, 10000, (1024, 819), 1)),
    ],
)
def test_zero_rr_is_dropped_and_counted(raw: bytes, expected: HeartRateMeasurement) -> None:
    m = decode_heart_rate_measurement(raw)
    assert m == expected
    assert 0 not in m.rr_intervals_1024


def test_a_measurement_that_dropped_rr_re_encodes_without_it() -> None:
    m = decode_heart_rate_measurement(b"\x10\x48\x00\x04\x00\x00")
    assert encode_heart_rate_measurement(m) == b"\x10\x48\x00\x04"
    assert decode_heart_rate_measurement(encode_heart_rate_measurement(m)) == HRM(72, None, None, (1024,))
    only_zero = decode_heart_rate_measurement(b"\x11\x00\x00\x00\x00")
    assert encode_heart_rate_measurement(only_zero, force_uint16=True) == b"\x01\x00\x00"  # no RR flag left


class _Sink:
    def __init__(self) -> None:
        self.records: list[pb.Record] = []
        self.hr: list[float | None] = []

    def emit_record(self, record: pb.Record) -> None:
        copy = pb.Record()
        copy.CopyFrom(record)
        self.records.append(copy)

    def observe_vitals(self, patient: str, device_id: str, device_ns: int, *, hr: float | None = None,
                       spo2: float | None = None, systolic: float | None = None) -> None:
        self.hr.append(hr)

    def observe_technical(self, patient: str, device_id: str, kind: str, active: bool, device_ns: int) -> None:
        pass

    def observe_vf(self, patient: str, device_id: str, end_ns: int, verdict: str, reason: str) -> None:
        pass


def test_the_gateway_keeps_the_heart_rate_and_counts_the_dropped_rr() -> None:
    sink = _Sink()
    proc = DeviceProcessor("C0:00:00:00:00:01", "pt-0001", sink)  # type: ignore[arg-type]
    t0 = 1_700_000_000 * 1_000_000_000
    proc.on_heart_rate(b"\x16\x48\x00\x00\x00\x02", t0)  # 72 bpm, contact, RR 0 (dropped) and 512
    proc.on_heart_rate(b"\x11\x4b\x00\x00\x00", t0 + 1_000_000_000)  # 75 bpm, RR 0 only
    assert (proc.counters.decode_errors, proc.counters.hr_packets, proc.counters.rr_dropped) == (0, 2, 2)
    assert proc.counters.last_heart_rate == 75
    vitals = [r.vitals for r in sink.records if r.kind == pb.STREAM_KIND_VITALS]
    assert [v.heart_rate_bpm for v in vitals] == [72.0, 75.0]
    assert [list(v.rr_intervals_ms) for v in vitals] == [[500.0], []]
    assert sink.hr == [72.0, 75.0]  # the alarm rules see both heart rates


# -- properties --------------------------------------------------------------------------------

u16 = st.integers(0, 0xFFFF)
measurements = st.builds(
    HeartRateMeasurement,
    heart_rate_bpm=u16,
    sensor_contact=st.none() | st.booleans(),
    energy_expended_kj=st.none() | u16,
    rr_intervals_1024=st.lists(st.integers(1, 0xFFFF), max_size=12).map(tuple),
)


@PROPERTY
@given(measurements, st.booleans())
def test_round_trip_every_valid_measurement(m: HeartRateMeasurement, force_uint16: bool) -> None:
    raw = encode_heart_rate_measurement(m, force_uint16=force_uint16)
    assert decode_heart_rate_measurement(raw) == m
    wide = force_uint16 or m.heart_rate_bpm > 0xFF
    expected_len = 1 + (2 if wide else 1) + (2 if m.energy_expended_kj is not None else 0) \
        + 2 * len(m.rr_intervals_1024)
    assert len(raw) == expected_len
    assert raw[0] & 0xE0 == 0
    assert bool(raw[0] & 0x01) == wide


@PROPERTY
@given(
    flags=st.integers(0, 0x1F),
    hr=u16,
    energy=u16,
    rr=st.lists(st.integers(0, 0xFFFF) | st.just(0), min_size=1, max_size=10),
)
def test_decode_structured_packets(flags: int, hr: int, energy: int, rr: list[int]) -> None:
    """Build a packet field by field from the spec and check what the decoder makes of it."""
    wide = bool(flags & 0x01)
    if not wide:
        hr &= 0xFF
    raw = bytes([flags]) + (struct.pack("<H", hr) if wide else bytes([hr]))
    if flags & 0x08:
        raw += struct.pack("<H", energy)
    if flags & 0x10:
        raw += struct.pack(f"<{len(rr)}H", *rr)
    m = decode_heart_rate_measurement(raw)
    assert m.heart_rate_bpm == hr
    assert m.sensor_contact == (bool(flags & 0x02) if flags & 0x04 else None)
    assert m.energy_expended_kj == (energy if flags & 0x08 else None)
    assert m.rr_intervals_1024 == (tuple(v for v in rr if v) if flags & 0x10 else ())
    assert m.rr_dropped == (rr.count(0) if flags & 0x10 else 0)
    # One byte more or less never leaves a valid packet.
    with pytest.raises(DecodeError):
        decode_heart_rate_measurement(raw[:-1])
    with pytest.raises(DecodeError):
        decode_heart_rate_measurement(raw + b"\x01")


@PROPERTY
@given(st.binary(max_size=40))
def test_random_bytes_hypothesis_only_decode_error(raw: bytes) -> None:
    try:
        m = decode_heart_rate_measurement(raw)
    except DecodeError:
        return
    _assert_re_encodes(m, raw)


def _canonical(raw: bytes) -> bytes:
    """The bytes the encoder would write for what ``raw`` decodes to: an unsupported contact bit
    cleared, RR values of 0 left out, and the RR flag cleared when no RR value is left."""
    flags = raw[0]
    if not flags & 0x04:
        flags &= ~0x02
    start = 1 + (2 if flags & 0x01 else 1) + (2 if flags & 0x08 else 0)
    if not flags & 0x10:
        return bytes([flags]) + raw[1:]
    kept = b"".join(raw[i:i + 2] for i in range(start, len(raw), 2) if raw[i:i + 2] != b"\x00\x00")
    if not kept:
        flags &= ~0x10
    return bytes([flags]) + raw[1:start] + kept


def _assert_re_encodes(m: HeartRateMeasurement, raw: bytes) -> None:
    """Accepted input re-encodes to its canonical bytes; to exactly ``raw`` (but for an unsupported
    contact bit) when no RR value was dropped."""
    again = encode_heart_rate_measurement(m, force_uint16=bool(raw[0] & 0x01))
    assert again == _canonical(raw)
    if m.rr_dropped == 0:
        flags = raw[0] if raw[0] & 0x04 else raw[0] & ~0x02
        assert again == bytes([flags]) + raw[1:]
    else:
        assert len(again) == len(raw) - 2 * m.rr_dropped
    assert decode_heart_rate_measurement(again).rr_dropped == 0


def test_100k_random_byte_strings_only_decode_error() -> None:
    rng = random.Random(0x2A37)
    decoded = rejected = 0
    start = time.perf_counter()
    for _ in range(100_000):
        n = rng.randrange(0, 20)
        raw = bytearray(rng.randbytes(n))
        if n and rng.random() < 0.7:
            raw[0] &= 0x1F  # mostly valid flags, so the deep paths are reached
        try:
            m = decode_heart_rate_measurement(raw)
        except DecodeError:
            rejected += 1
            continue
        decoded += 1
        # Anything accepted re-encodes to the same bytes, less the RR values of 0 it dropped.
        _assert_re_encodes(m, bytes(raw))
    elapsed = time.perf_counter() - start
    assert decoded > 10_000
    assert rejected > 10_000
    assert elapsed < 10.0
