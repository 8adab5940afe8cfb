"""``cardiogate eval alarms-bedside``: the gateway's alarm path on real ICU alarms (PhysioNet/CinC 2015 layout).

Each record is an alarm a commercial bedside monitor raised at 5:00 (``ALARMS.csv`` says which type and
whether reviewers judged it true). The record's first ECG lead goes through the gateway's own
:class:`~cardiogate.edge.processing.DeviceProcessor` (ECG monitor, streaming DSP, VT check) and
:class:`~cardiogate.edge.alarm_bridge.AlarmBridge` (alarm engine) in chunks of ``--chunk`` samples, as
ECG notifications arrive; the second ECG lead and the pulse waveform (ABP, else PLETH) go in beside it
as auxiliary channels. Real time: nothing after the alarm (5:00) is read, and the only look-ahead is the
R-peak detector's (0.37 s), so a beat in the last 0.37 s before the alarm is not yet seen.

The gateway calls the alarm true when its matching alarm is raised (or showing) during the last
``--window`` seconds before 5:00: VT and ventricular flutter/fibrillation -> ``vt`` or ``vf`` (a run of
ventricular beats, or the waveform's own flutter/fibrillation detector), asystole ->
``asystole``, bradycardia -> ``hr_low`` below 40/min, tachycardia -> ``hr_high`` above 140/min (the
challenge's definitions). Heart rate reaches the engine as a wearable's would: once a second, from the
gateway's own beats of the last 10 s. Score: (TP+TN)/(TP+TN+FP+5 FN), with 95 % bootstrap intervals over
records (seeded).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from cardiogate.app.evaluation.alarms import BridgeSink
from cardiogate.edge.alarm_bridge import AlarmBridge
from cardiogate.edge.alarm_engine.config import default_specs
from cardiogate.edge.alarm_engine.model import Condition
from cardiogate.edge.ecg_assembler import EcgFrame
from cardiogate.edge.ecg_monitor import MonitoredBeat
from cardiogate.edge.inference import RhythmResult
from cardiogate.edge.processing import DeviceProcessor
from cardiogate.edge.settings import AlarmSettings, AnalysisSettings, ConditionOverride

ALARM_S = 300.0
T0_NS = 1_800_000_000 * 1_000_000_000
NS = 1_000_000_000
VENTRICULAR: tuple[Condition, ...] = ("vt", "vf")
TYPES: dict[str, tuple[Condition, ...]] = {
    "Ventricular_Tachycardia": VENTRICULAR, "Ventricular_Flutter_Fib": VENTRICULAR, "Asystole": ("asystole",),
    "Bradycardia": ("hr_low",), "Tachycardia": ("hr_high",)}
DOUBTS = ("vt_unconfirmed", "vf_unconfirmed")
RATE_LIMITS = {"hr_low": ("below", 40.0), "hr_high": ("above", 140.0)}  # challenge definitions
PULSE_CHANNELS = ("ABP", "PLETH")  # arterial pressure first: invasive, rarely motion-corrupted
NON_ECG = {"ABP", "PLETH", "RESP"}
LOOKAHEAD_S = 0.37


@dataclass(frozen=True)
class Options:
    window_s: float = 16.0
    chunk: int = 114
    vt_beats: int | None = None  # None: the gateway's shipped VT limit
    vt_rejection: bool = True
    mains_hz: float = 60.0


class _Sink(BridgeSink):
    """The evaluation's sink (records dropped, observations to the alarm bridge) that also keeps beat times,
    for a once-a-second heart rate."""

    def __init__(self, bridge: AlarmBridge) -> None:
        super().__init__(bridge)
        self.beat_ns: list[int] = []

    def observe_beats(self, patient: str, device_id: str, complete_ns: int, beats: list[MonitoredBeat],
                      interrupted: bool = False) -> None:
        self.beat_ns.extend(b.device_time_ns for b in beats)
        super().observe_beats(patient, device_id, complete_ns, beats, interrupted)

    def observe_rhythm(self, patient: str, device_id: str, end_ns: int, rhythm: RhythmResult,
                       window_uv: Any = None, sample_rate_hz: float = 0.0) -> None:
        self.bridge.observe_rhythm(patient, device_id, end_ns, rhythm)

    def heart_rate(self, now_ns: int) -> float | None:
        recent = [t for t in self.beat_ns if now_ns - 10 * NS <= t <= now_ns]
        del self.beat_ns[:max(0, len(self.beat_ns) - 64)]
        if len(recent) < 2:
            return None
        return 60.0 * NS * (len(recent) - 1) / (recent[-1] - recent[0])


def shipped_vt_beats() -> int:
    """The gateway's own VT limit (the high tier of ``vt``), which the evaluation uses unless told otherwise."""
    return int(default_specs()["vt"].tiers[0].limit)


def _filled(x: npt.NDArray[np.float64]) -> npt.NDArray[np.int32]:
    """Gaps (NaN) hold the last valid value, as a monitor's flat line would; then integers (x1000)."""
    ok = np.isfinite(x)
    if not ok.any():
        return np.zeros(x.size, dtype=np.int32)
    idx = np.where(ok, np.arange(x.size), 0)
    np.maximum.accumulate(idx, out=idx)
    y = np.where(ok[idx], x[idx], 0.0)
    return np.round(y * 1000.0).astype(np.int32)


def load(path: Path) -> tuple[float, dict[str, npt.NDArray[np.int32]]]:
    """One record up to the alarm: sample rate and channels (ECG in microvolts, pulse x1000)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # wfdb's pandas deprecation noise, at import and on reading
        import wfdb  # type: ignore[import-untyped]

        head = wfdb.rdheader(str(path))
        fs = float(head.fs)
        n = min(round(ALARM_S * fs), int(head.sig_len))  # nothing after the alarm is even read
        rec = wfdb.rdrecord(str(path), sampto=n)
    return fs, {name: _filled(rec.p_signal[:, i]) for i, name in enumerate(rec.sig_name)}


def run_record(name: str, alarm: str, path: Path, opt: Options) -> dict[str, Any]:
    """Feed one record through the gateway; the decision and its reason."""
    fs, ch = load(path)
    ecg = [k for k in ch if k not in NON_ECG]
    pulse = next((k for k in PULSE_CHANNELS if k in ch), None)
    notices: list[dict[str, Any]] = []

    def publish(_p: str, leaf: str, payload: dict[str, Any], _q: int, _r: bool, _s: bool) -> None:
        if leaf == "alarms":
            notices.append(payload)

    overrides: dict[Condition, ConditionOverride] = {"vt": ConditionOverride(high=opt.vt_beats)} if opt.vt_beats else {}
    settings = AlarmSettings(conditions=overrides)
    bridge = AlarmBridge(settings, "eval", publish, lambda _r: None, lambda _p: True)
    sink = _Sink(bridge)
    proc = DeviceProcessor("C0:00:00:00:B5:01", "pt-bedside", sink, 250,
                           analysis=AnalysisSettings(rhythm_model=None, mains_hz=opt.mains_hz,
                                                     vt_rejection=opt.vt_rejection))
    conditions = TYPES[alarm]
    n = ch[ecg[0]].size
    window_from = T0_NS + round((n / fs - opt.window_s) * NS)
    showing, next_hr = False, NS
    for seq, start in enumerate(range(0, n, opt.chunk)):
        stop = min(n, start + opt.chunk)
        first_ns = T0_NS + round(start * NS / fs)
        frame = EcgFrame(first_ns, fs, 1.0, ch[ecg[0]][start:stop], seq, first_ns)
        if len(ecg) > 1:
            proc.on_aux_frame("ecg", EcgFrame(first_ns, fs, 1.0, ch[ecg[1]][start:stop], seq, first_ns))
        if pulse is not None:
            proc.on_aux_frame("pulse", EcgFrame(first_ns, fs, 1.0, ch[pulse][start:stop], seq, first_ns))
        proc.on_ecg_frame(frame)
        end_ns = T0_NS + round(stop * NS / fs)
        while next_hr <= end_ns - T0_NS:
            hr = sink.heart_rate(T0_NS + next_hr)
            if hr is not None:
                bridge.observe_vitals("pt-bedside", "C0:00:00:00:B5:01", T0_NS + next_hr, hr=hr)
            next_hr += NS
        if end_ns >= window_from and any(bridge.engine.status("pt-bedside", c) == "active" for c in conditions):
            showing = True
    return decide(name, alarm, conditions, notices, window_from, showing)


def _qualifies(condition: str, n: dict[str, Any]) -> bool:
    limit = RATE_LIMITS.get(condition)
    if limit is None:
        return True
    side, value = limit
    return bool(n["value"] < value if side == "below" else n["value"] > value)


def decide(name: str, alarm: str, conditions: tuple[str, ...], notices: list[dict[str, Any]], window_from: int,
           showing: bool) -> dict[str, Any]:
    """True when a matching alarm was raised in the window (or showing there); the reason either way."""
    recent = [n for n in notices if n["trigger_sample_device_time_ns"] >= window_from]
    hits = [n for n in recent if n["condition"] in conditions and n["state"] in ("raised", "escalated")
            and _qualifies(n["condition"], n)]
    doubts = [n for n in recent if n["condition"] in DOUBTS and n["state"] == "raised"]
    names = "/".join(conditions)
    if hits:
        return {"record": name, "alarm": alarm, "decision": True, "reason": f"{hits[0]['condition']} "
                f"{hits[0]['state']}: {hits[0]['reason']}"}
    if showing and not RATE_LIMITS.keys() & set(conditions):  # raised before the window and still going on
        earlier = [n for n in notices if n["condition"] in conditions and n["state"] in ("raised", "escalated")]
        why = f": {earlier[-1]['reason']}" if earlier else ""
        shown = earlier[-1]["condition"] if earlier else names
        return {"record": name, "alarm": alarm, "decision": True, "reason": f"{shown} alarm showing{why}"}
    if "vt" in conditions and doubts:
        return {"record": name, "alarm": alarm, "decision": False, "reason": doubts[-1]["reason"]}
    return {"record": name, "alarm": alarm, "decision": False, "reason": f"no {names} alarm in the window"}


def confusion(rows: list[dict[str, Any]]) -> dict[str, Any]:
    tp = sum(1 for r in rows if r["true_alarm"] and r["decision"])
    fn = sum(1 for r in rows if r["true_alarm"] and not r["decision"])
    fp = sum(1 for r in rows if not r["true_alarm"] and r["decision"])
    tn = sum(1 for r in rows if not r["true_alarm"] and not r["decision"])
    return {"n": len(rows), "tp": tp, "tn": tn, "fp": fp, "fn": fn,
            "tpr": tp / (tp + fn) if tp + fn else None, "tnr": tn / (tn + fp) if tn + fp else None,
            "score": (tp + tn) / (tp + tn + fp + 5 * fn) if rows else None}


def clopper_pearson(k: int, n: int) -> list[float] | None:
    """Exact 95 % interval of a proportion k/n."""
    from scipy.stats import beta  # type: ignore[import-untyped]

    if n == 0:
        return None
    lo = 0.0 if k == 0 else float(beta.ppf(0.025, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(0.975, k + 1, n - k))
    return [lo, hi]


def with_ci(rows: list[dict[str, Any]], resamples: int, seed: int) -> dict[str, Any]:
    """Counts and rates, with 95 % percentile intervals from resampling the records."""
    out = confusion(rows)
    if not rows or resamples <= 0:
        return out
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {"tpr": [], "tnr": [], "score": []}
    for _ in range(resamples):
        c = confusion([rows[i] for i in rng.integers(0, len(rows), len(rows))])
        for key, values in draws.items():
            if c[key] is not None:
                values.append(float(c[key]))
    out["ci95"] = {k: [float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))] if v else None
                   for k, v in draws.items()}
    # the percentile bootstrap collapses to a point at 0 or 100 %: exact binomial intervals beside it
    out["ci95_exact"] = {"tpr": clopper_pearson(out["tp"], out["tp"] + out["fn"]),
                         "tnr": clopper_pearson(out["tn"], out["tn"] + out["fp"])}
    accept_all = [dict(r, decision=True) for r in rows]
    out["accept_all_score"] = confusion(accept_all)["score"]
    return out


def read_alarms(data: Path) -> list[tuple[str, str, bool]]:
    with (data / "ALARMS.csv").open(newline="", encoding="utf-8") as fh:
        return [(r["record"], r["alarm"], r["true_alarm"].strip() == "1") for r in csv.DictReader(fh)]


def run(data: Path, opt: Options, records: list[str] | None = None, resamples: int = 1000,
        seed: int = 2015) -> dict[str, Any]:
    alarms = [a for a in read_alarms(data) if a[1] in TYPES and (records is None or a[0] in records)]
    began = time.process_time()
    rows = []
    for i, (name, alarm, truth) in enumerate(alarms, 1):
        row = run_record(name, alarm, data / name, opt)
        row["true_alarm"] = truth
        rows.append(row)
        mark = "ok" if row["decision"] == truth else ("MISSED" if truth else "false alarm kept")
        print(f"[{i}/{len(alarms)}] {name} {alarm} true={int(truth)} -> {int(row['decision'])} {mark}: "
              f"{row['reason']}", file=sys.stderr, flush=True)
    by_type = {t: with_ci([r for r in rows if r["alarm"] == t], resamples, seed)
               for t in sorted({r["alarm"] for r in rows})}
    return {"records": rows, "by_type": by_type, "overall": with_ci(rows, resamples, seed),
            "settings": {"window_s": opt.window_s, "chunk_samples": opt.chunk,
                         "vt_beats": opt.vt_beats or shipped_vt_beats(), "vt_rejection": opt.vt_rejection,
                         "mains_hz": opt.mains_hz, "lookahead_s": LOOKAHEAD_S,
                         "alarm_s": ALARM_S, "bootstrap": resamples, "seed": seed},
            "cpu_s": round(time.process_time() - began, 1)}


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def table(result: dict[str, Any]) -> str:
    lines = ["| alarm type | n | TP | FN | FP | TN | TPR | TNR | score (95% CI) | accept all |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, c in [*result["by_type"].items(), ("overall", result["overall"])]:
        ci = (c.get("ci95") or {}).get("score")
        span = f" ({ci[0]:.2f}-{ci[1]:.2f})" if ci else ""
        lines.append(f"| {name} | {c['n']} | {c['tp']} | {c['fn']} | {c['fp']} | {c['tn']} | {_fmt(c['tpr'])} | "
                     f"{_fmt(c['tnr'])} | {_fmt(c['score'])}{span} | {_fmt(c.get('accept_all_score'))} |")
    return "\n".join(lines)


def main(ns: argparse.Namespace) -> int:
    data: Path = ns.data
    if not (data / "ALARMS.csv").is_file():
        print(f"cardiogate eval alarms-bedside: no ALARMS.csv in {data}", file=sys.stderr)
        return 2
    from cardiogate.core.logs import setup_logging

    # every alarm the gateway raises is logged; over 100+ records that drowns the table, so only errors
    # show unless --log-level DEBUG asks for everything
    debug = getattr(ns, "log_level", "INFO") == "DEBUG"
    setup_logging("DEBUG" if debug else "ERROR", getattr(ns, "log_format", "console"), "eval")
    opt = Options(ns.window_s, ns.chunk, ns.vt_beats, not ns.no_vt_rejection, ns.mains_hz)
    result = run(data, opt, ns.records, ns.bootstrap, ns.seed)
    print(table(result))
    print(f"cpu {result['cpu_s']} s", file=sys.stderr)
    if ns.json is not None:
        ns.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0
