"""ECG strips from stored blocks: exact trimming, gaps, overlaps, encodings, scale and units."""

from __future__ import annotations

import struct

import pytest

from cardiogate.cloud.api.data import EcgBlockRow
from cardiogate.cloud.api.ecg import Gap, assemble, choose_lead, decode

S = 1_000_000_000
T0 = 1_800_000_000 * S
RATE = 250.0
P = S // 250  # 4 ms


def block(first: int, values: list[int], *, encoding: str = "int16_le", scale: float = 1.0, unit: str = "uV",
          rate: float = RATE, device: str = "h10") -> EcgBlockRow:
    fmt = "<%dh" if encoding == "int16_le" else "<%di"
    return EcgBlockRow(device, first, rate, scale, unit, encoding, len(values), struct.pack(fmt % len(values),
                                                                                            *values))


def test_decode_int16_int32_scale_and_units() -> None:
    assert decode(block(T0, [1, -2, 32767, -32768])) == [1.0, -2.0, 32767.0, -32768.0]
    assert decode(block(T0, [100_000, -7], encoding="int32_le", scale=0.5)) == [50_000.0, -3.5]
    assert decode(block(T0, [3], unit="mV", scale=0.25)) == [750.0]
    assert decode(block(T0, [3], unit="furlongs")) is None
    assert decode(block(T0, [3], encoding="float32")) is None
    short = EcgBlockRow("h10", T0, RATE, 1.0, "uV", "int16_le", 5, struct.pack("<3h", 1, 2, 3))
    assert decode(short) == [1.0, 2.0, 3.0]  # never reads past the bytes


def test_contiguous_blocks_trimmed_exactly_including_a_straddling_block() -> None:
    blocks = [block(T0 + i * S, list(range(i * 250, i * 250 + 250))) for i in range(4)]
    # [from, to) = [T0 + 0.5 s, T0 + 2.5 s): the first and the third block straddle the edges
    strip = assemble(blocks, T0 + S // 2, T0 + 5 * S // 2)
    assert strip.samples == [float(x) for x in range(125, 625)]
    assert (strip.start_ns, strip.sample_rate_hz, strip.lead, strip.gaps) == (T0 + S // 2, RATE, "h10", [])


def test_boundaries_between_samples() -> None:
    blocks = [block(T0, list(range(250)))]
    # from falls 1 ns after sample 10, to exactly on sample 20: samples 11..19
    strip = assemble(blocks, T0 + 10 * P + 1, T0 + 20 * P)
    assert strip.samples == [float(x) for x in range(11, 20)]
    assert strip.start_ns == T0 + 11 * P and strip.gaps == []


def test_gap_between_blocks_at_the_start_and_at_the_end() -> None:
    blocks = [block(T0 + S, list(range(250))), block(T0 + 3 * S, list(range(1000, 1250)))]
    strip = assemble(blocks, T0, T0 + 5 * S)
    assert strip.samples == [float(x) for x in [*range(250), *range(1000, 1250)]]
    assert strip.gaps == [Gap(T0, T0 + S, 0, 250), Gap(T0 + 2 * S, T0 + 3 * S, 250, 250),
                          Gap(T0 + 4 * S, T0 + 5 * S, 500, 250)]


def test_no_blocks_is_one_gap() -> None:
    strip = assemble([], T0, T0 + S)
    assert (strip.samples, strip.start_ns, strip.lead) == ([], None, None)
    assert strip.gaps == [Gap(T0, T0 + S, 0, 0)]


def test_overlap_and_jitter_are_not_duplicates_or_gaps() -> None:
    first = block(T0, list(range(250)))
    resend = block(T0 + S - 10 * P, list(range(240, 490)))  # overlaps the first block by 10 samples
    jittered = block(T0 + 2 * S - 10 * P + P // 4, list(range(490, 740)))  # 1 ms late: jitter
    strip = assemble([jittered, resend, first], T0, T0 + 3 * S - 10 * P)
    assert strip.samples == [float(x) for x in range(740)]
    assert strip.gaps == []


def test_other_rate_or_unknown_unit_counts_as_missing() -> None:
    blocks = [block(T0, list(range(250))), block(T0 + S, list(range(130)), rate=130.0),
              block(T0 + 2 * S, list(range(250)), unit="?")]
    strip = assemble(blocks, T0, T0 + 3 * S)
    assert len(strip.samples) == 250
    assert strip.gaps == [Gap(T0 + S, T0 + 3 * S, 250, 500)]


def test_lead_choice() -> None:
    a, b = block(T0, [1] * 10, device="a"), block(T0, [2] * 20, device="b")
    assert choose_lead([a, b], None) == "b"
    assert choose_lead([a, b], "a") == "a"
    assert assemble([a, b], T0, T0 + S, "a").samples == [1.0] * 10
    assert assemble([a, b], T0, T0 + S).samples == [2.0] * 20


@pytest.mark.parametrize("rate", [130.0, 250.0, 1000.0])
def test_exact_sample_count_for_any_rate(rate: float) -> None:
    n = int(rate) * 10
    strip = assemble([block(T0, [0] * n, rate=rate)], T0 + 2 * S, T0 + 7 * S)
    assert len(strip.samples) == int(rate) * 5 and strip.gaps == []
