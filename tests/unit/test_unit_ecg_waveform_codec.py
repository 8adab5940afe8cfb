"""cardiogate ECG Waveform codec: header layout, round trip, strict rejection, fuzzing."""

from __future__ import annotations

import random
import struct
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cardiogate.edge.codecs.ecg_waveform import (
    HEADER_SIZE,
    MAX_SAMPLES,
    EcgPacket,
    decode_ecg_packet,
    encode_ecg_packet,
    samples_per_packet,
)
from cardiogate.edge.codecs.errors import DecodeError

PROPERTY = settings(max_examples=300, deadline=None, database=None)


def header(version: int = 1, flags: int = 0, seq: int = 7, t_us: int = 1_700_000_000_000_000, fs: int = 250,
           res_nv: int = 1000) -> bytes:
    return struct.pack("<BBIQHH", version, flags, seq, t_us, fs, res_nv)


def samples_le(*values: int) -> bytes:
    return struct.pack(f"<{len(values)}h", *values)


def test_header_is_18_bytes() -> None:
    assert HEADER_SIZE == 18
    assert len(header()) == 18


def test_decode_hand_built_bytes_little_endian() -> None:
    raw = (b"\x01"                              # version
           b"\x01"                              # flags: lead off
           b"\x01\x02\x03\x04"                  # sequence 0x04030201
           b"\x05\x06\x07\x08\x09\x0a\x0b\x0c"  # first-sample time 0x0C0B0A0908070605 us
           b"\xfa\x00"                          # 250 Hz
           b"\xe8\x03"                          # 1000 nV per LSB
           b"\x01\x00\xff\xff\x00\x80\xff\x7f")  # samples 1, -1, -32768, 32767
    p = decode_ecg_packet(raw)
    assert p.sequence == 0x04030201
    assert p.first_sample_time_us == 0x0C0B0A0908070605
    assert p.sample_rate_hz == 250
    assert p.resolution_nv == 1000
    assert p.lead_off is True
    assert p.samples.dtype == np.int16
    assert p.samples.tolist() == [1, -1, -32768, 32767]
    assert p.scale_uv == 1.0
    assert encode_ecg_packet(p) == raw


def test_encode_exact_bytes() -> None:
    p = EcgPacket(sequence=0xDEADBEEF, first_sample_time_us=1_700_000_000_123_456, sample_rate_hz=500,
                  resolution_nv=2500, samples=np.array([0, 100, -100], dtype=np.int16))
    raw = encode_ecg_packet(p)
    assert raw == header(1, 0, 0xDEADBEEF, 1_700_000_000_123_456, 500, 2500) + samples_le(0, 100, -100)
    assert raw[0] == 1
    assert raw[1] == 0
    assert raw[2:6] == b"\xef\xbe\xad\xde"
    assert raw[6:14] == (1_700_000_000_123_456).to_bytes(8, "little")
    assert raw[14:16] == b"\xf4\x01"
    assert raw[16:18] == b"\xc4\x09"
    assert raw[18:] == b"\x00\x00\x64\x00\x9c\xff"
    assert p.scale_uv == 2.5


def test_encode_wraps_sequence_to_32_bits() -> None:
    p = EcgPacket(2**32 + 5, 0, 250, 1000, np.array([1], dtype=np.int16))
    assert decode_ecg_packet(encode_ecg_packet(p)).sequence == 5


@pytest.mark.parametrize(("mtu", "n"), [(23, 1), (24, 1), (25, 2), (185, 82), (247, 113), (517, 248),
                                        (1000, MAX_SAMPLES), (10, 1)])
def test_samples_per_packet(mtu: int, n: int) -> None:
    assert samples_per_packet(mtu) == n


@pytest.mark.parametrize("mtu", [23, 100, 247, 517])
def test_samples_per_packet_fills_but_never_exceeds_the_notification(mtu: int) -> None:
    n = samples_per_packet(mtu)
    payload = mtu - 3
    assert HEADER_SIZE + 2 * n <= payload or n == 1
    assert HEADER_SIZE + 2 * (n + 1) > payload or n == MAX_SAMPLES


@pytest.mark.parametrize("n", [0, MAX_SAMPLES + 1])
def test_encode_rejects_sample_count(n: int) -> None:
    with pytest.raises(ValueError):
        encode_ecg_packet(EcgPacket(0, 0, 250, 1000, np.zeros(n, dtype=np.int16)))


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"", id="empty"),
        pytest.param(header()[:17], id="partial-header"),
        pytest.param(header(), id="header-without-samples"),
        pytest.param(header() + b"\x01", id="odd-payload-1"),
        pytest.param(header() + samples_le(1, 2) + b"\x03", id="odd-payload-5"),
        pytest.param(header(version=0) + samples_le(1), id="version-0"),
        pytest.param(header(version=2) + samples_le(1), id="version-2"),
        pytest.param(header(version=255) + samples_le(1), id="version-255"),
        pytest.param(header(flags=0x02) + samples_le(1), id="reserved-flag-bit1"),
        pytest.param(header(flags=0x80) + samples_le(1), id="reserved-flag-bit7"),
        pytest.param(header(flags=0xFF) + samples_le(1), id="all-flags"),
        pytest.param(header(fs=0) + samples_le(1), id="zero-rate"),
        pytest.param(header(res_nv=0) + samples_le(1), id="zero-resolution"),
        pytest.param(header() + samples_le(*range(MAX_SAMPLES + 1)), id="too-many-samples"),
        pytest.param(header() + bytes(2 * 1000), id="far-too-many-samples"),
    ],
)
def test_malformed_raises_decode_error(raw: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_ecg_packet(raw)


def test_boundaries_accepted() -> None:
    one = decode_ecg_packet(header() + samples_le(-5))
    assert one.samples.tolist() == [-5]
    full = decode_ecg_packet(header(flags=0) + samples_le(*range(-128, 128)))
    assert len(full.samples) == MAX_SAMPLES
    assert full.lead_off is False
    extremes = decode_ecg_packet(header(seq=0xFFFFFFFF, t_us=2**64 - 1, fs=0xFFFF, res_nv=0xFFFF) + samples_le(0))
    assert (extremes.sequence, extremes.first_sample_time_us) == (0xFFFFFFFF, 2**64 - 1)
    assert (extremes.sample_rate_hz, extremes.resolution_nv) == (0xFFFF, 0xFFFF)


def test_decoded_samples_do_not_alias_a_mutable_buffer() -> None:
    buf = bytearray(header() + samples_le(10, 20))
    p = decode_ecg_packet(buf)
    buf[18:22] = b"\x00\x00\x00\x00"
    assert p.samples.tolist() == [10, 20]


packets = st.builds(
    EcgPacket,
    sequence=st.integers(0, 0xFFFFFFFF),
    first_sample_time_us=st.integers(0, 2**64 - 1),
    sample_rate_hz=st.integers(1, 0xFFFF),
    resolution_nv=st.integers(1, 0xFFFF),
    samples=st.lists(st.integers(-(2**15), 2**15 - 1), min_size=1, max_size=MAX_SAMPLES)
    .map(lambda v: np.array(v, dtype=np.int16)),
    lead_off=st.booleans(),
)


@PROPERTY
@given(packets)
def test_round_trip(p: EcgPacket) -> None:
    raw = encode_ecg_packet(p)
    assert len(raw) == HEADER_SIZE + 2 * len(p.samples)
    assert raw[:HEADER_SIZE] == header(1, 1 if p.lead_off else 0, p.sequence, p.first_sample_time_us,
                                       p.sample_rate_hz, p.resolution_nv)
    q = decode_ecg_packet(raw)
    assert (q.sequence, q.first_sample_time_us, q.sample_rate_hz, q.resolution_nv, q.lead_off) == (
        p.sequence, p.first_sample_time_us, p.sample_rate_hz, p.resolution_nv, p.lead_off)
    assert q.samples.dtype == np.int16
    assert q.samples.tolist() == p.samples.tolist()


@PROPERTY
@given(st.binary(max_size=600))
def test_random_bytes_hypothesis_only_decode_error(raw: bytes) -> None:
    try:
        p = decode_ecg_packet(raw)
    except DecodeError:
        return
    assert encode_ecg_packet(p) == raw


def test_100k_random_byte_strings_only_decode_error() -> None:
    rng = random.Random(0xEC6)
    decoded = rejected = 0
    start = time.perf_counter()
    for _ in range(100_000):
        n = rng.choice((rng.randrange(0, 24), rng.randrange(18, 560)))
        raw = bytearray(rng.randbytes(n))
        if n >= 2 and rng.random() < 0.8:
            raw[0] = 1  # mostly the right version and legal flags, so the deep paths are reached
            raw[1] &= 0x01
        try:
            p = decode_ecg_packet(raw)
        except DecodeError:
            rejected += 1
            continue
        decoded += 1
        assert encode_ecg_packet(p) == bytes(raw)
    elapsed = time.perf_counter() - start
    assert decoded > 10_000
    assert rejected > 10_000
    assert elapsed < 10.0
