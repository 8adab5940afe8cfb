"""A patient's last 24 h of vitals, summarised per minute, and the risk student's features from it.

Pure and bounded: each signal keeps at most one summary per minute that had a reading (count,
sum, sum of squares, min, max and the value farthest from normal) in arrays of raw numbers, so
24 h of a 1 Hz stream costs about 75 KB, not 86,400 samples, and a patient an hour in almost
nothing (Python objects per minute cost 1.6 MB a patient-day for five vitals, 80 MB at 50
patients; a ring of all 1,440 minutes per signal, allocated at the first reading, 26 MB at 50
patients from the first minute on).
The feature names are the eICU student's (``cardiogate.models.haim.student``), which the risk
model's manifest lists in input order; a feature the gateway has no signal for is NaN, and the
model imputes it.

How a gateway's streams map onto the student's eICU inputs:

- ``worst_heartrate``/``worst_meanbp`` (APACHE's most abnormal value of the period): the value
  farthest from normal (80 /min, 85 mmHg) over the horizon; ``*_dev`` its distance from normal.
- ``nibp_{sys,dia,mean}_{mean,min,max,std,last}``: statistics of the cuff readings.
- ``spo2_{mean,min,max}``: of the oximeter's readings.
- respiratory rate and temperature: no wearable here measures them, so NaN.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

NS_PER_MIN = 60_000_000_000
HORIZON_MIN = 24 * 60
NORMAL = {"hr": 80.0, "map": 85.0, "rr": 16.0, "temp": 37.0}
SIGNALS = ("hr", "spo2", "sys", "dia", "map", "rr", "temp")
_WORST = {"heartrate": "hr", "respiratoryrate": "rr", "temperature": "temp", "meanbp": "map"}
_SERIES = {"nibp_sys": "sys", "nibp_dia": "dia", "nibp_mean": "map", "rr": "rr", "spo2": "spo2"}
_PLAUSIBLE = {"hr": (15.0, 300.0), "spo2": (40.0, 100.0), "sys": (40.0, 300.0), "dia": (15.0, 200.0),
              "map": (20.0, 250.0), "rr": (2.0, 80.0), "temp": (25.0, 45.0)}

_FIRST_LIMIT = 16  # a series' first arrays; past them the limit grows with the minutes held


class _Series:
    """One signal's per-minute summaries: an entry per minute that has a reading, in raw-number arrays.

    Entries are appended as minutes begin (a late reading for a minute already begun is folded into its
    entry), so the memory follows the minutes held: a 1 Hz stream costs about 75 KB for a whole day, a cuff
    every 5 minutes a fifth of that, and a patient an hour in almost nothing (a ring of every minute of the
    horizon, allocated up front, cost 100 KB a signal from the first reading: 26 MB at 50 patients). Entries
    that fell out of the horizon are dropped in bulk when the arrays reach their current limit.

    The newest reading is kept once per signal, not per minute: it lies in the newest minute, which is
    inside the horizon whenever any of the signal's minutes is.
    """

    __slots__ = ("high", "last", "last_ns", "limit", "low", "minute", "n", "newest", "squares", "total", "worst")

    def __init__(self) -> None:
        self.minute = array("q")  # the minute of each entry
        self.n = array("i")
        self.total, self.squares, self.low, self.high, self.worst = (array("d") for _ in range(5))
        self.newest = -(2**63)  # at least every entry's minute
        self.limit = _FIRST_LIMIT  # entries before the ones older than the horizon are dropped
        self.last, self.last_ns = math.nan, -(2**63)

    def find(self, minute: int) -> int:
        """The entry holding ``minute``, or -1."""
        if minute > self.newest:
            return -1
        k = len(self.minute) - 1
        if k >= 0 and self.minute[k] == minute:
            return k
        try:
            return self.minute.index(minute)  # a reading late across a minute boundary (reordered notifications)
        except ValueError:
            return -1

    def append(self, minute: int, value: float, floor: int) -> None:
        """Begin ``minute`` with one reading; entries at or below ``floor`` (out of the horizon) may be dropped."""
        if len(self.minute) >= self.limit:
            self._drop_through(floor)
        self.minute.append(minute)
        self.n.append(1)
        self.total.append(value)
        self.squares.append(value * value)
        self.low.append(value)
        self.high.append(value)
        self.worst.append(value)
        self.newest = max(self.newest, minute)

    def _drop_through(self, floor: int) -> None:
        minutes = np.frombuffer(self.minute, dtype=np.int64)
        keep = np.flatnonzero((minutes > floor) & (minutes >= 0))  # the others can never count again
        del minutes  # no view of the arrays may outlive this: they are appended to
        if len(keep) < len(self.minute):
            for name in ("minute", "n", "total", "squares", "low", "high", "worst"):
                values: array[Any] = getattr(self, name)
                kept = np.frombuffer(values, dtype=_dtype(values))[keep].tobytes()
                setattr(self, name, array(values.typecode, kept))
        held = len(self.minute)
        self.limit = held + max(held // 32, _FIRST_LIMIT)


def _dtype(values: array[Any]) -> np.dtype[Any]:
    return np.dtype(f"{'f' if values.typecode == 'd' else 'i'}{values.itemsize}")


class VitalsHistory:
    """Per-minute summaries of each vital over the last ``horizon_min`` minutes of device time."""

    def __init__(self, horizon_min: int = HORIZON_MIN) -> None:
        self.horizon_min = horizon_min
        self._series: dict[str, _Series] = {}
        self.latest_ns = 0
        self.new_minutes = 0
        """How many minute entries have been started: with ``latest_ns``'s minute, what :meth:`minutes` depends on."""

    def add(self, signal: str, value: float | None, device_ns: int) -> bool:
        """Record one reading; False (and nothing stored) for an unknown signal, an implausible value or a
        reading older than the horizon."""
        if signal not in _PLAUSIBLE or value is None or not math.isfinite(value):
            return False
        lo, hi = _PLAUSIBLE[signal]
        if not lo <= value <= hi:
            return False
        minute = device_ns // NS_PER_MIN
        floor = max(self.latest_ns, device_ns) // NS_PER_MIN - self.horizon_min
        if minute <= floor:
            return False
        series = self._series.get(signal)
        if series is None:
            series = self._series[signal] = _Series()
        i = series.find(minute)
        if i < 0:  # a new minute
            series.append(minute, value, floor)
            self.new_minutes += 1
        else:  # a minute already begun, or a late reading for it (reordered BLE notifications): folded in
            series.n[i] += 1
            series.total[i] += value
            series.squares[i] += value * value
            series.low[i], series.high[i] = min(series.low[i], value), max(series.high[i], value)
            normal = NORMAL.get(signal)
            if normal is not None and abs(value - normal) > abs(series.worst[i] - normal):
                series.worst[i] = value
        if device_ns >= series.last_ns:
            series.last, series.last_ns = value, device_ns
        self.latest_ns = max(self.latest_ns, device_ns)
        return True

    def _valid(self, series: _Series) -> npt.NDArray[np.bool_]:
        minutes = np.frombuffer(series.minute, dtype=np.int64)
        return np.asarray((minutes >= 0) & (minutes > self.latest_ns // NS_PER_MIN - self.horizon_min))

    def minutes(self, signal: str) -> int:
        series = self._series.get(signal)
        return 0 if series is None else int(self._valid(series).sum())

    def stats(self, signal: str) -> dict[str, float]:
        """mean, min, max, std (population), last and worst over the horizon; NaN where there is no reading."""
        series = self._series.get(signal)
        chosen = np.flatnonzero(self._valid(series)) if series is not None else None
        if series is None or chosen is None or not chosen.size:
            return dict.fromkeys(("mean", "min", "max", "std", "last", "worst"), math.nan)
        # In the order of minute mod horizon: the sums and the first of equally abnormal values come out
        # exactly as they did from a ring indexed that way.
        minutes = np.frombuffer(series.minute, dtype=np.int64)[chosen]
        chosen = chosen[np.argsort(minutes % self.horizon_min)]

        def col(values: array[float] | array[int]) -> npt.NDArray[np.float64]:
            return np.asarray(np.frombuffer(values, dtype=_dtype(values))[chosen], dtype=np.float64)

        n = float(col(series.n).sum())
        mean = float(col(series.total).sum()) / n
        var = max(float(col(series.squares).sum()) / n - mean * mean, 0.0)
        worst_values = col(series.worst)
        normal = NORMAL.get(signal, mean)
        return {"mean": mean, "min": float(col(series.low).min()), "max": float(col(series.high).max()),
                "std": math.sqrt(var), "last": series.last,
                "worst": float(worst_values[int(np.argmax(np.abs(worst_values - normal)))])}


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
