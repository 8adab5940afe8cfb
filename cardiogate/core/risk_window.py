"""A patient's last 24 h of vitals, summarised per minute, and the risk student's features from it.

Pure and bounded: each signal keeps at most one summary per minute (count, sum, sum of
squares, min, max, the last value and the value farthest from normal) in a ring of raw numbers,
so 24 h of a 1 Hz stream costs about 100 KB, not 86,400 samples (Python objects per minute
cost 1.6 MB a patient-day for five vitals; 50 patients would have spent 80 MB of a gateway).
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


class _Ring:
    """One signal's per-minute summaries in ``horizon`` slots of raw numbers (slot = minute mod horizon).

    About 100 KB a signal-day, allocated when the signal first reports; a slot holding a minute that
    fell out of the horizon is simply overwritten, so nothing has to be evicted.
    """

    __slots__ = ("high", "last", "last_ns", "low", "minute", "n", "squares", "total", "worst")

    def __init__(self, horizon: int) -> None:
        self.minute = array("q", [-1]) * horizon  # the minute a slot holds; -1: never used
        self.last_ns = array("q", [0]) * horizon
        self.n = array("q", [0]) * horizon
        self.total, self.squares, self.low, self.high, self.last, self.worst = (
            array("d", [0.0]) * horizon for _ in range(6))


class VitalsHistory:
    """Per-minute summaries of each vital over the last ``horizon_min`` minutes of device time."""

    def __init__(self, horizon_min: int = HORIZON_MIN) -> None:
        self.horizon_min = horizon_min
        self._rings: dict[str, _Ring] = {}
        self.latest_ns = 0

    def add(self, signal: str, value: float | None, device_ns: int) -> bool:
        """Record one reading; False (and nothing stored) for an unknown signal, an implausible value or a
        reading older than the horizon."""
        if signal not in _PLAUSIBLE or value is None or not math.isfinite(value):
            return False
        lo, hi = _PLAUSIBLE[signal]
        if not lo <= value <= hi:
            return False
        minute = device_ns // NS_PER_MIN
        if minute <= max(self.latest_ns, device_ns) // NS_PER_MIN - self.horizon_min:
            return False
        ring = self._rings.get(signal)
        if ring is None:
            ring = self._rings[signal] = _Ring(self.horizon_min)
        slot = minute % self.horizon_min
        if ring.minute[slot] != minute:  # a new minute (the slot held one older than the horizon, or none)
            ring.minute[slot], ring.n[slot], ring.last_ns[slot] = minute, 1, device_ns
            ring.total[slot], ring.squares[slot] = value, value * value
            ring.low[slot] = ring.high[slot] = ring.last[slot] = ring.worst[slot] = value
        else:  # a minute already begun, or a late reading for it (reordered BLE notifications): folded in
            ring.n[slot] += 1
            ring.total[slot] += value
            ring.squares[slot] += value * value
            ring.low[slot], ring.high[slot] = min(ring.low[slot], value), max(ring.high[slot], value)
            if device_ns >= ring.last_ns[slot]:
                ring.last[slot], ring.last_ns[slot] = value, device_ns
            normal = NORMAL.get(signal)
            if normal is not None and abs(value - normal) > abs(ring.worst[slot] - normal):
                ring.worst[slot] = value
        self.latest_ns = max(self.latest_ns, device_ns)
        return True

    def _valid(self, ring: _Ring) -> npt.NDArray[np.bool_]:
        minutes = np.frombuffer(ring.minute, dtype=np.int64)
        return np.asarray((minutes >= 0) & (minutes > self.latest_ns // NS_PER_MIN - self.horizon_min))

    def minutes(self, signal: str) -> int:
        ring = self._rings.get(signal)
        return 0 if ring is None else int(self._valid(ring).sum())

    def stats(self, signal: str) -> dict[str, float]:
        """mean, min, max, std (population), last and worst over the horizon; NaN where there is no reading."""
        ring = self._rings.get(signal)
        valid = self._valid(ring) if ring is not None else None
        if ring is None or valid is None or not valid.any():
            return dict.fromkeys(("mean", "min", "max", "std", "last", "worst"), math.nan)

        def col(values: array[float] | array[int]) -> npt.NDArray[np.float64]:
            return np.asarray(np.frombuffer(values, dtype=np.float64 if values.typecode == "d" else np.int64)[valid],
                              dtype=np.float64)

        n = float(col(ring.n).sum())
        mean = float(col(ring.total).sum()) / n
        var = max(float(col(ring.squares).sum()) / n - mean * mean, 0.0)
        worst_values = col(ring.worst)
        normal = NORMAL.get(signal, mean)
        last_ns = np.frombuffer(ring.last_ns, dtype=np.int64)[valid]
        return {"mean": mean, "min": float(col(ring.low).min()), "max": float(col(ring.high).max()),
                "std": math.sqrt(var), "last": float(col(ring.last)[int(np.argmax(last_ns))]),
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
