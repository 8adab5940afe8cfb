"""A patient's last 24 h of vitals, summarised per minute, and the risk student's features from it.

Pure and bounded: each signal keeps at most one summary per minute (count, sum, sum of
squares, min, max, the last value and the value farthest from normal), so 24 h of a 1 Hz
stream costs 1,440 small tuples, not 86,400 samples. The feature names are the eICU student's
(``cardiogate.models.haim.student``), which the risk model's manifest lists in input order; a
feature the gateway has no signal for is NaN, and the model imputes it.

How a gateway's streams map onto the student's eICU inputs:

- ``worst_heartrate``/``worst_meanbp`` (APACHE's most abnormal value of the period): the value
  farthest from normal (80 /min, 85 mmHg) over the horizon; ``*_dev`` its distance from normal.
- ``nibp_{sys,dia,mean}_{mean,min,max,std,last}``: statistics of the cuff readings.
- ``spo2_{mean,min,max}``: of the oximeter's readings.
- respiratory rate and temperature: no wearable here measures them, so NaN.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

NS_PER_MIN = 60_000_000_000
HORIZON_MIN = 24 * 60
NORMAL = {"hr": 80.0, "map": 85.0, "rr": 16.0, "temp": 37.0}
SIGNALS = ("hr", "spo2", "sys", "dia", "map", "rr", "temp")
_WORST = {"heartrate": "hr", "respiratoryrate": "rr", "temperature": "temp", "meanbp": "map"}
_SERIES = {"nibp_sys": "sys", "nibp_dia": "dia", "nibp_mean": "map", "rr": "rr", "spo2": "spo2"}
_PLAUSIBLE = {"hr": (15.0, 300.0), "spo2": (40.0, 100.0), "sys": (40.0, 300.0), "dia": (15.0, 200.0),
              "map": (20.0, 250.0), "rr": (2.0, 80.0), "temp": (25.0, 45.0)}


@dataclass(slots=True)
class _Minute:
    minute: int
    n: int
    total: float
    squares: float
    low: float
    high: float
    last: float
    last_ns: int
    worst: float


class VitalsHistory:
    """Per-minute summaries of each vital over the last ``horizon_min`` minutes of device time."""

    def __init__(self, horizon_min: int = HORIZON_MIN) -> None:
        self.horizon_min = horizon_min
        self._minutes: dict[str, deque[_Minute]] = {s: deque() for s in SIGNALS}
        self.latest_ns = 0

    def add(self, signal: str, value: float | None, device_ns: int) -> bool:
        """Record one reading; False (and nothing stored) for an unknown signal or an implausible value."""
        if signal not in self._minutes or value is None or not math.isfinite(value):
            return False
        lo, hi = _PLAUSIBLE[signal]
        if not lo <= value <= hi:
            return False
        minute = device_ns // NS_PER_MIN
        normal = NORMAL.get(signal)
        series = self._minutes[signal]
        if series and series[-1].minute == minute:
            m = series[-1]
            m.n += 1
            m.total += value
            m.squares += value * value
            m.low, m.high = min(m.low, value), max(m.high, value)
            if device_ns >= m.last_ns:
                m.last, m.last_ns = value, device_ns
            if normal is not None and abs(value - normal) > abs(m.worst - normal):
                m.worst = value
        elif not series or minute > series[-1].minute:
            series.append(_Minute(minute, 1, value, value * value, value, value, value, device_ns, value))
        else:  # late reading for an older minute: rare (reordered BLE notifications); folded in where it belongs
            for m in series:
                if m.minute == minute:
                    m.n += 1
                    m.total += value
                    m.squares += value * value
                    m.low, m.high = min(m.low, value), max(m.high, value)
                    if normal is not None and abs(value - normal) > abs(m.worst - normal):
                        m.worst = value
                    break
            else:
                return False  # older than anything kept and not in the window: nothing to fold into
        self.latest_ns = max(self.latest_ns, device_ns)
        self._evict(self.latest_ns)
        return True

    def _evict(self, now_ns: int) -> None:
        oldest = now_ns // NS_PER_MIN - self.horizon_min
        for series in self._minutes.values():
            while series and series[0].minute <= oldest:
                series.popleft()

    def minutes(self, signal: str) -> int:
        return len(self._minutes[signal])

    def stats(self, signal: str) -> dict[str, float]:
        """mean, min, max, std (population), last and worst over the horizon; NaN where there is no reading."""
        series = self._minutes[signal]
        n = sum(m.n for m in series)
        if n == 0:
            return dict.fromkeys(("mean", "min", "max", "std", "last", "worst"), math.nan)
        total = sum(m.total for m in series)
        mean = total / n
        var = max(sum(m.squares for m in series) / n - mean * mean, 0.0)
        normal = NORMAL.get(signal, mean)
        worst = max((m.worst for m in series), key=lambda v: abs(v - normal))
        last = max(series, key=lambda m: m.last_ns).last
        return {"mean": mean, "min": min(m.low for m in series), "max": max(m.high for m in series),
                "std": math.sqrt(var), "last": last, "worst": worst}


def risk_features(history: VitalsHistory, names: Sequence[str]) -> list[float]:
    """The student's inputs, in ``names`` order (the manifest's); NaN for what the gateway does not see.

    ValueError for a name this gateway does not know how to compute: a model asking for an input
    the gateway cannot provide must be refused at load, not fed zeros.
    """
    stats = {s: history.stats(s) for s in SIGNALS}
    out: list[float] = []
    for name in names:
        out.append(_feature(name, stats))
    return out


def known_feature(name: str) -> bool:
    try:
        _feature(name, {s: dict.fromkeys(("mean", "min", "max", "std", "last", "worst"), math.nan)
                        for s in SIGNALS})
    except ValueError:
        return False
    return True


def _feature(name: str, stats: dict[str, dict[str, float]]) -> float:
    if name.startswith("worst_"):
        base = name.removeprefix("worst_")
        dev = base.endswith("_dev")
        signal = _WORST.get(base.removesuffix("_dev"))
        if signal is None:
            raise ValueError(f"unknown risk feature {name!r}")
        worst = stats[signal]["worst"]
        return abs(worst - NORMAL[signal]) if dev else worst
    prefix, _, stat = name.rpartition("_")
    signal = _SERIES.get(prefix)
    if signal is None or stat not in ("mean", "min", "max", "std", "last"):
        raise ValueError(f"unknown risk feature {name!r}")
    return stats[signal][stat]
