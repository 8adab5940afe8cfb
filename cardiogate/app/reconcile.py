"""Reconcile what wearables produced with what reached Kafka: nothing lost, nothing doubled.

Inputs: the simulator's ground-truth log (every ECG packet, sent or produced while no one
listened) and the records read back from Kafka, in the order Kafka holds them (a stream
is keyed by patient, so it lives in one partition and its consumption order is its
offset order).

ECG, per device: every produced sample must be delivered exactly once with its exact
value, or lie inside gap records whose packet range, device-time bounds and sample count
are exact. Gaps may chain (a link loss followed directly by a gateway restart, or one
eviction run split over two transactions): each gap is checked on its own range, and
together they must cover every hole. Packets before the first delivered or reported one
and after the last cannot be known to the gateway and are counted separately.

Every stream, by record sequence (the outbox numbers each stream 0, 1, 2, ... and never
reuses a number): each sequence once, in order, without holes except documented ones:
raw ECG records the outbox evicted (explained by EVICTED gaps), or ranges the caller
documents (records the cloud rejected). Given the cloud's ledger, every sequence it
acked must be in Kafka. Pure: lists in, a report out.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import numpy as np

from cardiogate.core.ids import InvalidStreamId, StreamId
from cardiogate.proto.contracts import stream_id_for
from cardiogate.proto.v1 import telemetry_pb2 as pb

TIME_TOLERANCE_NS = 1_000
"""The truth log stamps packets in whole microseconds: gap bounds must match to within that."""
_WIDTH = {pb.SAMPLE_ENCODING_INT16_LE: "<i2", pb.SAMPLE_ENCODING_INT32_LE: "<i4"}
_KIND_NAME = {pb.STREAM_KIND_ECG: "ecg", pb.STREAM_KIND_VITALS: "vitals", pb.STREAM_KIND_ALARMS: "alarms",
              pb.STREAM_KIND_EVENTS: "events"}
Ranges = Iterable[tuple[int, int]]


@dataclass
class StreamReport:
    """The accounting of one device's ECG stream, in samples (and its records, by sequence)."""

    device: str
    produced_samples: int = 0
    delivered_samples: int = 0         # distinct samples delivered (once counted, duplicates aside)
    duplicate_samples: int = 0         # extra copies: duplicate records, or a packet in two records
    wrong_samples: int = 0             # delivered with another value, or claiming packets never sent
    duplicate_records: int = 0         # the same (stream, sequence) more than once in Kafka
    reordered_records: int = 0         # behind a higher sequence in Kafka order
    sequence_holes: int = 0            # record sequences missing in Kafka without an explanation
    evicted_records: int = 0           # record sequences missing because the outbox evicted them (EVICTED gaps)
    gap_samples_accounted: int = 0     # not delivered, inside an exact gap record
    evicted_samples: int = 0           # of those, inside EVICTED gaps (disk budget)
    gap_samples_unaccounted: int = 0   # lost without an exact gap record: missing
    gap_records: int = 0
    gap_mismatches: list[str] = field(default_factory=list)
    before_first_delivery: int = 0     # produced before the gateway delivered or reported anything
    after_last_delivery: int = 0       # produced after the last delivery or gap (run ended, link down)

    @property
    def missing_samples(self) -> int:
        return self.gap_samples_unaccounted

    @property
    def ok(self) -> bool:
        return not (self.wrong_samples or self.duplicate_samples or self.duplicate_records
                    or self.reordered_records or self.sequence_holes or self.gap_samples_unaccounted
                    or self.gap_mismatches)


@dataclass
class SequenceReport:
    """One stream checked by record sequence: each number once, in order, no undocumented hole."""

    stream_id: str
    kind: str
    records: int = 0                   # distinct sequences in Kafka
    duplicate_records: int = 0
    conflicting_duplicates: int = 0    # of those, with other content: two records numbered alike
    reordered_records: int = 0
    holes: list[tuple[int, int]] = field(default_factory=list)  # missing, undocumented (inclusive ranges)
    excused_records: int = 0           # missing, but documented (evicted, rejected)
    acked_missing: int = 0             # of the holes, sequences the cloud acked

    @property
    def missing_records(self) -> int:
        return sum(b - a + 1 for a, b in self.holes)

    @property
    def ok(self) -> bool:
        return not (self.duplicate_records or self.reordered_records or self.holes)


@dataclass
class Reconciliation:
    """ECG per device (samples) and every stream (records)."""

    ecg: dict[str, StreamReport]
    streams: dict[str, SequenceReport]

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.ecg.values()) and all(s.ok for s in self.streams.values())

    def totals(self) -> dict[str, int]:
        e, s = list(self.ecg.values()), list(self.streams.values())
        return {
            "produced_samples": sum(r.produced_samples for r in e),
            "delivered_samples": sum(r.delivered_samples for r in e),
            "gap_samples": sum(r.gap_samples_accounted for r in e),
            "evicted_samples": sum(r.evicted_samples for r in e),
            "missing_samples": sum(r.missing_samples for r in e),
            "duplicate_samples": sum(r.duplicate_samples for r in e),
            "wrong_samples": sum(r.wrong_samples for r in e),
            "unknown_to_gateway_samples": sum(r.before_first_delivery + r.after_last_delivery for r in e),
            "gap_records": sum(r.gap_records for r in e),
            "gap_mismatches": sum(len(r.gap_mismatches) for r in e),
            "records": sum(x.records for x in s),
            "duplicate_records": sum(x.duplicate_records for x in s),
            "reordered_records": sum(x.reordered_records for x in s),
            "missing_records": sum(x.missing_records for x in s),
            "excused_records": sum(x.excused_records for x in s),
            "acked_missing_records": sum(x.acked_missing for x in s),
        }


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


def _kind_of(stream_id: str, records: Sequence[pb.Record]) -> str:
    if records:
        return _KIND_NAME.get(records[0].kind, "other")
    try:
        return StreamId.parse(stream_id).kind
    except InvalidStreamId:
        return "other"


def _dedupe(stream_id: str, kind: str, records: Iterable[pb.Record]) -> tuple[SequenceReport, dict[int, pb.Record]]:
    """First copy of each sequence, and the duplicates and reorderings seen in Kafka order."""
    rep = SequenceReport(stream_id, kind)
    first: dict[int, pb.Record] = {}
    high = -1
    for r in records:
        prev = first.get(r.sequence)
        if prev is not None:
            rep.duplicate_records += 1
            if prev.SerializeToString(deterministic=True) != r.SerializeToString(deterministic=True):
                rep.conflicting_duplicates += 1
            continue
        first[r.sequence] = r
        if r.sequence < high:
            rep.reordered_records += 1
        high = max(high, r.sequence)
    rep.records = len(first)
    return rep, first


def _holes(rep: SequenceReport, present: Iterable[int], excused: set[int], acked_next: int | None) -> None:
    """Fill in the undocumented holes below the highest sequence seen or acked."""
    have = set(present)
    missing: list[int] = []
    for seq in range(max(max(have, default=-1), (acked_next or 0) - 1) + 1):
        if seq in have:
            continue
        if seq in excused:
            rep.excused_records += 1
            continue
        if acked_next is not None and seq < acked_next:
            rep.acked_missing += 1
        missing.append(seq)
    rep.holes = _runs(missing)


def _expand(ranges: Ranges | None) -> set[int]:
    return {s for a, b in ranges or () for s in range(a, b + 1)}


def _gaps_by_device(events: Mapping[str, list[pb.Record]]) -> dict[str, list[pb.Gap]]:
    """ECG gap records per device, each once (a replayed event record is one gap, not two)."""
    out: dict[str, list[pb.Gap]] = defaultdict(list)
    for stream_id, records in events.items():
        _, first = _dedupe(stream_id, "events", records)
        for r in first.values():
            if r.event.HasField("gap") and r.event.gap.stream in (pb.STREAM_KIND_ECG, pb.STREAM_KIND_UNSPECIFIED):
                out[r.device_id].append(r.event.gap)
    return out


def _by_stream(records: Iterable[pb.Record]) -> dict[str, list[pb.Record]]:
    out: dict[str, list[pb.Record]] = defaultdict(list)
    for r in records:
        out[r.stream_id].append(r)
    return out


def reconcile_ecg(truth: Iterable[dict[str, Any]], records: Iterable[pb.Record],
                  time_tolerance_ns: int = TIME_TOLERANCE_NS) -> dict[str, StreamReport]:
    """Per-device ECG reports for every device in the ground truth."""
    streams = _by_stream(records)
    gaps = _gaps_by_device({s: rs for s, rs in streams.items() if rs[0].kind == pb.STREAM_KIND_EVENTS})
    ecg: dict[str, list[pb.Record]] = defaultdict(list)
    for rs in streams.values():
        if rs[0].kind == pb.STREAM_KIND_ECG:
            ecg[rs[0].device_id].extend(rs)
    return {device: _reconcile_device(device, packets, ecg[device], gaps[device], None, time_tolerance_ns)[0]
            for device, packets in _packets(truth).items()}


def reconcile_streams(truth: Iterable[dict[str, Any]], records: Iterable[pb.Record], *,
                      acked: Mapping[str, int] | None = None, excused: Mapping[str, Ranges] | None = None,
                      time_tolerance_ns: int = TIME_TOLERANCE_NS) -> Reconciliation:
    """ECG of every device in the truth or in Kafka, and every stream by record sequence.

    ``records`` in Kafka order; ``acked``: the cloud ledger's next expected sequence per
    stream id (every sequence below it was acked, so must be in Kafka or documented);
    ``excused``: per stream id, inclusive sequence ranges documented as never sent.
    """
    streams = _by_stream(records)
    acked = acked or {}
    excused = excused or {}
    gaps = _gaps_by_device({s: rs for s, rs in streams.items() if rs[0].kind == pb.STREAM_KIND_EVENTS})
    packets = _packets(truth)
    ecg_streams = {s: rs for s, rs in streams.items() if rs[0].kind == pb.STREAM_KIND_ECG}
    devices = dict.fromkeys([*packets, *(rs[0].device_id for rs in ecg_streams.values())])
    ecg_reports: dict[str, StreamReport] = {}
    seq_reports: dict[str, SequenceReport] = {}
    for device in devices:
        stream_id = str(stream_id_for(device, pb.STREAM_KIND_ECG))
        recs = ecg_streams.get(stream_id, [])
        ecg_reports[device], seq_reports[stream_id] = _reconcile_device(
            device, packets.get(device, []), recs, gaps.get(device, []), acked.get(stream_id), time_tolerance_ns,
            _expand(excused.get(stream_id)))
    for stream_id in dict.fromkeys([*streams, *acked]):
        if stream_id in seq_reports:
            continue
        recs = streams.get(stream_id, [])
        rep, first = _dedupe(stream_id, _kind_of(stream_id, recs), recs)
        _holes(rep, first, _expand(excused.get(stream_id)), acked.get(stream_id))
        seq_reports[stream_id] = rep
    return Reconciliation(ecg_reports, seq_reports)


def _reconcile_device(device: str, packets: list[_Packet], blocks: list[pb.Record], gaps: list[pb.Gap],
                      acked_next: int | None, tol: int,
                      excused: set[int] | None = None) -> tuple[StreamReport, SequenceReport]:
    rep = StreamReport(device, produced_samples=sum(p.n for p in packets))
    seqrep, first = _dedupe(str(stream_id_for(device, pb.STREAM_KIND_ECG)), "ecg", blocks)
    rep.duplicate_records, rep.reordered_records = seqrep.duplicate_records, seqrep.reordered_records
    by_seq = {p.seq: p for p in packets}
    unique = [first[s] for s in sorted(first)]
    copies = Counter(r.sequence for r in blocks)
    for s, n in copies.items():  # a replayed record delivers its samples again
        rep.duplicate_samples += (n - 1) * first[s].samples.sample_count
    delivered = _deliver(rep, unique, by_seq)
    cover = _check_gaps(rep, gaps, by_seq, delivered, tol)
    known = delivered | cover.keys()
    if not known:
        rep.before_first_delivery = rep.produced_samples
    else:
        lo, hi = min(known), max(known)
        lost: list[int] = []
        for p in packets:
            if p.seq < lo:
                rep.before_first_delivery += p.n
            elif p.seq > hi:
                rep.after_last_delivery += p.n
            elif p.seq in delivered:
                continue
            elif p.seq in cover:
                rep.gap_samples_accounted += p.n
                if cover[p.seq] == pb.GAP_CAUSE_EVICTED:
                    rep.evicted_samples += p.n
            else:
                rep.gap_samples_unaccounted += p.n
                lost.append(p.seq)
        for a, b in _runs(lost):
            n = sum(by_seq[s].n for s in range(a, b + 1) if s in by_seq)
            rep.gap_mismatches.append(f"seq {a}..{b}: {n} samples lost without a gap record")
    evicted = _evicted_record_sequences(unique, cover, acked_next)
    _holes(seqrep, first, evicted | (excused or set()), acked_next)
    rep.sequence_holes = seqrep.missing_records
    rep.evicted_records = len(evicted - first.keys())
    return rep, seqrep


def _runs(seqs: list[int]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for s in seqs:
        if out and out[-1][1] == s - 1:
            out[-1] = (out[-1][0], s)
        else:
            out.append((s, s))
    return out


def _deliver(rep: StreamReport, unique: list[pb.Record], by_seq: dict[int, _Packet]) -> set[int]:
    """Place each record's samples on the watch's packets; returns the packets delivered."""
    delivered: set[int] = set()
    for r in unique:
        b = r.samples
        values = np.frombuffer(b.samples, dtype=_WIDTH.get(b.encoding, "<i2")).astype(np.int64)
        pos = 0
        for seq in range(b.device_sequence_first, b.device_sequence_last + 1):
            p = by_seq.get(seq)
            if p is None or p.samples is None:  # the watch never sent it: the rest cannot be placed
                rep.wrong_samples += max(0, len(values) - pos)
                pos = len(values)
                break
            chunk = values[pos:pos + p.n]
            pos += p.n
            if seq in delivered:
                rep.duplicate_samples += p.n
                continue
            delivered.add(seq)
            rep.delivered_samples += p.n
            if not np.array_equal(chunk, np.asarray(p.samples, dtype=np.int64)):
                rep.wrong_samples += p.n
        if pos != len(values):
            rep.wrong_samples += abs(len(values) - pos)
    return delivered


def _check_gaps(rep: StreamReport, gaps: list[pb.Gap], by_seq: dict[int, _Packet], delivered: set[int],
                tol: int) -> dict[int, int]:
    """Check each gap on its own range; returns packet -> cause for the packets exact gaps cover."""
    cover: dict[int, int] = {}
    rep.gap_records = len(gaps)
    for g in sorted(gaps, key=lambda g: (g.device_sequence_first, g.device_sequence_last)):
        f, last = g.device_sequence_first, g.device_sequence_last
        span = range(f, last + 1)
        if last < f or len(span) > len(by_seq):
            rep.gap_mismatches.append(f"gap seq {f}..{last}: a range the watch never produced")
            continue
        lost = [by_seq.get(s) for s in span]
        if g.missing_samples == 0 and g.cause != pb.GAP_CAUSE_EVICTED and all(p is None for p in lost):
            continue  # says "nothing missing" about packets that never existed (a counter restart): true
        problems: list[str] = []
        if any(p is None for p in lost):
            problems.append("names packets the watch never produced")
        else:
            known = [p for p in lost if p is not None]
            count = sum(p.n for p in known)
            nxt = by_seq.get(last + 1)
            start, end = known[0].t0_ns, nxt.t0_ns if nxt is not None else known[-1].end_ns
            if g.missing_samples != count:
                problems.append(f"{g.missing_samples} samples, truth {count}")
            if abs(g.start_device_time_ns - start) > tol or abs(g.end_device_time_ns - end) > tol:
                problems.append(f"device time {g.start_device_time_ns}..{g.end_device_time_ns}, truth {start}..{end}")
        overlap = [s for s in span if s in delivered]
        if overlap:
            problems.append(f"covers {len(overlap)} delivered packets")
        twice = [s for s in span if s in cover]
        if twice:
            problems.append(f"covers {len(twice)} packets another gap already covers")
        if problems:
            cause = pb.GapCause.Name(g.cause) if g.cause in pb.GapCause.values() else str(g.cause)
            rep.gap_mismatches.append(f"gap seq {f}..{last} ({cause}): " + "; ".join(problems))
            continue
        for s in span:
            cover[s] = g.cause
    return cover


def _evicted_record_sequences(unique: list[pb.Record], cover: dict[int, int], acked_next: int | None) -> set[int]:
    """Record sequences missing because the outbox evicted them: the packets between the neighbouring
    delivered records are all covered by exact gaps, at least one of them EVICTED."""

    def evicted_run(lo: int, hi: int) -> bool:
        return lo <= hi and all(s in cover for s in range(lo, hi + 1)) and \
            any(cover[s] == pb.GAP_CAUSE_EVICTED for s in range(lo, hi + 1))

    def covered_down(hi: int) -> int:
        lo = hi
        while lo - 1 in cover:
            lo -= 1
        return lo

    def covered_up(lo: int) -> int:
        hi = lo
        while hi + 1 in cover:
            hi += 1
        return hi

    out: set[int] = set()
    if not unique:
        if acked_next and any(c == pb.GAP_CAUSE_EVICTED for c in cover.values()):
            out.update(range(acked_next))
        return out
    head = unique[0]
    hi = head.samples.device_sequence_first - 1
    if head.sequence > 0 and hi in cover and evicted_run(covered_down(hi), hi):
        out.update(range(head.sequence))
    for a, b in pairwise(unique):
        if b.sequence > a.sequence + 1 and evicted_run(a.samples.device_sequence_last + 1,
                                                       b.samples.device_sequence_first - 1):
            out.update(range(a.sequence + 1, b.sequence))
    tail = unique[-1]
    lo = tail.samples.device_sequence_last + 1
    if acked_next is not None and acked_next > tail.sequence + 1 and lo in cover and evicted_run(lo, covered_up(lo)):
        out.update(range(tail.sequence + 1, acked_next))
    return out
