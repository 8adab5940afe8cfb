"""R-peak detection scored on annotated WFDB records (MIT-BIH), ours beside NeuroKit2.

The scoring is the one the reference numbers in the architecture brief use, so figures
compare: reference beats are annotations whose symbol is in :data:`BEAT_SYMBOLS`;
detections are matched one-to-one to reference beats, nearest pair first, when
``|detection - reference| <= window`` (inclusive); Se, +P and F1 come from TP/FP/FN summed
over all records (not averaged per record); whole records, first channel.

Beside it, the same scores with ventricular flutter/fibrillation excluded, as WFDB's ``bxb`` and
AAMI EC57 compare beats: the episodes between ``[`` and ``]`` reference annotations, where the
waves are not beats (``!``) and every detection would count as a false positive (``vf_excluded``
in the JSON). The headline stays the whole-record figure.

Two rows are ours: ``ours``, the detector, and ``gateway``, the beats the gateway reports: the same detector less
what it counted while the lead was in ventricular flutter or fibrillation (:func:`detect_gateway`), which the
gateway marks as no beats (cardiogate.edge.dsp.vf.VfRhythm). Speed is compared for ``ours`` only: the
``gateway`` row includes the VF watch, another analysis.

Every detector runs once per record and is scored at each window (150 and 75 ms by default:
the wide window counts beats found, the narrow one also asks that they sit on the R wave).

Throughput is measured on one core: the process is pinned to one CPU where the OS allows,
and the clock is the process's CPU time (``time.process_time``). Only detection is timed:
for ours, filtering and detection fed in ``chunk_s`` chunks exactly as the gateway does; for
NeuroKit2, ``ecg_clean`` plus ``ecg_peaks`` with the same method (``neurokit`` and
``pantompkins1985`` by default). Records are run by every detector in turn, in the same
process, so load from other work on a shared machine affects all alike: the ratio to the
fastest NeuroKit2 method is the figure to compare, more than absolute samples/s.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import functools
import importlib.util
import json
import math
import os
import platform
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from cardiogate.edge.dsp.rpeaks import RPeakConfig, RPeakDetector
from cardiogate.edge.dsp.vf import VfRhythm, VfWatch

BEAT_SYMBOLS = frozenset("NLRBAaJSVrFejnE/fQ?")
IntArray = NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Score:
    """Counts of one detector on one or more records."""

    tp: int
    fp: int
    fn: int

    def __add__(self, other: Score) -> Score:
        return Score(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)

    @property
    def se(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def ppv(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def f1(self) -> float:
        d = 2 * self.tp + self.fp + self.fn
        return 2 * self.tp / d if d else 0.0

    def as_dict(self) -> dict[str, float | int]:
        return {"se": self.se, "ppv": self.ppv, "f1": self.f1, "tp": self.tp, "fp": self.fp, "fn": self.fn}


def match_pairs(reference: ArrayLike, detected: ArrayLike, tolerance: int) -> list[tuple[int, int]]:
    """One-to-one matching, nearest first: (reference index, detection index) pairs.

    All candidate pairs within ``tolerance`` samples (inclusive) are taken in order of
    distance (ties: earlier reference, then earlier detection time); a pair is kept when neither
    side is already matched. Inputs need not be sorted.
    """
    ref = np.asarray(reference, dtype=np.int64)
    det = np.asarray(detected, dtype=np.int64)
    if ref.size == 0 or det.size == 0:
        return []
    order = np.argsort(det, kind="stable")
    ds = det[order]
    lo = np.searchsorted(ds, ref - tolerance, side="left")
    hi = np.searchsorted(ds, ref + tolerance, side="right")
    counts = hi - lo
    ri = np.repeat(np.arange(ref.size), counts)
    starts = np.repeat(lo - (np.cumsum(counts) - counts), counts)
    dj = order[np.arange(int(counts.sum())) + starts]
    dist = np.abs(ref[ri] - det[dj])
    by = np.lexsort((dj, det[dj], ri, dist))
    used_r = np.zeros(ref.size, dtype=bool)
    used_d = np.zeros(det.size, dtype=bool)
    pairs: list[tuple[int, int]] = []
    for i, j in zip(ri[by].tolist(), dj[by].tolist(), strict=True):
        if not used_r[i] and not used_d[j]:
            used_r[i] = used_d[j] = True
            pairs.append((i, j))
    return pairs


def score_beats(reference: ArrayLike, detected: ArrayLike, tolerance: int) -> Score:
    """TP/FP/FN of detections against reference beats (see :func:`match_pairs`)."""
    n_ref = int(np.asarray(reference).size)
    n_det = int(np.asarray(detected).size)
    tp = len(match_pairs(reference, detected, tolerance))
    return Score(tp=tp, fp=n_det - tp, fn=n_ref - tp)


def tolerance_samples(window_s: float, sample_rate_hz: float) -> int:
    """The window in whole samples (150 ms at 360 Hz = 54)."""
    return math.floor(window_s * sample_rate_hz + 1e-9)


def find_records(data_dir: Path) -> list[str]:
    """Names of the records in ``data_dir`` that have a header, a signal and ``.atr`` annotations."""
    names = {p.stem for p in data_dir.glob("*.atr")}
    return sorted(n for n in names if (data_dir / f"{n}.hea").exists())


@dataclass(frozen=True, slots=True)
class Record:
    name: str
    signal: NDArray[np.float64]
    sample_rate_hz: float
    beats: IntArray
    vf_spans: tuple[tuple[int, int], ...] = ()
    """Ventricular flutter/fibrillation episodes, ``[`` to ``]`` annotations (sample indices, inclusive)."""


def vf_spans(samples: ArrayLike, symbols: Sequence[str], n_samples: int) -> tuple[tuple[int, int], ...]:
    """The ``[`` ... ``]`` episodes; one still open at the end of the record runs to its last sample."""
    spans, start = [], None
    for at, symbol in zip(np.asarray(samples).tolist(), symbols, strict=True):
        if symbol == "[" and start is None:
            start = int(at)
        elif symbol == "]" and start is not None:
            spans.append((start, int(at)))
            start = None
    if start is not None:
        spans.append((start, n_samples - 1))
    return tuple(spans)


def outside(points: ArrayLike, spans: Sequence[tuple[int, int]]) -> IntArray:
    """The points that lie in none of the spans."""
    pts = np.asarray(points, dtype=np.int64)
    keep = np.ones(pts.size, dtype=bool)
    for lo, hi in spans:
        keep &= (pts < lo) | (pts > hi)
    return pts[keep]


def load_record(data_dir: Path, name: str) -> Record:
    """First channel in physical units and the reference beats (symbols in :data:`BEAT_SYMBOLS`)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # wfdb's pandas deprecation noise, at import and on reading
        import wfdb  # type: ignore[import-untyped]

        rec = wfdb.rdrecord(str(data_dir / name), channels=[0])
        ann = wfdb.rdann(str(data_dir / name), "atr")
    sig = np.nan_to_num(np.asarray(rec.p_signal[:, 0], dtype=np.float64))
    keep = np.isin(np.asarray(ann.symbol), list(BEAT_SYMBOLS))
    return Record(name, sig, float(rec.fs), np.asarray(ann.sample, dtype=np.int64)[keep],
                  vf_spans(ann.sample, [str(x) for x in ann.symbol], sig.size))


def detect_ours(signal: NDArray[np.float64], sample_rate_hz: float, chunk_s: float = 1.0,
                config: RPeakConfig | None = None) -> tuple[IntArray, float]:
    """Our streaming detector fed ``chunk_s`` chunks; (peaks, CPU seconds spent filtering + detecting)."""
    n = max(1, round(chunk_s * sample_rate_hz))
    t0 = time.process_time()
    det = RPeakDetector(sample_rate_hz, config)
    parts = [det.process(signal[i:i + n]).peaks for i in range(0, signal.size, n)]
    elapsed = time.process_time() - t0
    return (np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)), elapsed


GATEWAY_KEY = "gateway"
"""The result key of the beats the gateway reports: ours with its VF/VFL rhythm gate (:func:`detect_gateway`)."""


def detect_gateway(signal: NDArray[np.float64], sample_rate_hz: float, chunk_s: float = 1.0,
                   config: RPeakConfig | None = None) -> tuple[IntArray, float]:
    """The beats the gateway reports: our detector as in :func:`detect_ours`, less the waves it counted while the
    lead was in ventricular flutter or fibrillation, as the gateway's ECG monitor withholds them
    (cardiogate.edge.dsp.vf: the VF watch on the same lead, judged alone, with no second lead or pulse to argue
    against it here, and :class:`~cardiogate.edge.dsp.vf.VfRhythm`). (peaks, CPU seconds for both).
    """
    n = max(1, round(chunk_s * sample_rate_hz))
    t0 = time.process_time()
    det = RPeakDetector(sample_rate_hz, config)
    watch, rhythm = VfWatch(sample_rate_hz, 1.0, screen=True), VfRhythm()  # the signal is in mV
    parts = []
    for i in range(0, signal.size, n):
        chunk = signal[i:i + n]
        peaks = det.process(chunk).peaks
        for j in watch.push(chunk, i):  # every window ending in this chunk before its beats, as the monitor does
            rhythm.observe(j.end, j.vf)
        if peaks.size:
            parts.append(peaks[[not rhythm.holds_at(p) for p in peaks.tolist()]])
    elapsed = time.process_time() - t0
    return (np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)), elapsed


def detect_neurokit(signal: NDArray[np.float64], sample_rate_hz: float,
                    method: str = "neurokit") -> tuple[IntArray, float]:
    """A NeuroKit2 method: ``ecg_clean`` then ``ecg_peaks``, both with ``method``; (peaks, CPU seconds for both)."""
    import neurokit2 as nk  # type: ignore[import-untyped]

    fs = round(sample_rate_hz)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.process_time()
        cleaned = nk.ecg_clean(signal, sampling_rate=fs, method=method)
        _, info = nk.ecg_peaks(cleaned, sampling_rate=fs, method=method)
        elapsed = time.process_time() - t0
    return np.asarray(info["ECG_R_Peaks"], dtype=np.int64), elapsed


NEUROKIT_METHODS = ("neurokit", "pantompkins1985")


def neurokit_key(method: str) -> str:
    """The result key of a NeuroKit2 method: ``neurokit2`` for its default method, ``neurokit2-<method>`` else."""
    return "neurokit2" if method == "neurokit" else f"neurokit2-{method}"


@dataclass
class DetectorTotals:
    score: Score
    samples: int = 0
    seconds: float = 0.0

    @property
    def samples_per_s(self) -> float:
        return self.samples / self.seconds if self.seconds > 0 else 0.0


Detector = Callable[[NDArray[np.float64], float], tuple[IntArray, float]]


def window_label(window_s: float) -> str:
    """The JSON key of a window: whole milliseconds when exact (``150``), else as given (``62.5``)."""
    ms = window_s * 1000.0
    return str(round(ms)) if abs(ms - round(ms)) < 1e-9 else f"{ms:g}"


def _overall(totals: dict[str, DetectorTotals]) -> dict[str, dict[str, float | int]]:
    return {k: {"se": t.score.se, "ppv": t.score.ppv, "f1": t.score.f1, "samples_per_s": t.samples_per_s,
                "tp": t.score.tp, "fp": t.score.fp, "fn": t.score.fn} for k, t in totals.items()}


def evaluate(data_dir: Path, records: Sequence[str] | None = None, window_s: float | Sequence[float] = (0.15, 0.075),
             detectors: dict[str, Detector] | None = None,
             progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Score each detector on each record at each window; return the JSON-ready result (fractions, not percent).

    ``overall``/``records`` hold the first window's scores (the headline); ``windows`` holds every window's,
    keyed by :func:`window_label`; ``speed`` names the fastest detector other than ``ours`` and the ratio.
    """
    names = list(records) if records else find_records(data_dir)
    if not names:
        raise FileNotFoundError(f"no WFDB records with .atr annotations in {data_dir}")
    windows = [float(window_s)] if isinstance(window_s, int | float) else [float(w) for w in window_s]
    if not windows:
        raise ValueError("at least one matching window is needed")
    dets: dict[str, Detector] = detectors if detectors is not None else {"ours": detect_ours,
                                                                         "neurokit2": detect_neurokit}
    totals = {w: {k: DetectorTotals(Score(0, 0, 0)) for k in dets} for w in windows}
    no_vf = {w: {k: Score(0, 0, 0) for k in dets} for w in windows}
    vf_samples = 0
    per_record: dict[float, dict[str, dict[str, dict[str, float | int]]]] = {w: {} for w in windows}
    for i, name in enumerate(names, 1):
        rec = load_record(data_dir, name)
        rows: dict[float, dict[str, dict[str, float | int]]] = {w: {} for w in windows}
        notes = []
        for key, fn in dets.items():
            peaks, seconds = fn(rec.signal, rec.sample_rate_hz)
            f1s = []
            for w in windows:
                s = score_beats(rec.beats, peaks, tolerance_samples(w, rec.sample_rate_hz))
                no_vf[w][key] += score_beats(outside(rec.beats, rec.vf_spans), outside(peaks, rec.vf_spans),
                                             tolerance_samples(w, rec.sample_rate_hz))
                t = totals[w][key]
                t.score, t.samples, t.seconds = t.score + s, t.samples + rec.signal.size, t.seconds + seconds
                rows[w][key] = s.as_dict()
                f1s.append(f"{100 * s.f1:6.2f}%")
            notes.append(f"{key} F1 {'/'.join(f1s)} ({seconds:.2f} s CPU)")
        for w in windows:
            per_record[w][name] = rows[w]
        vf_samples += sum(hi - lo + 1 for lo, hi in rec.vf_spans)
        if progress:
            progress(f"[{i}/{len(names)}] {name}: {rec.beats.size} beats, " + ", ".join(notes))
    by_window: dict[str, dict[str, Any]] = {
        window_label(w): {"window_ms": w * 1000.0, "overall": _overall(totals[w]), "records": per_record[w]}
        for w in windows}
    head = by_window[window_label(windows[0])]
    result: dict[str, Any] = {"overall": head["overall"], "records": head["records"], "windows": by_window}
    result["vf_excluded"] = {
        "samples": vf_samples,
        "windows": {window_label(w): {k: sc.as_dict()
                                      for k, sc in no_vf[w].items()} for w in windows}}
    speed = speed_summary(head["overall"])
    if speed is not None:
        result["speed"] = speed
    return result


def speed_summary(overall: dict[str, Any]) -> dict[str, Any] | None:
    """Ours beside the fastest other detector: its name, both samples/s and the ratio (None without both)."""
    others = {k: v["samples_per_s"] for k, v in overall.items()
              if k not in ("ours", GATEWAY_KEY) and v["samples_per_s"] > 0}
    if "ours" not in overall or not others:
        return None
    fastest = max(others, key=lambda k: others[k])
    ours = overall["ours"]["samples_per_s"]
    return {"fastest_reference": fastest, "ours_samples_per_s": ours, "reference_samples_per_s": others[fastest],
            "ratio": ours / others[fastest]}


def format_table(result: dict[str, Any]) -> str:
    """Per-record (first window) and overall (every window) Se/+P/F1 in percent, throughput and ratios."""
    keys = list(result["overall"])
    head = f"{'record':>8} " + " ".join(f"{k + ' Se':>13} {k + ' +P':>13} {k + ' F1':>13}" for k in keys)
    lines = [head, "-" * len(head)]

    def cells(d: dict[str, Any]) -> str:
        return " ".join(f"{100 * d[k]['se']:13.2f} {100 * d[k]['ppv']:13.2f} {100 * d[k]['f1']:13.2f}" for k in keys)

    for name, row in result["records"].items():
        lines.append(f"{name:>8} {cells(row)}")
    lines.append("-" * len(head))
    windows = result.get("windows") or {"": {"overall": result["overall"]}}
    for label, w in windows.items():
        lines.append(f"{'overall':>8} {cells(w['overall'])}" + (f"   (window {label} ms)" if label else ""))
    vf = result.get("vf_excluded")
    if vf and vf["samples"]:
        for label, by_key in vf["windows"].items():
            lines.append(f"{'no VF':>8} " + " ".join(f"{100 * by_key[k]['se']:13.2f} {100 * by_key[k]['ppv']:13.2f} "
                                                    f"{100 * by_key[k]['f1']:13.2f}" for k in keys)
                         + f"   (window {label} ms; {vf['samples']:,} samples of VF/flutter episodes excluded)")
    for k in keys:
        o = result["overall"][k]
        lines.append(f"{k}: TP {o['tp']} FP {o['fp']} FN {o['fn']}, {o['samples_per_s'] / 1e6:.2f} M samples/s")
    a = result["overall"].get("ours")
    for k in keys:
        if a is None or not k.startswith("neurokit2"):
            continue
        b = result["overall"][k]
        ratio = a["samples_per_s"] / b["samples_per_s"] if b["samples_per_s"] else float("nan")
        f1 = a["f1"] / b["f1"] if b["f1"] else float("nan")
        lines.append(f"ours / {k}: F1 {f1:.4f} ({100 * (a['f1'] - b['f1']):+.2f} points), throughput x{ratio:.2f}")
    speed = result.get("speed") or speed_summary(result["overall"])
    if speed is not None:
        lines.append(f"throughput ours / fastest reference ({speed['fastest_reference']}): x{speed['ratio']:.2f}")
    return "\n".join(lines)


@contextlib.contextmanager
def one_core() -> Iterator[int | None]:
    """Run the block on one CPU so samples/s means one core; yields the CPU (None where unsupported)."""
    if not hasattr(os, "sched_setaffinity"):
        yield None
        return
    before = os.sched_getaffinity(0)
    cpu = min(before)
    try:
        os.sched_setaffinity(0, {cpu})
    except OSError:
        yield None
        return
    try:
        yield cpu
    finally:
        os.sched_setaffinity(0, before)


def run_cli(ns: argparse.Namespace) -> int:
    """The ``cardiogate eval rpeaks`` handler."""
    data: Path = ns.data
    if not data.is_dir():
        print(f"cardiogate eval rpeaks: no such folder: {data}", file=sys.stderr)
        return 2
    mains = ns.mains_hz or None
    cfg = RPeakConfig(mains_hz=mains)
    chunk_s: float = ns.chunk_s

    def ours(sig: NDArray[np.float64], fs: float) -> tuple[IntArray, float]:
        return detect_ours(sig, fs, chunk_s, cfg)

    def gateway(sig: NDArray[np.float64], fs: float) -> tuple[IntArray, float]:
        return detect_gateway(sig, fs, chunk_s, cfg)

    detectors: dict[str, Detector] = {"ours": ours, GATEWAY_KEY: gateway}
    methods: Sequence[str] = getattr(ns, "neurokit_methods", None) or NEUROKIT_METHODS
    if not ns.no_neurokit:
        if importlib.util.find_spec("neurokit2") is None:
            print("cardiogate eval rpeaks: NeuroKit2 is not installed (pip install .[eval]); "
                  "use --no-neurokit to score ours alone", file=sys.stderr)
            return 2
        for method in methods:
            detectors[neurokit_key(method)] = functools.partial(detect_neurokit, method=method)
    windows_ms: Sequence[float] = ns.window_ms if isinstance(ns.window_ms, list | tuple) else [ns.window_ms]
    try:
        with one_core() as cpu:
            result = evaluate(data, ns.records, [w / 1000.0 for w in windows_ms], detectors,
                              progress=lambda line: print(line, flush=True))
    except FileNotFoundError as exc:
        print(f"cardiogate eval rpeaks: {exc}", file=sys.stderr)
        return 2
    probe = RPeakDetector(360.0, cfg)
    result["meta"] = {
        "data": str(data), "window_ms": list(windows_ms), "chunk_s": chunk_s, "mains_hz": mains,
        "neurokit_methods": [] if ns.no_neurokit else list(methods),
        "lookahead_s": probe.lookahead_samples / 360.0, "cpu_pinned": cpu,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(), "cpus": os.cpu_count(),
    }
    print(format_table(result), flush=True)
    if ns.json is not None:
        ns.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {ns.json}", flush=True)
    return 0
