"""ECG continuity across gateway restarts: the stored tail, resume, and exact gaps for what a restart lost.

A gateway killed with SIGKILL loses the ECG block it had open and everything the
watch sent while it was down. The outbox stores each device's last stored packet
(its tail) in the transaction that stores the block carrying it; a new processor
resumes from it, and the first packet after the restart yields one exact gap record.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from hypothesis import given, settings
from hypothesis import strategies as st

from cardiogate.app.reconcile import reconcile_ecg
from cardiogate.edge.codecs.ecg_waveform import EcgPacket, encode_ecg_packet
from cardiogate.edge.ecg_assembler import EcgAssembler, EcgFrame, EcgTail
from cardiogate.edge.ecg_monitor import MonitoredBeat
from cardiogate.edge.inference import RhythmResult
from cardiogate.edge.outbox import Outbox
from cardiogate.edge.processing import DeviceProcessor, EcgTailStore
from cardiogate.proto.v1 import telemetry_pb2 as pb

S = 1_000_000_000
G0 = 1_800_000_000 * S
ADDR = "C0:00:00:00:00:07"
PATIENT = "pt-0007"
FS = 250
BASE_US = 1_700_000_000_000_000
LATENCY_NS = 7_000_000  # a notification arrives a few ms after its last sample


def frame(first_ns: int, n: int, seq: int | None, receive_ns: int, fs: float = 250.0) -> EcgFrame:
    return EcgFrame(first_ns, fs, 1.0, np.arange(n, dtype=np.int32), seq, receive_ns)


def gap_fields(event: pb.DeviceEvent) -> tuple[int, int, int, int, int, int]:
    g = event.gap
    return (g.device_sequence_first, g.device_sequence_last, g.missing_samples, g.start_device_time_ns,
            g.end_device_time_ns, g.cause)


class OutboxSink:
    """The gateway's storage side, reduced to the outbox: a RecordSink that is an EcgTailStore."""

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox
        self.transactions: list[tuple[list[int], dict[str, EcgTail]]] = []  # (record kinds, tails) per append

    def emit_record(self, record: pb.Record) -> None:
        self.outbox.append(record)

    def emit_records(self, records: Sequence[pb.Record], ecg_tails: Mapping[str, EcgTail] | None = None) -> None:
        self.outbox.append_many(records, ecg_tails)
        self.transactions.append(([r.kind for r in records], dict(ecg_tails or {})))

    def load_ecg_tail(self, device_id: str) -> EcgTail | None:
        return self.outbox.ecg_tail(device_id)

    def observe_vitals(self, patient: str, device_id: str, device_ns: int, *, hr: float | None = None,
                       spo2: float | None = None, systolic: float | None = None) -> None:
        pass

    def observe_technical(self, patient: str, device_id: str, kind: Any, active: bool, device_ns: int) -> None:
        pass

    def observe_vf(self, patient: str, device_id: str, end_ns: int, verdict: Any, reason: str) -> None:
        pass

    def observe_beats(self, patient: str, device_id: str, complete_ns: int, beats: list[MonitoredBeat],
                      interrupted: bool = False) -> None:
        pass

    def observe_rhythm(self, patient: str, device_id: str, end_ns: int, rhythm: RhythmResult,
                       window_uv: npt.NDArray[np.float64] | None = None, sample_rate_hz: float = 0.0) -> None:
        pass


def stored(outbox: Outbox) -> list[pb.Record]:
    return [pb.Record.FromString(p.payload) for p in outbox.pending(0, 1_000_000)]


class Watch:
    """Our ECG watch's packets: a counter, microsecond timestamps on a contiguous 250 Hz time base."""

    def __init__(self) -> None:
        self.seq = 0
        self.index = 0
        self.truth: list[dict[str, Any]] = []

    def next(self, n: int) -> tuple[bytes, int]:
        """The next packet and the gateway time it arrives at; recorded in the ground truth."""
        t0_us = BASE_US + self.index * 1_000_000 // FS
        samples = (np.arange(n) + self.index) % 2000 - 1000
        packet = EcgPacket(self.seq, t0_us, FS, 1000, samples.astype(np.int16), False)
        self.truth.append({"kind": "ecg", "watch": ADDR, "seq": self.seq, "t0_us": t0_us, "fs": FS,
                           "samples": samples.tolist()})
        self.seq += 1
        self.index += n
        end_ns = (BASE_US + self.index * 1_000_000 // FS) * 1000
        return encode_ecg_packet(packet), end_ns + LATENCY_NS


# -- the assembler ---------------------------------------------------------------------------------

def test_tail_is_the_last_frame_of_the_last_emitted_block_not_of_the_open_one() -> None:
    a = EcgAssembler(block_samples=200)
    assert a.tail is None
    a.push(frame(G0, 100, 0, G0 + S // 2))
    f1 = frame(G0 + 400_000_000, 100, 1, G0 + S - 1)
    (block,) = a.push(f1).blocks
    assert a.tail == EcgTail(1, f1.end_ns, f1.receive_ns, 250.0) and block.device_sequence_last == 1
    a.push(frame(G0 + 800_000_000, 100, 2, G0 + 3 * S // 2))  # open block: not stored, so not the tail
    assert a.tail == EcgTail(1, f1.end_ns, f1.receive_ns, 250.0)
    a.flush()
    assert a.tail is not None and a.tail.seq == 2


def test_tail_after_a_discontinuity_is_just_before_the_frame_that_followed_it() -> None:
    a = EcgAssembler(block_samples=1000)
    a.push(frame(G0, 100, 0, G0 + 400_000_000))
    f = frame(G0 + 800_000_000, 100, 2, G0 + 1_200_000_000)
    out = a.push(f)  # packet 1 lost: the block 0 and the gap are returned, packet 2 opens a block
    assert [b.device_sequence_last for b in out.blocks] == [0] and len(out.events) == 1
    assert a.tail == EcgTail(1, f.first_sample_ns, f.receive_ns - 400_000_000, 250.0)
    # A counter gone backwards (the wearable restarted): the next restart gap starts at packet 0.
    g = frame(G0 + 2 * S, 100, 0, G0 + 2 * S + 400_000_000)
    a.push(g)
    assert a.tail is not None and a.tail.seq == 0xFFFFFFFF and a.tail.end_ns == g.first_sample_ns


def test_resume_yields_the_exact_gap_a_restart_left() -> None:
    a = EcgAssembler(block_samples=1000)
    tail = EcgTail(41, G0, G0 + 5_000_000, 250.0)
    a.resume(tail)
    # 9 packets of 50 samples lost (42..50): the open block of the killed process and the downtime.
    first_ns = G0 + 9 * 50 * 4_000_000
    out = a.push(frame(first_ns, 50, 51, first_ns + 200_000_000 + 6_000_000))
    (event,) = out.events
    assert gap_fields(event) == (42, 50, 450, G0, first_ns, pb.GAP_CAUSE_GATEWAY_RESTART)
    assert event.gap.sample_rate_hz == 250.0 and out.blocks == []
    assert (a.gaps, a.missing_samples) == (1, 450)
    # Later gaps in the same run are ordinary link losses.
    out = a.push(frame(first_ns + 400_000_000, 50, 53, first_ns + 600_000_000))
    assert out.events[0].gap.cause == pb.GAP_CAUSE_LINK_LOSS


def test_resume_then_the_next_packet_is_contiguous() -> None:
    a = EcgAssembler(block_samples=1000)
    a.resume(EcgTail(7, G0, G0 + 3_000_000, 250.0))
    out = a.push(frame(G0, 25, 8, G0 + 100_000_000 + 4_000_000))
    assert out.events == [] and a.gaps == 0


def test_resume_then_a_counter_gone_backwards_is_a_device_restart() -> None:
    a = EcgAssembler(block_samples=1000)
    a.resume(EcgTail(90_000, G0, G0, 250.0))
    (event,) = a.push(frame(G0 + 10 * S, 25, 0, G0 + 10 * S + 100_000_000)).events
    assert event.gap.cause == pb.GAP_CAUSE_DEVICE_RESTART and event.gap.missing_samples == 0


def test_resume_without_a_counter_sizes_the_gap_by_device_time() -> None:
    fs = 130.0
    a = EcgAssembler(block_samples=1000)
    a.resume(EcgTail(None, G0, G0 + 9_000_000, fs))
    first_ns = G0 + round(5 * 73 * S / fs)  # five Polar frames lost
    (event,) = a.push(frame(first_ns, 73, None, first_ns + round(73 * S / fs) + 9_000_000, fs)).events
    assert gap_fields(event) == (0, 0, 365, G0, first_ns, pb.GAP_CAUSE_GATEWAY_RESTART)


def test_a_long_downtime_is_no_clock_jump_but_a_moved_device_clock_is() -> None:
    # The gateway was down 40 s; the next frame is longer than usual. Comparing frame ends with the
    # gateway time between them sees clocks that agree (a resumed tail has no start to compare).
    a = EcgAssembler(block_samples=1000)
    a.resume(EcgTail(0, G0, G0 + 5_000_000, 250.0))
    first_ns = G0 + 40 * S
    out = a.push(frame(first_ns, 250, 1001, first_ns + S + 5_000_000))
    assert [e.WhichOneof("event") for e in out.events] == ["gap"]
    assert out.events[0].gap.missing_samples == 40 * 250

    b = EcgAssembler(block_samples=1000)
    b.resume(EcgTail(0, G0, G0 + 5_000_000, 250.0))
    receive = G0 + 40 * S + S + 5_000_000
    out = b.push(frame(G0 + 3600 * S, 250, 1001, receive))  # the watch's clock was set an hour ahead meanwhile
    assert [e.WhichOneof("event") for e in out.events] == ["clock_jump", "gap"]
    assert out.events[1].gap.missing_samples == 40 * 250  # sized by the gateway clock


# -- the processor over a real outbox ---------------------------------------------------------------

def test_a_gap_closing_a_block_is_stored_after_it_with_the_tail_in_one_transaction(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    try:
        sink = OutboxSink(outbox)
        assert isinstance(sink, EcgTailStore)
        proc = DeviceProcessor(ADDR, PATIENT, sink, block_samples=1000)
        watch = Watch()
        for _ in range(3):
            proc.on_ecg(*watch.next(10))
        assert stored(outbox) == [] and outbox.ecg_tail(ADDR) is None  # the block is still open
        watch.next(10)  # lost on the air
        data, receive_ns = watch.next(10)
        proc.on_ecg(data, receive_ns)
        block, gap = stored(outbox)
        assert (block.kind, block.samples.device_sequence_last, gap.kind) == (pb.STREAM_KIND_ECG, 2,
                                                                             pb.STREAM_KIND_EVENTS)
        gap_end = (BASE_US + 40 * 4000) * 1000
        assert gap_fields(gap.event) == (3, 3, 10, gap_end - 40_000_000, gap_end, pb.GAP_CAUSE_LINK_LOSS)
        # One transaction: the block, the gap, and the tail they account up to (the end of the gap).
        tail = EcgTail(3, gap_end, receive_ns - 40_000_000, 250.0)
        assert sink.transactions == [([pb.STREAM_KIND_ECG, pb.STREAM_KIND_EVENTS], {ADDR: tail})]
        assert outbox.ecg_tail(ADDR) == tail
    finally:
        outbox.close()


def test_a_restart_gap_continues_a_gap_the_killed_process_stored(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    killed = Outbox(path)
    proc = DeviceProcessor(ADDR, PATIENT, OutboxSink(killed), block_samples=1000)
    watch = Watch()
    for _ in range(3):
        proc.on_ecg(*watch.next(10))
    watch.next(10)
    proc.on_ecg(*watch.next(10))  # gap for packet 3 stored with block 0..2; packet 4 opens a block
    proc.on_ecg(*watch.next(10))  # packet 5, still in the open block
    for _ in range(3):  # 6..8 while the gateway was down
        watch.next(10)
    outbox = Outbox(path)  # SIGKILL, restart
    try:
        proc2 = DeviceProcessor(ADDR, PATIENT, OutboxSink(outbox), block_samples=1000)
        proc2.on_ecg(*watch.next(10))
        first_gap, restart_gap = (r.event for r in stored(outbox) if r.kind == pb.STREAM_KIND_EVENTS)
        assert gap_fields(first_gap)[:2] == (3, 3)
        assert gap_fields(restart_gap) == (4, 8, 50, first_gap.gap.end_device_time_ns,
                                           (BASE_US + 90 * 4000) * 1000, pb.GAP_CAUSE_GATEWAY_RESTART)
        proc2.flush()
        report = reconcile_ecg(watch.truth, stored(outbox))[ADDR]
        assert report.ok, report.gap_mismatches
        assert (report.delivered_samples, report.gap_samples_accounted) == (40, 60)
    finally:
        outbox.close()
        killed.close()


def test_a_processor_resumes_from_the_outbox_after_a_kill(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    killed = Outbox(path)
    proc = DeviceProcessor(ADDR, PATIENT, OutboxSink(killed), block_samples=50)
    watch = Watch()
    for _ in range(13):  # packets 0..9 stored in two blocks, 10..12 in the open block
        proc.on_ecg(*watch.next(10))
    end_of_9 = (BASE_US + 100 * 4000) * 1000
    assert killed.ecg_tail(ADDR) == EcgTail(9, end_of_9, end_of_9 + LATENCY_NS, 250.0)
    for _ in range(7):  # 13..19 sent while no gateway listened
        watch.next(10)
    # SIGKILL: no flush, no close. The restarted gateway opens the same database.
    outbox = Outbox(path)
    try:
        proc2 = DeviceProcessor(ADDR, PATIENT, OutboxSink(outbox), block_samples=50)
        proc2.on_ecg(*watch.next(10))
        gap = stored(outbox)[-1].event
        assert gap_fields(gap) == (10, 19, 100, end_of_9, (BASE_US + 200 * 4000) * 1000,
                                   pb.GAP_CAUSE_GATEWAY_RESTART)
        assert proc2.counters.ecg_gaps == 1
        proc2.flush()
        report = reconcile_ecg(watch.truth, stored(outbox))[ADDR]
        assert report.ok, report.gap_mismatches
        assert (report.delivered_samples, report.gap_samples_accounted) == (110, 100)
    finally:
        outbox.close()
        killed.close()


def test_a_fresh_outbox_starts_a_fresh_stream(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    try:
        proc = DeviceProcessor(ADDR, PATIENT, OutboxSink(outbox), block_samples=50)
        watch = Watch()
        watch.next(10)
        proc.on_ecg(*watch.next(10))  # the first packet this gateway ever hears: no gap to report
        assert proc.counters.ecg_gaps == 0
    finally:
        outbox.close()


@settings(max_examples=60, deadline=None, database=None)
@given(sizes=st.lists(st.integers(1, 40), min_size=5, max_size=80),
       fate=st.lists(st.sampled_from(["ok", "ok", "ok", "ok", "air", "kill", "down"]), min_size=80, max_size=80),
       block_samples=st.integers(10, 120))
def test_every_sample_is_stored_once_or_in_an_exact_gap_across_kills(sizes: list[int], fate: list[str],
                                                                     block_samples: int) -> None:
    """Random air losses and SIGKILLs (a kill loses the open block; the gateway stays down a few packets)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "outbox.sqlite3"
        outboxes = [Outbox(path)]
        proc = DeviceProcessor(ADDR, PATIENT, OutboxSink(outboxes[-1]), block_samples=block_samples)
        watch = Watch()
        down = False
        try:
            for n, what in zip(sizes, fate, strict=False):
                data, receive_ns = watch.next(n)
                if what == "kill":
                    down = True  # this packet reached a process that died before storing it
                    continue
                if what == "down":
                    continue
                if down:  # restart: a new process on the same database
                    outboxes.append(Outbox(path))
                    proc = DeviceProcessor(ADDR, PATIENT, OutboxSink(outboxes[-1]), block_samples=block_samples)
                    down = False
                if what == "ok":
                    proc.on_ecg(data, receive_ns)
            proc.flush()
            report = reconcile_ecg(watch.truth, stored(outboxes[-1]))[ADDR]
        finally:
            for ob in outboxes:
                ob.close()
    assert report.ok, report.gap_mismatches
    assert report.delivered_samples + report.gap_samples_accounted + report.before_first_delivery + \
        report.after_last_delivery == report.produced_samples

