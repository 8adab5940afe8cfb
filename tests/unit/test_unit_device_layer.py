"""The device layer's pure parts: clock tracking, ECG assembly with gaps and jumps, pairing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cardiogate.edge.clock import ClockTracker, is_clock_jump
from cardiogate.edge.ecg_assembler import EcgAssembler, EcgFrame
from cardiogate.edge.pairing import PairingError, PairingRegistry
from cardiogate.edge.settings import PairedDevice
from cardiogate.proto.v1 import telemetry_pb2 as pb

S = 1_000_000_000
G0 = 1_800_000_000 * S


def frame(first_ns: int, n: int, seq: int | None, receive_ns: int, fs: float = 250.0) -> EcgFrame:
    return EcgFrame(first_ns, fs, 1.0, np.arange(n, dtype=np.int32), seq, receive_ns)


# -- clock ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("ppm", [-80.0, 0.0, 35.0, 200.0])
def test_clock_tracker_recovers_offset_and_drift_through_jittery_delays(ppm: float) -> None:
    rng = np.random.default_rng(1)
    offset = 3_250_000_000  # the watch is 3.25 s ahead
    tracker = ClockTracker()
    for k in range(1200):  # ten minutes, two notifications per second (an ECG watch sends about that)
        gateway_sent = G0 + k * S // 2
        device = gateway_sent + offset + round(ppm * 1e-6 * k * S / 2)
        delay = 1_000_000 + int(rng.exponential(8e6))  # connection-interval jitter, a few ms to tens of ms
        tracker.observe(device, gateway_sent + delay)
    est = tracker.estimate
    assert est is not None
    assert est.skew_ppm == pytest.approx(ppm, abs=3.0)
    probe = G0 + 599 * S
    offset += round(ppm * 1e-6 * S / 2)
    true_offset = offset + round(ppm * 1e-6 * 598 * S)
    assert abs(est.offset_at(probe) - true_offset) < 2_000_000  # within 2 ms
    assert abs(est.to_gateway_time(probe + true_offset) - probe) < 2_000_000


def test_clock_reset_forgets_the_old_clock() -> None:
    tracker = ClockTracker()
    tracker.observe(G0 + 5 * S, G0)
    tracker.reset()
    assert tracker.estimate is None


def test_clock_jump_tolerates_drift_but_not_a_reset() -> None:
    assert not is_clock_jump(G0, G0 + 100_000_000, 10 * S)
    assert is_clock_jump(G0, G0 + 2 * S, 10 * S)
    assert is_clock_jump(G0, G0 - 3600 * S, 10 * S)


# -- ECG assembly ----------------------------------------------------------------------------------
def test_polar_style_frames_without_counters_get_exact_time_gaps() -> None:
    fs = 130.0
    period = S / fs
    a = EcgAssembler(block_samples=1000)
    t = G0
    out = a.push(frame(t, 73, None, t + 9_000_000, fs))
    assert out.events == []
    t_next = t + round(73 * period)
    assert a.push(frame(t_next, 73, None, t_next + 7_000_000, fs)).events == []  # contiguous: no gap
    t_after_gap = t_next + round((73 + 146) * period)  # two frames lost
    out = a.push(frame(t_after_gap, 73, None, t_after_gap + 12_000_000, fs))
    (event,) = out.events
    assert event.gap.missing_samples == 146 and event.gap.sample_rate_hz == fs
    assert [b.sample_count for b in out.blocks] == [146]


def test_contiguous_counter_with_a_jumped_timestamp_is_a_clock_jump() -> None:
    a = EcgAssembler(block_samples=1000)
    a.push(frame(G0, 100, 7, G0))
    out = a.push(frame(G0 + 400_000_000 + 3600 * S, 100, 8, G0 + S // 2))
    (event,) = out.events
    assert event.HasField("clock_jump")
    assert event.clock_jump.expected_device_time_ns == G0 + 400_000_000
    assert a.clock_jumps == 1 and a.gaps == 0
    assert [b.sample_count for b in out.blocks] == [100]


def test_a_gap_across_a_clock_jump_is_sized_by_the_gateway_clock() -> None:
    a = EcgAssembler(block_samples=1000)
    a.push(frame(G0, 125, 0, G0))
    # 10 packets lost over ~5.5 s of gateway time while the watch's clock was set back an hour.
    out = a.push(frame(G0 - 3600 * S, 125, 11, G0 + 5_500_000_000))
    kinds = [e.WhichOneof("event") for e in out.events]
    assert kinds == ["clock_jump", "gap"]
    assert out.events[1].gap.missing_samples == round(5.5 * 250) - 125


def test_a_gap_received_late_is_sized_by_the_device_clock_when_the_counter_agrees() -> None:
    """A stalled gateway receives the next packet seconds late; two packets were lost, and the counter
    and the device time agree on it: an exact gap, no clock jump."""
    a = EcgAssembler(block_samples=1000)
    a.push(frame(G0, 113, 741, G0))
    first_ns = G0 + round(3 * 113 * S / 250)  # packets 742 and 743 lost
    out = a.push(frame(first_ns, 113, 744, G0 + 5_600_000_000))
    assert [e.WhichOneof("event") for e in out.events] == ["gap"]
    gap = out.events[0].gap
    assert gap.missing_samples == 226 and (gap.device_sequence_first, gap.device_sequence_last) == (742, 743)
    assert a.clock_jumps == 0


def test_wide_samples_switch_the_block_to_int32() -> None:
    a = EcgAssembler(block_samples=4)
    a.push(EcgFrame(G0, 130.0, 1.0, np.array([1, 2], dtype=np.int32), None, G0))
    out = a.push(EcgFrame(G0 + round(2 * S / 130), 130.0, 1.0, np.array([70_000, -70_000], dtype=np.int32), None, G0))
    out.blocks.extend(a.flush())
    assert [b.encoding for b in out.blocks] == [pb.SAMPLE_ENCODING_INT16_LE, pb.SAMPLE_ENCODING_INT32_LE]
    assert np.frombuffer(out.blocks[1].samples, "<i4").tolist() == [70_000, -70_000]


@settings(max_examples=150, deadline=None, database=None)
@given(sizes=st.lists(st.integers(1, 120), min_size=2, max_size=40),
       lost=st.lists(st.booleans(), min_size=40, max_size=40))
def test_every_sample_is_delivered_or_in_exactly_one_gap(sizes: list[int], lost: list[bool]) -> None:
    a = EcgAssembler(block_samples=200)
    t, delivered, missing_truth = G0, 0, 0
    missing_reported = 0
    lost[0] = False
    for k, n in enumerate(sizes):
        if lost[k]:
            missing_truth += n
        else:
            out = a.push(frame(t, n, k, t + n * 4_000_000 + 5_000_000))  # received just after its last sample
            delivered += sum(b.sample_count for b in out.blocks)
            missing_reported += sum(e.gap.missing_samples for e in out.events if e.HasField("gap"))
        t += n * 4_000_000
    delivered += sum(b.sample_count for b in a.flush())
    trailing = 0
    for k in range(len(sizes) - 1, -1, -1):  # losses after the last received frame are not knowable yet
        if not lost[k]:
            break
        trailing += sizes[k]
    assert delivered == sum(n for n, gone in zip(sizes, lost, strict=False) if not gone)
    assert missing_reported == missing_truth - trailing


# -- pairing ----------------------------------------------------------------------------------------
def test_pairing_registry_persists_runtime_changes_atomically(tmp_path: Path) -> None:
    path = tmp_path / "pairings.json"
    configured = [PairedDevice(address="C0:00:00:00:00:01", patient="pt-0001")]
    reg = PairingRegistry(configured, path)
    seen: list[tuple[str, str | None]] = []
    reg.on_change(lambda d, a: seen.append((a, d.patient if d else None)))
    reg.pair(PairedDevice(address="c0:00:00:00:00:02", patient="pt-0002"))
    reg.unpair("C0:00:00:00:00:01")
    assert seen == [("C0:00:00:00:00:02", "pt-0002"), ("C0:00:00:00:00:01", None)]
    again = PairingRegistry(configured, path)  # a restart with the same config file
    assert [(d.address, d.patient) for d in again.devices()] == [("C0:00:00:00:00:02", "pt-0002")]
    assert not (tmp_path / "pairings.json.tmp").exists()
    assert json.loads(path.read_text())["schema"] == 1


def test_pairing_refuses_silent_reassignment_and_unknown_devices(tmp_path: Path) -> None:
    reg = PairingRegistry([PairedDevice(address="C0:00:00:00:00:01", patient="pt-0001")], tmp_path / "p.json")
    with pytest.raises(PairingError, match="unpair it first"):
        reg.pair(PairedDevice(address="C0:00:00:00:00:01", patient="pt-0009"))
    with pytest.raises(PairingError, match="not paired"):
        reg.unpair("C0:00:00:00:00:07")


def test_a_corrupt_registry_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text('{"paired": [{"address": "nonsense", "patient": "pt-0001"}]}')
    with pytest.raises(PairingError, match="unreadable pairing registry"):
        PairingRegistry([], path)
