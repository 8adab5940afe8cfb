"""Per-patient feature windows from telemetry records: pure functions, no I/O.

The stream processor keeps one accumulator per (patient, window) in its window state, which
quixstreams stores in RocksDB as JSON; so the accumulator is a plain dict of numbers, lists
and string-keyed dicts. It holds sums, counts and extremes rather than the records, so a
window of any length costs the same, and :func:`merge` is order-independent: folding the
same records in any order, or in pieces that are merged afterwards, gives the same window.

RMSSD uses the successive differences inside each vitals record's RR list (the device
reports them in beat order); differences across records are not taken, because records of
one window may be folded in any order.

A closed window stays revisable: :func:`late_route` says where a record goes once its window
has closed, and :func:`fold_late` adds it to the closed window's accumulator and numbers the
revision; :func:`retained_starts` keeps that bookkeeping within the revision horizon.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Mapping
from typing import Any

from cardiogate.proto.v1 import features_pb2
from cardiogate.proto.v1 import telemetry_pb2 as pb

Accumulator = dict[str, Any]

SCHEMA_VERSION = 1
PRIORITY_NAMES = {pb.ALARM_PRIORITY_HIGH: "high", pb.ALARM_PRIORITY_MEDIUM: "medium",
                  pb.ALARM_PRIORITY_LOW: "low", pb.ALARM_PRIORITY_TECHNICAL: "technical"}
_SUMS = ("records", "hr_sum", "hr_n", "rr_n", "rr_sum", "rr_sumsq", "rr_diff_n", "rr_diffsq", "spo2_sum", "spo2_n",
         "sys_sum", "sys_n", "dia_sum", "dia_n", "map_sum", "map_n", "bp_n", "sq_sum", "sq_n", "received", "missing",
         "late")
_MINS = ("hr_min", "spo2_min")
_MAXES = ("hr_max",)
_COUNTS = ("rhythm", "alarms")
ON_TIME, REVISED, LATE_TOPIC = "window", "revised", "late_topic"  # where a record goes, per window width


def new_accumulator() -> Accumulator:
    acc: Accumulator = dict.fromkeys(_SUMS, 0)
    acc.update(dict.fromkeys(_MINS + _MAXES))
    acc.update({name: {} for name in _COUNTS})
    return acc


def _finite(x: float) -> bool:
    return math.isfinite(x)


def window_start(t_ns: int, width_s: int) -> int:
    """The start of the epoch-aligned tumbling window of ``width_s`` seconds that holds ``t_ns``."""
    width_ns = width_s * 1_000_000_000
    return t_ns - t_ns % width_ns


def event_time_ns(record: pb.Record) -> int | None:
    """The device time a record belongs to, or None when it carries none."""
    which = record.WhichOneof("body")
    t = 0
    if which == "samples":
        s = record.samples
        t = s.first_sample_corrected_time_ns or s.first_sample_device_time_ns
    elif which == "vitals":
        t = record.vitals.device_time_ns
    elif which == "alarm":
        a = record.alarm
        t = a.trigger_sample_device_time_ns or a.onset_sample_device_time_ns or a.decision_time_ns
    elif which == "event":
        e = record.event
        t = e.gap.start_device_time_ns if e.HasField("gap") and e.gap.start_device_time_ns else e.device_time_ns
    return t if t > 0 else None


def _lower(acc: Accumulator, name: str, value: float) -> None:
    acc[name] = value if acc[name] is None else min(acc[name], value)


def _raise(acc: Accumulator, name: str, value: float) -> None:
    acc[name] = value if acc[name] is None else max(acc[name], value)


def _count(acc: Accumulator, table: str, key: str, amount: int = 1) -> None:
    acc[table][key] = acc[table].get(key, 0) + amount


def fold(acc: Accumulator, record: pb.Record) -> Accumulator:
    """Add one record to the accumulator (in place; returned for ``reduce``)."""
    acc["records"] += 1
    which = record.WhichOneof("body")
    if which == "vitals":
        _fold_vitals(acc, record.vitals)
    elif which == "samples":
        acc["received"] += record.samples.sample_count
    elif which == "alarm":
        a = record.alarm
        if a.state == pb.ALARM_STATE_RAISED and a.priority in PRIORITY_NAMES:
            _count(acc, "alarms", PRIORITY_NAMES[a.priority])
    elif which == "event" and record.event.HasField("gap"):
        acc["missing"] += record.event.gap.missing_samples
    return acc


def _mean_of(acc: Accumulator, v: pb.VitalsRecord, field: str, prefix: str) -> bool:
    if not v.HasField(field):  # type: ignore[arg-type]
        return False
    value = getattr(v, field)
    if not _finite(value):
        return False
    acc[f"{prefix}_sum"] += value
    acc[f"{prefix}_n"] += 1
    return True


def _fold_vitals(acc: Accumulator, v: pb.VitalsRecord) -> None:
    if v.HasField("heart_rate_bpm") and _finite(v.heart_rate_bpm) and v.heart_rate_bpm > 0:
        hr = v.heart_rate_bpm
        acc["hr_sum"] += hr
        acc["hr_n"] += 1
        _lower(acc, "hr_min", hr)
        _raise(acc, "hr_max", hr)
    rr = [x for x in v.rr_intervals_ms if _finite(x) and x > 0]
    if rr:
        acc["rr_n"] += len(rr)
        acc["rr_sum"] += sum(rr)
        acc["rr_sumsq"] += sum(x * x for x in rr)
        diffs = [b - a for a, b in itertools.pairwise(rr)]
        acc["rr_diff_n"] += len(diffs)
        acc["rr_diffsq"] += sum(d * d for d in diffs)
    if _mean_of(acc, v, "spo2_percent", "spo2"):
        _lower(acc, "spo2_min", v.spo2_percent)
    if _mean_of(acc, v, "systolic_mmhg", "sys"):
        acc["bp_n"] += 1
    _mean_of(acc, v, "diastolic_mmhg", "dia")
    _mean_of(acc, v, "mean_arterial_mmhg", "map")
    if v.source == "ecg":
        if v.rhythm:
            _count(acc, "rhythm", v.rhythm)
        if v.HasField("signal_quality") and _finite(v.signal_quality):
            acc["sq_sum"] += v.signal_quality
            acc["sq_n"] += 1


def merge(a: Accumulator, b: Accumulator) -> Accumulator:
    """A new accumulator holding both; commutative and associative."""
    out = new_accumulator()
    for name in _SUMS:
        out[name] = a.get(name, 0) + b.get(name, 0)
    for name in _MINS:
        values = [x for x in (a.get(name), b.get(name)) if x is not None]
        out[name] = min(values) if values else None
    for name in _MAXES:
        values = [x for x in (a.get(name), b.get(name)) if x is not None]
        out[name] = max(values) if values else None
    for table in _COUNTS:
        for src in (a.get(table, {}), b.get(table, {})):
            for key, n in src.items():
                _count(out, table, key, n)
    return out


def _mean(acc: Accumulator, prefix: str) -> float | None:
    n = acc[f"{prefix}_n"]
    return acc[f"{prefix}_sum"] / n if n else None


def finalize(acc: Accumulator, patient: str, width_s: int, start_ns: int, *, revision: int = 0,
             computed_time_ns: int = 0) -> features_pb2.FeatureWindow:
    """The published window; a feature without data stays unset."""
    w = features_pb2.FeatureWindow(schema_version=SCHEMA_VERSION, patient=patient, width_s=width_s,
                                   start_device_time_ns=start_ns, end_device_time_ns=start_ns + width_s * 10**9,
                                   revision=revision, computed_time_ns=computed_time_ns,
                                   record_count=acc["records"], late_record_count=acc["late"])
    w.hr_count = acc["hr_n"]
    if acc["hr_n"]:
        w.hr_mean = acc["hr_sum"] / acc["hr_n"]
        w.hr_min, w.hr_max = acc["hr_min"], acc["hr_max"]
    n = acc["rr_n"]
    w.rr_count = n
    if n >= 3:
        variance = max(0.0, (acc["rr_sumsq"] - acc["rr_sum"] ** 2 / n) / (n - 1))
        w.sdnn_ms = math.sqrt(variance)
        if acc["rr_diff_n"]:
            w.rmssd_ms = math.sqrt(acc["rr_diffsq"] / acc["rr_diff_n"])
    if acc["spo2_n"]:
        w.spo2_mean = acc["spo2_sum"] / acc["spo2_n"]
        w.spo2_min = acc["spo2_min"]
    for field, prefix in (("systolic_mean", "sys"), ("diastolic_mean", "dia"), ("mean_arterial_mean", "map")):
        value = _mean(acc, prefix)
        if value is not None:
            setattr(w, field, value)
    w.bp_count = acc["bp_n"]
    classified = sum(acc["rhythm"].values())
    if classified:
        for cls, count in acc["rhythm"].items():
            w.rhythm_shares[cls] = count / classified
        w.af_burden = acc["rhythm"].get("A", 0) / classified
    for priority, count in acc["alarms"].items():
        w.alarm_counts[priority] = count
    quality = _mean(acc, "sq")
    if quality is not None:
        w.signal_quality_mean = quality
    w.samples_received, w.samples_missing = acc["received"], acc["missing"]
    total = acc["received"] + acc["missing"]
    if total:
        w.completeness = acc["received"] / total
    return w


def late_route(t_ms: int, width_ms: int, mark_ms: int | None, grace_ms: int, horizon_ms: int) -> str:
    """Where a record at ``t_ms`` goes for windows of ``width_ms``, given the partition's newest event
    time ``mark_ms``: its open window (:data:`ON_TIME`), a revision of its closed window (:data:`REVISED`,
    while the window ends after ``mark_ms - horizon_ms``) or the late topic (:data:`LATE_TOPIC`).

    A window is closed once its end is at or before the aligned ``mark_ms - grace_ms``, quixstreams'
    own rule for partition closing, so the window store never sees a record it would reject."""
    if mark_ms is None:
        return ON_TIME
    closed_until = (mark_ms - grace_ms) - (mark_ms - grace_ms) % width_ms
    end = t_ms - t_ms % width_ms + width_ms
    if end > closed_until:
        return ON_TIME
    return REVISED if end > mark_ms - horizon_ms else LATE_TOPIC


def fold_late(closed: Mapping[str, Any] | None, record: pb.Record) -> dict[str, Any]:
    """A closed window (``{"acc", "revision"}``) with one late record added, as a new dict: the next
    revision, or revision 0 for a window never published (its gateway was away for all of it)."""
    if closed is None:
        acc, revision = new_accumulator(), 0
    else:
        acc, revision = copy.deepcopy(closed["acc"]), int(closed["revision"]) + 1
    fold(acc, record)
    acc["late"] += 1
    return {"acc": acc, "revision": revision}


def retained_starts(starts: list[int], width_ms: int, floor_ms: int) -> tuple[list[int], list[int]]:
    """(kept, dropped) window starts: a window ending at or before ``floor_ms`` can no longer be revised."""
    kept = sorted(s for s in set(starts) if s + width_ms > floor_ms)
    return kept, sorted(set(starts) - set(kept))
