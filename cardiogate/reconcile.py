"""Reconcile what wearables produced with what reached Kafka: every ECG sample accounted for.

Input: the simulator's ground-truth log (every ECG packet, sent or produced while no
one listened) and the records read back from Kafka. Per device, each produced sample
must be delivered exactly once with its exact value, or lie inside a gap record whose
sequence range, device-time bounds and sample count are exact. Packets before the
first delivered one and after the last cannot be known to the gateway and are reported
separately. Pure: lists in, a report out.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from proto.cardiogate.v1 import telemetry_pb2 as pb

_WIDTH = {pb.SAMPLE_ENCODING_INT16_LE: "<i2", pb.SAMPLE_ENCODING_INT32_LE: "<i4"}


@dataclass
class StreamReport:
    """The accounting of one device's ECG stream."""

    device: str
    produced_samples: int = 0
    delivered_samples: int = 0
    wrong_samples: int = 0             # delivered, but with another value or out of order
    duplicate_records: int = 0         # the same (stream, sequence) twice in Kafka
    sequence_holes: int = 0            # record sequences missing in Kafka (outbox/uplink loss)
    gap_samples_accounted: int = 0     # lost on the air and reported by an exact gap record
    gap_samples_unaccounted: int = 0   # lost without an exact gap record
    gap_records: int = 0
    gap_mismatches: list[str] = field(default_factory=list)
    before_first_delivery: int = 0     # produced before the gateway ever heard the device
    after_last_delivery: int = 0       # produced after the last delivery (run ended or link down)

    @property
    def ok(self) -> bool:
        return not (self.wrong_samples or self.duplicate_records or self.sequence_holes
                    or self.gap_samples_unaccounted or self.gap_mismatches)


@dataclass(frozen=True, slots=True)
class _Packet:
    seq: int
    t0_ns: int
    n: int
    fs: float
    samples: list[int] | None  # None: produced while nobody listened

    @property
    def end_ns(self) -> int:
        return self.t0_ns + round(self.n * 1e9 / self.fs)


def _packets(truth: Iterable[dict[str, Any]]) -> dict[str, list[_Packet]]:
    out: dict[str, list[_Packet]] = defaultdict(list)
    for t in truth:
        if t["kind"] == "ecg":
            out[t["watch"]].append(_Packet(t["seq"], t["t0_us"] * 1000, len(t["samples"]), float(t["fs"]),
                                           t["samples"]))
        elif t["kind"] == "ecg_unsent":
            out[t["watch"]].append(_Packet(t["seq"], t["t0_us"] * 1000, int(t["n"]), float(t["fs"]), None))
    for packets in out.values():
        packets.sort(key=lambda p: p.seq)
    return out


def reconcile_ecg(truth: Iterable[dict[str, Any]], records: Iterable[pb.Record]) -> dict[str, StreamReport]:
    """Per-device reports for every device in the ground truth."""
    by_device: dict[str, list[pb.Record]] = defaultdict(list)
    gaps: dict[str, list[pb.Gap]] = defaultdict(list)
    for r in records:
        if r.kind == pb.STREAM_KIND_ECG:
            by_device[r.device_id].append(r)
        elif r.kind == pb.STREAM_KIND_EVENTS and r.event.HasField("gap"):
            gaps[r.device_id].append(r.event.gap)
    return {device: _reconcile_one(device, packets, by_device[device], gaps[device])
            for device, packets in _packets(truth).items()}


def _reconcile_one(device: str, packets: list[_Packet], blocks: list[pb.Record], gaps: list[pb.Gap]) -> StreamReport:
    rep = StreamReport(device, produced_samples=sum(p.n for p in packets))
    seen: set[int] = set()
    unique: list[pb.Record] = []
    for r in sorted(blocks, key=lambda r: r.sequence):
        if r.sequence in seen:
            rep.duplicate_records += 1
            continue
        seen.add(r.sequence)
        unique.append(r)
    if unique:
        rep.sequence_holes = unique[-1].sequence + 1 - len(unique)
    by_seq = {p.seq: p for p in packets}
    delivered: set[int] = set()
    for r in unique:
        b = r.samples
        values = np.frombuffer(b.samples, dtype=_WIDTH.get(b.encoding, "<i2")).astype(np.int64)
        pos = 0
        for seq in range(b.device_sequence_first, b.device_sequence_last + 1):
            p = by_seq.get(seq)
            if p is None or p.samples is None or seq in delivered:
                rep.wrong_samples += 1
                continue
            chunk = values[pos:pos + p.n]
            pos += p.n
            if not np.array_equal(chunk, np.asarray(p.samples, dtype=np.int64)):
                rep.wrong_samples += p.n
            delivered.add(seq)
            rep.delivered_samples += p.n
        if pos != len(values):
            rep.wrong_samples += abs(len(values) - pos)
    if not delivered:
        rep.before_first_delivery = rep.produced_samples
        return rep
    first, last = min(delivered), max(delivered)
    rep.before_first_delivery = sum(p.n for p in packets if p.seq < first)
    rep.after_last_delivery = sum(p.n for p in packets if p.seq > last)
    gap_by_first = {g.device_sequence_first: g for g in gaps}
    rep.gap_records = len(gaps)
    seq = first
    while seq <= last:
        if seq in delivered:
            seq += 1
            continue
        hole_end = seq
        while hole_end + 1 <= last and hole_end + 1 not in delivered:
            hole_end += 1
        lost = [by_seq[s] for s in range(seq, hole_end + 1) if s in by_seq]
        count = sum(p.n for p in lost)
        g = gap_by_first.get(seq)
        prev, nxt = by_seq.get(seq - 1), by_seq.get(hole_end + 1)
        if g is None:
            rep.gap_samples_unaccounted += count
            rep.gap_mismatches.append(f"seq {seq}..{hole_end}: {count} samples lost without a gap record")
        else:
            want = (seq, hole_end, count, prev.end_ns if prev else None, nxt.t0_ns if nxt else None)
            got = (g.device_sequence_first, g.device_sequence_last, g.missing_samples, g.start_device_time_ns,
                   g.end_device_time_ns)
            if want != got:
                rep.gap_mismatches.append(f"seq {seq}..{hole_end}: gap record {got} != truth {want}")
                rep.gap_samples_unaccounted += count
            else:
                rep.gap_samples_accounted += count
        seq = hole_end + 1
    return rep
